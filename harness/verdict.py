"""The five verdicts of an item and the exceptions that steps raise to reach them.

A step never returns a verdict: it either completes or raises one of these. The runner maps
them to a :class:`Verdict`; anything else that escapes a step is the harness's own ``error``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    UNSUPPORTED = "unsupported"
    XFAIL = "xfail"
    XPASS = "xpass"  # listed as a known failure in the baseline, but passed


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""

    def __post_init__(self) -> None:
        # One line only: reasons end up in matrix cells and JUnit messages.
        object.__setattr__(self, "reason", " ".join(self.reason.split()))


@dataclass(frozen=True)
class Observation:
    """What a completed step saw, in one line (e.g. ``received <failure [not-authorized]>``).

    On the step a scenario marks ``decisive`` it is the evidence a ``pass`` rests on. A step can
    complete without putting the rule to the test (a refusal of something the target never
    offered to anyone): ``exercised=False`` then makes the item ``unsupported``, never ``pass``.
    """

    text: str
    exercised: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", " ".join(self.text.split()))


class StepOutcome(Exception):
    """Base of the exceptions that end an item with a verdict other than pass."""

    outcome: Outcome = Outcome.ERROR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Failed(StepOutcome):
    """The target broke the rule the scenario checks."""

    outcome = Outcome.FAIL


class Unsupported(StepOutcome):
    """The target lacks an optional feature the scenario needs."""

    outcome = Outcome.UNSUPPORTED


class HarnessError(StepOutcome):
    """The harness or the target could not do its part (crash, timeout, setup)."""

    outcome = Outcome.ERROR


class TargetError(HarnessError):
    """A target could not be started, reached or provisioned."""
