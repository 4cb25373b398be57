"""The peer-server actor (kind ``xmpp-peer-server``): the harness plays a remote XMPP server.

It has its own domain and loopback address (``ctx.peer``, which every target resolves), so a
target treats it as just another remote domain, and it can do what no real server does: forge
the ``from`` domain, skip dialback, present a wrong, expired or untrusted certificate, send
stanzas on an unverified stream, claim another real server's domain.

Actions (see ``actions`` for the schemas)
    ``connect``: TCP from the peer's address to the target's s2s port, a ``jabber:server``
    stream (``from``: the peer's domain by default, any other to impersonate it; ``to``: the
    target's domain), STARTTLS (``tls: none`` skips it) presenting the client certificate
    ``certificate``, the target's certificate verified against the run's CA. ``refusal``: a
    target that ends the connection during ``connect`` (TLS handshake refused, stream error
    instead of features) fails the step (``fail``), is required (``expect``) or either is
    fine (``allow``). ``authenticate``: ``method: external`` (SASL EXTERNAL, XEP-0178; a stream
    restart after success), ``dialback`` (XEP-0220 ``<db:result/>`` with a ``valid`` XEP-0185
    key or an ``invalid`` one the listener will not vouch for) or ``none``; ``expect:
    success|failure|any``; EXTERNAL not offered, or a connection the target already closed,
    counts as refused. ``send``: XML as is (``db:`` may be used undeclared). ``expect``,
    ``expect-nothing``, ``disconnect``: as for the raw actor, with the differences below.
Two sides
    The *outgoing* stream (``connect``) is a raw stream initiator, so the actor is a
    :class:`~harness.protocols.xmpp.raw.RawXmppActor` underneath (parser, inbox, stream log, TLS
    upgrade and stream restarts as there) speaking ``jabber:server`` with the ``db:`` prefix
    declared. The *incoming* side is a listener on the peer's address, port 5269, started by
    the actor's first action (:mod:`.s2s_listener`): targets connect there to deliver stanzas to
    the peer's domain and to verify the dialback keys the actor sent (:mod:`.dialback`).
One inbox
    The outgoing stream's elements and the stanzas of every incoming stream go to one inbox, so
    ``expect`` sees an answer whichever way the target sends it. Stanzas of ``jabber:server``
    are queued as ``jabber:client`` ones: patterns read the same for every kind (``<message/>``).
    A restart or a new outgoing connection drops only the outgoing stream's unconsumed
    elements. "Closed" means the outgoing connection: once it is gone, ``expect`` decides on
    what has arrived (also on the incoming streams) without waiting for more.
``expect-nothing``
    The barrier is an XEP-0199 ping ``from`` the outgoing stream's domain ``to`` the target's
    domain; the target answers it on its own stream to that domain, i.e. to this actor's
    listener, after everything it was sent before. When the outgoing ``from`` is another
    domain, the answer would go to that domain's real server: a harness error (use ``barrier:
    none`` once the connection is closed, or put the check on another actor).
Certificates
    ``valid`` (the run's CA, for the stream's ``from`` domain), ``wrong-name`` (the run's CA,
    for ``wrong-name.invalid``), ``untrusted`` (the run's second CA, which no target trusts),
    ``expired`` (the run's CA, validity ended), ``none``. The actor option ``certificate``
    chooses what the listener presents (for the peer's own domain), the ``connect`` parameter
    what the outgoing stream presents as client certificate. The files live in a temporary
    directory removed by :meth:`close`; they are not evidence.
Verdicts
    As for the raw actor: ``Failed`` when the target broke the rule (e.g. accepted what
    ``expect: failure`` says it must refuse, or refused what must succeed), ``Unsupported`` for
    a missing optional feature (SASL EXTERNAL not offered to a valid certificate),
    ``HarnessError`` when the check could not be carried out (no answer to the negotiation in
    time, no peer identity in the run).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import ssl
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

from harness.actors import ActorContext, PeerIdentity, register
from harness.protocols.xmpp.base import XmppActor
from harness.protocols.xmpp.dialback import DB_RESULT_TAG, KeyBook, db_result, stream_header
from harness.protocols.xmpp.elements import (
    NS_CLIENT,
    NS_DIALBACK,
    NS_DIALBACK_FEATURE,
    NS_SERVER,
    STREAM_ERROR_TAG,
    check_well_formed,
    condition,
    local,
    offered_mechanisms,
    serialize,
)
from harness.protocols.xmpp.inbox import (
    EXPECT_NOTHING_SCHEMA,
    EXPECT_SCHEMA,
    WITHIN_SCHEMA,
    Inbox,
    SendText,
    params_schema,
)
from harness.protocols.xmpp.match import CLOSED
from harness.protocols.xmpp.ports import PORT_SCHEMA, resolve_port
from harness.protocols.xmpp.raw import RawXmppActor
from harness.protocols.xmpp.reconnection import COUNT_CONNECTIONS_SCHEMA, LISTEN_SCHEMA, judge
from harness.protocols.xmpp.s2s_listener import ConnectionLog, S2sListener, server_context
from harness.protocols.xmpp.tls import client_context
from harness.verdict import Failed, HarnessError, Observation

CERTIFICATES = ("valid", "untrusted", "expired", "wrong-name", "none")
REFUSALS = ("fail", "expect", "allow")
WRONG_NAME = "wrong-name.invalid"  # RFC 6761: a name no target can be
_SERVER_PREFIX = f"{{{NS_SERVER}}}"


def as_client_namespace(el: ET.Element) -> ET.Element:
    """``el`` with every ``jabber:server`` tag put in ``jabber:client`` (in place), so that one
    pattern matches a stanza on either kind of stream."""
    for item in el.iter():
        if item.tag.startswith(_SERVER_PREFIX):
            item.tag = f"{{{NS_CLIENT}}}{item.tag[len(_SERVER_PREFIX) :]}"
    return el


class PeerInbox(Inbox):
    """The actor's one inbox over its outgoing stream and every incoming one (see the module
    documentation): restarts and reconnects keep the incoming stanzas."""

    def __init__(self) -> None:
        super().__init__()
        self._incoming: set[int] = set()  # id() of queued elements that came on an incoming stream

    def put(self, el: ET.Element, ends_stream: bool = True) -> None:
        super().put(as_client_namespace(el), ends_stream)

    def put_incoming(self, el: ET.Element) -> None:
        self._incoming.add(id(el))
        self.put(el, ends_stream=False)  # "ended" is about the outgoing stream only

    def consume(self, el: ET.Element) -> None:
        super().consume(el)
        self._incoming.discard(id(el))

    def new_stream(self) -> None:
        self.pending[:] = [el for el in self.pending if id(el) in self._incoming]

    def reset(self) -> None:
        self.new_stream()
        self.closed = False
        self.stream_ended = False


@register
class PeerServerActor(RawXmppActor):
    """A remote XMPP server played by the harness. See the module documentation."""

    kind = "xmpp-peer-server"
    plays_server = True
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "certificate": {
                "enum": list(CERTIFICATES),
                "default": "valid",
                "description": "the server certificate the peer's listener presents (none: no TLS offered)",
            },
            "incoming": {
                "enum": ["serve", "refuse"],
                "default": "serve",
                "description": "refuse: the listener closes every connection at once (a peer that "
                "refuses the target; count-connections measures how the target reconnects)",
            },
        },
    }
    deciding_actions: ClassVar[frozenset[str]] = XmppActor.deciding_actions | {
        "count-connections",
        "answers-alike",
    }
    actions: ClassVar[dict[str, dict[str, Any]]] = {
        "connect": params_schema(
            {
                "tls": {"enum": ["starttls", "none"], "default": "starttls"},
                "port": {
                    **PORT_SCHEMA,
                    "description": "port number or name (default: the target's s2s port)",
                },
                "from": {
                    "type": "string",
                    "description": "stream 'from' (default: the peer's domain; another target's domain "
                    "impersonates it; '' omits it)",
                },
                "to": {
                    "type": "string",
                    "description": "stream 'to' (default: the target's domain; '' omits it)",
                },
                "certificate": {
                    "enum": list(CERTIFICATES),
                    "default": "valid",
                    "description": "client certificate presented in TLS "
                    "(valid: the run's CA, for the 'from' domain)",
                },
                "require_tls": {"type": "boolean", "default": True},
                "refusal": {
                    "enum": list(REFUSALS),
                    "default": "fail",
                    "description": "the target ends the connection during connect (refuses the TLS "
                    "handshake, or a stream error or close instead of stream features): a failure "
                    "(fail), required (expect), or either (allow); after a refusal, later steps see "
                    "the closed connection and authenticate with expect: failure passes",
                },
                "within": WITHIN_SCHEMA,
            }
        ),
        "authenticate": params_schema(
            {
                "method": {"enum": ["dialback", "external", "none"]},
                "key": {
                    "enum": ["valid", "invalid"],
                    "default": "valid",
                    "description": "dialback: the XEP-0185 key, or random bytes the peer will not vouch for",
                },
                "authzid": {
                    "type": "string",
                    "description": "external: authorization identity "
                    "(default: the stream's 'from'; '' sends '=')",
                },
                "expect": {"enum": ["success", "failure", "any"], "default": "success"},
                "refusal_alone": {
                    "type": "boolean",
                    "default": False,
                    "description": "a refusal without an attempt (method not offered, connection closed) is "
                    "evidence even if this peer was never accepted by the method: for rules that the method "
                    "must not succeed, whatever the reason (e.g. no dialback under a certificate policy)",
                },
                "within": WITHIN_SCHEMA,
            },
            ["method"],
        ),
        "send": RawXmppActor.actions["send"],
        "expect": EXPECT_SCHEMA,
        "expect-nothing": EXPECT_NOTHING_SCHEMA,
        "disconnect": RawXmppActor.actions["disconnect"],
        "listen": LISTEN_SCHEMA,
        "count-connections": COUNT_CONNECTIONS_SCHEMA,
        "answers-alike": RawXmppActor.actions["answers-alike"],
    }

    def __init__(self, ctx: ActorContext, options: dict[str, Any]) -> None:
        if ctx.peer is not None:  # the outgoing stream comes from the peer's own address
            ctx = dataclasses.replace(ctx, source_address=ctx.peer.address)
        super().__init__(ctx, options)
        self._stream_log = self._log
        self._log = ConnectionLog(self._stream_log, "outgoing")  # type: ignore[assignment]
        self._inbox: PeerInbox = PeerInbox()
        self._keys = KeyBook()
        self._listener: S2sListener | None = None
        self._listening_since = 0.0  # loop time the listener started
        self._from: str = ""  # the outgoing stream's 'from' ("" omits it)
        self._certificate = "valid"  # the outgoing connection's client certificate
        self._refusal = "fail"  # while connect runs: what a refusal of the connection means
        self._refused: str | None = None  # how the target refused the last connect
        # methods by which the target authenticated this actor in this item: a later refusal
        # without an attempt (EXTERNAL not offered, the connection closed) is evidence only then
        self._accepted: set[str] = set()
        self._refusal_alone = False  # authenticate's refusal_alone, for the refusal it observes
        self._cert_dir: Path | None = None
        self._certs: dict[tuple[str, str], tuple[Path, Path]] = {}

    @classmethod
    def param_problems(cls, action: str, params: dict[str, Any]) -> list[str]:
        problems = super().param_problems(action, params)
        if action == "authenticate":
            method = params.get("method")
            if "key" in params and method != "dialback":
                problems.append(f"key: only for method dialback, not {method}")
            if "authzid" in params and method != "external":
                problems.append(f"authzid: only for method external, not {method}")
        return problems

    # -- the peer's identity, certificates and listener --------------------------------------------

    def _peer(self) -> PeerIdentity:
        if self.ctx.peer is None:
            raise HarnessError(f"actor {self.ctx.name} plays a server, but the run gave it no peer domain")
        return self.ctx.peer

    def _certificate_files(self, choice: str, domain: str) -> tuple[Path, Path] | None:
        """The (certificate, key) files of a certificate choice for ``domain`` (None: none)."""
        if choice == "none":
            return None
        name = WRONG_NAME if choice == "wrong-name" else domain
        if (choice, name) not in self._certs:
            if self.ctx.pki is None:
                raise HarnessError(f"actor {self.ctx.name} plays a server, but the run gave it no PKI")
            if self._cert_dir is None:
                self._cert_dir = Path(tempfile.mkdtemp(prefix="interop-peer-"))
            self._certs[(choice, name)] = self.ctx.pki.server_certificate(
                name, self._cert_dir / choice, trusted=choice != "untrusted", expired=choice == "expired"
            )
        return self._certs[(choice, name)]

    def _deliver(self, el: ET.Element) -> None:
        self.reached_server = True  # a target connected to the peer: the actor did meet a server
        self._inbox.put_incoming(el)

    async def _listen(self) -> None:
        if self._listener is not None:
            return
        peer = self._peer()
        files = self._certificate_files(self.options.get("certificate", "valid"), peer.domain)
        tls = server_context(*files, self.ctx.target.ca_file, self.ctx.keylog_file) if files else None
        listener = S2sListener(
            peer.domain,
            self._keys,
            self._deliver,
            self._stream_log,
            tls,
            self.ctx.step_timeout,
            refuse=self.options.get("incoming") == "refuse",
        )
        await listener.start(peer.address)
        self._listener = listener
        self._listening_since = asyncio.get_running_loop().time()

    async def listen(self) -> None:
        """Start the listener (every action does; this one does nothing else): the time from which
        ``count-connections`` counts."""

    async def count_connections(self, within: float, backoff: bool = True) -> Observation:
        assert self._listener is not None  # perform() started it
        end = self._listening_since + within
        await asyncio.sleep(max(0.0, end - asyncio.get_running_loop().time()))  # the window itself
        times = [t for t in self._listener.accepted_at if t <= end]
        return judge(times, self._listening_since, within, backoff)

    async def perform(self, action: str, params: dict[str, Any]) -> Observation | None:
        if action in self.actions:
            await self._listen()
        if "from" in params:  # a Python keyword: the parameter is ``from_domain`` here
            params = {("from_domain" if k == "from" else k): v for k, v in params.items()}
        return await super().perform(action, params)

    def _require_connection(self, action: str) -> None:
        if action in ("expect", "expect-nothing") and self._listener is not None:
            return  # incoming stanzas can arrive without an outgoing stream
        super()._require_connection(action)

    # -- the outgoing stream -------------------------------------------------------------------

    def _stream_header(self, to: str | None) -> str:
        return stream_header(self._from, self.ctx.target.domain if to is None else to)

    def _resolve_port(self, tls: str, port: int | str | None) -> int:
        return resolve_port(self.ctx.target, tls, "s2s" if port is None else port)

    def _tls_context(
        self, tls_min: str | None, tls_max: str | None, client_cert: bool, alpn: list[str] | None
    ) -> ssl.SSLContext:
        tls_ctx = client_context(self.ctx, tls_min, tls_max, False, alpn)
        files = self._certificate_files(self._certificate, self._from or self._peer().domain)
        if files is not None:
            tls_ctx.load_cert_chain(str(files[0]), str(files[1]))
        self._client_cert_used = files is not None
        return tls_ctx

    async def _start_tls(self, tls_ctx: ssl.SSLContext, deadline: float, expect_failure: bool) -> bool:
        done = await super()._start_tls(tls_ctx, deadline, expect_failure or self._refusal != "fail")
        if not done:
            self._refused = "refused the TLS handshake"
        return done

    async def _open_stream(
        self, to: str | None, deadline: float, expect_stream_error: bool = False, restart: bool = False
    ) -> bool:
        """As the raw actor's; while ``connect`` runs with ``refusal`` expect or allow, a stream
        error or close instead of features returns False (refused) instead of failing."""
        if self._refusal == "fail":
            return await super()._open_stream(to, deadline, expect_stream_error, restart)
        try:
            return await super()._open_stream(to, deadline, False, restart)
        except Failed as exc:
            if not self._conn_lost and self._inbox.find(lambda e: e.tag == STREAM_ERROR_TAG) is None:
                raise
            self._refused = exc.reason
            return False

    async def connect(
        self,
        tls: str = "starttls",
        port: int | str | None = None,
        from_domain: str | None = None,
        to: str | None = None,
        certificate: str = "valid",
        require_tls: bool = True,
        refusal: str = "fail",
        within: float | None = None,
    ) -> Observation:
        if tls not in ("starttls", "none"):
            raise HarnessError(f"connect: tls must be starttls or none, not {tls!r}")
        if certificate not in CERTIFICATES:
            raise HarnessError(
                f"connect: certificate must be one of {', '.join(CERTIFICATES)}, not {certificate!r}"
            )
        if refusal not in REFUSALS:
            raise HarnessError(f"connect: refusal must be one of {', '.join(REFUSALS)}, not {refusal!r}")
        if self._writer is not None and not self._conn_lost:
            raise HarnessError(f"actor {self.ctx.name} is already connected; disconnect first")
        self._from = self._peer().domain if from_domain is None else from_domain
        self._certificate = certificate
        self._refusal, self._refused = refusal, None
        try:
            await super().connect(
                tls=tls,
                port=port,
                client_cert=certificate != "none",
                to=to,
                require_tls=require_tls,
                within=within,
            )
        finally:
            self._refusal = "fail"
        if self._refused is not None:
            self._log.event(f"the target refused the connection (refusal: {refusal}): {self._refused}")
            return Observation(
                f"the target refused the connection with certificate {certificate}: {self._refused}"
            )
        if refusal == "expect":
            raise Failed(
                f"target accepted the connection from {self._from or 'no domain'} with certificate "
                f"{certificate} instead of refusing it"
            )
        return self._opened()

    async def send(self, xml: str | None = None, raw: bool = False, hex: str | None = None) -> None:
        if xml is not None and not raw and xml.strip() != "</stream:stream>":
            # the stream header declares db:, so a scenario may use the prefix without declaring it
            check_well_formed(
                f"<s2s xmlns:db='{NS_DIALBACK}'>{xml}</s2s>", "send", "; set raw: true to send it anyway"
            )
            raw = True
        await super().send(xml=xml, raw=raw, hex=hex)

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(  # type: ignore[override]
        self,
        method: str,
        key: str = "valid",
        authzid: str | None = None,
        expect: str = "success",
        refusal_alone: bool = False,
        within: float | None = None,
    ) -> Observation | None:
        self._require_connection("authenticate")
        self._refusal_alone = refusal_alone
        if method not in ("dialback", "external", "none"):
            raise HarnessError(f"authenticate: method must be dialback, external or none, not {method!r}")
        if expect not in ("success", "failure", "any"):
            raise HarnessError(f"authenticate: expect must be success, failure or any, not {expect!r}")
        if self._conn_lost:
            if expect == "success":
                raise Failed(f"cannot authenticate: the connection is closed ({self._closed_summary()})")
            self._log.event(f"{method}: the target already closed the connection; that is a refusal")
            return self._refused_without_attempt(
                method, f"the target had closed the connection ({self._closed_summary()})"
            )
        if method == "none":
            self._log.event("authenticate: none (the stream stays unauthenticated)")
            return None
        if method == "external":
            if expect != "success" and "EXTERNAL" not in offered_mechanisms(self.features):
                # not offered is refused; an initiator does not try what was not offered
                self._log.event("SASL EXTERNAL not offered: refused without an attempt")
                return self._refused_without_attempt(
                    method, f"SASL EXTERNAL not offered with certificate {self._certificate}"
                )
            seen = await super().authenticate(
                mechanism="EXTERNAL",
                authzid=self._from if authzid is None else authzid,
                expect=expect,
                bind=False,
                within=within,
            )
            if self.authenticated:  # RFC 6120 6.4.6: a new stream after SASL success
                self._accepted.add(method)
                await self._open_stream(self._to, self._deadline(within), restart=True)
            return seen
        return await self._dialback(key == "valid", expect, self._deadline(within))

    def _dialback_offered(self) -> bool:
        """Whether the stream features offer dialback (XEP-0220 §2.1; no features: assume so)."""
        if self.features is None:
            return True
        return self.features.find(f"{{{NS_DIALBACK_FEATURE}}}dialback") is not None

    def _refused_without_attempt(self, method: str, how: str) -> Observation:
        """A refusal the actor did not provoke by trying: evidence that the tested difference (the
        certificate, the key, TLS) was refused only when the target accepted this actor by the
        same method earlier in the item; otherwise it may refuse everyone (not put to the test)."""
        if method in self._accepted:
            return Observation(f"{how}; the target accepted {method} from this peer on an earlier connection")
        if self._refusal_alone:
            return Observation(f"{how} (refusal_alone: the rule is that {method} does not succeed)")
        return Observation(
            f"{how}, and nothing shows the target accepts {method} from this peer at all "
            "(an earlier authenticate with expect: success on a proper connection would)",
            exercised=False,
        )

    async def _dialback(self, valid_key: bool, expect: str, deadline: float) -> Observation:
        """XEP-0220 §2.1: ``<db:result/>`` with a key; the target calls back the ``from``
        domain's server (this actor's listener, or the real server of an impersonated domain)
        and answers ``<db:result type=.../>``. The answer stays queued for ``expect``."""
        stream_id = self.header.get("id") if self.header is not None else None
        if not stream_id:
            raise HarnessError("cannot make a dialback key: the target's stream header has no id")
        sender = self._from or self._peer().domain
        receiver = self._to or self.ctx.target.domain
        key = self._keys.issue(sender, receiver, stream_id, valid=valid_key)
        earlier = {id(e) for e in self._inbox.pending}
        await self._send_text(db_result(sender, receiver, key), deadline)
        answer = await self._wait_for(
            lambda e: (
                id(e) not in earlier
                and (
                    (e.tag == DB_RESULT_TAG and e.get("type") is not None)
                    or e.tag in (STREAM_ERROR_TAG, CLOSED)
                )
            ),
            deadline,
        )
        which = "a valid key" if valid_key else "a key its server does not vouch for"
        if answer is None and not self._conn_lost:
            if expect == "failure" and not self._dialback_offered():
                # a receiver that does not offer dialback (XEP-0220 §2.1) need not answer it
                return self._refused_without_attempt(
                    "dialback", f"dialback not offered, and <db:result/> not answered ({which})"
                )
            if expect == "failure":  # XEP-0220 2.3: the receiving server answers, valid or not
                raise Failed(
                    f"target did not answer dialback for {sender} with {which} within the deadline; "
                    f"got {self._received_summary()}"
                )
            raise HarnessError(f"target did not answer dialback in time; got {self._received_summary()}")
        if answer is not None and answer.tag == DB_RESULT_TAG:
            kind = answer.get("type")
            outcome = "success" if kind == "valid" else "failure"
            error = next((child for child in answer if local(child.tag) == "error"), None)
            what = f"type={kind!r}" + (f" ({condition(error)})" if error is not None else "")
        else:
            outcome = "ended"
            what = (
                f"stream error {condition(answer)}"
                if answer is not None and answer.tag == STREAM_ERROR_TAG
                else f"connection closed ({self._closed_summary()})"
            )
        self._log.event(f"dialback for {sender} with {which}: {what}")
        if outcome == "success":
            self.authenticated = True
            self._accepted.add("dialback")
            if expect == "failure":
                raise Failed(f"target accepted dialback for {sender} with {which}")
        elif expect == "success":
            raise Failed(f"target refused dialback for {sender} with {which}: {what}")
        return Observation(f"dialback for {sender} with {which}: {what}")

    # -- barriers (expect-nothing, after:) --------------------------------------------------------

    def _barrier_sender(self, what: str) -> SendText:
        """A barrier ping needs the outgoing stream, from the actor's own domain (where the answer
        comes back to), with that ``from``."""
        if self._writer is None:
            raise HarnessError(f"{what}: the barrier ping needs the outgoing stream; connect first")
        if self._from != self._peer().domain:
            raise HarnessError(
                f"{what}: the answer to a barrier ping from {self._from or 'no domain'} goes to that "
                "domain's own server, not to this actor; use barrier none once the connection is closed"
            )
        return self._send_barrier

    async def _send_barrier(self, text: str, deadline: float) -> None:
        """The inbox's barrier ping with the ``from`` every s2s stanza needs (RFC 6120 8.1.2.1)."""
        el = ET.fromstring(text)
        el.set("from", self._from)
        await self._send_text(serialize(el, in_scope=""), deadline)

    # -- the end -------------------------------------------------------------------------------

    async def close(self) -> None:
        try:
            if self._listener is not None:
                await self._listener.close()
        finally:
            try:
                await super().close()
            finally:
                if self._cert_dir is not None:
                    shutil.rmtree(self._cert_dir, ignore_errors=True)
