"""Proofs of the blocking scenarios (XEP-0191): the flaws of the double each one must catch."""

from __future__ import annotations

from tests.proofs.proof import Proof

PROOFS: dict[str, list[Proof]] = {
    "authz.blocking.block-messages": [
        Proof("block-ignored-messages", "expect-nothing bob", "matches <message><body>after-block-full-"),
        Proof("blocker-outbound-routed", "expect bob: not-acceptable", "expected <message type='error'"),
        Proof(
            "blocker-outbound-no-condition",
            "expect bob: not-acceptable",
            "missing child {urn:xmpp:blocking:errors}blocked",
        ),
        Proof("block-no-push", "expect bob: <iq type='set'><block", "expected <iq type='set'><block>"),
    ],
    "authz.blocking.blocked-message-error": [
        Proof("blocked-message-dropped", "expect alice: bare-", "expected <message type='error'"),
    ],
    "authz.blocking.block-presence": [
        Proof("block-ignored-presence", "expect-nothing bob", "matches <presence><status>after-block-"),
    ],
    "authz.blocking.blocked-user-gets-error-or-nothing": [
        Proof("blocked-iq-dropped", "expect alice: q2-", "expected <iq type='error'"),
        Proof("blocked-presence-bounced", "expect-nothing alice", "matches <presence type='error'/>"),
        Proof("blocked-iq-result-bounced", "expect-nothing alice", "received <iq type='error' id='r-"),
    ],
    "authz.blocking.unavailable-to-blocked": [
        Proof("block-without-unavailable", "expect alice: unavailable", "within"),
    ],
}
