"""An ``expect`` ends as soon as its outcome is certain, and says why (RFC 6120's one-answer rules)."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest

from harness.protocols.xmpp.inbox import Inbox, rules_out
from harness.protocols.xmpp.match import closed_event, compile_pattern
from harness.verdict import Failed

CLIENT = "jabber:client"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
STREAM = "http://etherx.jabber.org/streams"
DEADLINE_S = 30.0  # far beyond what any decided expect may take


def _el(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def _expect(elements: list[ET.Element], match: str | list[str]) -> tuple[float, ET.Element | Exception]:
    """Run an expect over elements that arrive one by one; (seconds it took, element or failure)."""

    async def go() -> tuple[float, ET.Element | Exception]:
        inbox = Inbox()
        loop = asyncio.get_running_loop()

        async def feed() -> None:
            for el in elements:
                await asyncio.sleep(0)
                inbox.put(el)

        feeder = asyncio.create_task(feed())
        started = time.monotonic()
        try:
            got: ET.Element | Exception = await inbox.expect(match, loop.time() + DEADLINE_S, DEADLINE_S)
        except Failed as exc:
            got = exc
        await feeder
        return time.monotonic() - started, got

    return asyncio.run(go())


IQ_ERROR = f"<iq xmlns='{CLIENT}' type='error' id='p1'><error type='cancel'/></iq>"


def test_an_iq_error_with_the_same_id_decides_an_expected_result_at_once() -> None:
    took, got = _expect([_el(IQ_ERROR)], "<iq type='result' id='p1'/>")
    assert isinstance(got, Failed) and took < DEADLINE_S / 2
    assert "IQ p1 has its one reply" in got.reason
    assert "type='error'" in got.reason  # what arrived is in the reason


def test_a_reply_to_another_id_does_not_decide() -> None:
    """Waiting goes on (the expect would run into its deadline): the reply is someone else's."""
    pattern = compile_pattern("<iq type='result' id='p2'/>")
    assert rules_out(pattern, _el(IQ_ERROR)) is None
    assert rules_out(compile_pattern("<iq type='result' id='*'/>"), _el(IQ_ERROR)) is None


def test_an_alternative_still_possible_keeps_the_expect_waiting() -> None:
    """The error rules out the first alternative only; the message that comes after matches."""
    message = f"<message xmlns='{CLIENT}' id='m1'/>"
    _, got = _expect([_el(IQ_ERROR), _el(message)], ["<iq type='result' id='p1'/>", "<message/>"])
    assert isinstance(got, ET.Element) and got.get("id") == "m1"


def test_a_sasl_outcome_decides_the_other_outcome() -> None:
    took, got = _expect(
        [_el(f"<failure xmlns='{SASL}'><not-authorized/></failure>")], f"<success xmlns='{SASL}'/>"
    )
    assert isinstance(got, Failed) and "a SASL exchange has one outcome" in got.reason


def test_a_stream_error_decides_every_stanza_but_not_the_streams_end() -> None:
    error = _el(
        f"<error xmlns='{STREAM}'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>"
    )
    _, got = _expect([error], "<message/>")
    assert isinstance(got, Failed) and "stream error" in got.reason
    assert rules_out(compile_pattern("<m:closed/>"), error) is None
    assert rules_out(compile_pattern("<m:any/>"), error) is None


def test_the_servers_close_of_its_stream_decides() -> None:
    _, got = _expect([closed_event("stream")], "<presence/>")
    assert isinstance(got, Failed) and "closed its stream" in got.reason


def test_every_alternative_must_be_ruled_out() -> None:
    """One alternative decided, the other still possible: the expect keeps waiting."""
    patterns = ["<iq type='result' id='p1'/>", "<message/>"]
    assert rules_out(compile_pattern(patterns[0]), _el(IQ_ERROR))
    assert rules_out(compile_pattern(patterns[1]), _el(IQ_ERROR)) is None


@pytest.mark.parametrize("wanted", ["<iq type='result' id='p1'/>", f"<success xmlns='{SASL}'/>"])
def test_an_element_that_matches_is_never_a_reason_to_fail(wanted: str) -> None:
    pattern = compile_pattern(wanted)
    el = _el(
        f"<iq xmlns='{CLIENT}' type='result' id='p1'/>" if "iq" in wanted else f"<success xmlns='{SASL}'/>"
    )
    assert pattern.matches(el) and rules_out(pattern, el) is None
