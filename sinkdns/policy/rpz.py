"""RPZ master files (draft-vixie-dnsop-dns-rpz) into rules, with dnspython's zone reader as the reference.

Plain `owner [ttl] [IN] CNAME target` and `owner [ttl] [IN] A addr` lines, the bulk of every feed, are read
by one regular expression; every other line goes to dnspython's `Reader`, which keeps the same state
(origin, last owner, TTLs) across lines. `fast=False` sends every line to dnspython, so tests can prove
that both paths give the same rules.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.tokenizer
import dns.ttl
import dns.zonefile

from sinkdns.policy import rule as r
from sinkdns.policy.rule import LocalRecord
from sinkdns.policy.source import ActionSpec, PolicyFileError, SourceRules, pack
from sinkdns.wire import constants as c
from sinkdns.wire.name import NameError_, labels_to_text, text_to_wire

_NAME = r"(?:[A-Za-z0-9_*-]{1,63}(?:\.[A-Za-z0-9_*-]{1,63})*\.?)"
_FAST = re.compile(
    rf"(@|{_NAME})[ \t]+(?:([0-9]{{1,9}})[ \t]+)?(?:[Ii][Nn][ \t]+)?([Cc][Nn][Aa][Mm][Ee]|[Aa])[ \t]+"
    rf"(\.|{_NAME})[ \t]*(?:;.*)?"
)
_IPV4 = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")

# CNAME targets that name an action rather than local data (draft-vixie-dnsop-dns-rpz 3).
_SPECIAL_TARGETS = {
    b"\x00": r.NXDOMAIN,
    b"\x01*\x00": r.NODATA,
    b"\x0crpz-passthru\x00": r.ALLOW,
    b"\x08rpz-drop\x00": r.DROP,
    b"\x0crpz-tcp-only\x00": r.TCP_ONLY,
}
_UNSUPPORTED = {"rpz-nsdname": "NSDNAME", "rpz-nsip": "NSIP"}

LineSource = Callable[[str], Iterator[str]]  # path -> the file's lines (size limit and binary check applied)


@dataclass
class _Owner:
    line: int
    file: str
    records: list[tuple[int, int, bytes]] = field(default_factory=list)


class RpzReader:
    """Reads one RPZ file and the files it $INCLUDEs (inside `zones_dir` only) into SourceRules."""

    def __init__(self, zones_dir: str, read_lines: LineSource, fast: bool = True) -> None:
        self.zones_dir = os.path.realpath(zones_dir)
        self.read_lines = read_lines
        self.fast = fast
        self.origin = "."
        self.origin_set = False
        self.apex: str | None = None
        self.last_name = "."
        self.last_ttl = 0
        self.last_ttl_known = False
        self.default_ttl = 0
        self.default_ttl_known = False
        self.default_ttl_from_soa = False
        self.owners: dict[str, _Owner] = {}
        self.including: list[str] = []
        self.included: list[str] = []

    def read(self, path: str, file: str) -> SourceRules:
        """Parse `path` (shown as `file` in messages); PolicyFileError when the file is unusable as a whole."""
        rules = SourceRules(file, actions=[])
        self._read_file(path, file, rules)
        self._emit(rules)
        rules.includes = tuple(self.included)
        return rules

    # -- reading lines --------------------------------------------------------------------------------

    def _read_file(self, path: str, file: str, rules: SourceRules) -> None:
        real = os.path.realpath(path)
        if real in self.including:
            raise PolicyFileError(file, 0, "$INCLUDE loop")
        self.including.append(real)
        for lineno, text in _logical_lines(self.read_lines(path), file):
            if text[0] == "$":
                self._directive(text, lineno, file, rules)
            elif self.fast and self._fast_line(text, lineno, file):
                continue
            else:
                self._dnspython(text, lineno, file)
        self.including.pop()

    def _directive(self, text: str, lineno: int, file: str, rules: SourceRules) -> None:
        words = _strip_comment(text).split()
        keyword = words[0].upper()
        try:
            if keyword == "$ORIGIN" and len(words) == 2:
                self.origin = self._absolute(words[1], self.origin)
                self.origin_set = True
            elif keyword == "$TTL" and len(words) == 2:
                self.default_ttl = dns.ttl.from_text(words[1])
                self.default_ttl_known = True
                self.default_ttl_from_soa = False
            elif keyword == "$INCLUDE" and len(words) in (2, 3):
                self._include(words[1], words[2] if len(words) == 3 else None, lineno, file, rules)
            elif keyword == "$GENERATE":
                self._dnspython(text, lineno, file, generate=True)
            else:
                raise PolicyFileError(file, lineno, f"bad or unknown directive {words[0]}")
        except (dns.exception.DNSException, NameError_) as exc:
            raise PolicyFileError(file, lineno, f"{words[0]}: {exc}") from None

    def _include(self, target: str, origin: str | None, lineno: int, file: str, rules: SourceRules) -> None:
        path = os.path.realpath(os.path.join(self.zones_dir, target))
        if os.path.dirname(path) != self.zones_dir and not path.startswith(self.zones_dir + os.sep):
            raise PolicyFileError(file, lineno, f"$INCLUDE {target}: outside the zones directory")
        saved = (self.origin, self.last_name, self.last_ttl, self.last_ttl_known, self.default_ttl,
                 self.default_ttl_known, self.default_ttl_from_soa)
        if origin is not None:
            self.origin = self._absolute(origin, self.origin)
        self.included.append(path)
        self._read_file(path, os.path.relpath(path, self.zones_dir), rules)
        (self.origin, self.last_name, self.last_ttl, self.last_ttl_known, self.default_ttl,
         self.default_ttl_known, self.default_ttl_from_soa) = saved

    @staticmethod
    def _absolute(name: str, origin: str) -> str:
        return _text(dns.name.from_text(name, dns.name.from_text(origin)))

    def _fast_line(self, text: str, lineno: int, file: str) -> bool:
        """Handle a plain CNAME or A line; False sends the line to dnspython instead."""
        m = _FAST.fullmatch(text)
        if m is None or "\\" in self.origin:
            return False
        owner, ttl_text, rtype_text, target = m.groups()
        if len(owner) > 200 or len(target) > 200:
            return False
        rtype = c.TYPE_CNAME if len(rtype_text) == 5 else c.TYPE_A
        if rtype == c.TYPE_A:
            if not _IPV4.fullmatch(target):
                return False
            rdata = bytes(int(part) for part in target.split("."))
        else:
            rdata = text_to_wire(self._join(target.lower()))
        name = self._join(owner.lower())
        if ttl_text is not None:
            ttl = int(ttl_text)
            self.last_ttl, self.last_ttl_known = ttl, True
        elif self.last_ttl_known and (not self.default_ttl_known or self.default_ttl_from_soa):
            ttl = self.last_ttl
        elif self.default_ttl_known:
            ttl = self.default_ttl
        else:
            raise PolicyFileError(file, lineno, "Missing default TTL value")
        self.last_name = name
        self._record(name, rtype, ttl, rdata, lineno, file)
        return True

    def _join(self, name: str) -> str:
        if name == "@":
            return self.origin
        if name.endswith("."):
            return name
        return name + "." if self.origin == "." else f"{name}.{self.origin}"

    def _dnspython(self, text: str, lineno: int, file: str, generate: bool = False) -> None:
        """Read one record (or a $GENERATE) with dnspython, carrying the reader's state in and out."""
        records = _Collect()
        try:
            reader = dns.zonefile.Reader(
                dns.tokenizer.Tokenizer(text, file), dns.rdataclass.IN, records,  # type: ignore[arg-type]
                allow_directives={"$GENERATE"} if generate else False,
            )
            reader.current_origin = dns.name.from_text(self.origin)
            reader.last_name = dns.name.from_text(self.last_name)
            reader.last_ttl, reader.last_ttl_known = self.last_ttl, self.last_ttl_known
            reader.default_ttl, reader.default_ttl_known = self.default_ttl, self.default_ttl_known
            reader.default_ttl_from_soa = self.default_ttl_from_soa
            reader.read()
        except dns.exception.DNSException as exc:
            raise PolicyFileError(file, lineno, str(exc).replace(f"{file}:1: ", "")) from None
        self.last_name = _text(reader.last_name)
        self.last_ttl, self.last_ttl_known = reader.last_ttl, reader.last_ttl_known
        self.default_ttl, self.default_ttl_known = reader.default_ttl, reader.default_ttl_known
        self.default_ttl_from_soa = reader.default_ttl_from_soa
        for name, ttl, rd in records.added:
            self._record(_text(name), rd.rdtype, ttl, rd.to_digestable(), lineno, file)

    def _record(self, name: str, rtype: int, ttl: int, rdata: bytes, lineno: int, file: str) -> None:
        if self.apex is None:
            # The zone's apex: the first record's origin, or its owner when it is the SOA. A file without
            # $ORIGIN whose SOA names the zone reads like a BIND zone file: the SOA owner is the origin.
            self.apex = name if rtype == c.TYPE_SOA else self.origin
            if not self.origin_set:
                self.origin = self.apex
        owner = self.owners.get(name)
        if owner is None:
            owner = self.owners[name] = _Owner(lineno, file)
        owner.records.append((rtype, ttl, rdata))

    # -- records into rules ---------------------------------------------------------------------------

    def _emit(self, rules: SourceRules) -> None:
        actions: dict[ActionSpec, int] = {}
        apex = self.apex or "."
        for name, owner in self.owners.items():
            if apex == ".":
                relative = name[:-1]
            elif name == apex:
                relative = ""
            elif name.endswith("." + apex):
                relative = name[: -len(apex) - 1]
            else:
                rules.skip(owner.line, f"{name} is outside the zone {apex}", owner.file)
                continue
            if not relative:
                if any(rtype not in (c.TYPE_SOA, c.TYPE_NS) for rtype, _, _ in owner.records):
                    rules.skip(owner.line, "records at the zone apex are not policy", owner.file)
                continue
            spec = self._action(name, owner, rules)
            if spec is None:
                continue
            index = actions.get(spec)
            if index is None:
                index = actions[spec] = len(rules.actions)
                rules.actions.append(spec)
            self._trigger(relative, owner, index, rules)

    def _action(self, name: str, owner: _Owner, rules: SourceRules) -> ActionSpec | None:
        file = "" if owner.file == rules.file else owner.file
        records = owner.records
        cnames = [rec for rec in records if rec[0] == c.TYPE_CNAME]
        if cnames:
            if len(records) > 1:
                rules.skip(owner.line, f"{name}: a CNAME with other data; only the first CNAME is used", owner.file)
            _, ttl, target = cnames[0]
            kind = _SPECIAL_TARGETS.get(target)
            if kind is not None:
                return ActionSpec(kind, file=file)
            if target == text_to_wire(name):
                return ActionSpec(r.ALLOW, file=file)  # the older PASSTHRU form: a CNAME to itself
            if target.startswith(b"\x01*"):
                return ActionSpec(r.LOCAL_DATA, (LocalRecord(c.TYPE_CNAME, ttl, target[2:], True),), file)
            return ActionSpec(r.LOCAL_DATA, (LocalRecord(c.TYPE_CNAME, ttl, target),), file)
        local = []
        for rtype, ttl, rdata in records:
            if rtype in (c.TYPE_SOA, c.TYPE_NS, c.TYPE_DNAME):
                rules.skip(owner.line, f"{name}: type {rtype} cannot be local data", owner.file)
                continue
            record = LocalRecord(rtype, ttl, rdata)
            if record not in local:
                local.append(record)
        if not local:
            return None
        return ActionSpec(r.LOCAL_DATA, tuple(local), file)

    @staticmethod
    def _trigger(relative: str, owner: _Owner, action: int, rules: SourceRules) -> None:
        labels = relative.rsplit(".", 1)
        kind = labels[-1] if len(labels) == 2 else ""
        if kind in ("rpz-ip", "rpz-client-ip"):
            try:
                network = ip_trigger(labels[0])
            except ValueError as exc:
                rules.skip(owner.line, f"{relative}: {exc}", owner.file)
                return
            table = rules.response_ip if kind == "rpz-ip" else rules.client
            table.append((network, pack(owner.line, action)))
        elif kind in _UNSUPPORTED:
            rules.unsupported += 1
            rules.warn(owner.line, f"{relative}: {_UNSUPPORTED[kind]} triggers are not supported", owner.file)
        elif relative == "*":
            rules.skip(owner.line, "a wildcard for every name is not supported", owner.file)
        elif relative.startswith("*."):
            rules.wild_names.append(relative[2:])
            rules.wild_refs.append(pack(owner.line, action, True))
        else:
            rules.exact_names.append(relative)
            rules.exact_refs.append(pack(owner.line, action))


