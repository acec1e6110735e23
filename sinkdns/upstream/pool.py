"""UDP sockets for asking upstreams, chosen at random and renewed as they are used.

An off-path attacker who wants a forged answer accepted must guess the 16-bit ID and the source port
among at least `size` open sockets (RFC 5452 9.2), and the ports keep changing. An answer counts only if
it comes from the address and port asked, carries the ID asked and echoes the question; anything else is
ignored and counted while the real answer is still awaited.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from sinkdns.upstream.entropy import entropy
from sinkdns.upstream.health import Upstream
from sinkdns.upstream.match import answers_question

log = logging.getLogger(__name__)

RENEW_AFTER = 64  # queries sent from one socket before it is replaced by a new one


class _Pending:
    __slots__ = ("upstream", "name", "tail", "future")

    def __init__(self, upstream: Upstream, name: bytes, tail: bytes, future: asyncio.Future) -> None:
        self.upstream = upstream
        self.name = name  # question name, lower case
        self.tail = tail  # qtype and qclass bytes
        self.future = future


class _PoolSocket(asyncio.DatagramProtocol):
    def __init__(self, pool: UdpPool) -> None:
        self.pool = pool
        self.pending: dict[int, _Pending] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.uses = 0
        self.retired = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        pending = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if pending is None or pending.future.done():
            self.pool.unmatched += 1
            return
        up = pending.upstream
        if addr[0] != up.host or addr[1] != up.port or not answers_question(data, pending.name, pending.tail):
            up.ignored += 1
            return
        pending.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the waiting query times out or fails over on its own.
        log.debug("upstream socket error: %s", exc)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class UdpPool:
    """A pool of unconnected UDP sockets per address family."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.unmatched = 0
        self._sockets: dict[int, list[_PoolSocket]] = {}
        self._opening: set[asyncio.Task] = set()

    async def open(self, families: set[int]) -> None:
        """Open `size` sockets for each address family the upstreams use; call once before exchange."""
        for family in families:
            self._sockets[family] = [await self._new_socket(family) for _ in range(self.size)]

    async def _new_socket(self, family: int) -> _PoolSocket:
        loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        _, protocol = await loop.create_datagram_endpoint(lambda: _PoolSocket(self), sock=sock)
        return protocol

    async def exchange(self, up: Upstream, query: bytes, name: bytes, tail: bytes, timeout: float) -> bytes:
        """Send `query` (its ID is replaced) to `up` and return the matching answer's bytes."""
        family = socket.AF_INET6 if up.family_v6 else socket.AF_INET
        sockets = self._sockets[family]
        sock = sockets[entropy.below(len(sockets))]
        qid = entropy.u16()
        while qid in sock.pending:
            qid = entropy.u16()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        sock.pending[qid] = _Pending(up, name, tail, future)
        # A timer that fails the future: cheaper than asyncio.timeout, which cancels and uncancels the task.
        timer = loop.call_later(timeout, _expire, future)
        try:
            sock.transport.sendto(qid.to_bytes(2, "big") + query[2:], (up.host, up.port))
            return await future
        finally:
            timer.cancel()
            del sock.pending[qid]
            sock.uses += 1
            if sock.uses >= RENEW_AFTER and not sock.retired and len(self._sockets.get(family, ())) > 1:
                self._renew(family, sock)
            if sock.retired and not sock.pending:
                sock.transport.close()

    def _renew(self, family: int, old: _PoolSocket) -> None:
        old.retired = True
        sockets = self._sockets[family]
        sockets.remove(old)

        async def replace() -> None:
            try:
                sockets.append(await self._new_socket(family))
            except OSError as exc:
                log.warning("could not open an upstream socket: %s", exc)

        task = asyncio.get_running_loop().create_task(replace())
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    def close(self) -> None:
        for sockets in self._sockets.values():
            for sock in sockets:
                if sock.transport is not None:
                    sock.transport.close()
        self._sockets.clear()
