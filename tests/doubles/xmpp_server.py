"""A configurable XMPP server test double (never a target in the matrix).

Correct by default
    Close enough to RFC 6120 that every authentication scenario passes against it: stream
    headers (with an id) and features per stream; STARTTLS offered and required (``<required/>``,
    nothing else advertised before TLS, SASL refused with ``<encryption-required/>`` on the
    unencrypted stream); TLS 1.2 or later only; a stream restart after TLS whose features do
    not offer STARTTLS; direct TLS (XEP-0368, ALPN ``xmpp-client``) on a second port; SASL
    PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 and SCRAM-SHA-1-PLUS (``tls-server-end-point`` and
    ``tls-unique``, advertised with XEP-0440), and EXTERNAL with a client certificate chained to
    the test CA whose id-on-xmppAddr names a registered account (XEP-0178); the failure
    conditions of RFC 6120 §6.5 (``not-authorized`` alike for a wrong password and an unknown
    user, ``invalid-mechanism``, ``incorrect-encoding``, ``malformed-request``, ``aborted``,
    ``invalid-authzid``, ``encryption-required``); a retry limit (after ``max_auth_failures``
    failures on one stream, the ``<policy-violation/>`` stream error); SASLprep of passwords
    (:mod:`tests.doubles.saslprep`, not the harness's); resource binding with a
    server-generated resource and one of RFC 6120 §7.7.2.2's conflict policies; the
    ``<not-authorized/>`` stream error for stanzas before authentication (XEP-0077 registration
    requests excepted: answered per ``registration``); XEP-0199 ping; XEP-0030 disco#info
    without a node of the domain (identity server/im) and of an account's bare JID (identity
    account/registered; a request without 'to' asks for the user's own), with what the services
    add (below); routing of messages and iqs between bound sessions.

    RFC 6121, as far as the federation and authorization scenarios touch it (both roles of a
    pair are one double, see ``tests/proofs``): roster get (the resource becomes "interested")
    and roster set (add, update, remove; a result and a push to every interested resource of
    the user, §2.3-§2.5); roster requests addressed to another user's bare JID refused with
    <forbidden/> (§2.1.5, §2.3.3); initial and later broadcast presence (to the user's own
    available resources and subscribers; initial presence is answered with the current presence
    of the user's contacts and pending requests); directed presence (to its target only, §4.6);
    subscribe/subscribed/unsubscribe/unsubscribed stamped with the bare JID, delivered to the
    contact's available (subscribe) or the user's interested (the others) resources, with roster
    pushes, the contact's current presence after an approval (§3.1.5) and its unavailable
    presence after a cancellation or an unsubscribe (§3.2, §3.3); stanzas from a client stamped
    with its full JID, whatever 'from' it put (RFC 6120 §8.1.2.1; or, with
    ``invalid_from="stream-error"``, a foreign 'from' ends the stream with <invalid-from/>,
    §4.9.3.9); IQ requests to a full JID only when the recipient shares presence with the sender,
    results and errors always (§8.5.3.1); service-unavailable for users that do not exist
    (§8.5.1); and, as the double knows no other domain and has no server-to-server side, an
    immediate <remote-server-not-found/> for stanzas to any other domain (RFC 6120 §10.4.3). Not
    modelled: roster versioning, pre-approval, unavailable presence when a connection ends,
    offline storage.

    Services: features beyond the core live in modules of their own (``tests/doubles/xmpp_*.py``,
    e.g. :mod:`tests.doubles.xmpp_muc`), each a :class:`DoubleService` registered with
    :func:`service` and with its flaws added to :data:`FLAWS`. A service sees every stanza of a
    bound session before the core does (and may handle it), adds identities and features to the
    disco#info the core answers, may refuse the delivery of any stanza to a session (a block
    list), and hears when a session ends. The services run in the order of their
    :attr:`~DoubleService.order`, lowest first (blocking goes first: a block must stop a stanza
    before any other service answers it).

Flaws
    ``DoubleConfig(flaws={...})`` takes names from :data:`FLAWS`; each breaks one rule, and the
    proofs (``tests/proofs``) show which scenario catches it.

Knobs for the actor unit tests (``tests/unit/test_xmpp_*.py``) are fields of
:class:`DoubleConfig` too (mechanisms, channel binding types, TLS minimum, no ping or bind
answers). The server records the clients' addresses (``peers``) and what they sent
(``received``), and writes what it did to ``config.log_file`` when one is given.

Two PKIs: :func:`make_pki` (quick EC certificates of its own, for the unit tests) and
:func:`pki_from_ca` (the harness's :class:`~harness.environment.pki.CertificateAuthority`, as a
run would issue them, plus a certificate for a wrong name).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy as copy_module
import datetime as dt
import functools
import hashlib
import hmac
import os
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.doubles.saslprep import SaslprepError, saslprep

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_REGISTER = "jabber:iq:register"
NS_ROSTER = "jabber:iq:roster"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
ID_ON_XMPPADDR = "1.3.6.1.5.5.7.8.5"

ALL_MECHANISMS = ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "EXTERNAL")

# name -> the rule it breaks. tests/proofs/test_can_fail.py maps scenarios onto these.
FLAWS: dict[str, str] = {
    # -- TLS and streams ------------------------------------------------------------------------
    "no-starttls": "STARTTLS is not offered on the client port (TLS switched off), RFC 6120 §5.2",
    "tls-optional": "STARTTLS is offered without <required/> and SASL (not PLAIN) works on the "
    "unencrypted stream, RFC 7525 §3.2 strict TLS",
    "plain-before-tls": "like tls-optional, and PLAIN is also offered and accepted on the "
    "unencrypted stream, RFC 6120 §13.8.3",
    "no-restart-after-tls": "after the TLS handshake the server ignores the client's new stream "
    "header (no new header, no features), RFC 6120 §5.4.3.3",
    "starttls-offered-after-tls": "the features of the TLS-protected stream offer STARTTLS again, "
    "RFC 6120 §5.4.3.3",
    "no-stream-id-after-tls": "the response stream header after TLS carries no id, RFC 6120 §4.7.3",
    "wrong-cert-name": "every port presents a certificate for another name (same CA), RFC 6125",
    "accept-tls1.0": "TLS 1.0 (and 1.1) handshakes complete, RFC 8996",
    "accept-tls1.1": "TLS 1.1 handshakes complete (1.0 is still refused), RFC 8996",
    "direct-tls-wrong-cert": "the direct-TLS port presents a certificate for another name, XEP-0368 §3",
    "direct-tls-plaintext": "the direct-TLS port speaks XMPP without TLS, XEP-0368 §3",
    "starttls-inside-direct-tls": "the stream on the direct-TLS port offers STARTTLS (a plain "
    "listener behind a TLS proxy), XEP-0368 §3",
    # -- SASL -----------------------------------------------------------------------------------
    "accept-any-password": "PLAIN and SCRAM accept any password of an existing account, RFC 6120 §6.5.10",
    "reveal-unknown-user": "an unknown user gets <account-disabled/>, a wrong password "
    "<not-authorized/>, RFC 6120 §6.5.10",
    "plain-rejects-right-password": "PLAIN is offered but every attempt gets <not-authorized/> "
    "(a backend that cannot verify it), RFC 6120 §13.8.3 / RFC 4616",
    "no-scram-sha-1": "SCRAM-SHA-1 is not offered, RFC 6120 §13.8.1",
    "no-scram-sha-1-plus": "SCRAM-SHA-1-PLUS is not offered, RFC 6120 §13.8.1",
    "scram-bad-server-signature": "the server signature (v=) of SCRAM is computed with the client "
    "key, so it does not verify, RFC 5802 §3",
    "scram-sha-256-wrong-keys": "SCRAM-SHA-256 keys are derived with SHA-1 PBKDF2 (only SHA-1 "
    "keys stored), so right passwords fail, RFC 7677 §3",
    "scram-plus-wrong-channel-binding": "the channel binding data the server expects is computed "
    "wrongly (tls-server-end-point with SHA-1), so correct -PLUS exchanges fail, RFC 5929 §4.1",
    "plus-ignores-binding": "SCRAM -PLUS does not check the channel binding data (c=), RFC 5802 §6",
    "no-saslprep": "SCRAM keys and PLAIN comparisons use the password as provisioned, without "
    "SASLprep, RFC 5802 §2.2 / RFC 4013",
    "wrong-condition-invalid-mechanism": "an unknown mechanism gets <not-authorized/>, RFC 6120 §6.5.7",
    "wrong-condition-incorrect-encoding": "a payload that is not base64 gets <malformed-request/>, "
    "RFC 6120 §6.5.5",
    "wrong-condition-malformed-request": "a PLAIN message without NUL separators gets "
    "<not-authorized/>, RFC 6120 §6.5.8",
    "wrong-condition-abort": "<abort/> gets <not-authorized/> instead of <aborted/>, RFC 6120 §6.4.4",
    "ignore-abort": "<abort/> gets no answer at all, RFC 6120 §6.4.4",
    "silent-auth-before-tls": "an <auth/> on the unencrypted stream gets no answer at all (no "
    "<failure/>, no stream error), RFC 6120 §6.4.5",
    "accept-any-authzid": "an authorization identity is granted without a check (Alice logs in as "
    "Bob), RFC 6120 §6.3.8",
    "unlimited-retries": "failed SASL attempts are never limited, RFC 6120 §6.4.5 / §13.9.4",
    "retry-limit-without-stream-error": "past the retry limit the TCP connection is dropped "
    "without a stream error, RFC 6120 §6.4.5",
    "idle-timeout-instead-of-retry-limit": "no retry limit: the stream ends later with the stream "
    "error of an idle timer (<connection-timeout/>), as if that were one, RFC 6120 §6.4.5",
    "external-no-cert-request": "EXTERNAL is offered but no client certificate is requested in the "
    "TLS handshake, so every EXTERNAL attempt fails, XEP-0178 §2",
    "external-without-cert": "EXTERNAL with an authzid succeeds without any client certificate, XEP-0178",
    # -- binding and stanzas --------------------------------------------------------------------
    "no-server-resource": "an empty <bind/> gets <bad-request/>: no server-generated resource, RFC 6120 §7.6",
    "duplicate-resources": "two sessions may hold the same full JID, RFC 6120 §7.7.2.2",
    "conflict-drop-first-silently": "a resource conflict drops the first session's TCP connection "
    "without the <conflict/> stream error, RFC 6120 §7.7.2.2",
    "process-stanza-before-auth": "a message on an unauthenticated stream is routed before the "
    "<not-authorized/> stream error, RFC 6120 §4.9.3.12",
    "ignore-stanza-before-auth": "a stanza on an unauthenticated stream is silently dropped, "
    "RFC 6120 §4.9.3.12",
    "register-not-allowed": "a registration request before authentication gets <not-allowed/>, XEP-0077 §3.1",
    "register-silent": "a registration request before authentication gets no answer, XEP-0077 §3.1",
    # -- routing, presence and subscriptions (RFC 6121) -----------------------------------------
    "drop-routed-messages": "a message to another user is accepted but never delivered, RFC 6121 §8.5.3.1",
    "iq-to-full-jid-refused": "an IQ get/set to a full JID gets <service-unavailable/> although the "
    "recipient shares presence with the sender, RFC 6121 §8.5.3.1",
    "iq-to-full-jid-unchecked": "an IQ get/set to a full JID is delivered although the recipient "
    "shares no presence with the sender (<service-unavailable/> is due), RFC 6121 §8.5.3.1",
    "iq-result-not-delivered": "an IQ result or error to a full JID is dropped, RFC 6121 §8.5.3.1",
    "unknown-user-item-not-found": "an IQ to a user that does not exist gets <item-not-found/> "
    "instead of <service-unavailable/>, RFC 6121 §8.5.1",
    "no-bounce-unknown-domain": "a stanza to a domain the server does not know is dropped "
    "silently, without <remote-server-not-found/>, RFC 6120 §10.4.3",
    "subscription-from-full-jid": "outbound subscription stanzas are stamped with the sender's "
    "full JID, not the bare JID, RFC 6121 §3.1.2 / §3.1.5",
    "no-presence-after-approval": "after a subscription approval the contact's server does not "
    "send the contact's current presence to the user, RFC 6121 §3.1.5",
    # -- authorization: presence, rosters, addresses (RFC 6121, RFC 6120 §8.1.2.1) ---------------
    "presence-broadcast-to-all": "broadcast presence goes to every available user of the server, "
    "not only to the subscribers ('from' or 'both'), RFC 6121 §4.4.2 / §11",
    "presence-before-approval": "a subscription request is approved by the server itself at "
    "once (subscribed and the contact's presence go to the requester), RFC 6121 §3.1.3",
    "unsubscribe-ignored": "an unsubscribe from a client is dropped: no roster change, no push, "
    "the subscription stays, RFC 6121 §3.3",
    "unsubscribe-keeps-presence": "an unsubscribe updates and pushes the contact's roster, but "
    "the former subscriber still gets the contact's presence broadcasts, RFC 6121 §3.3.3 / §4.4.2",
    "directed-presence-broadcast": "directed presence also goes to the sender's subscribers, "
    "RFC 6121 §4.6.3 / §11",
    "directed-presence-sticky": "the target of directed available presence gets the sender's "
    "later presence broadcasts too, RFC 6121 §4.6.3 rule 2",
    "roster-push-to-all": "roster pushes go to every interested resource of every user, "
    "RFC 6121 §2.3.2 / §2.1.6",
    "roster-of-other-user": "a roster get addressed to another user's bare JID returns that "
    "user's roster, RFC 6121 §2.1.5 / §8.5.2.1.3",
    "roster-set-by-other-user": "a roster set addressed to another user's bare JID is applied to "
    "that user's roster (a result and a push), RFC 6121 §2.1.5 / §2.3.3",
    "no-from-stamping": "messages from a client are routed with the 'from' it gave (none when it "
    "gave none), RFC 6120 §8.1.2.1",
    "trust-client-from": "a 'from' a client puts on a message is kept (a message without one is "
    "stamped), so a user can send as anyone, RFC 6120 §8.1.2.1",
}


class DoubleService:
    """A feature of the double in a module of its own (see the module documentation)."""

    # where the service runs among the others (stanzas, disco#info, delivery, ended sessions):
    # lower sees stanzas first; equal orders keep the order of registration
    order: ClassVar[int] = 0

    def __init__(self, server: XmppDouble) -> None:
        self.server = server
        self.cfg = server.config

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        """A stanza a bound session sent; True when this service handled it."""
        return False

    def allows(self, el: ET.Element, to: _Connection) -> bool:
        """Whether ``el`` (``from`` already stamped) may be delivered to the session ``to``."""
        return True

    def disco_info(self, to: str, requester: _Connection) -> tuple[list[str], list[str]]:
        """What this service adds to the disco#info (XEP-0030, no node) the core answers for
        ``to``, the server's domain or an existing account's bare JID, asked by ``requester``:
        identities (XML snippets) and feature vars."""
        return [], []

    async def on_unbind(self, conn: _Connection) -> None:
        """The session's connection ended."""

    def admin(self, op: str, params: dict[str, str]) -> bool:
        """An admin operation (``docs/targets.md``); True when this service carries it out.
        Runs on the double's event loop; a ValueError is a failed operation."""
        return False


