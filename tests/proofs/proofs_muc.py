"""Proofs of the multi-user chat authorization scenarios (``authz.muc.*``, XEP-0045)."""

from __future__ import annotations

from tests.proofs.proof import Proof

PROOFS: dict[str, list[Proof]] = {
    "authz.muc.members-only-denies-non-member": [
        Proof("muc-members-only-ignored", "expect eve: registration-required", "within 2"),
    ],
    "authz.muc.password-required": [
        Proof("muc-password-ignored", "expect bob: /bob-nopw", "within 2"),
    ],
    "authz.muc.banned-user-rejected": [
        Proof("muc-ban-ignored", "expect eve: forbidden", "within 2"),
    ],
    "authz.muc.moderated-visitor-cannot-speak": [
        Proof("muc-visitor-can-speak", "expect-nothing alice", "visitor speaks"),
    ],
    "authz.muc.non-owner-cannot-configure": [
        Proof("muc-anyone-configures", "expect bob: form-", "forbidden"),
    ],
    "authz.muc.kick-requires-moderator": [
        Proof("muc-anyone-kicks", "expect-nothing carol", "unavailable"),
    ],
}
