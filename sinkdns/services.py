"""The HTTP side beside DNS: the block page, served from the same policy the DNS side enforces.

Used by the single process (app.py) and by the supervisor of `--workers N` (supervisor.py), which
serves the block page and metrics itself while its workers answer DNS.
"""

from __future__ import annotations

import time
from typing import Callable

from sinkdns.blockpage import BlockFacts, BlockPageServer, BlockPageStats, Lookup, start_block_page
from sinkdns.config import Config, default_state_dir
from sinkdns.policy.index import PolicyIndex
from sinkdns.policy.rule import BLOCKPAGE


def block_page_lookup(policy: Callable[[], PolicyIndex], clock: Callable[[], float] = time.time) -> Lookup:
    """Facts for a Host or SNI name that DNS sends to the block page; None for any other name, so the
    page shows no customer data and no certificate is issued for it."""

    def lookup(name: str) -> BlockFacts | None:
        rule = policy().match_name(name, clock())
        if rule is None or rule.kind != BLOCKPAGE or rule.dry_run:
            return None
        decision = rule.decision
        return BlockFacts(decision.customer, rule.organisation, decision.reason, decision.link, rule.contact, rule.since)

    return lookup


async def open_block_page(config: Config, policy: Callable[[], PolicyIndex]) -> tuple[BlockPageServer | None, BlockPageStats]:
    """Start the block page on every configured address (none configured: not started)."""
    stats = BlockPageStats()
    page = config.blockpage
    if not page.listen and not page.tls_listen:
        return None, stats
    state_dir = config.server.state_dir or default_state_dir()
    server = await start_block_page(page, state_dir, block_page_lookup(policy), stats)
    return server, stats


def ready_info(dns: list[str], metrics: str | None, block_page: BlockPageServer | None) -> dict:
    """What the ready file says: every bound address, so nobody guesses a port."""
    return {
        "dns": dns,
        "metrics": metrics,
        "block_page": list(block_page.addresses) if block_page is not None else [],
        "block_page_tls": list(block_page.tls_addresses) if block_page is not None else [],
    }
