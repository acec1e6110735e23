"""Ask a list of upstreams in turn until one gives a usable answer, within one deadline."""

from __future__ import annotations

import asyncio
import time

from sinkdns.errors import UpstreamError
from sinkdns.model import Request
from sinkdns.upstream.health import Upstream, in_order
from sinkdns.upstream.pool import UdpPool
from sinkdns.upstream.tcp import exchange_tcp
from sinkdns.wire import constants as c
from sinkdns.wire.build import upstream_query
from sinkdns.wire.reply import MalformedReply, Reply

RCODE_NAMES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}


class UpstreamGroup:
    """The first healthy server is asked first; on timeout, error, SERVFAIL or REFUSED the next one is.

    Each attempt gets at most `timeout` seconds and all of them together `deadline`, so the client hears
    SERVFAIL in bounded time rather than silence.
    """

    def __init__(
        self,
        upstreams: list[Upstream],
        pool: UdpPool,
        timeout: float,
        deadline: float,
        min_ttl: int = 0,
        max_ttl: int = 86400,
        clock=time.monotonic,
    ) -> None:
        self.upstreams = upstreams
        self.pool = pool
        self.timeout = timeout
        self.deadline = deadline
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.clock = clock

    async def ask(self, req: Request) -> Reply:
        """The first usable answer; a SERVFAIL when that is all the servers said; UpstreamError otherwise."""
        clock = self.clock
        query = upstream_query(req)
        name = req.qname_wire.lower()
        tail = req.question[-4:]
        question_end = 12 + len(req.question)
        deadline = clock() + self.deadline
        attempts: list[str] = []
        servfail = None
        for up in in_order(self.upstreams, clock()):
            started = clock()
            remaining = deadline - started
            if remaining <= 0:
                break
            try:
                data = await self.pool.exchange(up, query, name, tail, min(self.timeout, remaining))
                if data[2] & 0x02:  # TC: the whole answer only fits over TCP
                    data = await exchange_tcp(up, query, name, tail, min(self.timeout, deadline - clock()))
                reply = Reply.from_wire(data, question_end, clock(), self.min_ttl, self.max_ttl)
                reply.upstream = up.label
            except TimeoutError:
                up.requests["timeout"] += 1
                up.failed(clock())
                attempts.append(f"{up.label}: timeout")
                continue
            except (OSError, EOFError, asyncio.IncompleteReadError, MalformedReply) as exc:
                up.requests["error"] += 1
                up.failed(clock())
                attempts.append(f"{up.label}: {exc or type(exc).__name__}")
                continue
            rcode = reply.rcode
            up.requests[RCODE_NAMES.get(rcode, str(rcode))] += 1
            if rcode == c.SERVFAIL or rcode == c.REFUSED:
                attempts.append(f"{up.label}: {RCODE_NAMES[rcode]}")
                if rcode == c.SERVFAIL:
                    servfail = reply
                else:
                    up.failed(clock())
                continue
            up.succeeded(clock() - started)
            return reply
        if servfail is not None:
            return servfail
        raise UpstreamError(attempts)
