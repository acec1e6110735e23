"""Access lists and address sets: which networks, IPv4-mapped clients, deny over allow, bounded memo."""

from __future__ import annotations

import pytest

from sinkdns.addresses import AccessList, AddressSet, Memo, parse_address


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
        ("10.1.2.3", True), ("172.16.0.1", True), ("172.31.255.255", True), ("192.168.1.1", True),
        ("100.64.0.1", True), ("100.127.255.254", True), ("169.254.3.4", True),
        ("fd00::1", True), ("fc12::1", True), ("fe80::1", True), ("fe80::1%eth0", True),
        ("::ffff:192.168.1.1", True), ("::ffff:8.8.8.8", False),
        ("172.32.0.1", False), ("100.128.0.1", False), ("8.8.8.8", False), ("192.0.2.1", False),
        ("2001:db8::1", False), ("::", False), ("not-an-address", False), ("", False),
    ],
)
def test_default_access_list_serves_loopback_and_private_networks(host, allowed):
    assert AccessList().allows(host) is allowed


def test_deny_wins_over_allow():
    acl = AccessList(allow=("0.0.0.0/0", "::/0"), deny=("192.0.2.0/24", "10.9.0.0/16", "2001:db8:bad::/48"))
    assert acl.allows("8.8.8.8") and acl.allows("10.1.0.1") and acl.allows("2001:db8::1")
    assert not acl.allows("192.0.2.7") and not acl.allows("10.9.1.1") and not acl.allows("2001:db8:bad::5")
    assert not acl.allows("::ffff:192.0.2.7")


def test_a_network_with_host_bits_set_is_an_error():
    with pytest.raises(ValueError):
        AccessList(allow=("10.0.0.1/8",))


def test_decisions_are_remembered_within_a_bound():
    calls = []
    memo = Memo(lambda key: calls.append(key) or len(key), size=3)
    assert [memo(k) for k in ("a", "bb", "a", "ccc", "dddd", "a")] == [1, 2, 1, 3, 4, 1]
    assert calls == ["a", "bb", "ccc", "dddd", "a"]  # "a" was the oldest when "dddd" came
    assert len(memo.table) == 3


def test_rebind_set_holds_local_and_this_host_addresses():
    private = AddressSet()
    for text in ("127.0.0.1", "10.0.0.1", "192.168.0.1", "0.0.0.0", "::", "::1", "fd00::1", "::ffff:10.0.0.1"):
        assert private.contains(text), text
    for text in ("192.0.2.10", "8.8.8.8", "2001:db8::10", "::ffff:8.8.8.8"):
        assert not private.contains(text), text


def test_parse_address_unwraps_mapped_and_drops_scope():
    assert str(parse_address("::ffff:10.0.0.1")) == "10.0.0.1"
    assert str(parse_address("fe80::1%lo")) == "fe80::1"
    assert parse_address("example.com") is None
