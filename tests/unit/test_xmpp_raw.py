"""The raw XMPP stream actor against the test double (real sockets on 127.0.0.1, real TLS)."""

from __future__ import annotations

import base64
import functools
import re
import socket
import ssl
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.actors import actor_kinds
from harness.engine import run_item
from harness.plugin import PROJECT_ROOT
from harness.protocols.xmpp.parser import StreamParser
from harness.protocols.xmpp.raw import CERTIFICATE_NOT_CHECKED, RawXmppActor
from harness.protocols.xmpp.sasl import Scram
from harness.scenario.loader import load_scenario
from harness.targets.external import load_target_file
from harness.targets.spec import CatalogueError
from harness.verdict import Failed, HarnessError, Outcome, Unsupported
from tests.doubles import actors
from tests.doubles.actors import DOMAIN, PASSWORD
from tests.doubles.target import DoubleServices, running_double
from tests.doubles.xmpp_server import DoubleConfig, Pki, XmppDouble, make_pki, pki_from_ca

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), DOMAIN)


run_with = functools.partial(actors.run_with, RawXmppActor)


def log_text(actor: RawXmppActor) -> str:
    [path] = actor.stream_logs
    return path.read_text()


# -- registration and schemas -------------------------------------------------------------------


def test_registered_with_valid_schemas() -> None:
    assert actor_kinds()["xmpp-raw"] is RawXmppActor
    assert RawXmppActor.protocol == "xmpp"
    for schema in RawXmppActor.actions.values():
        jsonschema.Draft202012Validator.check_schema(schema)

    def validate(action: str, params: dict[str, object]) -> None:
        jsonschema.validate(params, RawXmppActor.actions[action])

    validate("connect", {"tls": "direct", "tls_max": 1.2, "port": "c2s_tls", "expect_tls_failure": True})
    validate("authenticate", {"mechanism": "SCRAM-SHA-1-PLUS", "expect": "failure", "payload": "="})
    validate("expect-nothing", {"match": "<message/>", "barrier": "ping"})
    validate("expect", {"match": ["<iq type='result'/>", "<iq type='error'/>"], "within": 1})
    validate("expect-nothing", {"match": ["<message/>", "<presence/>"]})
    with pytest.raises(jsonschema.ValidationError):
        validate("connect", {"tls": "ssl"})
    with pytest.raises(jsonschema.ValidationError):
        validate("expect", {"within": 1})
    for bad in ([], [""], [42], "", 42):
        with pytest.raises(jsonschema.ValidationError):
            validate("expect", {"match": bad})
        with pytest.raises(jsonschema.ValidationError):
            validate("expect-nothing", {"match": bad})


# -- parsing and SCRAM, no network --------------------------------------------------------------


def test_stream_parser_slices_raw_text() -> None:
    parser = StreamParser()
    data = (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' from='x.test' version='1.0'>"
        b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features> "
        b"<iq type='result' id='a>b'/></stream:stream>"
    )
    items = []
    for i in range(0, len(data), 7):  # arbitrary chunking
        items += parser.feed(data[i : i + 7])
    kinds = [k for k, _, _ in items]
    assert kinds == ["header", "element", "element", "close"]
    assert items[0][1].get("from") == "x.test" and items[0][2].startswith("<?xml")
    assert (
        items[1][2]
        == "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
    )
    assert items[2][2] == " <iq type='result' id='a>b'/>"
    assert items[2][1].get("id") == "a>b"
    assert items[3][1].get("what") == "stream"
    bad = StreamParser()
    out = bad.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a></b>")
    assert out[-1][0] == "error" and "mismatched" in out[-1][1].text
    assert bad.feed(b"more")[0][0] == "junk"


