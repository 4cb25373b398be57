"""Credentials never reach traces (harness.protocols.xmpp.redact, .streamlog)."""

from __future__ import annotations

import base64
import re

import pytest

from harness.actors import Actor
from harness.protocols.xmpp.redact import redact_xml_text
from harness.protocols.xmpp.sasl import Scram
from harness.protocols.xmpp.streamlog import StreamLog
from harness.trace.redaction import LEFTOVER, LITERAL_MIN

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
PASSWORD = "s3cret-Pa55"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_plain_auth_is_redacted_in_every_quoting_style() -> None:
    payload = b64(b"\0alice\0" + PASSWORD.encode())
    for text in (
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>{payload}</auth>",
        f'<auth xmlns="{SASL}" mechanism="PLAIN">{payload}</auth>',
        f"<sasl:auth xmlns:sasl='{SASL}' mechanism='PLAIN'>{payload}</sasl:auth>",
        f"<auth mechanism = 'PLAIN' xmlns='{SASL}'>\n{payload}\n</auth>",
    ):
        out = redact_xml_text(text, [PASSWORD])
        assert payload not in out
        assert "[redacted: 18 bytes, contains credentials]" in out
        assert "mechanism" in out  # the element itself stays readable


def test_plain_is_redacted_without_knowing_the_secret() -> None:
    payload = b64(b"admin@x.test\0alice\0unknown-password")
    out = redact_xml_text(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{payload}</auth>", [])
    assert payload not in out and "contains credentials" in out
    # a PLAIN message in a <response> (no initial response) is recognised by its NULs
    out = redact_xml_text(f"<response xmlns='{SASL}'>{payload}</response>", [])
    assert payload not in out and "contains credentials" in out


def test_any_payload_containing_a_secret_is_redacted() -> None:
    payload = b64(b"token=" + PASSWORD.encode())
    out = redact_xml_text(f"<auth xmlns='{SASL}' mechanism='X-OAUTH2'>{payload}</auth>", [PASSWORD])
    assert payload not in out and "contains credentials" in out


def test_scram_client_first_untouched_and_final_proof_redacted() -> None:
    first = (
        f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-1'>{b64(b'n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL')}</auth>"
    )
    assert redact_xml_text(first, [PASSWORD]) == first
    final_msg = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    final = f"<response xmlns='{SASL}'>{b64(final_msg)}</response>"
    out = redact_xml_text(final, [PASSWORD])
    assert b64(final_msg) not in out
    redacted_payload = out.split(">", 1)[1].split("<", 1)[0]
    decoded = base64.b64decode(redacted_payload)
    assert decoded == b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=[redacted]"


def test_payload_without_credentials_is_untouched() -> None:
    for text in (
        f"<challenge xmlns='{SASL}'>{b64(b'r=abc,s=QSXCR+Q6sek8bf92,i=4096')}</challenge>",
        f"<success xmlns='{SASL}'>{b64(b'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=')}</success>",
        f"<auth xmlns='{SASL}' mechanism='EXTERNAL'>=</auth>",
        f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>",
        f"<failure xmlns='{SASL}'><not-authorized/></failure>",
        "<message to='bob@x.test'><body>hello</body></message>",
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>not base64 at all!</auth>",
    ):
        assert redact_xml_text(text, [PASSWORD]) == text


def test_other_namespaces_auth_is_not_decoded() -> None:
    # a PLAIN-looking payload in another protocol's <auth> is left to the literal pass
    payload = b64(b"\0alice\0x")
    text = f"<auth xmlns='urn:example:other'>{payload}</auth>"
    assert redact_xml_text(text, [PASSWORD]) == text


def test_literal_secrets_and_password_elements() -> None:
    register = (
        "<iq type='set' id='r1'><query xmlns='jabber:iq:register'>"
        f"<username>alice</username><password>{PASSWORD}</password></query></iq>"
    )
    out = redact_xml_text(register, [PASSWORD])
    assert PASSWORD not in out and "<password>[redacted]</password>" in out
    # even a password we were not told about
    out = redact_xml_text("<query xmlns='jabber:iq:auth'><password>other</password></query>", [])
    assert "other" not in out
    assert (
        redact_xml_text("<query xmlns='jabber:iq:auth'><digest>abcdef0123</digest></query>", []).count(
            "abcdef0123"
        )
        == 0
    )
    # literal anywhere, also XML-escaped
    amp = "pa&ss<word>"
    body = "<message><body>my password is pa&amp;ss&lt;word&gt; and " + amp + "</body></message>"
    out = redact_xml_text(body, [amp])
    assert "pa&amp;ss" not in out and amp not in out and out.count("[redacted]") == 2
    # empty secrets are ignored (they would match everywhere)
    assert redact_xml_text("<iq/>", ["", PASSWORD]) == "<iq/>"


def test_stream_log_redacts_and_flushes(tmp_path) -> None:
    log = StreamLog(tmp_path / "ev" / "alice.xmpp.log", [PASSWORD], title="test")
    payload = b64(b"\0alice\0" + PASSWORD.encode())
    log.sent(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{payload}</auth>")
    log.received(f"<success xmlns='{SASL}'/>")
    log.event("TLS established: TLSv1.3 TLS_AES_256_GCM_SHA384")
    log.add_secret("later-secret")
    log.sent("<x>later-secret\nsecond line\0</x>")
    # flushed on every write: readable before close
    text = (tmp_path / "ev" / "alice.xmpp.log").read_text()
    assert PASSWORD not in text and payload not in text and "later-secret" not in text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(lines) == 5
    assert lines[0].split()[1] == "C->S" and float(lines[0].split()[0]) >= 0
    assert lines[1].split()[1] == "S->C"
    assert lines[2].split()[1] == "--"
    assert lines[4].split()[1] == "C->S" and lines[4].endswith("second line\\x00</x>")
    log.close()
    log.event("after close: reopened in append mode")
    log.close()
    assert (tmp_path / "ev" / "alice.xmpp.log").read_text().count("# xmpp stream log") == 1


def test_stream_log_is_lazy(tmp_path) -> None:
    log = StreamLog(tmp_path / "nothing.xmpp.log")
    log.close()
    assert not (tmp_path / "nothing.xmpp.log").exists()


def test_stream_log_follows_a_shared_secret_list(tmp_path) -> None:
    shared: list[str] = []
    log = StreamLog(tmp_path / "a.xmpp.log", shared)
    shared.append("bobs-password")  # another actor, built later
    log.received("<body>bobs-password</body>")
    log.close()
    assert "bobs-password" not in (tmp_path / "a.xmpp.log").read_text()


# -- structural redaction: short secrets leave other text alone, long ones go everywhere ----------

SHORT = "pa"  # e.g. from an external target file
STREAM = (
    f"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    f"to='x.test' version='1.0'><stream:features><mechanisms xmlns='{SASL}'>"
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
)


def test_a_short_secret_does_not_mangle_namespaces_or_words() -> None:
    text = STREAM + "<message><body>a spa, a paper, params and a passport</body></message>"
    assert redact_xml_text(text, [SHORT]) == text
    assert Actor.redact(text, [SHORT]) == text  # the protocol-neutral passes alone
    assert SASL in redact_xml_text(f"<success xmlns='{SASL}'/>", [SHORT])


def test_a_short_password_in_a_plain_payload_is_gone() -> None:
    payload = b64(b"\0alice\0" + SHORT.encode())
    out = redact_xml_text(STREAM + f"<auth xmlns='{SASL}' mechanism='PLAIN'>{payload}</auth>", [SHORT])
    assert payload not in out and "contains credentials" in out and SASL in out
    # also in a <response>, where the mechanism is not named: two NULs make it PLAIN
    assert payload not in redact_xml_text(f"<response xmlns='{SASL}'>{payload}</response>", [SHORT])


def test_a_scram_exchange_with_a_short_password_keeps_no_proof() -> None:
    scram = Scram("SCRAM-SHA-1", "alice", SHORT, cnonce="fyko+d2lbbFgONRv9qkxdawL")
    first = scram.client_first()
    server_first = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    final = scram.client_final(server_first)
    exchange = (
        f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-1'>{b64(first)}</auth>"
        f"<challenge xmlns='{SASL}'>{b64(server_first)}</challenge>"
        f"<response xmlns='{SASL}'>{b64(final)}</response>"
    )
    out = redact_xml_text(exchange, [SHORT])
    proof = final.rsplit(b"p=", 1)[1]
    payloads = [base64.b64decode(p) for p in re.findall(r">([A-Za-z0-9+/=]+)<", out)]
    assert payloads[:2] == [first, server_first]  # nothing secret in them: kept as evidence
    assert payloads[2].endswith(b",p=[redacted]") and all(proof not in p for p in payloads)
    assert out.count(SASL) == 3


def test_a_short_password_in_register_and_iq_auth_is_gone() -> None:
    register = (
        "<iq type='set' id='r1'><query xmlns='jabber:iq:register'>"
        f"<username>alice</username><password>{SHORT}</password></query></iq>"
    )
    assert redact_xml_text(register, [SHORT]) == register.replace(f">{SHORT}<", ">[redacted]<")
    form = (
        "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>jabber:iq:register</value></field>"
        f"<field type='text-private' var='password'><value>{SHORT}</value></field></x></query>"
    )
    out = redact_xml_text(form, [])  # a data form's password field, even when the secret is unknown
    assert f">{SHORT}<" not in out and "<value>[redacted]</value>" in out and "jabber:iq:register" in out
    iq_auth = f"<query xmlns='jabber:iq:auth'><username>alice</username><password>{SHORT}</password></query>"
    assert f">{SHORT}<" not in redact_xml_text(iq_auth, [SHORT])


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        (
            f"ejabberdctl --config-dir /run/x --ctl-config /run/x/ejabberdctl.cfg register alice x.test {SHORT}",
            "register alice x.test [redacted]",
        ),
        (
            f"['ejabberdctl', '--config-dir', '/run/x', 'register', 'alice', 'x.test', '{SHORT}']",
            "'register', 'alice', 'x.test', '[redacted]']",
        ),
        (f"prosodyctl --config /run/p.cfg.lua register alice x.test {SHORT}", "alice x.test [redacted]"),
        (f"ejabberdctl change_password alice x.test {SHORT} done", "x.test [redacted] done"),
        (
            f"mongooseimctl account registerUser --domain x.test --username alice --password {SHORT}",
            "--password [redacted]",
        ),
        (f"sh /run/openfire-admin.sh create-user alice '{SHORT}'", "create-user alice '[redacted]'"),
    ],
)
def test_a_short_password_on_an_admin_command_line_is_gone(line: str, redacted: str) -> None:
    for redact in (redact_xml_text, Actor.redact):
        out = redact(f"2024-05-01 12:00:00 [info] ran: {line}\nnext line: params", [SHORT])
        assert redacted in out and "next line: params" in out
        assert SHORT not in re.sub(r"\w*pass\w*|params", "", out)


def test_the_guard_reports_a_secret_left_standing_alone() -> None:
    for text in (
        f"<message><body>{SHORT}</body></message>",
        f"<x attr='{SHORT}'/>",
        f"login failed for alice (password={SHORT}) from 127.0.0.1",
        f'{{"user": "alice", "password": "{SHORT}"}}',
    ):
        out = redact_xml_text(text, [SHORT])
        assert LEFTOVER in out, text
        assert SHORT not in out.replace(LEFTOVER, "").replace("password", ""), out


def test_a_long_secret_is_removed_wherever_it_appears() -> None:
    secret = "Hunter2-long"
    assert len(secret) >= LITERAL_MIN
    text = f"{STREAM}<body>x{secret}y and user:{secret}</body> log: auth alice/{secret}, urn:{secret}:z"
    out = redact_xml_text(text, [secret])
    assert secret not in out and out.count("[redacted]") == 4 and SASL in out
    assert secret not in Actor.redact(text, [secret])
