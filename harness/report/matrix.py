"""The Markdown matrix of a run (``reports/<run>/matrix.md``), rendered from a :class:`RunRecord`.

Layout: a header (run, harness version, date, verdict of the run, targets with product version and
knobs), then per category a table with one row per scenario and one column per target, the score
of each target, and for scenarios over ordered pairs of targets (federation) one origin x receiver
grid per scenario plus a summary grid; a legend closes the report.

Scoring rule (also used by the HTML report through :func:`score`): per target, category and level,
``passed`` counts ``pass`` and ``xpass`` (the target met the rule; an xpass only says the baseline
is stale), ``total`` counts every item except ``unsupported`` ones (``fail``, ``error`` and
``xfail`` count in the total and not as passed), ``unsupported`` is counted separately. An item
over a pair of targets counts for both the origin and the receiver.
"""

from __future__ import annotations

import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.report.health import health_lines
from harness.report.markdown import escape_md, table
from harness.report.overview import key_log_text
from harness.report.ranking import ranking_lines
from harness.results import LEVELS, POLICY, ItemResult, RunRecord, exit_problems
from harness.targets.spec import AS_INSTALLED
from harness.verdict import Outcome

__all__ = [
    "CATEGORY_ORDER",
    "NOT_RUN",
    "REASON_MAX",
    "cell_text",
    "escape_md",
    "format_score",
    "render_matrix",
    "score",
    "spec_text",
    "truncate",
]

REASON_MAX = 140
NOT_RUN = "-"
CATEGORY_ORDER: tuple[str, ...] = ("authentication", "authorization", "federation", "robustness")
PAIR_CORNER = "origin \\ receiver"

_LABEL = {
    Outcome.PASS.value: "pass",
    Outcome.FAIL.value: "FAIL",
    Outcome.ERROR.value: "ERROR",
    Outcome.UNSUPPORTED.value: "unsupported",
    Outcome.XFAIL.value: "xfail",
    Outcome.XPASS.value: "XPASS",
}
_PASSED = {Outcome.PASS.value, Outcome.XPASS.value}


# ---------------------------------------------------------------------------------------------------
# cells


