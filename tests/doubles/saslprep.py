"""SASLprep (RFC 4013, a stringprep profile of RFC 3454) for the test double.

Written from the RFCs with the standard library's ``stringprep`` tables, on purpose *not* the
harness's ``saslprep`` (which delegates to slixmpp): the double checks the actor, so it must not
share the actor's implementation, or a bug in it would be invisible to the saslprep scenario.
"""

from __future__ import annotations

import stringprep
import unicodedata

_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space (mapped to SPACE before this check, so never hit)
    stringprep.in_table_c21,  # ASCII control
    stringprep.in_table_c22,  # non-ASCII control
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties / deprecated
    stringprep.in_table_c9,  # tagging characters
)


class SaslprepError(ValueError):
    """The string contains a prohibited character or breaks the bidi rules."""


def saslprep(text: str, *, stored: bool = False) -> str:
    """Prepare ``text`` (RFC 4013 §2). ``stored``: a stored string, where unassigned code points
    are prohibited too (RFC 3454 §7); queries allow them."""
    # §2.1 mapping: non-ASCII space -> SPACE, "commonly mapped to nothing" (B.1) -> nothing
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c))
    # §2.2 normalization: Unicode normalization form KC, with the Unicode 3.2 tables of RFC 3454
    out = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    # §2.3 prohibited output
    for char in out:
        if any(check(char) for check in _PROHIBITED):
            raise SaslprepError(f"prohibited character U+{ord(char):04X}")
        if stored and stringprep.in_table_a1(char):
            raise SaslprepError(f"unassigned code point U+{ord(char):04X}")
    # §2.4 bidirectional characters (RFC 3454 §6)
    if any(stringprep.in_table_d1(c) for c in out):
        if any(stringprep.in_table_d2(c) for c in out):
            raise SaslprepError("both RandALCat and LCat characters")
        if not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise SaslprepError("RandALCat string does not start and end with RandALCat")
    return out
