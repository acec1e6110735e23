"""Metrics of the real process: exact deltas after known queries, summed over workers, read by Prometheus."""

from __future__ import annotations

import http.client
import socket
import urllib.request

import dns.message
import dns.query
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_upstream import FakeUpstream
from tests.support.prometheus import Prometheus
from tests.support.wait import until

pytestmark = pytest.mark.e2e


def scrape(address: str) -> dict[tuple, float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def zones(tmp_path):
    path = tmp_path / "zones"
    path.mkdir()
    (path / "acme.toml").write_text('domains = ["acme.example"]\n')
    (path / "globex.txt").write_text("globex.example\n")
    return path


def ask(server, name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), server.host, port=server.port, timeout=8)


def test_exact_deltas(nsd, start_sinkdns, zones):
    with FakeUpstream(lambda q, t: []) as silent:
        conf = zones.parent / "c.toml"
        conf.write_text(f'[upstream.conditional]\n"dead.example" = ["{silent.address}"]\n')
        server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), "--metrics", "127.0.0.1:0", "--config", str(conf))
        address = server.info["metrics"]
        before = scrape(address)
        for name in ("acme.example", "www.acme.example", "x.y.acme.example"):
            ask(server, name)
        ask(server, "globex.example", "AAAA")
        ask(server, "www.sinkdns.test")
        ask(server, "www.sinkdns.test")
        ask(server, "gone.dead.example")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as runt:
            runt.sendto(b"\x00" * 5, (server.host, server.port))
            runt.sendto(b"\x00" * 5, (server.host, server.port))
        page = http.client.HTTPConnection(*server.info["block_page"][0].rsplit(":", 1), timeout=5)
        page.request("GET", "/", headers={"Host": "www.acme.example"})
        assert page.getresponse().status == 451
        after = scrape(address)
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    q = "sinkdns_queries_total"
    assert value(delta, q, protocol="udp", qtype="A", result="blocked") == 3
    assert value(delta, q, protocol="udp", qtype="AAAA", result="blocked") == 1
    assert value(delta, q, protocol="udp", qtype="A", result="forwarded") == 1
    assert value(delta, q, protocol="udp", qtype="A", result="cached") == 1
    assert value(delta, q, protocol="udp", qtype="A", result="servfail") == 1
    assert value(delta, q, protocol="udp", qtype="other", result="dropped") == 2
    b = "sinkdns_blocked_queries_total"
    assert value(delta, b, customer="acme", zone="acme.toml", action="blockpage") == 3
    assert value(delta, b, customer="globex", zone="globex.txt", action="blockpage") == 1
    assert value(delta, "sinkdns_rule_hits_total", customer="acme", rule="acme.example") == 3
    assert value(delta, "sinkdns_cache_hits_total") == 1
    assert value(delta, "sinkdns_block_page_requests_total", customer="acme", protocol="http") == 1
    assert value(delta, "sinkdns_upstream_requests_total", upstream=nsd.address, rcode="NOERROR") == 1
    assert value(delta, "sinkdns_upstream_requests_total", upstream=silent.address, rcode="timeout") == 1
    assert value(after, "sinkdns_policy_rules", customer="acme", zone="acme.toml") == 1
    assert value(after, "sinkdns_upstream_healthy", upstream=nsd.address) == 1
    assert value(after, "sinkdns_upstream_healthy", upstream=silent.address) == 0
    assert not any("acme.example" in str(labels) and name != "sinkdns_rule_hits_total" for name, labels in after)
    assert not any("127.0.0.1" in v for _, labels in after for k, v in labels if k != "upstream")


def test_workers_are_summed(nsd, start_sinkdns, zones):
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), "--metrics", "127.0.0.1:0", "--workers", "2")
    for _ in range(40):
        ask(server, "acme.example")
    values = scrape(server.info["metrics"])
    assert value(values, "sinkdns_blocked_queries_total", customer="acme", zone="acme.toml", action="blockpage") == 40
    per_worker = [value(values, "sinkdns_worker_queries_total", worker=str(i)) for i in range(2)]
    assert sum(per_worker) == sum(v for (name, _), v in values.items() if name == "sinkdns_queries_total")


def test_workers_with_thousands_of_rule_series_are_summed(nsd, start_sinkdns, zones):
    """A worker's snapshot then runs past 64 KiB, asyncio's default line limit on the control socket."""
    names = [f"r{i}.many.example" for i in range(8000)]
    (zones / "many.txt").write_text("".join(f"{name}\n" for name in names))
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), "--metrics", "127.0.0.1:0", "--workers", "2")
    for name in names:
        ask(server, name)
    values = scrape(server.info["metrics"])
    assert value(values, "sinkdns_blocked_queries_total", customer="many", zone="many.txt", action="blockpage") == 8000
    assert sum(value(values, "sinkdns_worker_queries_total", worker=str(i)) for i in range(2)) == 8000


def test_healthz(nsd, start_sinkdns, zones):
    (zones / "broken.rpz").write_text("this is not a zone file\n")
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), "--metrics", "127.0.0.1:0")
    with urllib.request.urlopen(f"http://{server.info['metrics']}/healthz", timeout=5) as response:
        assert response.status == 200
        assert "broken.rpz" in response.read().decode()
    assert ask(server, "acme.example").answer[0][0].address == "127.0.0.1"  # the rest of the policy serves


def test_prometheus_reads_blocked_by_customer(nsd, start_sinkdns, zones, tmp_path):
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), "--metrics", "127.0.0.1:0")
    for _ in range(3):
        ask(server, "acme.example")
    ask(server, "globex.example")
    prometheus = Prometheus(tmp_path / "prometheus", [server.info["metrics"]]).start()
    try:
        def read() -> dict[str, float] | None:
            rows = prometheus.query("sum by (customer) (sinkdns_blocked_queries_total)")
            found = {row["metric"]["customer"]: float(row["value"][1]) for row in rows}
            return found if found.get("acme") == 3 else None

        assert until(read, 30, "Prometheus to scrape sinkdns") == {"acme": 3.0, "globex": 1.0}
    finally:
        prometheus.stop()
