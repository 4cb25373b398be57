"""The double's certificates (:func:`make_pki`, :func:`pki_from_ca`) and what it reads from
certificates (channel binding data, XMPP addresses): X.509 in one place, away from the protocol
code."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ID_ON_XMPPADDR = "1.3.6.1.5.5.7.8.5"


@dataclass(frozen=True)
class Pki:
    """The double's certificates: its CA, its server certificate, a client certificate for
    ``alice@<domain>``, and a certificate of the same CA for a wrong name."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    cert_der: bytes
    client_cert_file: Path  # for alice@<domain>, signed by the same CA
    client_key_file: Path
    wrong_cert_file: Path | None = None
    wrong_key_file: Path | None = None
    ca: Any = None  # harness.environment.pki.CertificateAuthority, when made with pki_from_ca


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _xmpp_addr(jid: str) -> x509.OtherName:
    data = jid.encode()
    assert len(data) < 128
    return x509.OtherName(x509.ObjectIdentifier(ID_ON_XMPPADDR), b"\x0c" + bytes([len(data)]) + data)


def make_pki(directory: Path, domain: str, ca_name: str = "Double Test CA") -> Pki:
    """A CA of its own and certificates for ``domain`` (and ``wrong-name.test``), EC P-256,
    quick to make: for the actor unit tests."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        cn: str, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier, stem: str
    ) -> tuple[Path, Path, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_file = directory / f"{stem}.pem"
        key_file = directory / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)

    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    eku = x509.oid.ExtendedKeyUsageOID
    cert_file, key_file, der = issue(domain, [x509.DNSName(domain)], eku.SERVER_AUTH, "server")
    wrong_cert, wrong_key, _ = issue(
        "wrong-name.test", [x509.DNSName("wrong-name.test")], eku.SERVER_AUTH, "wrong-name"
    )
    jid = f"alice@{domain}"
    client_cert, client_key, _ = issue(
        jid, [x509.RFC822Name(jid), _xmpp_addr(jid)], eku.CLIENT_AUTH, "client"
    )
    return Pki(ca_file, cert_file, key_file, der, client_cert, client_key, wrong_cert, wrong_key)


def pki_from_ca(directory: Path, domain: str, wrong_name: str = "wrong-name.test") -> Pki:
    """Certificates as a run makes them: a fresh harness CA
    (:class:`harness.environment.pki.CertificateAuthority`), a server certificate for
    ``domain``, one for ``wrong_name`` and a client certificate for ``alice@<domain>``."""
    from harness.environment.pki import CertificateAuthority

    ca = CertificateAuthority.create(directory / "ca", name="Double Test CA")
    server = ca.issue_server(domain, directory / "server")
    wrong = ca.issue_server(wrong_name, directory / "wrong")
    client = ca.issue_client(f"alice@{domain}", directory / "client")
    der = x509.load_pem_x509_certificate(server.cert_path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    return Pki(
        ca.cert_path,
        server.chain_path,
        server.key_path,
        der,
        client.cert_path,
        client.key_path,
        wrong.chain_path,
        wrong.key_path,
        ca,
    )


def load_cert_der(cert_file: Path) -> bytes:
    pem = cert_file.read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def tls_server_end_point(cert_der: bytes, *, flawed: bool = False) -> bytes:
    """RFC 5929 §4.1: the certificate hashed with its signature's hash (SHA-256 for MD5/SHA-1).
    ``flawed``: always SHA-1 (the flaw scram-plus-wrong-channel-binding)."""
    if flawed:
        return hashlib.sha1(cert_der).digest()
    cert = x509.load_der_x509_certificate(cert_der)
    algorithm = cert.signature_hash_algorithm
    name = algorithm.name if algorithm is not None else "sha256"
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, cert_der).digest()


def xmpp_addrs(cert_der: bytes) -> list[str]:
    """The id-on-xmppAddr values (UTF8String) of a certificate's subjectAltName."""
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = []
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id.dotted_string != ID_ON_XMPPADDR:
            continue
        value = name.value
        if len(value) < 2 or value[0] != 0x0C:
            continue
        length, offset = value[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
        with contextlib.suppress(UnicodeDecodeError):
            out.append(value[offset : offset + length].decode("utf-8"))
    return out
