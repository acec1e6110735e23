"""What a matched rule does and for whom.

An `Action` is shared by every rule of one file with the same effect (a million-line list has one), so
the index can hold a rule as one int; a `Rule` is made only when a query matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinkdns.model import Decision

ALLOW = "allow"
BLOCKPAGE = "blockpage"
NXDOMAIN = "nxdomain"
NODATA = "nodata"
DROP = "drop"
TCP_ONLY = "tcp-only"
LOCAL_DATA = "local-data"
DRY_RUN = "dry-run"

LIST_ACTIONS = (BLOCKPAGE, NXDOMAIN, NODATA, DROP, ALLOW)


@dataclass(frozen=True, slots=True)
class LocalRecord:
    """One RPZ local-data record. A wildcard CNAME (`CNAME *.garden.`) keeps only the suffix in `rdata`:
    the answer's target is the query name followed by it."""

    rtype: int
    ttl: int
    rdata: bytes
    wildcard: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Action:
    """The effect of a group of rules plus the customer metadata the answer, EDE and block page show.

    Compared by identity: the answer builder keys caches on it.
    """

    kind: str
    customer: str
    zone: str  # the policy file in zones/, e.g. acme.rpz
    file: str  # the file the rules are written in: the zone, or a file it $INCLUDEs
    organisation: str  # the customer's display name
    reason: str
    link: str
    contact: str
    since: str
    until: float | None  # epoch seconds at which the rules lapse
    ede: int
    ttl: int
    dry_run: bool
    rank: int  # position of the zone in sort order: earlier wins a tie
    local: tuple[LocalRecord, ...] = ()

    @property
    def decision_action(self) -> str:
        return DRY_RUN if self.dry_run and self.kind != ALLOW else self.kind

    def lapsed(self, now: float) -> bool:
        return self.until is not None and now >= self.until


@dataclass(frozen=True, slots=True)
class Rule:
    """A matched rule: the Decision everyone shares, and the Action it came from (EDE code, contact, ...)."""

    decision: Decision
    action: Action

    @property
    def kind(self) -> str:
        return self.action.kind

    @property
    def dry_run(self) -> bool:
        return self.action.dry_run

    @property
    def ede(self) -> int:
        return self.action.ede

    @property
    def contact(self) -> str:
        return self.action.contact

    @property
    def organisation(self) -> str:
        return self.action.organisation

    @property
    def since(self) -> str:
        return self.action.since

    @property
    def until(self) -> float | None:
        return self.action.until

    @property
    def local(self) -> tuple[LocalRecord, ...]:
        return self.action.local
