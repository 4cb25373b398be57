"""The raw XMPP stream actor (kind ``xmpp-raw``): bytes and XML straight over a socket.

It exists for the checks a polite client library would never do (malformed input, downgrade
attempts, unknown mechanisms, TLS versions, channel binding types) and for checks that need to
see every element the server sends, in order.

How it reads
    A background task reads the socket and feeds an :class:`xml.etree.ElementTree.XMLPullParser`
    piece by piece (split after every ``>``), so each complete depth-1 element is known together
    with the exact raw text that carried it (for the stream log). Everything the server sends is
    queued in arrival order: the stream header (as an empty ``{stream}stream`` element with the
    header's attributes), every depth-1 element (features, stanzas, SASL and TLS negotiation
    elements, stream errors), and events represented as elements of the matcher namespace:
    ``<m:closed what='stream'/>`` (server sent ``</stream:stream>``), ``<m:closed
    what='connection'/>`` (TCP closed) and ``<m:not-well-formed>`` (parse error).

    ``expect`` takes the first *unconsumed* queued element that matches. A stream restart (after
    STARTTLS and after SASL success) drops the unconsumed elements of the previous stream: RFC
    6120 discards the old stream, and a pattern must not match features of a stream that is
    gone. They stay in the stream log. The negotiation elements the actor itself used (``<proceed/>``,
    challenges, bind results) are consumed; SASL ``<success/>``/``<failure/>`` are left queued so
    that a following ``expect`` can match the exact condition.

Deadlines
    Every wait has a deadline (``within`` or the context's step timeout); nothing sleeps.
    ``expect`` past its deadline is a ``fail``; a target that does not answer the negotiation
    of ``connect``/``authenticate`` in time is an ``error`` (the check could not be carried out),
    as is a missing ``expect-nothing`` barrier reply.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets as _secrets
import ssl
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from harness.actors import Actor, ActorContext, register
from harness.protocols.xmpp.match import (
    CLOSED,
    NOT_WELL_FORMED,
    NS_CLIENT,
    NS_STREAM,
    PatternError,
    closed_event,
    compile_pattern,
    not_well_formed_event,
    short_tag,
    summarize,
)
from harness.protocols.xmpp.streamlog import StreamLog
from harness.verdict import Failed, HarnessError, TargetError, Unsupported

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_PING = "urn:xmpp:ping"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"  # XEP-0440

STREAM_TAG = f"{{{NS_STREAM}}}stream"
FEATURES_TAG = f"{{{NS_STREAM}}}features"
STREAM_ERROR_TAG = f"{{{NS_STREAM}}}error"
IQ_TAG = f"{{{NS_CLIENT}}}iq"

_TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_HAS_VERSION = {"1.0": "HAS_TLSv1", "1.1": "HAS_TLSv1_1", "1.2": "HAS_TLSv1_2", "1.3": "HAS_TLSv1_3"}
# OpenSSL reasons that mean "our side cannot" rather than "the server would not".
_LOCAL_TLS_PROBLEMS = {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "NO_SHARED_CIPHER_AVAILABLE_LOCALLY"}
_TLS_VERSION_SCHEMA = {"type": ["string", "number"], "enum": ["1.0", "1.1", "1.2", "1.3", 1.0, 1.1, 1.2, 1.3]}
_WITHIN_SCHEMA = {"type": "number", "exclusiveMinimum": 0}

# Channel binding types this actor can compute, in order of preference. tls-exporter (RFC 9266)
# needs a keying material exporter, which Python's ssl module does not offer.
_CB_COMPUTABLE = ("tls-server-end-point", "tls-unique")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _condition(el: ET.Element) -> str:
    """The defined condition of a SASL failure, stream error or stanza error (+ its text)."""
    container = el
    if el.tag == IQ_TAG or _local(el.tag) in ("message", "presence"):
        err = el.find(f"{{{NS_CLIENT}}}error")
        container = err if err is not None else el
    cond = None
    text = None
    for child in container:
        if _local(child.tag) == "text":
            text = (child.text or "").strip() or None
        elif cond is None:
            cond = _local(child.tag)
    out = cond or "no condition"
    return f"{out} ({text})" if text else out


# ---------------------------------------------------------------------------------------------
# Incremental parsing of the server's stream
# ---------------------------------------------------------------------------------------------


class StreamParser:
    """Splits the server's byte stream into (kind, element, raw text) items.

    kinds: ``header`` (depth-0 start tag), ``element`` (complete depth-1 element), ``close``
    (end of the depth-0 element) and ``error`` (not well-formed; later bytes are only logged,
    as kind ``junk``). Call :meth:`reset` at every stream restart.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: ET.Element | None = None
        self._raw = bytearray()
        self.broken: str | None = None

    def _take_raw(self) -> str:
        text = bytes(self._raw).decode("utf-8", errors="replace")
        self._raw.clear()
        return text

    def feed(self, data: bytes) -> list[tuple[str, ET.Element | None, str]]:
        items: list[tuple[str, ET.Element | None, str]] = []
        if self.broken is not None:
            return [("junk", None, data.decode("utf-8", errors="replace"))]
        pos = 0
        while pos < len(data):
            gt = data.find(b">", pos)
            end = len(data) if gt < 0 else gt + 1
            piece = data[pos:end]
            pos = end
            self._raw += piece
            try:
                self._parser.feed(piece)
                flush = getattr(self._parser, "flush", None)  # expat >= 2.6 defers small tokens
                if flush is not None:
                    flush()
                events = list(self._parser.read_events())
            except ET.ParseError as exc:
                self.broken = str(exc)
                self._raw += data[pos:]
                items.append(("error", not_well_formed_event(str(exc)), self._take_raw()))
                return items
            for event, el in events:
                if event == "start":
                    self._depth += 1
                    if self._depth == 1:
                        self._root = el
                        items.append(("header", ET.Element(el.tag, dict(el.attrib)), self._take_raw()))
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        items.append(("element", el, self._take_raw()))
                        if self._root is not None:
                            with contextlib.suppress(ValueError):
                                self._root.remove(el)
                    elif self._depth == 0:
                        items.append(("close", closed_event("stream"), self._take_raw()))
        return items


