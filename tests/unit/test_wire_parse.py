from __future__ import annotations

import struct

import dns.edns
import dns.message
import pytest

from sinkdns.wire import constants as c
from sinkdns.wire.parse import parse_query

CLIENT = ("127.0.0.1", 5353)


def parse(wire: bytes):
    return parse_query(wire, CLIENT, "udp", 0.0)


def test_plain_query():
    query = dns.message.make_query("WWW.Example.COM", "AAAA", use_edns=False)
    req = parse(query.to_wire())
    assert req.id == query.id
    assert req.qname == "www.example.com"
    assert req.qname_wire == b"\x03WWW\x07Example\x03COM\x00"
    assert req.qtype == c.TYPE_AAAA and req.qclass == c.CLASS_IN
    assert req.edns is None and req.problem == 0
    assert req.max_udp == 512


def test_edns_options_and_do():
    ede = dns.edns.GenericOption(c.OPT_EDE, b"")
    query = dns.message.make_query("example.com", "A", use_edns=0, payload=4096, want_dnssec=True, options=[ede])
    req = parse(query.to_wire())
    assert req.edns.payload == 4096 and req.edns.do and req.edns.version == 0
    assert req.edns.ede_signal
    assert req.max_udp == 1232


def test_small_payload_counts_as_512():
    req = parse(dns.message.make_query("example.com", "A", use_edns=0, payload=100).to_wire())
    assert req.max_udp == 512


def test_root_name():
    req = parse(dns.message.make_query(".", "NS").to_wire())
    assert req.qname == "" and req.qname_wire == b"\x00"


def test_odd_bytes_in_labels_are_escaped_not_confused():
    wire = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x03a.b\x00\x00\x01\x00\x01"
    two_labels = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x01a\x01b\x00\x00\x01\x00\x01"
    assert parse(wire).qname == "a\\046b"
    assert parse(two_labels).qname == "a.b"
    assert parse(wire).key != parse(two_labels).key


def test_key_folds_only_the_name():
    a = parse(dns.message.make_query("Example.com", 65).to_wire())  # type 65 = 0x0041, 'A' in ASCII
    b = parse(dns.message.make_query("example.COM", 97).to_wire())  # type 97 = 0x0061, 'a'
    assert a.key != b.key
    assert a.key == parse(dns.message.make_query("EXAMPLE.com", 65).to_wire()).key


HEADER = struct.Struct("!HHHHHH")
QUESTION = b"\x07example\x03com\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(
    "wire, problem",
    [
        (HEADER.pack(1, 0, 0, 0, 0, 0), c.FORMERR),
        (HEADER.pack(1, 0, 2, 0, 0, 0) + QUESTION * 2, c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 0) + QUESTION[:-2], c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 0) + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01", c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01", c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 0) + QUESTION + b"junk", c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 5) + QUESTION, c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 2) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2, c.FORMERR),
        (HEADER.pack(1, 0, 1, 1, 0, 0) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", c.FORMERR),
        (HEADER.pack(1, 0, 1, 0, 0, 1) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x01\x00\x00\x00\x00", c.BADVERS),
        (HEADER.pack(1, 0x2800, 1, 0, 0, 0) + QUESTION, c.NOTIMP),
    ],
    ids=[
        "no-question", "two-questions", "cut-question", "label-64", "pointer-in-question", "name-over-255",
        "trailing-junk", "arcount-past-end", "two-opts", "opt-in-answer", "edns-version-1", "opcode-update",
    ],
)
def test_problems(wire, problem):
    req = parse(wire)
    assert req is not None and req.problem == problem


@pytest.mark.parametrize("wire", [b"", b"\x00" * 11, HEADER.pack(1, 0x8000, 1, 0, 0, 0) + QUESTION])
def test_dropped(wire):
    assert parse(wire) is None