def ip_trigger(text: str) -> str:
    """`24.0.2.0.192` -> `192.0.2.0/24`; `48.zz.db8.2001` -> `2001:db8::/48` (draft-vixie-dnsop-dns-rpz 4.2)."""
    parts = text.split(".")
    if len(parts) < 2 or not parts[0].isdigit():
        raise ValueError("expected PREFIXLEN.ADDRESS-IN-REVERSE")
    words = parts[:0:-1]
    if len(words) == 4 and all(w.isdigit() for w in words):
        address = ".".join(words)
    else:
        address = ":".join("" if w == "zz" else w for w in words)
        if address.startswith(":"):
            address = ":" + address
        if address.endswith(":"):
            address += ":"
    try:
        return str(ipaddress.ip_network(f"{address}/{int(parts[0])}"))
    except ValueError as exc:
        raise ValueError(f"not a valid IP trigger ({exc})") from None


class _Collect:
    """Stands in for the dnspython transaction a Reader writes to: it only keeps each record read."""

    def __init__(self) -> None:
        self.added: list[tuple[dns.name.Name, int, dns.rdata.Rdata]] = []
        self.manager = self

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return dns.name.root, False, dns.name.root

    def check_put_rdataset(self, check: object) -> None:
        pass

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        self.added.append((name, ttl, rdata))


