"""Admission and time limits for every block-page connection, in front of the HTTP library.

aiohttp bounds each request; nothing in it bounds how many connections are open, or how long a client
may keep one busy. This layer does both, for plain and TLS listeners alike. TLS listeners accept sockets
here, rather than in `loop.create_server`, so a connection counts against the limit from the moment it
is accepted, while its handshake is still running: a flood of clients that never finish a handshake
cannot grow memory past the limit, and a failed handshake, which the loop reports to no protocol, is
seen here and released.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import cast

log = logging.getLogger("sinkdns.blockpage")

ProtocolFactory = Callable[[], asyncio.Protocol]
ACCEPT_PAUSE = 0.5  # seconds to wait after a failed accept, as asyncio's own accept loop does


class ConnectionGate:
    """The open connections of one block-page server, across all its listeners."""

    def __init__(self, limit: int, lifetime: float, handshake_timeout: float) -> None:
        """`handshake_timeout` bounds the TLS handshake and the TLS close alike."""
        self.limit = limit
        self.lifetime = lifetime
        self.handshake_timeout = handshake_timeout
        self.open: set[GuardedConnection] = set()
        self.handshakes: set[asyncio.Task] = set()
        self.refused = 0

    @property
    def full(self) -> bool:
        return len(self.open) + len(self.handshakes) >= self.limit

    def factory(self, http: ProtocolFactory) -> ProtocolFactory:
        """A protocol factory for `loop.create_server` on a plain HTTP listener."""
        return lambda: GuardedConnection(self, http, admitted=False)

    async def accept_tls(self, listener: socket.socket, http: ProtocolFactory, tls: ssl.SSLContext) -> None:
        """Accept on a TLS listener until cancelled; each admitted socket gets its handshake in its own task."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:  # out of file descriptors, most likely: wait for some to be freed
                log.warning("cannot accept a block-page connection", extra={"error": exc.strerror})
                await asyncio.sleep(ACCEPT_PAUSE)
                continue
            if self.full:
                self.refused += 1
                sock.close()
                continue
            task = loop.create_task(self._handshake(loop, sock, http, tls))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    async def _handshake(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, http: ProtocolFactory, tls: ssl.SSLContext
    ) -> None:
        try:
            await loop.connect_accepted_socket(
                lambda: GuardedConnection(self, http, admitted=True), sock, ssl=tls,
                ssl_handshake_timeout=self.handshake_timeout, ssl_shutdown_timeout=self.handshake_timeout,
            )
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError: the client's problem
            log.debug("TLS handshake failed", extra={"error": str(exc)})
            sock.close()

    async def close(self) -> None:
        """Cut every connection still open, and stop the handshakes still running."""
        for connection in list(self.open):
            connection.abort()
        pending = list(self.handshakes)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class GuardedConnection(asyncio.Protocol):
    """One connection: refused when the gate is full, cut off after the gate's lifetime, and otherwise a
    pass-through to the HTTP protocol. On TLS listeners it starts once the handshake is done."""

    def __init__(self, gate: ConnectionGate, http: ProtocolFactory, admitted: bool) -> None:
        self._gate = gate
        self._http = http
        self._admitted = admitted  # TLS sockets were admitted when accepted
        self._transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        gate = self._gate
        if not self._admitted and gate.full:
            gate.refused += 1
            transport.abort()
            return
        gate.open.add(self)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(gate.lifetime, self.abort)
        self._inner = self._http()
        self._inner.connection_made(transport)

    def abort(self) -> None:
        """Cut the connection now: its lifetime is over or the server is closing."""
        if self._transport is not None:
            self._transport.abort()
        self._release()

    def _release(self) -> None:
        self._gate.open.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
