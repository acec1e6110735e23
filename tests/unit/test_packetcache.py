"""The packet cache answers repeated UDP questions byte for byte as the chain would, and counts them."""

from __future__ import annotations

from sinkdns.model import Decision, Outcome, Response
from sinkdns.policy.index import PolicyIndex
from sinkdns.resolvers.cache import CacheStats
from sinkdns.resolvers.instrument import QueryStats
from sinkdns.transport.packetcache import PacketCache
from sinkdns.wire import build
from sinkdns.wire.reply import Reply
from tests.unit.test_reply import upstream_answer
from tests.unit.util import request


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Policy:
    def __init__(self) -> None:
        self.index = PolicyIndex.empty(1)

    def __call__(self) -> PolicyIndex:
        return self.index


DECISION = Decision("blockpage", "acme", "acme.toml", "acme.example", "acme.toml:1", ttl=60)


def make(size: int = 10):
    clock, wall, policy = Clock(), Clock(2_000_000_000.0), Policy()
    stats, cache_stats = QueryStats(), CacheStats()
    return PacketCache(size, policy, stats, cache_stats, lambda host: host != "192.0.2.9", clock, wall), clock, wall, policy, stats, cache_stats


def blocked(req, decision=DECISION):
    return Response(build.answer(req), Outcome.BLOCKED, decision=decision)


def test_hit_returns_the_answer_without_its_id_and_counts_like_the_chain():
    packets, _, _, _, stats, _ = make()
    req = request("www.acme.example")
    res = blocked(req)
    assert packets.answer(req.wire, "127.0.0.1") is None
    packets.store(req, res, res.wire)
    again = request("www.acme.example")  # same bytes but for a new ID
    body = packets.answer(again.wire[:2] + req.wire[2:], "127.0.0.1")
    assert body == res.wire[2:]
    assert stats.queries == {("udp", "A", "blocked"): 1}
    assert stats.blocked == {("acme", "acme.toml", "blockpage"): 1}
    assert stats.rules == {("acme", "acme.example"): 1}


def test_key_is_exact_bytes_and_client():
    packets, *_ = make()
    req = request("www.acme.example")
    packets.store(req, blocked(req), blocked(req).wire)
    assert packets.answer(req.wire, "127.0.0.2") is None
    upper = request("WWW.acme.example")
    assert packets.answer(upper.wire, "127.0.0.1") is None


def test_block_answers_last_their_ttl_and_never_past_until():
    packets, clock, wall, *_ = make()
    req = request("www.acme.example")
    packets.store(req, blocked(req), blocked(req).wire)
    clock.now += 59.9
    assert packets.answer(req.wire, "127.0.0.1") is not None
    clock.now += 0.1
    assert packets.answer(req.wire, "127.0.0.1") is None
    lapsing = Decision("blockpage", "acme", "acme.toml", "acme.example", "acme.toml:1", ttl=60, until=wall.now + 5)
    packets.store(req, blocked(req, lapsing), blocked(req, lapsing).wire)
    clock.now += 5
    assert packets.answer(req.wire, "127.0.0.1") is None


def test_a_policy_change_drops_every_entry():
    packets, _, _, policy, *_ = make()
    req = request("www.acme.example")
    packets.store(req, blocked(req), blocked(req).wire)
    policy.index = PolicyIndex.empty(2)
    assert packets.answer(req.wire, "127.0.0.1") is None


def test_cached_answers_hold_until_the_next_whole_second_and_count_as_cache_hits():
    packets, clock, _, _, stats, cache_stats = make()
    req = request("www.example.com")
    reply = Reply.from_wire(upstream_answer(req, "www.example.com. 300 IN A 192.0.2.1"), 12 + len(req.question), clock.now - 0.5)
    res = Response(reply.render(req, clock.now), Outcome.CACHED, entry=reply)
    packets.store(req, res, res.wire)
    assert packets.answer(req.wire, "127.0.0.1") == res.wire[2:]
    assert cache_stats.hits == 1 and stats.queries == {("udp", "A", "cached"): 1}
    clock.now += 0.5  # one second since the reply was stored: its TTLs have moved on
    assert packets.answer(req.wire, "127.0.0.1") is None


def test_forwarded_answers_and_problems_are_not_kept():
    packets, *_ = make()
    req = request("www.example.com")
    packets.store(req, Response(build.answer(req), Outcome.FORWARDED), build.answer(req))
    assert packets.entries == {}


def test_bounded():
    packets, *_ = make(size=3)
    for n in range(10):
        req = request(f"n{n}.acme.example")
        packets.store(req, blocked(req), blocked(req).wire)
        assert len(packets.entries) <= 3


def test_rate_limited_clients_always_meet_the_chain():
    packets, *_ = make()
    req = request("www.acme.example")
    req.client = ("192.0.2.9", 5353)
    packets.store(req, blocked(req), blocked(req).wire)
    assert packets.answer(req.wire, "192.0.2.9") is None
