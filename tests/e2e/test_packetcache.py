"""UDP answers from the packet cache are byte for byte what the chain sends (TCP always runs the chain)."""

from __future__ import annotations

import itertools
import socket
import struct

import dns.edns
import dns.message
import pytest

from tests.support.process import ROOT

pytestmark = pytest.mark.e2e

NAMES = ["kiwifarms.net", "WWW.KiwiFarms.st", "www.sinkdns.test", "Alias.SinkDNS.test", "localhost", "missing.sinkdns.test"]
TYPES = ["A", "AAAA", "MX", "HTTPS"]
EDNS = [
    {"use_edns": False},
    {"use_edns": 0, "payload": 1232},
    {"use_edns": 0, "payload": 4096, "want_dnssec": True},
    {"use_edns": 0, "options": [dns.edns.GenericOption(dns.edns.OptionType.EDE, b"")]},
]


def udp(server, wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(wire, (server.host, server.port))
        return sock.recv(65535)


def tcp(server, wire: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(struct.pack("!H", len(wire)) + wire)
        length = struct.unpack("!H", conn.recv(2))[0]
        data = b""
        while len(data) < length:
            data += conn.recv(length - len(data))
        return data


def test_fast_path_answers_equal_the_chains(nsd, start_sinkdns):
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(ROOT / "zones"))
    compared = 0
    for name, rdtype, edns in itertools.product(NAMES, TYPES, EDNS):
        wire = dns.message.make_query(name, rdtype, **edns).to_wire()
        udp(server, wire)  # forwarded (or answered) and cached
        udp(server, wire)  # through the chain again, now kept in the packet cache
        for _ in range(3):  # a cached answer's TTLs may tick between the two: then ask again
            slow = tcp(server, wire)
            fast = udp(server, wire)
            if fast[2:] == slow[2:]:
                break
        assert fast[:2] == wire[:2] and slow[:2] == wire[:2]
        assert fast[2:] == slow[2:], (name, rdtype, edns)
        compared += 1
    assert compared == len(NAMES) * len(TYPES) * len(EDNS)