# ---------------------------------------------------------------------------------------------
# SCRAM (RFC 5802, RFC 7677) with channel binding
# ---------------------------------------------------------------------------------------------


class ScramError(Exception):
    """The server's SCRAM messages are malformed or do not verify."""


def _saslprep(text: str) -> str:
    try:
        from slixmpp.util.sasl.client import saslprep
    except ImportError:  # pragma: no cover - slixmpp is a dependency
        return text
    return str(saslprep(text))


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
        self.password = _saslprep(password).encode("utf-8")
        self.cnonce = cnonce or base64.b64encode(_secrets.token_bytes(18)).decode("ascii")
        if self.plus:
            if not cb_type or cb_data is None:
                raise HarnessError(f"{mechanism} needs channel binding data")
            flag = f"p={cb_type}"
        else:
            flag = gs2_flag or "n"
        self.gs2_header = f"{flag},{'a=' + _saslname(authzid) if authzid else ''},".encode()
        self.cb_data = cb_data if self.plus else b""
        self.client_first_bare = f"n={_saslname(_saslprep(username))},r={self.cnonce}".encode()
        self._auth_message: bytes | None = None
        self._salted: bytes | None = None
        self.server_verified = False

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
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
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


# ---------------------------------------------------------------------------------------------
# The actor
# ---------------------------------------------------------------------------------------------


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


