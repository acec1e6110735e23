"""DNS over UDP: one datagram in, at most one out, cut to what the client can take (RFC 6891 6.2.5)."""

from __future__ import annotations

import asyncio

from sinkdns.model import Request, Response
from sinkdns.transport.dispatch import Dispatcher
from sinkdns.transport.packetcache import PacketCache
from sinkdns.wire.build import truncated


class UdpServer(asyncio.DatagramProtocol):
    """Repeated questions are answered from the packet cache; everything else goes through the chain."""

    def __init__(self, dispatcher: Dispatcher, packets: PacketCache | None = None) -> None:
        self.dispatcher = dispatcher
        self.packets = packets
        self.transport: asyncio.DatagramTransport | None = None
        self.draining = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def drain(self) -> None:
        """Take no new questions but keep the socket, so answers still in flight can be sent."""
        self.draining = True

    def datagram_received(self, data: bytes, addr) -> None:
        if self.draining:
            return
        packets = self.packets
        if packets is not None:
            body = packets.answer(data, addr[0])
            if body is not None:
                self.transport.sendto(data[:2] + body, addr)
                return
        self.dispatcher.dispatch(data, addr, "udp", self._send)

    def _send(self, req: Request, res: Response) -> None:
        wire = res.wire
        if wire is None or self.transport is None or self.transport.is_closing():
            return
        if len(wire) > req.max_udp:
            wire = truncated(req)
        elif self.packets is not None:
            self.packets.store(req, res, wire)
        self.transport.sendto(wire, req.client)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors about clients that went away: nothing to do
