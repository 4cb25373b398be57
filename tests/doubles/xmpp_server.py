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
    e.g. :mod:`tests.doubles.xmpp_muc`), each a :class:`~tests.doubles.xmpp_service.DoubleService`
    registered with :func:`~tests.doubles.xmpp_service.service` and with its flaws added to
    :data:`FLAWS`. A service sees every stanza of a bound session before the core does (and may
    handle it), adds identities and features to the disco#info the core answers, may refuse the
    delivery of any stanza to a session (a block list), and hears when a session ends. The
    services run in the order of their :attr:`~tests.doubles.xmpp_service.DoubleService.order`,
    lowest first (blocking goes first: a block must stop a stanza before any other service
    answers it). This module loads every ``xmpp_*`` module beside it, so it names no service.

Flaws
    ``DoubleConfig(flaws={...})`` takes names from :data:`FLAWS`; each breaks one rule, and the
    proofs (``tests/proofs``) show which scenario catches it.

Knobs for the actor unit tests (``tests/unit/test_xmpp_*.py``) are fields of
:class:`DoubleConfig` too (mechanisms, channel binding types, TLS minimum, no ping or bind
answers). The server records the clients' addresses (``peers``) and what they sent
(``received``), and writes what it did to ``config.log_file`` when one is given.

Modules
    This module listens, runs a connection's stream and TLS state machine (:class:`_Connection`)
    and a double on a thread of its own (:class:`DoubleThread`), and is where the public names
    of the others are imported from. Every other concern is a module beside it, its server's
    side a base class of :class:`XmppDouble` and its connection's side a mixin of
    :class:`_Connection`:

    ``xmpp_config``        :data:`FLAWS` and :class:`DoubleConfig`
    ``xmpp_pki``           the certificates, and what the double reads from certificates
    ``xmpp_xml``           namespaces, JIDs and serialization
    ``xmpp_service``       :class:`~tests.doubles.xmpp_service.DoubleService` and its registry
    ``xmpp_connection``    a connection's io and its replies to stanzas
    ``xmpp_routing``       the bound sessions, delivery to them, and the log
    ``xmpp_sasl``          SASL: PLAIN, SCRAM with channel binding, EXTERNAL
    ``xmpp_bind``          resource binding, and what an unbound stream may send
    ``xmpp_stanzas``       a bound session's stanzas: messages, presence, IQs
    ``xmpp_roster``        rosters (RFC 6121 §2)
    ``xmpp_presence``      presence (RFC 6121 §4)
    ``xmpp_subscription``  subscriptions (RFC 6121 §3)
    ``xmpp_robustness``    bad input from a client (stream errors for it) and serving on after it

Two PKIs: :func:`make_pki` (quick EC certificates of its own, for the unit tests) and
:func:`pki_from_ca` (the harness's :class:`~harness.environment.pki.CertificateAuthority`, as a
run would issue them, plus a certificate for a wrong name).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import os
import ssl
import threading
import xml.etree.ElementTree as ET
from typing import Any, Self

from tests.doubles import xmpp_robustness as robustness
from tests.doubles.xmpp_bind import BindMixin
from tests.doubles.xmpp_config import FLAWS, DoubleConfig
from tests.doubles.xmpp_connection import _Close, _Restart
from tests.doubles.xmpp_legacy_auth import LegacyAuthMixin
from tests.doubles.xmpp_pki import Pki, load_cert_der, make_pki, pki_from_ca
from tests.doubles.xmpp_service import SERVICES, load_services
from tests.doubles.xmpp_stanzas import StanzaMixin
from tests.doubles.xmpp_subscription import SubscriptionRouter
from tests.doubles.xmpp_xml import NS_BIND, NS_CLIENT, NS_SASL, NS_SASL_CB, NS_STREAM, NS_TLS

__all__ = ["FLAWS", "DoubleConfig", "DoubleThread", "Pki", "XmppDouble", "make_pki", "pki_from_ca"]


