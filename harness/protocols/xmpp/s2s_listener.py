"""The incoming side of the peer-server actor: a server-to-server listener on the peer's own
address, port 5269, that targets connect to as they would to any remote server.

A target connects to deliver stanzas addressed to the peer's domain (messages, iq results such
as the answer to an ``expect-nothing`` barrier ping), or to verify a dialback key the actor sent.
Per connection:

* the target's stream header is answered with one of ours (``from`` the peer's domain, a fresh
  ``id``); a stream to another domain ends with the ``host-unknown`` stream error;
* before TLS only ``<starttls><required/></starttls>`` is offered (with no server certificate,
  actor option ``certificate: none``, there is no TLS and dialback is offered at once);
* TLS presents the certificate the actor chose and asks for the target's client certificate,
  verified against the run's CA: every target's certificate comes from it, and one that does
  not chain to it fails the handshake;
* after TLS: SASL EXTERNAL (XEP-0178), offered when the target presented a certificate, and
  accepted when that certificate names (DNS SAN) the domain asked for (the authorization
  identity, else the stream's ``from``); dialback (``urn:xmpp:features:dialback``) is offered
  as well;
* a target's ``<db:result/>`` is answered ``valid`` at once, without calling back its
  authoritative server: the scenarios check what the target does, and the listener trusts any
  target as the domain it claims (a documented shortcut);
* a target's ``<db:verify/>`` is answered from the actor's :class:`~.dialback.KeyBook`:
  ``valid`` iff the actor sent exactly that key for that (from, to, id);
* every other top-level element (the stanzas) goes to the actor (``deliver``) and nothing is
  answered automatically (no iq result): a scenario's ``expect`` step sees it.

Everything goes to the actor's stream log, each line labelled ``[incoming #n]``
(:class:`ConnectionLog`); the first line of a connection names the target's address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from harness.protocols.xmpp.dialback import (
    DB_RESULT_TAG,
    DB_VERIFY_TAG,
    DIALBACK_FEATURE,
    KeyBook,
    db_result_answer,
    db_verify_answer,
    stream_header,
)
from harness.protocols.xmpp.elements import NS_SASL, NS_STREAM_ERRORS, NS_TLS, STREAM_ERROR_TAG, condition
from harness.protocols.xmpp.parser import StreamParser
from harness.protocols.xmpp.streamlog import StreamLog
from harness.protocols.xmpp.tls import describe_certificate, describe_handshake_error
from harness.verdict import HarnessError

#: Targets ignore SRV records for the run's ``.test`` names (docs/federation-notes.md), so the
#: peer listens where a server without SRV records is looked for (RFC 6120 3.2.2).
S2S_PORT = 5269

# What handling one element leaves the connection to do.
Next = Literal["continue", "restart", "end"]


class ConnectionLog:
    """One connection's view of the actor's stream log: every line names the connection, so one
    log with several connections (outgoing, incoming #1, #2...) reads unambiguously."""

    def __init__(self, log: StreamLog, label: str) -> None:
        self._log = log
        self._label = f"[{label}] "

    @property
    def path(self) -> Path:
        return self._log.path

    def sent(self, text: str) -> None:
        self._log.sent(self._label + text)

    def received(self, text: str) -> None:
        self._log.received(self._label + text)

    def event(self, text: str) -> None:
        self._log.event(self._label + text)

    def add_secret(self, secret: str | None) -> None:
        self._log.add_secret(secret)

    def close(self) -> None:
        self._log.close()


def server_context(cert: Path, key: Path, ca_file: Path | None, keylog_file: Path | None) -> ssl.SSLContext:
    """The listener's TLS: the chosen server certificate; the target's client certificate asked
    for and verified against ``ca_file`` (the run's CA; None: not asked for).

    No TLS 1.3 session tickets (a common server default): nothing resumes a peer session, and
    at least one packaged server's outgoing s2s drops a stream that receives tickets (a
    clear-text ``</stream:stream>`` after the handshake, then a reconnect, in a loop; see
    docs/findings.md), which would hide everything else it does."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.num_tickets = 0
    tls.load_cert_chain(str(cert), str(key))
    if ca_file is not None:
        tls.load_verify_locations(cafile=str(ca_file))
        tls.verify_mode = ssl.CERT_OPTIONAL
    if keylog_file is not None:
        Path(keylog_file).parent.mkdir(parents=True, exist_ok=True)
        tls.keylog_filename = str(keylog_file)
    return tls


class S2sListener:
    """Accepts the targets' s2s connections to the peer's domain (see the module documentation)."""

    def __init__(
        self,
        domain: str,
        keys: KeyBook,
        deliver: Callable[[ET.Element], None],
        log: StreamLog,
        tls: ssl.SSLContext | None,
        timeout: float,
        refuse: bool = False,
    ) -> None:
        self.domain = domain
        self.refuse = refuse  # close every connection at once, before a byte (a peer that refuses)
        self.accepted_at: list[float] = []  # loop time of each incoming connection
        self.keys = keys
        self.deliver = deliver
        self.log = log
        self.tls = tls
        self.timeout = timeout  # for every write and TLS handshake
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._streams: dict[asyncio.Task[None], _IncomingStream] = {}

    async def start(self, address: str, port: int = S2S_PORT) -> None:
        try:
            self._server = await asyncio.start_server(self._accept, address, port)
        except OSError as exc:
            raise HarnessError(
                f"cannot listen on {address}:{port} for the peer domain {self.domain}: {exc}"
            ) from None
        tls = "STARTTLS required" if self.tls is not None else "no TLS (certificate: none)"
        tls = "every connection closed at once" if self.refuse else tls
        self.log.event(f"[listener] listening on {address}:{port} for {self.domain} ({tls})")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.accepted_at.append(asyncio.get_running_loop().time())
        if self.refuse:
            host = (writer.get_extra_info("peername") or ("an address already gone",))[0]
            self.log.event(
                f"[incoming #{self.connections}] connection from {host}: closed at once (incoming: refuse)"
            )
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._streams[task] = _IncomingStream(self, self.connections, reader, writer)
        try:
            await self._streams[task].run()
        except asyncio.CancelledError:
            pass  # ended by close(); asyncio would report a cancelled connection task as an error
        finally:
            del self._streams[task]

    async def close(self, grace: float = 2.0) -> None:
        """Stop listening and end every incoming connection: each stream is closed, and what
        has not ended within ``grace`` seconds is cut."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for stream in self._streams.values():
            stream.end()
        tasks = list(self._streams)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()
        self.log.event(f"[listener] closed after {self.connections} incoming connection(s)")


class _IncomingStream:
    """One target's connection to the listener: answers the negotiation, hands on the stanzas."""

    def __init__(
        self, listener: S2sListener, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.log = ConnectionLog(listener.log, f"incoming #{number}")
        self.parser = StreamParser()
        self.remote: str | None = None  # the 'from' of the target's stream header
        self.opened = False  # our stream header is sent
        self.secured = False
        self.sasl_done = False
        self.ending = False  # the actor closes the connection

    async def run(self) -> None:
        host, port = (self.writer.get_extra_info("peername") or ("an address already gone", 0))[:2]
        self.log.event(f"connection from {host}:{port}")
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self.log.event("connection closed" + ("" if self.ending else " by the target"))
                    return
                for kind, el, raw in self.parser.feed(data):
                    if raw.strip():
                        self.log.received(raw.strip())
                    step = await self._handle(kind, el)
                    if step == "end":
                        return
                    if step == "restart":  # the parser was reset: nothing else of this read belongs to it
                        break
        except asyncio.CancelledError:
            self.log.event("connection cut (the actor ends)")
            raise
        except (OSError, EOFError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            # once the actor closed, what the target still sends (after our close_notify) is moot
            self.log.event(
                "connection closed" if self.ending else f"connection lost: {type(exc).__name__}: {exc}"
            )
        finally:
            if self.writer.transport is not None:  # None once start_tls failed midway (CPython 3.11)
                self.writer.close()

    def end(self) -> None:
        """Close our stream and the connection, without waiting for the target (the actor ends)."""
        if self.ending or self.writer.transport is None or self.writer.is_closing():
            return
        self.ending = True
        if self.opened:
            self.log.sent("</stream:stream>")
            self.writer.write(b"</stream:stream>")
        self.writer.close()

    async def _send(self, text: str) -> None:
        self.log.sent(text)
        self.writer.write(text.encode("utf-8"))
        async with asyncio.timeout(self.listener.timeout):
            await self.writer.drain()

    async def _stream_error(self, name: str) -> None:
        await self._send(f"<stream:error><{name} xmlns='{NS_STREAM_ERRORS}'/></stream:error></stream:stream>")

    async def _handle(self, kind: str, el: ET.Element | None) -> Next:
        if kind == "junk":
            return "continue"
        if kind == "error":
            self.log.event(f"the target sent XML that is not well-formed: {self.parser.broken}")
            await self._stream_error("not-well-formed")
            return "end"
        assert el is not None
        if kind == "header":
            return await self._open(el)
        if kind == "close":
            self.log.event("the target closed its stream")
            await self._send("</stream:stream>")
            return "end"
        if el.tag == f"{{{NS_TLS}}}starttls":
            return await self._starttls()
        if el.tag == f"{{{NS_SASL}}}auth":
            return await self._auth(el)
        if el.tag == DB_RESULT_TAG and el.get("type") is None:
            await self._dialback_result(el)
        elif el.tag == DB_VERIFY_TAG and el.get("type") is None:
            await self._dialback_verify(el)
        elif el.tag == STREAM_ERROR_TAG:
            self.log.event(f"the target sent the stream error {condition(el)}")
        else:
            self.listener.deliver(el)
        return "continue"

    async def _open(self, header: ET.Element) -> Next:
        self.remote = header.get("from")
        to = header.get("to")
        await self._send(stream_header(self.listener.domain, self.remote, secrets.token_hex(8)))
        self.opened = True
        if to and to != self.listener.domain:
            self.log.event(f"stream to {to}, which this peer does not serve")
            await self._stream_error("host-unknown")
            return "end"
        await self._send(f"<stream:features>{self._features()}</stream:features>")
        return "continue"

    def _features(self) -> str:
        if self.listener.tls is not None and not self.secured:
            return f"<starttls xmlns='{NS_TLS}'><required/></starttls>"
        if self.sasl_done:
            return ""
        external = (
            f"<mechanisms xmlns='{NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>"
            if self._certificate_names()
            else ""
        )
        return external + DIALBACK_FEATURE

    def _ssl_object(self) -> ssl.SSLObject | None:
        return self.writer.get_extra_info("ssl_object")

    def _certificate_names(self) -> set[str]:
        """DNS names of the target's client certificate (verified against the run's CA)."""
        ssl_obj = self._ssl_object()
        cert = ssl_obj.getpeercert() if ssl_obj is not None else None
        return {value for kind, value in (cert or {}).get("subjectAltName", ()) if kind == "DNS"}

    async def _starttls(self) -> Next:
        if self.listener.tls is None or self.secured:
            await self._send(f"<failure xmlns='{NS_TLS}'/></stream:stream>")
            return "end"
        await self._send(f"<proceed xmlns='{NS_TLS}'/>")
        try:
            async with asyncio.timeout(self.listener.timeout):
                await self.writer.start_tls(self.listener.tls)
        except (OSError, EOFError, TimeoutError) as exc:
            self.log.event(f"TLS handshake failed: {describe_handshake_error(exc)[0]}")
            return "end"
        except AttributeError:  # CPython 3.11: the target closed the connection during the handshake
            self.log.event("TLS handshake failed: the target closed the connection")
            return "end"
        self.secured = True
        self.parser.reset()
        ssl_obj = self._ssl_object()
        cert = describe_certificate(ssl_obj.getpeercert(binary_form=True) if ssl_obj else None)
        client = (
            f"{cert['peer_subject']}, SAN {', '.join(cert['peer_san']) or 'none'}, "
            f"issued by {cert['peer_issuer']}"
            if cert["peer_subject"]
            else "none"
        )
        version = ssl_obj.version() if ssl_obj else None
        self.log.event(f"TLS established: {version}; the target's client certificate: {client}")
        return "restart"

    async def _auth(self, el: ET.Element) -> Next:
        if el.get("mechanism") != "EXTERNAL" or not self.secured:
            await self._send(f"<failure xmlns='{NS_SASL}'><invalid-mechanism/></failure>")
            return "continue"
        payload = "".join((el.text or "").split())
        try:
            authzid = "" if payload in ("", "=") else base64.b64decode(payload, validate=True).decode()
        except (binascii.Error, ValueError):
            await self._send(f"<failure xmlns='{NS_SASL}'><incorrect-encoding/></failure>")
            return "continue"
        identity = authzid or self.remote or ""
        names = self._certificate_names()
        if identity not in names:
            self.log.event(
                f"SASL EXTERNAL refused: {identity or 'no identity'} asked for, the certificate names "
                f"{', '.join(sorted(names)) or 'nothing'}"
            )
            await self._send(f"<failure xmlns='{NS_SASL}'><not-authorized/></failure>")
            return "continue"
        await self._send(f"<success xmlns='{NS_SASL}'/>")
        self.log.event(f"SASL EXTERNAL: {identity} authenticated by its certificate")
        self.sasl_done = True
        self.parser.reset()
        return "restart"

    async def _dialback_result(self, el: ET.Element) -> None:
        sender, receiver = el.get("from", ""), el.get("to", "")
        valid = bool(sender) and receiver == self.listener.domain
        self.log.event(
            f"dialback: {sender} authorized without calling back its server (the peer trusts targets)"
            if valid
            else f"dialback: refused, addressed from {sender!r} to {receiver!r}"
        )
        await self._send(db_result_answer(self.listener.domain, sender, valid))

    async def _dialback_verify(self, el: ET.Element) -> None:
        asker, originating, stream_id = el.get("from", ""), el.get("to", ""), el.get("id", "")
        valid = self.listener.keys.vouches(originating, asker, stream_id, el.text or "")
        self.log.event(
            f"dialback verify: the key for {originating} -> {asker} on stream {stream_id} is "
            + ("one this actor sent" if valid else "not one this actor sent")
        )
        await self._send(db_verify_answer(originating, asker, stream_id, valid))
