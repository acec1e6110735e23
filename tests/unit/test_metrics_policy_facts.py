"""The policy engine's facts as the metrics see them, from a real PolicyHolder over a zones directory."""

from __future__ import annotations

import asyncio

from sinkdns.metrics.policy_facts import HolderFacts
from sinkdns.metrics.snapshot import PolicyFacts
from sinkdns.policy.holder import PolicyHolder


def test_before_the_first_load():
    facts: PolicyFacts = HolderFacts(PolicyHolder("/nonexistent"))
    assert (facts.rule_counts, facts.file_errors, facts.last_reload) == ({}, {}, 0.0)
    assert facts.reloads == {"success": 0, "partial": 0, "failure": 0}
    assert facts.degraded == ["policy not loaded yet"]


def test_rules_reloads_and_a_file_kept_at_its_last_good_version(tmp_path):
    (tmp_path / "acme.txt").write_text("acme.example\nshop.acme.example\n")
    (tmp_path / "globex.hosts").write_text("0.0.0.0 globex.example\n")
    holder = PolicyHolder(str(tmp_path), clock=lambda: 1_700_000_000.0)
    facts = HolderFacts(holder)
    holder.load()
    assert facts.rule_counts == {("acme", "acme.txt"): 2, ("globex", "globex.hosts"): 1}
    assert facts.file_errors == {"acme.txt": 0, "globex.hosts": 0}
    assert (facts.last_reload, facts.degraded) == (1_700_000_000.0, [])

    (tmp_path / "acme.txt").write_bytes(b"\x00")
    asyncio.run(holder.reload())
    assert facts.rule_counts == {("acme", "acme.txt"): 2, ("globex", "globex.hosts"): 1}
    assert facts.file_errors == {"acme.txt": 1, "globex.hosts": 0}
    assert facts.reloads == {"success": 1, "partial": 1, "failure": 0}
    assert facts.degraded == ["policy degraded: 1 error(s): acme.txt:1: binary data (a NUL byte)"]
