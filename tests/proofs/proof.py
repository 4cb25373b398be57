"""A proof that a scenario can fail: the flaws of the double under which it must fail.

``tests/proofs/test_can_fail.py`` runs them; the proofs of a group of scenarios may live in a
module ``tests/proofs/proofs_<group>.py`` of their own (a dict ``PROOFS``), merged there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Proof:
    """A flaw (or several) of the double under which a scenario must fail.

    ``step``: the step that must catch it, as ``"ACTION [ACTOR][: TEXT]"``; TEXT is a piece of
    the step's parameters (e.g. its match pattern), needed when several steps fit.
    ``says``: a piece of the fail reason (what the step noticed).
    ``long``: the failure waits out a ``within`` of the scenario itself (run in the background).
    """

    flaws: tuple[str, ...]
    step: str
    says: str
    long: bool = False

    def __init__(self, flaws: str | tuple[str, ...], step: str, says: str, long: bool = False) -> None:
        object.__setattr__(self, "flaws", (flaws,) if isinstance(flaws, str) else tuple(flaws))
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "says", says)
        object.__setattr__(self, "long", long)
