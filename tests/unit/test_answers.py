"""The comparison behind ``answers-alike``: what counts as the same answer (RFC 6120 §13.11)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from harness.protocols.xmpp.answers import answered_stanzas, judge, labelled_addressees, send_problems, shape
from harness.verdict import Failed, HarnessError

C = "jabber:client"
S = "urn:ietf:params:xml:ns:xmpp-stanzas"


def el(xml: str) -> ET.Element:
    return ET.fromstring(
        xml.replace("<presence", f"<presence xmlns='{C}'", 1).replace("<iq", f"<iq xmlns='{C}'", 1)
    )


def test_addressing_is_not_part_of_the_answer() -> None:
    a = el("<presence type='unsubscribed' from='bob@x.test' to='eve@x.test' id='1'/>")
    b = el("<presence id='2' to='eve@x.test' from='nosuch@x.test' type='unsubscribed'/>")
    assert shape(a) == shape(b) == "<presence type='unsubscribed'/>"


def test_an_error_text_makes_answers_differ() -> None:
    def error(text: str) -> ET.Element:
        return el(
            f"<presence type='error' from='a@x.test'><error type='cancel'><service-unavailable xmlns='{S}'/>"
            f"<text xmlns='{S}'>{text}</text></error></presence>"
        )

    with pytest.raises(Failed, match="existing: .*User session not found.*; missing: "):
        judge({"existing": [error("User session not found")], "missing": [error("No such user")]}, "barrier")


def test_no_answer_against_an_answer_fails_and_alike_passes() -> None:
    unsubscribed = el("<presence type='unsubscribed' from='nosuch@x.test'/>")
    with pytest.raises(Failed, match="existing: no answer; missing: <presence type='unsubscribed'/>"):
        judge({"existing": [], "missing": [unsubscribed]}, "barrier")
    seen = judge({"existing": [], "missing": []}, "barrier")
    assert "existing and missing got the same answer: no answer" in seen.text
    assert seen.exercised


def test_alike_before_the_connection_ended_proves_nothing() -> None:
    seen = judge({"existing": [], "missing": []}, None)
    assert not seen.exercised and "ended before the barrier" in seen.text


def test_answers_are_the_stanzas_from_each_address() -> None:
    pending = [
        el("<presence type='unsubscribed' from='Bob@x.test/phone'/>"),
        el("<iq type='result' from='x.test' id='barrier-1'/>"),
        el("<presence type='unsubscribed' from='carol@x.test'/>"),
    ]
    got = answered_stanzas(pending, {"existing": "bob@x.test", "missing": "nosuch@x.test"})
    assert [len(v) for v in got.values()] == [1, 0]


def test_each_stanza_needs_its_own_address() -> None:
    with pytest.raises(HarnessError, match="needs a 'to'"):
        labelled_addressees({"a": "<presence type='probe'/>", "b": "<presence type='probe' to='b@x'/>"})
    with pytest.raises(HarnessError, match="different addresses"):
        labelled_addressees({"a": "<presence to='b@x/r'/>", "b": "<presence type='probe' to='b@x'/>"})


def test_validate_names_the_stanza_without_an_address() -> None:
    problems = send_problems(
        {"existing": "<presence type='probe'/>", "missing": "<presence to='${bob.jid}'/>"}
    )
    assert problems == [
        "send: existing: every stanza needs a 'to' (the address it asks about): <presence type='probe'/>"
    ]
