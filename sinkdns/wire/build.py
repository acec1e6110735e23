"""Build answers by copying the query's header and question and appending records (RFC 1035 4.1)."""

from __future__ import annotations

import struct

from sinkdns.model import Request
from sinkdns.wire import constants as c
from sinkdns.wire.parse import HEADER

_RR_FIXED = struct.Struct("!HHIH")
_OPT_FIXED = struct.Struct("!BHHIH")
_U16x2 = struct.Struct("!HH")
_SOA_TIMES = struct.Struct("!IIIII")

QNAME_POINTER = b"\xc0\x0c"  # the question's name always starts at offset 12


def response_flags(req: Request, rcode: int, extra: int = 0) -> int:
    """Flags of any answer: QR, the query's opcode, RD and CD echoed, RA set, and the low rcode bits."""
    return c.QR | (req.flags & (c.OPCODE_MASK | c.RD | c.CD)) | c.RA | extra | (rcode & c.RCODE_MASK)


def opt_record(rcode: int = 0, do: bool = False, options: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """An OPT pseudo-record advertising sinkdns's payload size and carrying the extended rcode bits.

    Without options there are only a few distinct records; each is built once (every forwarded and
    cached answer to an EDNS client carries one)."""
    if not options:
        key = (rcode >> 4, do)
        opt = _PLAIN_OPTS.get(key)
        if opt is None:
            opt = _PLAIN_OPTS[key] = _opt(rcode, do, b"")
        return opt
    return _opt(rcode, do, b"".join(_U16x2.pack(code, len(data)) + data for code, data in options))


def _opt(rcode: int, do: bool, rdata: bytes) -> bytes:
    ttl = ((rcode >> 4) << 24) | (c.DO_BIT if do else 0)
    return _OPT_FIXED.pack(0, c.TYPE_OPT, c.EDNS_PAYLOAD, ttl, len(rdata)) + rdata


_PLAIN_OPTS: dict[tuple[int, bool], bytes] = {}


def ede_option(info_code: int, text: str) -> tuple[int, bytes]:
    """An Extended DNS Error option (RFC 8914), EXTRA-TEXT cut to 200 bytes on a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) > 200:
        raw = raw[:200].decode("utf-8", "ignore").encode("utf-8")
    return c.OPT_EDE, struct.pack("!H", info_code) + raw


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes, rclass: int = c.CLASS_IN) -> bytes:
    """One resource record; `owner` is wire bytes or a compression pointer such as QNAME_POINTER."""
    return owner + _RR_FIXED.pack(rtype, rclass, ttl, len(rdata)) + rdata


def soa_rdata(mname: bytes, rname: bytes, serial: int, minimum: int) -> bytes:
    """SOA RDATA with conventional refresh/retry/expire; `minimum` drives negative caching (RFC 2308)."""
    return mname + rname + _SOA_TIMES.pack(serial, 3600, 600, 86400, minimum)


def suffix_pointer(req: Request, labels_kept: int) -> bytes:
    """A pointer into the question at the suffix of the query name that has `labels_kept` labels."""
    wire = req.qname_wire
    pos = 0
    total = _count_labels(wire)
    for _ in range(total - labels_kept):
        pos += wire[pos] + 1
    if labels_kept == 0:
        return b"\x00"
    return struct.pack("!H", 0xC000 | (12 + pos))


def _count_labels(wire: bytes) -> int:
    count = 0
    pos = 0
    while wire[pos]:
        pos += wire[pos] + 1
        count += 1
    return count


def answer(
    req: Request,
    rcode: int = c.NOERROR,
    answers: tuple[bytes, ...] = (),
    authority: tuple[bytes, ...] = (),
    additional: tuple[bytes, ...] = (),
    options: tuple[tuple[int, bytes], ...] = (),
    flags: int = 0,
) -> bytes:
    """A complete answer to `req`: its ID and question, the given records, and OPT when it asked with EDNS."""
    edns = req.edns
    arcount = len(additional) + (1 if edns is not None else 0)
    qdcount = 1 if req.question else 0
    head = HEADER.pack(req.id, response_flags(req, rcode, flags), qdcount, len(answers), len(authority), arcount)
    parts = [head, req.question, *answers, *authority, *additional]
    if edns is not None:
        parts.append(opt_record(rcode, False, options))
    return b"".join(parts)


def truncated(req: Request) -> bytes:
    """An empty answer with TC set: the client retries over TCP (RFC 7766 5)."""
    return answer(req, flags=c.TC)



def negative(
    req: Request,
    rcode: int,
    zone: str,
    ttl: int,
    rname: bytes,
    options: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """NXDOMAIN or NODATA with an SOA for `zone` (a suffix of the query name), so the answer is cached
    for `ttl` seconds (RFC 2308 5)."""
    owner = suffix_pointer(req, zone.count(".") + 1 if zone else 0)
    soa = rr(owner, c.TYPE_SOA, ttl, soa_rdata(owner, rname, 1, ttl))
    return answer(req, rcode, authority=(soa,), options=options)


def upstream_query(req: Request) -> bytes:
    """The query sinkdns sends upstream for `req` (ID left 0 for the sender to fill): the client's question
    as sent, RD set, CD passed through, and EDNS with sinkdns's payload size and the client's DO bit.
    No other option travels: EDNS Client Subnet in particular stays here."""
    flags = c.RD | (req.flags & c.CD)
    do = req.edns is not None and req.edns.do
    return HEADER.pack(0, flags, 1, 0, 0, 1) + req.question + opt_record(0, do)
