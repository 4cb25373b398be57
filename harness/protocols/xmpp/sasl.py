"""SASL for the raw XMPP actor: SCRAM (RFC 5802, RFC 7677) with channel binding, SASLprep,
the PLAIN and EXTERNAL initial responses, and the base64 framing of RFC 6120 6.4.

Channel binding: ``tls-server-end-point`` (RFC 5929) and ``tls-unique`` can be computed;
``tls-exporter`` (RFC 9266) needs a keying material exporter, which Python's ssl module does not
offer. Which type is used follows what the server advertises (XEP-0440).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import ssl
import xml.etree.ElementTree as ET

from harness.protocols.xmpp.elements import NS_SASL_CB
from harness.protocols.xmpp.tls import tls_server_end_point
from harness.verdict import Failed, HarnessError, Unsupported

# Channel binding types this actor can compute, in order of preference.
CB_COMPUTABLE = ("tls-server-end-point", "tls-unique")


class ScramError(Exception):
    """The server's SCRAM messages are malformed or do not verify."""


def saslprep(text: str) -> str:
    try:
        from slixmpp.util.sasl.client import saslprep as _saslprep
    except ImportError:  # pragma: no cover - slixmpp is a dependency
        return text
    return str(_saslprep(text))


def _saslname(value: str) -> str:
    return value.replace("=", "=3D").replace(",", "=2C")


