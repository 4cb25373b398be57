"""Server health over the run, per target: how many items' log slices showed errors or crash
reports the server logged (harness/trace/health.py), whatever their verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.report.markdown import escape_md, table
from harness.results import RunRecord

INTRO = (
    "Errors and crash reports each server logged during the items (its log slices), counted "
    "whatever the verdict: a crash on a valid request is worth knowing even when the item passed. "
    "What counts as an error or a crash is the catalogue entry's (health: in target.yaml)."
)


@dataclass
class TargetHealth:
    target: str
    items: int = 0  # items whose log slices were read
    errors: int = 0
    crashes: int = 0
    with_errors: list[str] = field(default_factory=list)  # item ids
    with_crashes: list[str] = field(default_factory=list)


def run_health(run: RunRecord) -> list[TargetHealth]:
    """Per target (run order), only targets whose health was counted."""
    found: dict[str, TargetHealth] = {}
    for item in run.items:
        for name, health in item.health.items():
            h = found.setdefault(name, TargetHealth(name))
            h.items += 1
            h.errors += health["errors"]
            h.crashes += health["crashes"]
            if health["errors"]:
                h.with_errors.append(item.item_id)
            if health["crashes"]:
                h.with_crashes.append(item.item_id)
    order = run.target_names()
    return sorted(
        found.values(), key=lambda h: (order.index(h.target) if h.target in order else len(order), h.target)
    )


def health_lines(run: RunRecord) -> list[str]:
    """The Markdown section (empty when no target's health was counted)."""
    totals = run_health(run)
    if not totals:
        return []
    rows = [
        [
            escape_md(h.target),
            str(h.items),
            f"{h.errors} in {len(h.with_errors)} items",
            f"{h.crashes} in {len(h.with_crashes)} items",
            escape_md(", ".join(h.with_crashes[:10])) or "none",
        ]
        for h in totals
    ]
    return [
        "",
        "## Server health",
        "",
        INTRO,
        "",
        table(rows, ["target", "items read", "errors logged", "crash reports", "items with a crash report"]),
    ]
