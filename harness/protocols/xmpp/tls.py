"""TLS for the XMPP actors: the client SSLContext built from connect parameters, and what a
handshake yields as evidence (version, cipher, the server's certificate).

The context verifies the server against the run's CA (``ctx.target.ca_file``, hostname checked
against the name passed as ``server_hostname``, the target domain), writes the TLS key log to
``ctx.keylog_file`` so the pcap can be decrypted, applies the requested version bounds (with
OpenSSL's security level 0 for TLS < 1.2, which OpenSSL 3 refuses otherwise) and loads the
client certificate the run issued for the actor when asked.
"""

from __future__ import annotations

import hashlib
import ssl
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.verdict import HarnessError, Unsupported

if TYPE_CHECKING:
    from harness.actors import ActorContext

TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_HAS_VERSION = {"1.0": "HAS_TLSv1", "1.1": "HAS_TLSv1_1", "1.2": "HAS_TLSv1_2", "1.3": "HAS_TLSv1_3"}
# OpenSSL reasons that mean "our side cannot" rather than "the server would not".
LOCAL_TLS_PROBLEMS = {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "NO_SHARED_CIPHER_AVAILABLE_LOCALLY"}
# JSON schema of a ``tls_min`` / ``tls_max`` step parameter.
VERSION_SCHEMA = {"type": ["string", "number"], "enum": ["1.0", "1.1", "1.2", "1.3", 1.0, 1.1, 1.2, 1.3]}


def parse_version(value: str | float | None) -> str | None:
    """``1.2``, ``"1.2"`` -> ``"1.2"``; None stays None; anything else is a harness error."""
    if value is None:
        return None
    text = f"{float(value):.1f}" if isinstance(value, int | float) else str(value).strip()
    if text not in TLS_VERSIONS:
        raise HarnessError(f"unknown TLS version {value!r} (1.0, 1.1, 1.2 or 1.3)")
    return text


def client_context(
    ctx: ActorContext,
    tls_min: str | None = None,
    tls_max: str | None = None,
    client_cert: bool = False,
    alpn: list[str] | None = None,
) -> ssl.SSLContext:
    """The SSLContext of an actor's connection (versions as returned by :func:`parse_version`)."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ctx.target.ca_file is not None:
        tls.load_verify_locations(cafile=str(ctx.target.ca_file))
        tls.check_hostname = True
        tls.verify_mode = ssl.CERT_REQUIRED
        # RFC 6125 §6.4.4: a client that finds a DNS-ID (subjectAltName) MUST NOT look at the
        # CN; XMPP certificates carry the domain as a DNS-ID (RFC 7590 §3.2, RFC 6120 §13.7.1.2).
        # OpenSSL would fall back to the CN when there is no SAN: a certificate without a DNS-ID
        # then verifies, and auth.tls.certificate-matches-domain could not fail on it.
        tls.hostname_checks_common_name = False
    else:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    if ctx.keylog_file is not None:
        Path(ctx.keylog_file).parent.mkdir(parents=True, exist_ok=True)
        tls.keylog_filename = str(ctx.keylog_file)
    legacy = False
    for version in (tls_min, tls_max):
        if version is not None and not getattr(ssl, _HAS_VERSION[version]):
            raise HarnessError(f"this Python/OpenSSL build cannot speak TLS {version}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated: we test them
        if tls_min is not None:
            tls.minimum_version = TLS_VERSIONS[tls_min]
            legacy |= tls_min in ("1.0", "1.1")
        if tls_max is not None:
            tls.maximum_version = TLS_VERSIONS[tls_max]
            legacy |= tls_max in ("1.0", "1.1")
    if legacy:
        tls.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 at higher levels
    if client_cert:
        if ctx.client_cert is None:
            raise HarnessError(f"client_cert requested, but the run issued no certificate for {ctx.name}")
        cert, key = ctx.client_cert
        tls.load_cert_chain(str(cert), str(key))
    if alpn:
        tls.set_alpn_protocols(alpn)
    return tls


def is_local_problem(exc: BaseException) -> bool:
    """True when a handshake failed because of our own TLS library's limits (not the server)."""
    return isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None) in LOCAL_TLS_PROBLEMS


def describe_handshake_error(exc: BaseException) -> tuple[str, bool]:
    """(one-line reason, whether it is a certificate verification failure) of a failed handshake."""
    if isinstance(exc, TimeoutError):
        return "timed out", False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message or exc}", True
    if isinstance(exc, ssl.SSLError):
        return f"{type(exc).__name__}: {exc}", False
    if str(exc):
        return f"{type(exc).__name__}: {exc}", False
    return f"{type(exc).__name__} (connection closed)", False


def session_info(
    ssl_obj: ssl.SSLObject | None, ctx: ActorContext, client_cert: bool
) -> tuple[dict[str, Any], bytes | None]:
    """What an established TLS session is (the ``tls_info`` of an actor) and the peer's DER
    certificate."""
    cipher = ssl_obj.cipher() if ssl_obj is not None else None
    info: dict[str, Any] = {
        "version": ssl_obj.version() if ssl_obj else None,
        "cipher": cipher[0] if cipher else None,
        "bits": cipher[2] if cipher else None,
        "alpn": ssl_obj.selected_alpn_protocol() if ssl_obj else None,
        "verified": ctx.target.ca_file is not None,
        "client_cert": client_cert,
        "server_hostname": ctx.target.domain,
    }
    der = ssl_obj.getpeercert(binary_form=True) if ssl_obj else None
    info.update(describe_certificate(der))
    return info, der


def describe_session(info: dict[str, Any]) -> str:
    """The stream log line of an established TLS session (``info`` from :func:`session_info`)."""
    return (
        f"TLS established: {info['version']} {info['cipher']}"
        + (f", ALPN {info['alpn']}" if info["alpn"] else "")
        + f", peer cert subject {info['peer_subject']}, SAN {', '.join(info['peer_san']) or 'none'}"
        + ("" if info["verified"] else " (not verified: no CA for this target)")
    )


def tls_server_end_point(cert_der: bytes) -> bytes:
    """RFC 5929 tls-server-end-point: hash of the server certificate with its signature hash
    (SHA-256 where that is MD5 or SHA-1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(cert_der)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise Unsupported("tls-server-end-point is undefined for the server's certificate signature type")
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return digest.finalize()


def describe_certificate(cert_der: bytes | None) -> dict[str, Any]:
    if not cert_der:
        return {"peer_subject": None, "peer_san": []}
    from cryptography import x509

    cert = x509.load_der_x509_certificate(cert_der)
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        ext = None
    if ext is not None:
        for name in ext:
            if isinstance(name, x509.DNSName):
                sans.append(f"DNS:{name.value}")
            elif isinstance(name, x509.OtherName):
                label = {"1.3.6.1.5.5.7.8.5": "XmppAddr", "1.3.6.1.5.5.7.8.7": "SRVName"}.get(
                    name.type_id.dotted_string, name.type_id.dotted_string
                )
                sans.append(f"othername:{label}")
            elif isinstance(name, x509.IPAddress):
                sans.append(f"IP:{name.value}")
            else:
                sans.append(f"{type(name).__name__}:{name.value}")
    return {
        "peer_subject": cert.subject.rfc4514_string(),
        "peer_issuer": cert.issuer.rfc4514_string(),
        "peer_san": sans,
        "peer_not_after": (
            cert.not_valid_after_utc if hasattr(cert, "not_valid_after_utc") else cert.not_valid_after
        ).isoformat(),
        "peer_cert_sha256": hashlib.sha256(cert_der).hexdigest(),
    }
