"""The metric contract: every family's name, type, labels and values from a fake snapshot."""

from __future__ import annotations

import copy

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from sinkdns import __version__
from sinkdns.metrics.collector import EMPTY, SnapshotCollector, make_registry
from sinkdns.metrics.snapshot import take_snapshot
from sinkdns.model import Decision, Outcome, Response
from sinkdns.resolvers.instrument import BUCKETS, InstrumentStage
from tests.unit.test_metrics_snapshot import BlockPage, Policy, QueryLogCounts, make_app
from tests.unit.util import request


def histogram(counts: dict[int, int], total: float) -> dict:
    buckets = [0] * (len(BUCKETS) + 1)
    for index, count in counts.items():
        buckets[index] = count
    return {"buckets": buckets, "sum": total}


SNAPSHOT = {
    "buckets": list(BUCKETS),
    "queries": [[["udp", "A", "blocked"], 5], [["tcp", "other", "forwarded"], 2]],
    "blocked": [[["acme", "acme.rpz", "blockpage"], 4], [["globex", "globex.hosts", "dry-run"], 1]],
    "rule_hits": [[["acme", "*.acme.example"], 4], [["acme", "other"], 1], [["globex", "192.0.2.0/24"], 1]],
    "request_duration": [[["blocked"], histogram({0: 3, 2: 2}, 0.0004)], [["forwarded"], histogram({16: 2}, 12.0)]],
    "upstream_requests": [[["192.0.2.1:53", "NOERROR"], 6], [["[2001:db8::1]:53", "timeout"], 1]],
    "upstream_ignored": [[["192.0.2.1:53"], 2]],
    "upstream_duration": [[["192.0.2.1:53"], histogram({5: 6}, 0.012)]],
    "upstream_healthy": [[["192.0.2.1:53"], 1], [["[2001:db8::1]:53"], 0]],
    "upstream_unmatched": 3,
    "dropped_packets": 4,
    "cache_hits": 10,
    "cache_misses": 7,
    "cache_entries": 5,
    "cache_evictions": 1,
    "policy_rules": [[["acme", "acme.rpz"], 3]],
    "policy_reloads": [[["success"], 2], [["partial"], 1]],
    "policy_last_reload": 1_700_000_000.5,
    "policy_file_errors": [[["acme.rpz"], 0], [["globex.hosts"], 2]],
    "block_page": [[["acme", "http"], 3], [["none", "https"], 1]],
    "query_log": [[["written"], 9], [["dropped"], 1], [["failed"], 0]],
    "ratelimit_answers": [[["slipped"], 12], [["dropped"], 11]],
    "upstream_shed": 8,
    "rebind_rejected": 2,
    "tcp_rejected": 6,
    "tcp_connections": 3,
}

# family -> (type, label names, {label values: value})
EXPECTED = {
    "sinkdns_queries": ("counter", ("protocol", "qtype", "result"),
                        {("udp", "A", "blocked"): 5, ("tcp", "other", "forwarded"): 2}),
    "sinkdns_blocked_queries": ("counter", ("customer", "zone", "action"),
                                {("acme", "acme.rpz", "blockpage"): 4, ("globex", "globex.hosts", "dry-run"): 1}),
    "sinkdns_rule_hits": ("counter", ("customer", "rule"),
                          {("acme", "*.acme.example"): 4, ("acme", "other"): 1, ("globex", "192.0.2.0/24"): 1}),
    "sinkdns_upstream_requests": ("counter", ("upstream", "rcode"),
                                  {("192.0.2.1:53", "NOERROR"): 6, ("[2001:db8::1]:53", "timeout"): 1}),
    "sinkdns_upstream_ignored_answers": ("counter", ("upstream",), {("192.0.2.1:53",): 2}),
    "sinkdns_upstream_healthy": ("gauge", ("upstream",), {("192.0.2.1:53",): 1, ("[2001:db8::1]:53",): 0}),
    "sinkdns_upstream_unmatched_answers": ("counter", (), {(): 3}),
    "sinkdns_dropped_packets": ("counter", (), {(): 4}),
    "sinkdns_cache_hits": ("counter", (), {(): 10}),
    "sinkdns_cache_misses": ("counter", (), {(): 7}),
    "sinkdns_cache_entries": ("gauge", (), {(): 5}),
    "sinkdns_cache_evictions": ("counter", (), {(): 1}),
    "sinkdns_policy_rules": ("gauge", ("customer", "zone"), {("acme", "acme.rpz"): 3}),
    "sinkdns_policy_reloads": ("counter", ("result",), {("success",): 2, ("partial",): 1, ("failure",): 0}),
    "sinkdns_policy_last_reload_timestamp_seconds": ("gauge", (), {(): 1_700_000_000.5}),
    "sinkdns_policy_file_errors": ("gauge", ("zone",), {("acme.rpz",): 0, ("globex.hosts",): 2}),
    "sinkdns_block_page_requests": ("counter", ("customer", "protocol"), {("acme", "http"): 3, ("none", "https"): 1}),
    "sinkdns_query_log_lines": ("counter", ("outcome",), {("written",): 9, ("dropped",): 1, ("failed",): 0}),
    "sinkdns_ratelimit_answers": ("counter", ("action",), {("slipped",): 12, ("dropped",): 11}),
    "sinkdns_upstream_shed": ("counter", (), {(): 8}),
    "sinkdns_rebind_rejected": ("counter", (), {(): 2}),
    "sinkdns_tcp_connections_rejected": ("counter", (), {(): 6}),
    "sinkdns_tcp_connections": ("gauge", (), {(): 3}),
    "sinkdns_build_info": ("gauge", ("version",), {(__version__,): 1}),
}


