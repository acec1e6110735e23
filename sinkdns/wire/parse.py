"""Read a query's header, question and EDNS straight from bytes (RFC 1035 4.1, RFC 6891 6.1)."""

from __future__ import annotations

import struct

from sinkdns.model import Edns, Request
from sinkdns.wire import constants as c
from sinkdns.wire.name import NameError_, labels_to_text, skip_name

HEADER = struct.Struct("!HHHHHH")
_U16x2 = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")
# An OPT record without options, as nearly every EDNS query ends: the same 11 bytes give the same Edns,
# so the few distinct ones seen are kept (at most 256, whatever clients send) and the walk is skipped.
_PLAIN_OPT_SIZE = 11
_PLAIN_OPTS: dict[bytes, Edns] = {}
# Bytes that may appear in a name's text form without escaping; anything else takes the slow path.
_PLAIN = bytes(range(ord("a"), ord("z") + 1)) + b"0123456789-_*." + bytes(range(ord("A"), ord("Z") + 1))


def parse_edns(klass: int, ttl: int, rdata: bytes) -> Edns:
    options = []
    pos = 0
    while pos < len(rdata):
        if pos + 4 > len(rdata):
            raise ValueError("truncated EDNS option")
        code, length = _U16x2.unpack_from(rdata, pos)
        pos += 4
        if pos + length > len(rdata):
            raise ValueError("EDNS option runs past OPT RDATA")
        if code == c.OPT_COOKIE and not (length == 8 or 16 <= length <= 40):
            raise ValueError("malformed COOKIE option (RFC 7873 5.2.2)")
        options.append((code, rdata[pos:pos + length]))
        pos += length
    return Edns(payload=klass, version=(ttl >> 16) & 0xFF, do=bool(ttl & c.DO_BIT), options=tuple(options))


def name_text(labels: list[bytes]) -> str:
    """Text form of a name (see name.labels_to_text), fast for the ordinary case."""
    joined = b".".join(labels)
    if not joined.translate(None, _PLAIN) and joined.count(b".") == len(labels) - 1:
        return joined.lower().decode("ascii")
    return labels_to_text(labels)


def parse_query(data: bytes, client: tuple, transport: str, received: float) -> Request | None:
    """Parse a query; None means drop it silently (too short for a header, or a response).

    What can be read is kept even when the rest is bad, so the error answer echoes the ID and question.
    """
    if len(data) < 12:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & c.QR:
        return None
    req = Request(data, qid, flags, client, transport, received)
    if qdcount != 1:
        req.problem = c.FORMERR
        return req
    n = len(data)
    pos = 12
    labels = []
    total = 1
    try:
        while True:
            length = data[pos]
            if length == 0:
                pos += 1
                break
            if length > 63:
                raise ValueError("compressed or reserved label in question")
            start = pos + 1
            pos = start + length
            total += length + 1
            if pos > n or total > 255:
                raise ValueError("bad question name")
            labels.append(data[start:pos])
        if pos + 4 > n:
            raise ValueError("question runs past the end")
    except (IndexError, ValueError):
        req.problem = c.FORMERR
        return req
    req.qname_wire = data[12:pos]
    req.qtype, req.qclass = _U16x2.unpack_from(data, pos)
    pos += 4
    req.question = data[12:pos]
    req.qname = name_text(labels)
    if (flags >> 11) & 0xF:
        req.problem = c.NOTIMP
    elif ancount or nscount or arcount > 1:
        # A query carries no answers and at most one additional record, its OPT (as Unbound enforces).
        req.problem = c.FORMERR
    elif arcount:
        edns = _PLAIN_OPTS.get(data[pos:]) if n - pos == _PLAIN_OPT_SIZE else None
        if edns is None:
            try:
                edns = _find_opt(data, pos, ancount, nscount, arcount)
            except (NameError_, ValueError, struct.error):
                req.problem = c.FORMERR
                return req
            if edns is not None and not edns.options and n - pos == _PLAIN_OPT_SIZE and len(_PLAIN_OPTS) < 256:
                _PLAIN_OPTS[data[pos:]] = edns
        req.edns = edns
        if edns is not None and edns.version != 0:
            req.problem = c.BADVERS
    elif pos != n:
        req.problem = c.FORMERR
    return req


def _find_opt(data: bytes, pos: int, ancount: int, nscount: int, arcount: int) -> Edns | None:
    """Walk the record sections; return the OPT record's EDNS, enforcing one OPT in the additional section."""
    edns = None
    n = len(data)
    for index in range(ancount + nscount + arcount):
        owner = pos
        pos = skip_name(data, pos)
        if pos + 10 > n:
            raise ValueError("record runs past the end")
        rtype, klass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        pos += 10
        if pos + rdlen > n:
            raise ValueError("RDATA runs past the end")
        if rtype == c.TYPE_OPT:
            if index < ancount + nscount or edns is not None or data[owner] != 0:
                raise ValueError("misplaced or repeated OPT record")
            edns = parse_edns(klass, ttl, data[pos:pos + rdlen])
        pos += rdlen
    if pos != n:
        raise ValueError("trailing bytes after the last record")
    return edns
