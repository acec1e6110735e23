from __future__ import annotations

import dns.edns
import dns.flags
import dns.rcode
import dnslib

from sinkdns.wire import build
from sinkdns.wire import constants as c
from sinkdns.wire.name import text_to_wire
from tests.unit.util import decode, request


def test_answer_echoes_id_question_and_flags():
    req = request("MiXeD.example.com", "A", use_edns=False)
    wire = build.answer(req, answers=(build.rr(build.QNAME_POINTER, c.TYPE_A, 60, bytes([192, 0, 2, 1])),))
    msg, lib = decode(wire)
    assert msg.id == req.id
    assert msg.question[0].name.to_text() == "MiXeD.example.com."
    assert msg.flags & dns.flags.QR and msg.flags & dns.flags.RA and msg.flags & dns.flags.RD
    assert msg.edns == -1
    assert str(lib.rr[0].rdata) == "192.0.2.1" and lib.rr[0].ttl == 60


def test_opt_only_when_asked_and_extended_rcode():
    req = request("example.com", use_edns=0)
    msg, _ = decode(build.answer(req, c.BADVERS))
    assert msg.edns == 0 and msg.payload == c.EDNS_PAYLOAD
    assert msg.rcode() == dns.rcode.BADVERS


def test_ede_option_is_cut_to_200_bytes_on_a_character_boundary():
    code, data = build.ede_option(15, "é" * 150)
    assert code == c.OPT_EDE
    assert len(data) - 2 <= 200
    data[2:].decode("utf-8")


def test_negative_answer_soa_points_into_the_question():
    req = request("a.b.Example.com", "MX", use_edns=0)
    wire = build.negative(req, c.NXDOMAIN, "example.com", 30, text_to_wire("nobody.invalid"))
    msg, lib = decode(wire)
    assert msg.rcode() == dns.rcode.NXDOMAIN
    soa = msg.authority[0]
    assert soa.name.to_text() == "Example.com."
    assert soa.ttl == 30 and soa[0].minimum == 30
    assert lib.auth[0].rtype == dnslib.QTYPE.SOA


def test_truncated_keeps_question_and_opt():
    req = request("example.com", "TXT", use_edns=0)
    msg, _ = decode(build.truncated(req))
    assert msg.flags & dns.flags.TC and msg.answer == [] and msg.edns == 0


def test_upstream_query_passes_do_and_cd_and_nothing_else():
    req = request("example.com", "A", use_edns=0, want_dnssec=True, options=[dns.edns.ECSOption("192.0.2.0", 24)])
    req_cd = request("example.com", "A", use_edns=False, flags=dns.flags.RD | dns.flags.CD)
    msg, _ = decode(build.upstream_query(req))
    assert msg.flags & dns.flags.RD and msg.ednsflags & dns.flags.DO
    assert msg.payload == 1232 and not msg.options
    msg_cd, _ = decode(build.upstream_query(req_cd))
    assert msg_cd.flags & dns.flags.CD and not msg_cd.ednsflags & dns.flags.DO
