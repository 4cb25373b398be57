"""Proofs of the presence, roster and address authorization scenarios (``authz.presence.*``,
``authz.roster.*``, ``authz.stanza.*``; RFC 6121, RFC 6120 §8.1.2.1)."""

from __future__ import annotations

from tests.proofs.proof import Proof

PROOFS: dict[str, list[Proof]] = {
    "authz.presence.no-leak-without-subscription": [
        Proof("presence-broadcast-to-all", "expect-nothing eve", "to='pnl-eve@"),
    ],
    "authz.presence.probe-no-account-harvesting": [
        Proof(
            "probe-reveals-account",
            "answers-alike eve",
            "existing account: no answer; missing account: <presence",
        ),
    ],
    "authz.presence.subscription-requires-approval": [
        Proof("presence-before-approval", "expect-nothing eve", "type='subscribed'"),
    ],
    "authz.presence.unsubscribe-stops-flow": [
        Proof("unsubscribe-ignored", "expect alice: subscription='none'", "within 2s"),
        Proof("unsubscribe-keeps-presence", "expect-nothing bob", "unsubscribed-"),
    ],
    "authz.presence.directed-presence-only-to-target": [
        Proof("directed-presence-broadcast", "expect-nothing carol", "directed-"),
        Proof("presence-broadcast-to-all", "expect-nothing eve", "to='pdp-eve@"),
        Proof("directed-presence-sticky", "expect-nothing bob", "broadcast-"),
    ],
    "authz.roster.push-only-to-owner": [
        Proof("roster-push-to-all", "expect-nothing eve", "type='set'"),
    ],
    "authz.roster.get-other-user-forbidden": [
        Proof("roster-of-other-user", "expect eve: steal-", "attribute type is 'result'"),
        Proof("roster-set-by-other-user", "expect-nothing alice", "planted-"),
    ],
    "authz.stanza.from-stamped": [
        Proof("no-from-stamping", "expect bob: no-from-", "missing attribute from"),
    ],
    "authz.stanza.spoofed-from-rejected": [
        Proof("trust-client-from", "expect-any", "attribute from is 'carol@"),
    ],
}
