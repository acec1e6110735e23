"""Every count sinkdns keeps, copied into one plain dict, and the sum of several such dicts.

The hot path counts in plain ints and lists (see resolvers/instrument.py); a snapshot copies them at
scrape time so the collector renders from data nobody changes underneath it. Snapshots are plain JSON
(lists, dicts, str, int, float) because with `--workers N` each worker sends its own to the process
that serves /metrics, which merges them.

Labelled families are lists of `[labels, value]` pairs; a histogram's value is
`{"buckets": [count per bucket, +Inf last], "sum": seconds}` (counts per bucket, not cumulative).
"""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence

from sinkdns.model import Outcome
from sinkdns.resolvers.instrument import BUCKETS

if TYPE_CHECKING:
    from sinkdns.app import App

Snapshot = dict[str, Any]


class PolicyFacts(Protocol):
    """What the policy engine tells the metrics; metrics.policy_facts.HolderFacts reads it from a PolicyHolder."""

    rule_counts: Mapping[tuple[str, str], int]  # (customer, zone) -> rules in force
    reloads: Mapping[str, int]  # "success" / "partial" / "failure" -> reloads so far
    last_reload: float  # epoch seconds of the last reload without any error; 0 before any
    file_errors: Mapping[str, int]  # zone -> problems in its last reading, 0 when clean
    degraded: Sequence[str]  # for /healthz, not the snapshot: e.g. "acme.rpz kept at its last good version"


class BlockPageCounts(Protocol):
    """What the block-page server counts (blockpage.server.BlockPageStats): pages served by
    (customer id or "none", "http" or "https")."""

    views: Mapping[tuple[str, str], int]


class RateLimitCounts(Protocol):
    """Answers the rate limit refused (resolvers.ratelimit.RateLimiter): sent as TC=1 slips, or dropped."""

    slipped: int
    dropped: int


class RebindCounts(Protocol):
    """Upstream answers replaced by NODATA because they pointed a public name into the LAN."""

    rejected: int


class QueryLogCounts(Protocol):
    """Lines the query log wrote, dropped because its queue was full, or failed to write."""

    written: int
    dropped: int
    failed: int


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {"buckets": [x + y for x, y in zip(a["buckets"], b["buckets"])], "sum": a["sum"] + b["sum"]}
    return a + b


# How the workers' values of each family combine. Counters and caches add up; an upstream is reported
# healthy only when every worker finds it so; every worker loads the same policy files, so policy facts
# are the same everywhere and adding them would multiply them by the number of workers.
FAMILIES: dict[str, Callable[[Any, Any], Any]] = {
    "queries": _add,
    "blocked": _add,
    "rule_hits": _add,
    "request_duration": _add,
    "upstream_requests": _add,
    "upstream_ignored": _add,
    "upstream_duration": _add,
    "upstream_healthy": min,
    "block_page": _add,
    "query_log": _add,
    "ratelimit_answers": _add,
    "policy_rules": max,
    "policy_reloads": max,
    "policy_file_errors": max,
}
SCALARS: dict[str, Callable[[Any, Any], Any]] = {
    "dropped_packets": operator.add,
    "upstream_unmatched": operator.add,
    "cache_hits": operator.add,
    "cache_misses": operator.add,
    "cache_entries": operator.add,
    "cache_evictions": operator.add,
    "policy_last_reload": max,
    "upstream_shed": operator.add,
    "rebind_rejected": operator.add,
    "tcp_rejected": operator.add,
    "tcp_connections": operator.add,
}


def _rows(counts: Mapping[tuple, Any]) -> list[list]:
    return [[list(labels), value] for labels, value in counts.items()]


def _merge_rows(tables: Iterable[list[list]], combine: Callable[[Any, Any], Any]) -> list[list]:
    merged: dict[tuple, Any] = {}
    for rows in tables:
        for labels, value in rows:
            key = tuple(labels)
            merged[key] = combine(merged[key], value) if key in merged else value
    return _rows(merged)


def _histogram(buckets: list[int], total: float) -> dict[str, Any]:
    return {"buckets": list(buckets), "sum": total}


