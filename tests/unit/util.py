"""Helpers for unit tests: Requests from dnspython-made queries, and decoding with both codecs."""

from __future__ import annotations

import dns.message
import dnslib

from sinkdns.model import Request
from sinkdns.wire.parse import parse_query


def request(name: str = "www.example.com", rdtype: str = "A", transport: str = "udp", now: float = 0.0, **kwargs) -> Request:
    wire = dns.message.make_query(name, rdtype, **kwargs).to_wire()
    req = parse_query(wire, ("127.0.0.1", 5353), transport, now)
    assert req is not None
    return req


def decode(wire: bytes) -> tuple[dns.message.Message, dnslib.DNSRecord]:
    """Both parsers must accept what sinkdns builds."""
    return dns.message.from_wire(wire), dnslib.DNSRecord.parse(wire)
