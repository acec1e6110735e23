"""The hardening counters on /metrics of the real process: each equals what the client saw happen."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.e2e.test_metrics import scrape, value
from tests.support.fake_upstream import FakeUpstream, answer
from tests.support.wait import until

pytestmark = pytest.mark.e2e

SENT = 30


def configured(start_sinkdns, tmp_path, upstream: str, text: str):
    path = tmp_path / "sinkdns.toml"
    path.write_text(text)
    return start_sinkdns("--config", str(path), "--upstream", upstream, "--metrics", "127.0.0.1:0")


def ask(server, name: str, timeout: float = 5) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, "A"), server.host, port=server.port, timeout=timeout)


def flood(server, count: int) -> list[dns.message.Message]:
    """Send `count` queries at once from one socket; the replies that came back within half a second."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(count):
            sock.sendto(dns.message.make_query("localhost", "A").to_wire(), (server.host, server.port))
        sock.settimeout(0.5)
        try:
            while True:
                replies.append(dns.message.from_wire(sock.recv(65535)))
        except socket.timeout:
            pass
    return replies


def scrape_when(address: str, name: str, wanted: float, what: str) -> dict:
    """The first scrape in which `name` (unlabelled) reads `wanted`: counts change as the server gets to them."""
    def probe() -> dict | None:
        metrics = scrape(address)
        return metrics if value(metrics, name) == wanted else None

    return until(probe, 3, what)


def test_rate_limited_answers_are_counted_as_slipped_and_dropped(start_sinkdns, tmp_path):
    text = "[ratelimit]\nqps = 1\nburst = 5\nexempt_loopback = false\n"
    with FakeUpstream(lambda q, t: []) as up:
        server = configured(start_sinkdns, tmp_path, up.address, text)
        replies = flood(server, SENT)
        metrics = scrape(server.info["metrics"])
    slipped = [r for r in replies if r.flags & dns.flags.TC and not r.answer]
    assert 5 <= len(replies) - len(slipped) <= 6  # the burst, and perhaps one token earned meanwhile
    assert value(metrics, "sinkdns_ratelimit_answers_total", action="slipped") == len(slipped)
    assert value(metrics, "sinkdns_ratelimit_answers_total", action="dropped") == SENT - len(replies)


def test_shed_rebind_and_tcp_bounds_are_counted(start_sinkdns, tmp_path):
    def handler(q, t):
        name = str(q.q.qname)
        if name.startswith("slow"):
            return []  # in flight until the deadline
        return [answer(q, f"{name} 60 IN A {'192.168.1.10' if name.startswith('lan') else '192.0.2.1'}")]

    text = (
        "[server]\ntcp_max_per_client = 2\n"
        "[upstream]\nmax_inflight = 1\nrebind_protection = true\n"
    )
    with FakeUpstream(handler) as up:
        server = configured(start_sinkdns, tmp_path, up.address, text)
        address = server.info["metrics"]
        assert scrape(address).get(("sinkdns_rebind_rejected_total", ())) == 0  # wired and reported from 0
        assert ask(server, "lan.example").answer == []
        slow = threading.Thread(target=ask, args=(server, "slow.example"))
        slow.start()
        until(lambda: len(up.queries) == 2, 2, "the slow question to reach the upstream")
        assert ask(server, "other.example").rcode() == dns.rcode.SERVFAIL
        slow.join()
        held = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(3)]
        try:
            metrics = scrape_when(address, "sinkdns_tcp_connections_rejected_total", 1, "the third connection refused")
        finally:
            for sock in held:
                sock.close()
        closed = scrape_when(address, "sinkdns_tcp_connections", 0, "the connections released")
    assert value(metrics, "sinkdns_rebind_rejected_total") == 1
    assert value(metrics, "sinkdns_upstream_shed_total") == 1
    assert value(metrics, "sinkdns_tcp_connections_rejected_total") == 1
    assert value(metrics, "sinkdns_tcp_connections") == 2
    assert value(closed, "sinkdns_tcp_connections_rejected_total") == 1