class Scram:
    """Client side of one SCRAM exchange. ``mechanism`` like ``SCRAM-SHA-256`` or
    ``SCRAM-SHA-1-PLUS``; for -PLUS give ``cb_type`` and ``cb_data``."""

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        authzid: str | None = None,
        cb_type: str | None = None,
        cb_data: bytes | None = None,
        gs2_flag: str | None = None,
        cnonce: str | None = None,
    ) -> None:
        self.mechanism = mechanism
        self.plus = mechanism.endswith("-PLUS")
        base = mechanism[: -len("-PLUS")] if self.plus else mechanism
        self.hash_name = base[len("SCRAM-") :].lower().replace("-", "")
        try:
            hashlib.new(self.hash_name)
        except ValueError:
            raise Unsupported(f"this actor has no hash function for {mechanism}") from None
        self.password = saslprep(password).encode("utf-8")
        self.cnonce = cnonce or base64.b64encode(_secrets.token_bytes(18)).decode("ascii")
        if self.plus:
            if not cb_type or cb_data is None:
                raise HarnessError(f"{mechanism} needs channel binding data")
            flag = f"p={cb_type}"
        else:
            flag = gs2_flag or "n"
        self.gs2_header = f"{flag},{'a=' + _saslname(authzid) if authzid else ''},".encode()
        self.cb_data = cb_data if self.plus else b""
        self.client_first_bare = f"n={_saslname(saslprep(username))},r={self.cnonce}".encode()
        self._auth_message: bytes | None = None
        self._salted: bytes | None = None
        self.server_verified = False

    @property
    def started(self) -> bool:
        """True once the server-first message was answered (the next is server-final)."""
        return self._auth_message is not None

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash_name).digest()

    def client_first(self) -> bytes:
        return self.gs2_header + self.client_first_bare

    def client_final(self, server_first: bytes) -> bytes:
        attrs = _scram_attrs(server_first)
        if "m" in attrs:
            raise ScramError("server-first message has the reserved m= attribute")
        for key in ("r", "s", "i"):
            if key not in attrs:
                raise ScramError(f"server-first message lacks {key}=: {server_first!r}")
        nonce = attrs["r"]
        if not nonce.startswith(self.cnonce) or len(nonce) <= len(self.cnonce):
            raise ScramError("server nonce does not extend the client nonce")
        try:
            salt = base64.b64decode(attrs["s"], validate=True)
            iterations = int(attrs["i"])
        except (binascii.Error, ValueError):
            raise ScramError(f"bad salt or iteration count in server-first: {server_first!r}") from None
        if not 1 <= iterations <= 10_000_000:
            raise ScramError(f"unreasonable iteration count {iterations}")
        self._salted = hashlib.pbkdf2_hmac(self.hash_name, self.password, salt, iterations)
        channel = base64.b64encode(self.gs2_header + self.cb_data).decode("ascii")
        without_proof = f"c={channel},r={nonce}".encode()
        self._auth_message = self.client_first_bare + b"," + server_first + b"," + without_proof
        client_key = self._hmac(self._salted, b"Client Key")
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        signature = self._hmac(stored_key, self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return without_proof + b",p=" + base64.b64encode(proof)

    def verify_server_final(self, server_final: bytes) -> None:
        if self._salted is None or self._auth_message is None:
            raise ScramError("server-final message before server-first")
        attrs = _scram_attrs(server_final)
        if "e" in attrs:
            raise ScramError(f"server-final reports error {attrs['e']}")
        if "v" not in attrs:
            raise ScramError(f"server-final message lacks v=: {server_final!r}")
        server_key = self._hmac(self._salted, b"Server Key")
        expected = base64.b64encode(self._hmac(server_key, self._auth_message)).decode("ascii")
        if not hmac.compare_digest(expected, attrs["v"]):
            raise ScramError("server signature does not verify (the server does not know the password)")
        self.server_verified = True


def _scram_attrs(message: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("SCRAM message is not UTF-8") from None
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramError(f"malformed SCRAM message: {text!r}")
        out.setdefault(key, value)
    return out


# ---------------------------------------------------------------------------------------------
# Channel binding
# ---------------------------------------------------------------------------------------------


def channel_binding(
    mechanism: str,
    requested: str | None,
    ssl_obj: ssl.SSLObject | None,
    peer_der: bytes | None,
    features: ET.Element | None,
) -> tuple[str, bytes]:
    """(type, data) of the channel binding for a -PLUS ``mechanism``: ``requested`` when given,
    else the first computable type the server advertises (XEP-0440), else ``tls-unique``.
    Raises :class:`Unsupported` when no usable type can be computed."""
    if ssl_obj is None:
        raise Unsupported(f"{mechanism} needs a TLS connection for channel binding")
    version = ssl_obj.version()
    advertised = [
        (el.get("type") or "")
        for el in (features.iter(f"{{{NS_SASL_CB}}}channel-binding") if features is not None else [])
    ]
    if requested is not None:
        candidates = [requested]
    elif advertised:
        candidates = [t for t in CB_COMPUTABLE if t in advertised]
        if not candidates:
            raise Unsupported(
                f"{mechanism}: the server offers channel binding {', '.join(advertised)} (XEP-0440); "
                "this actor computes only tls-server-end-point and tls-unique"
            )
    elif version == "TLSv1.3":
        raise Unsupported(
            f"{mechanism} over TLS 1.3 defaults to tls-exporter, which Python's ssl cannot compute, "
            "and the server advertises no other channel binding type (XEP-0440)"
        )
    else:
        candidates = ["tls-unique"]
    cb_type = candidates[0]
    if cb_type == "tls-exporter":
        raise Unsupported("tls-exporter channel binding: Python's ssl module has no keying material exporter")
    if cb_type == "tls-server-end-point":
        if not peer_der:
            raise Unsupported("tls-server-end-point: the server presented no certificate")
        return cb_type, tls_server_end_point(peer_der)
    if cb_type == "tls-unique":
        if version == "TLSv1.3" and requested is None:
            raise Unsupported("tls-unique is undefined for TLS 1.3 (RFC 9266)")
        data = ssl_obj.get_channel_binding("tls-unique")
        if data is None:
            raise Unsupported(f"tls-unique channel binding is not available over {version}")
        return cb_type, data
    raise HarnessError(f"unknown channel binding type {cb_type!r}")


def tampered(cb_data: bytes) -> bytes:
    """Channel binding data of the same type and length but wrong: every byte XORed with 0xff
    (for checking that the server validates c=, RFC 5802 §6)."""
    return bytes(b ^ 0xFF for b in cb_data)


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------


def plain_message(user: str, password: str, authzid: str | None = None) -> bytes:
    """RFC 4616 PLAIN: ``authzid NUL authcid NUL passwd``."""
    return f"{authzid or ''}\0{user}\0{password}".encode()


def external_message(authzid: str | None = None) -> bytes:
    """RFC 4422 EXTERNAL: the authorization identity, or nothing (derive it from the certificate)."""
    return authzid.encode() if authzid else b""


def b64(data: bytes) -> str:
    """A SASL payload as element text: base64, ``=`` for an empty one (RFC 6120 6.4.2)."""
    return base64.b64encode(data).decode("ascii") if data else "="


def b64decode(text: str | None) -> bytes:
    """The payload of a server's SASL element; :class:`Failed` when it is not base64."""
    compact = "".join((text or "").split())
    if compact in ("", "="):
        return b""
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise Failed(f"server sent a SASL payload that is not base64: {compact[:40]!r}") from None