SERVICES: list[type[DoubleService]] = []


def service(cls: type[DoubleService]) -> type[DoubleService]:
    """Class decorator: every double runs this service (ordered by :attr:`DoubleService.order`)."""
    SERVICES.append(cls)
    return cls


# conflict policies of RFC 6120 §7.7.2.2
CONFLICT_POLICIES = ("override", "rename", "refuse")


# ---------------------------------------------------------------------------------------------
# PKI
# ---------------------------------------------------------------------------------------------


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


def _cert_der(cert_file: Path) -> bytes:
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


def _xmpp_addrs(cert_der: bytes) -> list[str]:
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


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class DoubleConfig:
    domain: str = "double.test"
    accounts: dict[str, str] = field(default_factory=lambda: {"alice": "s3cret-Pa55"})
    flaws: frozenset[str] | set[str] | tuple[str, ...] = frozenset()
    offer_starttls: bool = True
    mechanisms: tuple[str, ...] = ALL_MECHANISMS
    channel_bindings: tuple[str, ...] = ("tls-server-end-point",)
    tls_min: ssl.TLSVersion | None = None  # never below TLS 1.2 unless a flaw says so
    direct_tls: bool = False  # a second, direct-TLS port (c2s_tls)
    answer_ping: bool = True
    answer_bind: bool = True
    scram_iterations: int = 4096
    max_auth_failures: int = 3  # failures per stream; the next failure ends the stream
    conflict_policy: str = "override"  # RFC 6120 §7.7.2.2: override | rename | refuse
    registration: str = "closed"  # XEP-0077 before auth: closed (service-unavailable) | open (form)
    # RFC 6120 §8.1.2.1 / §4.9.3.9: a stanza whose 'from' is not the sender's JID gets it
    # overridden ("override") or ends the stream with <invalid-from/> ("stream-error")
    invalid_from: str = "override"
    log_file: Path | None = None

    def __post_init__(self) -> None:
        self.flaws = frozenset(self.flaws)
        unknown = sorted(self.flaws - FLAWS.keys())
        if unknown:
            raise ValueError(f"unknown flaw(s) {', '.join(unknown)}; known: {', '.join(sorted(FLAWS))}")
        if self.conflict_policy not in CONFLICT_POLICIES:
            raise ValueError(f"conflict_policy must be one of {CONFLICT_POLICIES}")
        if self.registration not in ("closed", "open"):
            raise ValueError("registration must be closed or open")
        if self.invalid_from not in ("override", "stream-error"):
            raise ValueError("invalid_from must be override or stream-error")

    def has(self, flaw: str) -> bool:
        assert flaw in FLAWS, flaw
        return flaw in self.flaws

    # -- derived settings ----------------------------------------------------------------------

    @property
    def starttls_offered(self) -> bool:
        return self.offer_starttls and not self.has("no-starttls")

    @property
    def tls_required(self) -> bool:
        """SASL only after TLS (only meaningful when STARTTLS is offered)."""
        return self.starttls_offered and not (self.has("tls-optional") or self.has("plain-before-tls"))

    def offered(self, tls: bool) -> list[str]:
        """The mechanisms offered on a stream with or without TLS (before authentication)."""
        mechs = list(self.mechanisms)
        if self.has("no-scram-sha-1"):
            mechs = [m for m in mechs if m != "SCRAM-SHA-1"]
        if self.has("no-scram-sha-1-plus"):
            mechs = [m for m in mechs if m != "SCRAM-SHA-1-PLUS"]
        if tls:
            return mechs
        if self.tls_required:
            return []
        plain_ok = self.has("plain-before-tls")
        return [
            m for m in mechs if not m.endswith("-PLUS") and m != "EXTERNAL" and (m != "PLAIN" or plain_ok)
        ]


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class XmppDouble:
    """``async with XmppDouble(pki, DoubleConfig(...)) as server:`` listens on ``host``;
    ``server.ports`` has ``c2s`` (and ``c2s_tls`` with ``direct_tls``). For a double on its own
    thread (the engine runs items in ``asyncio.run``), see :class:`DoubleThread`."""

    def __init__(self, pki: Pki, config: DoubleConfig | None = None, host: str = "127.0.0.1") -> None:
        self.pki = pki
        self.config = config or DoubleConfig()
        self.host = host
        self.ports: dict[str, int] = {}
        self.received: list[bytes] = []  # everything the clients sent (decrypted)
        self.peers: list[tuple[str, int]] = []  # (address, port) of every client connection
        self.sessions: dict[str, list[_Connection]] = {}  # full JID -> bound sessions
        self.rosters: dict[str, dict[str, RosterItem]] = {}  # user's bare JID -> contact's -> item
        # (user, contact): still gets the user's broadcasts after unsubscribing (a flaw)
        self.stale_subscribers: set[tuple[str, str]] = set()
        self.services = [cls(self) for cls in sorted(SERVICES, key=lambda cls: cls.order)]
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = 0
        self._secret = os.urandom(16)  # for the fake salts of unknown SCRAM users
        self._salts: dict[str, bytes] = {}
        self._log_lock = threading.Lock()

    # -- accounts and log -------------------------------------------------------------------------

    def add_account(self, user: str, password: str) -> None:
        """Provision (or reset) an account; safe from another thread."""
        self.config.accounts[user] = password

    def salt(self, user: str) -> bytes:
        if user not in self.config.accounts:  # a stable fake: unknown users look like known ones
            return hmac.new(self._secret, user.encode(), "sha256").digest()[:16]
        return self._salts.setdefault(user, os.urandom(16))

    def log(self, text: str) -> None:
        path = self.config.log_file
        if path is None:
            return
        line = f"{time.strftime('%H:%M:%S')} {text}\n"
        with self._log_lock, path.open("a", encoding="utf-8") as out:
            out.write(line)

    # -- TLS ----------------------------------------------------------------------------------------

    def ssl_context(self, alpn: bool = False, wrong_name: bool = False) -> ssl.SSLContext:
        cfg = self.config
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if wrong_name or cfg.has("wrong-cert-name"):
            if self.pki.wrong_cert_file is None or self.pki.wrong_key_file is None:
                raise ValueError("this PKI has no wrong-name certificate")
            ctx.load_cert_chain(str(self.pki.wrong_cert_file), str(self.pki.wrong_key_file))
        else:
            ctx.load_cert_chain(str(self.pki.cert_file), str(self.pki.key_file))
        ctx.load_verify_locations(cafile=str(self.pki.ca_file))
        # client certificates for EXTERNAL, verified against the CA during the handshake
        ctx.verify_mode = ssl.CERT_NONE if cfg.has("external-no-cert-request") else ssl.CERT_OPTIONAL
        minimum = max(cfg.tls_min or ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
        legacy = None
        if cfg.has("accept-tls1.0"):
            legacy = ssl.TLSVersion.TLSv1
        elif cfg.has("accept-tls1.1"):
            legacy = ssl.TLSVersion.TLSv1_1
        if legacy is not None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = legacy
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 otherwise
        else:
            ctx.minimum_version = minimum
        if alpn:
            ctx.set_alpn_protocols(["xmpp-client"])
        return ctx

    def cert_der(self, wrong_name: bool = False) -> bytes:
        if wrong_name or self.config.has("wrong-cert-name"):
            assert self.pki.wrong_cert_file is not None
            return _cert_der(self.pki.wrong_cert_file)
        return self.pki.cert_der

    # -- lifetime ---------------------------------------------------------------------------------

    async def admin(self, op: str, params: dict[str, str]) -> bool:
        """Carry out an admin operation with the first service that knows it (False: none does).
        A coroutine, so that the test-only driver can run it on the double's loop."""
        return any(svc.admin(op, params) for svc in self.services)

    async def __aenter__(self) -> Self:
        self.loop = asyncio.get_running_loop()
        cfg = self.config
        server = await asyncio.start_server(functools.partial(self._handle, direct=False), self.host, 0)
        self._servers.append(server)
        self.ports["c2s"] = server.sockets[0].getsockname()[1]
        if cfg.direct_tls:
            plaintext = cfg.has("direct-tls-plaintext")
            tls_ctx = (
                None
                if plaintext
                else self.ssl_context(alpn=True, wrong_name=cfg.has("direct-tls-wrong-cert"))
            )
            tls_server = await asyncio.start_server(
                functools.partial(self._handle, direct=not plaintext), self.host, 0, ssl=tls_ctx
            )
            self._servers.append(tls_server)
            self.ports["c2s_tls"] = tls_server.sockets[0].getsockname()[1]
        self.log(f"listening on {self.host} {self.ports}; flaws: {', '.join(sorted(cfg.flaws)) or 'none'}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direct: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        if peer:
            self.peers.append((peer[0], peer[1]))
        self._counter += 1
        conn = _Connection(self, reader, writer, tls=direct, number=self._counter)
        self.log(f"#{conn.number} connected from {peer and peer[0]}{' (direct TLS)' if direct else ''}")
        try:
            await conn.run()
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError) as exc:
            self.log(f"#{conn.number} connection error: {type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of the double: visible in its log, not swallowed silently
            self.log(f"#{conn.number} DOUBLE BUG: {type(exc).__name__}: {exc}")
            raise
        finally:
            for svc in self.services:
                await svc.on_unbind(conn)
            conn.unbind()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
            self.log(f"#{conn.number} closed")

    # -- routing ----------------------------------------------------------------------------------

    def sessions_for(self, jid: str) -> list[_Connection]:
        """The bound sessions a stanza to ``jid`` goes to: the full JID's, or every resource of a
        bare JID."""
        if "/" in jid:
            return list(self.sessions.get(jid, []))
        return [c for full, conns in self.sessions.items() if full.split("/", 1)[0] == jid for c in conns]

    async def route(self, el: ET.Element, sender: str | None) -> bool:
        """Deliver a stanza to the bound sessions it is addressed to; False if there are none
        (messages to nobody are silently dropped, RFC 6121 §8.5.2)."""
        targets = self.sessions_for(el.get("to", ""))
        if sender is not None:
            el.set("from", sender)
        return await self.deliver(el, targets)

    async def deliver(self, el: ET.Element, targets: list[_Connection]) -> bool:
        refused = [c for c in targets if not all(svc.allows(el, c) for svc in self.services)]
        for conn in refused:
            self.log(f"<{_local(el.tag)}> from {el.get('from')} to {conn.jid}: refused by a service")
        targets = [c for c in targets if c not in refused]
        text = _client_xml(el)
        for conn in targets:
            await conn.send(text)
        if targets:
            self.log(f"routed <{_local(el.tag)}> to {el.get('to')} ({len(targets)} session(s))")
        return bool(targets)

    # -- users, presence and rosters (RFC 6121) ---------------------------------------------------

    def serves(self, jid: str) -> bool:
        """The double serves one domain and knows no other (it has no server-to-server side)."""
        return domain_of(jid) == self.config.domain

    def exists(self, jid: str) -> bool:
        local, at, _ = bare_jid(jid).partition("@")
        return bool(at) and self.serves(jid) and local in self.config.accounts

    def available(self, bare: str) -> list[_Connection]:
        """The available resources of a user: bound and sent available presence (RFC 6121 §4.2)."""
        return [c for c in self.sessions_for(bare) if c.presence is not None]

    def interested(self, bare: str) -> list[_Connection]:
        """The interested resources of a user: requested the roster (RFC 6121 §2.1.6)."""
        return [c for c in self.sessions_for(bare) if c.interested]

    def roster_item(self, user: str, contact: str) -> RosterItem:
        return self.rosters.setdefault(user, {}).setdefault(contact, RosterItem())

    def shares_presence(self, recipient: _Connection, sender: str) -> bool:
        """RFC 6121 §8.5.3.1: the recipient shares presence with ``sender`` (a full JID) by a
        subscription (``from`` or ``both``) or by directed presence; a user's own resources do."""
        assert recipient.jid is not None
        bare = bare_jid(sender)
        if bare_jid(recipient.jid) == bare:
            return True
        item = self.rosters.get(bare_jid(recipient.jid), {}).get(bare)
        return (item is not None and item.from_) or bool({sender, bare} & recipient.directed)

    async def deliver_presence(self, el: ET.Element, to: str) -> None:
        """Presence (not a subscription stanza) to ``to``: the session of a full JID, every
        available resource of a bare JID (RFC 6121 §8.5.2.1.1, §8.5.3.1)."""
        copy = copy_module.deepcopy(el)
        copy.set("to", to)
        await self.deliver(copy, list(self.sessions.get(to, [])) if "/" in to else self.available(to))

    async def roster_push(self, user: str, contact: str, item_xml: str | None = None) -> None:
        """RFC 6121 §2.1.6: the changed item (``item_xml``, by default the item as it is now) to
        every interested resource of ``user``."""
        item = item_xml if item_xml is not None else self.roster_item(user, contact).xml(contact)
        targets = self.interested(user)
        if self.config.has("roster-push-to-all"):
            self.log(f"flaw roster-push-to-all: {user}'s push to every interested resource")
            targets = [c for conns in self.sessions.values() for c in conns if c.interested]
        for conn in targets:
            await conn.send(
                f"<iq type='set' id='push-{os.urandom(4).hex()}' to={quoteattr(conn.jid or user)}>"
                f"<query xmlns='{NS_ROSTER}'>{item}</query></iq>"
            )

    async def approve(self, contact: str, user: str, el: ET.Element | None = None) -> None:
        """RFC 6121 §3.1.5: ``contact`` approves ``user``'s pending request (``el``: the
        'subscribed' stanza, else one made by the server): roster push, the approval to the
        user, then the contact's current presence."""
        item = self.roster_item(contact, user)
        item.pending_in, item.from_ = None, True
        await self.roster_push(contact, user)
        if el is None:
            el = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": "subscribed", "from": contact})
        await self.inbound_subscribed(el, contact, user)
        if self.config.has("no-presence-after-approval"):
            self.log("flaw no-presence-after-approval: no current presence sent")
            return
        for conn in self.available(contact):  # the approving contact's current presence
            assert conn.presence is not None
            await self.deliver_presence(conn.presence, user)

    async def unavailable_to(self, contact: str, user: str) -> None:
        """Presence of type unavailable from each available resource of ``contact`` to ``user``
        (RFC 6121 §3.2.2, §3.3.3)."""
        for conn in self.available(contact):
            assert conn.jid is not None
            gone = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": "unavailable", "from": conn.jid})
            await self.deliver_presence(gone, user)

    async def inbound_unsubscribe(self, el: ET.Element, user: str, contact: str) -> None:
        """RFC 6121 §3.3.3, the contact's server: ``user`` unsubscribes from ``contact``."""
        item = self.rosters.get(contact, {}).get(user)
        if item is None:
            return
        if not item.from_:  # no subscription: only a pending request is forgotten
            item.pending_in = None
            return
        copy = copy_module.deepcopy(el)
        await self.deliver(copy, self.interested(contact))
        item.from_ = False
        await self.roster_push(contact, user)
        if self.config.has("unsubscribe-keeps-presence"):
            self.log(f"flaw unsubscribe-keeps-presence: {user} still gets {contact}'s presence")
            self.stale_subscribers.add((contact, user))
        await self.unavailable_to(contact, user)

    async def inbound_unsubscribed(self, el: ET.Element, contact: str, user: str) -> None:
        """RFC 6121 §3.2.3, the user's server: ``contact`` cancelled or denied ``user``'s
        subscription (or request)."""
        item = self.rosters.get(user, {}).get(contact)
        if item is None or not (item.to or item.ask):
            self.log(f"unsubscribed from {contact} to {user} without a subscription: ignored")
            return
        copy = copy_module.deepcopy(el)
        copy.set("to", user)
        await self.deliver(copy, self.interested(user))
        item.to, item.ask = False, False
        await self.roster_push(user, contact)

    async def inbound_subscribe(self, el: ET.Element, user: str, contact: str) -> None:
        """RFC 6121 §3.1.3, the contact's server: a subscription request from ``user``."""
        if not self.exists(contact):  # no such contact: the request is declined (§8.5.1)
            self.roster_item(user, contact).ask = False
            await self.roster_push(user, contact)
            reply = ET.Element(
                f"{{{NS_CLIENT}}}presence", {"type": "unsubscribed", "from": contact, "to": user}
            )
            await self.deliver(reply, self.interested(user))
            return
        item = self.roster_item(contact, user)
        if item.from_:  # approved before: the contact's server answers at once
            approval = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": "subscribed", "from": contact})
            await self.inbound_subscribed(approval, contact, user)
            return
        item.pending_in = copy_module.deepcopy(el)  # delivered again at each initial presence
        await self.deliver(item.pending_in, self.available(contact))
        if self.config.has("presence-before-approval"):
            self.log(f"flaw presence-before-approval: {contact} approves {user} by itself")
            await self.approve(contact, user)

    async def inbound_subscribed(self, el: ET.Element, contact: str, user: str) -> None:
        """RFC 6121 §3.1.6, the user's server: ``contact`` approved ``user``'s request."""
        item = self.roster_item(user, contact)
        if not item.ask:
            self.log(f"subscribed from {contact} to {user} without a request: ignored")
            return
        item.ask, item.to = False, True
        await self.roster_push(user, contact)
        copy = copy_module.deepcopy(el)
        copy.set("to", user)
        await self.deliver(copy, self.interested(user))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def bare_jid(jid: str) -> str:
    return jid.split("/", 1)[0]


def domain_of(jid: str) -> str:
    return bare_jid(jid).rpartition("@")[2]


SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")


@dataclass
class RosterItem:
    """A contact in a user's roster: the subscription states of RFC 6121 §3 and Appendix A."""

    to: bool = False  # the user receives the contact's presence
    from_: bool = False  # the contact receives the user's presence
    ask: bool = False  # the user asked to subscribe, no answer yet ("Pending Out")
    pending_in: ET.Element | None = None  # the contact's request, not answered yet ("Pending In")
    added: bool = False  # put in the roster by a roster set (RFC 6121 §2.3)
    name: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def subscription(self) -> str:
        return {(False, False): "none", (True, False): "to", (False, True): "from"}.get(
            (self.to, self.from_), "both"
        )

    @property
    def listed(self) -> bool:
        """In the roster result: added by a roster set, a subscription, or a pending request of
        the user's own (a request from the contact alone is not an item, RFC 6121 §3.1.3)."""
        return self.added or self.to or self.from_ or self.ask

    def xml(self, contact: str) -> str:
        ask = " ask='subscribe'" if self.ask else ""
        name = f" name={quoteattr(self.name)}" if self.name is not None else ""
        groups = "".join(f"<group>{escape(g)}</group>" for g in self.groups)
        return f"<item jid={quoteattr(contact)} subscription='{self.subscription}'{ask}{name}>{groups}</item>"


def _client_xml(el: ET.Element) -> str:
    """Serialize a stanza for the stream: jabber:client elements without prefix or xmlns."""
    copy = copy_module.deepcopy(el)
    for node in copy.iter():
        if node.tag.startswith(f"{{{NS_CLIENT}}}"):
            node.tag = node.tag[len(NS_CLIENT) + 2 :]
    # ElementTree names foreign namespaces ns0, ns1...: legal XML, which is all a client needs
    return ET.tostring(copy, encoding="unicode")


class _Restart(Exception):
    """Start a new parser (after STARTTLS or SASL success)."""


class _Close(Exception):
    """End the connection (what had to be sent was sent)."""


@dataclass
class _Scram:
    mechanism: str
    hash_name: str
    plus: bool
    gs2_header: bytes
    authzid: str | None
    user: str
    client_first_bare: str
    server_first: str
    nonce: str
    salt: bytes
    cb_type: str | None


def _saslname(value: str) -> str | None:
    """RFC 5802 saslname decoding: ``=2C`` -> ``,``, ``=3D`` -> ``=``; None when malformed."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "=":
            code = value[i : i + 3]
            if code == "=2C":
                out.append(",")
            elif code == "=3D":
                out.append("=")
            else:
                return None
            i += 3
        elif value[i] == ",":
            return None
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


class _Connection:
    def __init__(
        self,
        server: XmppDouble,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: bool,
        number: int,
    ) -> None:
        self.server = server
        self.cfg = server.config
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.direct = tls
        self.number = number
        self.user: str | None = None
        self.jid: str | None = None
        self.scram: _Scram | None = None
        self.failures = 0
        self.closed = False
        self.presence: ET.Element | None = None  # the current available presence (RFC 6121 §4.2)
        self.interested = False  # requested the roster (RFC 6121 §2.1.6)
        self.directed: set[str] = set()  # JIDs this resource sent directed available presence to
        self.sticky: set[str] = set()  # directed presence targets kept in broadcasts (a flaw)

    @property
    def bare(self) -> str:
        assert self.jid is not None
        return bare_jid(self.jid)

    # -- io --------------------------------------------------------------------------------------

    def log(self, text: str) -> None:
        self.server.log(f"#{self.number} {text}")

    async def send(self, text: str) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(text.encode())
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def run(self) -> None:
        while True:
            parser = ET.XMLPullParser(events=("start", "end"))
            depth = 0
            root = None
            try:
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        return
                    self.server.received.append(data)
                    try:
                        parser.feed(data)
                        events = list(parser.read_events())
                    except ET.ParseError as exc:
                        self.log(f"not well-formed: {exc}")
                        await self.stream_error("not-well-formed")
                        return
                    for event, el in events:
                        if event == "start":
                            depth += 1
                            if depth == 1:
                                root = el
                                await self.on_header(el)
                        else:
                            depth -= 1
                            if depth == 1:
                                assert root is not None
                                root.remove(el)
                                await self.on_element(el)
                            elif depth == 0:
                                self.log("client closed its stream")
                                await self.send("</stream:stream>")
                                return
            except _Restart:
                continue
            except _Close:
                return

    async def stream_error(self, condition: str, text: str | None = None) -> None:
        extra = f"<text xmlns='{NS_STREAMS}'>{escape(text)}</text>" if text else ""
        self.log(f"stream error {condition}")
        await self.send(
            f"<stream:error><{condition} xmlns='{NS_STREAMS}'/>{extra}</stream:error></stream:stream>"
        )
        self.closed = True

    def drop(self) -> None:
        """Close the TCP connection at once, without a word."""
        self.log("dropping the TCP connection")
        self.closed = True
        self.writer.transport.abort()

    # -- stream ----------------------------------------------------------------------------------

    async def on_header(self, el: ET.Element) -> None:
        cfg = self.cfg
        after_tls = self.tls and not self.direct and self.user is None
        if after_tls and cfg.has("no-restart-after-tls"):
            self.log("flaw no-restart-after-tls: ignoring the new stream header")
            return
        stream_id = "" if after_tls and cfg.has("no-stream-id-after-tls") else f" id='{os.urandom(8).hex()}'"
        await self.send(
            f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'"
            f"{stream_id} from='{cfg.domain}' version='1.0' xml:lang='en'>"
        )
        if el.tag != f"{{{NS_STREAM}}}stream":
            await self.stream_error("invalid-namespace")
            raise _Close
        if el.get("to") not in (None, cfg.domain):
            await self.stream_error("host-unknown")
            raise _Close
        features = ["<stream:features>"]
        if self.user is not None:
            features.append(f"<bind xmlns='{NS_BIND}'/>")
        else:
            offer_starttls = (not self.tls and cfg.starttls_offered) or (
                self.tls
                and (
                    (self.direct and cfg.has("starttls-inside-direct-tls"))
                    or (not self.direct and cfg.has("starttls-offered-after-tls"))
                )
            )
            if offer_starttls:
                required = "<required/>" if cfg.tls_required else ""
                features.append(f"<starttls xmlns='{NS_TLS}'>{required}</starttls>")
            mechs = cfg.offered(self.tls)
            if mechs:
                features.append(
                    f"<mechanisms xmlns='{NS_SASL}'>"
                    + "".join(f"<mechanism>{m}</mechanism>" for m in mechs)
                    + "</mechanisms>"
                )
            if self.tls and cfg.channel_bindings and any(m.endswith("-PLUS") for m in mechs):
                features.append(
                    f"<sasl-channel-binding xmlns='{NS_SASL_CB}'>"
                    + "".join(f"<channel-binding type='{t}'/>" for t in cfg.channel_bindings)
                    + "</sasl-channel-binding>"
                )
        features.append("</stream:features>")
        await self.send("".join(features))

    async def on_element(self, el: ET.Element) -> None:
        tag = el.tag
        if tag == f"{{{NS_TLS}}}starttls":
            await self.on_starttls()
        elif tag == f"{{{NS_SASL}}}auth":
            await self.on_auth(el)
        elif tag == f"{{{NS_SASL}}}response":
            await self.on_response(el)
        elif tag == f"{{{NS_SASL}}}abort":
            await self.on_abort()
        elif tag in (f"{{{NS_CLIENT}}}iq", f"{{{NS_CLIENT}}}message", f"{{{NS_CLIENT}}}presence"):
            if self.jid is None:
                await self.on_stanza_before_bind(el)
            else:
                await self.on_stanza(el)
        else:
            await self.stream_error("unsupported-stanza-type")
            raise _Close

    async def on_starttls(self) -> None:
        if self.tls or not self.cfg.starttls_offered or self.user is not None:
            await self.send(f"<failure xmlns='{NS_TLS}'/></stream:stream>")
            raise _Close
        await self.send(f"<proceed xmlns='{NS_TLS}'/>")
        await self.writer.start_tls(self.server.ssl_context())
        self.tls = True
        ssl_obj = self.writer.get_extra_info("ssl_object")
        self.log(f"TLS established: {ssl_obj.version() if ssl_obj else '?'}")
        raise _Restart

    # -- SASL ------------------------------------------------------------------------------------

    async def sasl_failure(self, condition: str, text: str | None = None) -> None:
        cfg = self.cfg
        wrong = {
            "invalid-mechanism": ("wrong-condition-invalid-mechanism", "not-authorized"),
            "incorrect-encoding": ("wrong-condition-incorrect-encoding", "malformed-request"),
            "malformed-request": ("wrong-condition-malformed-request", "not-authorized"),
            "aborted": ("wrong-condition-abort", "not-authorized"),
        }.get(condition)
        if wrong is not None and cfg.has(wrong[0]):
            self.log(f"flaw {wrong[0]}: {condition} -> {wrong[1]}")
            condition = wrong[1]
        self.scram = None
        extra = f"<text xml:lang='en'>{escape(text)}</text>" if text else ""
        self.log(f"SASL failure {condition}")
        await self.send(f"<failure xmlns='{NS_SASL}'><{condition}/>{extra}</failure>")
        if condition == "aborted":
            return
        self.failures += 1
        if self.failures >= cfg.max_auth_failures and not cfg.has("unlimited-retries"):
            if cfg.has("retry-limit-without-stream-error"):
                self.drop()
            elif cfg.has("idle-timeout-instead-of-retry-limit"):
                await self.stream_error("connection-timeout", "idle connection")
            else:
                await self.stream_error("policy-violation", "too many failed authentication attempts")
            raise _Close

    async def sasl_success(self, user: str, additional: bytes = b"") -> None:
        payload = base64.b64encode(additional).decode() if additional else ""
        self.user = user
        self.scram = None
        self.log(f"SASL success as {user}")
        await self.send(
            f"<success xmlns='{NS_SASL}'>{payload}</success>" if payload else f"<success xmlns='{NS_SASL}'/>"
        )
        raise _Restart

    @staticmethod
    def _decode(text: str | None) -> bytes | None:
        body = "".join((text or "").split())
        if body in ("", "="):
            return b""
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _password_matches(self, user: str, given: str) -> bool:
        stored = self.cfg.accounts.get(user)
        if stored is None:
            return False
        if self.cfg.has("no-saslprep"):
            return hmac.compare_digest(stored.encode(), given.encode())
        try:
            return hmac.compare_digest(saslprep(stored).encode(), saslprep(given).encode())
        except SaslprepError:
            return False

    def _authorize(self, authcid: str, authzid: str | None) -> str | None:
        """The user the session becomes, or None when ``authzid`` may not be assumed."""
        if not authzid or authzid in (authcid, f"{authcid}@{self.cfg.domain}"):
            return authcid
        if self.cfg.has("accept-any-authzid"):
            user = authzid.split("/", 1)[0].split("@", 1)[0]
            self.log(f"flaw accept-any-authzid: {authcid} acts as {authzid}")
            return user
        return None

    async def on_auth(self, el: ET.Element) -> None:
        cfg = self.cfg
        self.scram = None  # a new <auth/> replaces an unfinished exchange
        mechanism = el.get("mechanism", "")
        if self.user is not None:
            await self.stream_error("policy-violation", "already authenticated")
            raise _Close
        offered = cfg.offered(self.tls)
        if not self.tls and cfg.has("silent-auth-before-tls"):
            return
        if not self.tls and cfg.tls_required and mechanism in cfg.mechanisms:
            await self.sasl_failure("encryption-required")
            return
        if mechanism not in offered:
            await self.sasl_failure("invalid-mechanism")
            return
        data = self._decode(el.text)
        if data is None:
            await self.sasl_failure("incorrect-encoding")
            return
        if mechanism == "PLAIN":
            await self.plain(data)
        elif mechanism == "EXTERNAL":
            await self.external(data)
        else:
            await self.scram_first(mechanism, data)

    async def on_abort(self) -> None:
        if self.cfg.has("ignore-abort"):
            self.log("flaw ignore-abort: no answer")
            return
        await self.sasl_failure("aborted")

    async def plain(self, data: bytes) -> None:
        cfg = self.cfg
        parts = data.split(b"\0")
        try:
            authzid, authcid, password = (
                [p.decode("utf-8") for p in parts] if len(parts) == 3 else ["", "", ""]
            )
        except UnicodeDecodeError:
            authzid = authcid = password = ""
        if not authcid or not password:  # RFC 4616 §2: authcid and passwd are not empty
            await self.sasl_failure("malformed-request")
            return
        if cfg.has("plain-rejects-right-password"):
            await self.sasl_failure("not-authorized")
            return
        known = authcid in cfg.accounts
        if not known:
            if cfg.has("reveal-unknown-user"):
                await self.sasl_failure("account-disabled", "no such account")
            else:
                await self.sasl_failure("not-authorized")
            return
        if not (self._password_matches(authcid, password) or cfg.has("accept-any-password")):
            await self.sasl_failure("not-authorized")
            return
        user = self._authorize(authcid, authzid)
        if user is None:
            await self.sasl_failure("invalid-authzid")
            return
        await self.sasl_success(user)

    async def external(self, data: bytes) -> None:
        cfg = self.cfg
        try:
            authzid = data.decode("utf-8")
        except UnicodeDecodeError:
            await self.sasl_failure("malformed-request")
            return
        ssl_obj = self.writer.get_extra_info("ssl_object")
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        if not der:
            if cfg.has("external-without-cert") and authzid:
                user, _, domain = authzid.partition("@")
                if domain == cfg.domain and user in cfg.accounts:
                    self.log("flaw external-without-cert: trusting the authzid")
                    await self.sasl_success(user)
            await self.sasl_failure("not-authorized", "no client certificate")
            return
        jids = _xmpp_addrs(der)  # the chain was verified against the CA in the handshake
        if authzid:
            if authzid not in jids:
                await self.sasl_failure("invalid-authzid")
                return
            jid = authzid
        elif len(jids) == 1:
            jid = jids[0]
        else:
            await self.sasl_failure("not-authorized", "the certificate names no single XMPP address")
            return
        user, _, domain = jid.partition("@")
        if domain != cfg.domain or user not in cfg.accounts:
            await self.sasl_failure("not-authorized")
            return
        await self.sasl_success(user)

    def _cb_data(self, cb_type: str) -> bytes | None:
        flawed = self.cfg.has("scram-plus-wrong-channel-binding")
        if cb_type == "tls-server-end-point":
            presented = self.server.cert_der(wrong_name=self.direct and self.cfg.has("direct-tls-wrong-cert"))
            return tls_server_end_point(presented, flawed=flawed)
        ssl_obj = self.writer.get_extra_info("ssl_object")
        if cb_type == "tls-unique" and ssl_obj is not None and ssl_obj.version() != "TLSv1.3":
            data = ssl_obj.get_channel_binding("tls-unique")
            return data[::-1] if flawed and data else data
        return None

    async def scram_first(self, mechanism: str, data: bytes) -> None:
        cfg = self.cfg
        try:
            text = data.decode("utf-8")
            flag, authz, bare = text.split(",", 2)
        except (UnicodeDecodeError, ValueError):
            await self.sasl_failure("malformed-request")
            return
        plus = mechanism.endswith("-PLUS")
        cb_type = flag[2:] if flag.startswith("p=") else None
        if (flag not in ("n", "y") and cb_type is None) or plus != (cb_type is not None):
            await self.sasl_failure("malformed-request")
            return
        if authz and not authz.startswith("a="):
            await self.sasl_failure("malformed-request")
            return
        authzid = _saslname(authz[2:]) if authz else None
        attrs = bare.split(",")
        if (
            len(attrs) < 2
            or not attrs[0].startswith("n=")
            or not attrs[1].startswith("r=")
            or (authz and authzid is None)
        ):
            await self.sasl_failure("malformed-request")
            return
        if any(a.startswith("m=") for a in attrs[2:]):
            await self.sasl_failure("malformed-request", "extensions not supported")
            return
        user = _saslname(attrs[0][2:])
        cnonce = attrs[1][2:]
        if not user or not cnonce:
            await self.sasl_failure("malformed-request")
            return
        if cb_type is not None and (cb_type not in cfg.channel_bindings or self._cb_data(cb_type) is None):
            await self.sasl_failure("not-authorized", f"channel binding type {cb_type} not supported")
            return
        if flag == "y" and self.tls and any(m.endswith("-PLUS") for m in cfg.offered(True)):
            await self.sasl_failure("not-authorized", "channel binding downgrade")  # RFC 5802 §6
            return
        if user not in cfg.accounts and cfg.has("reveal-unknown-user"):
            await self.sasl_failure("account-disabled", "no such account")
            return
        nonce = cnonce + base64.b64encode(os.urandom(18)).decode()
        salt = self.server.salt(user)
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={cfg.scram_iterations}"
        hash_name = mechanism.removesuffix("-PLUS")[len("SCRAM-") :].lower().replace("-", "")
        self.scram = _Scram(
            mechanism,
            hash_name,
            plus,
            f"{flag},{authz},".encode(),
            authzid,
            user,
            bare,
            server_first,
            nonce,
            salt,
            cb_type,
        )
        await self.send(
            f"<challenge xmlns='{NS_SASL}'>{base64.b64encode(server_first.encode()).decode()}</challenge>"
        )

    def _salted(self, state: _Scram, password: str) -> bytes:
        cfg = self.cfg
        if cfg.has("no-saslprep"):
            prepared = password
        else:
            try:
                prepared = saslprep(password, stored=True)
            except SaslprepError:
                prepared = password
        hash_name = state.hash_name
        if hash_name == "sha256" and cfg.has("scram-sha-256-wrong-keys"):
            hash_name = "sha1"  # only SCRAM-SHA-1 keys were stored
        return hashlib.pbkdf2_hmac(hash_name, prepared.encode(), state.salt, cfg.scram_iterations)

    async def on_response(self, el: ET.Element) -> None:
        cfg = self.cfg
        state = self.scram
        data = self._decode(el.text)
        if state is None:
            await self.sasl_failure("malformed-request", "no exchange in progress")
            return
        if data is None:
            await self.sasl_failure("incorrect-encoding")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            await self.sasl_failure("malformed-request")
            return
        without_proof, sep, proof_part = text.rpartition(",p=")
        attrs = dict(p.split("=", 1) for p in without_proof.split(",") if "=" in p)
        if not sep or "c" not in attrs or "r" not in attrs:
            await self.sasl_failure("malformed-request")
            return
        if attrs["r"] != state.nonce:
            await self.sasl_failure("not-authorized", "nonce mismatch")
            return
        try:
            channel = base64.b64decode(attrs["c"], validate=True)
            proof = base64.b64decode(proof_part, validate=True)
        except (binascii.Error, ValueError):
            await self.sasl_failure("malformed-request")
            return
        cb = self._cb_data(state.cb_type) if state.cb_type else b""
        if not (state.plus and cfg.has("plus-ignores-binding")) and channel != state.gs2_header + (cb or b""):
            await self.sasl_failure("not-authorized", "channel binding mismatch")
            return
        password = cfg.accounts.get(state.user)
        if password is None:
            await self.sasl_failure("not-authorized")
            return
        h = state.hash_name
        salted = self._salted(state, password)
        client_key = hmac.new(salted, b"Client Key", h).digest()
        stored_key = hashlib.new(h, client_key).digest()
        auth_message = f"{state.client_first_bare},{state.server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, h).digest()
        right = len(proof) == len(signature) and hmac.compare_digest(
            hashlib.new(h, bytes(a ^ b for a, b in zip(proof, signature, strict=True))).digest(), stored_key
        )
        if not right and not cfg.has("accept-any-password"):
            await self.sasl_failure("not-authorized")
            return
        user = self._authorize(state.user, state.authzid)
        if user is None:
            await self.sasl_failure("invalid-authzid")
            return
        server_key = hmac.new(salted, b"Server Key", h).digest()
        if cfg.has("scram-bad-server-signature"):
            server_key = client_key
        verifier = base64.b64encode(hmac.new(server_key, auth_message, h).digest()).decode()
        await self.sasl_success(user, f"v={verifier}".encode())

    # -- stanzas ---------------------------------------------------------------------------------

    async def on_stanza_before_bind(self, el: ET.Element) -> None:
        cfg = self.cfg
        if el.tag == f"{{{NS_CLIENT}}}iq" and self.user is not None:
            await self.on_bind(el)
            return
        registration = el.find(f"{{{NS_REGISTER}}}query") is not None
        if el.tag == f"{{{NS_CLIENT}}}iq" and self.user is None and registration:
            await self.on_register(el)
            return
        if self.user is None and cfg.has("ignore-stanza-before-auth"):
            self.log(f"flaw ignore-stanza-before-auth: dropped <{_local(el.tag)}>")
            return
        is_message = el.tag == f"{{{NS_CLIENT}}}message"
        if self.user is None and cfg.has("process-stanza-before-auth") and is_message:
            self.log("flaw process-stanza-before-auth: routing the message first")
            await self.server.route(el, el.get("from"))
        await self.stream_error("not-authorized")
        raise _Close

    async def on_register(self, el: ET.Element) -> None:
        cfg = self.cfg
        iq_id = quoteattr(el.get("id", ""))
        if cfg.has("register-silent"):
            self.log("flaw register-silent: no answer")
            return
        if cfg.has("register-not-allowed"):
            await self.send(
                f"<iq type='error' id={iq_id} from='{cfg.domain}'><error type='cancel'>"
                f"<not-allowed xmlns='{NS_STANZAS}'/></error></iq>"
            )
            return
        if el.get("type") == "get" and cfg.registration == "open":
            await self.send(
                f"<iq type='result' id={iq_id} from='{cfg.domain}'><query xmlns='{NS_REGISTER}'>"
                "<instructions>Choose a username and password.</instructions><username/><password/>"
                "</query></iq>"
            )
            return
        await self.send(
            f"<iq type='error' id={iq_id} from='{cfg.domain}'><error type='cancel'>"
            f"<service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
        )

    async def on_bind(self, el: ET.Element) -> None:
        cfg = self.cfg
        iq_id = quoteattr(el.get("id", ""))
        bind = el.find(f"{{{NS_BIND}}}bind")
        if bind is None or el.get("type") != "set":
            await self.stream_error("not-authorized")
            raise _Close
        if not cfg.answer_bind:
            return
        resource_el = bind.find(f"{{{NS_BIND}}}resource")
        resource = (resource_el.text or "").strip() if resource_el is not None else ""
        if not resource and cfg.has("no-server-resource"):
            await self.send(
                f"<iq type='error' id={iq_id}><error type='modify'><bad-request xmlns='{NS_STANZAS}'/>"
                "</error></iq>"
            )
            return
        bare = f"{self.user}@{cfg.domain}"
        full = f"{bare}/{resource or os.urandom(6).hex()}"
        holders = self.server.sessions.get(full, [])
        if holders and not cfg.has("duplicate-resources"):
            if cfg.conflict_policy == "refuse":
                await self.send(
                    f"<iq type='error' id={iq_id}><error type='cancel'><conflict xmlns='{NS_STANZAS}'/>"
                    "</error></iq>"
                )
                return
            if cfg.conflict_policy == "rename":
                full = f"{full}-{os.urandom(3).hex()}"
            else:  # override: end the existing session
                for old in list(holders):
                    old.unbind()
                    if cfg.has("conflict-drop-first-silently"):
                        old.drop()
                    else:
                        await old.stream_error("conflict", "replaced by a new session")
                        old.writer.close()
        self.jid = full
        self.server.sessions.setdefault(full, []).append(self)
        self.log(f"bound {full}")
        await self.send(
            f"<iq type='result' id={iq_id}><bind xmlns='{NS_BIND}'><jid>{escape(full)}</jid></bind></iq>"
        )

    def unbind(self) -> None:
        if self.jid is None:
            return
        holders = self.server.sessions.get(self.jid, [])
        if self in holders:
            holders.remove(self)
        if not holders:
            self.server.sessions.pop(self.jid, None)
        self.jid = None

    async def on_stanza(self, el: ET.Element) -> None:
        kind = _local(el.tag)
        to = el.get("to", "")
        claimed = el.get("from")
        if (
            claimed is not None
            and claimed not in (self.jid, self.bare)
            and self.cfg.invalid_from == "stream-error"
        ):
            self.log(f"<{kind}> from {claimed}: not this session's JID")  # RFC 6120 §4.9.3.9
            await self.stream_error("invalid-from")
            raise _Close
        for svc in self.server.services:
            if await svc.on_stanza(self, el):
                return
        if to and not self.server.serves(to):
            await self.bounce_unknown_domain(el)
        elif kind == "iq":
            await self.on_iq(el)
        elif kind == "message":
            await self.on_message(el)
        else:
            await self.on_presence(el)

    async def iq_result(self, el: ET.Element, payload: str = "", sender: str | None = None) -> None:
        """Answer the IQ request ``el`` of this session with a result carrying ``payload``, from
        ``sender`` (default: the address the request went to, if any)."""
        attrs = {"type": "result", "id": el.get("id", ""), "to": self.jid or ""}
        origin = sender or el.get("to")
        if origin:
            attrs["from"] = origin
        head = " ".join(f"{name}={quoteattr(value)}" for name, value in attrs.items())
        await self.send(f"<iq {head}>{payload}</iq>")

    async def stanza_error(
        self, el: ET.Element, condition: str, error_type: str = "cancel", extra: str = ""
    ) -> None:
        """Return ``el`` to this session as an error from the address it was sent to, with the
        original payload (RFC 6120 §8.3.1); ``extra``: an application-specific condition."""
        kind = _local(el.tag)
        attrs = {"type": "error", "from": el.get("to") or self.cfg.domain, "to": self.jid or ""}
        if el.get("id") is not None:
            attrs["id"] = el.get("id", "")
        head = " ".join(f"{name}={quoteattr(value)}" for name, value in attrs.items())
        payload = "".join(_client_xml(child) for child in el)
        self.log(f"<{kind}> to {el.get('to')}: {condition}")
        await self.send(
            f"<{kind} {head}>{payload}<error type='{error_type}'><{condition} xmlns='{NS_STANZAS}'/>{extra}"
            f"</error></{kind}>"
        )

    async def bounce_unknown_domain(self, el: ET.Element) -> None:
        """RFC 6120 §10.4.3: the double knows no domain but its own, so a stanza to another one
        comes back at once with <remote-server-not-found/> (errors and IQ results excepted)."""
        kind, stanza_type = _local(el.tag), el.get("type")
        if stanza_type == "error" or (kind == "iq" and stanza_type == "result"):
            return
        if self.cfg.has("no-bounce-unknown-domain"):
            self.log(f"flaw no-bounce-unknown-domain: <{kind}> to {el.get('to')} dropped")
            return
        await self.stanza_error(el, "remote-server-not-found")

    async def on_message(self, el: ET.Element) -> None:
        to = el.get("to", "")
        if to and bare_jid(to) != self.bare and self.cfg.has("drop-routed-messages"):
            self.log(f"flaw drop-routed-messages: message to {to} dropped")
            return
        sender = self.jid  # RFC 6120 §8.1.2.1: added, or the client's 'from' overridden
        if self.cfg.has("no-from-stamping"):
            self.log(f"flaw no-from-stamping: 'from' left as {el.get('from')!r}")
            sender = None
        elif el.get("from") and self.cfg.has("trust-client-from"):
            self.log(f"flaw trust-client-from: 'from' {el.get('from')} kept")
            sender = el.get("from")
        await self.server.route(el, sender)

    # -- presence and subscriptions (RFC 6121 §3, §4) -------------------------------------------

    async def on_presence(self, el: ET.Element) -> None:
        to, presence_type = el.get("to"), el.get("type")
        if presence_type in SUBSCRIPTION_TYPES and to:
            await self.on_subscription(el, presence_type, bare_jid(to))
        elif presence_type in (None, "unavailable"):
            assert self.jid is not None
            el.set("from", self.jid)
            if to:
                await self.directed_presence(el, to)
            else:
                await self.broadcast_presence(el)
        # probes and errors from a client, subscription stanzas without 'to': nothing to do

    async def broadcast_presence(self, el: ET.Element) -> None:
        """RFC 6121 §4.2.2 / §4.4.2 / §4.5.2: to the user's own available resources (this one
        included) and the contacts subscribed to the user; unavailable presence also to those
        that got directed presence. Initial presence gets the current presence of the contacts
        the user is subscribed to (the probes, answered locally) and pending requests (§3.1.3)."""
        server, user = self.server, self.bare
        initial = self.presence is None and el.get("type") is None
        self.presence = el if el.get("type") is None else None
        roster = server.rosters.get(user, {})
        recipients = [user] + [contact for contact, item in roster.items() if item.from_]
        recipients += sorted({c for u, c in server.stale_subscribers if u == user} - set(recipients))
        if self.presence is not None:
            recipients += sorted(self.sticky - set(recipients))
        if self.cfg.has("presence-broadcast-to-all"):
            everyone = {bare_jid(c.jid) for conns in server.sessions.values() for c in conns if c.jid}
            self.log("flaw presence-broadcast-to-all: to every user online")
            recipients += sorted(everyone - set(recipients))
        if self.presence is None:
            recipients += sorted(self.directed - set(recipients))
            self.directed.clear()
            self.sticky.clear()
        for to in recipients:
            await server.deliver_presence(el, to)
        if not initial:
            return
        assert self.jid is not None
        for contact, item in roster.items():
            if item.to:
                for conn in server.available(contact):
                    assert conn.presence is not None
                    await server.deliver_presence(conn.presence, self.jid)
            if item.pending_in is not None:
                await self.send(_client_xml(item.pending_in))

    async def directed_presence(self, el: ET.Element, to: str) -> None:
        """RFC 6121 §4.6: delivered (to a full JID's session, or a bare JID's available
        resources) and remembered: the sender shares presence with ``to`` from now on."""
        if el.get("type") is None:
            self.directed.add(to)
            if self.cfg.has("directed-presence-sticky"):
                self.log(f"flaw directed-presence-sticky: {to} gets later broadcasts")
                self.sticky.add(to)
        else:
            self.directed.discard(to)
            self.sticky.discard(to)
        await self.server.deliver_presence(el, to)
        if self.cfg.has("directed-presence-broadcast"):
            self.log("flaw directed-presence-broadcast: to the subscribers too")
            roster = self.server.rosters.get(self.bare, {})
            for contact in sorted(c for c, item in roster.items() if item.from_ and c != bare_jid(to)):
                await self.server.deliver_presence(el, contact)

    async def on_subscription(self, el: ET.Element, presence_type: str, contact: str) -> None:
        """Outbound subscription stanzas (RFC 6121 §3.1.2, §3.1.5): stamped with the user's bare
        JID and addressed to the contact's bare JID; the contact's side is this double too."""
        server, user = self.server, self.bare
        if self.cfg.has("subscription-from-full-jid"):
            assert self.jid is not None
            el.set("from", self.jid)
        else:
            el.set("from", user)
        el.set("to", contact)
        if presence_type == "subscribe":
            item = server.roster_item(user, contact)
            if not item.to:
                item.ask = True
                await server.roster_push(user, contact)
            await server.inbound_subscribe(el, user, contact)
        elif presence_type == "subscribed":
            item = server.roster_item(user, contact)
            if item.pending_in is None:  # no request to approve (pre-approval is not supported)
                self.log(f"subscribed to {contact} without a pending request: ignored")
                return
            await server.approve(user, contact, el)
        elif presence_type == "unsubscribe":  # RFC 6121 §3.3.2
            if self.cfg.has("unsubscribe-ignored"):
                self.log(f"flaw unsubscribe-ignored: unsubscribe to {contact} dropped")
                return
            item = server.rosters.get(user, {}).get(contact)
            if item is not None and (item.to or item.ask):
                item.to, item.ask = False, False
                await server.roster_push(user, contact)
            await server.inbound_unsubscribe(el, user, contact)
        else:  # unsubscribed, RFC 6121 §3.2.2: cancel a subscription or deny a request
            item = server.rosters.get(user, {}).get(contact)
            if item is None or not (item.from_ or item.pending_in is not None):
                self.log(f"unsubscribed to {contact} without a subscription or request: ignored")
                return
            if item.from_:
                await server.unavailable_to(user, contact)
            item.from_, item.pending_in = False, None
            if item.listed:
                await server.roster_push(user, contact)
            await server.inbound_unsubscribed(el, user, contact)

    # -- iq --------------------------------------------------------------------------------------

    async def on_iq(self, el: ET.Element) -> None:
        cfg = self.cfg
        iq_id = quoteattr(el.get("id", ""))
        to = el.get("to", "")
        kind = el.get("type")
        if "@" in to and "/" in to:
            await self.iq_to_full_jid(el, to)
            return
        if kind not in ("get", "set"):
            return
        if el.find(f"{{{NS_BIND}}}bind") is not None:
            await self.send(
                f"<iq type='error' id={iq_id}><error type='cancel'><not-allowed xmlns='{NS_STANZAS}'/>"
                "</error></iq>"
            )
            return
        if el.find(f"{{{NS_PING}}}ping") is not None and to in ("", cfg.domain):
            if cfg.answer_ping:
                await self.iq_result(el, sender=cfg.domain)
            return
        disco = el.find(f"{{{NS_DISCO_INFO}}}query")
        target = to or self.bare
        if (
            disco is not None
            and kind == "get"
            and not disco.get("node")
            and (target == cfg.domain or self.server.exists(target))
        ):
            await self.disco_info(el, target)
            return
        if el.find(f"{{{NS_ROSTER}}}query") is not None and to in ("", self.bare):
            await (self.roster_get(el) if kind == "get" else self.roster_set(el, self.bare))
            return
        if el.find(f"{{{NS_ROSTER}}}query") is not None and "@" in to and self.server.exists(to):
            await self.roster_of_other_user(el, kind, bare_jid(to))
            return
        condition = "service-unavailable"  # RFC 6121 §8.5.1 for a user that does not exist
        if "@" in to and not self.server.exists(to) and cfg.has("unknown-user-item-not-found"):
            self.log("flaw unknown-user-item-not-found")
            condition = "item-not-found"
        reply_from = quoteattr(to or cfg.domain)
        await self.send(
            f"<iq type='error' id={iq_id} from={reply_from}><error type='cancel'>"
            f"<{condition} xmlns='{NS_STANZAS}'/></error></iq>"
        )

    async def disco_info(self, el: ET.Element, target: str) -> None:
        """XEP-0030 disco#info of the server's domain or an account's bare JID (``target``): the
        core's identity and features, then what every service adds (see
        :meth:`DoubleService.disco_info`)."""
        if target == self.cfg.domain:
            identities = ["<identity category='server' type='im' name='double'/>"]
            features = [NS_DISCO_INFO, NS_PING]
        else:
            identities, features = ["<identity category='account' type='registered'/>"], [NS_DISCO_INFO]
        for svc in self.server.services:
            added_identities, added_features = svc.disco_info(target, self)
            identities += added_identities
            features += added_features
        listed = "".join(f"<feature var={quoteattr(var)}/>" for var in dict.fromkeys(features))
        await self.iq_result(
            el, f"<query xmlns='{NS_DISCO_INFO}'>{''.join(identities)}{listed}</query>", sender=target
        )

    async def iq_to_full_jid(self, el: ET.Element, to: str) -> None:
        """RFC 6121 §8.5.3.1: a result or error is delivered; a request only when the recipient
        shares presence with the sender (else, or without such a session, service-unavailable)."""
        cfg, server = self.cfg, self.server
        assert self.jid is not None
        if el.get("type") in ("result", "error"):
            if cfg.has("iq-result-not-delivered"):
                self.log(f"flaw iq-result-not-delivered: iq {el.get('type')} to {to} dropped")
                return
            await server.route(el, self.jid)  # no such session: ignored
            return
        targets = server.sessions.get(to, [])
        shared = cfg.has("iq-to-full-jid-unchecked") or any(
            server.shares_presence(c, self.jid) for c in targets
        )
        if targets and cfg.has("iq-to-full-jid-refused"):
            self.log(f"flaw iq-to-full-jid-refused: iq to {to} refused")
        elif targets and shared:
            await server.route(el, self.jid)
            return
        await self.stanza_error(el, "service-unavailable")

    async def roster_get(self, el: ET.Element, owner: str | None = None) -> None:
        """RFC 6121 §2.1.3: the roster (of ``owner``, by default the session's own user, which
        is interested from now on, §2.1.6)."""
        if owner is None:
            self.interested = True
        roster = self.server.rosters.get(owner or self.bare, {})
        items = "".join(item.xml(contact) for contact, item in sorted(roster.items()) if item.listed)
        await self.iq_result(el, f"<query xmlns='{NS_ROSTER}'>{items}</query>", sender=owner)

    async def roster_set(self, el: ET.Element, owner: str) -> None:
        """RFC 6121 §2.1.5, §2.3-§2.5: one item, added or updated (its subscription attribute
        ignored) or removed (``subscription='remove'``; a subscription is cancelled both ways);
        a result, and a push to every interested resource of ``owner``."""
        server = self.server
        items = el.findall(f"{{{NS_ROSTER}}}query/{{{NS_ROSTER}}}item")
        if len(items) != 1 or not items[0].get("jid"):
            await self.stanza_error(el, "bad-request", "modify")
            return
        contact = bare_jid(items[0].get("jid", ""))
        roster = server.rosters.setdefault(owner, {})
        if items[0].get("subscription") == "remove":
            item = roster.get(contact)
            if item is None or not item.listed:
                await self.stanza_error(el, "item-not-found")
                return
            if item.to or item.ask:
                await server.inbound_unsubscribe(
                    self.subscription_stanza("unsubscribe", owner, contact), owner, contact
                )
            if item.from_:
                await server.unavailable_to(owner, contact)
                item.from_ = False
                await server.inbound_unsubscribed(
                    self.subscription_stanza("unsubscribed", owner, contact), owner, contact
                )
            del roster[contact]
            await self.iq_result(el)
            await server.roster_push(
                owner, contact, f"<item jid={quoteattr(contact)} subscription='remove'/>"
            )
            return
        item = server.roster_item(owner, contact)
        item.added, item.name = True, items[0].get("name")
        item.groups = tuple((g.text or "") for g in items[0].findall(f"{{{NS_ROSTER}}}group"))
        await self.iq_result(el)
        await server.roster_push(owner, contact)

    @staticmethod
    def subscription_stanza(presence_type: str, user: str, contact: str) -> ET.Element:
        return ET.Element(f"{{{NS_CLIENT}}}presence", {"type": presence_type, "from": user, "to": contact})

    async def roster_of_other_user(self, el: ET.Element, kind: str | None, owner: str) -> None:
        """A roster request addressed to another user's bare JID: only the account itself may
        read or change its roster, so <forbidden/> (RFC 6121 §2.1.5, §2.3.3)."""
        if kind == "get" and self.cfg.has("roster-of-other-user"):
            self.log(f"flaw roster-of-other-user: {owner}'s roster to {self.jid}")
            await self.roster_get(el, owner)
        elif kind == "set" and self.cfg.has("roster-set-by-other-user"):
            self.log(f"flaw roster-set-by-other-user: {self.jid} changes {owner}'s roster")
            await self.roster_set(el, owner)
        elif kind in ("get", "set"):
            await self.stanza_error(el, "forbidden", "auth")


# ---------------------------------------------------------------------------------------------
# Running a double on a thread of its own
# ---------------------------------------------------------------------------------------------


class DoubleThread:
    """An :class:`XmppDouble` on its own event loop thread, for code that runs its own loops
    (the engine's ``run_item`` calls ``asyncio.run``). ``start()`` returns once it listens."""

    def __init__(self, pki: Pki, config: DoubleConfig, host: str) -> None:
        self.server = XmppDouble(pki, config, host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=f"xmpp-double-{host}", daemon=True)
        self._started = False

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self, timeout: float = 10.0) -> XmppDouble:
        self._thread.start()
        self._started = True
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self._loop).result(timeout)
        return self.server

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the double's loop (thread-safe)."""
        self._loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 10.0) -> None:
        if not self._started:
            self._loop.close()
            return
        self._started = False
        try:
            stopping = asyncio.run_coroutine_threadsafe(self.server.__aexit__(None, None, None), self._loop)
            stopping.result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()


# The services of every double (imported last: they build on the definitions above).
from tests.doubles import (  # noqa: E402, F401
    xmpp_adhoc,
    xmpp_blocking,
    xmpp_muc,
    xmpp_personal,
    xmpp_pubsub,
)
