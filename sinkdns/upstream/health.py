"""One upstream server and what sinkdns remembers about it: failures with back-off, and its counts."""

from __future__ import annotations

import bisect
from collections import defaultdict

from sinkdns.config import Endpoint, format_endpoint
from sinkdns.resolvers.instrument import BUCKETS

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
BACKOFF_DOUBLINGS = 5  # 1 s doubled five times is past BACKOFF_MAX already


class Upstream:
    """After a failure the server is put behind the healthy ones for a back-off that doubles per failure,
    so one dead server is not waited on by every query; a success clears it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.host, self.port = endpoint
        self.address = (self.host, self.port)  # as sendto takes it
        self.family_v6 = ":" in self.host
        self.label = format_endpoint(endpoint)
        self.failures = 0
        self.down_until = 0.0
        self.requests: defaultdict[str, int] = defaultdict(int)  # by rcode name or "timeout"
        self.ignored = 0
        self.latency_sum = 0.0
        self.latency_buckets = [0] * (len(BUCKETS) + 1)  # the same buckets as client latency, +Inf last

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def failed(self, now: float) -> None:
        self.failures += 1
        # The exponent is capped: a server down for hours fails thousands of times in a row, and 2.0 ** 1024
        # does not fit in a float.
        self.down_until = now + min(BACKOFF_FIRST * 2.0 ** min(self.failures - 1, BACKOFF_DOUBLINGS), BACKOFF_MAX)

    def succeeded(self, seconds: float) -> None:
        self.failures = 0
        self.down_until = 0.0
        self.latency_sum += seconds
        self.latency_buckets[bisect.bisect_left(BUCKETS, seconds)] += 1

    def __repr__(self) -> str:
        return f"Upstream({self.label})"


def in_order(upstreams: list[Upstream], now: float) -> list[Upstream]:
    """Healthy servers first, each group in the order the operator listed them."""
    for upstream in upstreams:
        if now < upstream.down_until:
            return sorted(upstreams, key=lambda u: not u.healthy(now))
    return upstreams
