"""DNS over TCP (RFC 7766): length-prefixed messages, pipelined, answered as they are ready.

TCP is where a single client can hold resources for long, so everything is bounded (RFC 7766 6.2,
BIND CVE-2018-5743 and CVE-2024-0760): connections in all and per client address (over either, a new
connection is closed at once); a first-message timeout, so a connection that never sends a whole
query goes early; an idle timeout counted from the last whole query or answer (never from stray
bytes, or a client sending a byte a second would live forever), shortened while more than half the
slots are taken; queries outstanding per connection; and answers not yet taken by the client
(past `max_pending` bytes the connection stops being read until the client drains them).
"""

from __future__ import annotations

import asyncio

from sinkdns.model import Request, Response
from sinkdns.transport.dispatch import Dispatcher
from sinkdns.wire.build import truncated

PRESSURE_IDLE_TIMEOUT = 1.0  # seconds, once more than half the connection slots are in use


class TcpLimits:
    """The bounds every TCP connection of one process shares, and the counts they are checked against."""

    def __init__(
        self,
        max_connections: int = 256,
        max_per_client: int = 16,
        first_timeout: float = 5.0,
        idle_timeout: float = 10.0,
        max_pipeline: int = 100,
        max_pending: int = 64 * 1024,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.first_timeout = first_timeout
        self.idle_timeout = idle_timeout
        self.max_pipeline = max_pipeline
        self.max_pending = max_pending
        self.open = 0
        self.per_client: dict[str, int] = {}
        self.rejected = 0  # connections closed at once because a cap was reached

    def admit(self, host: str) -> bool:
        """Take a slot for a new connection from `host`; False (counted) when a cap is reached."""
        held = self.per_client.get(host, 0)
        if self.open >= self.max_connections or held >= self.max_per_client:
            self.rejected += 1
            return False
        self.open += 1
        self.per_client[host] = held + 1
        return True

    def release(self, host: str) -> None:
        self.open -= 1
        held = self.per_client[host] - 1
        if held:
            self.per_client[host] = held
        else:
            del self.per_client[host]

    def idle(self) -> float:
        """The idle timeout now: short while the slots are filling up, so idle clients make room."""
        if self.open * 2 > self.max_connections:
            return min(self.idle_timeout, PRESSURE_IDLE_TIMEOUT)
        return self.idle_timeout


class TcpConnection(asyncio.Protocol):
    def __init__(self, dispatcher: Dispatcher, limits: TcpLimits) -> None:
        self.dispatcher = dispatcher
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.outstanding = 0
        self.reading = True
        self.output_full = False  # the transport's buffer passed max_pending (pause_writing)
        self.timer: asyncio.TimerHandle | None = None
        self.peer: tuple = ()
        self.admitted = False
        self.consuming = False

    def connection_made(self, transport) -> None:
        self.peer = transport.get_extra_info("peername")
        if not self.limits.admit(self.peer[0]):
            transport.close()
            return
        self.admitted = True
        self.transport = transport
        transport.set_write_buffer_limits(high=self.limits.max_pending)
        self._arm(min(self.limits.first_timeout, self.limits.idle()))

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.buffer += data
        self._consume()

    def _consume(self) -> None:
        """Answer the whole messages buffered while the client has room for more answers; the rest
        wait in the buffer (and reading pauses) until answers go out or the client drains them."""
        buffer = self.buffer
        limits = self.limits
        whole = False
        self.consuming = True
        try:
            while len(buffer) >= 2 and not self.output_full and self.outstanding < limits.max_pipeline:
                length = (buffer[0] << 8) | buffer[1]
                if length == 0:
                    self._close()
                    return
                if len(buffer) < 2 + length:
                    break
                message = bytes(buffer[2:2 + length])
                del buffer[:2 + length]
                whole = True
                self.outstanding += 1
                if not self.dispatcher.dispatch(message, self.peer, "tcp", self._send):
                    self.outstanding -= 1
                if self.transport is None:
                    return
        finally:
            self.consuming = False
        if whole:
            self._arm(limits.idle())
        self._update_reading()

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
        self._arm(self.limits.idle())
        self._resume()

    def pause_writing(self) -> None:
        self.output_full = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.output_full = False
        self._resume()

    def _resume(self) -> None:
        """After an answer went out or the client drained some: go on with what is buffered."""
        if self.consuming:
            return  # _consume is running further up the stack and will go on by itself
        if self.buffer:
            self._consume()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        """Read only while the client has room for more answers, both queued and unsent."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        wanted = not self.output_full and self.outstanding < self.limits.max_pipeline
        if wanted != self.reading:
            self.reading = wanted
            if wanted:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._on_timeout)

    def _on_timeout(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.outstanding:  # still waiting on upstream answers: they are bounded by their own deadline
            self._arm(self.limits.idle())
        elif transport.get_write_buffer_size():
            transport.abort()  # a client that does not read: close() would wait for it forever
        else:
            transport.close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
        if self.admitted:
            self.admitted = False
            self.limits.release(self.peer[0])
