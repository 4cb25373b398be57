"""The run's own test PKI: one CA that issues every target's and actor's certificate.

Every run makes a fresh CA, so no certificate outlives a run and no real trust anchor is ever
involved. Servers validate each other's certificates during federation, so each server
certificate carries the domain as a DNS SAN, as public CAs issue them, and both serverAuth and
clientAuth usage: a server presents its certificate when it connects out. An XMPP
``id-on-xmppAddr`` SAN for the domain is an opt-in: RFC 6120 §13.7.1.4 allows it, but a server
that mishandles it (docs/federation-notes.md) must be a finding of a scenario that asks for it,
not a side effect of every run.
Broken certificates (expired, wrong name, from an untrusted CA) come from the same calls with
other arguments, so the scenarios that must reject them use the same code path as the ones
that must accept the good ones.

This is a throwaway PKI: every file it writes, private keys included, is mode 0644, because the
servers read them as their own OS users (one per product), whose groups differ.
Never point it at anything but a run directory.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

#: RFC 6120 section 13.7.1.4: the otherName that carries a JID (or a bare domain).
ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")

# RSA rather than EC: old TLS stacks among the servers handle it everywhere.
_KEY_SIZE = 2048
_FILE_MODE = 0o644
_CA_LIFETIME = datetime.timedelta(days=365)
_LEAF_LIFETIME = datetime.timedelta(days=90)
# Back-dated so that a server whose clock is slightly behind still accepts a fresh certificate.
_CLOCK_SKEW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class IssuedCertificate:
    """Where an issued certificate's files are, in the layouts the servers want.

    ``pem_path`` is key + certificate + CA certificate in one file (for servers that take one
    combined file); ``chain_path`` is certificate + CA certificate (for servers that take key
    and chain separately).
    """

    cert_path: Path
    key_path: Path
    pem_path: Path
    chain_path: Path


def _xmpp_addr(value: str) -> x509.OtherName:
    """An ``id-on-xmppAddr`` otherName: the value DER-encoded as a UTF8String."""
    data = value.encode("utf-8")
    return x509.OtherName(ID_ON_XMPPADDR, b"\x0c" + _der_length(len(data)) + data)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # The traditional "RSA PRIVATE KEY" form is the one every server's TLS stack reads.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, _FILE_MODE)  # explicit: the umask must not make keys unreadable to servers
    return path


def _file_stem(name: str) -> str:
    if not name or "/" in name or "\x00" in name or name.startswith("."):
        raise ValueError(f"{name!r} cannot name a certificate file")
    return name


class CertificateAuthority:
    """A CA whose key lives in a run directory; issues server and client certificates."""

    def __init__(
        self, certificate: x509.Certificate, key: rsa.RSAPrivateKey, cert_path: Path, key_path: Path
    ) -> None:
        self.certificate = certificate
        self.cert_path = cert_path
        self.key_path = key_path
        self._key = key

    @classmethod
    def create(cls, directory: Path, name: str = "Interop Test CA") -> CertificateAuthority:
        """Make a new self-signed CA and write ``ca.crt`` and ``ca.key`` into ``directory``.

        A second, independent CA (the "untrusted" one of federation checks) is just another
        call with another directory; give it another name too, so that logs tell them apart.
        """
        directory.mkdir(parents=True, exist_ok=True)
        key = _new_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IM Interop Harness"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + _CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_path = _write(directory / "ca.crt", _cert_pem(certificate))
        key_path = _write(directory / "ca.key", _key_pem(key))
        return cls(certificate, key, cert_path, key_path)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """The CA that :meth:`create` wrote into ``directory`` (another worker of the same run)."""
        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return cls(certificate, key, cert_path, key_path)

    def issue_server(
        self,
        domain: str,
        directory: Path,
        *,
        extra_names: Sequence[str] = (),
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        key_usage_server_and_client: bool = True,
        xmpp_addr: bool = False,
        dns_id: bool = True,
    ) -> IssuedCertificate:
        """Issue a server certificate for a domain, written as ``<domain>.crt/.key/.pem``.

        SAN: ``domain`` and each of ``extra_names`` as DNS names; with ``xmpp_addr`` also
        ``domain`` as id-on-xmppAddr. A wrong-name certificate is one issued for another domain; an expired
        one has ``not_after`` in the past. With ``key_usage_server_and_client=False`` the
        certificate has serverAuth only, which a peer may refuse for an outgoing s2s link. With
        ``dns_id=False`` the names are no DNS-IDs: the domain is only the CN and an
        id-on-xmppAddr (what RFC 6125 §4.1 advises against; a client must not accept it).
        """
        names = [domain, *extra_names]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if key_usage_server_and_client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        return self._issue(
            common_name=domain,
            alt_names=[
                *(x509.DNSName(name) for name in names if dns_id),
                *([_xmpp_addr(domain)] if xmpp_addr or not dns_id else []),
            ],
            usages=usages,
            directory=directory,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_client(
        self,
        jid: str,
        directory: Path,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a client certificate for SASL EXTERNAL (XEP-0178), written as ``<jid>.crt`` etc.

        The JID is both the subject CN and the id-on-xmppAddr SAN: servers differ in which one
        they read. Usage is clientAuth only.
        """
        return self._issue(
            common_name=jid,
            alt_names=[_xmpp_addr(jid)],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            directory=directory,
            not_before=not_before,
            not_after=not_after,
        )

    def _issue(
        self,
        *,
        common_name: str,
        alt_names: list[x509.GeneralName],
        usages: list[ObjectIdentifier],
        directory: Path,
        not_before: datetime.datetime | None,
        not_after: datetime.datetime | None,
    ) -> IssuedCertificate:
        stem = _file_stem(common_name)
        now = datetime.datetime.now(datetime.UTC)
        not_before = not_before or now - _CLOCK_SKEW
        not_after = not_after or now + _LEAF_LIFETIME
        if not_after <= not_before:
            raise ValueError(f"not_after ({not_after}) must be later than not_before ({not_before})")
        directory.mkdir(parents=True, exist_ok=True)
        key = _new_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_pem, key_pem, ca_pem = _cert_pem(certificate), _key_pem(key), _cert_pem(self.certificate)
        return IssuedCertificate(
            cert_path=_write(directory / f"{stem}.crt", cert_pem),
            key_path=_write(directory / f"{stem}.key", key_pem),
            pem_path=_write(directory / f"{stem}.pem", key_pem + cert_pem + ca_pem),
            chain_path=_write(directory / f"{stem}.chain.crt", cert_pem + ca_pem),
        )
