"""The few types every stage shares: what was asked, what is answered, and why."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Generator, Union

from sinkdns.wire.constants import CD, OPT_EDE


class Outcome:
    """Who answered a query; the metric label `result` takes these values."""

    BLOCKED = "blocked"
    CACHED = "cached"
    FORWARDED = "forwarded"
    LOCAL = "local"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    FORMERR = "formerr"
    NOTIMP = "notimp"
    DROPPED = "dropped"
    RATELIMITED = "ratelimited"


@dataclass(frozen=True, slots=True)
class Edns:
    """The client's OPT record (RFC 6891 6.1.3)."""

    payload: int
    version: int
    do: bool
    options: tuple[tuple[int, bytes], ...] = ()

    @property
    def ede_signal(self) -> bool:
        """An empty EDE option: the client asks for structured errors (draft-ietf-dnsop-structured-dns-error)."""
        options = self.options
        return bool(options) and any(code == OPT_EDE and not data for code, data in options)


_KEY_FLAGS = tuple(bytes((bits,)) for bits in range(4))  # the last byte of a cache key: DO and CD


class Request:
    """One client query, parsed once at the transport and never changed afterwards.

    A plain slotted class rather than a frozen dataclass: it is built for every packet, and a frozen
    dataclass's __init__ costs several times more.
    """

    __slots__ = (
        "wire", "id", "flags", "qname", "qname_wire", "question", "qtype", "qclass",
        "edns", "problem", "client", "transport", "received", "_key",
    )

    def __init__(self, wire: bytes, id: int, flags: int, client: tuple, transport: str, received: float) -> None:
        self.wire = wire
        self.id = id
        self.flags = flags
        self.client = client
        self.transport = transport  # "udp" or "tcp"
        self.received = received  # monotonic seconds
        self.qname = ""  # lower case, no trailing dot, "" for the root
        self.qname_wire = b""  # the name as sent, letter case kept
        self.question = b""  # name + type + class as sent; empty when it could not be read
        self.qtype = 0
        self.qclass = 0
        self.edns: Edns | None = None
        self.problem = 0  # 0, or the rcode the guard must answer (FORMERR, NOTIMP, BADVERS)
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        """Cache and in-flight key: case-folded name, type and class, DO and CD (only the name is folded).

        Computed on first use and kept: the cache and the forwarder both ask for it."""
        key = self._key
        if key is None:
            do = 2 if self.edns is not None and self.edns.do else 0
            cd = 1 if self.flags & CD else 0
            key = self._key = self.qname_wire.lower() + self.question[-4:] + _KEY_FLAGS[do | cd]
        return key

    @property
    def max_udp(self) -> int:
        """Largest UDP answer this client accepts (RFC 6891 6.2.5, capped at 1232 per DNS flag day 2020)."""
        if self.edns is None:
            return 512
        return min(max(self.edns.payload, 512), 1232)


@dataclass(frozen=True, slots=True)
class Decision:
    """Why policy answered: shared by the block answer, EDE, block page, metrics and query log."""

    action: str  # blockpage, nxdomain, nodata, drop, tcp-only, local-data, allow, dry-run
    customer: str
    zone: str  # the source file name, e.g. acme.rpz
    rule: str  # the trigger as written, absolute, lower case, no trailing dot
    source: str  # file:line
    reason: str = ""
    link: str = ""
    ttl: int = 60
    until: float | None = None  # wall-clock seconds when the rule lapses, if it does


@dataclass(slots=True)
class Response:
    """What a stage answers. `wire` None means send nothing (UDP) or close the connection (TCP).

    Treated as immutable (stages derive new ones with dataclasses.replace) but not frozen: one or two
    are built per query, and a frozen dataclass's __init__ costs three times more.
    """

    wire: bytes | None
    outcome: str
    rcode: int = 0
    decision: Decision | None = None
    entry: object | None = None  # the parsed upstream answer, so the cache can keep it


Step = Callable[[Response], Response]


class Pending:
    """A Response still to come: stages chain steps onto it as the call unwinds (innermost first), and
    the transport's `finish` callback gets the result. A step that raises turns the result into its
    exception, and the steps after it are skipped, so `finish` always runs exactly once."""

    __slots__ = ("_steps", "_value", "_settled", "_finish")

    def __init__(self) -> None:
        self._steps: list[Step] = []
        self._value: Response | BaseException | None = None
        self._settled = False
        self._finish: Callable[[Response | BaseException], None] | None = None

    def then(self, step: Step) -> Pending:
        if self._settled:
            self._value = _apply(step, self._value)
        else:
            self._steps.append(step)
        return self

    def finish(self, callback: Callable[[Response | BaseException], None]) -> None:
        """Hand the result to `callback` once settled (at once if it already is)."""
        if self._settled:
            callback(self._value)
        else:
            self._finish = callback

    def settle(self, value: Response) -> None:
        for step in self._steps:
            value = _apply(step, value)
        self._steps = []
        self._value = value
        self._settled = True
        if self._finish is not None:
            self._finish(value)

    def __await__(self) -> Generator[object, None, Response]:
        """For callers that can wait (the stage tests): the result as an awaitable."""
        future = asyncio.get_running_loop().create_future()

        def done(value: Response | BaseException) -> None:
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)

        self.finish(done)
        return future.__await__()


def _apply(step: Step, value):
    if isinstance(value, BaseException):
        return value
    try:
        return step(value)
    except Exception as exc:
        return exc


Result = Union[Response, Pending]
Handler = Callable[[Request], Result]
