"""The peer-server actor (``xmpp-peer-server``): dialback keys, element builders, schemas, and
both of its sides against a small receiving server written here (real sockets on loopback,
real TLS with certificates of the harness's own PKI)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from harness.actors import ActorContext, PeerIdentity, TargetView, actor_kinds
from harness.environment.pki import CertificateAuthority
from harness.environment.run_env import RunEnvironment
from harness.protocols.xmpp.dialback import (
    DB_RESULT_TAG,
    DB_VERIFY_TAG,
    KeyBook,
    db_result,
    db_result_answer,
    db_verify_answer,
    dialback_key,
    stream_header,
)
from harness.protocols.xmpp.elements import NS_CLIENT, NS_PING, NS_SASL, NS_SERVER, NS_TLS
from harness.protocols.xmpp.parser import StreamParser
from harness.protocols.xmpp.peer import PeerInbox, PeerServerActor, as_client_namespace
from harness.protocols.xmpp.s2s_listener import S2S_PORT, S2sListener, server_context
from harness.protocols.xmpp.streamlog import StreamLog
from harness.verdict import Failed, HarnessError, Unsupported

PEER = "peer.test"
TARGET = "target.test"
IQ = f"{{{NS_SERVER}}}iq"
WAIT = 5.0  # the fake's own deadline for anything it waits for

# Outside the run blocks (127.0-63.x.x), one fresh address per actor: no two tests share a 5269.
_ADDRESSES = (
    f"127.200.{(os.getpid() + n) // 250 % 250}.{(os.getpid() + n) % 250 + 1}" for n in itertools.count()
)


@dataclass
class Pki:
    env: RunEnvironment  # only its certificate issuing is used (no DNS)
    target_cert: Path
    target_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    env = RunEnvironment(
        run_dir=base,
        work_dir=base,
        block=0,
        ca=CertificateAuthority.create(base / "ca", "Test Run CA"),
        untrusted_ca=CertificateAuthority.create(base / "untrusted", "Test Untrusted CA"),
        dns=None,  # type: ignore[arg-type]
        hosts_file=base / "hosts",
        resolv_file=base / "resolv.conf",
    )
    target = env.ca.issue_server(TARGET, base / "target")
    return Pki(env, target.cert_path, target.key_path)


# -- dialback keys and elements, no network ------------------------------------------------------


def test_dialback_key_is_the_xep_0185_example() -> None:
    # XEP-0185 §3: secret, Receiving Server, Originating Server, Stream ID
    key = dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F")
    assert key == "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"


def test_key_book_vouches_exactly_for_the_keys_it_sent() -> None:
    book = KeyBook("secret")
    key = book.issue("peer.test", "target.test", "S1")
    assert key == dialback_key("secret", "target.test", "peer.test", "S1")
    assert book.vouches("peer.test", "target.test", "S1", key)
    assert book.vouches("peer.test", "target.test", "S1", f"\n {key} ")  # element text may be padded
    assert not book.vouches("peer.test", "target.test", "S2", key)  # another stream
    assert not book.vouches("target.test", "peer.test", "S1", key)  # the other direction
    assert not book.vouches("other.test", "target.test", "S1", key)
    assert not book.vouches("peer.test", "target.test", "S1", key[:-1] + "0")
    invalid = book.issue("peer.test", "target.test", "S3", valid=False)
    assert len(invalid) == len(key) and invalid != dialback_key("secret", "target.test", "peer.test", "S3")
    assert not book.vouches("peer.test", "target.test", "S3", invalid)
    assert KeyBook().issue("a", "b", "c") != KeyBook().issue("a", "b", "c")  # a fresh secret each


def test_element_builders() -> None:
    header = stream_header("peer.test", "target.test", "id'1")
    root = ET.fromstring(header.split("?>", 1)[1] + "<db:result/></stream:stream>")
    assert root.tag == "{http://etherx.jabber.org/streams}stream"
    assert root.attrib == {"from": "peer.test", "to": "target.test", "id": "id'1", "version": "1.0"}
    assert root[0].tag == DB_RESULT_TAG  # the db: prefix is declared
    assert "to=" not in stream_header("peer.test", "") and "from=" not in stream_header(None, "t")
    result = ET.fromstring(f"<x xmlns:db='jabber:server:dialback'>{db_result('a&b', 'c', 'KEY')}</x>")[0]
    assert (result.tag, result.get("from"), result.get("to"), result.text) == (
        DB_RESULT_TAG,
        "a&b",
        "c",
        "KEY",
    )
    answer = ET.fromstring(
        f"<x xmlns:db='jabber:server:dialback'>{db_verify_answer('p', 't', 'S', False)}</x>"
    )[0]
    assert answer.tag == DB_VERIFY_TAG and answer.attrib == {
        "from": "p",
        "to": "t",
        "id": "S",
        "type": "invalid",
    }
    assert "type='valid'" in db_result_answer("p", "t", True)


def test_registered_with_valid_schemas() -> None:
    assert actor_kinds()["xmpp-peer-server"] is PeerServerActor
    assert PeerServerActor.plays_server and PeerServerActor.protocol == "xmpp"
    jsonschema.Draft202012Validator.check_schema(PeerServerActor.options_schema)
    for schema in PeerServerActor.actions.values():
        jsonschema.Draft202012Validator.check_schema(schema)

    def valid(action: str, params: dict[str, object]) -> bool:
        try:
            jsonschema.validate(params, PeerServerActor.actions[action])
        except jsonschema.ValidationError:
            return False
        return True

    assert valid("connect", {"from": "prosody.test", "certificate": "wrong-name", "refusal": "allow"})
    assert valid("connect", {"tls": "none", "port": "s2s", "to": "", "require_tls": False, "within": 2})
    assert not valid("connect", {"tls": "direct"})
    assert not valid("connect", {"certificate": "self-signed"})
    assert valid("authenticate", {"method": "dialback", "key": "invalid", "expect": "failure"})
    assert valid("authenticate", {"method": "external", "authzid": ""})
    assert not valid("authenticate", {"key": "valid"})  # method is required
    assert not valid("authenticate", {"method": "PLAIN"})
    assert valid("send", {"xml": "<db:result from='a' to='b'>k</db:result>"})
    assert valid("expect-nothing", {"match": "<message/>", "barrier": "none"})
    jsonschema.validate({"certificate": "untrusted"}, PeerServerActor.options_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"certificate": "bogus"}, PeerServerActor.options_schema)


def test_param_problems() -> None:
    problems = PeerServerActor.param_problems
    assert problems("authenticate", {"method": "external", "key": "invalid"}) == [
        "key: only for method dialback, not external"
    ]
    assert problems("authenticate", {"method": "dialback", "authzid": "x"}) == [
        "authzid: only for method external, not dialback"
    ]
    assert problems("authenticate", {"method": "dialback", "key": "invalid"}) == []
    assert problems("expect", {"match": "<message"})  # still checks patterns


def test_inbox_keeps_incoming_stanzas_over_restarts() -> None:
    inbox = PeerInbox()
    stanza = ET.fromstring(f"<message xmlns='{NS_SERVER}'><body>hi</body></message>")
    inbox.put_incoming(stanza)
    features = ET.Element("{http://etherx.jabber.org/streams}features")
    inbox.put(features)
    assert stanza.tag == f"{{{NS_CLIENT}}}message" and stanza[0].tag == f"{{{NS_CLIENT}}}body"
    inbox.new_stream()
    assert inbox.pending == [stanza]
    inbox.closed = True
    inbox.reset()
    assert inbox.pending == [stanza] and not inbox.closed
    inbox.consume(stanza)
    inbox.put(ET.Element(f"{{{NS_SERVER}}}presence"))
    inbox.new_stream()
    assert inbox.pending == []
    other = ET.fromstring("<result xmlns='jabber:server:dialback'/>")
    assert as_client_namespace(other).tag == DB_RESULT_TAG  # only jabber:server moves


# -- a small receiving server for the actor's outgoing stream ----------------------------------------


class Wire:
    """One end of a test connection: parsed elements in, text out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = StreamParser()
        self.items: list[tuple[str, ET.Element]] = []
        self.features: ET.Element | None = None  # the last stream features received

    async def next(self) -> tuple[str, ET.Element]:
        while not self.items:
            data = await asyncio.wait_for(self.reader.read(65536), WAIT)
            if not data:
                return "eof", ET.Element("eof")
            self.items += [(kind, el) for kind, el, _ in self.parser.feed(data) if el is not None]
        return self.items.pop(0)

    async def expect(self, tag: str) -> ET.Element:
        kind, el = await self.next()
        assert el.tag == tag, f"expected {tag}, got {kind} {el.tag} {el.attrib}"
        return el

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    async def starttls(self, tls: ssl.SSLContext, server_hostname: str | None = None) -> None:
        await self.writer.start_tls(tls, server_hostname=server_hostname)
        self.parser.reset()

    def peer_names(self) -> set[str]:
        ssl_obj = self.writer.get_extra_info("ssl_object")
        cert = ssl_obj.getpeercert() if ssl_obj is not None else None
        return {v for k, v in (cert or {}).get("subjectAltName", ()) if k == "DNS"}


