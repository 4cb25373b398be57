"""The raw XMPP stream actor (kind ``xmpp-raw``): bytes and XML straight over a socket.

It exists for the checks a polite client library would never do (malformed input, downgrade
attempts, unknown mechanisms, TLS versions, channel binding types) and for checks that need to
see every element the server sends, in order.

How it reads
    A background task reads the socket and feeds a :class:`~harness.protocols.xmpp.parser.StreamParser`,
    so each element is known with the exact raw text that carried it (for the stream log).
    Everything the server sends goes to the actor's :class:`~harness.protocols.xmpp.inbox.Inbox`
    (see there for ``expect`` / ``expect-nothing``). A stream restart (after STARTTLS and after
    SASL success) drops the unconsumed elements of the previous stream. The negotiation
    elements the actor itself used (``<proceed/>``, challenges, bind results) are consumed;
    SASL ``<success/>``/``<failure/>`` are left queued so that a following ``expect`` can match
    the exact condition.

Deadlines
    Every wait has a deadline (``within`` or the context's step timeout); nothing sleeps.
    ``expect`` past its deadline is a ``fail``; a target that does not answer the negotiation
    of ``connect``/``authenticate`` in time is an ``error`` (the check could not be carried out),
    as is a missing ``expect-nothing`` barrier reply.

The other concepts live next door: :mod:`.parser` (stream parsing), :mod:`.tls` (SSLContext,
handshake evidence), :mod:`.sasl` (SCRAM, channel binding, payloads), :mod:`.inbox` (the queue
and the expect semantics), :mod:`.ports` (which port).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from harness.actors import ActorContext, register
from harness.protocols.xmpp.answers import (
    ANSWERS_ALIKE_SCHEMA,
    answered_stanzas,
    judge,
    labelled_addressees,
    send_problems,
)
from harness.protocols.xmpp.base import CONNECT_PARAMS, XmppActor, refused_connection
from harness.protocols.xmpp.elements import (
    FEATURES_TAG,
    IQ_TAG,
    NS_BIND,
    NS_CLIENT,
    NS_SASL,
    NS_SESSION,
    NS_STREAM,
    NS_TLS,
    STREAM_ERROR_TAG,
    STREAM_TAG,
    attr,
    check_well_formed,
    condition,
    local,
    namespace,
    offered_mechanisms,
)
from harness.protocols.xmpp.held_connections import HOLD_CONNECTIONS_SCHEMA, HeldConnectionsMixin
from harness.protocols.xmpp.inbox import (
    EXPECT_NOTHING_SCHEMA,
    EXPECT_SCHEMA,
    WITHIN_SCHEMA,
    params_schema,
)
from harness.protocols.xmpp.login_limit import LOGIN_ATTEMPTS_SCHEMA, LoginLimitMixin
from harness.protocols.xmpp.match import CLOSED, NOT_WELL_FORMED, closed_event, short_tag, summarize
from harness.protocols.xmpp.parser import StreamParser
from harness.protocols.xmpp.ports import resolve_port
from harness.protocols.xmpp.sasl import (
    Scram,
    ScramError,
    b64,
    b64decode,
    external_message,
    plain_message,
    tampered,
)
from harness.protocols.xmpp.sasl import channel_binding as choose_channel_binding
from harness.protocols.xmpp.tls import (
    client_context,
    describe_handshake_error,
    describe_session,
    is_local_problem,
    parse_version,
    session_info,
)
from harness.verdict import Failed, HarnessError, Observation, StepOutcome, TargetError, Unsupported

__all__ = ["CERTIFICATE_NOT_CHECKED", "RawXmppActor", "Scram", "StreamParser"]


CERTIFICATE_NOT_CHECKED = "the target file says verify: false: its certificate is not checked"


@register
class RawXmppActor(LoginLimitMixin, HeldConnectionsMixin, XmppActor):
    """Raw client-to-server XMPP stream. See the module documentation."""

    kind = "xmpp-raw"
    actions: ClassVar[dict[str, dict[str, Any]]] = {
        "connect": params_schema(
            {
                **CONNECT_PARAMS,
                "to": {"type": "string", "description": "stream 'to' (default: target domain; '' omits it)"},
                "require_tls": {"type": "boolean", "default": True},
                "expect_tls_failure": {"type": "boolean", "default": False},
                "expect_stream_error": {
                    "enum": [True, False, "either"],
                    "default": False,
                    "description": "true: the server must end the stream instead of opening it; either: "
                    "both are allowed (a MAY of the spec), an expect step tells them apart",
                },
                "verify": {
                    "enum": ["target", "required"],
                    "default": "target",
                    "description": "required: the step checks the certificate, so a target whose "
                    "certificate is not verified (verify: false) makes it unsupported",
                },
                "header": {
                    "type": "string",
                    "minLength": 1,
                    "description": "the stream header sent as it is instead of the actor's own (after "
                    "TLS with starttls), e.g. a wrong namespace, prefix or version; with expect_stream_error",
                },
                "within": WITHIN_SCHEMA,
            }
        ),
        "authenticate": params_schema(
            {
                "mechanism": {"type": "string", "minLength": 1, "default": "PLAIN"},
                "password": {"type": "string"},
                "username": {"type": "string"},
                "authzid": {"type": "string"},
                "payload": {"type": "string", "description": "text of <auth> sent as is ('=' is empty)"},
                "expect": {"enum": ["success", "failure", "any"], "default": "success"},
                "bind": {
                    "enum": [True, False, "any"],
                    "default": True,
                    "description": "any: send the bind request and leave its answer for an expect step",
                },
                "resource": {"type": "string"},
                "abort": {"type": "boolean", "default": False},
                "channel_binding": {"enum": ["tls-server-end-point", "tls-unique", "tls-exporter"]},
                "tamper_channel_binding": {
                    "type": "boolean",
                    "default": False,
                    "description": "-PLUS: send the channel binding data with every byte XORed (same type, "
                    "wrong bytes); a server that validates c= must refuse",
                },
                "gs2_flag": {"enum": ["n", "y"]},
                "within": WITHIN_SCHEMA,
            }
        ),
        "send": params_schema(
            {
                "xml": {"type": "string"},
                "raw": {"type": "boolean", "default": False},
                "hex": {"type": "string", "pattern": "^[0-9a-fA-F\\s]*$"},
            }
        ),
        "expect": EXPECT_SCHEMA,
        "expect-nothing": EXPECT_NOTHING_SCHEMA,
        "disconnect": params_schema({"close_stream": {"type": "boolean", "default": True}}),
        "login-attempts": LOGIN_ATTEMPTS_SCHEMA,
        "hold-connections": HOLD_CONNECTIONS_SCHEMA,
        "answers-alike": ANSWERS_ALIKE_SCHEMA,
    }
    deciding_actions: ClassVar[frozenset[str]] = XmppActor.deciding_actions | {
        "login-attempts",
        "hold-connections",
        "answers-alike",
    }

    def __init__(self, ctx: ActorContext, options: dict[str, Any]) -> None:
        super().__init__(ctx, options)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._parser = StreamParser()
        self._sent_close = False
        self._binds = 0
        self._to: str | None = None  # the stream 'to' of connect, reused at stream restarts
        self._peer_der: bytes | None = None
        self._tls_failure = ""  # how the last TLS handshake failed, for connect's observation
        self._header: str | None = None  # connect's own stream header for the next stream opened

    @classmethod
    def param_problems(cls, action: str, params: dict[str, Any]) -> list[str]:
        problems = super().param_problems(action, params)
        if action == "answers-alike" and isinstance(params.get("send"), dict):
            problems += send_problems(params["send"])
        return problems

    # -- low level -----------------------------------------------------------------------------

    @property
    def _conn_lost(self) -> bool:
        return self._inbox.closed

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
            self._inbox.put(el)

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
        self._inbox.put(closed_event("connection"))
        self._inbox.connection_lost()

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

    async def _wait_for(self, pred: Callable[[ET.Element], bool], deadline: float) -> ET.Element | None:
        return await self._inbox.wait_for(pred, deadline)

    def _consume(self, el: ET.Element) -> None:
        self._inbox.consume(el)

    def _received_summary(self, limit: int = 8) -> str:
        return self._inbox.summary(limit)

    # -- streams and TLS -------------------------------------------------------------------------

    def _stream_header(self, to: str | None) -> str:
        if self._header is not None:  # connect's header: sent as it is, once
            header, self._header = self._header, None
            return header
        to_attr = "" if to == "" else f" to={attr(to or self.ctx.target.domain)}"
        return (
            f"<?xml version='1.0'?><stream:stream{to_attr} version='1.0' "
            f"xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>"
        )

    async def _open_stream(
        self,
        to: str | None,
        deadline: float,
        expect_stream_error: bool | str = False,
        restart: bool = False,
    ) -> bool:
        """(Re)start the stream: send a header, read the server's header and features.
        Returns False when the server ended the stream instead (allowed by ``expect_stream_error``).

        On a restart (after TLS or SASL) the server MUST answer with a new stream (RFC 6120
        §5.4.3.3, §6.4.6): silence there is the target's failure, not a timeout of the check."""
        self._parser.reset()
        self._inbox.new_stream()
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
            if restart:
                raise Failed(
                    f"server sent no new {waited} after the stream restart; got {self._received_summary()}"
                )
            raise HarnessError(f"target sent no {waited} in time; got {self._received_summary()}")
        if self.header is not None and self.header.tag != STREAM_TAG:
            raise Failed(f"server answered with <{short_tag(self.header.tag)}>, not a stream header")
        if first.tag == FEATURES_TAG:
            if expect_stream_error is True:
                raise Failed("server opened the stream (sent stream features) instead of a stream error")
            return True
        if expect_stream_error:
            return False
        what = f"stream error {condition(first)}" if first.tag == STREAM_ERROR_TAG else summarize(first)
        raise Failed(f"server ended the stream instead of sending features: {what}")

    def _tls_context(
        self, tls_min: str | None, tls_max: str | None, client_cert: bool, alpn: list[str] | None
    ) -> ssl.SSLContext:
        tls_ctx = client_context(self.ctx, tls_min, tls_max, client_cert, alpn)
        self._client_cert_used = client_cert
        return tls_ctx

    async def _start_tls(self, tls_ctx: ssl.SSLContext, deadline: float, expect_failure: bool) -> bool:
        """Upgrade the connection. True on success; False when it failed and that was expected."""
        assert self._writer is not None
        failure: str | None = None
        verify_error = False
        try:
            async with asyncio.timeout_at(deadline):
                await self._writer.start_tls(tls_ctx, server_hostname=self.ctx.target.domain)
        except (OSError, EOFError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            if is_local_problem(exc):
                self._log.event(f"TLS handshake not possible on the actor's side: {exc}")
                raise HarnessError(f"the actor's TLS library cannot do what was asked: {exc}") from None
            failure, verify_error = describe_handshake_error(exc)
        if failure is not None:
            self._log.event(f"TLS handshake failed: {failure}")
            self._tls_failure = failure
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
        info, der = session_info(self._ssl_object(), self.ctx, self._client_cert_used)
        self._peer_der = der
        self.tls_info = info
        self._log.event(describe_session(info))
        return True

    def _resolve_port(self, tls: str, port: int | str | None) -> int:
        return resolve_port(self.ctx.target, tls, port)

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
        expect_stream_error: bool | str = False,
        verify: str = "target",
        header: str | None = None,
        refused: str = "error",
        within: float | None = None,
    ) -> Observation:
        if verify == "required" and tls != "none" and self.ctx.target.ca_file is None:
            # not the target's fault nor the harness's: the run was told not to check (a target
            # file's verify: false), so the rule cannot be put to the test
            raise Unsupported(CERTIFICATE_NOT_CHECKED)
        if self._writer is not None:
            if not self._conn_lost:
                raise HarnessError(f"actor {self.ctx.name} is already connected; disconnect first")
            await self._shutdown()  # the server closed the previous connection: start over
        if tls not in ("starttls", "direct", "none"):
            raise HarnessError(f"connect: tls must be starttls, direct or none, not {tls!r}")
        tls_min_s = parse_version(tls_min)
        tls_max_s = parse_version(tls_max)
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
        self._closing = False
        self._inbox.reset()
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
            raise refused_connection(refused, f"{host}:{number}") from None
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
                return Observation(f"TLS handshake refused: {self._tls_failure}")
            if expect_tls_failure:
                raise Failed(f"server accepted TLS {self.tls_info and self.tls_info['version']}")
        header_after_tls = header is not None and tls == "starttls"
        self._header = None if header_after_tls else header
        if not await self._open_stream(to, deadline, False if header_after_tls else expect_stream_error):
            return self._not_opened()
        if tls != "starttls":
            return self._opened()
        assert self.features is not None
        starttls = self.features.find(f"{{{NS_TLS}}}starttls")
        if starttls is None:
            if require_tls or expect_tls_failure:
                raise Failed("server does not offer STARTTLS")
            self._log.event("server does not offer STARTTLS; continuing without TLS (require_tls: false)")
            return Observation(f"STARTTLS not offered: {summarize(self.features)}")
        await self._send_text(f"<starttls xmlns='{NS_TLS}'/>", deadline)
        answer = await self._wait_for(
            lambda e: namespace(e.tag) == NS_TLS or e.tag in (STREAM_ERROR_TAG, CLOSED), deadline
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
            return Observation(f"TLS handshake refused: {self._tls_failure}")
        if expect_tls_failure:
            raise Failed(f"server accepted TLS {self.tls_info and self.tls_info['version']}")
        self._header = header
        if not await self._open_stream(
            to, deadline, expect_stream_error if header_after_tls else False, restart=True
        ):
            return self._not_opened()
        return self._opened()

    def _not_opened(self) -> Observation:
        return Observation(f"the server ended the stream instead of opening it: {self._received_summary()}")

    def _opened(self) -> Observation:
        """What ``connect`` saw when the stream is open: its TLS and the features."""
        tls = f" over TLS {self.tls_info['version']}" if self.tls_info else " unencrypted"
        return Observation(
            f"stream open{tls}, features {summarize(self.features) if self.features is not None else 'none'}"
        )

    def _ssl_object(self) -> ssl.SSLObject | None:
        if self._writer is None:
            return None
        return self._writer.get_extra_info("ssl_object")

    def _channel_binding(self, mechanism: str, requested: str | None) -> tuple[str, bytes]:
        return choose_channel_binding(mechanism, requested, self._ssl_object(), self._peer_der, self.features)

    async def authenticate(
        self,
        mechanism: str = "PLAIN",
        password: str | None = None,
        username: str | None = None,
        authzid: str | None = None,
        payload: str | None = None,
        expect: str = "success",
        bind: bool | str = True,
        resource: str | None = None,
        abort: bool = False,
        channel_binding: str | None = None,
        gs2_flag: str | None = None,
        tamper_channel_binding: bool = False,
        within: float | None = None,
    ) -> Observation:
        self._require_connection("authenticate")
        if tamper_channel_binding and (
            payload is not None or not (mechanism.startswith("SCRAM-") and mechanism.endswith("-PLUS"))
        ):
            raise HarnessError(
                "authenticate: tamper_channel_binding needs a SCRAM -PLUS mechanism and no payload"
            )
        if expect not in ("success", "failure", "any"):
            raise HarnessError(f"authenticate: expect must be success, failure or any, not {expect!r}")
        if self._conn_lost:
            raise Failed(f"cannot authenticate: the connection is closed ({self._closed_summary()})")
        if self.authenticated and expect == "success":
            raise HarnessError("authenticate: this stream is already authenticated")
        deadline = self._deadline(within)
        if self.features is None:
            await self._wait_for(lambda e: e.tag == FEATURES_TAG, deadline)
        offered = offered_mechanisms(self.features)
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
            initial = b64(plain_message(user, secret, authzid))
        elif mechanism.startswith("SCRAM-"):
            cb_type, cb_data = (None, None)
            if mechanism.endswith("-PLUS"):
                cb_type, cb_data = self._channel_binding(mechanism, channel_binding)
                if tamper_channel_binding:
                    cb_data = tampered(cb_data)
                    self._log.event(
                        f"{cb_type} channel binding data altered on purpose (every byte XORed with 0xff)"
                    )
            scram = Scram(mechanism, user, secret, authzid, cb_type, cb_data, gs2_flag)
            initial = b64(scram.client_first())
        elif mechanism == "EXTERNAL":
            initial = b64(external_message(authzid))
        elif mechanism == "ANONYMOUS":
            initial = "="
        else:
            initial = ""  # unknown mechanism: sent as is, without initial response

        auth = f"<auth xmlns='{NS_SASL}' mechanism={attr(mechanism)}"
        auth += f">{escape(initial)}</auth>" if initial else "/>"
        earlier = {id(e) for e in self._inbox.pending}  # e.g. the <failure/> of an earlier attempt
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
                if aborted:  # RFC 6120 §6.4.4: the server MUST answer <abort/> with <failure><aborted/>
                    raise Failed(f"server did not answer <abort/>; got {self._received_summary()}")
                if expect == "failure":  # a refusal is an answer (§6.4.5); silence leaves the client hanging
                    raise Failed(
                        f"server did not answer the {mechanism} <auth/>: no <failure/>, no end of stream "
                        f"within the deadline; got {self._received_summary()}"
                    )
                raise HarnessError(
                    f"target did not answer SASL {mechanism} in time; got {self._received_summary()}"
                )
            final = el
            name = local(el.tag)
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
                data = b64decode(el.text)
                if scram is None:
                    await self._send_text(f"<response xmlns='{NS_SASL}'/>", deadline)
                    continue
                try:
                    if not scram.started:
                        response = b64(scram.client_final(data))
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
            additional = b64decode(final.text if final is not None else None)
            try:
                if not additional:
                    raise ScramError("no server-final message (v=) with <success/>")
                scram.verify_server_final(additional)
            except ScramError as exc:
                raise Failed(f"SCRAM: {exc}") from None

        self._log.event(
            f"SASL {mechanism}: {outcome}"
            + (
                f" ({condition(final)})"
                if outcome in ("failure", "ended") and final is not None and final.tag != CLOSED
                else ""
            )
        )
        if outcome == "success":
            if expect == "failure":
                what = "after <abort/>" if aborted else ("the payload given" if payload is not None else "")
                raise Failed(
                    f"server accepted {mechanism} authentication {what}".strip()
                    + await self._identity_evidence(resource, deadline, bind)
                )
            self.authenticated = True
            if bind:
                await self._bind(resource, deadline, answer_left_for_expect=bind == "any")
            bound = f", bound as {self.full_jid}" if self.full_jid and bind is True else ""
            return Observation(f"SASL {mechanism} <success/>{bound}")
        if outcome == "challenge":
            if expect == "success":
                raise HarnessError(
                    f"server sent a challenge to the given {mechanism} payload; this actor cannot continue it"
                )
            if expect == "failure":
                raise Failed(f"server answered the {mechanism} payload with a challenge instead of a failure")
            return Observation(f"SASL {mechanism}: a challenge (left queued)")
        if expect == "success":
            if outcome == "failure":
                assert final is not None
                raise Failed(f"authentication failed: {condition(final)}")
            raise Failed(f"server ended the stream during SASL {mechanism}: {self._closed_summary()}")
        if outcome == "failure" and final is not None:
            return Observation(f"SASL {mechanism} refused: {summarize(final)}")
        return Observation(
            f"the server ended the stream after the {mechanism} <auth/>: {self._closed_summary()}"
        )

    async def _identity_evidence(self, resource: str | None, deadline: float, bind: bool | str) -> str:
        """After an authentication that should have failed: whom the server made us (best effort)."""
        if not bind:
            return ""
        self.authenticated = True
        try:
            await self._bind(resource, deadline)
        except StepOutcome as exc:
            return f"; binding afterwards: {exc.reason}"
        return f"; the session was bound as {self.full_jid}"

    async def _bind(
        self, resource: str | None, deadline: float, answer_left_for_expect: bool = False
    ) -> None:
        await self._open_stream(self._to, deadline, restart=True)
        assert self.features is not None
        if self.features.find(f"{{{NS_BIND}}}bind") is None:
            raise Failed("server offers no resource binding after authentication")
        self._binds += 1
        bind_id = f"bind{self._binds}"
        inner = f"<resource>{escape(resource)}</resource>" if resource else ""
        await self._send_text(
            f"<iq type='set' id='{bind_id}'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>", deadline
        )
        if answer_left_for_expect:
            return
        reply = await self._wait_iq(bind_id, deadline)
        if reply.get("type") != "result":
            raise Failed(f"resource binding failed: {condition(reply)}")
        jid = reply.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        if jid is None or not (jid.text or "").strip():
            raise Failed("resource binding result carries no <jid/>")
        if "/" not in jid.text:  # RFC 6120 §7.6.1: the full JID, resource included
            raise Failed(f"resource binding result carries {jid.text.strip()!r}, not a full JID")
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
                raise Failed(f"session establishment failed: {condition(reply)}")

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
            check_well_formed(xml, "send", "; set raw: true to send it anyway")
        await self._send_text(xml)
        if xml.strip().endswith("</stream:stream>"):
            self._sent_close = True

    async def answers_alike(self, send: dict[str, str], within: float | None = None) -> Observation:
        """See :mod:`.answers`: the stanzas, two barriers, then the answers compared."""
        self._require_connection("answers-alike")
        jids = labelled_addressees(send)
        deadline = self._deadline(within)
        for xml in send.values():
            await self.send(xml=xml)
        barrier = self._barrier_sender("answers-alike")
        answered = await self._inbox.round_trip(
            barrier, self._next_id("barrier"), self.ctx.target.domain, deadline
        )
        if answered:
            await self._inbox.round_trip(barrier, self._next_id("barrier"), self.ctx.target.domain, deadline)
        proof = "the replies to two barrier pings" if answered else None
        answers = answered_stanzas(self._inbox.pending, jids)
        for got in answers.values():
            for el in got:
                self._inbox.consume(el)
        return judge(answers, proof)

    async def disconnect(self, close_stream: bool = True, within: float | None = None) -> None:
        await self.release_held()
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
            await self.release_held()
            await self._shutdown()
        finally:
            self._log.close()
