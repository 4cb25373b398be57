"""The figures at the top of the HTML report: verdict totals, run time, who leads per category.

The scores themselves come from :func:`harness.report.matrix.score`, so the HTML summary and
``matrix.md`` never disagree; this module only ranks and counts on top of them.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter

from harness.results import LEVELS, POLICY, RunRecord
from harness.verdict import Outcome

__all__ = ["LEAD_RULE", "Scores", "key_log_text", "leaders", "run_seconds", "seconds_text", "totals"]

# score()'s shape: target -> category -> level -> (passed, total, unsupported)
Scores = dict[str, dict[str, dict[str, tuple[int, int, int]]]]

LEAD_RULE = (
    "leads: the highest share of MUST items passed, then of SHOULD, then of MAY, then of policy "
    "checks (unsupported items left out, as in the score); ties share the lead"
)


def totals(run: RunRecord) -> list[tuple[str, int]]:
    """``[(verdict, count)]`` for every verdict, zeros included, in the verdicts' own order."""
    counts = Counter(item.outcome for item in run.items)
    return [(outcome.value, counts[outcome.value]) for outcome in Outcome]


def run_seconds(run: RunRecord) -> float:
    """Wall-clock length of the run from its start and finish timestamps."""
    started = _dt.datetime.fromisoformat(run.started_at)
    finished = _dt.datetime.fromisoformat(run.finished_at)
    return max(0.0, (finished - started).total_seconds())


def seconds_text(seconds: float) -> str:
    """``42 s``, ``4 min 12 s``, ``1 h 3 min``: what a reader takes in at a glance."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _shares(levels: dict[str, tuple[int, int, int]]) -> tuple[float, ...]:
    return tuple(
        passed / total if total else 0.0
        for passed, total, _ in (levels.get(level, (0, 0, 0)) for level in (*LEVELS, POLICY))
    )


def leaders(scores: Scores, category: str) -> list[str]:
    """The targets that lead ``category`` by :data:`LEAD_RULE`, in the scores' order; none when
    no target passed anything there (a lead of nothing would read as praise)."""
    shares = {target: _shares(cats[category]) for target, cats in scores.items() if category in cats}
    best = max(shares.values(), default=())
    if not any(best):
        return []
    return [target for target, share in shares.items() if share == best]


# the driver of targets the harness does not run: their accounts are their owners' (a vendor's)
EXTERNAL = "external"


def key_log_text(run: RunRecord) -> tuple[bool, str]:
    """Whose TLS keys the run folder holds, as ``(warning, sentence)``: with a key log beside a
    pcap anyone holding the folder can read the SASL exchanges, so readers must know whose
    secrets those are (``warning``: the vendors' accounts' keys were written, ``--keylog``)."""
    foreign = [t["name"] for t in run.targets if t.get("driver") == EXTERNAL]
    ours = [t["name"] for t in run.targets if t.get("driver") != EXTERNAL]
    parts = []
    if ours:
        parts.append(
            f"TLS key logs (tls-keys.log per item) were written for {', '.join(ours)}: the harness "
            "ran them, and their accounts are throwaway ones made for this run."
        )
    if foreign and run.selection.get("keylog"):
        parts.append(
            f"Warning: TLS key logs were written for {', '.join(foreign)} too (--keylog): anyone "
            "holding this folder can decrypt the SASL exchanges of their owners' accounts."
        )
    elif foreign:
        parts.append(
            f"No TLS key log was written for {', '.join(foreign)}: their accounts are their "
            "owners', so those items' TLS stays encrypted in the pcaps (--keylog writes them)."
        )
    return bool(foreign and run.selection.get("keylog")), " ".join(parts)
