"""Proofs of the server administration scenarios (XEP-0050 ad-hoc commands, XEP-0133)."""

from __future__ import annotations

from tests.proofs.proof import Proof

PROOFS: dict[str, list[Proof]] = {
    "authz.admin.adhoc-denied-to-non-admin": [
        Proof(
            "adhoc-no-admin-check", "expect eve: forbidden", "attribute type is 'result', expected 'error'"
        ),
        Proof(
            "adhoc-wrong-condition",
            "expect eve: forbidden",
            "missing child {urn:ietf:params:xml:ns:xmpp-stanzas}forbidden",
        ),
    ],
    "authz.admin.adhoc-allowed-to-admin": [
        Proof("adhoc-admin-refused", "expect admin: exec-", "attribute type is 'error', expected 'result'"),
    ],
}
