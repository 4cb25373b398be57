"""Credentials never reach traces (harness.protocols.xmpp.redact, .streamlog)."""

from __future__ import annotations

import base64

from harness.protocols.xmpp.redact import redact_xml_text
from harness.protocols.xmpp.streamlog import StreamLog

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