def _text(name: dns.name.Name) -> str:
    """Absolute text of a dnspython name in sinkdns's spelling (lower case, same escapes as queries)."""
    return labels_to_text([label.lower() for label in name.labels[:-1]]) + "."


def _strip_comment(text: str) -> str:
    return text.split(";", 1)[0]


def _logical_lines(lines: Iterable[str], file: str) -> Iterator[tuple[int, str]]:
    """Lines as records: blank and comment lines dropped, parenthesised records joined, first line number kept."""
    pending: list[str] = []
    start = 0
    depth = 0
    for lineno, line in enumerate(lines, 1):
        if not pending:
            if "(" not in line and '"' not in line:
                stripped = line.strip()
                if stripped and stripped[0] != ";":
                    yield lineno, line.rstrip()
                continue
            start = lineno
        pending.append(line)
        depth = _paren_depth(line, depth, file, lineno)
        if depth == 0:
            text = "\n".join(pending)
            pending = []
            if text.strip() and text.strip()[0] != ";":
                yield start, text
    if pending:
        raise PolicyFileError(file, start, "unbalanced parentheses")


def _paren_depth(line: str, depth: int, file: str, lineno: int) -> int:
    quoted = False
    escaped = False
    for ch in line:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == ";":
            break
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise PolicyFileError(file, lineno, "unbalanced parentheses")
    return depth
