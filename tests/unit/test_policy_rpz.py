import os

import pytest

from sinkdns.policy.files import read_lines
from sinkdns.policy.rpz import RpzReader, ip_trigger
from sinkdns.policy.source import PolicyFileError, unpack
from sinkdns.wire import constants as c

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "zones")


def parse(tmp_path, text, fast=True, name="t.rpz", extra=None):
    for other, body in (extra or {}).items():
        (tmp_path / other).write_text(body)
    (tmp_path / name).write_text(text)
    reader = RpzReader(str(tmp_path), lambda p: read_lines(p, os.path.basename(p)), fast=fast)
    return reader.read(str(tmp_path / name), name)


def table(rules):
    """Every rule as comparable data: (table, trigger, line, kind, local records, file)."""
    out = []
    for kind, names, refs in (("exact", rules.exact_names, rules.exact_refs), ("wild", rules.wild_names, rules.wild_refs),
                              ("suffix", rules.suffix_names, rules.suffix_refs)):
        for name, ref in zip(names, refs):
            line, action, _ = unpack(ref)
            spec = rules.actions[action]
            out.append((kind, name, line, spec.kind, spec.local, spec.file))
    for kind, entries in (("client", rules.client), ("ip", rules.response_ip)):
        for network, ref in entries:
            line, action, _ = unpack(ref)
            out.append((kind, network, line, rules.actions[action].kind, rules.actions[action].local, ""))
    return sorted(out, key=repr)


def kinds(rules):
    return {(kind, name): action for kind, name, _, action, _, _ in table(rules)}


HEAD = "$TTL 300\n$ORIGIN rpz.example.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\n"


# draft-vixie-dnsop-dns-rpz section 3 and 4 examples, one trigger per line.
@pytest.mark.parametrize("line, expected", [
    ("bad.example CNAME .", {("exact", "bad.example"): "nxdomain"}),
    ("*.bad.example CNAME .", {("wild", "bad.example"): "nxdomain"}),
    ("bad.example CNAME *.", {("exact", "bad.example"): "nodata"}),
    ("ok.example CNAME rpz-passthru.", {("exact", "ok.example"): "allow"}),
    ("ok.example CNAME ok.example.rpz.example.", {("exact", "ok.example"): "allow"}),
    ("drop.example CNAME rpz-drop.", {("exact", "drop.example"): "drop"}),
    ("tc.example CNAME rpz-tcp-only.", {("exact", "tc.example"): "tcp-only"}),
    ("garden.example CNAME walled.garden.", {("exact", "garden.example"): "local-data"}),
    ("garden.example CNAME *.walled.garden.", {("exact", "garden.example"): "local-data"}),
    ("local.example A 192.0.2.1", {("exact", "local.example"): "local-data"}),
    ("local.example TXT \"a ; quoted\"", {("exact", "local.example"): "local-data"}),
    ("24.0.2.0.192.rpz-ip CNAME .", {("ip", "192.0.2.0/24"): "nxdomain"}),
    ("32.1.2.0.192.rpz-client-ip CNAME rpz-drop.", {("client", "192.0.2.1/32"): "drop"}),
    ("128.1.zz.db8.2001.rpz-ip CNAME .", {("ip", "2001:db8::1/128"): "nxdomain"}),
    ("ns.bad.example.rpz-nsdname CNAME .", {}),
    ("32.1.2.0.192.rpz-nsip CNAME .", {}),
    ("bad.example.rpz.example. CNAME .", {("exact", "bad.example"): "nxdomain"}),
    ("bad.example. CNAME .", {}),
    ("BAD.Example 60 IN CNAME .", {("exact", "bad.example"): "nxdomain"}),
    ("bad.example IN 60 CNAME .", {("exact", "bad.example"): "nxdomain"}),
    ("bad.example 1h CNAME .", {("exact", "bad.example"): "nxdomain"}),
], ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "dnspython"])
def test_triggers_and_actions(tmp_path, line, expected, fast):
    assert kinds(parse(tmp_path, HEAD + line + "\n", fast)) == expected


def test_local_data_records_are_kept_together(tmp_path):
    rules = parse(tmp_path, HEAD + "g.example A 192.0.2.1\n  AAAA 2001:db8::1\ng.example A 192.0.2.1\n")
    (_, _, line, kind, local, _), = table(rules)
    assert (line, kind) == (5, "local-data")
    assert [(rec.rtype, rec.rdata) for rec in local] == [
        (c.TYPE_A, bytes([192, 0, 2, 1])), (c.TYPE_AAAA, bytes.fromhex("20010db8" + "0" * 23 + "1")),
    ]


def test_wildcard_cname_target_keeps_the_suffix(tmp_path):
    (_, _, _, _, local, _), = table(parse(tmp_path, HEAD + "g.example CNAME *.walled.garden.\n"))
    assert local[0].wildcard and local[0].rdata == b"\x06walled\x06garden\x00"


