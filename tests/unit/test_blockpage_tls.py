"""Leaf certificates: only for the name asked, valid under the CA, cached within bounds, renewed before expiry."""

import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from sinkdns.blockpage.ca import load_or_create
from sinkdns.blockpage.tls import LEAF_VALIDITY, RENEW_BEFORE, LeafIssuer

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    return load_or_create(str(tmp_path_factory.mktemp("state")), now=NOW)


def test_leaf_verifies_under_the_ca_for_its_name_only(authority):
    leaf = LeafIssuer(authority).certificate("kiwifarms.net", NOW)
    store = Store([authority.cert])
    builder = PolicyBuilder().store(store).time(NOW + datetime.timedelta(days=1))
    chain = builder.build_server_verifier(x509.DNSName("kiwifarms.net")).verify(leaf, [])
    assert chain[-1] == authority.cert
    with pytest.raises(x509.verification.VerificationError):
        builder.build_server_verifier(x509.DNSName("example.com")).verify(leaf, [])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kiwifarms.net"]
    assert leaf.public_key() == authority.leaf_key.public_key()
    assert leaf.not_valid_after_utc - NOW == LEAF_VALIDITY


def test_contexts_are_cached_and_the_cache_is_bounded(authority):
    issuer = LeafIssuer(authority, size=2, now=Clock())
    a = issuer.context_for("a.example")
    assert isinstance(a, ssl.SSLContext)
    assert issuer.context_for("a.example") is a
    issuer.context_for("b.example")
    issuer.context_for("a.example")  # a is now the most recent
    issuer.context_for("c.example")  # evicts b
    assert issuer.issued == 3
    assert issuer.context_for("a.example") is a
    issuer.context_for("b.example")
    assert issuer.issued == 4


def test_a_cached_certificate_is_replaced_before_it_expires(authority):
    clock = Clock()
    issuer = LeafIssuer(authority, now=clock)
    first = issuer.context_for("a.example")
    clock.now = NOW + LEAF_VALIDITY - RENEW_BEFORE - datetime.timedelta(seconds=1)
    assert issuer.context_for("a.example") is first
    clock.now += datetime.timedelta(seconds=2)
    assert issuer.context_for("a.example") is not first