def truncate(text: str, limit: int = REASON_MAX) -> str:
    """One line of at most ``limit`` characters; longer text ends in an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def cell_text(item: ItemResult) -> str:
    """The cell of an item: ``pass``, or ``FAIL: <reason>``, ``unsupported: <reason>``, ...

    The reason is truncated to :data:`REASON_MAX` characters and escaped for a table cell.
    """
    label = _LABEL.get(item.outcome, item.outcome)
    if item.outcome == Outcome.PASS.value:
        return label
    reason = item.reason
    if item.outcome == Outcome.XPASS.value and not reason.strip():
        reason = "known failure passed"
    reason = truncate(reason)
    return escape_md(f"{label}: {reason}" if reason else label)


def spec_text(spec: dict[str, str]) -> str:
    """``RFC 6120 §6.4.1`` from ``{"document": "RFC 6120", "section": "6.4.1"}``."""
    document = spec.get("document", "").strip()
    section = spec.get("section", "").strip()
    if not section:
        return document
    if not section.startswith("§"):
        section = "§" + section
    return f"{document} {section}".strip()


# ---------------------------------------------------------------------------------------------------
# scores


def score(run: RunRecord) -> dict[str, dict[str, dict[str, tuple[int, int, int]]]]:
    """``score[target][category][level] = (passed, total, unsupported)``.

    ``passed`` counts ``pass`` and ``xpass``; ``total`` excludes ``unsupported`` items, which are
    counted in the third number. Every level appears for each (target, category) the target took
    part in, with zeros where it had no item. An item over a pair of targets counts for both.
    """
    counts: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: {level: [0, 0, 0] for level in LEVELS})
    )
    for item in run.items:
        for name in dict.fromkeys(item.selected_names):  # once per target, also for x->x pairs
            cell = counts[name][item.category].setdefault(item.level, [0, 0, 0])
            if item.outcome == Outcome.UNSUPPORTED.value:
                cell[2] += 1
                continue
            cell[1] += 1
            if item.outcome in _PASSED:
                cell[0] += 1
    order = {name: index for index, name in enumerate(run.target_names())}
    return {
        target: {
            category: {level: tuple(values) for level, values in levels.items()}
            for category, levels in sorted(counts[target].items(), key=lambda kv: category_key(kv[0]))
        }
        for target in sorted(counts, key=lambda n: order.get(n, len(order)))
    }


def format_score(levels: dict[str, tuple[int, int, int]]) -> str:
    """``MUST 10/12 (1 unsupported), SHOULD 2/3, MAY 0/0``, then ``; policy 1/3`` apart when the
    target had policy checks (they are no part of conformance)."""

    def one(level: str, label: str) -> str:
        passed, total, unsupported = levels.get(level, (0, 0, 0))
        return f"{label} {passed}/{total}" + (f" ({unsupported} unsupported)" if unsupported else "")

    text = ", ".join(one(level, level) for level in LEVELS)
    if any(levels.get(POLICY, (0, 0, 0))):
        text += "; " + one(POLICY, "policy")
    return text


def pair_summary(items: Iterable[ItemResult]) -> str:
    passed = total = unsupported = 0
    for item in items:
        if item.outcome == Outcome.UNSUPPORTED.value:
            unsupported += 1
            continue
        total += 1
        passed += item.outcome in _PASSED
    text = f"{passed}/{total}"
    return text + f" ({unsupported} unsupported)" if unsupported else text


# ---------------------------------------------------------------------------------------------------
# rendering


def category_key(category: str) -> tuple[int, str]:
    if category in CATEGORY_ORDER:
        return CATEGORY_ORDER.index(category), category
    return len(CATEGORY_ORDER), category


def ordered(names: Iterable[str], order: list[str]) -> list[str]:
    wanted = set(names)
    return [n for n in order if n in wanted] + sorted(wanted - set(order))


NOT_VERIFIED = "NOT VERIFIED HERE"


def entry_state(target: dict[str, Any]) -> str:
    """Whether a target's catalogue entry was verified here with its driver (reports' words)."""
    verified = target.get("verified_here")
    if verified is None:
        return "not a catalogue entry"
    return "verified here" if verified else NOT_VERIFIED


def _knobs_text(knobs: dict[str, str]) -> str:
    if not knobs:
        return "default"
    return ", ".join(f"{k}={v}" for k, v in sorted(knobs.items()))


VARIANT_MEANING = {
    "default": "the packaged configuration with the run's edits",
    AS_INSTALLED: "the packaged configuration without the run's edits that add what the package "
    "does not configure (left out, below): what the product does as installed",
}


def variant_text(run: RunRecord) -> str:
    """The run's variant and what it means (a named knob bundle: its knobs are in the table)."""
    variant = run.variant
    return f"{variant}: {VARIANT_MEANING.get(variant, 'a bundle of knobs (in the targets table)')}"


@dataclass(frozen=True)
class ConfigChange:
    """One target's line of "What the run changed in the packaged configuration"."""

    target: str
    files: str  # "c2s.xml (9 lines), s2s.xml (8 lines)"
    diff: str  # the diff's path in the run folder
    adds: tuple[str, ...]
    left_out: tuple[str, ...] = ()


def config_changes(run: RunRecord) -> list[ConfigChange]:
    """The targets whose packaged files the run edited, in the matrix's order."""
    by_name = {t["name"]: t for t in run.targets}
    changes = []
    for name in run.target_names():
        changed = by_name.get(name, {}).get("config_changes")
        if changed:
            files = ", ".join(f"{f} ({n} lines)" for f, n in sorted(changed["files"].items()))
            left_out = tuple(changed.get("left_out", ()))
            changes.append(ConfigChange(name, files, changed["diff"], tuple(changed["adds"]), left_out))
    return changes


CONFIG_CHANGES_INTRO = (
    "The run's own edits of each product's packaged files (addresses, ports, paths, the run's "
    "certificate and storage; knob values are in the targets table). Each diff compares the "
    "packaged file with the one the run used."
)


def _config_section(run: RunRecord) -> list[str]:
    changes = config_changes(run)
    if not changes:
        return []
    lines = ["", "## What the run changed in the packaged configuration", "", CONFIG_CHANGES_INTRO, ""]
    for change in changes:
        lines.append(
            f"- **{escape_md(change.target)}**: {escape_md(change.files)}; diff: {escape_md(change.diff)}"
        )
        lines += [
            f"  - adds what the package does not configure: {escape_md(added)}" for added in change.adds
        ]
        lines += [f"  - left out (as installed): {escape_md(left)}" for left in change.left_out]
    return lines


