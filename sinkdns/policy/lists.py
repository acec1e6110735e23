"""Line-oriented block lists: hosts files, domain lists, adblock (`||name^`) and dnsmasq directives.

Every entry blocks its name and all names under it with the customer's action (adblock `@@` allows).
A line that cannot be used is skipped, counted and reported with file:line; it never fails the file.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from sinkdns.policy.names import BadName, is_ip, normalize
from sinkdns.policy.rule import ALLOW
from sinkdns.policy.source import ActionSpec, SourceRules, pack

# Lines every hosts file starts with; they name the machine itself, never a site to block.
_HOSTS_LOCAL = frozenset({
    "localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0", "localhost6",
    "localhost6.localdomain6",
})
_ALLOW_ACTION = 1


def _add(rules: SourceRules, lineno: int, raw: str, action: int = 0) -> None:
    try:
        name = normalize(raw)
    except BadName as exc:
        rules.skip(lineno, str(exc))
        return
    if is_ip(name):
        rules.skip(lineno, f"{raw!r} is an IP address, not a name")
        return
    rules.suffix_names.append(name)
    rules.suffix_refs.append(pack(lineno, action))


def _fields(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of each line with content once `#` comments are cut."""
    for lineno, line in enumerate(lines, 1):
        hash_at = line.find("#")
        if hash_at >= 0:
            line = line[:hash_at]
        parts = line.split()
        if parts:
            yield lineno, parts


def parse_hosts(lines: Iterable[str], file: str) -> SourceRules:
    """`ADDRESS name [name...]  # comment`: every name blocks, whatever the address."""
    rules = SourceRules(file)
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
            if raw in _HOSTS_LOCAL or raw.startswith("ip6-"):
                continue
            _add(rules, lineno, raw)
    return rules


def parse_domains(lines: Iterable[str], file: str) -> SourceRules:
    """One name per line; `*.name` means the same as `name`; `#` starts a comment."""
    rules = SourceRules(file)
    for lineno, parts in _fields(lines):
        if len(parts) > 1:
            rules.skip(lineno, "expected one name per line")
            continue
        raw = parts[0]
        _add(rules, lineno, raw[2:] if raw.startswith("*.") else raw)
    return rules


def parse_adblock(lines: Iterable[str], file: str) -> SourceRules:
    """`||name^` blocks, `@@||name^` allows; `$important` is the only modifier kept, other rules are skipped."""
    rules = SourceRules(file, actions=[ActionSpec("default"), ActionSpec(ALLOW)])
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
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
        _add(rules, lineno, body[2:], action)
    return rules


def parse_dnsmasq(lines: Iterable[str], file: str) -> SourceRules:
    """`address=/name/.../[addr]`, `server=/name/` and `local=/name/` (answered locally): each name blocks."""
    rules = SourceRules(file)
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
            _add(rules, lineno, raw)
    return rules


Parser = Callable[[Iterable[str], str], SourceRules]

PARSERS: dict[str, Parser] = {
    "hosts": parse_hosts,
    "domains": parse_domains,
    "adblock": parse_adblock,
    "dnsmasq": parse_dnsmasq,
}