@pytest.mark.parametrize("text, problem", [
    ("bad.example A 192.0.2.1\n", 1),  # without $TTL or SOA: no TTL is known
    (HEAD + "x.example A 300.1.1.1\n", 5),
    (HEAD + "x.example BOGUS data\n", 5),
    (HEAD + "x.example SOA ( ns hostmaster\n 1 2 3 4 5\n", 5),
    (HEAD + "$FOO bar\n", 5),
    (HEAD + "$INCLUDE /etc/passwd\n", 5),
    (HEAD + "$INCLUDE t.rpz\n", 5),
], ids=["no-ttl", "bad-address", "unknown-type", "unbalanced", "unknown-directive", "include-outside", "include-loop"])
def test_whole_file_errors_carry_file_and_line(tmp_path, text, problem):
    with pytest.raises(PolicyFileError) as info:
        parse(tmp_path, text)
    assert info.value.file in ("t.rpz",) and info.value.line in (problem, 0)


def test_include_and_origin(tmp_path):
    rules = parse(tmp_path, HEAD + "$INCLUDE more.inc sub.rpz.example.\nafter.example CNAME .\n",
                  extra={"more.inc": "inc.example CNAME .\n"})
    assert kinds(rules) == {("exact", "inc.example.sub"): "nxdomain", ("exact", "after.example"): "nxdomain"}
    inc = [row for row in table(rules) if row[1] == "inc.example.sub"][0]
    assert inc[2] == 1 and inc[5] == "more.inc"
    assert rules.includes == (str(tmp_path / "more.inc"),)


def test_generate(tmp_path):
    rules = parse(tmp_path, HEAD + "$GENERATE 1-3 host$.example CNAME .\n")
    assert sorted(rules.exact_names) == ["host1.example", "host2.example", "host3.example"]


def test_file_without_origin_uses_names_as_written(tmp_path):
    rules = parse(tmp_path, "$TTL 60\nads.example CNAME .\n*.ads.example CNAME .\n")
    assert kinds(rules) == {("exact", "ads.example"): "nxdomain", ("wild", "ads.example"): "nxdomain"}


def test_soa_owner_is_the_origin_without_origin_directive(tmp_path):
    text = "rpz.local. 60 SOA ns.rpz.local. h.rpz.local. 1 2 3 4 5\nads.example CNAME .\n"
    assert kinds(parse(tmp_path, text)) == {("exact", "ads.example"): "nxdomain"}


def test_unsupported_and_outside_lines_are_warnings(tmp_path):
    rules = parse(tmp_path, HEAD + "ns.example.rpz-nsdname CNAME .\nother.zone. CNAME .\n")
    assert (rules.unsupported, rules.skipped) == (1, 1)
    assert rules.warnings == ["t.rpz:5: ns.example.rpz-nsdname: NSDNAME triggers are not supported",
                              "t.rpz:6: other.zone. is outside the zone rpz.example."]


@pytest.mark.parametrize("text, expected", [
    ("24.0.2.0.192", "192.0.2.0/24"), ("32.1.2.0.192", "192.0.2.1/32"), ("128.1.zz", "::1/128"),
    ("48.zz.db8.2001", "2001:db8::/48"), ("80.zz.3.2.1.db8.2001", "2001:db8:1:2:3::/80"),
])
def test_ip_trigger(text, expected):
    assert ip_trigger(text) == expected


@pytest.mark.parametrize("text", ["24.1.2.0.192", "33.1.2.0.192", "x.1.2.3.4", "24"])
def test_ip_trigger_rejects(text):
    with pytest.raises(ValueError):
        ip_trigger(text)


@pytest.mark.parametrize("path", [
    os.path.join(DATA, "hagezi-excerpt.rpz"),
    os.path.join(SHIPPED, "example-rpz.rpz"),
], ids=["hagezi-feed", "shipped-example"])
def test_fast_path_and_dnspython_give_identical_rules(path):
    text = open(path, encoding="utf-8").read()
    zones = os.path.dirname(path)
    fast = RpzReader(zones, lambda p: read_lines(p, "f"), fast=True).read(path, "f")
    slow = RpzReader(zones, lambda p: read_lines(p, "f"), fast=False).read(path, "f")
    assert table(fast) == table(slow)
    assert (fast.skipped, fast.unsupported, fast.warnings) == (slow.skipped, slow.unsupported, slow.warnings)
    assert len(table(fast)) > text.count("CNAME") // 2


@pytest.mark.skipif(not os.environ.get("SINKDNS_BLOCKLISTS"), reason="set SINKDNS_BLOCKLISTS to a directory of real lists")
def test_fast_path_and_dnspython_identical_on_a_real_feed(tmp_path):
    """A feed made from a whole real list (the hagezi wildcard list) in every line shape of the excerpt."""
    source = os.path.join(os.environ["SINKDNS_BLOCKLISTS"], "hagezi-pro-wildcard.txt")
    names = [line.strip()[2:] for line in open(source, encoding="utf-8") if line.startswith("*.")]
    body = "".join(f"{n} CNAME .\n*.{n} 300 IN CNAME .\n" if i % 2 else f"{n.upper()} A 192.0.2.1\n" for i, n in enumerate(names))
    path = tmp_path / "feed.rpz"
    path.write_text(HEAD + body)
    fast = RpzReader(str(tmp_path), lambda p: read_lines(p, "f"), fast=True).read(str(path), "f")
    slow = RpzReader(str(tmp_path), lambda p: read_lines(p, "f"), fast=False).read(str(path), "f")
    assert table(fast) == table(slow)
