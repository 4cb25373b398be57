"""The run's PKI, checked the way servers use it: real TLS handshakes against its files."""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.environment.pki import ID_ON_XMPPADDR, CertificateAuthority, IssuedCertificate


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> IssuedCertificate:
    return ca.issue_server("a.test", tmp_path_factory.mktemp("a"), extra_names=["conference.a.test"])


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def xmpp_addrs(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    values = []
    for other in san.get_values_for_type(x509.OtherName):
        assert other.type_id == ID_ON_XMPPADDR
        assert other.value[0] == 0x0C  # UTF8String, short form length in these tests
        values.append(other.value[2 : 2 + other.value[1]].decode("utf-8"))
    return values


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Run a TLS handshake entirely in memory: no sockets, so nothing can hang or collide."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    srv = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, obj in (("client", client), ("server", srv)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server learns of a rejected client certificate only on the next read.
            client.write(b"ping")
            s_in.write(c_out.read())
            assert srv.read(4) == b"ping"
            return client, srv
    raise AssertionError("handshake did not finish")


def server_context(issued: IssuedCertificate) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(issued.chain_path, issued.key_path)
    return ctx


def client_context(ca: CertificateAuthority) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca.cert_path))


def test_ca_files_are_a_self_signed_ca_readable_by_everyone(ca: CertificateAuthority) -> None:
    cert = load(ca.cert_path)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)
    assert ca.cert_path.name == "ca.crt" and ca.key_path.name == "ca.key"
    for path in (ca.cert_path, ca.key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_server_certificate_names_usages_and_files(
    ca: CertificateAuthority, server: IssuedCertificate
) -> None:
    cert = load(server.cert_path)
    cert.verify_directly_issued_by(load(ca.cert_path))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.test", "conference.a.test"]
    assert xmpp_addrs(cert) == []  # DNS names only, as public CAs issue them
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert [p.name for p in (server.cert_path, server.key_path, server.pem_path)] == [
        "a.test.crt",
        "a.test.key",
        "a.test.pem",
    ]
    for path in (server.cert_path, server.key_path, server.pem_path, server.chain_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    pem = server.pem_path.read_text()
    assert pem.index("PRIVATE KEY") < pem.index("CERTIFICATE")
    chain = x509.load_pem_x509_certificates(server.chain_path.read_bytes())
    assert chain == [cert, load(ca.cert_path)]


def test_combined_pem_serves_tls_and_the_ca_verifies_it(
    ca: CertificateAuthority, server: IssuedCertificate
) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server.pem_path)  # key + cert + CA in one file, as ejabberd/jabberd2 get it
    for name in ("a.test", "conference.a.test"):
        client, _ = handshake(ctx, client_context(ca), name)
        assert client.getpeercert()["subject"] == ((("commonName", "a.test"),),)


def test_wrong_name_is_rejected(ca: CertificateAuthority, server: IssuedCertificate) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(server_context(server), client_context(ca), "b.test")


def test_expired_certificate_is_rejected(ca: CertificateAuthority, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_server(
        "old.test",
        tmp_path,
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        handshake(server_context(expired), client_context(ca), "old.test")


def test_certificate_of_another_ca_is_rejected(ca: CertificateAuthority, tmp_path: Path) -> None:
    untrusted = CertificateAuthority.create(tmp_path / "untrusted", name="Untrusted Test CA")
    rogue = untrusted.issue_server("a.test", tmp_path / "rogue")
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate in certificate chain"):
        handshake(server_context(rogue), client_context(ca), "a.test")


def test_server_auth_only_when_asked(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue_server("c.test", tmp_path, key_usage_server_and_client=False)
    eku = load(issued.cert_path).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificate_authenticates_to_a_server_that_trusts_the_ca(
    ca: CertificateAuthority, server: IssuedCertificate, tmp_path: Path
) -> None:
    issued = ca.issue_client("alice@a.test", tmp_path)
    cert = load(issued.cert_path)
    assert cert.subject.rfc4514_string() == "CN=alice@a.test"
    assert xmpp_addrs(cert) == ["alice@a.test"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    server_ctx = server_context(server)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=str(ca.cert_path))
    client_ctx = client_context(ca)
    client_ctx.load_cert_chain(issued.chain_path, issued.key_path)
    _, srv = handshake(server_ctx, client_ctx, "a.test")
    assert srv.getpeercert()["subject"] == ((("commonName", "alice@a.test"),),)


def test_client_certificate_of_another_ca_is_refused(
    ca: CertificateAuthority, server: IssuedCertificate, tmp_path: Path
) -> None:
    untrusted = CertificateAuthority.create(tmp_path / "untrusted", name="Untrusted Test CA")
    issued = untrusted.issue_client("alice@a.test", tmp_path)
    server_ctx = server_context(server)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=str(ca.cert_path))
    client_ctx = client_context(ca)
    client_ctx.load_cert_chain(issued.pem_path)
    with pytest.raises(ssl.SSLError, match="certificate verify failed"):
        handshake(server_ctx, client_ctx, "a.test")


def test_rejects_bad_validity_and_unsafe_file_names(ca: CertificateAuthority, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(ValueError, match="not_after"):
        ca.issue_server("a.test", tmp_path, not_before=now, not_after=now)
    with pytest.raises(ValueError, match="cannot name"):
        ca.issue_server("../etc/a.test", tmp_path)


def test_server_certificate_with_xmpp_addr_on_request(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue_server("b.test", tmp_path, xmpp_addr=True)
    cert = load(issued.cert_path)
    assert xmpp_addrs(cert) == ["b.test"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["b.test"]
