"""Proofs of the publish-subscribe / PEP authorization scenarios (XEP-0060, XEP-0163,
XEP-0223); the flaws live in :mod:`tests.doubles.xmpp_pubsub`."""

from __future__ import annotations

from tests.proofs.proof import Proof

PROOFS: dict[str, list[Proof]] = {
    "authz.pep.presence-access-model": [
        Proof("pep-presence-model-open", "expect eve: items-eve-", "got <iq type='result'"),
        Proof(
            "pep-presence-forbidden",
            "expect eve: items-eve-",
            "missing child {urn:ietf:params:xml:ns:xmpp-stanzas}not-authorized",
        ),
        Proof(
            "pep-notify-unauthorized",
            "expect-nothing eve",
            "received <message type='headline' from='pepp-alice@",
        ),
    ],
    "authz.pep.whitelist-access-model": [
        Proof("pep-whitelist-open", "expect bob: items-bob-", "got <iq type='result'"),
        Proof(
            "pep-whitelist-forbidden",
            "expect bob: items-bob-",
            "missing child {urn:ietf:params:xml:ns:xmpp-stanzas}not-allowed",
        ),
        Proof(
            "pep-notify-unauthorized",
            "expect-nothing bob",
            "received <message type='headline' from='pepw-alice@",
        ),
    ],
    "authz.pubsub.publish-requires-publisher": [
        Proof("pep-anyone-publishes", "expect bob: pub-bob-", "got <iq type='result'"),
        Proof("pep-refused-publish-broadcast", "expect-nothing alice", "intruder-"),
        Proof("pep-refused-publish-stored", "expect alice: items-alice-", "intruder-"),
    ],
}
