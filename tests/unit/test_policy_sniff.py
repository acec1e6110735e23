import os

import pytest

from sinkdns.policy.sniff import sniff

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


@pytest.mark.parametrize("lines, expected", [
    (["! title", "||ads.example^", "@@||ok.example^"], "adblock"),
    (["# hosts", "0.0.0.0 ads.example", "127.0.0.1 localhost"], "hosts"),
    (["address=/ads.example/0.0.0.0", "server=/x.example/"], "dnsmasq"),
    (["# list", "ads.example", "*.tracker.example"], "domains"),
    (["# only comments", "", "! and these"], "domains"),
    (["<html>", "<body>not a list</body>"], None),
    (["ads.example", "ads2.example", "||x.example^"], "domains"),
], ids=["adblock", "hosts", "dnsmasq", "domains", "empty", "unknown", "majority"])
def test_sniff(lines, expected):
    assert sniff(lines) == expected


@pytest.mark.parametrize("file, expected", [
    ("stevenblack-excerpt.hosts", "hosts"), ("hagezi-excerpt.txt", "domains"), ("adguard-excerpt.txt", "adblock"),
])
def test_sniff_real_lists(file, expected):
    with open(os.path.join(DATA, file), encoding="utf-8") as f:
        assert sniff(f.read().split("\n")) == expected


def test_sniff_reads_only_the_first_hundred_content_lines():
    assert sniff(["ads.example"] * 100 + ["||x.example^"] * 500) == "domains"
