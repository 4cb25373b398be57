"""The HTML report: the matrix a person clicks through to the evidence of every cell.

``index.html`` shows the run, the score per target and category, and one table per category;
every cell links to its item page (``items/<item>/index.html``), which shows the verdict, the
scenario and its spec reference, and the evidence: stream logs and server log slices inline,
the pcap and key log as links. Everything that came from a target (reasons, stanza text, log
lines) is escaped: Jinja2 autoescaping is on for every template.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import jinja2

from harness.report.matrix import (
    CATEGORY_ORDER,
    CONFIG_CHANGES_INTRO,
    NOT_RUN,
    NOT_VERIFIED,
    config_changes,
    entry_state,
    format_score,
    score,
    spec_text,
    variant_text,
)
from harness.results import ItemResult, RunRecord, exit_problems

INLINE_LIMIT = 200_000  # characters of one evidence file shown inline; the rest is linked
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("harness.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def item_dir(item: ItemResult) -> str:
    """The item's evidence folder relative to the run directory (as the engine named it)."""
    paths = list(item.evidence.values())
    return str(Path(paths[0]).parent) if paths else ""


def _inline(run_dir: Path, rel: str) -> str | None:
    """Text evidence shown in the page; None for binary files (pcap) and missing ones."""
    path = run_dir / rel
    if path.suffix in (".pcap",) or path.name == "tls-keys.log" or not path.is_file():
        return None
    text = path.read_text(errors="replace")
    return text if len(text) <= INLINE_LIMIT else text[:INLINE_LIMIT] + "\n[... cut: open the file]"


def _categories(run: RunRecord) -> list[tuple[str, list[str], dict[str, dict[str, ItemResult]]]]:
    """Per category: scenario ids in order, and scenario -> target column -> item."""
    grid: dict[str, dict[str, dict[str, ItemResult]]] = defaultdict(lambda: defaultdict(dict))
    for item in run.items:
        column = "->".join(item.target_names)
        grid[item.category][item.scenario_id][column] = item
    order = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    return [
        (category, sorted(rows), rows)
        for category, rows in sorted(grid.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    ]


def render_html(run: RunRecord, run_dir: Path) -> list[Path]:
    """Write ``index.html`` and one page per item; returns the files written."""
    run_dir = Path(run_dir)
    columns = sorted({"->".join(i.target_names) for i in run.items}, key=lambda c: (c.count("->"), c))
    scores = score(run)
    written = []
    index = run_dir / "index.html"
    index.write_text(
        _ENV.get_template("index.html.j2").render(
            run=run,
            columns=columns,
            categories=_categories(run),
            item_dir=item_dir,
            scores={t: {c: format_score(levels) for c, levels in cats.items()} for t, cats in scores.items()},
            problems=exit_problems(run),
            spec_text=spec_text,
            not_run=NOT_RUN,
            entry_state=entry_state,
            not_verified=NOT_VERIFIED,
            config_changes=config_changes(run),
            variant=variant_text(run),
            config_changes_intro=CONFIG_CHANGES_INTRO,
        ),
        encoding="utf-8",
    )
    written.append(index)
    for item in run.items:
        folder = item_dir(item)
        if not folder:
            continue
        evidence = [
            (name, Path(rel).name, _inline(run_dir, rel)) for name, rel in sorted(item.evidence.items())
        ]
        page = run_dir / folder / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(
            _ENV.get_template("item.html.j2").render(
                run=run,
                item=item,
                evidence=evidence,
                spec=spec_text(item.spec),
            ),
            encoding="utf-8",
        )
        written.append(page)
    return written
