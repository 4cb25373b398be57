"""The double's own parts that the proofs rely on but do not exercise one by one."""

from __future__ import annotations

import pytest

from tests.doubles.saslprep import SaslprepError, saslprep
from tests.doubles.xmpp_server import FLAWS, DoubleConfig


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("I\u00adX", "IX"),  # RFC 4013 §3 examples: SOFT HYPHEN mapped to nothing
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),  # <ORDINAL INDICATOR> -> NFKC
        ("\u2168", "IX"),  # <ROMAN NUMERAL NINE> -> NFKC
        ("cafe\u0301\u00a0noir", "caf\u00e9 noir"),  # the saslprep scenario's password
    ],
)
def test_saslprep_rfc4013_examples(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared


@pytest.mark.parametrize("bad", ["\u0007", "\u0627\u0031"])  # control; bidi rule (RFC 4013 §3)
def test_saslprep_prohibits(bad: str) -> None:
    with pytest.raises(SaslprepError):
        saslprep(bad)


def test_flaws_are_checked_and_documented() -> None:
    with pytest.raises(ValueError, match="unknown flaw"):
        DoubleConfig(flaws={"no-such-flaw"})
    assert all(description.strip() for description in FLAWS.values())
    assert DoubleConfig().tls_required and DoubleConfig().offered(tls=False) == []
    assert "PLAIN" in DoubleConfig(flaws={"plain-before-tls"}).offered(tls=False)
    assert "PLAIN" not in DoubleConfig(flaws={"tls-optional"}).offered(tls=False)
