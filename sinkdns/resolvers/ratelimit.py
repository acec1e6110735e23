"""Per-client rate limiting of UDP answers: a token bucket per IPv4 /32 and IPv6 /64.

UDP sources can be forged, so a flood "from" a victim turns an open resolver into an amplifier. Over
the limit every second answer is an empty TC=1 "slip" and the rest are dropped: a real client that was
unlucky retries over TCP (which cannot be forged and is not limited here), a victim receives at most
half as many small packets. Knot Resolver's `slip 2` is the model.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

from sinkdns.addresses import LOOPBACK, Memo, in_any, networks, parse_address
from sinkdns.config import RateLimitConfig

ADMIT = 0
SLIP = 1
DROP = 2


class RateLimiter:
    """`qps` tokens a second, at most `burst` saved up, per client prefix; at most `max_clients`
    buckets, the least recently used forgotten first (a forgotten bucket comes back full, which only
    forgives a client that was quiet the longest)."""

    def __init__(
        self, qps: float = 100.0, burst: int = 200, exempt_loopback: bool = True, max_clients: int = 65_536
    ) -> None:
        self.qps = qps
        self.burst = float(burst)
        self.exempt = networks(LOOPBACK) if exempt_loopback else ()
        self.max_clients = max_clients
        # prefix -> [tokens, last refill (monotonic s), answers refused so far]
        self.buckets: OrderedDict[str, list] = OrderedDict()
        self.prefix: Memo[str, str | None] = Memo(self._prefix, max_clients)
        self.slipped = 0
        self.dropped = 0

    def _prefix(self, host: str) -> str | None:
        """The bucket a client address shares (None: exempt). Unreadable addresses share one bucket."""
        addr = parse_address(host)
        if addr is None:
            return "?"
        if in_any(addr, self.exempt):
            return None
        if addr.version == 4:
            return str(addr)
        return str(ipaddress.IPv6Network((addr, 64), strict=False).network_address)

    def check(self, host: str, now: float) -> int:
        """ADMIT, SLIP or DROP for one answer to `host` at monotonic time `now`."""
        key = self.prefix(host)
        if key is None:
            return ADMIT
        buckets = self.buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_clients:
                buckets.popitem(last=False)
            buckets[key] = [self.burst - 1.0, now, 0]
            return ADMIT
        buckets.move_to_end(key)
        tokens = bucket[0] + (now - bucket[1]) * self.qps
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return ADMIT
        bucket[0] = tokens
        bucket[2] += 1
        if bucket[2] & 1:
            self.slipped += 1
            return SLIP
        self.dropped += 1
        return DROP


def limiter_for(config: RateLimitConfig) -> RateLimiter | None:
    """The rate limiter `[ratelimit]` asks for; None when it is off (qps = 0)."""
    if not config.qps:
        return None
    return RateLimiter(config.qps, config.burst, config.exempt_loopback, config.max_clients)
