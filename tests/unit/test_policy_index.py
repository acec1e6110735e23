import pytest

from sinkdns.policy.customers import Customer, Defaults
from sinkdns.policy.index import PolicyIndex, build_index
from sinkdns.policy.rule import ALLOW
from sinkdns.policy.source import ActionSpec, SourceRules, pack

NOW = 1_000_000.0


def source(zone, rank, suffix=(), exact=(), wild=(), client=(), ip=(), kinds=("default",), customer=None, **meta):
    """A parsed file: entries are (name, line[, action number]) tuples."""
    rules = SourceRules(zone, actions=[ActionSpec(k) for k in kinds])
    for target_names, target_refs, entries, wildcard in (
        (rules.suffix_names, rules.suffix_refs, suffix, False),
        (rules.exact_names, rules.exact_refs, exact, False),
        (rules.wild_names, rules.wild_refs, wild, True),
    ):
        for name, line, *action in entries:
            target_names.append(name)
            target_refs.append(pack(line, action[0] if action else 0, wildcard))
    rules.client.extend((net, pack(line, a)) for net, line, a in client)
    rules.response_ip.extend((net, pack(line, a)) for net, line, a in ip)
    cust = Customer(customer or zone.split(".")[0], **meta)
    return [cust.action_for(s.kind, Defaults(), zone, "", rank) for s in rules.actions], rules


def who(rule):
    return None if rule is None else (rule.decision.zone, rule.decision.rule, rule.decision.action, rule.decision.source)


LIST = source("a.txt", 0, suffix=[("ads.example", 1)])
RPZ = source("b.rpz", 1, exact=[("x.example", 1, 0), ("ok.x.example", 3, 1)], wild=[("x.example", 2, 0)],
             kinds=("nxdomain", ALLOW))


@pytest.mark.parametrize("qname, expected", [
    ("ads.example", ("a.txt", "ads.example", "blockpage", "a.txt:1")),
    ("www.ads.example", ("a.txt", "ads.example", "blockpage", "a.txt:1")),
    ("a.b.c.ads.example", ("a.txt", "ads.example", "blockpage", "a.txt:1")),
    ("notads.example", None),
    ("example", None),
    ("", None),
    ("x.example", ("b.rpz", "x.example", "nxdomain", "b.rpz:1")),
    ("y.x.example", ("b.rpz", "*.x.example", "nxdomain", "b.rpz:2")),
    ("ok.x.example", ("b.rpz", "ok.x.example", "allow", "b.rpz:3")),
    ("sub.ok.x.example", ("b.rpz", "*.x.example", "nxdomain", "b.rpz:2")),
], ids=lambda v: v if isinstance(v, str) else "")
def test_match_name(qname, expected):
    index = build_index([LIST, RPZ], 1)
    assert who(index.match_name(qname, NOW)) == expected


def test_rpz_wildcard_does_not_cover_the_bare_name():
    index = build_index([source("b.rpz", 0, wild=[("x.example", 1)], kinds=("nxdomain",))], 1)
    assert index.match_name("x.example", NOW) is None
    assert who(index.match_name("a.x.example", NOW))[1] == "*.x.example"


@pytest.mark.parametrize("files, qname, winner", [
    # The most specific name wins, whatever the file order.
    ([source("a.txt", 0, suffix=[("example.com", 1)]), source("b.txt", 1, suffix=[("ads.example.com", 1)])],
     "x.ads.example.com", "b.txt"),
    # An exact RPZ entry beats a wildcard on the same name in another file.
    ([source("a.rpz", 0, wild=[("x.example", 1)], kinds=("nxdomain",)), source("b.rpz", 1, exact=[("x.example", 1)], kinds=("nodata",))],
     "x.example", "b.rpz"),
    # The longer wildcard beats the shorter.
    ([source("a.rpz", 0, wild=[("example", 1)], kinds=("nxdomain",)), source("b.rpz", 1, wild=[("b.example", 1)], kinds=("nodata",))],
     "a.b.example", "b.rpz"),
    # At equal specificity an allow beats a block, even from a later file.
    ([source("a.txt", 0, suffix=[("x.example", 1)]), source("z.txt", 1, suffix=[("x.example", 1)], kinds=(ALLOW,))],
     "w.x.example", "z.txt"),
    # Then the file that sorts first.
    ([source("a.txt", 0, suffix=[("x.example", 1)], action="nxdomain"), source("b.txt", 1, suffix=[("x.example", 1)])],
     "x.example", "a.txt"),
    # An allow on a parent does not beat a block on a more specific name.
    ([source("a.txt", 0, suffix=[("example.com", 1)], kinds=(ALLOW,)), source("b.txt", 1, suffix=[("ads.example.com", 1)])],
     "ads.example.com", "b.txt"),
], ids=["specific", "exact-vs-wild", "longer-wild", "allow-ties", "file-order", "allow-parent"])
def test_precedence_across_files(files, qname, winner):
    assert who(build_index(files, 1).match_name(qname, NOW))[0] == winner


def test_duplicate_in_one_file_keeps_the_first_line():
    index = build_index([source("a.txt", 0, suffix=[("x.example", 4), ("x.example", 9)])], 1)
    assert who(index.match_name("x.example", NOW))[3] == "a.txt:4"


def test_until_lapses_and_the_next_candidate_applies():
    lapsing = source("a.txt", 0, suffix=[("x.example", 1)], until=NOW)
    lasting = source("b.txt", 1, suffix=[("x.example", 2)], action="nxdomain")
    index = build_index([lapsing, lasting], 1)
    assert who(index.match_name("x.example", NOW - 1))[0] == "a.txt"
    assert who(index.match_name("x.example", NOW))[0] == "b.txt"
    alone = build_index([lapsing], 1)
    assert alone.match_name("x.example", NOW) is None


@pytest.mark.parametrize("ip, expected", [
    ("192.0.2.77", "192.0.2.0/24"),
    ("192.0.2.1", "192.0.2.1/32"),
    ("::ffff:192.0.2.9", "192.0.2.0/24"),
    ("198.51.100.1", None),
    ("2001:db8::5", "2001:db8::/32"),
    ("fe80::1%eth0", None),
    ("not-an-ip", None),
])
def test_cidr_longest_prefix(ip, expected):
    nets = [("192.0.2.0/24", 1, 0), ("192.0.2.1/32", 2, 0), ("2001:db8::/32", 3, 0)]
    index = build_index([source("c.rpz", 0, client=nets, ip=nets, kinds=("nxdomain",))], 1)
    for rule in (index.match_client(ip, NOW), index.match_response_ip(ip, NOW)):
        assert (rule.decision.rule if rule else None) == expected


def test_counts_and_generation():
    index = build_index([LIST, RPZ], 7)
    assert index.generation == 7
    assert index.customer_counts == {"a": 1, "b": 3}
    assert index.zone_counts == {"a.txt": 1, "b.rpz": 3}
    assert len(index) == 4
    assert not PolicyIndex.empty().has_name_rules
