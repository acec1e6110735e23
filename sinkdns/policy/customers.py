"""Customer metadata: `<id>.toml` beside the policy files, decoded strictly (an unknown key is an error).

Metadata fills in what answers, EDE and the block page say; where a key is absent the operator's
default from the config's [blockpage] and [policy] sections applies.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from sinkdns.config import BlockPageConfig, PolicyConfig
from sinkdns.policy.files import open_file
from sinkdns.policy.names import BadName, is_ip, normalize
from sinkdns.policy.rule import LIST_ACTIONS, Action, LocalRecord
from sinkdns.policy.source import PolicyFileError, SourceRules, pack

EDE_CODES = {15: "Blocked", 16: "Censored", 17: "Filtered"}
MODES = ("enforce", "dry-run")


@dataclass(frozen=True)
class Defaults:
    """The operator's defaults: [blockpage] reason, policy_url and contact, and [policy] ttl."""

    reason: str = ""
    link: str = ""
    contact: str = ""
    ttl: int = 60

    @classmethod
    def from_config(cls, policy: PolicyConfig, blockpage: BlockPageConfig) -> Defaults:
        return cls(reason=blockpage.reason, link=blockpage.policy_url, contact=blockpage.contact, ttl=policy.ttl)


@dataclass(frozen=True)
class Customer:
    """One customer's metadata; None means "use the operator's default"."""

    id: str
    name: str | None = None
    reason: str | None = None
    link: str | None = None
    contact: str | None = None
    since: str = ""
    until: float | None = None
    action: str = "blockpage"
    ede: int = 15
    ttl: int | None = None
    mode: str = "enforce"

    def action_for(self, kind: str, defaults: Defaults, zone: str, file: str, rank: int,
                   local: tuple[LocalRecord, ...] = ()) -> Action:
        """The Action for this customer's rules of one kind; `default` is the customer's own action."""
        return Action(
            kind=self.action if kind == "default" else kind,
            customer=self.id,
            zone=zone,
            file=file or zone,
            organisation=self.name or self.id,
            reason=self.reason if self.reason is not None else defaults.reason,
            link=self.link if self.link is not None else defaults.link,
            contact=self.contact if self.contact is not None else defaults.contact,
            since=self.since,
            until=self.until,
            ede=self.ede,
            ttl=self.ttl if self.ttl is not None else defaults.ttl,
            dry_run=self.mode == "dry-run",
            rank=rank,
            local=local,
        )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _since(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return _text(value)


def _until(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an RFC 3339 date-time with offset, got {value!r}") from None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f"expected an RFC 3339 date-time with offset (e.g. 2023-01-01T00:00:00Z), got {value!r}")
    return value.timestamp()


def _choice(options: tuple) -> Any:
    def parse(value: Any) -> Any:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(map(str, options))}, got {value!r}")
        return value
    return parse


def _ttl(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400:
        raise ValueError(f"expected an integer from 0 to 86400, got {value!r}")
    return value


_KEYS = {
    "name": _text,
    "reason": _text,
    "link": _text,
    "contact": _text,
    "since": _since,
    "until": _until,
    "action": _choice(LIST_ACTIONS),
    "ede": _choice(tuple(EDE_CODES)),
    "ttl": _ttl,
    "mode": _choice(MODES),
    "domains": None,  # handled below: its entries become rules
}


def read_customer(path: str, file: str, customer_id: str) -> tuple[Customer, SourceRules]:
    """Parse `<id>.toml`: the metadata, and its `domains` as rules. PolicyFileError names file:line and key."""
    try:
        with open_file(path, file) as f:
            raw = f.read()
    except OSError as exc:
        raise PolicyFileError(file, 0, f"cannot read: {exc.strerror}") from None
    text = raw.decode("utf-8", "replace")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+)", str(exc))
        raise PolicyFileError(file, int(m.group(1)) if m else 0, f"not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in table.items():
        line = _line_of(text, rf"^\s*{re.escape(key)}\s*=")
        if key not in _KEYS:
            raise PolicyFileError(file, line, f"unknown key {key!r} (expected one of {', '.join(_KEYS)})")
        parse = _KEYS[key]
        if parse is None:
            continue
        try:
            values[key] = parse(value)
        except ValueError as exc:
            raise PolicyFileError(file, line, f"{key}: {exc}") from None
    rules = SourceRules(file)
    domains = table.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise PolicyFileError(file, _line_of(text, r"^\s*domains\s*="), "domains: expected a list of strings")
    for raw_name in domains:
        line = _line_of(text, re.escape(f'"{raw_name}"')) or _line_of(text, r"^\s*domains\s*=")
        try:
            name = normalize(raw_name[2:] if raw_name.startswith("*.") else raw_name)
        except BadName as exc:
            rules.skip(line, f"domains: {exc}")
            continue
        if is_ip(name):
            rules.skip(line, f"domains: {raw_name!r} is an IP address, not a name")
            continue
        rules.suffix_names.append(name)
        rules.suffix_refs.append(pack(line, 0))
    return Customer(id=customer_id, **values), rules


def _line_of(text: str, pattern: str) -> int:
    m = re.search(pattern, text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else 0
