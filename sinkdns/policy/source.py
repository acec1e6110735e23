"""What parsing one policy file yields: its rules, packed small, and what was skipped and why.

A parsed file is kept as that file's last good version, so a later failing edit never removes its policy.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from sinkdns.errors import SinkdnsError
from sinkdns.policy.rule import LocalRecord

MAX_WARNINGS = 50  # kept per file; the count of skipped lines is always exact
ACTION_BITS = 22
LINE_SHIFT = ACTION_BITS + 1


def pack(line: int, action: int, wildcard: bool = False) -> int:
    """A rule as one int: source line, action number, and whether it is an RPZ `*.` wildcard."""
    return (line << LINE_SHIFT) | (action << 1) | wildcard


def unpack(ref: int) -> tuple[int, int, bool]:
    return ref >> LINE_SHIFT, (ref >> 1) & ((1 << ACTION_BITS) - 1), bool(ref & 1)


class PolicyFileError(SinkdnsError):
    """A policy file that cannot be used as a whole (unreadable, binary, syntax error, too large)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file = file
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A rule's effect as the file states it; `default` is the customer's action (TOML `action`)."""

    kind: str
    local: tuple[LocalRecord, ...] = ()
    file: str = ""  # set when the rule is written in an $INCLUDEd file


DEFAULT = ActionSpec("default")


def _refs() -> array:
    return array("q")


@dataclass
class SourceRules:
    """One file's rules. Names are index keys; refs are `pack`ed with the number of an entry of `actions`.

    `suffix` rules match the name and everything under it (lists); `exact` and `wild` are RPZ's owner
    and `*.owner` triggers; `client` and `response_ip` are RPZ CIDR triggers as (network text, ref).
    """

    file: str
    actions: list[ActionSpec] = field(default_factory=lambda: [DEFAULT])
    suffix_names: list[str] = field(default_factory=list)
    suffix_refs: array = field(default_factory=_refs)
    exact_names: list[str] = field(default_factory=list)
    exact_refs: array = field(default_factory=_refs)
    wild_names: list[str] = field(default_factory=list)
    wild_refs: array = field(default_factory=_refs)
    client: list[tuple[str, int]] = field(default_factory=list)
    response_ip: list[tuple[str, int]] = field(default_factory=list)
    skipped: int = 0
    unsupported: int = 0
    warnings: list[str] = field(default_factory=list)
    includes: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return (
            len(self.suffix_names) + len(self.exact_names) + len(self.wild_names)
            + len(self.client) + len(self.response_ip)
        )

    def skip(self, line: int, message: str, file: str = "") -> None:
        """Count a line that is left out, keeping the first few reasons with file:line."""
        self.skipped += 1
        self.warn(line, message, file)

    def warn(self, line: int, message: str, file: str = "") -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(f"{file or self.file}:{line}: {message}")

    @property
    def warning_count(self) -> int:
        return self.skipped + self.unsupported