def _header(run: RunRecord) -> list[str]:
    counts = Counter(item.outcome for item in run.items)
    breakdown = ", ".join(f"{o.value} {counts[o.value]}" for o in Outcome if counts[o.value])
    problems = exit_problems(run)
    lines = [
        f"# Interoperability matrix: run {escape_md(run.run_id)}",
        "",
        f"- **Run id:** {escape_md(run.run_id)}",
        f"- **Harness version:** {escape_md(run.harness_version)}",
        f"- **Date (UTC):** {escape_md(f'{run.started_at} to {run.finished_at}')}",
    ]
    if run.command:
        lines.append(f"- **Command:** {escape_md(shlex.join(run.command))}")
    event = run.selection.get("event")
    if event:
        lines.append(f"- **Event:** {escape_md(event['title'])} ({escape_md(event['name'])})")
    lines.append(f"- **Variant:** {escape_md(variant_text(run))}")
    warning, keys = key_log_text(run)
    if keys:
        lines.append(f"- **{'WARNING, key logs' if warning else 'Key logs'}:** {escape_md(keys)}")
    lines.append(f"- **Items:** {len(run.items)}" + (f" ({breakdown})" if breakdown else ""))
    if problems:
        lines.append("- **Run verdict:** FAILED (exit code 1)")
        for problem in problems[:10]:
            lines.append(f"  - {escape_md(truncate(problem, 160))}")
        if len(problems) > 10:
            lines.append(f"  - ... and {len(problems) - 10} more")
    else:
        lines.append("- **Run verdict:** passed (exit code 0)")
    unverified = run.unverified_targets()
    if unverified:
        lines.append(
            f"- **{NOT_VERIFIED}:** {', '.join(escape_md(n) for n in unverified)}: no run on the "
            "project's machines has verified these catalogue entries with this driver; their "
            "cells show what the entry as written did, not a verified product"
        )
    xpassed = [item.item_id for item in run.items if item.outcome == Outcome.XPASS.value]
    if xpassed:
        lines.append(
            "- **Known failures that passed (update the baseline):** "
            + ", ".join(escape_md(i) for i in xpassed)
        )
    lines += ["", "## Targets", ""]
    rows = []
    by_name = {t["name"]: t for t in run.targets}
    for name in run.target_names():
        t = by_name.get(name, {"name": name})
        rows.append(
            [
                escape_md(str(t.get(key, "")))
                for key in ("name", "product", "version", "driver", "domain", "address")
            ]
            + [escape_md(_knobs_text(t.get("knobs", {}))), entry_state(t)]
        )
    columns = ["target", "product", "version", "driver", "domain", "address", "knobs", "entry"]
    lines.append(table(rows, columns))
    return lines + _config_section(run)


def _single_table(items: list[ItemResult], order: list[str]) -> str:
    columns = ordered((i.targets[0].name for i in items), order)
    scenarios: dict[str, ItemResult] = {}
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.scenario_id):
        scenarios.setdefault(item.scenario_id, item)
        cells[(item.scenario_id, item.targets[0].name)].append(cell_text(item))
    rows = []
    for scenario_id, first in scenarios.items():
        row = [escape_md(scenario_id), escape_md(first.level), escape_md(spec_text(first.spec))]
        row += ["; ".join(cells.get((scenario_id, name), [])) or NOT_RUN for name in columns]
        rows.append(row)
    return table(rows, ["id", "level", "spec"] + [escape_md(c) for c in columns])


def _pair_sections(items: list[ItemResult], order: list[str]) -> list[str]:
    lines: list[str] = []
    by_scenario: dict[str, list[ItemResult]] = defaultdict(list)
    for item in items:
        by_scenario[item.scenario_id].append(item)
    for scenario_id in sorted(by_scenario):
        group = by_scenario[scenario_id]
        first = group[0]
        origins = ordered((i.pair[0] for i in group), order)
        receivers = ordered((i.pair[1] for i in group), order)
        cells: dict[tuple[str, str], list[str]] = defaultdict(list)
        for item in group:
            cells[item.pair].append(cell_text(item))
        rows = [
            [escape_md(o)] + ["; ".join(cells.get((o, r), [])) or NOT_RUN for r in receivers] for o in origins
        ]
        lines += [
            "",
            f"### {escape_md(scenario_id)}: {escape_md(first.title)}",
            "",
            f"{escape_md(first.level)}, {escape_md(spec_text(first.spec))}. "
            "Rows: origin target; columns: receiver target (a target with itself: its second "
            "instance, on its own domain, is the receiver).",
            "",
            table(rows, [PAIR_CORNER] + [escape_md(r) for r in receivers]),
        ]
    origins = ordered((i.pair[0] for i in items), order)
    receivers = ordered((i.pair[1] for i in items), order)
    per_pair: dict[tuple[str, str], list[ItemResult]] = defaultdict(list)
    for item in items:
        per_pair[item.pair].append(item)
    rows = [
        [escape_md(o)]
        + [pair_summary(per_pair[(o, r)]) if (o, r) in per_pair else NOT_RUN for r in receivers]
        for o in origins
    ]
    lines += [
        "",
        "### Pairs: passed/total over all pair scenarios of this category",
        "",
        table(rows, [PAIR_CORNER] + [escape_md(r) for r in receivers]),
    ]
    return lines


