"""An upstream answer kept as bytes with the offsets of its TTLs, so a cache hit is a copy and a few patches."""

from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, inet_ntop

from sinkdns.model import Request
from sinkdns.wire import constants as c
from sinkdns.wire.build import opt_record, response_flags
from sinkdns.wire.name import read_name, skip_name
from sinkdns.wire.parse import HEADER, name_text

_RR_FIXED = struct.Struct("!HHIH")
_U32 = struct.Struct("!I")


class MalformedReply(ValueError):
    """An upstream answer that passed ID, address and question checks but cannot be read."""


class Reply:
    """A parsed upstream answer: header facts, the sections after the question (OPT removed) and TTL offsets.

    `names` (CNAME targets) and `addresses` (A/AAAA in the answer section) are kept beside the bytes so
    response-side policy can judge cached answers without parsing them again.
    """

    __slots__ = (
        "rcode", "flags", "ancount", "nscount", "arcount", "body", "ttl_offsets", "ttls",
        "ttl", "names", "addresses", "stored", "upstream",
    )

    def __init__(self) -> None:
        self.rcode = 0
        self.flags = 0
        self.ancount = 0
        self.nscount = 0
        self.arcount = 0
        self.body = b""
        self.ttl_offsets: tuple[int, ...] = ()
        self.ttls: tuple[int, ...] = ()
        self.ttl: int | None = None  # seconds this answer may be cached, None for never
        self.names: tuple[str, ...] = ()
        self.addresses: tuple[str, ...] = ()
        self.stored = 0.0
        self.upstream = ""  # the server that gave it (host:port), for the query log

    @classmethod
    def from_wire(cls, data: bytes, question_end: int, stored: float, min_ttl: int = 0, max_ttl: int = 86400) -> Reply:
        """Parse `data`, an answer whose header and question were already checked to end at `question_end`."""
        try:
            return cls._parse(data, question_end, stored, min_ttl, max_ttl)
        except (IndexError, ValueError, struct.error) as exc:
            raise MalformedReply(str(exc)) from exc

    @classmethod
    def _parse(cls, data: bytes, pos: int, stored: float, min_ttl: int, max_ttl: int) -> Reply:
        question_end = pos
        _, flags, _, ancount, nscount, arcount = HEADER.unpack_from(data)
        rcode = flags & c.RCODE_MASK
        n = len(data)
        an_ns = ancount + nscount
        offsets: list[int] = []
        ttls: list[int] = []
        names: list[str] = []
        addresses: list[str] = []
        soa_ttl = None
        patches: list[tuple[int, int]] = []
        end = n
        kept_ar = arcount
        for index in range(an_ns + arcount):
            start = pos
            if pos < n and data[pos] & 0xC0 == 0xC0:  # the usual owner: a pointer to the question
                pos += 2
            else:
                pos = skip_name(data, pos)
            if pos + 10 > n:
                raise ValueError("record runs past the end")
            rtype, _, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
            ttl_at = pos + 4
            pos += 10
            rdata_end = pos + rdlen
            if rdata_end > n:
                raise ValueError("RDATA runs past the end")
            if rtype == c.TYPE_OPT:
                if index < an_ns or data[start] != 0:
                    raise ValueError("OPT outside the additional section")
                rcode |= (ttl >> 24) << 4
                # Cut the OPT and whatever follows it: additional records are optional, and nothing
                # before the cut can point past it.
                end = start
                kept_ar = index - an_ns
                break
            # A TTL with the top bit set means zero (RFC 2181 8).
            clamped = 0 if ttl & 0x80000000 else ttl
            if clamped < min_ttl:
                clamped = min_ttl
            if clamped > max_ttl:
                clamped = max_ttl
            if ancount <= index < an_ns and rtype == c.TYPE_SOA and soa_ttl is None:
                if rdlen < 22:
                    raise ValueError("SOA RDATA too short")
                # A negative answer lives for min(SOA TTL, MINIMUM), and says so (RFC 2308 3 and 5).
                clamped = soa_ttl = min(clamped, _U32.unpack_from(data, rdata_end - 4)[0])
            if clamped != ttl:
                patches.append((ttl_at, clamped))
            offsets.append(ttl_at - question_end)
            ttls.append(clamped)
            if index < ancount:
                if rtype == c.TYPE_A:
                    if rdlen == 4:
                        addresses.append(inet_ntop(AF_INET, data[pos:rdata_end]))
                elif rtype == c.TYPE_AAAA:
                    if rdlen == 16:
                        addresses.append(inet_ntop(AF_INET6, data[pos:rdata_end]))
                elif rtype == c.TYPE_CNAME or rtype == c.TYPE_DNAME:
                    names.append(name_text(read_name(data, pos)[0]))
            pos = rdata_end
        else:
            if pos != n:
                raise ValueError("trailing bytes after the last record")
        if patches:
            patched = bytearray(data)
            for offset, ttl in patches:
                _U32.pack_into(patched, offset, ttl)
            data = bytes(patched)
        self = cls.__new__(cls)
        self.rcode = rcode
        self.flags = flags
        self.ancount = ancount
        self.nscount = nscount
        self.arcount = kept_ar
        self.body = data[question_end:end]
        self.ttl_offsets = tuple(offsets)
        self.ttls = tuple(ttls)
        self.names = tuple(names)
        self.addresses = tuple(addresses)
        self.stored = stored
        self.upstream = ""
        if rcode == c.NOERROR and ancount:
            self.ttl = min(ttls[:ancount])
        elif rcode == c.NXDOMAIN or rcode == c.NOERROR:
            self.ttl = soa_ttl
        else:
            self.ttl = None
        return self

    def as_servfail(self) -> Reply:
        """A record-less SERVFAIL standing in for this answer (an upstream that refused): cached for the
        short SERVFAIL time like a real one, so a flood of refused names does not reach the upstream each time."""
        failure = Reply()
        failure.rcode = c.SERVFAIL
        failure.flags = (self.flags & ~c.RCODE_MASK) | c.SERVFAIL
        failure.stored = self.stored
        failure.upstream = self.upstream
        return failure

    def render(self, req: Request, now: float) -> bytes:
        """The answer for `req`: its ID and question, TTLs counted down since the answer was stored."""
        extra = 0
        if self.flags & c.AD and (req.flags & c.AD or (req.edns is not None and req.edns.do)):
            extra = c.AD
        edns = req.edns
        head = HEADER.pack(
            req.id, response_flags(req, self.rcode, extra), 1, self.ancount, self.nscount,
            self.arcount + (1 if edns is not None else 0),
        )
        body = self.body
        elapsed = int(now - self.stored)
        if elapsed > 0 and self.ttl_offsets:
            patched = bytearray(body)
            pack_into = _U32.pack_into
            for offset, ttl in zip(self.ttl_offsets, self.ttls):
                pack_into(patched, offset, ttl - elapsed if ttl > elapsed else 0)
            body = bytes(patched)
        if edns is None:
            return head + req.question + body
        return head + req.question + body + opt_record(self.rcode, edns.do)

