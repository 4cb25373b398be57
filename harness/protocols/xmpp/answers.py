"""The ``answers-alike`` action: several stanzas sent to different addresses must get answers that
a stranger cannot tell apart (RFC 6120 §13.11, directory harvesting: "subtle differences in the
exact XML of error stanzas ... can enable an attacker to determine the network presence of a
user").

The actor sends the stanzas in order, then two ordering barriers (an XEP-0199 ping round trip,
the second sent once the first's reply is here: an answer that another process of the server
produced beside the first reply has arrived by the second). The answers to a stanza are the
stanzas that came back *from* the address it was sent to (its bare JID, or a full JID of it). Each
answer is compared as XML without its addressing (``from``, ``to``, ``id``), children and
attributes in a fixed order, so a different type, condition, error text or payload counts; no
answer at all is an answer too. All alike is the step's observation (what each got); any
difference fails it, naming what each address got.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from harness.protocols.xmpp.elements import local, serialize
from harness.protocols.xmpp.inbox import WITHIN_SCHEMA, params_schema
from harness.verdict import Failed, HarnessError, Observation

ANSWERS_ALIKE_SCHEMA = params_schema(
    {
        "send": {
            "type": "object",
            "minProperties": 2,
            "additionalProperties": {"type": "string", "minLength": 1},
            "description": "label -> stanza, sent in this order; each stanza needs a 'to'",
        },
        "within": WITHIN_SCHEMA,
    },
    required=["send"],
)

_STANZAS = frozenset({"message", "presence", "iq"})
_ADDRESSING = ("from", "to", "id")


def send_problems(send: dict[str, Any]) -> list[str]:
    """What is wrong with ``send`` before the run (placeholders stand in as plain text)."""
    problems = []
    for label, xml in send.items():
        try:
            addressee(xml)
        except HarnessError as exc:
            problems.append(f"send: {label}: {str(exc).removeprefix('answers-alike: ')}")
    return problems


def addressee(xml: str) -> str:
    """The bare JID a stanza is sent to (its answers come from it)."""
    try:
        to = ET.fromstring(xml).get("to")
    except ET.ParseError as exc:
        raise HarnessError(f"answers-alike: not well-formed XML ({exc})") from None
    if not to:
        raise HarnessError(f"answers-alike: every stanza needs a 'to' (the address it asks about): {xml}")
    return bare(to)


def bare(jid: str) -> str:
    return jid.split("/", 1)[0].lower()


def is_answer_from(el: ET.Element, jid: str) -> bool:
    return local(el.tag) in _STANZAS and bare(el.get("from", "")) == jid


def shape(el: ET.Element) -> str:
    """The answer as a stranger compares it: its XML without addressing, in a fixed order."""
    return serialize(_canonical(el, _ADDRESSING))


def _canonical(el: ET.Element, drop: tuple[str, ...] = ()) -> ET.Element:
    copy = ET.Element(el.tag, {k: v for k, v in sorted(el.attrib.items()) if k not in drop})
    copy.text = (el.text or "").strip() or None
    for child in sorted(el, key=lambda c: ET.tostring(c)):
        copy.append(_canonical(child))
    return copy


def describe(answers: list[ET.Element]) -> str:
    return " + ".join(shape(a) for a in answers) if answers else "no answer"


def judge(answers: dict[str, list[ET.Element]], proof: str | None) -> Observation:
    """Alike: the observation says what they all got; otherwise a failure naming each answer.
    ``proof`` is what shows that every answer is in (None: the connection ended before the
    barrier's reply, so answers alike so far prove nothing)."""
    described = {label: describe(got) for label, got in answers.items()}
    by = f" (by {proof})" if proof else " (the connection ended before the barrier's reply)"
    if len(set(described.values())) == 1:
        only = next(iter(described.values()))
        return Observation(
            f"{' and '.join(described)} got the same answer: {only}{by}", exercised=proof is not None
        )
    each = "; ".join(f"{label}: {what}" for label, what in described.items())
    raise Failed(f"the answers differ, so a stranger can tell these addresses apart: {each}{by}")


def answered_stanzas(pending: list[ET.Element], jids: dict[str, str]) -> dict[str, list[ET.Element]]:
    """Per label, the received stanzas that came from its addressee."""
    return {label: [el for el in pending if is_answer_from(el, jid)] for label, jid in jids.items()}


def labelled_addressees(send: dict[str, Any]) -> dict[str, str]:
    jids = {label: addressee(xml) for label, xml in send.items()}
    if len(set(jids.values())) < len(jids):
        raise HarnessError("answers-alike: the stanzas must go to different addresses")
    return jids
