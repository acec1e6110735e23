from __future__ import annotations

import dnslib

from sinkdns.model import Outcome, Response
from sinkdns.resolvers.cache import CacheStage
from sinkdns.wire import constants as c
from sinkdns.wire.reply import Reply
from tests.unit.test_reply import upstream_answer
from tests.unit.util import decode, request


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """The stage after the cache: answers from a table and counts what it was asked."""

    def __init__(self, clock: Clock, lines: dict[str, tuple], rcode: int = 0) -> None:
        self.clock = clock
        self.lines = lines
        self.rcode = rcode
        self.asked = 0

    def __call__(self, req):
        self.asked += 1
        data = upstream_answer(req, *self.lines.get(req.qname, ()), rcode=self.rcode)
        reply = Reply.from_wire(data, 12 + len(req.question), self.clock())
        return Response(reply.render(req, self.clock()), Outcome.FORWARDED, reply.rcode, entry=reply)


def make(lines=None, rcode=0, size=100, servfail_ttl=5):
    clock = Clock()
    upstream = Upstream(clock, lines or {"a.example": ("a.example. 60 IN A 192.0.2.1",)}, rcode)
    return CacheStage(upstream, size, servfail_ttl, clock), upstream, clock


def test_hit_within_ttl_and_miss_after():
    cache, upstream, clock = make()
    assert cache(request("a.example")).outcome == Outcome.FORWARDED
    clock.now += 59
    hit = cache(request("A.EXAMPLE"))
    assert hit.outcome == Outcome.CACHED and upstream.asked == 1
    msg, _ = decode(hit.wire)
    assert msg.answer[0].ttl == 1 and msg.question[0].name.to_text() == "A.EXAMPLE."
    clock.now += 1
    assert cache(request("a.example")).outcome == Outcome.FORWARDED and upstream.asked == 2
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)


def test_key_includes_type_and_do_bit():
    cache, upstream, _ = make()
    cache(request("a.example", "A"))
    cache(request("a.example", "AAAA"))
    cache(request("a.example", "A", use_edns=0, want_dnssec=True))
    assert upstream.asked == 3


def test_servfail_cached_briefly():
    cache, upstream, clock = make(rcode=c.SERVFAIL, servfail_ttl=5)
    cache(request("a.example"))
    clock.now += 4
    assert cache(request("a.example")).outcome == Outcome.SERVFAIL and upstream.asked == 1
    clock.now += 1
    cache(request("a.example"))
    assert upstream.asked == 2


def test_lru_eviction():
    lines = {f"{n}.example": (f"{n}.example. 300 IN A 192.0.2.1",) for n in "abc"}
    cache, upstream, _ = make(lines, size=2)
    cache(request("a.example"))
    cache(request("b.example"))
    cache(request("a.example"))  # a is now the most recently used
    cache(request("c.example"))  # evicts b
    assert len(cache) == 2 and cache.stats.evictions == 1
    asked = upstream.asked
    cache(request("a.example"))
    assert upstream.asked == asked
    cache(request("b.example"))
    assert upstream.asked == asked + 1


def test_uncacheable_answers_pass_through():
    cache, upstream, _ = make(lines={}, rcode=c.NXDOMAIN)  # NXDOMAIN without SOA: not cached
    cache(request("a.example"))
    cache(request("a.example"))
    assert upstream.asked == 2 and len(cache) == 0
    assert dnslib.DNSRecord.parse(cache(request("a.example")).wire).header.rcode == c.NXDOMAIN
