"""The slixmpp-based client actor against the test double (real sockets on 127.0.0.1, real TLS)."""

from __future__ import annotations

import asyncio
import base64
import gc
import inspect
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.actors import actor_kinds
from harness.protocols.xmpp.client import ClientXmppActor
from harness.verdict import Failed, HarnessError, TargetError, Unsupported
from tests.doubles import actors
from tests.doubles.actors import DOMAIN, PASSWORD
from tests.doubles.xmpp_server import DoubleConfig, Pki, XmppDouble, make_pki

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NO_PLUS = ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "EXTERNAL")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), DOMAIN)


def leftover_tasks() -> list[asyncio.Task[object]]:
    """Unfinished tasks other than this one and the double's connection handlers."""
    current = asyncio.current_task()
    return [
        t
        for t in asyncio.all_tasks()
        if t is not current and not t.done() and not t.get_coro().__qualname__.startswith("XmppDouble.")
    ]


def _no_leftover_tasks() -> None:
    assert leftover_tasks() == []


def run_with(
    pki: Pki,
    tmp_path: Path,
    body: Callable[[ClientXmppActor, XmppDouble], Awaitable[None]],
    config: DoubleConfig | None = None,
    **options: Any,
) -> ClientXmppActor:
    """Run ``body`` with an actor against a fresh double; afterwards the actor must have left no
    task of its own behind."""
    config = config or DoubleConfig(mechanisms=NO_PLUS)
    return actors.run_with(
        ClientXmppActor, pki, tmp_path, body, config, after_close=_no_leftover_tasks, **options
    )


def log_text(actor: ClientXmppActor) -> str:
    [path] = actor.stream_logs
    return path.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- registration and schemas -------------------------------------------------------------------


