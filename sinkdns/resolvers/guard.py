"""Answers what must not go further: floods, clients outside the access list, unreadable queries,
other opcodes, other classes, zone transfers.

The rate limit comes first so that even error answers (REFUSED, FORMERR) cannot be used to reflect
a flood at a forged source; the access list next, so nobody outside it learns anything else.
"""

from __future__ import annotations

from typing import Mapping

from sinkdns.addresses import AccessList
from sinkdns.model import Handler, Outcome, Request, Response, Result
from sinkdns.resolvers.base import Stage
from sinkdns.resolvers.ratelimit import ADMIT, SLIP, RateLimiter
from sinkdns.wire import build
from sinkdns.wire import constants as c

_PROBLEM_OUTCOMES = {c.FORMERR: Outcome.FORMERR, c.BADVERS: Outcome.FORMERR, c.NOTIMP: Outcome.NOTIMP}
# Zone transfers, and types that only live inside messages (OPT, TKEY, TSIG) or were never used
# (MAILB, MAILA): never forwarded, never cached (PowerDNS CVE-2018-14644).
_REFUSED_TYPES = frozenset((c.TYPE_AXFR, c.TYPE_IXFR, c.TYPE_OPT, 249, 250, 253, 254))
_DROPPED = Response(None, Outcome.RATELIMITED)


def chaos_record(text: str) -> bytes:
    """A CHAOS TXT record owned by the question's name holding `text` (cut into 255-byte strings)."""
    raw = text.encode("utf-8")
    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    rdata = b"".join(bytes((len(chunk),)) + chunk for chunk in chunks)
    return build.rr(build.QNAME_POINTER, c.TYPE_TXT, 0, rdata, c.CLASS_CH)


def chaos_records(chaos: Mapping[str, str]) -> dict[str, bytes]:
    """The CHAOS TXT record answered for each name of `chaos`, by case-folded name."""
    return {name.rstrip(".").lower(): chaos_record(text) for name, text in chaos.items()}


class GuardStage(Stage):
    """`access` defaults to loopback and private networks; `limiter` None means no rate limit;
    `chaos` maps CHAOS names (version.bind, hostname.bind, id.server) to the text answered for them,
    and every other CHAOS question is refused: sinkdns does not reveal what it runs unless told to."""

    name = "guard"

    def __init__(
        self,
        next: Handler,
        access: AccessList | None = None,
        limiter: RateLimiter | None = None,
        chaos: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(next)
        self.access = access if access is not None else AccessList()
        self.limiter = limiter
        self.chaos = chaos_records(chaos or {})

    def __call__(self, req: Request) -> Result:
        host = req.client[0]
        limiter = self.limiter
        # UDP only: a TCP client has proved its address, and the slip sends the others there.
        if limiter is not None and req.transport == "udp":
            verdict = limiter.check(host, req.received)
            if verdict != ADMIT:
                if verdict == SLIP:
                    return Response(build.truncated(req), Outcome.RATELIMITED)
                return _DROPPED
        if not self.access.allows(host):
            return Response(build.answer(req, c.REFUSED), Outcome.REFUSED, c.REFUSED)
        problem = req.problem
        if problem:
            return Response(build.answer(req, problem), _PROBLEM_OUTCOMES[problem], problem)
        if req.flags & c.TC:  # a query cannot have been truncated (Unbound answers FORMERR too)
            return Response(build.answer(req, c.FORMERR), Outcome.FORMERR, c.FORMERR)
        if req.qclass != c.CLASS_IN or req.qtype in _REFUSED_TYPES:
            record = self.chaos.get(req.qname) if req.qclass == c.CLASS_CH else None
            if record is None:
                return Response(build.answer(req, c.REFUSED), Outcome.REFUSED, c.REFUSED)
            answers = (record,) if req.qtype == c.TYPE_TXT or req.qtype == c.TYPE_ANY else ()
            return Response(build.answer(req, answers=answers, flags=c.AA), Outcome.LOCAL)
        return self.next(req)
