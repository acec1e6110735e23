"""A real Prometheus scrapes the metrics endpoint; the dashboard's every expression runs against it.

The endpoint here serves a fixed synthetic snapshot in-process, so the values Prometheus reads back are
known exactly; the whole-process test with real queries lives beside the other e2e tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from sinkdns.metrics.collector import make_registry
from sinkdns.metrics.http import SERVING, Health, start_metrics_server
from tests.support.prometheus import Prometheus
from tests.support.system import require
from tests.unit.test_metrics_collector import SNAPSHOT

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
CUSTOMERS = "acme|globex"
# What Grafana puts in place of its built-in variables; the windows span several 500 ms scrapes.
BUILTINS = {"__rate_interval": "1m", "__range": "1m", "__interval": "15s"}


@pytest.fixture(scope="module")
def metrics_address():
    """The metrics HTTP server on its own event loop in a thread, over the fixed snapshot."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="metrics-loop")
    thread.start()
    registry = make_registry(lambda: SNAPSHOT)
    server = asyncio.run_coroutine_threadsafe(
        start_metrics_server(("127.0.0.1", 0), registry, lambda: Health(SERVING)), loop
    ).result(10)
    yield server.address
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def prometheus(metrics_address, tmp_path_factory):
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), [metrics_address]).start()
    try:
        server.wait_for_scrapes(3)
        yield server
    finally:
        server.stop()


def dashboard_expressions() -> list[str]:
    """Every `expr` of every panel target, rows included."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return found


def template_queries() -> dict[str, tuple[str, str]]:
    """Each query variable's label_values(match, label), as (match, label)."""
    out = {}
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert match, f"unexpected variable query {variable['definition']!r}"
            out[variable["name"]] = (match.group(1), match.group(2))
    return out


def substitute(expr: str, instance: str) -> str:
    values = {"instance": re.escape(instance).replace("\\", "\\\\"), "customer": f"({CUSTOMERS})", **BUILTINS}
    text = re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)
    assert "$" not in text, text
    return text


def test_blocked_by_customer_reads_back_through_prometheus(prometheus, metrics_address):
    result = prometheus.query('sum by (customer) (sinkdns_blocked_queries_total{job="sinkdns"})')
    assert {s["metric"]["customer"]: float(s["value"][1]) for s in result} == {"acme": 4.0, "globex": 1.0}
    dry_run = prometheus.query(f'sinkdns_blocked_queries_total{{instance="{metrics_address}", action="dry-run"}}')
    assert [(s["metric"]["customer"], s["metric"]["zone"], s["value"][1]) for s in dry_run] == [
        ("globex", "globex.hosts", "1")
    ]


def test_the_dashboard_has_the_panels_the_issue_lists():
    titles = {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert {
        "Query rate by result", "Blocked rate by customer", "Top rules", "Block-page views", "Latency percentiles",
        "Upstream health", "Upstream latency", "Cache hit ratio", "Policy size", "Policy reloads",
    } <= titles
    assert set(template_queries()) == {"instance", "customer"}


@pytest.mark.parametrize("expr", dashboard_expressions())
def test_every_dashboard_expression_runs_and_finds_series(prometheus, metrics_address, expr):
    result = prometheus.query(substitute(expr, metrics_address))
    assert result, f"no series for {expr}"


def test_template_variables_list_the_instance_and_customers(prometheus, metrics_address):
    queries = template_queries()
    match, label = queries["instance"]
    assert prometheus.label_values(label, match) == [metrics_address]
    match, label = queries["customer"]
    assert prometheus.label_values(label, substitute(match, metrics_address)) == ["acme"]


def test_example_scrape_config_and_exposition_pass_promtool(metrics_address):
    promtool = require("promtool")
    checked = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as response:
        exposition = response.read()
    linted = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30)
    assert linted.returncode == 0, (linted.stdout + linted.stderr).decode()
