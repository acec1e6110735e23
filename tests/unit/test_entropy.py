from collections import Counter

from sinkdns.upstream.entropy import Entropy


def test_u16_covers_the_range_without_obvious_bias():
    e = Entropy()
    values = [e.u16() for _ in range(200_000)]
    assert min(values) >= 0 and max(values) <= 0xFFFF
    assert len(set(values)) > 60_000  # 200k draws from 65536 values leave few unseen
    high = Counter(v >> 12 for v in values)
    assert all(10_000 < n < 15_000 for n in high.values())  # 16 buckets of about 12,500


def test_below_is_in_range_and_uses_every_value():
    e = Entropy()
    draws = Counter(e.below(256) for _ in range(100_000))
    assert set(draws) == set(range(256))
    assert all(250 < n < 550 for n in draws.values())