@register
class RawXmppActor(Actor):
    """Raw client-to-server XMPP stream. See the module documentation."""

    kind = "xmpp-raw"
    protocol = "xmpp"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }
    actions: ClassVar[dict[str, dict[str, Any]]] = {
        "connect": _obj(
            {
                "tls": {"enum": ["starttls", "direct", "none"], "default": "starttls"},
                "port": {
                    "type": ["integer", "string"],
                    "description": "port number, or the name of one of the target's ports "
                    "(default: c2s, c2s_tls for direct)",
                },
                "tls_min": _TLS_VERSION_SCHEMA,
                "tls_max": _TLS_VERSION_SCHEMA,
                "client_cert": {"type": "boolean", "default": False},
                "to": {"type": "string", "description": "stream 'to' (default: target domain; '' omits it)"},
                "require_tls": {"type": "boolean", "default": True},
                "expect_tls_failure": {"type": "boolean", "default": False},
                "expect_stream_error": {"type": "boolean", "default": False},
                "within": _WITHIN_SCHEMA,
            }
        ),
        "authenticate": _obj(
            {
                "mechanism": {"type": "string", "minLength": 1, "default": "PLAIN"},
                "password": {"type": "string"},
                "username": {"type": "string"},
                "authzid": {"type": "string"},
                "payload": {"type": "string", "description": "text of <auth> sent as is ('=' is empty)"},
                "expect": {"enum": ["success", "failure", "any"], "default": "success"},
                "bind": {"type": "boolean", "default": True},
                "resource": {"type": "string"},
                "abort": {"type": "boolean", "default": False},
                "channel_binding": {"enum": ["tls-server-end-point", "tls-unique", "tls-exporter"]},
                "gs2_flag": {"enum": ["n", "y"]},
                "within": _WITHIN_SCHEMA,
            }
        ),
        "send": _obj(
            {
                "xml": {"type": "string"},
                "raw": {"type": "boolean", "default": False},
                "hex": {"type": "string", "pattern": "^[0-9a-fA-F\\s]*$"},
            }
        ),
        "expect": _obj(
            {
                "match": {"type": "string", "minLength": 1},
                "within": _WITHIN_SCHEMA,
                "consume": {"type": "boolean", "default": True},
            },
            ["match"],
        ),
        "expect-nothing": _obj(
            {
                "match": {"type": "string", "minLength": 1},
                "barrier": {"enum": ["ping", "none"], "default": "ping"},
                "within": _WITHIN_SCHEMA,
            },
            ["match"],
        ),
        "disconnect": _obj({"close_stream": {"type": "boolean", "default": True}}),
    }

    def __init__(self, ctx: ActorContext, options: dict[str, Any]) -> None:
        super().__init__(ctx, options)
        self._log = StreamLog.for_actor(ctx)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._parser = StreamParser()
        self._pending: list[ET.Element] = []  # unconsumed elements of the current stream
        self._arrived = asyncio.Event()
        self._conn_lost = False
        self._closing = False
        self._sent_close = False
        self._ids = 0
        self._binds = 0
        self._to: str | None = None  # the stream 'to' of connect, reused at stream restarts
        self._peer_der: bytes | None = None
        self._client_cert_used = False
        self.header: ET.Element | None = None
        self.features: ET.Element | None = None
        self.tls_info: dict[str, Any] | None = None
        self.full_jid: str | None = None
        self.authenticated = False

    # -- evidence ----------------------------------------------------------------------------

    @property
    def stream_logs(self) -> list[Path]:
        return [self._log.path] if self._log.path.exists() else []

    # -- low level -----------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids}"

    def _deadline(self, within: float | None) -> float:
        return asyncio.get_running_loop().time() + (within if within is not None else self.ctx.step_timeout)

    def _require_connection(self, action: str) -> None:
        if self._writer is None:
            raise HarnessError(f"{action} before connect (actor {self.ctx.name} has no connection)")

    def _on_data(self, data: bytes) -> None:
        for kind, el, raw in self._parser.feed(data):
            text = raw.strip()
            if text:
                self._log.received(text)
            if kind == "junk":
                continue
            if kind == "error":
                self._log.event(f"server sent XML that is not well-formed: {self._parser.broken}")
            assert el is not None
            if kind == "header":
                self.header = el
            elif el.tag == FEATURES_TAG:
                self.features = el
            elif kind == "close":
                self._log.event("server closed its stream")
            self._queue(el)

    def _queue(self, el: ET.Element) -> None:
        self._pending.append(el)
        self._arrived.set()

    def _on_connection_lost(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        if self._closing:
            self._log.event("connection closed")
        elif self._sent_close and exc is None:
            self._log.event("connection closed by the server after the actor closed its stream")
        else:
            detail = f": {type(exc).__name__}: {exc}" if exc else ""
            self._log.event(f"connection closed by the server{detail}")
        self._queue(closed_event("connection"))
        self._conn_lost = True
        self._arrived.set()

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    self._on_connection_lost(None)
                    return
                self._on_data(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any read failure ends the connection
            self._on_connection_lost(exc)

    async def _write(self, data: bytes, log_text: str, deadline: float | None = None) -> None:
        self._require_connection("send")
        assert self._writer is not None
        if self._conn_lost or self._writer.is_closing():
            raise Failed(f"cannot send: the connection is closed ({self._closed_summary()})")
        self._log.sent(log_text)
        try:
            self._writer.write(data)
            async with asyncio.timeout_at(deadline or self._deadline(None)):
                await self._writer.drain()
        except TimeoutError:
            raise HarnessError("target did not read what the actor sent (send buffer full)") from None
        except (ConnectionError, OSError) as exc:
            raise Failed(f"cannot send: connection lost ({exc})") from None

    async def _send_text(self, text: str, deadline: float | None = None) -> None:
        await self._write(text.encode("utf-8"), text, deadline)

    def _closed_summary(self) -> str:
        closes = [e for e in self._pending if e.tag == CLOSED]
        errors = [e for e in self._pending if e.tag == STREAM_ERROR_TAG]
        parts = []
        if errors:
            parts.append(f"stream error {_condition(errors[-1])}")
        if closes or self._conn_lost:
            parts.append("closed by the server" if not self._closing else "closed")
        return ", ".join(parts) or "not open"

    async def _wait_for(self, pred: Callable[[ET.Element], bool], deadline: float) -> ET.Element | None:
        """First unconsumed element satisfying ``pred``; None once the deadline passed or the
        connection is gone with nothing matching (nothing more can arrive)."""
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    for el in self._pending:
                        if pred(el):
                            return el
                    if self._conn_lost:
                        return None
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return None

    def _consume(self, el: ET.Element) -> None:
        for i, item in enumerate(self._pending):
            if item is el:
                del self._pending[i]
                return

    def _received_summary(self, limit: int = 8) -> str:
        if not self._pending:
            return "nothing (unconsumed)"
        items = [summarize(e) for e in self._pending[-limit:]]
        more = len(self._pending) - limit
        return ("... " if more > 0 else "") + ", ".join(items)

    # -- streams and TLS -------------------------------------------------------------------------

    def _stream_header(self, to: str | None) -> str:
        to_attr = "" if to == "" else f" to={_attr(to or self.ctx.target.domain)}"
        return (
            f"<?xml version='1.0'?><stream:stream{to_attr} version='1.0' "
            f"xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>"
        )

    async def _open_stream(self, to: str | None, deadline: float, expect_stream_error: bool = False) -> bool:
        """(Re)start the stream: send a header, read the server's header and features.
        Returns False when the server ended the stream instead (allowed by ``expect_stream_error``)."""
        self._parser.reset()
        self._pending.clear()
        self.header = None
        self.features = None
        self._sent_close = False
        await self._send_text(self._stream_header(to), deadline)

        def ended(e: ET.Element) -> bool:
            return e.tag in (STREAM_ERROR_TAG, CLOSED, NOT_WELL_FORMED)

        first = await self._wait_for(lambda e: e is self.header or ended(e), deadline)
        if first is not None and first is self.header and first.tag == STREAM_TAG:
            first = await self._wait_for(lambda e: e.tag == FEATURES_TAG or ended(e), deadline)
        if first is None:
            if self._conn_lost:
                if expect_stream_error:
                    return False
                raise Failed(
                    f"server closed the connection when the stream was opened ({self._closed_summary()})"
                )
            waited = "stream header" if self.header is None else "stream features"
            raise HarnessError(f"target sent no {waited} in time; got {self._received_summary()}")
        if self.header is not None and self.header.tag != STREAM_TAG:
            raise Failed(f"server answered with <{short_tag(self.header.tag)}>, not a stream header")
        if first.tag == FEATURES_TAG:
            if expect_stream_error:
                raise Failed("server opened the stream (sent stream features) instead of a stream error")
            return True
        if expect_stream_error:
            return False
        what = f"stream error {_condition(first)}" if first.tag == STREAM_ERROR_TAG else summarize(first)
        raise Failed(f"server ended the stream instead of sending features: {what}")

    def _tls_context(
        self, tls_min: str | None, tls_max: str | None, client_cert: bool, alpn: list[str] | None
    ) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ctx.target.ca_file is not None:
            ctx.load_verify_locations(cafile=str(self.ctx.target.ca_file))
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.ctx.keylog_file is not None:
            Path(self.ctx.keylog_file).parent.mkdir(parents=True, exist_ok=True)
            ctx.keylog_filename = str(self.ctx.keylog_file)
        legacy = False
        for version in (tls_min, tls_max):
            if version is not None and not getattr(ssl, _HAS_VERSION[version]):
                raise HarnessError(f"this Python/OpenSSL build cannot speak TLS {version}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated: we test them
            if tls_min is not None:
                ctx.minimum_version = _TLS_VERSIONS[tls_min]
                legacy |= tls_min in ("1.0", "1.1")
            if tls_max is not None:
                ctx.maximum_version = _TLS_VERSIONS[tls_max]
                legacy |= tls_max in ("1.0", "1.1")
        if legacy:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 at higher levels
        if client_cert:
            if self.ctx.client_cert is None:
                raise HarnessError(
                    f"client_cert requested, but the run issued no certificate for {self.ctx.name}"
                )
            cert, key = self.ctx.client_cert
            ctx.load_cert_chain(str(cert), str(key))
        self._client_cert_used = client_cert
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    async def _start_tls(self, tls_ctx: ssl.SSLContext, deadline: float, expect_failure: bool) -> bool:
        """Upgrade the connection. True on success; False when it failed and that was expected."""
        assert self._writer is not None
        failure: str | None = None
        verify_error = False
        try:
            async with asyncio.timeout_at(deadline):
                await self._writer.start_tls(tls_ctx, server_hostname=self.ctx.target.domain)
        except TimeoutError:
            failure = "timed out"
        except ssl.SSLCertVerificationError as exc:
            verify_error = True
            failure = f"certificate verification failed: {exc.verify_message or exc}"
        except ssl.SSLError as exc:
            if exc.reason in _LOCAL_TLS_PROBLEMS:
                self._log.event(f"TLS handshake not possible on the actor's side: {exc}")
                raise HarnessError(f"the actor's TLS library cannot do what was asked: {exc}") from None
            failure = f"{type(exc).__name__}: {exc}"
        except (OSError, EOFError) as exc:
            failure = (
                f"{type(exc).__name__}: {exc}" if str(exc) else f"{type(exc).__name__} (connection closed)"
            )
        if failure is not None:
            self._log.event(f"TLS handshake failed: {failure}")
            self._on_connection_lost(None)
            if expect_failure and not verify_error and failure != "timed out":
                return False
            if expect_failure and verify_error:
                raise Failed(
                    "TLS handshake failed on the server's certificate, not on the tested TLS parameters: "
                    + failure
                )
            if failure == "timed out":
                raise HarnessError("TLS handshake with the target timed out")
            raise Failed(f"TLS handshake failed: {failure}")
        ssl_obj = self._writer.get_extra_info("ssl_object")
        cipher = ssl_obj.cipher() if ssl_obj is not None else None
        info: dict[str, Any] = {
            "version": ssl_obj.version() if ssl_obj else None,
            "cipher": cipher[0] if cipher else None,
            "bits": cipher[2] if cipher else None,
            "alpn": ssl_obj.selected_alpn_protocol() if ssl_obj else None,
            "verified": self.ctx.target.ca_file is not None,
            "client_cert": self._client_cert_used,
            "server_hostname": self.ctx.target.domain,
        }
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj else None
        info.update(describe_certificate(der))
        self._peer_der = der
        self.tls_info = info
        self._log.event(
            f"TLS established: {info['version']} {info['cipher']}"
            + (f", ALPN {info['alpn']}" if info["alpn"] else "")
            + f", peer cert subject {info['peer_subject']}, SAN {', '.join(info['peer_san']) or 'none'}"
            + ("" if info["verified"] else " (not verified: no CA for this target)")
        )
        return True

    def _resolve_port(self, tls: str, port: int | str | None) -> int:
        ports = self.ctx.target.ports
        if port is None:
            name = "c2s_tls" if tls == "direct" else "c2s"
            if name not in ports:
                if tls == "direct":
                    raise Unsupported(f"target {self.ctx.target.name} has no direct TLS port (XEP-0368)")
                raise HarnessError(f"target {self.ctx.target.name} has no {name} port")
            return int(ports[name])
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            return int(port)
        if port in ports:
            return int(ports[port])
        raise HarnessError(
            f"target {self.ctx.target.name} has no port named {port!r} (has: {', '.join(ports)})"
        )

    # -- actions ---------------------------------------------------------------------------------

    async def connect(
        self,
        tls: str = "starttls",
        port: int | str | None = None,
        tls_min: str | float | None = None,
        tls_max: str | float | None = None,
        client_cert: bool = False,
        to: str | None = None,
        require_tls: bool = True,
        expect_tls_failure: bool = False,
        expect_stream_error: bool = False,
        within: float | None = None,
    ) -> None:
        if self._writer is not None:
            if not self._conn_lost:
                raise HarnessError(f"actor {self.ctx.name} is already connected; disconnect first")
            await self._shutdown()  # the server closed the previous connection: start over
        if tls not in ("starttls", "direct", "none"):
            raise HarnessError(f"connect: tls must be starttls, direct or none, not {tls!r}")
        tls_min_s = _version(tls_min)
        tls_max_s = _version(tls_max)
        if expect_tls_failure and tls == "none":
            raise HarnessError("connect: expect_tls_failure needs tls: starttls or direct")
        deadline = self._deadline(within)
        number = self._resolve_port(tls, port)
        host = self.ctx.target.address
        tls_ctx = None
        if tls != "none":
            tls_ctx = self._tls_context(
                tls_min_s, tls_max_s, client_cert, ["xmpp-client"] if tls == "direct" else None
            )
        local_addr = (self.ctx.source_address, 0) if self.ctx.source_address else None
        # A fresh connection: forget everything of an earlier one.
        self._conn_lost = False
        self._closing = False
        self._pending.clear()
        self._parser.reset()
        self.tls_info = None
        self.full_jid = None
        self.authenticated = False
        self._to = to
        self._log.event(
            f"connecting to {host}:{number} (tls: {tls})" + (f" from {local_addr[0]}" if local_addr else "")
        )
        try:
            async with asyncio.timeout_at(deadline):
                self._reader, self._writer = await asyncio.open_connection(
                    host, number, local_addr=local_addr
                )
        except ConnectionRefusedError:
            self._log.event(f"connection to {host}:{number} refused")
            if tls == "direct":
                raise Unsupported(f"no direct TLS listener on port {number} (XEP-0368)") from None
            raise TargetError(f"cannot connect to {host}:{number}: connection refused") from None
        except TimeoutError:
            raise TargetError(f"TCP connection to {host}:{number} timed out") from None
        except OSError as exc:
            raise TargetError(f"cannot connect to {host}:{number}: {exc}") from None
        self.reached_server = True
        self._log.event("TCP connected")
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"xmpp-raw-reader-{self.ctx.name}")

        if tls == "direct":
            assert tls_ctx is not None
            if not await self._start_tls(tls_ctx, deadline, expect_tls_failure):
                return
            if expect_tls_failure:
                raise Failed(f"server accepted TLS {self.tls_info and self.tls_info['version']}")
        if not await self._open_stream(to, deadline, expect_stream_error):
            return
        if tls != "starttls":
            return
        assert self.features is not None
        starttls = self.features.find(f"{{{NS_TLS}}}starttls")
        if starttls is None:
            if require_tls or expect_tls_failure:
                raise Failed("server does not offer STARTTLS")
            self._log.event("server does not offer STARTTLS; continuing without TLS (require_tls: false)")
            return
        await self._send_text(f"<starttls xmlns='{NS_TLS}'/>", deadline)
        answer = await self._wait_for(
            lambda e: _ns(e.tag) == NS_TLS or e.tag in (STREAM_ERROR_TAG, CLOSED), deadline
        )
        if answer is None:
            if self._conn_lost:
                raise Failed(f"server closed the connection after <starttls/> ({self._closed_summary()})")
            raise HarnessError("target did not answer <starttls/> in time")
        if answer.tag != f"{{{NS_TLS}}}proceed":
            raise Failed(f"server refused STARTTLS: {summarize(answer)}")
        self._consume(answer)
        assert tls_ctx is not None
        if not await self._start_tls(tls_ctx, deadline, expect_tls_failure):
            return
        if expect_tls_failure:
            raise Failed(f"server accepted TLS {self.tls_info and self.tls_info['version']}")
        await self._open_stream(to, deadline)

    def _ssl_object(self) -> ssl.SSLObject | None:
        if self._writer is None:
            return None
        return self._writer.get_extra_info("ssl_object")

    def _channel_binding(self, mechanism: str, requested: str | None) -> tuple[str, bytes]:
        ssl_obj = self._ssl_object()
        if ssl_obj is None:
            raise Unsupported(f"{mechanism} needs a TLS connection for channel binding")
        version = ssl_obj.version()
        advertised = [
            (el.get("type") or "")
            for el in (
                self.features.iter(f"{{{NS_SASL_CB}}}channel-binding") if self.features is not None else []
            )
        ]
        if requested is not None:
            candidates = [requested]
        elif advertised:
            candidates = [t for t in _CB_COMPUTABLE if t in advertised]
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
            raise Unsupported(
                "tls-exporter channel binding: Python's ssl module has no keying material exporter"
            )
        if cb_type == "tls-server-end-point":
            der = self._peer_der
            if not der:
                raise Unsupported("tls-server-end-point: the server presented no certificate")
            return cb_type, tls_server_end_point(der)
        if cb_type == "tls-unique":
            if version == "TLSv1.3" and requested is None:
                raise Unsupported("tls-unique is undefined for TLS 1.3 (RFC 9266)")
            data = ssl_obj.get_channel_binding("tls-unique")
            if data is None:
                raise Unsupported(f"tls-unique channel binding is not available over {version}")
            return cb_type, data
        raise HarnessError(f"unknown channel binding type {cb_type!r}")

    async def authenticate(
        self,
        mechanism: str = "PLAIN",
        password: str | None = None,
        username: str | None = None,
        authzid: str | None = None,
        payload: str | None = None,
        expect: str = "success",
        bind: bool = True,
        resource: str | None = None,
        abort: bool = False,
        channel_binding: str | None = None,
        gs2_flag: str | None = None,
        within: float | None = None,
    ) -> None:
        self._require_connection("authenticate")
        if expect not in ("success", "failure", "any"):
            raise HarnessError(f"authenticate: expect must be success, failure or any, not {expect!r}")
        if self._conn_lost:
            raise Failed(f"cannot authenticate: the connection is closed ({self._closed_summary()})")
        if self.authenticated and expect == "success":
            raise HarnessError("authenticate: this stream is already authenticated")
        deadline = self._deadline(within)
        if self.features is None:
            await self._wait_for(lambda e: e.tag == FEATURES_TAG, deadline)
        offered = [
            (m.text or "").strip()
            for m in (self.features.iter(f"{{{NS_SASL}}}mechanism") if self.features is not None else [])
        ]
        if mechanism not in offered and expect == "success":
            raise Unsupported(f"mechanism {mechanism} not offered (offered: {', '.join(offered) or 'none'})")
        account = self.ctx.account
        needs_credentials = payload is None and (mechanism == "PLAIN" or mechanism.startswith("SCRAM-"))
        if needs_credentials and account is None and (username is None or password is None):
            raise HarnessError(
                f"authenticate {mechanism}: actor {self.ctx.name} has no account and no credentials"
            )
        user = username if username is not None else (account.user if account else "")
        secret = password if password is not None else (account.password if account else "")
        self._log.add_secret(secret)

        scram: Scram | None = None
        if payload is not None:
            initial = payload
        elif mechanism == "PLAIN":
            initial = _b64(f"{authzid or ''}\0{user}\0{secret}".encode())
        elif mechanism.startswith("SCRAM-"):
            cb_type, cb_data = (None, None)
            if mechanism.endswith("-PLUS"):
                cb_type, cb_data = self._channel_binding(mechanism, channel_binding)
            scram = Scram(mechanism, user, secret, authzid, cb_type, cb_data, gs2_flag)
            initial = _b64(scram.client_first())
        elif mechanism == "EXTERNAL":
            initial = _b64(authzid.encode()) if authzid else "="
        elif mechanism == "ANONYMOUS":
            initial = "="
        else:
            initial = ""  # unknown mechanism: sent as is, without initial response

        auth = f"<auth xmlns='{NS_SASL}' mechanism={_attr(mechanism)}"
        auth += f">{escape(initial)}</auth>" if initial else "/>"
        earlier = {id(e) for e in self._pending}  # e.g. the <failure/> of an earlier attempt
        await self._send_text(auth, deadline)

        outcome: str | None = None
        final: ET.Element | None = None
        aborted = False
        sasl_tags = {f"{{{NS_SASL}}}{n}" for n in ("challenge", "success", "failure")}
        while outcome is None:
            el = await self._wait_for(
                lambda e: id(e) not in earlier and e.tag in (*sasl_tags, STREAM_ERROR_TAG, CLOSED), deadline
            )
            if el is None:
                if self._conn_lost:
                    outcome = "closed"
                    break
                raise HarnessError(
                    f"target did not answer SASL {mechanism} in time; got {self._received_summary()}"
                )
            final = el
            name = _local(el.tag)
            if el.tag in (STREAM_ERROR_TAG, CLOSED):
                outcome = "ended"
            elif name == "success":
                outcome = "success"
            elif name == "failure":
                outcome = "failure"
            else:  # challenge
                if aborted:
                    raise Failed("server sent another challenge after <abort/>")
                if (
                    not abort
                    and scram is None
                    and (payload is not None or mechanism not in ("PLAIN", "EXTERNAL", "ANONYMOUS"))
                ):
                    outcome = "challenge"  # nothing to answer it with: left queued for an expect step
                    break
                self._consume(el)
                if abort:
                    aborted = True
                    await self._send_text(f"<abort xmlns='{NS_SASL}'/>", deadline)
                    continue
                data = _b64decode(el.text)
                if scram is None:
                    await self._send_text(f"<response xmlns='{NS_SASL}'/>", deadline)
                    continue
                try:
                    if scram._auth_message is None:
                        response = _b64(scram.client_final(data))
                    else:
                        scram.verify_server_final(data)
                        response = ""
                except ScramError as exc:
                    raise Failed(f"SCRAM: {exc}") from None
                await self._send_text(
                    f"<response xmlns='{NS_SASL}'>{response}</response>"
                    if response
                    else f"<response xmlns='{NS_SASL}'/>",
                    deadline,
                )

        if outcome == "success" and scram is not None and not scram.server_verified and payload is None:
            additional = _b64decode(final.text if final is not None else None)
            try:
                if not additional:
                    raise ScramError("no server-final message (v=) with <success/>")
                scram.verify_server_final(additional)
            except ScramError as exc:
                raise Failed(f"SCRAM: {exc}") from None

        self._log.event(
            f"SASL {mechanism}: {outcome}"
            + (
                f" ({_condition(final)})"
                if outcome in ("failure", "ended") and final is not None and final.tag != CLOSED
                else ""
            )
        )
        if outcome == "success":
            if expect == "failure":
                what = "after <abort/>" if aborted else ("the payload given" if payload is not None else "")
                raise Failed(f"server accepted {mechanism} authentication {what}".strip())
            self.authenticated = True
            if bind:
                await self._bind(resource, deadline)
            return
        if outcome == "challenge":
            if expect == "success":
                raise HarnessError(
                    f"server sent a challenge to the given {mechanism} payload; this actor cannot continue it"
                )
            if expect == "failure":
                raise Failed(f"server answered the {mechanism} payload with a challenge instead of a failure")
            return
        if expect == "success":
            if outcome == "failure":
                assert final is not None
                raise Failed(f"authentication failed: {_condition(final)}")
            raise Failed(f"server ended the stream during SASL {mechanism}: {self._closed_summary()}")

    async def _bind(self, resource: str | None, deadline: float) -> None:
        await self._open_stream(self._to, deadline)
        assert self.features is not None
        if self.features.find(f"{{{NS_BIND}}}bind") is None:
            raise Failed("server offers no resource binding after authentication")
        self._binds += 1
        bind_id = f"bind{self._binds}"
        inner = f"<resource>{escape(resource)}</resource>" if resource else ""
        await self._send_text(
            f"<iq type='set' id='{bind_id}'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>", deadline
        )
        reply = await self._wait_iq(bind_id, deadline)
        if reply.get("type") != "result":
            raise Failed(f"resource binding failed: {_condition(reply)}")
        jid = reply.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        if jid is None or not (jid.text or "").strip():
            raise Failed("resource binding result carries no <jid/>")
        self.full_jid = jid.text.strip()
        self._log.event(f"bound as {self.full_jid}")
        session = self.features.find(f"{{{NS_SESSION}}}session")
        if session is not None and session.find(f"{{{NS_SESSION}}}optional") is None:
            session_id = self._next_id("session")
            await self._send_text(
                f"<iq type='set' id='{session_id}'><session xmlns='{NS_SESSION}'/></iq>", deadline
            )
            reply = await self._wait_iq(session_id, deadline)
            if reply.get("type") != "result":
                raise Failed(f"session establishment failed: {_condition(reply)}")

    async def _wait_iq(self, iq_id: str, deadline: float) -> ET.Element:
        reply = await self._wait_for(
            lambda e: e.tag == IQ_TAG and e.get("id") == iq_id and e.get("type") in ("result", "error"),
            deadline,
        )
        if reply is None:
            if self._conn_lost:
                raise Failed(
                    f"connection closed while waiting for the reply to iq {iq_id} ({self._closed_summary()})"
                )
            raise HarnessError(f"target did not answer iq {iq_id} in time")
        self._consume(reply)
        return reply

    async def send(self, xml: str | None = None, raw: bool = False, hex: str | None = None) -> None:
        self._require_connection("send")
        if (xml is None) == (hex is None):
            raise HarnessError("send: give exactly one of xml and hex")
        if hex is not None:
            try:
                data = bytes.fromhex("".join(hex.split()))
            except ValueError as exc:
                raise HarnessError(f"send: bad hex: {exc}") from None
            await self._write(data, data.decode("utf-8", errors="backslashreplace"))
            return
        assert xml is not None
        if not raw and xml.strip() != "</stream:stream>":
            try:
                ET.fromstring(
                    f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>{xml}</stream:stream>"
                )
            except ET.ParseError as exc:
                raise HarnessError(
                    f"send: not well-formed XML ({exc}); set raw: true to send it anyway"
                ) from None
        await self._send_text(xml)
        if xml.strip().endswith("</stream:stream>"):
            self._sent_close = True

    async def expect(self, match: str, within: float | None = None, consume: bool = True) -> None:
        self._require_connection("expect")
        pattern = _compile(match)
        wait = within if within is not None else self.ctx.step_timeout
        el = await self._wait_for(pattern.matches, self._deadline(within))
        if el is not None:
            if consume:
                self._consume(el)
            return
        closest = [e for e in self._pending if pattern.tag is None or e.tag == pattern.tag]
        hint = f"; closest {summarize(closest[-1])}: {pattern.explain(closest[-1])}" if closest else ""
        if self._conn_lost:
            raise Failed(
                f"expected {pattern.describe()}; connection closed ({self._closed_summary()}); "
                f"got: {self._received_summary()}{hint}"
            )
        raise Failed(f"expected {pattern.describe()} within {wait:g}s; got: {self._received_summary()}{hint}")

    async def expect_nothing(self, match: str, barrier: str = "ping", within: float | None = None) -> None:
        self._require_connection("expect-nothing")
        pattern = _compile(match)
        if barrier == "none":
            if not self._conn_lost:
                raise HarnessError("expect-nothing with barrier none needs a closed connection")
        elif barrier == "ping":
            if not self._conn_lost:
                barrier_id = self._next_id("barrier")
                deadline = self._deadline(within)
                await self._send_text(
                    f"<iq type='get' id='{barrier_id}' to={_attr(self.ctx.target.domain)}>"
                    f"<ping xmlns='{NS_PING}'/></iq>",
                    deadline,
                )
                reply = await self._wait_for(
                    lambda e: (
                        e.tag == IQ_TAG and e.get("id") == barrier_id and e.get("type") in ("result", "error")
                    ),
                    deadline,
                )
                if reply is not None:
                    self._consume(reply)
                elif not self._conn_lost:
                    raise HarnessError(
                        f"no reply to the barrier ping {barrier_id} in time; absence not proven"
                    )
                # connection closed before the reply: everything received is final.
        else:
            raise HarnessError(f"expect-nothing: unknown barrier {barrier!r} (ping or none)")
        for el in self._pending:
            if pattern.matches(el):
                raise Failed(
                    f"received {summarize(el)}, which matches {pattern.describe()} and must not be sent"
                )

    async def disconnect(self, close_stream: bool = True, within: float | None = None) -> None:
        if self._writer is None:
            return
        if close_stream and not self._conn_lost and not self._sent_close and self.header is not None:
            with contextlib.suppress(Failed, HarnessError):
                await self._send_text("</stream:stream>")
                self._sent_close = True
            # RFC 6120 4.4: wait for the server to close its stream too, but not for long.
            limit = min(within if within is not None else self.ctx.step_timeout, 5.0)
            await self._wait_for(lambda e: e.tag == CLOSED, self._deadline(limit))
        await self._shutdown()

    async def _shutdown(self) -> None:
        writer, task = self._writer, self._reader_task
        self._closing = True
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await writer.wait_closed()
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if writer is not None and not self._conn_lost:
            self._on_connection_lost(None)
        self._writer = None
        self._reader = None
        self._reader_task = None

    async def close(self) -> None:
        try:
            await self._shutdown()
        finally:
            self._log.close()


def _compile(match: str):
    try:
        return compile_pattern(match)
    except PatternError as exc:
        raise HarnessError(f"bad pattern: {exc}") from None


def _version(value: str | float | None) -> str | None:
    if value is None:
        return None
    text = f"{float(value):.1f}" if isinstance(value, int | float) else str(value).strip()
    if text not in _TLS_VERSIONS:
        raise HarnessError(f"unknown TLS version {value!r} (1.0, 1.1, 1.2 or 1.3)")
    return text


def _attr(value: str) -> str:
    """An attribute value in single quotes, escaped."""
    return "'" + escape(value, {"'": "&apos;", '"': "&quot;"}) + "'"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii") if data else "="


def _b64decode(text: str | None) -> bytes:
    compact = "".join((text or "").split())
    if compact in ("", "="):
        return b""
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise Failed(f"server sent a SASL payload that is not base64: {compact[:40]!r}") from None
