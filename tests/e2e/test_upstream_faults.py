"""Upstreams that fail, lie or stay silent, played by a fake server (real ones cannot do it on purpose)."""

from __future__ import annotations

import socket
import threading
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.fake_upstream import FakeUpstream, Send, answer

pytestmark = pytest.mark.e2e


def ask(server, name: str, rdtype: str = "A", timeout: float = 8) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), server.host, port=server.port, timeout=timeout)


def silent(query, transport):
    return []


def test_silent_upstream_gives_servfail_in_bounded_time(start_sinkdns):
    with FakeUpstream(silent) as up:
        server = start_sinkdns("--upstream", up.address)
        started = time.monotonic()
        response = ask(server, "quiet.example")
        elapsed = time.monotonic() - started
    assert response.rcode() == dns.rcode.SERVFAIL
    assert elapsed < 5.0  # the target is 2.5 s; twice that as the bound


def test_failover_to_the_next_upstream(nsd, start_sinkdns):
    with FakeUpstream(silent) as dead:
        server = start_sinkdns("--upstream", dead.address, "--upstream", nsd.address)
        assert ask(server, "www.sinkdns.test").answer[0][0].address == "192.0.2.10"
        started = time.monotonic()
        # The dead server is remembered: the next question goes straight to the live one.
        assert ask(server, "mail.sinkdns.test").answer[0][0].address == "192.0.2.25"
        assert time.monotonic() - started < 0.5
        assert len(dead.queries) == 1


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED])
def test_servfail_and_refused_fail_over(nsd, start_sinkdns, rcode):
    with FakeUpstream(lambda q, t: [answer(q, rcode=rcode)]) as bad:
        server = start_sinkdns("--upstream", bad.address, "--upstream", nsd.address)
        assert ask(server, "www.sinkdns.test").answer[0][0].address == "192.0.2.10"
        assert len(bad.queries) == 1


def test_spoofed_answers_are_ignored(start_sinkdns):
    def spoofing(query, transport):
        forged = answer(query, f"{query.q.qname} 300 IN A 6.6.6.6")
        wrong_id = bytes([forged[0] ^ 0xFF]) + forged[1:]
        other_question = answer(query.__class__.question("evil.example", "A"), "evil.example 300 IN A 6.6.6.6")
        other_question = forged[:2] + other_question[2:]
        return [
            Send(wrong_id),
            Send(forged, from_other_port=True),
            Send(other_question),
            Send(answer(query, f"{query.q.qname} 300 IN A 192.0.2.77")),
        ]

    with FakeUpstream(spoofing) as up:
        server = start_sinkdns("--upstream", up.address)
        response = ask(server, "target.example")
    assert [rd.address for rd in response.answer[0]] == ["192.0.2.77"]


def test_negative_answers_are_cached(start_sinkdns):
    soa = "example. 300 IN SOA ns.example. host.example. 1 3600 600 86400 60"
    with FakeUpstream(lambda q, t: [answer(q, soa, rcode=dns.rcode.NXDOMAIN)]) as up:
        server = start_sinkdns("--upstream", up.address)
        for _ in range(3):
            response = ask(server, "gone.example")
            assert response.rcode() == dns.rcode.NXDOMAIN
            assert response.authority[0].ttl <= 60  # min(SOA TTL, MINIMUM), RFC 2308 5
        assert len(up.queries) == 1


def test_identical_questions_in_flight_are_sent_once(start_sinkdns):
    with FakeUpstream(lambda q, t: [0.5, answer(q, f"{q.q.qname} 300 IN A 192.0.2.5")]) as up:
        server = start_sinkdns("--upstream", up.address)
        results = []

        def one(case: str) -> None:
            results.append(ask(server, case))

        threads = [threading.Thread(target=one, args=(n,)) for n in ("same.example", "SAME.example", "Same.Example")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(up.queries) == 1
        assert sorted(r.question[0].name.to_text() for r in results) == ["SAME.example.", "Same.Example.", "same.example."]
        assert all(r.answer[0][0].address == "192.0.2.5" for r in results)


def test_special_names_never_reach_the_upstream(start_sinkdns):
    with FakeUpstream(lambda q, t: [answer(q, f"{q.q.qname} 300 IN A 192.0.2.5")]) as up:
        server = start_sinkdns("--upstream", up.address)
        for name in ("localhost", "a.b.localhost", "x.onion", "printer.local", "x.invalid"):
            ask(server, name)
        ask(server, "1.1.168.192.in-addr.arpa", "PTR")
        assert up.queries == []


def test_conditional_forwarding(nsd, start_sinkdns, tmp_path):
    with FakeUpstream(lambda q, t: [answer(q, f"{q.q.qname} 300 IN A 10.1.2.3")]) as corp, \
            FakeUpstream(lambda q, t: [answer(q, f"{q.q.qname} 300 IN PTR host.corp.example.")]) as reverse:
        config = tmp_path / "sinkdns.toml"
        config.write_text(
            "[upstream]\n"
            f'servers = ["{nsd.address}"]\n'
            "[upstream.conditional]\n"
            f'"corp.example" = ["{corp.address}"]\n'
            f'"168.192.in-addr.arpa" = ["{reverse.address}"]\n'
        )
        server = start_sinkdns("--config", str(config))
        assert ask(server, "intranet.corp.example").answer[0][0].address == "10.1.2.3"
        assert ask(server, "www.sinkdns.test").answer[0][0].address == "192.0.2.10"
        assert ask(server, "4.3.168.192.in-addr.arpa", "PTR").answer[0][0].target.to_text() == "host.corp.example."
        assert [q[0] for q in corp.queries] == ["intranet.corp.example"]
