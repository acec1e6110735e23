"""PolicyFacts (see snapshot.py) read from the policy engine's PolicyHolder, so the metrics need no
knowledge of how the policy is loaded and the engine none of Prometheus."""

from __future__ import annotations

from sinkdns.policy.holder import PolicyHolder
from sinkdns.policy.loader import customer_id


class HolderFacts:
    """The policy facts the metrics and /healthz report, read from `holder` at scrape time."""

    def __init__(self, holder: PolicyHolder) -> None:
        self.holder = holder

    @property
    def rule_counts(self) -> dict[tuple[str, str], int]:
        """Rules in force by (customer, zone); a zone's customer is its file stem."""
        return {(customer_id(zone), zone): n for zone, n in self.holder.index.zone_counts.items()}

    @property
    def reloads(self) -> dict[str, int]:
        return dict(self.holder.reloads)

    @property
    def last_reload(self) -> float:
        return self.holder.last_success or 0.0

    @property
    def file_errors(self) -> dict[str, int]:
        """1 for a file whose current version could not be used (its last good version may be in force)."""
        state = self.holder.state
        return {name: int(file.error is not None) for name, file in state.files.items()} if state else {}

    @property
    def degraded(self) -> list[str]:
        text = self.holder.degraded()
        return [text] if text else []
