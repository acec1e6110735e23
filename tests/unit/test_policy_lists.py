import os

import pytest

from sinkdns.policy.lists import parse_adblock, parse_dnsmasq, parse_domains, parse_hosts
from sinkdns.policy.source import unpack

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def entries(rules):
    """(name, line, allow?) for every suffix rule."""
    return [(n, unpack(ref)[0], rules.actions[unpack(ref)[1]].kind == "allow")
            for n, ref in zip(rules.suffix_names, rules.suffix_refs)]


def names(rules):
    return [n for n, _, _ in entries(rules)]


@pytest.mark.parametrize("lines, expected, skipped", [
    (["0.0.0.0 ads.example"], ["ads.example"], 0),
    (["127.0.0.1 a.example b.example  # two names"], ["a.example", "b.example"], 0),
    (["0.0.0.0\tTabbed.Example."], ["tabbed.example"], 0),
    (["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback", "255.255.255.255 broadcasthost",
      "0.0.0.0 0.0.0.0", "fe80::1%lo0 localhost", "ff02::1 ip6-allnodes", "127.0.0.1 local"], [], 0),
    (["# comment", "   # indented comment", "", "   "], [], 0),
    (["ads.example"], [], 1),
    (["0.0.0.0"], [], 1),
    (["0.0.0.0 bad..example good.example"], ["good.example"], 1),
    (["0.0.0.0 com"], [], 1),
    (["0.0.0.0 10.0.0.1"], [], 1),
    (["0.0.0.0 bücher.example"], ["xn--bcher-kva.example"], 0),
    (["0.0.0.0 caf\udce9.example"], [], 1),  # a Latin-1 byte in a UTF-8 file
], ids=["one", "several", "tab-case-dot", "header", "comments", "no-address", "no-name", "bad-and-good",
        "tld", "ip-name", "idn", "latin1"])
def test_hosts(lines, expected, skipped):
    rules = parse_hosts(lines, "t.hosts")
    assert names(rules) == expected
    assert rules.skipped == skipped


def test_hosts_warnings_name_file_and_line():
    rules = parse_hosts(["# x", "0.0.0.0 ads..example"], "t.hosts")
    assert rules.warnings == ["t.hosts:2: 'ads..example' has an empty label"]


@pytest.mark.parametrize("lines, expected, skipped", [
    (["ads.example", "*.tracker.example", "# c", "", "x.example # inline"], ["ads.example", "tracker.example", "x.example"], 0),
    (["two names.example here"], [], 1),
    (["\ufeffbom.example\r"], ["bom.example"], 0),
    (["example"], [], 1),
], ids=["mixed", "two-per-line", "bom-crlf", "tld"])
def test_domains(lines, expected, skipped):
    rules = parse_domains([line.rstrip("\r").lstrip("\ufeff") for line in lines], "t.txt")
    assert names(rules) == expected
    assert rules.skipped == skipped


@pytest.mark.parametrize("line, expected", [
    ("||ads.example^", [("ads.example", False)]),
    ("||ads.example^$important", [("ads.example", False)]),
    ("@@||good.example^|", [("good.example", True)]),
    ("@@||good.example^", [("good.example", True)]),
    ("||Free-4Paid.com^", [("free-4paid.com", False)]),
    ("||get-me-wow.^", []),
    ("||ads.example^$third-party", []),
    ("||ads.example^$badfilter", []),
    ("||deloton.com$important", []),
    ("/^139\\.45\\.197\\.2(4[0-9]|5[0-4]):/", []),
    ("example.com##.banner", []),
    ("||ad-host-*.aliyuncs.com^", []),
    ("||1.2.3.4^", []),
    ("-telemetry.example^", []),
    ("! comment", []),
    ("# comment", []),
    ("[Adblock Plus 2.0]", []),
])
def test_adblock(line, expected):
    rules = parse_adblock([line], "t.txt")
    assert [(n, allow) for n, _, allow in entries(rules)] == expected
    comment = line.startswith(("!", "#", "["))
    assert rules.skipped == (0 if expected or comment else 1)


@pytest.mark.parametrize("line, expected", [
    ("address=/popup.example/0.0.0.0", ["popup.example"]),
    ("address=/a.example/b.example/", ["a.example", "b.example"]),
    ("address=/c.example/#", ["c.example"]),
    ("server=/miner.example/", ["miner.example"]),
    ("local=/spy.example/", ["spy.example"]),
    ("server=/corp.example/10.0.0.1", []),
    ("cache-size=1000", []),
    ("address=/unterminated.example", []),
])
def test_dnsmasq(line, expected):
    rules = parse_dnsmasq([line], "t.conf")
    assert names(rules) == expected
    assert rules.skipped == (0 if expected else 1)


@pytest.mark.parametrize("file, parser, rules_count, skipped", [
    ("stevenblack-excerpt.hosts", parse_hosts, 211, 0),
    ("hagezi-excerpt.txt", parse_domains, 289, 0),
    ("adguard-excerpt.txt", parse_adblock, 97, 149),
])
def test_real_list_excerpts(file, parser, rules_count, skipped):
    with open(os.path.join(DATA, file), encoding="utf-8") as f:
        rules = parser(f.read().split("\n"), file)
    assert (rules.count, rules.skipped) == (rules_count, skipped)
    assert all(w.startswith(f"{file}:") for w in rules.warnings)