def scrape(snapshot: dict) -> dict:
    text = generate_latest(make_registry(lambda: snapshot)).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(family) -> dict[tuple, float]:
    """Samples by their label values, in the contract's label order."""
    labels = EXPECTED[family.name][1]
    return {
        tuple(sample.labels[name] for name in labels): sample.value
        for sample in family.samples if sample.name in (family.name, family.name + "_total")
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_family_type_labels_and_values(name):
    kind, labels, expected = EXPECTED[name]
    family = scrape(SNAPSHOT)[name]
    assert family.type == kind
    assert all(sorted(s.labels) == sorted(labels) for s in family.samples)
    assert values(family) == expected


@pytest.mark.parametrize(
    "name, label, expected_buckets, count, total",
    [
        ("sinkdns_request_duration_seconds", {"result": "blocked"}, {"5e-05": 3, "0.0001": 3, "0.00025": 5}, 5, 0.0004),
        ("sinkdns_request_duration_seconds", {"result": "forwarded"}, {"5.0": 0, "+Inf": 2}, 2, 12.0),
        ("sinkdns_upstream_duration_seconds", {"upstream": "192.0.2.1:53"}, {"0.001": 0, "0.0025": 6}, 6, 0.012),
    ],
)
def test_histograms_are_cumulative_from_50us_to_5s(name, label, expected_buckets, count, total):
    family = scrape(SNAPSHOT)[name]
    assert family.type == "histogram"
    mine = [s for s in family.samples if {k: v for k, v in s.labels.items() if k != "le"} == label]
    buckets = {s.labels["le"]: s.value for s in mine if s.name.endswith("_bucket")}
    assert list(buckets)[0] == "5e-05" and list(buckets)[-2:] == ["5.0", "+Inf"] and len(buckets) == len(BUCKETS) + 1
    assert list(buckets.values()) == sorted(buckets.values())
    assert {le: buckets[le] for le in expected_buckets} == expected_buckets
    assert {s.name.rsplit("_", 1)[1]: s.value for s in mine if not s.name.endswith("_bucket")} == {
        "count": count, "sum": total,
    }


def test_increments_show_as_exact_deltas():
    later = copy.deepcopy(SNAPSHOT)
    later["queries"][0][1] += 3
    later["blocked"].append([["acme", "acme.rpz", "nxdomain"], 1])
    later["cache_hits"] += 2
    later["request_duration"][0][1]["buckets"][1] += 1
    before, after = scrape(SNAPSHOT), scrape(later)
    assert values(after["sinkdns_queries"])[("udp", "A", "blocked")] - values(before["sinkdns_queries"])[
        ("udp", "A", "blocked")] == 3
    assert values(after["sinkdns_blocked_queries"])[("acme", "acme.rpz", "nxdomain")] == 1
    assert values(after["sinkdns_cache_hits"])[()] - values(before["sinkdns_cache_hits"])[()] == 2
    le = {s.labels["le"]: s.value for s in after["sinkdns_request_duration_seconds"].samples
          if s.name.endswith("_bucket") and s.labels["result"] == "blocked"}
    assert (le["5e-05"], le["0.0001"], le["+Inf"]) == (3, 4, 6)


def test_parts_not_wired_are_left_out_and_process_metrics_are_there():
    unwired = {k: v for k, v in SNAPSHOT.items() if not k.startswith("policy") and k not in ("block_page", "query_log")}
    families = scrape(unwired)
    assert not [name for name in families if "policy" in name or "block_page" in name or "query_log" in name]
    assert "process_cpu_seconds" in families and "process_resident_memory_bytes" in families
    assert "sinkdns_build_info" in families


def test_openmetrics_rendering_parses():
    text = generate_openmetrics(make_registry(lambda: SNAPSHOT)).decode()
    families = {family.name: family for family in parse_openmetrics(text)}
    assert text.endswith("# EOF\n")
    blocked = families["sinkdns_blocked_queries"]
    assert {(s.labels["customer"], s.labels["zone"], s.labels["action"]): s.value for s in blocked.samples} == {
        ("acme", "acme.rpz", "blockpage"): 4, ("globex", "globex.hosts", "dry-run"): 1,
    }


def test_no_label_carries_a_query_name_or_client_address():
    app = make_app()
    app.policy_facts, app.block_page_counts, app.querylog = Policy(), BlockPage(), QueryLogCounts()
    rule = Decision("blockpage", "acme", "acme.rpz", "*.acme.example", "acme.rpz:3")

    def policy(req):
        return Response(b"", Outcome.BLOCKED, decision=rule)

    stage = InstrumentStage(policy, app.stats, app.clock)
    req = request("secret-victim.acme.example", now=app.clock())
    req.client = ("198.51.100.77", 40000)
    stage(req)
    text = generate_latest(make_registry(lambda: take_snapshot(app))).decode()
    assert 'rule="*.acme.example"' in text
    assert "secret-victim" not in text and "198.51.100.77" not in text


def test_registries_are_per_app_and_describe_guards_against_clashes():
    first, second = make_registry(lambda: SNAPSHOT), make_registry(lambda: EMPTY)
    assert "sinkdns_cache_hits_total 10.0" in generate_latest(first).decode()
    assert "sinkdns_cache_hits_total 0.0" in generate_latest(second).decode()
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: SNAPSHOT))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(SnapshotCollector(lambda: SNAPSHOT))
