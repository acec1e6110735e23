import pytest

from sinkdns.policy.names import BadName, is_ip, normalize


@pytest.mark.parametrize("raw, expected", [
    ("ads.example.com", "ads.example.com"),
    ("ADS.Example.COM.", "ads.example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ("philadelphia_cbslocal.us.intellitxt.com", "philadelphia_cbslocal.us.intellitxt.com"),
    ("a" * 63 + ".example", "a" * 63 + ".example"),
], ids=["plain", "case-and-dot", "u-label", "a-label-upper", "underscore", "63-octet-label"])
def test_normalize_accepts(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw, why", [
    ("com", "single label"),
    ("ads..example.com", "empty label"),
    (".ads.example.com", "empty label"),
    ("a" * 64 + ".example", "longer than 63"),
    (".".join(["abcdefghi"] * 26), "longer than 255"),
    ("xn--zz.example", "invalid A-label"),
    ("ad-host-*.example", "character"),
    ("ads example.com", "character"),
    ("ads\x00.example", "character"),
    ("", "empty"),
])
def test_normalize_rejects(raw, why):
    with pytest.raises(BadName, match=why):
        normalize(raw)


@pytest.mark.parametrize("text, expected", [("0.0.0.0", True), ("::1", True), ("fe80::1%lo0", True), ("ads.example", False)])
def test_is_ip(text, expected):
    assert is_ip(text) is expected