def test_registered_with_valid_schemas() -> None:
    assert actor_kinds()["xmpp-client"] is ClientXmppActor
    assert ClientXmppActor.protocol == "xmpp"
    for schema in ClientXmppActor.actions.values():
        jsonschema.Draft202012Validator.check_schema(schema)

    def validate(action: str, params: dict[str, object]) -> None:
        jsonschema.validate(params, ClientXmppActor.actions[action])

    validate(
        "connect", {"tls": "direct", "tls_min": 1.2, "client_cert": True, "port": "c2s_tls", "within": 3}
    )
    validate("authenticate", {"mechanism": "SCRAM-SHA-256", "expect": "failure", "resource": "r"})
    validate("authenticate", {})
    validate("send", {"xml": "<presence/>"})
    validate("expect", {"match": ["<iq type='result'/>", "<iq type='error'/>"], "consume": False})
    validate("expect-nothing", {"match": "<message/>", "barrier": "ping"})
    validate("disconnect", {})
    for action, params in (
        ("connect", {"tls": "ssl"}),
        ("connect", {"expect_tls_failure": True}),  # raw-only knob
        ("authenticate", {"expect": "any"}),
        ("authenticate", {"payload": "="}),
        ("send", {}),
        ("send", {"hex": "00"}),
        ("expect", {"match": []}),
        ("expect-nothing", {"match": [""]}),
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(action, params)


def test_slixmpp_internals_the_actor_relies_on() -> None:
    """The actor overrides or calls a few non-public parts of slixmpp; fail loudly when an
    upgrade changes them rather than misbehave."""
    from slixmpp.features.feature_mechanisms.mechanisms import FeatureMechanisms
    from slixmpp.xmlstream.xmlstream import XMLStream

    params = list(inspect.signature(XMLStream._attempt_connection).parameters)
    assert params == ["self", "host", "port", "tls", "server_hostname"]
    assert list(inspect.signature(XMLStream.reschedule_connection_attempt).parameters) == ["self"]
    assert list(inspect.signature(FeatureMechanisms._handle_sasl_auth).parameters) == ["self", "features"]
    assert "End of stream" in inspect.getsource(XMLStream.data_received)


# -- connect ------------------------------------------------------------------------------------


def test_starttls_plain_login_binds(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.perform("connect", {})
        assert actor.reached_server
        assert actor.tls_info is not None and actor.tls_info["version"] == "TLSv1.3"
        assert actor.tls_info["peer_subject"] == f"CN={DOMAIN}"
        # the features of the TLS stream are visible (those of the plaintext stream are gone)
        await actor.perform(
            "expect",
            {
                "match": f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>PLAIN</mechanism>"
                "</mechanisms></stream:features>",
                "within": 1,
                "consume": False,
            },
        )
        with pytest.raises(Failed, match="missing child"):
            await actor.expect(
                "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
                within=0.2,
            )
        await actor.perform("authenticate", {"mechanism": "PLAIN", "resource": "harness"})
        assert actor.full_jid == "alice@double.test/harness"
        assert actor.authenticated
        with pytest.raises(HarnessError, match="already authenticated"):
            await actor.authenticate()
        # the bind result was slixmpp's business: consumed
        await actor.expect_nothing("<iq/>")
        await actor.perform("disconnect", {})

    actor = run_with(pki, tmp_path, body)
    text = log_text(actor)
    plain = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    assert PASSWORD not in text and plain not in text
    assert "[redacted: 18 bytes, contains credentials]" in text
    assert "TLS established: TLSv1.3" in text and "<proceed" in text
    assert "SASL PLAIN: success" in text and "bound as alice@double.test/harness" in text
    assert "C->S </stream:stream>" in text and "server closed its stream" in text
    assert (tmp_path / "evidence" / "keylog.txt").read_text().strip()  # pcap can be decrypted


def test_default_mechanism_is_slixmpps_choice(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate()  # EXTERNAL is offered, but no certificate was presented
        assert actor.full_jid and actor.full_jid.startswith("alice@double.test/")

    actor = run_with(pki, tmp_path, body, DoubleConfig(mechanisms=NO_PLUS, scram_iterations=64))
    text = log_text(actor)
    assert "SASL SCRAM-SHA-256: success" in text and PASSWORD not in text
    assert "p=[redacted]" in "".join(
        base64.b64decode(part.split("<")[0]).decode("latin-1")
        for part in text.split('<response xmlns="urn:ietf:params:xml:ns:xmpp-sasl">')[1:]
    )


def test_external_with_client_certificate(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect(client_cert=True)
        assert actor.tls_info and actor.tls_info["client_cert"] is True
        await actor.authenticate()  # with a certificate, slixmpp prefers EXTERNAL
        assert actor.full_jid and actor.full_jid.startswith("alice@double.test/")

    actor = run_with(pki, tmp_path, body, client_cert=True)
    assert "SASL EXTERNAL: success" in log_text(actor)


def test_direct_tls(pki: Pki, tmp_path: Path) -> None:
    async def works(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls="direct")
        assert actor.tls_info and actor.tls_info["alpn"] == "xmpp-client"
        await actor.authenticate(mechanism="PLAIN")
        assert actor.full_jid

    run_with(pki, tmp_path, works, DoubleConfig(mechanisms=NO_PLUS, direct_tls=True))

    async def refused(actor: ClientXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Unsupported, match=r"no direct TLS listener on port \d+ \(XEP-0368\)"):
            await actor.connect(tls="direct")
        assert not actor.reached_server

    run_with(pki, tmp_path, refused, ports={"c2s": 1, "c2s_tls": _free_port()})

    async def no_port(actor: ClientXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Unsupported, match="no direct TLS port"):
            await actor.connect(tls="direct")

    run_with(pki, tmp_path, no_port)


def test_certificate_not_trusted(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", DOMAIN, ca_name="Some Other CA")

    async def starttls(actor: ClientXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="TLS handshake failed: certificate verification failed"):
            await actor.connect()
        assert actor.reached_server

    run_with(pki, tmp_path, starttls, ca=other.ca_file)

    async def direct(actor: ClientXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="TLS handshake failed: certificate verification failed"):
            await actor.connect(tls="direct")
        assert actor.reached_server

    run_with(pki, tmp_path, direct, DoubleConfig(direct_tls=True), ca=other.ca_file)


def test_tls_version_refused(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="TLS handshake failed"):
            await actor.connect(tls_max="1.2")

    run_with(pki, tmp_path, body, DoubleConfig(tls_min=ssl.TLSVersion.TLSv1_3))

    async def accepted(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls_max=1.2)
        assert actor.tls_info and actor.tls_info["version"] == "TLSv1.2"

    run_with(pki, tmp_path, accepted)


def test_starttls_not_offered_and_plaintext(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="server does not offer STARTTLS"):
            await actor.connect()

    run_with(pki, tmp_path, body, DoubleConfig(offer_starttls=False))

    async def plaintext(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls="none")
        assert actor.tls_info is None
        await actor.expect(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
        )
        # slixmpp will not send PLAIN over an unencrypted stream: the client's policy, not the server's
        with pytest.raises(HarnessError, match="slixmpp would not use PLAIN here"):
            await actor.authenticate(mechanism="PLAIN")

    # a server that offers PLAIN before TLS (the correct double offers no SASL before TLS)
    run_with(pki, tmp_path, plaintext, DoubleConfig(flaws={"plain-before-tls"}))


def test_connection_refused_is_a_target_error(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        start = time.monotonic()
        with pytest.raises(TargetError, match="connection refused"):
            await actor.connect()
        assert time.monotonic() - start < 2  # no retries with back-off
        assert not actor.reached_server

    run_with(pki, tmp_path, body, ports={"c2s": _free_port()})


def test_source_address_is_bound(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        assert [address for address, _port in server.peers] == ["127.0.0.2"]

    actor = run_with(pki, tmp_path, body, source_address="127.0.0.2")
    assert "from 127.0.0.2" in log_text(actor)


# -- authenticate -------------------------------------------------------------------------------


def test_wrong_password(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(Failed, match="authentication failed: not-authorized"):
            await actor.authenticate(mechanism="PLAIN", password="wrong-one")
        assert actor.full_jid is None and not actor.authenticated
        await actor.disconnect()
        await actor.connect()
        await actor.authenticate(mechanism="PLAIN", password="wrong-two", expect="failure")
        await actor.expect(f"<failure xmlns='{SASL}'><not-authorized/></failure>")
        await actor.disconnect()
        await actor.connect()
        with pytest.raises(Failed, match="authentication failed: not-authorized"):
            await actor.authenticate(password="wrong-three")  # slixmpp's choice: SCRAM

    actor = run_with(pki, tmp_path, body, DoubleConfig(mechanisms=NO_PLUS, scram_iterations=64))
    text = log_text(actor)
    assert "SASL PLAIN: failure (not-authorized)" in text
    for secret in ("wrong-one", "wrong-two", "wrong-three", PASSWORD):
        assert secret not in text


def test_expect_failure_but_accepted(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(Failed, match="server accepted PLAIN authentication"):
            await actor.authenticate(mechanism="PLAIN", expect="failure")

    run_with(pki, tmp_path, body)


def test_mechanism_not_offered_or_not_known_to_slixmpp(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(Unsupported, match="mechanism SCRAM-SHA-512 not offered"):
            await actor.authenticate(mechanism="SCRAM-SHA-512")
        with pytest.raises(HarnessError, match="slixmpp would not use X-CUSTOM here"):
            await actor.authenticate(mechanism="X-CUSTOM")
        await actor.disconnect()
        await actor.connect()
        with pytest.raises(HarnessError, match=r"resource '\\x07bell' is not valid"):
            await actor.authenticate(resource="\x07bell")

    run_with(pki, tmp_path, body, DoubleConfig(mechanisms=("PLAIN", "X-CUSTOM")))


def test_bind_not_answered_is_an_error_and_close_is_clean(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(HarnessError, match="did not complete resource binding in time"):
            await actor.authenticate(mechanism="PLAIN", within=0.5)
        # slixmpp's bind handler still awaits its reply (and a 120 s iq timeout): close ends it

    run_with(pki, tmp_path, body, DoubleConfig(answer_bind=False))


# -- send / expect / expect-nothing -------------------------------------------------------------


def test_expect_message_and_iq(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism="PLAIN")
        await actor.perform(
            "send", {"xml": f"<message to='{actor.full_jid}' type='chat'><body>hi</body></message>"}
        )
        await actor.perform("expect", {"match": "<message type='chat' from='*'><body>hi</body></message>"})
        await actor.send(f"<iq type='get' id='v1' to='{DOMAIN}'><query xmlns='jabber:iq:version'/></iq>")
        await actor.perform(
            "expect",
            {
                "match": [
                    "<iq type='result' id='v1'/>",
                    (
                        "<iq type='error' id='v1'><error><service-unavailable "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                    ),
                ],
                "within": 2,
            },
        )
        with pytest.raises(Failed) as info:
            await actor.expect("<message><body>never</body></message>", within=0.3)
        assert "within 0.3s" in info.value.reason
        with pytest.raises(HarnessError, match="not well-formed"):
            await actor.send("<message><body></message>")

    run_with(pki, tmp_path, body)


def test_expect_nothing_with_ping_barrier(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism="PLAIN")
        await actor.send("<message to='bob@double.test'><body>not for me</body></message>")
        await actor.perform("expect-nothing", {"match": "<message/>"})
        await actor.send(f"<message to='{actor.full_jid}'><body>loop</body></message>")
        with pytest.raises(Failed, match="must not be sent"):
            await actor.expect_nothing(["<presence/>", "<message><body>loop</body></message>"])
        with pytest.raises(HarnessError, match="barrier none needs a closed connection"):
            await actor.expect_nothing("<message/>", barrier="none")

    actor = run_with(pki, tmp_path, body)
    text = log_text(actor)
    assert "id='barrier-1'" in text and "urn:xmpp:ping" in text

    async def no_reply(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism="PLAIN")
        with pytest.raises(HarnessError, match="order not proven"):
            await actor.expect_nothing("<message/>", within=0.3)

    run_with(pki, tmp_path, no_reply, DoubleConfig(answer_ping=False))


def test_server_ending_the_stream(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism="PLAIN")
        await actor.send("<unknown xmlns='urn:example:unknown'/>")
        await actor.expect(
            "<stream:error><unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
        await actor.expect("<m:closed what='stream'/>")
        await actor.expect("<m:closed what='connection'/>")
        await actor.expect_nothing("<iq/>", barrier="none")
        with pytest.raises(Failed, match="connection closed"):
            await actor.expect("<iq/>", within=5)
        with pytest.raises(Failed, match="cannot send"):
            await actor.send("<presence/>")
        with pytest.raises(Failed, match="connection is closed"):
            await actor.authenticate()
        await actor.disconnect()

    actor = run_with(pki, tmp_path, body)
    assert "connection closed by the server" in log_text(actor)


# -- lifetime -----------------------------------------------------------------------------------


def test_actions_before_connect_and_close_is_safe(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        for action, params in (
            ("send", {"xml": "<presence/>"}),
            ("expect", {"match": "<iq/>"}),
            ("authenticate", {}),
            ("expect-nothing", {"match": "<iq/>"}),
        ):
            with pytest.raises(HarnessError, match="before connect"):
                await actor.perform(action, params)
        await actor.disconnect()
        await actor.close()
        await actor.connect()
        with pytest.raises(HarnessError, match="bad pattern"):
            await actor.expect("<iq")
        with pytest.raises(HarnessError, match="already connected"):
            await actor.connect()
        await actor.close()  # with slixmpp's SASL handler held back
        await actor.close()
        await actor.disconnect()

    run_with(pki, tmp_path, body)


def test_close_leaves_no_task_and_no_warning(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every state the actor can be closed in: nothing pending, no timers, no asyncio complaints
    once the loop is gone."""
    timers: list[dict[str, object]] = []

    async def body(actor: ClientXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism="PLAIN")  # session started: keepalive timer running
        xmpp = actor._xmpp
        assert xmpp is not None and xmpp.scheduled_events
        timers.append(xmpp.scheduled_events)
        await actor.send(f"<message to='{actor.full_jid}'><body>in flight</body></message>")

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run_with(pki, tmp_path, body)
        gc.collect()
    assert timers == [{}]
    complaints = [
        r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR
    ]
    assert complaints == []
