"""The fleet's certificate authority for log shipping: made on the control machine, never in the repository.

journal-upload (every host) and journal-remote (monitoring hosts) speak HTTPS with a certificate per host
signed by this CA, and journal-remote accepts only clients presenting one: a fleet address without its
certificate cannot inject entries, and each host's journal is filed under its certificate's name, not
under whatever hostname an entry claims.

The CA and the hosts' keys live in MEVFLEET_CA_DIR, else ~/.local/state/mevfleet/ca/<fleet name>/: the
directory 0700, every key 0600. A host's certificate is issued once and kept (so a second deploy changes
nothing); it is re-issued when its name or address changes, when it was signed by another CA, or within
30 days of expiry.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10
HOST_DAYS = 825
RENEW_WITHIN = datetime.timedelta(days=30)


@dataclass(frozen=True)
class HostCredentials:
    ca: Path  # the CA certificate (public)
    cert: Path
    key: Path


def ca_dir(fleet: str) -> Path:
    configured = os.environ.get("MEVFLEET_CA_DIR")
    return Path(configured) if configured else Path.home() / ".local/state/mevfleet/ca" / fleet


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: the key is never readable by others, even briefly.
    fd = os.open(path.with_suffix(path.suffix + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(path.with_suffix(path.suffix + ".tmp"), path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def ensure_ca(directory: Path, fleet: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mevfleet {fleet} log shipping CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _current(cert_path: Path, ca: x509.Certificate, name: str, address: str) -> bool:
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):  # signed by another CA (a re-made one): re-issue
        return False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        and ipaddress.ip_address(address) in names.get_values_for_type(x509.IPAddress)
        and cert.not_valid_after_utc - _now() > RENEW_WITHIN
    )


def ensure_host(directory: Path, fleet: str, name: str, address: str) -> HostCredentials:
    """The host's key and certificate (server and client: monitoring hosts both receive and send)."""
    ca, ca_key = ensure_ca(directory, fleet)
    creds = HostCredentials(ca=directory / "ca.pem", cert=directory / f"{name}.pem", key=directory / f"{name}.key")
    if _current(creds.cert, ca, name, address) and creds.key.exists():
        return creds
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=HOST_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(creds.key, _key_pem(key))
    creds.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return creds
