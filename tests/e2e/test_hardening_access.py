"""Access and abuse bounds against the real process: rate limiting, CHAOS, rebinding, the in-flight cap.

Only loopback can send here, so the rate limit is tested with `exempt_loopback = false`; the access
list's network decisions are unit-tested (tests/unit/test_addresses.py, test_stages.py).
"""

from __future__ import annotations

import socket
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.fake_upstream import FakeUpstream, answer

pytestmark = pytest.mark.e2e


def configured(start_sinkdns, tmp_path, upstream: str, text: str):
    path = tmp_path / "sinkdns.toml"
    path.write_text(text)
    return start_sinkdns("--config", str(path), "--upstream", upstream)


def ask(server, name: str, rdtype: str = "A", rdclass: str = "IN", timeout: float = 5) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype, rdclass=rdclass), server.host, port=server.port,
                         timeout=timeout)


def test_over_the_rate_limit_every_second_answer_slips_and_the_rest_are_dropped(start_sinkdns, tmp_path):
    text = "[ratelimit]\nqps = 1\nburst = 10\nexempt_loopback = false\n"
    with FakeUpstream(lambda q, t: []) as up:
        server = configured(start_sinkdns, tmp_path, up.address, text)
        queries = [dns.message.make_query("localhost", "A") for _ in range(30)]
        replies = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for q in queries:
                sock.sendto(q.to_wire(), (server.host, server.port))
            sock.settimeout(0.5)
            try:
                while True:
                    reply = dns.message.from_wire(sock.recv(65535))
                    replies[reply.id] = reply
            except socket.timeout:
                pass
        answered = [r for r in replies.values() if r.answer]
        slipped = [r for r in replies.values() if r.flags & dns.flags.TC and not r.answer]
        assert 10 <= len(answered) <= 11  # the burst, and perhaps one token earned meanwhile
        assert len(slipped) == pytest.approx((30 - len(answered)) / 2, abs=1)
        assert len(replies) == len(answered) + len(slipped)  # the rest: dropped
        # The slip sends the client to TCP, which is not limited.
        tcp = dns.query.tcp(dns.message.make_query("localhost", "A"), server.host, port=server.port, timeout=5)
        assert tcp.answer[0][0].address == "127.0.0.1"


def test_configured_chaos_names_are_answered_locally(start_sinkdns, tmp_path):
    with FakeUpstream(lambda q, t: [answer(q, f"{q.q.qname} 60 CH TXT leaked")]) as up:
        server = configured(start_sinkdns, tmp_path, up.address, '[server]\nchaos = {"version.bind" = "sinkdns"}\n')
        response = ask(server, "version.bind", "TXT", "CH")
        assert response.rcode() == dns.rcode.NOERROR and response.answer[0][0].strings == (b"sinkdns",)
        assert ask(server, "hostname.bind", "TXT", "CH").rcode() == dns.rcode.REFUSED
        assert up.queries == []


def test_rebinding_protection_replaces_private_answers_for_public_names(start_sinkdns, tmp_path):
    def private(q, t):
        return [answer(q, f"{q.q.qname} 60 IN A 192.168.1.10")]

    with FakeUpstream(private) as up:
        text = '[upstream]\nrebind_protection = true\nrebind_allow = ["corp.example"]\n'
        server = configured(start_sinkdns, tmp_path, up.address, text)
        rebound = ask(server, "attacker.example")
        assert rebound.rcode() == dns.rcode.NOERROR and rebound.answer == []
        assert ask(server, "attacker.example").answer == []
        assert ask(server, "intranet.corp.example").answer[0][0].address == "192.168.1.10"


def test_beyond_the_in_flight_cap_queries_get_servfail_at_once(start_sinkdns, tmp_path):
    with FakeUpstream(lambda q, t: [0.4, answer(q, f"{q.q.qname} 60 IN A 192.0.2.1")]) as up:
        server = configured(start_sinkdns, tmp_path, up.address, "[upstream]\nmax_inflight = 2\n")
        slow = [threading.Thread(target=ask, args=(server, f"slow{i}.example")) for i in range(2)]
        for t in slow:
            t.start()
        time.sleep(0.2)  # both are upstream now (the fake answers one at a time)
        started = time.monotonic()
        shed = ask(server, "third.example")
        assert shed.rcode() == dns.rcode.SERVFAIL and time.monotonic() - started < 0.5
        for t in slow:
            t.join()
        assert ask(server, "third.example").answer[0][0].address == "192.0.2.1"  # not cached, slots back
