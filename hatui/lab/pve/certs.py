"""TLS material for the emulator: a private CA and a server certificate signed by it.

Files (in the state dir unless paths are given):

- ``ca.pem``            the CA certificate (give it to clients as ``verify_ssl`` / ``ca_file``)
- ``ca-key.pem``        the CA private key (0600)
- ``pve-ssl.pem``       the server certificate (named after PVE's /etc/pve/local/pve-ssl.pem)
- ``pve-ssl.key``       the server private key (0600)
- ``fingerprint``       SHA-256 of the server certificate, ``AA:BB:...`` upper-case (as PVE shows it)

Existing files are reused, so a restarted emulator keeps its fingerprint.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "pve-ssl.pem"
SERVER_KEY = "pve-ssl.key"
FINGERPRINT = "fingerprint"


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path
    fingerprint: str  # SHA-256, colon-separated upper-case hex


def fingerprint_of_der(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def fingerprint_of_pem_file(path: Path) -> str:
    pem = Path(path).read_text()
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(pem))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def generate(state_dir: Path, hostnames: list[str], *, days: int = 3650) -> TlsFiles:
    """Create a fresh CA and a server certificate for `hostnames` (DNS names or IP literals)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    start = _now() - _dt.timedelta(minutes=5)
    end = start + _dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, start, end)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(key, ca_key, ca_cert.subject, hostnames, start, end)

    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    nokey = serialization.NoEncryption()
    (state_dir / CA_CERT).write_bytes(ca_cert.public_bytes(pem))
    _write_private(state_dir / CA_KEY, ca_key.private_bytes(pem, pkcs8, nokey))
    (state_dir / SERVER_CERT).write_bytes(cert.public_bytes(pem))
    _write_private(state_dir / SERVER_KEY, key.private_bytes(pem, pkcs8, nokey))
    fingerprint = fingerprint_of_der(cert.public_bytes(serialization.Encoding.DER))
    (state_dir / FINGERPRINT).write_text(fingerprint + "\n")
    return TlsFiles(state_dir / CA_CERT, state_dir / SERVER_CERT, state_dir / SERVER_KEY, fingerprint)


def _key_usage(*, key_encipherment: bool = False, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(ca_key: ec.EllipticCurvePrivateKey, start: _dt.datetime, end: _dt.datetime) -> x509.Certificate:
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Manager CA (hatui emulator)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment (hatui emulator)"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _subject_alt_names(hostnames: list[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in hostnames:
        if not host or host in seen:
            continue
        seen.add(host)
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return sans


def _server_certificate(key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name,
                        hostnames: list[str], start: _dt.datetime, end: _dt.datetime) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Node (hatui emulator)"),
            x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "localhost"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hostnames)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def ensure(
    state_dir: Path,
    hostnames: list[str],
    *,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    ca_file: Path | None = None,
    regenerate: bool = False,
) -> TlsFiles:
    """Return usable TLS files: the given paths, the existing ones in `state_dir`, or new ones."""
    if cert_file is not None or key_file is not None:
        if cert_file is None or key_file is None:
            raise ValueError("--cert and --key must be given together")
        fingerprint = fingerprint_of_pem_file(cert_file)
        (state_dir / FINGERPRINT).write_text(fingerprint + "\n")
        return TlsFiles(Path(ca_file) if ca_file else Path(cert_file), Path(cert_file), Path(key_file), fingerprint)
    paths = [state_dir / name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)]
    if not regenerate and all(p.exists() for p in paths) and _covers(state_dir / SERVER_CERT, hostnames):
        fingerprint = fingerprint_of_pem_file(state_dir / SERVER_CERT)
        (state_dir / FINGERPRINT).write_text(fingerprint + "\n")
        return TlsFiles(state_dir / CA_CERT, state_dir / SERVER_CERT, state_dir / SERVER_KEY, fingerprint)
    return generate(state_dir, hostnames)


def _covers(cert_path: Path, hostnames: list[str]) -> bool:
    """True when the existing certificate is still valid and names every host we need."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc <= _now() + _dt.timedelta(days=1):
            return False
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = set(san.get_values_for_type(x509.DNSName))
        names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        return all(h in names for h in hostnames if h)
    except Exception:
        return False
