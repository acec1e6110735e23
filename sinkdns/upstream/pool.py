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
import time
from typing import Callable

from sinkdns.upstream.entropy import entropy
from sinkdns.upstream.health import Upstream
from sinkdns.upstream.match import answers_question

Answered = Callable[[bytes], None]
TimedOut = Callable[[], None]

log = logging.getLogger(__name__)

RENEW_AFTER = 64  # queries sent from one socket before it is replaced by a new one
TICK = 0.05  # seconds between sweeps for timed-out questions


class _Pending:
    __slots__ = ("upstream", "name", "tail", "answered", "timed_out", "deadline")

    def __init__(
        self, upstream: Upstream, name: bytes, tail: bytes, answered: Answered, timed_out: TimedOut, deadline: float,
    ) -> None:
        self.upstream = upstream
        self.name = name  # question name, lower case
        self.tail = tail  # qtype and qclass bytes
        self.answered = answered
        self.timed_out = timed_out
        self.deadline = deadline


class _PoolSocket(asyncio.DatagramProtocol):
    def __init__(self, pool: UdpPool, family: int) -> None:
        self.pool = pool
        self.family = family
        self.pending: dict[int, _Pending] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.uses = 0
        self.retired = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        qid = int.from_bytes(data[:2], "big") if len(data) >= 12 else -1
        pending = self.pending.get(qid)
        if pending is None:
            self.pool.unmatched += 1
            return
        up = pending.upstream
        if addr[0] != up.host or addr[1] != up.port or not answers_question(data, pending.name, pending.tail):
            up.ignored += 1
            return
        del self.pending[qid]
        self.pool.used(self)
        pending.answered(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the waiting query times out or fails over on its own.
        log.debug("upstream socket error: %s", exc)


class UdpPool:
    """A pool of unconnected UDP sockets per address family."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.unmatched = 0
        self._sockets: dict[int, list[_PoolSocket]] = {}
        self._opening: set[asyncio.Task] = set()
        self.clock = clock
        self._retired: set[_PoolSocket] = set()  # out of the rotation, still waiting for answers
        self._sweeper: asyncio.TimerHandle | None = None

    async def open(self, families: set[int]) -> None:
        """Open `size` sockets for each address family the upstreams use; call once before send."""
        for family in families:
            self._sockets[family] = [await self._new_socket(family) for _ in range(self.size)]

    async def _new_socket(self, family: int) -> _PoolSocket:
        loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        _, protocol = await loop.create_datagram_endpoint(lambda: _PoolSocket(self, family), sock=sock)
        return protocol

    def send(
        self, up: Upstream, query: bytes, name: bytes, tail: bytes, timeout: float,
        answered: Answered, timed_out: TimedOut,
    ) -> None:
        """Send `query` (its ID is replaced) to `up`; exactly one of `answered` (with the matching answer's
        bytes) and `timed_out` is called later. Raises OSError, and calls neither, if it cannot be sent.

        No Task and no timer per question (nearly all would be cancelled when the answer comes): one
        sweep per TICK, while anything is waiting, times out what is overdue, up to a tick late.
        """
        sockets = self._sockets[socket.AF_INET6 if up.family_v6 else socket.AF_INET]
        sock = sockets[entropy.below(len(sockets))]
        pending_map = sock.pending
        qid = entropy.u16()
        while qid in pending_map:
            qid = entropy.u16()
        sock.transport.sendto(qid.to_bytes(2, "big") + query[2:], up.address)
        pending_map[qid] = _Pending(up, name, tail, answered, timed_out, self.clock() + timeout)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(TICK, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.clock()
        waiting = False
        for sock in [*(s for sockets in self._sockets.values() for s in sockets), *self._retired]:
            pending_map = sock.pending
            if not pending_map:
                continue
            overdue = [qid for qid, pending in pending_map.items() if pending.deadline <= now]
            for qid in overdue:
                pending = pending_map.pop(qid)
                self.used(sock)
                pending.timed_out()  # may send again, to the next server
            waiting = waiting or bool(pending_map)
        if waiting and self._sweeper is None:  # a retired socket stays in _retired only while it waits
            self._sweeper = asyncio.get_running_loop().call_later(TICK, self._sweep)

    def used(self, sock: _PoolSocket) -> None:
        """One exchange on `sock` is over: renew the socket after RENEW_AFTER, close it once idle."""
        sock.uses += 1
        if sock.uses >= RENEW_AFTER and not sock.retired and len(self._sockets.get(sock.family, ())) > 1:
            self._renew(sock.family, sock)
        if sock.retired and not sock.pending:
            sock.transport.close()
            self._retired.discard(sock)

    def _renew(self, family: int, old: _PoolSocket) -> None:
        old.retired = True
        self._retired.add(old)
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
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for sock in [*(s for sockets in self._sockets.values() for s in sockets), *self._retired]:
            if sock.transport is not None:
                sock.transport.close()
        self._sockets.clear()
        self._retired.clear()
