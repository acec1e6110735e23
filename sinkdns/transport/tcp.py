"""DNS over TCP (RFC 7766): length-prefixed messages, pipelined, answered as they are ready.

A connection that sends nothing for the idle timeout is closed; a connection with too many queries
outstanding stops being read until answers go out, so one client cannot queue without limit.
"""

from __future__ import annotations

import asyncio

from sinkdns.model import Request, Response
from sinkdns.transport.dispatch import Dispatcher
from sinkdns.wire.build import truncated


class TcpConnection(asyncio.Protocol):
    def __init__(self, dispatcher: Dispatcher, idle_timeout: float, max_pipeline: int) -> None:
        self.dispatcher = dispatcher
        self.idle_timeout = idle_timeout
        self.max_pipeline = max_pipeline
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.outstanding = 0
        self.paused = False
        self.idle_handle: asyncio.TimerHandle | None = None
        self.peer: tuple = ()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if length == 0:
                self._close()
                return
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2:2 + length])
            del buffer[:2 + length]
            self.outstanding += 1
            if not self.dispatcher.dispatch(message, self.peer, "tcp", self._send):
                self.outstanding -= 1
            if self.transport is None:
                return
        if self.outstanding >= self.max_pipeline and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._arm_idle()

    def _send(self, req: Request, res: Response) -> None:
        self.outstanding -= 1
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        wire = res.wire
        if wire is None:
            self._close()
            return
        if len(wire) > 0xFFFF:  # cannot be framed (RFC 7766 8): the client learns it was cut
            wire = truncated(req)
        transport.write(len(wire).to_bytes(2, "big") + wire)
        if self.paused and self.outstanding < self.max_pipeline:
            self.paused = False
            transport.resume_reading()
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if self.transport is not None:
            self.idle_handle = asyncio.get_running_loop().call_later(self.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        if self.outstanding:
            self._arm_idle()
        else:
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.idle_handle is not None:
            self.idle_handle.cancel()