STREAM = "{http://etherx.jabber.org/streams}stream"
FEATURES = "{http://etherx.jabber.org/streams}features"


async def dial(pki: Pki, address: str, sender: str = TARGET, to: str = PEER, auth: bool = True) -> Wire:
    """Connect to a peer listener as a target would: STARTTLS, then SASL EXTERNAL with the
    target's certificate (``auth``)."""
    reader, writer = await asyncio.open_connection(address, S2S_PORT)
    wire = Wire(reader, writer)
    await wire.send(stream_header(sender, to))
    await wire.expect(STREAM)
    features = await wire.expect(FEATURES)
    assert features.find(f"{{{NS_TLS}}}starttls/{{{NS_TLS}}}required") is not None
    await wire.send(f"<starttls xmlns='{NS_TLS}'/>")
    await wire.expect(f"{{{NS_TLS}}}proceed")
    tls = ssl.create_default_context(cafile=str(pki.env.ca.cert_path))
    tls.load_cert_chain(str(pki.target_cert), str(pki.target_key))
    await wire.starttls(tls, server_hostname=PEER)
    await wire.send(stream_header(sender, to))
    await wire.expect(STREAM)
    wire.features = await wire.expect(FEATURES)
    if auth:
        await wire.send(
            f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{base64.b64encode(sender.encode()).decode()}</auth>"
        )
        await wire.expect(f"{{{NS_SASL}}}success")
        wire.parser.reset()
        await wire.send(stream_header(sender, to))
        await wire.expect(STREAM)
        await wire.expect(FEATURES)
    return wire


