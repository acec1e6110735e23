"""Line-oriented block lists: hosts files, domain lists, adblock (`||name^`) and dnsmasq directives.

Every entry blocks its name and all names under it with the customer's action (adblock `@@` allows).
A line that cannot be used is skipped, counted and reported with file:line; it never fails the file.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from sinkdns.policy.names import BadName, is_ip, normalize
from sinkdns.policy.rule import ALLOW
from sinkdns.policy.source import LINE_SHIFT, ActionSpec, SourceRules

# Lines every hosts file starts with; they name the machine itself, never a site to block.
_HOSTS_LOCAL = frozenset({
    "localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0", "localhost6",
    "localhost6.localdomain6",
})
_ALLOW_ACTION = 1
_DIGITS = "0123456789"  # the end of every name normalize lets through that is an IP address (IPv4)

Add = Callable[[int, str, int], None]


def _adder(rules: SourceRules) -> Add:
    """`add(lineno, raw, action)` for the rules of one file, the per-rule work of a million-line list kept
    to a normalize call and two appends (the rule packed as `pack` does it)."""
    append_name = rules.suffix_names.append
    append_ref = rules.suffix_refs.append

    def add(lineno: int, raw: str, action: int) -> None:
        try:
            name = normalize(raw)
        except BadName as exc:
            rules.skip(lineno, str(exc))
            return
        if name[-1] in _DIGITS and is_ip(name):
            rules.skip(lineno, f"{raw!r} is an IP address, not a name")
            return
        append_name(name)
        append_ref(lineno << LINE_SHIFT | action << 1)

    return add


def _fields(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of each line with content once `#` comments are cut."""
    for lineno, line in enumerate(lines, 1):
        if "#" in line:
            line = line[:line.index("#")]
        parts = line.split()
        if parts:
            yield lineno, parts


def parse_hosts(lines: Iterable[str], file: str) -> SourceRules:
    """`ADDRESS name [name...]  # comment`: every name blocks, whatever the address."""
    rules = SourceRules(file)
    add = _adder(rules)
    addresses: set[str] = set()
    for lineno, parts in _fields(lines):
        address = parts[0]
        if address not in addresses:
            if not is_ip(address):
                rules.skip(lineno, f"expected an IP address first, got {address!r}")
                continue
            addresses.add(address)
        if len(parts) == 1:
            rules.skip(lineno, "an address without a name")
        for raw in parts[1:]:
            if raw not in _HOSTS_LOCAL and not raw.startswith("ip6-"):
                add(lineno, raw, 0)
    return rules


def parse_domains(lines: Iterable[str], file: str) -> SourceRules:
    """One name per line; `*.name` means the same as `name`; `#` starts a comment."""
    rules = SourceRules(file)
    add = _adder(rules)
    for lineno, parts in _fields(lines):
        if len(parts) > 1:
            rules.skip(lineno, "expected one name per line")
            continue
        raw = parts[0]
        add(lineno, raw[2:] if raw.startswith("*.") else raw, 0)
    return rules


def parse_adblock(lines: Iterable[str], file: str) -> SourceRules:
    """`||name^` blocks, `@@||name^` allows; `$important` is the only modifier kept, other rules are skipped."""
    rules = SourceRules(file, actions=[ActionSpec("default"), ActionSpec(ALLOW)])
    add = _adder(rules)
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if line.startswith("||") and line.endswith("^") and "#" not in line and "$" not in line:
            add(lineno, line[2:-1], 0)  # the common case, decided as the steps below would
            continue
        if not line or line[0] in "!#[":
            continue
        if "##" in line or "#@#" in line or "#?#" in line or "#$#" in line:
            rules.skip(lineno, "cosmetic rule")
            continue
        action = 0
        if line.startswith(("/", "@@/")):
            rules.skip(lineno, "regular-expression rules are not supported")
            continue
        if line.startswith("@@"):
            action = _ALLOW_ACTION
            line = line[2:]
        body, _, modifiers = line.partition("$")
        if modifiers and modifiers != "important":
            rules.skip(lineno, f"modifier ${modifiers} is not supported")
            continue
        if body.endswith("^|"):
            body = body[:-2]
        elif body.endswith("^"):
            body = body[:-1]
        else:
            rules.skip(lineno, "not a ||name^ rule")
            continue
        if not body.startswith("||"):
            rules.skip(lineno, "not a ||name^ rule")
            continue
        add(lineno, body[2:], action)
    return rules


def parse_dnsmasq(lines: Iterable[str], file: str) -> SourceRules:
    """`address=/name/.../[addr]`, `server=/name/` and `local=/name/` (answered locally): each name blocks."""
    rules = SourceRules(file)
    add = _adder(rules)
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line[0] == "#":
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in ("address", "server", "local") or not value.startswith("/"):
            rules.skip(lineno, "not an address=/name/, server=/name/ or local=/name/ line")
            continue
        parts = value[1:].split("/")
        if len(parts) < 2:
            rules.skip(lineno, "missing the closing '/'")
            continue
        names, target = parts[:-1], parts[-1]
        if key == "server" and target:
            rules.skip(lineno, "server=/name/addr forwards the name, it does not block it")
            continue
        for raw in names:
            add(lineno, raw, 0)
    return rules


Parser = Callable[[Iterable[str], str], SourceRules]

PARSERS: dict[str, Parser] = {
    "hosts": parse_hosts,
    "domains": parse_domains,
    "adblock": parse_adblock,
    "dnsmasq": parse_dnsmasq,
}
