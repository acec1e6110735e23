"""More upstream faults, played by a fake server: frames no real peer can send, TCP that never answers,
garbage, failed TCP retries, an upstream that goes away and comes back, a slow first server.

Every rejected answer is checked not to be cached: the same question is asked again and must reach
the upstream again (sinkdns caches nothing after a timeout or an unreadable answer).
"""

from __future__ import annotations

import struct
import time

import dns.message
import dns.query
import dns.rcode
import dnslib
import pytest

from tests.support.fake_upstream import FakeUpstream, Send, answer
from tests.support.wait import until

pytestmark = pytest.mark.e2e

DEADLINE = 2.0  # sinkdns's default [upstream] deadline
GOOD = "192.0.2.80"


def ask(server, name: str, timeout: float = 8) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, "A"), server.host, port=server.port, timeout=timeout)


def timed(server, name: str) -> tuple[dns.message.Message, float]:
    started = time.monotonic()
    response = ask(server, name)
    return response, time.monotonic() - started


def good(query: dnslib.DNSRecord) -> bytes:
    return answer(query, f"{query.q.qname} 300 IN A {GOOD}")


def truncated(query: dnslib.DNSRecord) -> bytes:
    """An empty answer with TC set: the whole answer is only to be had over TCP."""
    reply = query.reply()
    reply.header.tc = 1
    return bytes(reply.pack())


def oversized(query: dnslib.DNSRecord) -> bytes:
    """An answer of 5,000 A records (80 KiB): more than a TCP frame can hold."""
    header = bytearray(answer(query))
    header[6:8] = struct.pack("!H", 5000)
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes((192, 0, 2, 66))
    return bytes(header) + record * 5000


class Switch:
    """A handler that misbehaves until `healed`, then answers properly; counts what it was asked."""

    def __init__(self, fault) -> None:
        self.fault = fault
        self.healed = False

    def __call__(self, query: dnslib.DNSRecord, transport: str) -> list:
        return [good(query)] if self.healed else self.fault(query, transport)


def assert_rejected_and_not_cached(server, up: FakeUpstream, switch: Switch, name: str) -> None:
    """SERVFAIL within twice the deadline; asked again, the upstream is asked again and its now good
    answer is what the client gets."""
    response, elapsed = timed(server, name)
    assert response.rcode() == dns.rcode.SERVFAIL
    assert elapsed < 2 * DEADLINE
    asked = len(up.queries)
    switch.healed = True
    assert [rd.address for rd in ask(server, name).answer[0]] == [GOOD]
    assert len(up.queries) == asked + 1


def over_tcp(fault):
    """Truncate over UDP so sinkdns retries over TCP, where `fault` answers."""
    return lambda query, transport: [truncated(query)] if transport == "udp" else fault(query)


TCP_FAULTS = {
    # the first 64 KiB of an 80 KiB answer, then the rest as if it were the next frame
    "over-64k": lambda q: [Send(b"\xff\xff" + oversized(q), framed=False)],
    # a prefix promising 65535 bytes, a short body, then the connection closes
    "short-then-closed": lambda q: [Send(b"\xff\xff" + good(q), framed=False)],
    # the same, but the connection stays open: only the deadline ends the wait
    "short-then-silent": lambda q: [Send(b"\xff\xff" + good(q), framed=False), 3 * DEADLINE],
    # accepts, reads the question, never answers
    "silent": lambda q: [3 * DEADLINE],
    # accepts and closes without a word
    "closed": lambda q: [],
}


@pytest.mark.parametrize("fault", sorted(TCP_FAULTS))
def test_tcp_retry_faults_give_servfail_and_cache_nothing(start_sinkdns, fault):
    switch = Switch(over_tcp(TCP_FAULTS[fault]))
    with FakeUpstream(switch) as up:
        server = start_sinkdns("--upstream", up.address)
        assert_rejected_and_not_cached(server, up, switch, f"{fault}.example")
        assert [t for _, _, t in up.queries[:2]] == ["udp", "tcp"]


def garbage_with_the_right_header(query: dnslib.DNSRecord) -> bytes:
    """The ID, flags and question of a real answer, then counts and records that are not there."""
    head = bytearray(answer(query))
    head[6:8] = b"\x00\x07"
    return bytes(head) + b"\xc0\x0c\x00\x01\x00\x01\xde\xad"


UDP_GARBAGE = {
    "random-bytes": lambda q: bytes(range(256)) * 2,
    "right-header-bad-body": garbage_with_the_right_header,
    "header-only": lambda q: answer(q)[:12],
}


@pytest.mark.parametrize("kind", sorted(UDP_GARBAGE))
def test_garbage_over_udp_gives_servfail_and_caches_nothing(start_sinkdns, kind):
    switch = Switch(lambda q, t: [UDP_GARBAGE[kind](q)])
    with FakeUpstream(switch) as up:
        server = start_sinkdns("--upstream", up.address)
        assert_rejected_and_not_cached(server, up, switch, f"{kind}.example")


def test_tcp_retry_failing_on_the_first_upstream_falls_to_the_second(start_sinkdns):
    with FakeUpstream(over_tcp(TCP_FAULTS["closed"])) as bad, FakeUpstream(lambda q, t: [good(q)]) as fine:
        server = start_sinkdns("--upstream", bad.address, "--upstream", fine.address)
        response, elapsed = timed(server, "tc.example")
        assert [rd.address for rd in response.answer[0]] == [GOOD]
        assert elapsed < 1.0  # no timeout on the way: the failed retry is seen at once
        assert [t for _, _, t in bad.queries] == ["udp", "tcp"]


def test_an_upstream_that_goes_away_and_comes_back_is_used_within_a_second(start_sinkdns):
    first = FakeUpstream(lambda q, t: [good(q)])
    with first:
        server = start_sinkdns("--upstream", first.address)
        assert ask(server, "before.example").answer[0][0].address == GOOD
    response, elapsed = timed(server, "while-away.example")
    assert response.rcode() == dns.rcode.SERVFAIL and elapsed < 2 * DEADLINE
    with FakeUpstream(lambda q, t: [good(q)], port=first.port) as back:
        returned = time.monotonic()

        def answered() -> bool:
            return ask(server, f"back-{len(back.queries)}.example", timeout=0.5).rcode() == dns.rcode.NOERROR

        until(answered, 1.0, "the returned upstream to be used")
        assert time.monotonic() - returned < 1.0
        # nothing was cached while it was away: the question that failed is asked afresh
        assert ask(server, "while-away.example").answer[0][0].address == GOOD
        assert "while-away.example" in [name for name, _, _ in back.queries]


def test_a_slow_first_upstream_beside_a_good_second(start_sinkdns):
    with FakeUpstream(lambda q, t: [3.0, good(q)]) as slow, \
            FakeUpstream(lambda q, t: [answer(q, f"{q.q.qname} 300 IN A 192.0.2.81")]) as fast:
        server = start_sinkdns("--upstream", slow.address, "--upstream", fast.address)
        response, elapsed = timed(server, "first.example")
        assert [rd.address for rd in response.answer[0]] == ["192.0.2.81"]
        assert 0.9 < elapsed < DEADLINE  # one attempt's timeout (1 s), then the good server
        # the slow server is backed off: the next question goes straight to the good one
        response, elapsed = timed(server, "second.example")
        assert response.answer[0][0].address == "192.0.2.81" and elapsed < 0.5
        assert [name for name, _, _ in slow.queries] == ["first.example"]
