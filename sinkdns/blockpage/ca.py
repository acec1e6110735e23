"""The block page's local certificate authority, created once in the state directory and reused after.

Browsers only see the block page over HTTPS without a warning if they trust this CA, which an operator
installs on managed clients (`sinkdns ca export`). Trusting it lets this host speak for any name, so its
key never leaves the state directory, is readable by its owner only, and signs certificates only for
names the policy blocks. All processes of one installation (workers, restarts) share the CA and the one
leaf key, so the files are created under a lock and checked on every start.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sinkdns.errors import SinkdnsError

CA_CERT = "blockpage-ca.pem"
CA_KEY = "blockpage-ca.key"
LEAF_KEY = "blockpage-leaf.key"
LOCK = ".blockpage-ca.lock"
CA_VALIDITY = datetime.timedelta(days=3650)


class CertificateError(SinkdnsError):
    """The CA files are missing, unreadable, inconsistent or too open; the message names the file."""


@dataclass(frozen=True, slots=True)
class Authority:
    """The CA, and the one key every leaf certificate is issued for (its file is what TLS contexts load)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    leaf_key: ec.EllipticCurvePrivateKey
    leaf_key_path: str


def load_or_create(state_dir: str, operator: str = "sinkdns", now: datetime.datetime | None = None) -> Authority:
    """The installation's CA, created on first use; a half-present or mismatched pair is an error, never replaced,
    because clients may already trust the old certificate."""
    moment = now or datetime.datetime.now(datetime.UTC)
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        lock = os.open(os.path.join(state_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CertificateError(f"{state_dir}: cannot use the state directory: {exc.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cert, key = _ca(state_dir, operator, moment)
        leaf_path = os.path.join(state_dir, LEAF_KEY)
        leaf_key = _private_key(leaf_path) if os.path.exists(leaf_path) else _new_key(leaf_path)
    finally:
        os.close(lock)
    return Authority(cert, key, leaf_key, leaf_path)


def export_ca(state_dir: str) -> str:
    """The CA certificate as PEM, for `sinkdns ca export`. Reads only: a CA is made by the server that uses it,
    so an export run as another user cannot leave key files the server cannot read."""
    path = os.path.join(state_dir, CA_CERT)
    try:
        with open(path, "rb") as f:
            pem = f.read()
        x509.load_pem_x509_certificate(pem)
    except FileNotFoundError:
        raise CertificateError(
            f"{path}: no block-page CA yet; it is created when `sinkdns serve` first starts with --block-page-tls"
        ) from None
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise CertificateError(f"{path}: not a PEM certificate") from None
    return pem.decode("ascii")


def _ca(state_dir: str, operator: str, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = os.path.join(state_dir, CA_CERT), os.path.join(state_dir, CA_KEY)
    have_cert, have_key = os.path.exists(cert_path), os.path.exists(key_path)
    if have_cert != have_key:
        present, missing = (cert_path, key_path) if have_cert else (key_path, cert_path)
        raise CertificateError(
            f"{missing}: missing while {present} exists; restore it, or remove both to make a new CA"
        )
    if not have_cert:
        key = _new_key(key_path)
        cert = _self_signed(key, operator, now)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert, key
    key = _private_key(key_path)
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except OSError as exc:
        raise CertificateError(f"{cert_path}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise CertificateError(f"{cert_path}: not a PEM certificate") from None
    if cert.public_key() != key.public_key():
        raise CertificateError(f"{cert_path}: does not belong to the key in {key_path}")
    return cert, key


def _self_signed(key: ec.EllipticCurvePrivateKey, operator: str, now: datetime.datetime) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"sinkdns block page CA {secrets.token_hex(4)}"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, operator[:64] or "sinkdns"),
    ])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def _new_key(path: str) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(path, pem, 0o600)
    return key


def _private_key(path: str) -> ec.EllipticCurvePrivateKey:
    try:
        if os.stat(path).st_mode & 0o077:
            raise CertificateError(f"{path}: readable by other users; run chmod 600 on it (and consider a new CA)")
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise CertificateError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{path}: expected an EC key")
    return key


def _write(path: str, data: bytes, mode: int) -> None:
    """Whole or not at all: written beside the target, then renamed over it."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CertificateError(f"{path}: cannot write: {exc.strerror}") from None
