"""The only per-query metrics code: counts every outcome and times it, in plain integers.

prometheus-client's per-call locking would cost a tenth of a blocked answer's budget, so counts live
here as dicts and lists and are handed to Prometheus by a collector at scrape time.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

from sinkdns.model import Decision, Handler, Outcome, Request, Response, Result
from sinkdns.resolvers.base import Stage, then
from sinkdns.wire import constants as c

QTYPE_LABELS = {
    c.TYPE_A: "A", c.TYPE_AAAA: "AAAA", c.TYPE_CNAME: "CNAME", c.TYPE_MX: "MX", c.TYPE_TXT: "TXT",
    c.TYPE_NS: "NS", c.TYPE_SOA: "SOA", c.TYPE_PTR: "PTR", c.TYPE_SRV: "SRV", c.TYPE_HTTPS: "HTTPS",
    c.TYPE_SVCB: "SVCB", c.TYPE_ANY: "ANY",
}

# Latency buckets from 50 µs to 5 s (upper bounds, seconds).
BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)


# Rules beyond the series cap are counted under this name, per customer.
OTHER_RULE = "other"
ALLOW = "allow"


class QueryStats:
    """Counts by (transport, qtype label, result), and a latency histogram by result.

    Policy matches count by (customer, zone, action) and by (customer, rule); rule names come from the
    operator's files, never from the query, and at most `rule_series` of them get a series of their own
    so a million-line list cannot blow up the scrape.
    """

    def __init__(self, rule_series: int = 10_000) -> None:
        self.queries: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.blocked: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.rules: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.rule_series = rule_series
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: defaultdict[str, float] = defaultdict(float)

    def record(self, transport: str, qtype: int, outcome: str, seconds: float) -> None:
        self.queries[(transport, QTYPE_LABELS.get(qtype, "other"), outcome)] += 1
        self._latency(outcome)[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[outcome] += seconds

    def _latency(self, outcome: str) -> list[int]:
        counts = self.latency.get(outcome)
        if counts is None:
            counts = self.latency[outcome] = [0] * (len(BUCKETS) + 1)
        return counts

    def dropped(self, transport: str) -> None:
        """A packet that was no query (too short, or a response): no question, no latency, no answer."""
        self.queries[(transport, "other", Outcome.DROPPED)] += 1

    def decided(self, decision: Decision) -> None:
        """A policy match: allows count as rule hits only, everything else (dry-run included) as blocked too."""
        blocked_key, rule_key = self._decision_keys(decision)
        if blocked_key is not None:
            self.blocked[blocked_key] += 1
        self.rules[rule_key] += 1

    def _decision_keys(self, decision: Decision) -> tuple[tuple[str, str, str] | None, tuple[str, str]]:
        customer = decision.customer
        blocked_key = (customer, decision.zone, decision.action) if decision.action != ALLOW else None
        rule_key = (customer, decision.rule)
        if rule_key not in self.rules and len(self.rules) >= self.rule_series:
            rule_key = (customer, OTHER_RULE)
        return blocked_key, rule_key

    def tally(self, transport: str, qtype: int, outcome: str, decision: Decision | None) -> Tally:
        """The counts one answer adds, worked out once, for an answer the packet cache will repeat."""
        blocked_key, rule_key = self._decision_keys(decision) if decision is not None else (None, None)
        return Tally(self, (transport, QTYPE_LABELS.get(qtype, "other"), outcome), self._latency(outcome),
                     blocked_key, rule_key)


class Tally:
    """Counts a repeated answer exactly as `record` and `decided` counted the first, for a few increments.

    Its latency is the first bucket: an answer found by the bytes of the query leaves within microseconds.
    """

    __slots__ = ("stats", "query_key", "latency", "blocked_key", "rule_key")

    def __init__(self, stats: QueryStats, query_key: tuple[str, str, str], latency: list[int],
                 blocked_key: tuple[str, str, str] | None, rule_key: tuple[str, str] | None) -> None:
        self.stats = stats
        self.query_key = query_key
        self.latency = latency
        self.blocked_key = blocked_key
        self.rule_key = rule_key

    def __call__(self) -> None:
        stats = self.stats
        stats.queries[self.query_key] += 1
        self.latency[0] += 1
        if self.rule_key is not None:
            if self.blocked_key is not None:
                stats.blocked[self.blocked_key] += 1
            stats.rules[self.rule_key] += 1


class InstrumentStage(Stage):
    """First in the chain, so it sees every answer, whoever wrote it."""

    name = "instrument"

    def __init__(self, next: Handler, stats: QueryStats, clock=time.monotonic, querylog=None) -> None:
        super().__init__(next)
        self.stats = stats
        self.clock = clock
        self.querylog = querylog  # a QueryLog, or None when the log is off

    def __call__(self, req: Request) -> Result:
        return then(self.next(req), lambda res: self._record(req, res))

    def _record(self, req: Request, res: Response) -> Response:
        self.stats.record(req.transport, req.qtype, res.outcome, self.clock() - req.received)
        decision = res.decision
        if decision is not None:
            self.stats.decided(decision)
        if self.querylog is not None:
            entry = res.entry
            self.querylog.log(req, res, entry.upstream if entry is not None and res.outcome != Outcome.CACHED else "")
        return res
