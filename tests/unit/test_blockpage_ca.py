"""The local CA: created once with private key files, reused, never silently replaced."""

import os
import stat

import pytest
from cryptography import x509

from sinkdns.blockpage.ca import CA_CERT, CA_KEY, LEAF_KEY, CertificateError, export_ca, load_or_create


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_start_creates_the_ca_with_private_keys(tmp_path):
    state = tmp_path / "state"
    authority = load_or_create(str(state), "Example Networks")
    assert _mode(state) == 0o700
    assert _mode(state / CA_KEY) == 0o600
    assert _mode(state / LEAF_KEY) == 0o600
    assert authority.leaf_key_path == str(state / LEAF_KEY)
    cert = authority.cert
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)[0].value == "Example Networks"
    assert cert.subject == cert.issuer


def test_later_starts_reuse_it(tmp_path):
    first = load_or_create(str(tmp_path))
    second = load_or_create(str(tmp_path))
    assert first.cert == second.cert
    assert first.leaf_key.private_numbers() == second.leaf_key.private_numbers()


def test_export_prints_the_certificate_the_server_uses(tmp_path):
    authority = load_or_create(str(tmp_path))
    pem = export_ca(str(tmp_path))
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificate(pem.encode()) == authority.cert
    assert "PRIVATE" not in pem


def test_export_before_any_start_says_how_to_make_one(tmp_path):
    with pytest.raises(CertificateError, match="created when `sinkdns serve` first starts with --block-page-tls"):
        export_ca(str(tmp_path))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("remove", [CA_CERT, CA_KEY])
def test_half_a_ca_is_an_error_not_a_new_ca(tmp_path, remove):
    load_or_create(str(tmp_path))
    os.remove(tmp_path / remove)
    with pytest.raises(CertificateError, match=f"{remove}: missing"):
        load_or_create(str(tmp_path))


def test_a_certificate_for_another_key_is_an_error(tmp_path):
    load_or_create(str(tmp_path / "a"))
    load_or_create(str(tmp_path / "b"))
    os.replace(tmp_path / "b" / CA_CERT, tmp_path / "a" / CA_CERT)
    with pytest.raises(CertificateError, match="does not belong to the key"):
        load_or_create(str(tmp_path / "a"))


def test_a_key_readable_by_others_is_refused(tmp_path):
    load_or_create(str(tmp_path))
    os.chmod(tmp_path / CA_KEY, 0o644)
    with pytest.raises(CertificateError, match="readable by other users"):
        load_or_create(str(tmp_path))


def test_garbage_files_are_named(tmp_path):
    load_or_create(str(tmp_path))
    (tmp_path / CA_CERT).write_text("not a certificate")
    with pytest.raises(CertificateError, match=f"{CA_CERT}: not a PEM certificate"):
        load_or_create(str(tmp_path))
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        export_ca(str(tmp_path))
