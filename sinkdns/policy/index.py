"""The policy as one frozen lookup structure, matched per query in time independent of its size.

Names live in one dict of str keys. A value is either an int (a list rule: the name and everything
under it) or a pair of candidate tuples (rules on the name itself, rules on names under it), so a
query walks its labels from the most specific name to its parents with one dict look-up per label.
Precedence is settled when the index is built: the most specific name wins; at equal specificity an
allow beats a block, then the file that sorts first, then the earlier line. Candidates after the first
are kept only for ties, so a rule whose `until` has passed falls back to the next one.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter
from typing import Iterable, Union

from sinkdns.model import Decision
from sinkdns.policy.rule import ALLOW, Action, Rule
from sinkdns.policy.source import ACTION_BITS, SourceRules

_MASK = (1 << ACTION_BITS) - 1
MEMO_SIZE = 65_536  # matches remembered per index, for rules and for answer addresses
_LINE_SHIFT = ACTION_BITS + 1

Slot = Union[int, tuple[tuple[int, ...], tuple[int, ...]]]
Source = tuple[list[Action], SourceRules]  # a parsed file and the Action for each of its ActionSpecs


class PolicyIndex:
    """Immutable once built (see `build_index`); safe to share between the DNS and block-page sides."""

    __slots__ = (
        "_names", "_actions", "_client", "_response", "generation", "customer_counts", "zone_counts", "_rules",
    )

    def __init__(
        self,
        names: dict[str, Slot],
        actions: list[Action],
        client: _CidrTable,
        response: _CidrTable,
        generation: int,
        customer_counts: dict[str, int],
        zone_counts: dict[str, int],
    ) -> None:
        self._names = names
        self._actions = actions
        self._client = client
        self._response = response
        self.generation = generation
        self.customer_counts = customer_counts
        self.zone_counts = zone_counts
        self._rules: dict[tuple[int, str], Rule] = {}  # matches made so far (the same names come back)

    @classmethod
    def empty(cls, generation: int = 0) -> PolicyIndex:
        return build_index([], generation)

    def __len__(self) -> int:
        return sum(self.zone_counts.values())

    @property
    def has_client_rules(self) -> bool:
        return bool(self._client.lengths)

    @property
    def has_response_ip_rules(self) -> bool:
        return bool(self._response.lengths)

    @property
    def has_name_rules(self) -> bool:
        return bool(self._names)

    def match_name(self, qname: str, now: float) -> Rule | None:
        """The rule for `qname` (sinkdns text form: lower case, no trailing dot), or None to pass."""
        names = self._names
        slot = names.get(qname)
        if slot is not None:
            found = self._pick(slot, 0, qname, now)
            if found is not None:
                return found
        dot = qname.find(".")
        while dot >= 0:
            parent = qname[dot + 1:]
            slot = names.get(parent)
            if slot is not None:
                found = self._pick(slot, 1, parent, now)
                if found is not None:
                    return found
            dot = qname.find(".", dot + 1)
        return None

    def match_client(self, ip: str, now: float) -> Rule | None:
        """The rpz-client-ip rule for a client address, longest prefix first."""
        return self._client.match(ip, now, self)

    def match_response_ip(self, ip: str, now: float) -> Rule | None:
        """The rpz-ip rule for an address in an answer, longest prefix first."""
        return self._response.match(ip, now, self)

    def _pick(self, slot: Slot, side: int, key: str, now: float) -> Rule | None:
        candidates = (slot,) if type(slot) is int else slot[side]
        actions = self._actions
        for ref in candidates:
            action = actions[(ref >> 1) & _MASK]
            if action.until is not None and now >= action.until:
                continue
            return self.rule(ref, "*." + key if ref & 1 else key)
        return None

    def rule(self, ref: int, trigger: str) -> Rule:
        """The Rule for a match, built once per trigger (and at most MEMO_SIZE kept): a blocked query
        costs a dict look-up, not two dataclass constructions."""
        key = (ref, trigger)
        rules = self._rules
        found = rules.get(key)
        if found is None:
            action = self._actions[(ref >> 1) & _MASK]
            found = Rule(
                Decision(
                    action.decision_action, action.customer, action.zone, trigger,
                    f"{action.file}:{ref >> _LINE_SHIFT}", action.reason, action.link, action.ttl, action.until,
                ),
                action,
            )
            if len(rules) >= MEMO_SIZE:
                rules.clear()
            rules[key] = found
        return found


class _CidrTable:
    """CIDR triggers: per address family, one dict per prefix length present, longest first."""

    __slots__ = ("lengths", "tables", "_seen")

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, str], ...]] = {}  # address text -> its candidates
        self.lengths: dict[int, list[int]] = {}  # version -> prefix lengths, longest first
        self.tables: dict[tuple[int, int], dict[int, tuple[tuple[int, str], ...]]] = {}

    def add(self, network_text: str, ref: int, rank: tuple) -> None:
        net = ipaddress.ip_network(network_text)
        table = self.tables.setdefault((net.version, net.prefixlen), {})
        key = int(net.network_address)
        table[key] = table.get(key, ()) + ((ref, network_text, rank),)  # type: ignore[assignment]

    def freeze(self) -> None:
        for table in self.tables.values():
            for key, candidates in table.items():
                table[key] = tuple((ref, text) for ref, text, _ in sorted(candidates, key=lambda c: c[2]))
        for version, length in self.tables:
            self.lengths.setdefault(version, []).append(length)
        for lengths in self.lengths.values():
            lengths.sort(reverse=True)

    def match(self, ip: str, now: float, index: PolicyIndex) -> Rule | None:
        if not self.lengths:
            return None
        candidates = self._seen.get(ip)
        if candidates is None:
            candidates = self._candidates(ip)
            if len(self._seen) >= MEMO_SIZE:
                self._seen.clear()
            self._seen[ip] = candidates
        for ref, text in candidates:
            if not index._actions[(ref >> 1) & _MASK].lapsed(now):
                return index.rule(ref, text)
        return None

    def _candidates(self, ip: str) -> tuple[tuple[int, str], ...]:
        """Every trigger covering `ip`, longest prefix first (the tables never change once frozen)."""
        parsed = _address(ip)
        if parsed is None:
            return ()
        version, value, bits = parsed
        found: tuple[tuple[int, str], ...] = ()
        for length in self.lengths.get(version, ()):
            found += self.tables[(version, length)].get(value >> (bits - length) << (bits - length), ())
        return found


@functools.lru_cache(maxsize=65536)
def _address(ip: str) -> tuple[int, int, int] | None:
    """(IP version, integer value, bit length) of an address; parsed once per distinct address, since the
    same clients and answer addresses come back again and again."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.version, int(addr), addr.max_prefixlen


