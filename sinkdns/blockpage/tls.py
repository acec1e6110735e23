"""HTTPS for blocked names: a certificate for the name in the SNI, issued on the fly, and nothing for other names.

The listening context has no certificate of its own. Its SNI callback asks the policy whether the name is
blocked; only then does it swap in a context holding a certificate for exactly that name, so a client
cannot make this host sign whatever it asks for, and a handshake without SNI or for any other name fails.
"""

from __future__ import annotations

import datetime
import logging
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sinkdns.blockpage.ca import Authority
from sinkdns.blockpage.facts import Lookup

log = logging.getLogger("sinkdns.blockpage")

LEAF_VALIDITY = datetime.timedelta(days=30)
RENEW_BEFORE = datetime.timedelta(days=1)  # a cached certificate is replaced a day before it expires
CACHE_SIZE = 1024  # wildcard rules make the set of blocked names unbounded; the cache is not

Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeafIssuer:
    """Signs a certificate for a blocked name on first use and keeps the most recent ones as ready SSL contexts.

    Every leaf uses the authority's one leaf key: a fresh key per name would cost far more than the
    signature and gain nothing, since all of them live in the same process.
    """

    def __init__(self, authority: Authority, size: int = CACHE_SIZE, now: Clock = _utcnow) -> None:
        self.authority = authority
        self.size = size
        self.now = now
        self.issued = 0
        self._cache: OrderedDict[str, tuple[ssl.SSLContext, datetime.datetime]] = OrderedDict()

    def context_for(self, name: str) -> ssl.SSLContext:
        """A server context with a certificate for `name` (lower case A-labels), which the caller found blocked."""
        moment = self.now()
        entry = self._cache.get(name)
        if entry is not None and moment < entry[1] - RENEW_BEFORE:
            self._cache.move_to_end(name)
            return entry[0]
        cert = self.certificate(name, moment)
        context = base_context()
        with tempfile.NamedTemporaryFile(suffix=".pem") as f:  # ssl loads certificates from files only
            f.write(cert.public_bytes(serialization.Encoding.PEM))
            f.flush()
            context.load_cert_chain(f.name, self.authority.leaf_key_path)
        self.issued += 1
        self._cache[name] = (context, cert.not_valid_after_utc)
        self._cache.move_to_end(name)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return context

    def certificate(self, name: str, now: datetime.datetime) -> x509.Certificate:
        """A leaf for exactly `name`, valid from an hour ago (clock skew) for LEAF_VALIDITY, never past the CA."""
        ca = self.authority.cert
        ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        public = self.authority.leaf_key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
            .issuer_name(ca.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(min(now + LEAF_VALIDITY, ca.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self.authority.key, hashes.SHA256())
        )


def base_context() -> ssl.SSLContext:
    """TLS 1.2 and later, HTTP/1.1 only (the block page speaks nothing else)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def server_context(issuer: LeafIssuer, lookup: Lookup) -> ssl.SSLContext:
    """The context TLS listeners start every handshake with; see the module docstring."""
    context = base_context()

    def choose(connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        if not server_name:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        name = server_name.lower()
        name = name.removesuffix(".")
        try:
            if lookup(name) is None:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            connection.context = issuer.context_for(name)
        except Exception:
            log.exception("cannot serve a certificate", extra={"sni": name})
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    context.sni_callback = choose
    return context
