from __future__ import annotations

import dnslib

from sinkdns.wire import constants as c
from sinkdns.wire.reply import MalformedReply, Reply
from tests.unit.util import decode, request

import pytest


def upstream_answer(req, *lines: str, rcode: int = 0, edns: bool = True, extra: tuple[str, ...] = ()) -> bytes:
    """An upstream's answer built with dnslib (the independent codec)."""
    query = dnslib.DNSRecord.parse(req.wire)
    reply = query.reply()
    reply.header.rcode = rcode
    for line in lines:
        for rr in dnslib.RR.fromZone(line):
            (reply.add_auth if rr.rtype == dnslib.QTYPE.SOA else reply.add_answer)(rr)
    for line in extra:
        reply.add_ar(*dnslib.RR.fromZone(line))
    if not edns:
        reply.ar = [rr for rr in reply.ar if rr.rtype != dnslib.QTYPE.OPT]
    return bytes(reply.pack())


def parse(req, data: bytes, stored: float = 100.0, **kw) -> Reply:
    return Reply.from_wire(data, 12 + len(req.question), stored, **kw)


def test_positive_answer_ttl_names_and_addresses():
    req = request("www.example.com", "A", use_edns=0)
    data = upstream_answer(req, "www.example.com. 300 IN CNAME edge.cdn.example.", "edge.cdn.example. 60 IN A 192.0.2.7")
    reply = parse(req, data)
    assert reply.ttl == 60
    assert reply.names == ("edge.cdn.example",)
    assert reply.addresses == ("192.0.2.7",)
    assert reply.arcount == 0  # the upstream's OPT is not kept


def test_render_counts_ttls_down_and_uses_the_clients_id_case_and_edns():
    req = request("www.example.com", "A", use_edns=0)
    reply = parse(req, upstream_answer(req, "www.example.com. 300 IN A 192.0.2.7"), stored=100.0)
    other = request("WWW.Example.com", "A", use_edns=False)
    msg, lib = decode(reply.render(other, 110.9))
    assert msg.id == other.id
    assert msg.question[0].name.to_text() == "WWW.Example.com."
    assert msg.answer[0].ttl == 290
    assert msg.edns == -1
    assert lib.rr[0].ttl == 290
    msg2, _ = decode(reply.render(req, 1000.0))
    assert msg2.answer[0].ttl == 0 and msg2.edns == 0


def test_negative_ttl_is_min_of_soa_ttl_and_minimum():
    req = request("gone.example.com", "A", use_edns=0)
    soa = "example.com. 900 IN SOA ns.example.com. host.example.com. 1 3600 600 86400 45"
    reply = parse(req, upstream_answer(req, soa, rcode=c.NXDOMAIN))
    assert reply.rcode == c.NXDOMAIN and reply.ancount == 0 and reply.ttl == 45
    msg, _ = decode(reply.render(req, 100.0))
    assert msg.authority[0].ttl == 45


def test_negative_without_soa_is_not_cached():
    req = request("gone.example.com", "A")
    assert parse(req, upstream_answer(req, rcode=c.NXDOMAIN)).ttl is None


def test_ttl_clamps():
    req = request("www.example.com", "A")
    data = upstream_answer(req, "www.example.com. 5 IN A 192.0.2.7")
    reply = parse(req, data, min_ttl=30, max_ttl=100)
    assert reply.ttl == 30
    msg, _ = decode(reply.render(req, 100.0))
    assert msg.answer[0].ttl == 30


def test_opt_in_the_middle_of_additional_cuts_the_rest():
    req = request("example.com", "NS", use_edns=0)
    data = upstream_answer(req, "example.com. 300 IN NS ns1.example.com.", extra=("ns1.example.com. 300 IN A 192.0.2.53",))
    reply = parse(req, data)
    assert reply.arcount == 1
    msg, _ = decode(reply.render(req, 100.0))
    assert msg.additional[0].name.to_text() == "ns1.example.com."


@pytest.mark.parametrize("cut", [13, 20, 30])
def test_malformed_answers_raise(cut):
    req = request("www.example.com", "A")
    data = upstream_answer(req, "www.example.com. 300 IN A 192.0.2.7")
    with pytest.raises(MalformedReply):
        parse(req, data[: len(data) - cut])
