"""Token buckets per /32 and /64: burst, refill, slip-then-drop, loopback exemption, bounded table."""

from __future__ import annotations

from sinkdns.resolvers.ratelimit import ADMIT, DROP, SLIP, RateLimiter


def verdicts(limiter: RateLimiter, host: str, count: int, now: float = 0.0) -> list[int]:
    return [limiter.check(host, now) for _ in range(count)]


def test_burst_then_every_second_answer_slips_and_the_rest_drop():
    limiter = RateLimiter(qps=10, burst=5)
    assert verdicts(limiter, "192.0.2.1", 5) == [ADMIT] * 5
    assert verdicts(limiter, "192.0.2.1", 6) == [SLIP, DROP] * 3
    assert (limiter.slipped, limiter.dropped) == (3, 3)


def test_tokens_come_back_at_the_configured_rate_up_to_the_burst():
    limiter = RateLimiter(qps=10, burst=5)
    verdicts(limiter, "192.0.2.1", 5)
    assert limiter.check("192.0.2.1", 0.0) == SLIP
    assert verdicts(limiter, "192.0.2.1", 2, now=0.25) == [ADMIT, ADMIT]  # 2.5 tokens after 250 ms
    assert limiter.check("192.0.2.1", 0.25) == DROP
    assert verdicts(limiter, "192.0.2.1", 6, now=100.0) == [ADMIT] * 5 + [SLIP]  # never more than the burst


def test_ipv4_clients_are_limited_per_address_and_ipv6_per_64():
    limiter = RateLimiter(qps=1, burst=1)
    assert limiter.check("192.0.2.1", 0) == ADMIT and limiter.check("192.0.2.2", 0) == ADMIT
    assert limiter.check("2001:db8:1:2::1", 0) == ADMIT
    assert limiter.check("2001:db8:1:2:ffff::9", 0) == SLIP  # same /64
    assert limiter.check("2001:db8:1:3::1", 0) == ADMIT
    assert limiter.check("::ffff:192.0.2.1", 0) == SLIP  # the IPv4 client seen through a dual-stack socket


def test_loopback_is_exempt_unless_configured_otherwise():
    assert verdicts(RateLimiter(qps=1, burst=1), "127.0.0.1", 50) == [ADMIT] * 50
    assert verdicts(RateLimiter(qps=1, burst=1), "::1", 50) == [ADMIT] * 50
    assert verdicts(RateLimiter(qps=1, burst=1, exempt_loopback=False), "127.0.0.1", 3) == [ADMIT, SLIP, DROP]


def test_the_table_is_bounded_and_forgets_the_least_recently_seen_client():
    limiter = RateLimiter(qps=1, burst=1, max_clients=3)
    for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        limiter.check(host, 0)
    limiter.check("192.0.2.1", 0)  # seen again: now the most recent
    limiter.check("192.0.2.4", 0)
    assert set(limiter.buckets) == {"192.0.2.1", "192.0.2.3", "192.0.2.4"}
    for n in range(10_000):
        limiter.check(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 0)
    assert len(limiter.buckets) == 3 and len(limiter.prefix.table) <= 3