def take_snapshot(app: App) -> Snapshot:
    """Copy every count of one process. Runs on the event loop, so nothing changes while it copies.

    Optional parts are read from `app.policy_facts` (PolicyFacts), `app.block_page_counts`
    (BlockPageCounts), `app.querylog` (QueryLogCounts), `app.limiter` (RateLimitCounts) and
    `app.forward.rebind` (RebindCounts); absent or None (switched off), their families are left out.
    """
    stats = app.stats
    now = app.clock()
    upstreams = app.all_upstreams  # the default ones and every conditional domain's; one server is one series
    snapshot: Snapshot = {
        "buckets": list(BUCKETS),
        "queries": _rows(stats.queries),
        "blocked": _rows(stats.blocked),
        "rule_hits": _rows(stats.rules),
        "request_duration": [
            [[result], _histogram(counts, stats.latency_sum.get(result, 0.0))]
            for result, counts in stats.latency.items()
        ],
        "upstream_requests": _merge_rows(
            ([[[u.label, rcode], n] for rcode, n in u.requests.items()] for u in upstreams), _add
        ),
        "upstream_ignored": _merge_rows(([[[u.label], u.ignored]] for u in upstreams), _add),
        "upstream_duration": _merge_rows(
            ([[[u.label], _histogram(u.latency_buckets, u.latency_sum)]] for u in upstreams), _add
        ),
        "upstream_healthy": _merge_rows(([[[u.label], int(u.healthy(now))]] for u in upstreams), min),
        "upstream_unmatched": app.pool.unmatched,
        "dropped_packets": sum(n for (_, _, result), n in stats.queries.items() if result == Outcome.DROPPED),
        "cache_hits": app.cache.stats.hits,
        "cache_misses": app.cache.stats.misses,
        "cache_entries": len(app.cache),
        "cache_evictions": app.cache.stats.evictions,
        "upstream_shed": app.forward.shed,
        "tcp_rejected": app.tcp_limits.rejected,
        "tcp_connections": app.tcp_limits.open,
    }
    policy: PolicyFacts | None = getattr(app, "policy_facts", None)
    if policy is not None:
        snapshot["policy_rules"] = _rows(policy.rule_counts)
        snapshot["policy_reloads"] = [[[result], n] for result, n in policy.reloads.items()]
        snapshot["policy_last_reload"] = policy.last_reload
        snapshot["policy_file_errors"] = [[[zone], n] for zone, n in policy.file_errors.items()]
    block_page: BlockPageCounts | None = getattr(app, "block_page_counts", None)
    if block_page is not None:
        snapshot["block_page"] = _rows(block_page.views)
    querylog: QueryLogCounts | None = getattr(app, "querylog", None)
    if querylog is not None:
        snapshot["query_log"] = [
            [["written"], querylog.written], [["dropped"], querylog.dropped], [["failed"], querylog.failed]
        ]
    limiter: RateLimitCounts | None = getattr(app, "limiter", None)
    if limiter is not None:
        snapshot["ratelimit_answers"] = [[["slipped"], limiter.slipped], [["dropped"], limiter.dropped]]
    rebind: RebindCounts | None = getattr(app.forward, "rebind", None)
    if rebind is not None:
        snapshot["rebind_rejected"] = rebind.rejected
    return snapshot


def merge(snapshots: list[Snapshot]) -> Snapshot:
    """The snapshot of all workers together: each family combined as FAMILIES and SCALARS say.

    A family or scalar that no worker reports stays absent, so a part that is not wired is not
    reported as zero.
    """
    merged: Snapshot = {"buckets": snapshots[0]["buckets"] if snapshots else list(BUCKETS)}
    for name, combine in FAMILIES.items():
        tables = [s[name] for s in snapshots if name in s]
        if tables:
            merged[name] = _merge_rows(tables, combine)
    for name, combine in SCALARS.items():
        values = [s[name] for s in snapshots if name in s]
        if values:
            merged[name] = functools.reduce(combine, values)
    return merged


def by_worker(snapshots: Mapping[int, Snapshot]) -> Snapshot:
    """The workers' snapshots merged, plus each worker's own query count: how evenly the kernel spreads
    queries over the workers' SO_REUSEPORT sockets (one busy client address lands on one worker)."""
    merged = merge(list(snapshots.values()))
    merged["worker_queries"] = [
        [[str(index)], sum(count for _, count in snapshot.get("queries", ()))] for index, snapshot in snapshots.items()
    ]
    return merged