class XmppDouble(SubscriptionRouter):
    """``async with XmppDouble(pki, DoubleConfig(...)) as server:`` listens on ``host``;
    ``server.ports`` has ``c2s`` (and ``c2s_tls`` with ``direct_tls``). For a double on its own
    thread (the engine runs items in ``asyncio.run``), see :class:`DoubleThread`."""

    def __init__(self, pki: Pki, config: DoubleConfig | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(config or DoubleConfig())
        self.pki = pki
        self.host = host
        self.ports: dict[str, int] = {}
        self.received: list[bytes] = []  # everything the clients sent (decrypted)
        self.peers: list[tuple[str, int]] = []  # (address, port) of every client connection
        self.services = [cls(self) for cls in sorted(SERVICES, key=lambda cls: cls.order)]
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = 0
        self._secret = os.urandom(16)  # for the fake salts of unknown SCRAM users
        self._salts: dict[str, bytes] = {}

    # -- accounts ---------------------------------------------------------------------------------

    def add_account(self, user: str, password: str) -> None:
        """Provision (or reset) an account; safe from another thread."""
        self.config.accounts[user] = password

    def salt(self, user: str) -> bytes:
        if user not in self.config.accounts:  # a stable fake: unknown users look like known ones
            return hmac.new(self._secret, user.encode(), "sha256").digest()[:16]
        return self._salts.setdefault(user, os.urandom(16))

    # -- TLS ----------------------------------------------------------------------------------------

    def ssl_context(self, alpn: bool = False, wrong_name: bool = False) -> ssl.SSLContext:
        cfg = self.config
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if wrong_name or cfg.has("wrong-cert-name"):
            if self.pki.wrong_cert_file is None or self.pki.wrong_key_file is None:
                raise ValueError("this PKI has no wrong-name certificate")
            ctx.load_cert_chain(str(self.pki.wrong_cert_file), str(self.pki.wrong_key_file))
        elif cfg.has("cert-without-dns-id"):
            if self.pki.ca is None:
                raise ValueError("this PKI has no CA to issue a certificate without a DNS-ID")
            issued = self.pki.ca.issue_server(cfg.domain, self.pki.ca_file.parent / "no-dns-id", dns_id=False)
            ctx.load_cert_chain(str(issued.chain_path), str(issued.key_path))
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
            return load_cert_der(self.pki.wrong_cert_file)
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
            if robustness.refuses(self):
                conn.log("closing the new connection at once (the double stopped serving)")
                return
            await conn.run()
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError) as exc:
            self.log(f"#{conn.number} connection error: {type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of the double: visible in its log, not swallowed silently
            self.log(f"#{conn.number} DOUBLE BUG: {type(exc).__name__}: {exc}")
            raise
        finally:
            robustness.release(conn)
            for svc in self.services:
                await svc.on_unbind(conn)
            conn.unbind()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
            self.log(f"#{conn.number} closed")


class _Connection(LegacyAuthMixin, BindMixin, StanzaMixin):
    """A client connection: the stream and TLS state machine of RFC 6120 §4-§5 that hands SASL,
    binding and stanzas to its mixins (:mod:`tests.doubles.xmpp_sasl`, ...)."""

    async def run(self) -> None:
        while True:
            parser = ET.XMLPullParser(events=("start", "end", "comment", "pi"))
            depth = 0
            root = None
            try:
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        return
                    self.server.received.append(data)
                    self.last_data = data
                    await robustness.wait_turn(self)
                    try:
                        parser.feed(data)
                        events = list(parser.read_events())
                    except ET.ParseError as exc:
                        self.log(f"not well-formed: {exc}")
                        await robustness.bad_input(self, "not-well-formed")
                        return
                    for event, el in events:
                        if event in ("comment", "pi"):
                            if await robustness.restricted(self, event):
                                return
                        elif event == "start":
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
                    robustness.partial(self, depth)
            except _Restart:
                continue
            except _Close:
                return

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
            f"{stream_id} from='{cfg.domain}' version='{robustness.answered_version(self, el)}' xml:lang='en'>"
        )
        if el.tag != f"{{{NS_STREAM}}}stream" and not cfg.has("accept-any-stream-namespace"):
            await robustness.bad_input(self, "invalid-namespace")
            raise _Close
        problem = robustness.header_problem(self, el)
        if problem:
            await robustness.bad_input(self, problem)
            raise _Close
        if el.get("to") not in (None, cfg.domain) and not cfg.has("serve-unknown-host"):
            await robustness.bad_input(self, "host-unknown")
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
            features.append(self.legacy_auth_feature() + self.register_feature())
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
            if self.jid is None and self.is_legacy_auth(el) and await self.on_legacy_auth(el):
                return
            if self.jid is None:
                await self.on_stanza_before_bind(el)
            else:
                await self.on_stanza(el)
        elif self.jid is not None and el.get("to") and self.cfg.has("route-arbitrary-elements"):
            self.log(f"flaw route-arbitrary-elements: delivering <{el.tag}> to {el.get('to')}")
            await self.server.deliver(el, self.server.sessions_for(el.get("to", "")))
        else:
            await robustness.bad_input(self, "unsupported-stanza-type")
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


# every double runs every service; they add their flaws to FLAWS as they are imported
load_services()