def test_scram_rfc_test_vectors() -> None:
    # RFC 5802 section 5
    s = Scram("SCRAM-SHA-1", "user", "pencil", cnonce="fyko+d2lbbFgONRv9qkxdawL")
    assert s.client_first() == b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    final = s.client_final(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    assert final == b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    s.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
    assert s.server_verified
    # RFC 7677 section 3
    s = Scram("SCRAM-SHA-256", "user", "pencil", cnonce="rOprNGfwEbeRWgbNEkqO")
    final = s.client_final(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert final.endswith(b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    s.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


# -- connect ------------------------------------------------------------------------------------


def test_connect_starttls_and_expect_features(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.perform("connect", {})
        assert actor.reached_server
        assert actor.tls_info is not None
        assert actor.tls_info["version"] == "TLSv1.3"
        assert actor.tls_info["peer_subject"] == f"CN={DOMAIN}"
        assert actor.tls_info["peer_san"] == [f"DNS:{DOMAIN}"]
        # features of the TLS stream are queued (the plaintext stream's are gone)
        await actor.perform(
            "expect",
            {
                "match": f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>SCRAM-SHA-1-PLUS</mechanism>"
                "</mechanisms></stream:features>",
                "within": 1,
            },
        )
        await actor.perform("disconnect", {})

    actor = run_with(pki, tmp_path, body)
    text = log_text(actor)
    assert "TLS established: TLSv1.3" in text and "starttls" in text and "<proceed" in text
    assert "C->S" in text and "S->C" in text and "server closed its stream" in text
    assert (tmp_path / "evidence" / "keylog.txt").read_text().strip()  # pcap can be decrypted


def test_connect_without_starttls_offered(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="server does not offer STARTTLS"):
            await actor.connect()

    run_with(pki, tmp_path, body, DoubleConfig(offer_starttls=False))

    async def lenient(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(require_tls=False)
        assert actor.tls_info is None
        await actor.expect(f"<stream:features><mechanisms xmlns='{SASL}'/></stream:features>")

    run_with(pki, tmp_path, lenient, DoubleConfig(offer_starttls=False))


def test_plaintext_features(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls="none")
        # TLS required: nothing but STARTTLS before TLS (RFC 6120 5.3.1)
        await actor.expect(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
            f"<mechanisms xmlns='{SASL}' m:absent='true'/></stream:features>"
        )
        await actor.expect("<stream:stream from='double.test' version='1.0' id='*'/>")

    run_with(pki, tmp_path, body)

    async def optional(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls="none")
        await actor.expect(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required m:absent='true'/>"
            f"</starttls><mechanisms xmlns='{SASL}'><mechanism m:absent='true'>SCRAM-SHA-1-PLUS</mechanism>"
            "</mechanisms></stream:features>"
        )

    run_with(pki, tmp_path, optional, DoubleConfig(flaws={"tls-optional"}))


def test_certificate_not_trusted(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", DOMAIN, ca_name="Some Other CA")

    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="TLS handshake failed: certificate verification failed"):
            await actor.connect()

    run_with(pki, tmp_path, body, ca=other.ca_file)


def test_tls_version_checks(pki: Pki, tmp_path: Path) -> None:
    async def refused(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls_max="1.2", expect_tls_failure=True)  # the good outcome
        assert actor.tls_info is None
        await actor.expect("<m:closed what='connection'/>")

    actor = run_with(pki, tmp_path, refused, DoubleConfig(tls_min=ssl.TLSVersion.TLSv1_3))
    assert "TLS handshake failed" in log_text(actor)

    async def accepted(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="server accepted TLS TLSv1.2"):
            await actor.connect(tls_max=1.2, expect_tls_failure=True)

    run_with(pki, tmp_path, accepted)

    async def plain_failure(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="TLS handshake failed"):
            await actor.connect(tls_max="1.2")

    run_with(pki, tmp_path, plain_failure, DoubleConfig(tls_min=ssl.TLSVersion.TLSv1_3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_direct_tls(pki: Pki, tmp_path: Path) -> None:
    async def refused(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Unsupported, match=r"no direct TLS listener on port \d+ \(XEP-0368\)"):
            await actor.connect(tls="direct")
        assert not actor.reached_server

    port = _free_port()
    run_with(pki, tmp_path, refused, ports={"c2s": 1, "c2s_tls": port})

    async def no_port(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Unsupported, match="no direct TLS port"):
            await actor.connect(tls="direct")

    run_with(pki, tmp_path, no_port)

    async def works(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls="direct")
        assert actor.tls_info and actor.tls_info["alpn"] == "xmpp-client"
        await actor.authenticate()
        assert actor.full_jid and actor.full_jid.startswith("alice@double.test/")

    run_with(pki, tmp_path, works, DoubleConfig(direct_tls=True))


def test_connection_refused_on_c2s_is_a_target_error(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(HarnessError, match="connection refused"):
            await actor.connect()

    run_with(pki, tmp_path, body, ports={"c2s": _free_port()})


def test_a_refused_connection_may_be_the_targets_failure(pki: Pki, tmp_path: Path) -> None:
    """``refused: fail``: a target reached before that now refuses connections stopped serving."""

    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="no longer accepts connections"):
            await actor.connect(refused="fail")

    run_with(pki, tmp_path, body, ports={"c2s": _free_port()})


def test_connect_sends_the_scenarios_own_stream_header(pki: Pki, tmp_path: Path) -> None:
    """``header``: sent as it is (after TLS with starttls), once; the server's answer decides."""
    wrong = (
        "<?xml version='1.0'?><stream:stream to='unknown.test' version='1.0' xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams'>"
    )

    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        seen = await actor.connect(tls="starttls", header=wrong, expect_stream_error=True)
        assert seen.text.startswith("the server ended the stream instead of opening it")
        await actor.expect(
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
        assert actor.tls_info is not None  # the header went over TLS, after a normal first stream
        await actor.disconnect()
        await actor.connect(tls="none")  # the next connection uses the actor's own header again

    run_with(pki, tmp_path, body)


def test_stream_error_on_connect(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls="none", to="unknown.test", expect_stream_error=True)
        await actor.expect(
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
        await actor.expect("<m:closed/>")

    run_with(pki, tmp_path, body)

    async def unexpected(actor: RawXmppActor, server: XmppDouble) -> None:
        with pytest.raises(Failed, match="host-unknown"):
            await actor.connect(tls="none", to="unknown.test")

    run_with(pki, tmp_path, unexpected)


# -- authenticate -------------------------------------------------------------------------------


def test_plain_success_and_password_redacted(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.perform("authenticate", {"mechanism": "PLAIN", "resource": "harness"})
        assert actor.full_jid == "alice@double.test/harness"
        await actor.disconnect()

    actor = run_with(pki, tmp_path, body)
    text = log_text(actor)
    plain = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    assert PASSWORD not in text and plain not in text
    assert "[redacted: 18 bytes, contains credentials]" in text
    assert "bound as alice@double.test/harness" in text
    assert "id='bind1'" in text


def test_plain_wrong_password(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(password="wrong-one", expect="failure")
        await actor.expect(f"<failure xmlns='{SASL}'><not-authorized/></failure>")
        # an unconsumed <failure/> of an earlier attempt is not taken for the next answer
        await actor.authenticate(password="wrong-one", expect="failure")
        await actor.authenticate(expect="any", bind=False)
        assert actor.authenticated
        await actor.disconnect()
        await actor.connect()
        with pytest.raises(Failed, match="authentication failed: not-authorized"):
            await actor.authenticate(password="wrong-two")

    actor = run_with(pki, tmp_path, body)
    text = log_text(actor)
    assert "wrong-one" not in text and "wrong-two" not in text


def test_expect_failure_but_accepted(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(Failed, match="server accepted PLAIN authentication"):
            await actor.authenticate(expect="failure")

    run_with(pki, tmp_path, body)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS"])
def test_scram(pki: Pki, tmp_path: Path, mechanism: str) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism=mechanism)
        assert actor.full_jid

    actor = run_with(pki, tmp_path, body, DoubleConfig(scram_iterations=64))
    text = log_text(actor)
    assert PASSWORD not in text and "SASL " + mechanism + ": success" in text
    responses = re.findall(r"<response xmlns='[^']*'>([^<]+)</response>", text)
    assert len(responses) == 1  # the client-final message
    assert base64.b64decode(responses[0]).endswith(b"p=[redacted]")


def test_scram_wrong_password_and_downgrade(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism="SCRAM-SHA-256", password="nope", expect="failure")
        await actor.expect(f"<failure xmlns='{SASL}'><not-authorized/></failure>")
        # "y": the client says it supports channel binding but thinks the server does not
        with pytest.raises(Failed, match="not-authorized"):
            await actor.authenticate(mechanism="SCRAM-SHA-1", gs2_flag="y")

    run_with(pki, tmp_path, body, DoubleConfig(scram_iterations=64))


def test_scram_plus_tls_unique_over_tls12(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(tls_max="1.2")
        assert actor.tls_info and actor.tls_info["version"] == "TLSv1.2"
        await actor.authenticate(mechanism="SCRAM-SHA-1-PLUS")
        assert actor.full_jid

    actor = run_with(pki, tmp_path, body, DoubleConfig(scram_iterations=64, channel_bindings=("tls-unique",)))
    assert "cD10bHMtdW5pcXVl" in log_text(actor)  # base64 of "p=tls-unique"


def test_scram_plus_without_computable_binding(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(Unsupported, match="tls-exporter"):
            await actor.authenticate(mechanism="SCRAM-SHA-1-PLUS")

    run_with(pki, tmp_path, body, DoubleConfig(channel_bindings=("tls-exporter",)))

    async def not_advertised(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(Unsupported, match="over TLS 1.3 defaults to tls-exporter"):
            await actor.authenticate(mechanism="SCRAM-SHA-1-PLUS")

    run_with(pki, tmp_path, not_advertised, DoubleConfig(channel_bindings=()))


def test_external_with_client_certificate(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect(client_cert=True)
        assert actor.tls_info and actor.tls_info["client_cert"] is True
        await actor.authenticate(mechanism="EXTERNAL")
        assert actor.full_jid and actor.full_jid.startswith("alice@double.test/")

    run_with(pki, tmp_path, body, client_cert=True)

    async def without(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(mechanism="EXTERNAL", expect="failure")
        await actor.expect(f"<failure xmlns='{SASL}'><not-authorized/></failure>")
        with pytest.raises(HarnessError, match="no certificate"):
            await actor.disconnect()
            await actor.connect(client_cert=True)

    run_with(pki, tmp_path, without)


def test_mechanism_not_offered_and_unknown(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(Unsupported, match="mechanism EXTERNAL not offered"):
            await actor.authenticate(mechanism="EXTERNAL")
        await actor.authenticate(mechanism="X-NOT-A-MECHANISM", expect="failure")
        await actor.expect(f"<failure xmlns='{SASL}'><invalid-mechanism/></failure>")

    run_with(pki, tmp_path, body, DoubleConfig(mechanisms=("PLAIN", "SCRAM-SHA-1")))


def test_malformed_payload_and_abort(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate(payload="%%%not-base64", expect="failure")
        await actor.expect(f"<failure xmlns='{SASL}'><incorrect-encoding/></failure>")
        await actor.authenticate(mechanism="SCRAM-SHA-1", abort=True, expect="failure")
        await actor.expect(f"<failure xmlns='{SASL}'><aborted/></failure>")

    run_with(pki, tmp_path, body, DoubleConfig(scram_iterations=64))


# -- expect / expect-nothing / send ---------------------------------------------------------------


def test_expect_timeout_is_a_failure_with_explanation(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate()
        start = time.monotonic()
        with pytest.raises(Failed) as info:
            await actor.expect("<message type='chat'><body>hi</body></message>", within=0.3)
        assert time.monotonic() - start < 2
        assert "expected <message type='chat'><body>hi</body></message> within 0.3s" in info.value.reason
        # closest candidate explained
        await actor.send(f"<message to='{actor.full_jid}' type='normal'><body>hi</body></message>")
        with pytest.raises(Failed) as info:
            await actor.expect("<message type='chat'><body>hi</body></message>", within=0.5)
        assert info.value.reason.startswith("got <message type='normal'")
        assert "attribute type is 'normal', expected 'chat'" in info.value.reason
        await actor.expect("<message type='normal'><body>hi</body></message>", within=0.5)

    run_with(pki, tmp_path, body)


def test_expect_any_of_a_list_of_patterns(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate()
        await actor.send(f"<iq type='get' id='q1' to='{DOMAIN}'><query xmlns='jabber:iq:version'/></iq>")
        # either answer is acceptable; the double answers service-unavailable
        await actor.perform(
            "expect",
            {"match": ["<iq type='result' id='q1'/>", "<iq type='error' id='q1'/>"], "within": 2},
        )
        await actor.send(f"<message to='{actor.full_jid}' type='normal'><body>hi</body></message>")
        with pytest.raises(Failed) as info:
            await actor.expect(
                [
                    "<message type='chat'/>",
                    "<message type='normal'><body>bye</body></message>",
                    "<presence/>",
                ],
                within=0.5,
            )
        reason = info.value.reason
        assert "expected any of: <message type='chat'/> | " in reason
        assert "within 0.5s" in reason
        assert reason.startswith("alternative 1 (<message type='chat'/>): got <message type='normal'")
        assert "attribute type is 'normal', expected 'chat'" in reason
        assert "alternative 2 (" in reason and "body with text 'bye' (present: 'hi')" in reason
        assert "alternative 3 (<presence/>): nothing like it received" in reason
        with pytest.raises(Failed, match="which matches <message type='normal'/> and must not be sent"):
            await actor.perform("expect-nothing", {"match": ["<presence/>", "<message type='normal'/>"]})
        await actor.expect(["<presence/>", "<message><body>hi</body></message>"])
        await actor.perform("expect-nothing", {"match": ["<presence/>", "<message/>"]})
        with pytest.raises(HarnessError, match="bad pattern: alternative 2"):
            await actor.expect(["<iq/>", "<iq"])

    run_with(pki, tmp_path, body)


def test_expect_nothing_with_ping_barrier(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate()
        await actor.send("<message to='bob@double.test'><body>not for me</body></message>")
        await actor.perform("expect-nothing", {"match": "<message/>"})
        await actor.send(f"<message to='{actor.full_jid}'><body>loop</body></message>")
        with pytest.raises(Failed, match="must not be sent"):
            await actor.expect_nothing("<message><body>loop</body></message>")
        with pytest.raises(HarnessError, match="barrier none needs a closed connection"):
            await actor.expect_nothing("<message/>", barrier="none")

    actor = run_with(pki, tmp_path, body)
    assert "barrier-" in log_text(actor) and "urn:xmpp:ping" in log_text(actor)


def test_expect_nothing_without_barrier_reply(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        await actor.authenticate()
        with pytest.raises(HarnessError, match="order not proven"):
            await actor.expect_nothing("<message/>", within=0.3)

    run_with(pki, tmp_path, body, DoubleConfig(answer_ping=False))


def test_server_closing_and_raw_sends(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        await actor.connect()
        with pytest.raises(HarnessError, match="not well-formed"):
            await actor.send("<message><body></message>")
        await actor.send("<message><body>", raw=True)
        await actor.send(hex="3c2f6d65 7373 ff")  # '</mess' + an invalid UTF-8 byte
        await actor.expect(
            "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
        await actor.expect("<m:closed what='stream'/>")
        await actor.expect("<m:closed what='connection'/>")
        await actor.expect_nothing("<iq/>", barrier="none")
        with pytest.raises(Failed, match="connection closed"):
            await actor.expect("<iq/>", within=5)
        with pytest.raises(Failed, match="cannot send"):
            await actor.send("<presence/>")
        await actor.disconnect()
        await actor.close()

    run_with(pki, tmp_path, body)


def test_actions_before_connect_and_close_is_safe(pki: Pki, tmp_path: Path) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        for action, params in (("send", {"xml": "<presence/>"}), ("expect", {"match": "<iq/>"})):
            with pytest.raises(HarnessError, match="before connect"):
                await actor.perform(action, params)
        await actor.connect(tls="none")
        with pytest.raises(HarnessError, match="bad pattern"):
            await actor.expect("<iq")
        with pytest.raises(HarnessError, match="already connected"):
            await actor.connect(tls="none")
        await actor.close()
        await actor.close()
        await actor.disconnect()

    run_with(pki, tmp_path, body)


def test_a_certificate_check_is_unsupported_when_the_target_file_says_verify_false(
    pki: Pki, tmp_path: Path
) -> None:
    async def body(actor: RawXmppActor, server: XmppDouble) -> None:
        for tls in ("starttls", "direct"):
            with pytest.raises(Unsupported) as raised:
                await actor.connect(tls=tls, verify="required")
            assert str(raised.value) == CERTIFICATE_NOT_CHECKED
        assert not actor.reached_server  # nothing was put to the test
        await actor.connect()  # without the certificate check: connects, unverified
        assert actor.tls_info and actor.tls_info["verified"] is False

    run_with(pki, tmp_path, body, ca=None)


def test_the_certificate_scenario_on_a_target_file_with_verify_false_is_unsupported(tmp_path: Path) -> None:
    scenario = load_scenario(
        PROJECT_ROOT / "scenarios" / "authentication" / "auth.tls.certificate-matches-domain.yaml"
    )
    pki = pki_from_ca(tmp_path / "pki", DOMAIN)
    with running_double(pki, log_file=tmp_path / "double.log") as double:
        target_file = tmp_path / "vendor.yaml"
        target_file.write_text(
            yaml.safe_dump(
                {
                    "name": "vendor",
                    "product": "xmpp-double",
                    "domain": double.domain,
                    "host": double.address,
                    "ports": double.ports,
                    "ca_file": str(pki.ca_file),  # given, and still not used: verify: false wins
                    "verify": False,
                    "accounts": [{"user": "test1", "password": "secret1"}],
                }
            )
        )
        target = load_target_file(target_file)
        assert target.ca_file is None and target.knobs == {"verify_certificate": "false"}
        run = run_item(
            scenario, {role: target for role in scenario.roles}, tmp_path / "ev", DoubleServices(pki)
        )
    assert run.verdict.outcome is Outcome.UNSUPPORTED
    assert run.verdict.reason.endswith(CERTIFICATE_NOT_CHECKED)
    target_file.write_text(target_file.read_text().replace("verify: false", "verify: 'no'"))
    with pytest.raises(CatalogueError, match=r"vendor.yaml:\d+: verify: 'no' is not of type 'boolean'"):
        load_target_file(target_file)