class FakeTarget:
    """A receiving server for the actor's outgoing stream (never a target in the matrix).

    STARTTLS required; after TLS SASL EXTERNAL for a client certificate of the run's CA that
    names the authorization identity, and dialback, verified by calling back the originating
    domain's server (the actor's listener) with ``<db:verify/>``. Stanzas are recorded; an iq
    ping is answered, and with ``echo`` every message is sent back, on the fake's own
    connection to the peer's listener (as a real server routes them).
    """

    def __init__(self, pki: Pki, peer_address: str, echo: bool = False) -> None:
        self.pki = pki
        self.peer_address = peer_address
        self.echo = echo
        self.received: list[ET.Element] = []
        self.verified: list[bool] = []
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(str(pki.target_cert), str(pki.target_key))
        self.tls.load_verify_locations(cafile=str(pki.env.ca.cert_path))
        self.tls.verify_mode = ssl.CERT_OPTIONAL
        self._ids = itertools.count(1)
        self._to_peer: Wire | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FakeTarget:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        if self._to_peer is not None:
            self._to_peer.writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._session(Wire(reader, writer))
        except (OSError, TimeoutError, asyncio.CancelledError):
            pass  # the actor went away or the test ended
        finally:
            writer.close()

    async def _session(self, wire: Wire) -> None:
        secured = authenticated = False
        stream_id = ""
        while True:
            kind, el = await wire.next()
            if kind in ("close", "eof", "error"):
                return
            if kind == "header":
                stream_id = f"fake-{next(self._ids)}"
                if not secured:
                    features = f"<starttls xmlns='{NS_TLS}'><required/></starttls>"
                elif authenticated:
                    features = ""
                else:
                    external = "<mechanism>EXTERNAL</mechanism>" if wire.peer_names() else ""
                    features = f"<mechanisms xmlns='{NS_SASL}'>{external}</mechanisms>"
                await wire.send(
                    stream_header(TARGET, el.get("from"), stream_id)
                    + f"<stream:features>{features}</stream:features>"
                )
            elif el.tag == f"{{{NS_TLS}}}starttls":
                await wire.send(f"<proceed xmlns='{NS_TLS}'/>")
                await wire.starttls(self.tls)
                secured = True
            elif el.tag == f"{{{NS_SASL}}}auth":
                authzid = base64.b64decode(el.text or "").decode()
                if authzid in wire.peer_names():
                    await wire.send(f"<success xmlns='{NS_SASL}'/>")
                    wire.parser.reset()
                    authenticated = True
                else:
                    await wire.send(f"<failure xmlns='{NS_SASL}'><not-authorized/></failure>")
            elif el.tag == DB_RESULT_TAG:
                sender = el.get("from", "")
                valid = await self._verify(sender, el.text or "", stream_id)
                await wire.send(db_result_answer(TARGET, sender, valid))
            elif el.tag == IQ and el.find(f"{{{NS_PING}}}ping") is not None:
                await self._send_to_peer(
                    f"<iq type='result' id='{el.get('id')}' from='{TARGET}' to='{el.get('from')}'/>"
                )
            else:
                self.received.append(el)
                if self.echo and el.tag == f"{{{NS_SERVER}}}message":
                    await self._send_to_peer(
                        f"<message from='{el.get('to')}' to='{el.get('from')}'><body>echo</body></message>"
                    )

    async def _peer(self) -> Wire:
        if self._to_peer is None:
            self._to_peer = await dial(self.pki, self.peer_address)
        return self._to_peer

    async def _verify(self, sender: str, key: str, stream_id: str) -> bool:
        wire = await self._peer()
        await wire.send(f"<db:verify from='{TARGET}' to='{sender}' id='{stream_id}'>{key}</db:verify>")
        answer = await wire.expect(DB_VERIFY_TAG)
        self.verified.append(answer.get("type") == "valid")
        return answer.get("type") == "valid"

    async def _send_to_peer(self, text: str) -> None:
        await (await self._peer()).send(text)


