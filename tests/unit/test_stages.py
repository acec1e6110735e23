"""Guard, local and instrument stages with a recording next stage."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dnslib
import pytest

from sinkdns.addresses import AccessList
from sinkdns.model import Outcome, Response
from sinkdns.resolvers.guard import GuardStage
from sinkdns.resolvers.ratelimit import RateLimiter
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


def from_client(host: str, name: str = "x.example", rdtype: str = "A", rdclass: str = "IN", transport: str = "udp",
                now: float = 0.0):
    wire = dns.message.make_query(name, rdtype, rdclass=rdclass).to_wire()
    return parse_query(wire, (host, 4242), transport, now)


@pytest.mark.parametrize("host", ["192.0.2.1", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8"])
def test_guard_refuses_clients_outside_the_default_access_list(host):
    nxt = Next()
    res = GuardStage(nxt)(from_client(host))
    msg, _ = decode(res.wire)
    assert res.outcome == Outcome.REFUSED and msg.rcode() == dns.rcode.REFUSED and nxt.seen == []
    assert str(msg.question[0].name) == "x.example."


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "10.0.0.7", "192.168.1.20", "100.64.1.1", "fd00::5", "fe80::1"])
def test_guard_serves_loopback_and_private_clients_by_default(host):
    assert GuardStage(Next())(from_client(host)).outcome == Outcome.FORWARDED


def test_guard_access_list_is_configurable_and_deny_wins():
    guard = GuardStage(Next(), access=AccessList(allow=("0.0.0.0/0",), deny=("10.0.0.0/8",)))
    assert guard(from_client("8.8.8.8")).outcome == Outcome.FORWARDED
    assert guard(from_client("10.1.1.1")).outcome == Outcome.REFUSED
    assert guard(from_client("::1")).outcome == Outcome.REFUSED  # not in allow


def test_guard_rate_limit_slips_every_second_answer_and_drops_the_rest():
    nxt = Next()
    guard = GuardStage(nxt, access=AccessList(allow=("0.0.0.0/0",)), limiter=RateLimiter(qps=1, burst=2))
    results = [guard(from_client("198.51.100.9", now=0.0)) for _ in range(6)]
    assert [r.outcome for r in results] == [Outcome.FORWARDED] * 2 + [Outcome.RATELIMITED] * 4
    slip, drop = results[2], results[3]
    msg, _ = decode(slip.wire)
    assert msg.flags & dns.flags.TC and msg.answer == [] and str(msg.question[0].name) == "x.example."
    assert drop.wire is None and results[4].wire is not None and results[5].wire is None
    assert len(nxt.seen) == 2
    assert guard(from_client("198.51.100.10", now=0.0)).outcome == Outcome.FORWARDED  # another client
    assert guard(from_client("198.51.100.9", now=1.0)).outcome == Outcome.FORWARDED  # a token later


def test_guard_rate_limit_applies_before_the_access_list_and_not_to_tcp():
    guard = GuardStage(Next(), limiter=RateLimiter(qps=1, burst=1))
    assert guard(from_client("203.0.113.5")).outcome == Outcome.REFUSED
    assert guard(from_client("203.0.113.5")).outcome == Outcome.RATELIMITED  # refusals cannot be reflected
    assert guard(from_client("10.0.0.1", transport="tcp")).outcome == Outcome.FORWARDED
    assert guard(from_client("10.0.0.1", transport="tcp")).outcome == Outcome.FORWARDED


@pytest.mark.parametrize("rdtype", ["OPT", "TSIG", "TKEY", "MAILA", "MAILB"])
def test_guard_refuses_meta_types(rdtype):
    nxt = Next()
    assert GuardStage(nxt)(request("x.example", rdtype)).outcome == Outcome.REFUSED and nxt.seen == []


def test_guard_answers_formerr_to_a_truncated_query():
    wire = bytearray(request("x.example", "A").wire)
    wire[2] |= 0x02
    res = GuardStage(Next())(parse_query(bytes(wire), ("127.0.0.1", 1), "udp", 0.0))
    msg, _ = decode(res.wire)
    assert res.outcome == Outcome.FORMERR and msg.rcode() == dns.rcode.FORMERR and not msg.flags & dns.flags.TC


@pytest.mark.parametrize("name", ["version.bind", "hostname.bind", "id.server", "version.server"])
def test_guard_refuses_chaos_by_default(name):
    res = GuardStage(Next())(request(name, "TXT", rdclass="CH"))
    assert res.outcome == Outcome.REFUSED


def test_guard_answers_configured_chaos_names_and_never_forwards_them():
    nxt = Next()
    guard = GuardStage(nxt, chaos={"version.bind": "sinkdns", "ID.Server.": "ns-" + "x" * 300})
    res = guard(request("VERSION.bind", "TXT", rdclass="CH"))
    msg, record = decode(res.wire)
    assert res.outcome == Outcome.LOCAL and msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
    assert msg.answer[0].rdclass == dns.rdataclass.CH and msg.answer[0][0].strings == (b"sinkdns",)
    assert str(record.q.qname) == "VERSION.bind."
    long = decode(guard(request("id.server", "TXT", rdclass="CH")).wire)[0]
    assert b"".join(long.answer[0][0].strings) == b"ns-" + b"x" * 300
    nodata = decode(guard(request("version.bind", "A", rdclass="CH")).wire)[0]
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    assert guard(request("hostname.bind", "TXT", rdclass="CH")).outcome == Outcome.REFUSED
    assert guard(request("version.bind", "TXT")).outcome == Outcome.FORWARDED  # class IN: an ordinary name
    assert nxt.seen == ["version.bind"]


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
