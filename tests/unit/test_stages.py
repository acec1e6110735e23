"""Guard, local and instrument stages with a recording next stage."""

from __future__ import annotations

import dns.rcode
import dnslib
import pytest

from sinkdns.model import Outcome, Response
from sinkdns.resolvers.guard import GuardStage
from sinkdns.resolvers.instrument import InstrumentStage, QueryStats
from sinkdns.resolvers.local import LocalStage
from sinkdns.wire import build
from sinkdns.wire.parse import parse_query
from tests.unit.util import decode, request


class Next:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, req):
        self.seen.append(req.qname)
        return Response(build.answer(req), Outcome.FORWARDED)


@pytest.mark.parametrize(
    "name, rdtype, rdclass, rcode",
    [("version.bind", "TXT", "CH", dns.rcode.REFUSED), ("x.example", "A", "HS", dns.rcode.REFUSED),
     ("x.example", "AXFR", "IN", dns.rcode.REFUSED), ("x.example", "IXFR", "IN", dns.rcode.REFUSED)],
)
def test_guard_refuses(name, rdtype, rdclass, rcode):
    nxt = Next()
    res = GuardStage(nxt)(request(name, rdtype, rdclass=rdclass))
    assert res.outcome == Outcome.REFUSED and nxt.seen == []
    assert decode(res.wire)[0].rcode() == rcode


def test_guard_answers_problems_with_the_question_echoed():
    wire = bytearray(request("x.example", "A").wire)
    wire[2] |= 0x28  # opcode 5, UPDATE
    req = parse_query(bytes(wire), ("127.0.0.1", 1), "udp", 0.0)
    res = GuardStage(Next())(req)
    msg = dnslib.DNSRecord.parse(res.wire)  # dnspython reads opcode UPDATE as an update message
    assert res.outcome == Outcome.NOTIMP and msg.header.rcode == dns.rcode.NOTIMP
    assert msg.header.opcode == 5 and str(msg.q.qname) == "x.example."


@pytest.mark.parametrize(
    "name, rdtype, answer, rcode",
    [
        ("localhost", "A", "127.0.0.1", dns.rcode.NOERROR),
        ("a.b.LocalHost", "AAAA", "::1", dns.rcode.NOERROR),
        ("localhost", "MX", None, dns.rcode.NOERROR),
        ("x.onion", "A", None, dns.rcode.NXDOMAIN),
        ("host.local", "AAAA", None, dns.rcode.NXDOMAIN),
        ("1.2.16.172.in-addr.arpa", "PTR", None, dns.rcode.NXDOMAIN),
        ("1.2.64.100.in-addr.arpa", "PTR", None, dns.rcode.NXDOMAIN),
        ("1.8.b.d.0.1.0.0.2.ip6.arpa", "PTR", None, dns.rcode.NXDOMAIN),
    ],
)
def test_local_names(name, rdtype, answer, rcode):
    nxt = Next()
    res = LocalStage(nxt)(request(name, rdtype))
    msg, _ = decode(res.wire)
    assert res.outcome == Outcome.LOCAL and nxt.seen == []
    assert msg.rcode() == rcode
    if answer:
        assert msg.answer[0][0].to_text() == answer
    else:
        assert msg.answer == [] and msg.authority[0].rdtype == 6


@pytest.mark.parametrize("name", ["1.2.3.4.in-addr.arpa", "localhost.example", "onion.example", "1.2.1.100.in-addr.arpa"])
def test_local_passes_public_names(name):
    nxt = Next()
    assert LocalStage(nxt)(request(name, "PTR")).outcome == Outcome.FORWARDED


def test_conditional_domain_is_not_answered_locally():
    nxt = Next()
    stage = LocalStage(nxt, ("168.192.in-addr.arpa",))
    assert stage(request("4.3.168.192.in-addr.arpa", "PTR")).outcome == Outcome.FORWARDED
    assert stage(request("4.3.2.10.in-addr.arpa", "PTR")).outcome == Outcome.LOCAL


def test_instrument_counts_and_times():
    stats = QueryStats()
    clock = iter([0.0005]).__next__
    stage = InstrumentStage(Next(), stats, clock)
    stage(request("x.example", "HTTPS", now=0.0))
    assert stats.queries == {("udp", "HTTPS", "forwarded"): 1}
    assert sum(stats.latency["forwarded"]) == 1 and stats.latency["forwarded"][3] == 1  # 500 µs bucket