def make_peer(
    pki: Pki, tmp_path: Path, fake: FakeTarget | None, address: str, **options: str
) -> PeerServerActor:
    view = TargetView(
        name="fake",
        product="fake",
        domain=TARGET,
        address="127.0.0.1",
        ports={"s2s": fake.port if fake is not None else 9},
        ca_file=pki.env.ca.cert_path,
    )
    ctx = ActorContext(
        name="peer",
        target=view,
        account=None,
        evidence_dir=tmp_path / "evidence",
        keylog_file=tmp_path / "evidence" / "keys.log",
        step_timeout=3.0,
        peer=PeerIdentity(PEER, address),
        pki=pki.env,
    )
    return PeerServerActor(ctx, dict(options))


Body = Callable[[PeerServerActor, FakeTarget], Awaitable[None]]


def run(pki: Pki, tmp_path: Path, body: Body, echo: bool = False, **options: str) -> PeerServerActor:
    """Run ``body`` with a fresh actor against a fresh fake; the actor is closed afterwards."""
    address = next(_ADDRESSES)

    async def main() -> PeerServerActor:
        async with FakeTarget(pki, address, echo) as fake:
            actor = make_peer(pki, tmp_path, fake, address, **options)
            try:
                await body(actor, fake)
            finally:
                await actor.close()
            return actor

    return asyncio.run(main())


def log_text(actor: PeerServerActor) -> str:
    [path] = actor.stream_logs
    return path.read_text()


# -- the outgoing stream against the fake ------------------------------------------------------------


