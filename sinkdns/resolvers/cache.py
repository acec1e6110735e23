"""Answers repeated questions from memory: upstream answers kept as bytes, TTLs counted down on the way out.

Positive answers live for their smallest TTL, negative ones for min(SOA TTL, SOA MINIMUM) (RFC 2308 5),
SERVFAIL for a few seconds; the least recently used entry goes first when the cache is full.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from sinkdns.model import Handler, Outcome, Request, Response, Result
from sinkdns.resolvers.base import Stage, then
from sinkdns.wire import constants as c
from sinkdns.wire.reply import Reply


class CacheStats:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.evictions = 0


class CacheStage(Stage):
    name = "cache"

    def __init__(self, next: Handler, size: int, servfail_ttl: int, clock=time.monotonic) -> None:
        super().__init__(next)
        self.size = size
        self.servfail_ttl = servfail_ttl
        self.clock = clock
        self.entries: OrderedDict[bytes, tuple[Reply, float]] = OrderedDict()
        self.stats = CacheStats()

    def __call__(self, req: Request) -> Result:
        key = req.key
        found = self.entries.get(key)
        if found is not None:
            reply, expires = found
            now = self.clock()
            if now < expires:
                self.entries.move_to_end(key)
                self.stats.hits += 1
                outcome = Outcome.SERVFAIL if reply.rcode == c.SERVFAIL else Outcome.CACHED
                return Response(reply.render(req, now), outcome, reply.rcode, entry=reply)
            del self.entries[key]
        self.stats.misses += 1
        return then(self.next(req), lambda res: self._store(key, res))

    def _store(self, key: bytes, res: Response) -> Response:
        reply = res.entry
        if not isinstance(reply, Reply) or self.size == 0:
            return res
        ttl = self.servfail_ttl if reply.rcode == c.SERVFAIL else reply.ttl
        if ttl:
            entries = self.entries
            if key in entries:  # a new key lands at the end already
                entries.move_to_end(key)
            entries[key] = (reply, reply.stored + ttl)
            if len(entries) > self.size:
                entries.popitem(last=False)
                self.stats.evictions += 1
        return res

    def __len__(self) -> int:
        return len(self.entries)
