"""Answers sent over UDP, kept by the bytes of the query that asked (PowerDNS's packet cache).

Most of what sinkdns answers is a repeated question whose answer is already known: a blocked name or a
cache hit. Re-running the chain for it costs several times more than the kernel's send; looking up the
query's bytes (everything after the ID) costs a dict look-up. An entry is exact for the query bytes,
the client address, the policy generation it was made under, and one second at most (TTLs count down in
whole seconds), so what leaves is byte for byte what the chain would have sent. Every hit is counted
exactly as the chain would count it.
"""

from __future__ import annotations

import time
from typing import Callable

from sinkdns.model import Outcome, Request, Response
from sinkdns.policy.index import PolicyIndex
from sinkdns.resolvers.cache import CacheStats
from sinkdns.resolvers.instrument import QueryStats, Tally
from sinkdns.wire.reply import Reply

KEPT = frozenset((Outcome.BLOCKED, Outcome.CACHED, Outcome.LOCAL))
LOCAL_SECONDS = 60.0  # answers for localhost and the never-forwarded zones do not change


class _Entry:
    __slots__ = ("body", "expires", "generation", "tally", "cache_hit")

    def __init__(self, body: bytes, expires: float, generation: int, tally: Tally, cache_hit: bool) -> None:
        self.body = body  # the answer without its 2-byte ID
        self.expires = expires
        # The generation of the policy index in force when the answer was made: a number, not the index,
        # so an idle entry never keeps a replaced index (hundreds of MB at a million rules) alive.
        self.generation = generation
        self.tally = tally  # what each repeat adds to the query counts
        self.cache_hit = cache_hit


class PacketCache:
    def __init__(
        self,
        size: int,
        policy: Callable[[], PolicyIndex],
        stats: QueryStats,
        cache_stats: CacheStats,
        unlimited: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.size = size
        self.policy = policy
        self.stats = stats
        self.cache_stats = cache_stats
        self.unlimited = unlimited  # only clients the rate limit exempts are answered here: the rest meet the guard
        self.clock = clock
        self.wall = wall
        self.entries: dict[tuple[bytes, str], _Entry] = {}

    def answer(self, data: bytes, host: str) -> bytes | None:
        """The answer to send for `data` from `host` without its ID, counted; None when not known."""
        key = (data[2:], host)
        entry = self.entries.get(key)
        if entry is None or not self.unlimited(host):
            return None
        now = self.clock()
        if now >= entry.expires or entry.generation != self.policy().generation:
            del self.entries[key]
            return None
        entry.tally()
        if entry.cache_hit:
            self.cache_stats.hits += 1
        return entry.body

    def store(self, req: Request, res: Response, wire: bytes) -> None:
        """Keep an answer the chain just sent, when it would be sent again unchanged for a while."""
        if res.outcome not in KEPT or req.problem:
            return
        now = self.clock()
        reply = res.entry
        decision = res.decision
        if isinstance(reply, Reply):
            # Rendered TTLs hold until the next whole second since the answer was stored.
            expires = reply.stored + int(now - reply.stored) + 1
        elif decision is not None:
            # A synthesized answer holds as long as its own TTL lets others keep it, and never past
            # the moment its rule lapses.
            expires = now + decision.ttl
            if decision.until is not None:
                expires = min(expires, now + decision.until - self.wall())
        else:
            expires = now + LOCAL_SECONDS
        entries = self.entries
        if len(entries) >= self.size:
            entries.clear()  # every entry lives a second at most: starting afresh costs little
        tally = self.stats.tally("udp", req.qtype, res.outcome, decision)
        entries[(req.wire[2:], req.client[0])] = _Entry(
            wire[2:], expires, self.policy().generation, tally, res.outcome == Outcome.CACHED,
        )