def build_index(sources: Iterable[Source], generation: int) -> PolicyIndex:
    """Merge parsed files, given in precedence order (the order their file names sort), into one index."""
    names: dict[str, Slot] = {}
    actions: list[Action] = []
    client = _CidrTable()
    response = _CidrTable()
    customer_counts: Counter[str] = Counter()
    zone_counts: Counter[str] = Counter()
    for source_actions, rules in sources:
        base = len(actions) << 1
        actions.extend(source_actions)
        if len(actions) > _MASK:
            raise ValueError("too many distinct actions for one index")
        if source_actions:
            customer_counts[source_actions[0].customer] += rules.count
            zone_counts[source_actions[0].zone] += rules.count
        for side, names_list, refs in (
            (None, rules.suffix_names, rules.suffix_refs),
            (0, rules.exact_names, rules.exact_refs),
            (1, rules.wild_names, rules.wild_refs),
        ):
            if side is None:
                for name, ref in zip(names_list, refs):
                    ref += base
                    old = names.setdefault(name, ref)
                    if old != ref:
                        names[name] = _merge(old, ref, None, actions)
            else:
                for name, ref in zip(names_list, refs):
                    ref += base
                    old = names.get(name)
                    names[name] = _merge(old, ref, side, actions)
        for table, entries in ((client, rules.client), (response, rules.response_ip)):
            for network, ref in entries:
                ref += base
                table.add(network, ref, _rank(ref, actions))
    client.freeze()
    response.freeze()
    return PolicyIndex(names, actions, client, response, generation, dict(customer_counts), dict(zone_counts))


def _rank(ref: int, actions: list[Action]) -> tuple[int, int, int]:
    action = actions[(ref >> 1) & _MASK]
    return (0 if action.kind == ALLOW else 1, action.rank, ref >> _LINE_SHIFT)


def _merge(old: Slot | None, ref: int, side: int | None, actions: list[Action]) -> Slot:
    """Add `ref` on `side` (0 the name itself, 1 names under it, None both) to a slot, in precedence order."""
    if old is None:
        sides: list[tuple[int, ...]] = [(), ()]
    elif type(old) is int:
        sides = [(old,), (old,)]
    else:
        sides = list(old)  # type: ignore[arg-type]
    for s in ((0, 1) if side is None else (side,)):
        current = sides[s]
        action = (ref >> 1) & _MASK
        if any((other >> 1) & _MASK == action and (other & 1) == (ref & 1) for other in current):
            continue  # the same rule again in the same file: the first line stands
        sides[s] = tuple(sorted(current + (ref,), key=lambda r: _rank(r, actions)))
    if len(sides[0]) == 1 and sides[0] == sides[1] and not sides[0][0] & 1:
        return sides[0][0]
    return (sides[0], sides[1])
