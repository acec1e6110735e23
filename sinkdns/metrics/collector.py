"""Turns a snapshot into Prometheus metric families when Prometheus scrapes, never on the hot path.

The metric names, label names and label values here are a contract that dashboards and
alerts rely on: add families freely, rename none.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sinkdns import __version__
from sinkdns.metrics.snapshot import FAMILIES, SCALARS, Snapshot

# snapshot key -> (metric name, help, label names); every label value comes from sinkdns's own
# vocabulary or the operator's files, never from a query name or a client address.
COUNTERS = {
    "queries": ("sinkdns_queries_total", "DNS queries answered, by transport, query type and who answered.",
                ("protocol", "qtype", "result")),
    "blocked": ("sinkdns_blocked_queries_total", "Queries that matched a customer's block rule (dry-run included).",
                ("customer", "zone", "action")),
    "rule_hits": ("sinkdns_rule_hits_total", "Queries matched per rule trigger; rules past the series cap are 'other'.",
                  ("customer", "rule")),
    "upstream_requests": ("sinkdns_upstream_requests_total", "Questions sent upstream, by answer rcode or timeout.",
                          ("upstream", "rcode")),
    "upstream_ignored": ("sinkdns_upstream_ignored_answers_total",
                         "Answers from or for an upstream that did not match the question asked (possible spoofing).",
                         ("upstream",)),
    "block_page": ("sinkdns_block_page_requests_total", "Block-page views, by customer ('none' when unknown).",
                   ("customer", "protocol")),
    "policy_reloads": ("sinkdns_policy_reloads_total",
                       "Policy reloads: success, partial (some file kept its last good version), failure.",
                       ("result",)),
    "query_log": ("sinkdns_query_log_lines_total", "Query log lines written, dropped (queue full) or failed.",
                  ("outcome",)),
    "worker_queries": ("sinkdns_worker_queries_total", "DNS queries answered by each worker process (--workers N).",
                       ("worker",)),
    "ratelimit_answers": ("sinkdns_ratelimit_answers_total",
                          "UDP answers over a client's rate limit: sent as an empty TC=1 slip, or dropped.",
                          ("action",)),
}
GAUGES = {
    "upstream_healthy": ("sinkdns_upstream_healthy", "1 when the upstream is asked first, 0 while it is backed off.",
                         ("upstream",)),
    "policy_rules": ("sinkdns_policy_rules", "Rules in force, by customer and zone file.", ("customer", "zone")),
    "policy_file_errors": ("sinkdns_policy_file_errors", "Problems found in each zone file's last reading.",
                           ("zone",)),
}
HISTOGRAMS = {
    "request_duration": ("sinkdns_request_duration_seconds", "Time from receiving a query to answering it.",
                         ("result",)),
    "upstream_duration": ("sinkdns_upstream_duration_seconds", "Time an upstream took to give a usable answer.",
                          ("upstream",)),
}
SCALAR_COUNTERS = {
    "cache_hits": ("sinkdns_cache_hits_total", "Queries answered from the cache."),
    "cache_misses": ("sinkdns_cache_misses_total", "Queries the cache could not answer."),
    "cache_evictions": ("sinkdns_cache_evictions_total", "Live cache entries dropped to make room."),
    "dropped_packets": ("sinkdns_dropped_packets_total", "Packets that could not be read as a query, left unanswered."),
    "upstream_unmatched": ("sinkdns_upstream_unmatched_answers_total",
                           "Answers on upstream sockets that match no question in flight."),
    "upstream_shed": ("sinkdns_upstream_shed_total",
                      "Queries answered SERVFAIL because the cap on questions in flight upstream was reached."),
    "rebind_rejected": ("sinkdns_rebind_rejected_total",
                        "Upstream answers replaced by NODATA for pointing a public name at a private address."),
    "tcp_rejected": ("sinkdns_tcp_connections_rejected_total",
                     "TCP connections closed at once because the total or per-client cap was reached."),
}
SCALAR_GAUGES = {
    "cache_entries": ("sinkdns_cache_entries", "Answers in the cache."),
    "policy_last_reload": ("sinkdns_policy_last_reload_timestamp_seconds",
                           "When the policy last reloaded without any error (Unix time)."),
    "tcp_connections": ("sinkdns_tcp_connections", "TCP client connections open now."),
}
RELOAD_RESULTS = ("success", "partial", "failure")

# A snapshot with every part present and nothing counted: the names `describe` reports.
EMPTY: Snapshot = {"buckets": [], **{name: [] for name in FAMILIES}, **{name: 0 for name in SCALARS}}


def _histogram_buckets(bounds: list[float], counts: list[int]) -> list[tuple[str, int]]:
    """Per-bucket counts to Prometheus's cumulative `le` buckets, +Inf last."""
    out, running = [], 0
    for bound, count in zip([*bounds, float("inf")], counts):
        running += count
        out.append((floatToGoString(bound), running))
    return out


def families(snapshot: Snapshot, version: str = __version__) -> list[Metric]:
    """All metric families of one snapshot; parts missing from it (not wired) are left out."""
    out: list[Metric] = []
    for key, (name, doc, labels) in COUNTERS.items():
        if key in snapshot:
            family = CounterMetricFamily(name, doc, labels=labels)
            rows: list[list[Any]] = snapshot[key]
            if key == "policy_reloads":
                seen = {tuple(label) for label, _ in rows}
                rows = rows + [[[r], 0] for r in RELOAD_RESULTS if (r,) not in seen]
            for label_values, value in rows:
                family.add_metric(label_values, value)
            out.append(family)
    for key, (name, doc, labels) in GAUGES.items():
        if key in snapshot:
            family = GaugeMetricFamily(name, doc, labels=labels)
            for label_values, value in snapshot[key]:
                family.add_metric(label_values, value)
            out.append(family)
    for key, (name, doc, labels) in HISTOGRAMS.items():
        if key in snapshot:
            family = HistogramMetricFamily(name, doc, labels=labels)
            for label_values, value in snapshot[key]:
                family.add_metric(
                    label_values, _histogram_buckets(snapshot["buckets"], value["buckets"]), value["sum"]
                )
            out.append(family)
    for key, (name, doc) in SCALAR_COUNTERS.items():
        if key in snapshot:
            out.append(CounterMetricFamily(name, doc, value=snapshot[key]))
    for key, (name, doc) in SCALAR_GAUGES.items():
        if key in snapshot:
            out.append(GaugeMetricFamily(name, doc, value=snapshot[key]))
    build = GaugeMetricFamily("sinkdns_build_info", "The running sinkdns version; always 1.", labels=["version"])
    build.add_metric([version], 1)
    out.append(build)
    return out


class SnapshotCollector(Collector):
    """A prometheus-client collector over a zero-argument callable returning a (merged) snapshot."""

    def __init__(self, source: Callable[[], Snapshot], version: str = __version__) -> None:
        self.source = source
        self.version = version

    def describe(self) -> Iterable[Metric]:
        """The family names, so the registry can refuse a collector that would clash with them."""
        return families(EMPTY, self.version)

    def collect(self) -> Iterable[Metric]:
        return families(self.source(), self.version)


def make_registry(source: Callable[[], Snapshot], version: str = __version__) -> CollectorRegistry:
    """A registry of one app's metrics and its process metrics; never the global default registry,
    so two apps (or two tests) in one process do not share or clash."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(source, version))
    ProcessCollector(registry=registry)
    return registry