def _legend() -> list[str]:
    return [
        "## Legend",
        "",
        "- `pass`: the target did what the rule requires.",
        "  Counted as passed in the score.",
        "- `FAIL: <reason>`: the target broke the rule the scenario checks; the reason says how.",
        "  A MUST-level FAIL fails the run; SHOULD and MAY failures are findings that do not.",
        "  POLICY items check a best current practice no RFC or XEP requires: scored apart",
        '  ("policy p/t"), never part of conformance, never failing the run.',
        "- `ERROR: <reason>`: the harness or the target could not complete the check "
        "(crash, timeout, setup).",
        "  Not a judgement of the rule, but any ERROR fails the run; counted in the total, not as passed.",
        "- `unsupported: <reason>`: the target lacks an optional feature the scenario needs.",
        '  Left out of the total and shown as "(n unsupported)" next to the score.',
        "- `xfail: <reason>`: a failure listed in the target's known-failure baseline.",
        "  Does not fail the run; counted in the total, not as passed.",
        "- `XPASS: <reason>`: listed as a known failure, but it passed.",
        "  Does not fail the run; counted as passed; remove it from the baseline.",
        f"- `{NOT_RUN}`: the scenario was not run for this target (or pair).",
        "  Not counted at all.",
        "",
        (
            "Scores read `MUST passed/total`: passed counts pass and XPASS, the total leaves out unsupported"
            " items; an item over a pair of targets counts for both the origin and the receiver."
        ),
        "",
        (
            "How to read a reason: it is the one line written by the step that decided the verdict, usually"
            f" what the scenario expected and what the target did instead. Cells cut it at {REASON_MAX}"
            " characters (ending in …); the full reason, the level, the scenario file and its hash, and the"
            " evidence (each actor's stream log, the pcap with its TLS key log, the server log slice) are in"
            " `results.json` under `items[]`, with evidence paths relative to the run directory."
        ),
    ]


Section = tuple[str, list[ItemResult], list[ItemResult], list[ItemResult]]


def category_sections(run: RunRecord) -> list[Section]:
    """Per category in report order: (category, its items, the single-target ones, the pairs)."""
    by_category: dict[str, list[ItemResult]] = defaultdict(list)
    for item in run.items:
        by_category[item.category].append(item)
    return [
        (category, items, [i for i in items if not i.is_pair], [i for i in items if i.is_pair])
        for category, items in sorted(by_category.items(), key=lambda kv: category_key(kv[0]))
    ]


def render_matrix(run: RunRecord) -> str:
    """The Markdown matrix of ``run`` (tables in GitHub format, rendered with tabulate)."""

    order = run.target_names()
    scores = score(run)
    lines = _header(run)
    lines += ranking_lines(run)
    lines += health_lines(run)
    sections = category_sections(run)
    if not sections:
        lines += ["", "No item was executed."]
    for category, items, singles, pairs in sections:
        lines += ["", f"## {escape_md(category)}"]
        if singles:
            lines += ["", _single_table(singles, order)]
        if pairs:
            lines += _pair_sections(pairs, order)
        participants = ordered((n for i in items for n in i.selected_names), order)
        rows = [[escape_md(name), format_score(scores[name][category])] for name in participants]
        lines += [
            "",
            f"Score in {escape_md(category)} (passed/total, unsupported left out of the total):",
            "",
            table(rows, ["target", "score"]),
        ]
    lines += [""] + _legend()
    return "\n".join(lines) + "\n"
