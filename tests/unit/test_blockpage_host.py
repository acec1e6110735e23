"""The name a Host header asks for."""

import pytest

from sinkdns.blockpage.facts import is_web_url
from sinkdns.blockpage.host import MAX_HOST, BadHost, host_name


@pytest.mark.parametrize(
    "header, name",
    [
        ("kiwifarms.net", "kiwifarms.net"),
        ("KiwiFarms.NET", "kiwifarms.net"),
        ("kiwifarms.net.", "kiwifarms.net"),
        ("kiwifarms.net:8080", "kiwifarms.net"),
        ("kiwifarms.net.:80", "kiwifarms.net"),
        (" kiwifarms.net ", "kiwifarms.net"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("example.com:", "example.com:"),
        ("example.com:http", "example.com:http"),
        ("<script>alert(1)</script>.example", "<script>alert(1)</script>.example"),
        ("", ""),
    ],
)
def test_host_name(header, name):
    assert host_name(header) == name


def test_absurd_length_is_refused():
    assert host_name("a" * MAX_HOST)
    with pytest.raises(BadHost):
        host_name("a" * (MAX_HOST + 1))


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://example.net/", True),
        ("http://example.net/post?id=1#x", True),
        ("https://example.net", True),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("//example.net/", False),
        ("https:///path", False),
        ("https://example.net/a b", False),
        ("https://example.net/>; rel=x", False),
        ('https://example.net/"', False),
        ("https://example.net/\r\nSet-Cookie: x", False),
        ("", False),
    ],
)
def test_is_web_url(url, ok):
    assert is_web_url(url) is ok
