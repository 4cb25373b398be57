"""Proofs of the robustness scenarios: each one fails against a double that answers the bad input
wrongly, and (where the scenario sends bad input) against one that crashes after it (the
sessions opened before are dropped) and one that stops accepting logins (new connections are
closed at once)."""

from __future__ import annotations

from tests.proofs.proof import Proof


def _stops_serving() -> list[Proof]:
    """The two ways of no longer serving after bad input, caught by the "still serves" steps."""
    return [
        Proof("crash-on-bad-input", "expect bob: still-serving", "still-serving-"),
        Proof(
            "refuse-after-bad-input", "connect carol", "server ended the stream instead of sending features"
        ),
    ]


PROOFS: dict[str, list[Proof]] = {
    "robust.xml.not-well-formed": [
        Proof("wrong-condition-bad-xml", "expect offender: not-well-formed", "internal-server-error"),
        Proof("silent-on-bad-xml", "expect offender: not-well-formed", "within"),
        *_stops_serving(),
    ],
    "robust.xml.comment": [
        Proof("accept-restricted-xml", "expect offender: stream:error", "within"),
        *_stops_serving(),
    ],
    "robust.xml.processing-instruction": [
        Proof("accept-restricted-xml", "expect offender: stream:error", "within"),
        *_stops_serving(),
    ],
    "robust.xml.entity-expansion-bomb": [
        Proof("silent-on-bad-xml", "expect offender: stream:error", "within"),
        *_stops_serving(),
    ],
    "robust.xml.entity-reference": [
        Proof("silent-on-bad-xml", "expect offender: stream:error", "within"),
        *_stops_serving(),
    ],
    "robust.xml.invalid-utf8": [
        Proof("silent-on-bad-xml", "expect offender: stream:error", "within"),
        *_stops_serving(),
    ],
    "robust.xml.undeclared-prefix": [
        Proof("silent-on-bad-xml", "expect offender: stream:error", "within"),
        *_stops_serving(),
    ],
    "robust.stream.arbitrary-first-level-element": [
        Proof("route-arbitrary-elements", "expect-nothing bob", "foo"),
        *_stops_serving(),
    ],
    "robust.stream.host-unknown": [
        Proof("serve-unknown-host", "connect offender", "instead of a stream error"),
        *_stops_serving(),
    ],
    "robust.stream.invalid-namespace": [
        Proof("accept-any-stream-namespace", "connect offender", "instead of a stream error"),
        *_stops_serving(),
    ],
    "robust.stream.bad-namespace-prefix": [
        Proof("prefix-refused-without-error", "expect offender", "closed"),
        *_stops_serving(),
    ],
    "robust.stream.unsupported-version": [
        Proof("echo-stream-version", "expect offender", "11.0"),
        *_stops_serving(),
    ],
    "robust.jid.localpart-too-long": [
        Proof("accept-long-jid", "expect offender: jid-malformed", "nothing like it received"),
    ],
    "robust.stanza.oversized": [
        Proof("drop-oversized-stanza", "expect-any", "big-", long=True),
    ],
    "robust.stream.slow-partial-stanza": [
        Proof("partial-stanza-blocks-others", "expect bob: still-serving", "still-serving-"),
    ],
    "robust.stream.many-connections": [
        Proof("overload-drops-stanzas", "expect bob: many-", "many-"),
    ],
}
