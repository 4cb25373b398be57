"""Proofs of the personal data authorization scenarios: archives (XEP-0313), private XML
storage (XEP-0049) and vCards (XEP-0054); the flaws live in :mod:`tests.doubles.xmpp_personal`."""

from __future__ import annotations

from tests.proofs.proof import Proof

PROOFS: dict[str, list[Proof]] = {
    "authz.mam.only-owner-reads-archive": [
        Proof("mam-archive-open", "expect eve: mam-eve-", "got <iq type='result'"),
        Proof("mam-results-before-error", "expect-nothing eve", "from='mam-alice@"),
    ],
    "authz.private.other-user-forbidden": [
        Proof("private-storage-open", "expect eve: priv-eve-get-", "got <iq type='result'"),
        Proof("private-storage-writable-by-others", "expect eve: priv-eve-set-", "got <iq type='result'"),
    ],
    "authz.vcard.only-owner-edits": [
        Proof("vcard-anyone-sets", "expect eve: vc-eve-", "got <iq type='result'"),
        Proof("vcard-set-error-but-stored", "expect alice: vc-read-", "FN"),
    ],
}