def test_external_then_send(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("connect", {})
        await actor.perform(
            "expect",
            {
                "match": "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>"
            },
        )
        await actor.perform("authenticate", {"method": "external"})
        assert actor.authenticated and actor.tls_info is not None
        await actor.perform(
            "send", {"xml": f"<message from='x@{PEER}' to='bob@{TARGET}'><body>hi</body></message>"}
        )
        await actor.perform("expect-nothing", {"match": "<message/>"})  # barrier: the ping answer came back
        assert [el.get("from") for el in fake.received] == [f"x@{PEER}"]

    actor = run(pki, tmp_path, body)
    text = log_text(actor)
    assert (
        "[outgoing] <?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback'"
        in text
    )
    assert f"from='{PEER}' to='{TARGET}'" in text
    assert "[outgoing] TLS established" in text and "SASL EXTERNAL: success" in text
    assert "[incoming #1] connection from 127.0.0.1:" in text  # the fake's route back, for the ping answer
    assert "id='barrier-1' to='target.test' from='peer.test'><ping xmlns='urn:xmpp:ping'/></iq>" in text


def test_external_refused_for_another_domain(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("connect", {"certificate": "wrong-name"})
        with pytest.raises(Failed, match="authentication failed: not-authorized"):
            await actor.perform("authenticate", {"method": "external"})
        await actor.perform("authenticate", {"method": "external", "expect": "failure"})
        await actor.perform(
            "expect",
            {"match": "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"},
        )

    run(pki, tmp_path, body)


def test_external_not_offered(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("connect", {"certificate": "none"})
        with pytest.raises(Unsupported, match="EXTERNAL not offered"):
            await actor.perform("authenticate", {"method": "external"})
        await actor.perform(
            "authenticate", {"method": "external", "expect": "failure"}
        )  # not offered: refused

    actor = run(pki, tmp_path, body)
    assert "SASL EXTERNAL not offered: refused without an attempt" in log_text(actor)
    assert "mechanism='EXTERNAL'" not in log_text(actor)


def test_a_refusal_without_an_attempt_is_evidence_only_after_an_acceptance_or_with_refusal_alone(
    pki: Pki, tmp_path: Path
) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("connect", {"certificate": "none"})
        refused = {"method": "external", "expect": "failure"}
        assert not (await actor.perform("authenticate", refused)).exercised  # type: ignore[union-attr]
        alone = await actor.perform("authenticate", {**refused, "refusal_alone": True})
        assert alone is not None and alone.exercised and "refusal_alone" in alone.text

    run(pki, tmp_path, body)


def test_dialback_valid_key_is_vouched_for_by_the_listener(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("connect", {"certificate": "none"})
        await actor.perform("authenticate", {"method": "dialback"})
        await actor.perform(
            "expect", {"match": "<db:result xmlns:db='jabber:server:dialback' type='valid'/>"}
        )
        assert actor.authenticated and fake.verified == [True]

    text = log_text(run(pki, tmp_path, body))
    assert (
        "[incoming #1] dialback verify: the key for peer.test -> target.test on stream fake-2 is one this actor sent"
        in text
    )
    assert "type='valid'/>" in text


def test_dialback_invalid_key(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("connect", {})
        with pytest.raises(
            Failed,
            match="target refused dialback for peer.test with a key its server does not vouch for: type='invalid'",
        ):
            await actor.perform("authenticate", {"method": "dialback", "key": "invalid"})
        await actor.perform("authenticate", {"method": "dialback", "key": "invalid", "expect": "failure"})
        with pytest.raises(Failed, match="accepted dialback for peer.test with a valid key"):
            await actor.perform("authenticate", {"method": "dialback", "expect": "failure"})
        assert fake.verified == [False, False, True]

    run(pki, tmp_path, body)


def test_refused_certificate(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        with pytest.raises(Failed):  # the fake's TLS verifies client certificates against the run's CA
            await actor.perform("connect", {"certificate": "untrusted"})
        await actor.perform("connect", {"certificate": "untrusted", "refusal": "expect"})
        with pytest.raises(Failed, match="cannot authenticate: the connection is closed"):
            await actor.perform("authenticate", {"method": "external"})
        await actor.perform("authenticate", {"method": "external", "expect": "failure"})
        await actor.perform("connect", {"certificate": "expired", "refusal": "allow"})
        await actor.perform("authenticate", {"method": "dialback", "expect": "any"})
        with pytest.raises(
            Failed, match="target accepted the connection from peer.test with certificate valid"
        ):
            await actor.perform("connect", {"refusal": "expect"})

    text = log_text(run(pki, tmp_path, body))
    assert "the target refused the connection (refusal: expect)" in text


def test_expect_sees_incoming_stanzas_as_client_stanzas(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("connect", {})
        await actor.perform("authenticate", {"method": "external"})
        await actor.perform(
            "send", {"xml": f"<message from='x@{PEER}' to='bob@{TARGET}'><body>hi</body></message>"}
        )
        with pytest.raises(Failed, match="received <message"):
            await actor.perform("expect-nothing", {"match": "<message/>"})
        await actor.perform(
            "expect", {"match": f"<message from='bob@{TARGET}' to='x@{PEER}'><body>echo</body></message>"}
        )
        await actor.perform("disconnect", {})
        await actor.perform("expect-nothing", {"match": "<message/>", "barrier": "none"})

    run(pki, tmp_path, body, echo=True)


def test_send_checks_and_barrier_for_another_domain(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        with pytest.raises(HarnessError, match="before connect"):
            await actor.perform("send", {"xml": "<message/>"})
        with pytest.raises(HarnessError, match="barrier ping needs the outgoing stream"):
            await actor.perform("expect-nothing", {"match": "<message/>"})
        with pytest.raises(
            Failed, match="within 0.2s"
        ):  # the listener is up: expect waits for incoming stanzas
            await actor.perform("expect", {"match": "<message/>", "within": 0.2})
        await actor.perform("connect", {"from": "other.test", "certificate": "none"})
        assert "from='other.test'" in log_text(actor)
        with pytest.raises(HarnessError, match="not well-formed"):
            await actor.perform("send", {"xml": "<message>"})
        await actor.perform("send", {"xml": "<db:result from='other.test' to='target.test'>00</db:result>"})
        with pytest.raises(HarnessError, match="goes to that domain's own server"):
            await actor.perform("expect-nothing", {"match": "<message/>"})

    run(pki, tmp_path, body)


def test_no_peer_identity_is_a_harness_error(pki: Pki, tmp_path: Path) -> None:
    actor = make_peer(pki, tmp_path, None, next(_ADDRESSES))
    actor.ctx.peer = None

    async def body() -> None:
        try:
            with pytest.raises(HarnessError, match="no peer domain"):
                await actor.perform("connect", {})
        finally:
            await actor.close()

    asyncio.run(body())


# -- the listener, as a target meets it ----------------------------------------------------------


def listener_run(
    pki: Pki, tmp_path: Path, body: Callable[[S2sListener, str, list[ET.Element]], Awaitable[None]]
) -> str:
    """Run ``body`` with a listener of a fresh key book; returns the stream log."""
    address = next(_ADDRESSES)
    log = StreamLog(tmp_path / "listener.xmpp.log")
    cert, key = pki.env.server_certificate(PEER, tmp_path / "peer-cert")

    async def main() -> None:
        delivered: list[ET.Element] = []
        tls = server_context(cert, key, pki.env.ca.cert_path, None)
        listener = S2sListener(PEER, KeyBook("s"), delivered.append, log, tls, 3.0)
        await listener.start(address)
        try:
            await body(listener, address, delivered)
        finally:
            await listener.close()
            log.close()

    asyncio.run(main())
    return log.path.read_text()


def test_listener_external_dialback_and_delivery(pki: Pki, tmp_path: Path) -> None:
    async def body(listener: S2sListener, address: str, delivered: list[ET.Element]) -> None:
        wire = await dial(pki, address, auth=False)
        assert wire.writer.get_extra_info("ssl_object").session.has_ticket is False
        assert wire.features is not None
        mechanisms = wire.features.find(f"{{{NS_SASL}}}mechanisms")
        assert mechanisms is not None and [m.text for m in mechanisms] == ["EXTERNAL"]
        await wire.send(
            f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{base64.b64encode(b'other.test').decode()}</auth>"
        )
        await wire.expect(f"{{{NS_SASL}}}failure")  # the certificate names target.test only
        await wire.send(f"<db:result from='{TARGET}' to='{PEER}'>whatever</db:result>")
        answer = await wire.expect(DB_RESULT_TAG)
        assert answer.attrib == {"from": PEER, "to": TARGET, "type": "valid"}
        await wire.send(
            f"<db:verify from='{TARGET}' to='{PEER}' id='S1'>{listener.keys.issue(PEER, TARGET, 'S1')}</db:verify>"
        )
        assert (await wire.expect(DB_VERIFY_TAG)).get("type") == "valid"
        await wire.send(
            f"<db:verify from='{TARGET}' to='{PEER}' id='S2'>{listener.keys.issue(PEER, TARGET, 'S1')}</db:verify>"
        )
        assert (await wire.expect(DB_VERIFY_TAG)).get("type") == "invalid"
        await wire.send(
            f"<message from='bob@{TARGET}' to='x@{PEER}'><body>hi</body></message><iq type='get' id='q1'/>"
        )
        await wire.send("</stream:stream>")
        assert (await wire.next())[0] == "close"
        assert [el.tag for el in delivered] == [f"{{{NS_SERVER}}}message", IQ]
        authenticated = await dial(pki, address)  # EXTERNAL for the domain the certificate names
        authenticated.writer.close()

    text = listener_run(pki, tmp_path, body)
    assert "[incoming #1] connection from 127.0.0.1:" in text
    assert "SASL EXTERNAL refused: other.test asked for, the certificate names target.test" in text
    assert "dialback: target.test authorized without calling back its server" in text
    assert "[incoming #2] SASL EXTERNAL: target.test authenticated by its certificate" in text


def test_listener_refuses_other_domains_and_closes_everything(pki: Pki, tmp_path: Path) -> None:
    async def body(listener: S2sListener, address: str, delivered: list[ET.Element]) -> None:
        reader, writer = await asyncio.open_connection(address, S2S_PORT)
        wire = Wire(reader, writer)
        await wire.send(stream_header(TARGET, "elsewhere.test"))
        await wire.expect(STREAM)
        error = await wire.expect("{http://etherx.jabber.org/streams}error")
        assert error[0].tag == "{urn:ietf:params:xml:ns:xmpp-streams}host-unknown"
        kept = await dial(pki, address)
        await listener.close()
        assert (await kept.next())[0] in ("close", "eof")
        with pytest.raises(OSError):
            await asyncio.open_connection(address, S2S_PORT)

    text = listener_run(pki, tmp_path, body)
    assert "stream to elsewhere.test, which this peer does not serve" in text
    assert "C->S [incoming #2] </stream:stream>" in text
    assert "[listener] closed after 2 incoming connection(s)" in text


def test_a_refusing_listener_closes_at_once_and_counts_the_connections(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: PeerServerActor, fake: FakeTarget) -> None:
        await actor.perform("listen", {})
        for _ in range(3):  # a target that reconnects at once, three times
            reader, writer = await asyncio.open_connection(actor.ctx.peer.address, S2S_PORT)  # type: ignore[union-attr]
            assert await reader.read() == b""  # closed before a byte
            writer.close()
        with pytest.raises(Failed, match=r"3 connection\(s\) in 0.5 s.*no back-off"):
            await actor.perform("count-connections", {"within": 0.5})

    actor = run(pki, tmp_path, body, incoming="refuse")
    assert "closed at once (incoming: refuse)" in log_text(actor)


def test_close_frees_the_port_and_the_certificates(pki: Pki, tmp_path: Path) -> None:
    address = next(_ADDRESSES)

    async def body() -> None:
        async with FakeTarget(pki, address) as fake:
            actor = make_peer(pki, tmp_path, fake, address)
            await actor.perform("connect", {})
            cert_dir = actor._cert_dir
            assert cert_dir is not None and any(cert_dir.rglob("*.key"))
            await actor.close()
            await actor.close()  # twice is fine
            assert not cert_dir.exists()
            server = await asyncio.start_server(lambda r, w: None, address, S2S_PORT)
            server.close()

    asyncio.run(body())
