"""take_snapshot copies every count of one process; merge sums the workers' snapshots."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from sinkdns.app import App
from sinkdns.config import Config, UpstreamConfig
from sinkdns.metrics.snapshot import by_worker, merge, take_snapshot
from sinkdns.model import Decision
from sinkdns.resolvers.instrument import BUCKETS, QueryStats
from sinkdns.resolvers.ratelimit import DROP, SLIP, RateLimiter
from sinkdns.resolvers.rebind import RebindFilter


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Policy:
    rule_counts: dict = field(default_factory=lambda: {("acme", "acme.rpz"): 3, ("globex", "globex.hosts"): 2})
    reloads: dict = field(default_factory=lambda: {"success": 2, "partial": 1})
    last_reload: float = 1_700_000_000.0
    file_errors: dict = field(default_factory=lambda: {"acme.rpz": 0, "globex.hosts": 1})
    degraded: list = field(default_factory=list)


@dataclass
class BlockPage:
    views: dict = field(default_factory=lambda: {("acme", "http"): 4, ("none", "https"): 1})


@dataclass
class QueryLogCounts:
    written: int = 7
    dropped: int = 2
    failed: int = 0


def make_app() -> App:
    upstream = UpstreamConfig(
        servers=(("192.0.2.1", 53), ("192.0.2.2", 53)),
        conditional=(("corp.example", (("10.0.0.53", 53), ("192.0.2.1", 53))),),
    )
    return App(replace(Config(), upstream=upstream), clock=Clock())


def decision(customer: str = "acme", rule: str = "*.acme.example", action: str = "blockpage") -> Decision:
    return Decision(action, customer, f"{customer}.rpz", rule, f"{customer}.rpz:3")


def rows(snapshot: dict, name: str) -> dict:
    return {tuple(labels): value for labels, value in snapshot[name]}


def test_counts_of_the_chain_and_caches():
    app = make_app()
    app.stats.record("udp", 1, "blocked", 0.00004)
    app.stats.record("udp", 1, "blocked", 0.0003)
    app.stats.record("tcp", 65534, "forwarded", 7.0)
    app.stats.decided(decision())
    app.cache.stats.hits, app.cache.stats.misses, app.cache.stats.evictions = 5, 6, 1
    for transport in ("udp", "udp", "tcp"):
        app.stats.dropped(transport)
    app.pool.unmatched = 4

    snap = take_snapshot(app)

    assert rows(snap, "queries") == {
        ("udp", "A", "blocked"): 2, ("tcp", "other", "forwarded"): 1,
        ("udp", "other", "dropped"): 2, ("tcp", "other", "dropped"): 1,
    }
    assert rows(snap, "blocked") == {("acme", "acme.rpz", "blockpage"): 1}
    assert rows(snap, "rule_hits") == {("acme", "*.acme.example"): 1}
    durations = rows(snap, "request_duration")
    assert durations[("blocked",)]["buckets"][0] == 1 and durations[("blocked",)]["buckets"][3] == 1
    assert durations[("forwarded",)]["buckets"][-1] == 1 and durations[("forwarded",)]["sum"] == 7.0
    assert snap["buckets"] == list(BUCKETS)
    assert (snap["cache_hits"], snap["cache_misses"], snap["cache_evictions"], snap["cache_entries"]) == (5, 6, 1, 0)
    assert (snap["dropped_packets"], snap["upstream_unmatched"]) == (3, 4)


def test_upstreams_include_conditional_groups_and_one_server_is_one_series():
    app = make_app()
    default_one, default_two = app.upstreams
    corp_one, corp_shared = app.forward.conditional["corp.example"].upstreams
    default_one.requests["NOERROR"] += 2
    corp_shared.requests["NOERROR"] += 1
    corp_one.requests["timeout"] += 1
    default_two.ignored += 3
    default_one.succeeded(0.002)
    corp_shared.succeeded(0.004)
    corp_shared.failed(app.clock())

    snap = take_snapshot(app)

    assert rows(snap, "upstream_requests") == {("192.0.2.1:53", "NOERROR"): 3, ("10.0.0.53:53", "timeout"): 1}
    assert rows(snap, "upstream_ignored") == {("192.0.2.1:53",): 0, ("192.0.2.2:53",): 3, ("10.0.0.53:53",): 0}
    duration = rows(snap, "upstream_duration")[("192.0.2.1:53",)]
    assert sum(duration["buckets"]) == 2 and abs(duration["sum"] - 0.006) < 1e-12
    # backed off in the conditional group: the shared server is reported unhealthy
    assert rows(snap, "upstream_healthy") == {("192.0.2.1:53",): 0, ("192.0.2.2:53",): 1, ("10.0.0.53:53",): 1}


def test_optional_parts_are_absent_until_wired_then_copied():
    app = make_app()
    app.policy_facts = app.block_page_counts = app.querylog = None
    snap = take_snapshot(app)
    assert not {"policy_rules", "policy_reloads", "policy_last_reload", "block_page", "query_log"} & set(snap)

    app.policy_facts, app.block_page_counts, app.querylog = Policy(), BlockPage(), QueryLogCounts()
    snap = take_snapshot(app)
    assert rows(snap, "policy_rules") == {("acme", "acme.rpz"): 3, ("globex", "globex.hosts"): 2}
    assert rows(snap, "policy_reloads") == {("success",): 2, ("partial",): 1}
    assert snap["policy_last_reload"] == 1_700_000_000.0
    assert rows(snap, "policy_file_errors") == {("acme.rpz",): 0, ("globex.hosts",): 1}
    assert rows(snap, "block_page") == {("acme", "http"): 4, ("none", "https"): 1}
    assert rows(snap, "query_log") == {("written",): 7, ("dropped",): 2, ("failed",): 0}


def test_hardening_counts_are_copied():
    app = make_app()
    app.limiter = RateLimiter(qps=1, burst=1, exempt_loopback=False)
    verdicts = [app.limiter.check("192.0.2.9", 5.0) for _ in range(5)]
    assert verdicts[1:] == [SLIP, DROP, SLIP, DROP]
    app.forward.shed = 6
    app.forward.rebind = RebindFilter()
    app.forward.rebind.rejected = 2
    assert app.tcp_limits.admit("192.0.2.1") and app.tcp_limits.admit("192.0.2.2")
    app.tcp_limits.max_connections = 2
    assert not app.tcp_limits.admit("192.0.2.3")

    snap = take_snapshot(app)

    assert rows(snap, "ratelimit_answers") == {("slipped",): 2, ("dropped",): 2}
    assert (snap["upstream_shed"], snap["rebind_rejected"]) == (6, 2)
    assert (snap["tcp_connections"], snap["tcp_rejected"]) == (2, 1)


def test_switched_off_hardening_parts_are_absent_and_bounds_always_there():
    app = make_app()
    app.limiter = None
    snap = take_snapshot(app)
    assert "ratelimit_answers" not in snap and "rebind_rejected" not in snap  # rebinding: off by default
    assert (snap["upstream_shed"], snap["tcp_connections"], snap["tcp_rejected"]) == (0, 0, 0)


def test_snapshot_is_plain_json_and_a_copy():
    app = make_app()
    app.policy_facts, app.block_page_counts, app.querylog = Policy(), BlockPage(), QueryLogCounts()
    app.stats.record("udp", 1, "cached", 0.001)
    snap = take_snapshot(app)
    assert json.loads(json.dumps(snap)) == snap
    app.stats.record("udp", 1, "cached", 0.001)
    assert rows(snap, "queries") == {("udp", "A", "cached"): 1}
    assert sum(rows(snap, "request_duration")[("cached",)]["buckets"]) == 1


def test_allow_counts_as_a_rule_hit_only_and_dry_run_as_blocked():
    stats = QueryStats()
    stats.decided(decision(rule="ok.acme.example", action="allow"))
    stats.decided(decision(rule="acme.example", action="dry-run"))
    assert dict(stats.blocked) == {("acme", "acme.rpz", "dry-run"): 1}
    assert dict(stats.rules) == {("acme", "ok.acme.example"): 1, ("acme", "acme.example"): 1}


def test_rules_past_the_series_cap_fold_into_other():
    stats = QueryStats(rule_series=2)
    for rule in ("a.example", "b.example", "c.example", "a.example", "d.example"):
        stats.decided(decision(rule=rule))
    stats.decided(decision(customer="globex", rule="e.example"))
    assert dict(stats.rules) == {
        ("acme", "a.example"): 2, ("acme", "b.example"): 1, ("acme", "other"): 2, ("globex", "other"): 1,
    }


def worker(queries: int, healthy: int, entries: int, reloads: int, latency_bucket: int) -> dict:
    buckets = [0] * (len(BUCKETS) + 1)
    buckets[latency_bucket] = queries
    return {
        "buckets": list(BUCKETS),
        "queries": [[["udp", "A", "blocked"], queries]],
        "request_duration": [[["blocked"], {"buckets": buckets, "sum": queries * 0.001}]],
        "upstream_healthy": [[["192.0.2.1:53"], healthy]],
        "cache_entries": entries,
        "cache_hits": queries,
        "policy_rules": [[["acme", "acme.rpz"], 3]],
        "policy_reloads": [[["success"], reloads]],
        "policy_last_reload": 100.0 + reloads,
    }


def test_merge_sums_counters_histograms_and_caches():
    merged = merge([worker(2, 1, 10, 1, 0), worker(3, 1, 20, 1, 4)])
    assert rows(merged, "queries") == {("udp", "A", "blocked"): 5}
    histogram = rows(merged, "request_duration")[("blocked",)]
    assert histogram["buckets"][0] == 2 and histogram["buckets"][4] == 3 and abs(histogram["sum"] - 0.005) < 1e-12
    assert merged["cache_entries"] == 30 and merged["cache_hits"] == 5


def test_merge_reports_unhealthy_when_any_worker_does_and_policy_once():
    merged = merge([worker(1, 1, 0, 2, 0), worker(1, 0, 0, 1, 0)])
    assert rows(merged, "upstream_healthy") == {("192.0.2.1:53",): 0}
    assert rows(merged, "policy_rules") == {("acme", "acme.rpz"): 3}
    assert rows(merged, "policy_reloads") == {("success",): 2}
    assert merged["policy_last_reload"] == 102.0


def test_merge_sums_hardening_counts():
    hardening = [
        {"buckets": list(BUCKETS), "ratelimit_answers": [[["slipped"], slipped], [["dropped"], dropped]],
         "upstream_shed": shed, "rebind_rejected": 1, "tcp_rejected": shed * 2, "tcp_connections": open_now}
        for slipped, dropped, shed, open_now in ((3, 2, 1, 4), (5, 4, 2, 7))
    ]
    merged = merge(hardening)
    assert rows(merged, "ratelimit_answers") == {("slipped",): 8, ("dropped",): 6}
    assert [merged[k] for k in ("upstream_shed", "rebind_rejected", "tcp_rejected", "tcp_connections")] == [3, 2, 6, 11]


def test_merge_keeps_absent_parts_absent_and_series_of_one_worker():
    one = worker(1, 1, 0, 0, 0)
    two = {"buckets": list(BUCKETS), "queries": [[["tcp", "MX", "forwarded"], 4]]}
    merged = merge([one, two])
    assert rows(merged, "queries") == {("udp", "A", "blocked"): 1, ("tcp", "MX", "forwarded"): 4}
    assert "block_page" not in merged and "query_log" not in merged


def test_merge_of_one_is_itself_after_a_json_round_trip():
    app = make_app()
    app.stats.record("udp", 28, "forwarded", 0.01)
    app.upstreams[0].requests["NOERROR"] += 1
    snap = json.loads(json.dumps(take_snapshot(app)))
    assert merge([snap]) == snap


def test_by_worker_adds_each_workers_query_count():
    merged = by_worker({0: worker(2, 1, 10, 1, 0), 1: worker(3, 1, 20, 1, 4)})
    assert merged["worker_queries"] == [[["0"], 2], [["1"], 3]]
    assert merged["queries"] == merge([worker(2, 1, 10, 1, 0), worker(3, 1, 20, 1, 4)])["queries"]
