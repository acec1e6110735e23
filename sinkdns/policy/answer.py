"""Block answers built on bytes: the query's header and question, records pointing back into the question.

A -> the block-page IPv4 addresses, AAAA -> its IPv6 addresses or NODATA, ANY -> the A records
(RFC 8482), anything else NODATA; NXDOMAIN and NODATA carry a synthesized SOA for negative caching
(RFC 2308). AD is never set and DO is not echoed. With EDNS an Extended DNS Error (RFC 8914) says who
blocked and why, as I-JSON when the client sent an empty EDE option (draft-ietf-dnsop-structured-dns-error).
"""

from __future__ import annotations

import ipaddress
import json

from sinkdns.config import BlockPageConfig, PolicyConfig
from sinkdns.model import Decision, Outcome, Request, Response
from sinkdns.policy import rule as r
from sinkdns.policy.rule import LocalRecord, Rule
from sinkdns.wire import constants as c
from sinkdns.wire.build import QNAME_POINTER, answer, ede_option, rr, soa_rdata, suffix_pointer, truncated

EDE_LIMIT = 200
_HOSTMASTER = b"\x0ahostmaster"


class BlockAnswers:
    """Synthesizes the answer a matched rule gives; record bytes that depend only on the TTL are cached."""

    def __init__(self, config: PolicyConfig, blockpage: BlockPageConfig) -> None:
        self.block_ip = tuple(ipaddress.IPv4Address(ip).packed for ip in config.block_ip)
        self.block_ipv6 = tuple(ipaddress.IPv6Address(ip).packed for ip in config.block_ipv6)
        self.ttl = config.ttl
        self.operator = blockpage.operator
        self._a: dict[int, tuple[bytes, ...]] = {}
        self._aaaa: dict[int, tuple[bytes, ...]] = {}

    def respond(self, req: Request, rule: Rule, owner_labels: int) -> Response:
        """The block answer for `req`; the SOA, when there is one, is owned by the question's suffix with
        `owner_labels` labels (the matched rule's name)."""
        action = rule.action
        kind = action.kind
        decision = rule.decision
        if kind == r.DROP:
            return Response(None, Outcome.BLOCKED, decision=decision)
        if kind == r.TCP_ONLY:
            return Response(truncated(req), Outcome.BLOCKED, decision=decision)
        qtype = req.qtype
        ttl = action.ttl
        rcode = c.NOERROR
        records: tuple[bytes, ...] = ()
        if kind == r.BLOCKPAGE:
            if qtype == c.TYPE_A or qtype == c.TYPE_ANY:
                records = self._records(self._a, self.block_ip, c.TYPE_A, ttl)
            elif qtype == c.TYPE_AAAA:
                records = self._records(self._aaaa, self.block_ipv6, c.TYPE_AAAA, ttl)
        elif kind == r.NXDOMAIN:
            rcode = c.NXDOMAIN
        elif kind == r.LOCAL_DATA:
            records = _local(req, action.local)
            if records is None:
                records, rcode = (), c.NXDOMAIN
        authority = () if records else (_soa(req, owner_labels, ttl),)
        options = (self._ede(req, rule),) if req.edns is not None else ()
        return Response(answer(req, rcode, records, authority, options=options), Outcome.BLOCKED, rcode, decision)

    def canary(self, req: Request) -> Response:
        """NXDOMAIN for a name browsers probe to decide whether to bypass this resolver."""
        name_labels = req.qname.count(".") + 1 if req.qname else 0
        wire = answer(req, c.NXDOMAIN, authority=(_soa(req, name_labels, self.ttl),))
        decision = Decision("nxdomain", "", "", req.qname, "built-in resolver-bypass canary", ttl=self.ttl)
        return Response(wire, Outcome.LOCAL, c.NXDOMAIN, decision)

    @staticmethod
    def _records(cache: dict[int, tuple[bytes, ...]], addresses: tuple[bytes, ...], rtype: int, ttl: int) -> tuple[bytes, ...]:
        records = cache.get(ttl)
        if records is None:
            records = cache[ttl] = tuple(rr(QNAME_POINTER, rtype, ttl, packed) for packed in addresses)
        return records

    def _ede(self, req: Request, rule: Rule) -> tuple[int, bytes]:
        action = rule.action
        if req.edns is not None and req.edns.ede_signal:
            return ede_option(action.ede, sde_text(action.reason, action.link, action.contact, self.operator))
        text = f"{action.customer}: {rule.decision.rule}"
        return ede_option(action.ede, f"{text}; {action.link}" if action.link else text)


def _soa(req: Request, owner_labels: int, ttl: int) -> bytes:
    owner = suffix_pointer(req, owner_labels)
    return rr(owner, c.TYPE_SOA, ttl, soa_rdata(owner, _HOSTMASTER + owner, 1, ttl))


def _local(req: Request, local: tuple[LocalRecord, ...]) -> tuple[bytes, ...] | None:
    """RPZ local data for the question's type (a CNAME answers every type); None when a wildcard CNAME
    target would be too long, which RPZ answers with NXDOMAIN."""
    qtype = req.qtype
    out = []
    for record in local:
        if record.rtype == qtype or record.rtype == c.TYPE_CNAME or qtype == c.TYPE_ANY:
            rdata = record.rdata
            if record.wildcard:
                rdata = req.qname_wire[:-1] + rdata
                if len(rdata) > 255:
                    return None
            out.append(rr(QNAME_POINTER, record.rtype, record.ttl, rdata))
    return tuple(out)


def sde_text(reason: str, link: str, contact: str, organisation: str) -> str:
    """Structured DNS Error I-JSON: `j` justification (reason and link), `c` contact, `o` organisation;
    the reason is shortened, never the JSON cut, so the text stays within EDE_LIMIT bytes."""
    doc: dict[str, object] = {}
    if contact:
        doc["c"] = [contact]
    if organisation:
        doc["o"] = organisation
    for drop in ((), ("c",), ("c", "o")):
        trimmed = {k: v for k, v in doc.items() if k not in drop}
        base = len(_dump({**trimmed, "j": link}).encode())
        room = EDE_LIMIT - base - (1 if link and reason else 0)
        if room >= 0:
            short = _shorten(reason, room)
            trimmed["j"] = f"{short} {link}" if short and link else short or link
            return _dump(trimmed)
    return _dump({"j": ""})


def _dump(doc: dict[str, object]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _shorten(text: str, room: int) -> str:
    """`text` in at most `room` bytes of JSON string content, ending in an ellipsis when cut."""
    if len(json.dumps(text, ensure_ascii=False).encode()) - 2 <= room:
        return text
    while text and len(json.dumps(text + "…", ensure_ascii=False).encode()) - 2 > room:
        text = text[: max(len(text) - 8, 0)] if len(text) > 40 else text[:-1]
    return text + "…" if text else ""
