"""One page per item (``<item folder>/index.html``): verdict, scenario, steps with their times,
what the verdict rests on, what it waited for, and the evidence, text files inline (escaped)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.report.html.pages import INDEX, existing, item_dir, up, write_page
from harness.report.html.scenario_pages import ScenarioPage, cite_lines
from harness.report.matrix import spec_text
from harness.report.overview import seconds_text
from harness.rerun import command as rerun_command
from harness.results import ItemResult, RunRecord

INLINE_LIMIT = 200_000  # characters of one evidence file shown inline; the rest is linked


@dataclass(frozen=True)
class Evidence:
    name: str
    href: str | None  # relative to the item page; None: the file is not in the run folder
    text: str | None  # shown inline (None: binary or missing; "" an empty log, folded away)


def _inline(run_dir: Path, rel: str) -> str | None:
    """Text evidence shown in the page; None for binary files (pcap) and missing ones."""
    path = run_dir / rel
    if path.suffix in (".pcap",) or path.name == "tls-keys.log" or not path.is_file():
        return None
    text = path.read_text(errors="replace")
    return text if len(text) <= INLINE_LIMIT else text[:INLINE_LIMIT] + "\n[... cut: open the file]"


def _evidence(item: ItemResult, run_dir: Path) -> list[Evidence]:
    folder = item_dir(item)
    return [
        Evidence(
            name,
            os.path.relpath(rel, folder) if existing(run_dir, rel) else None,
            _inline(run_dir, rel),
        )
        for name, rel in sorted(item.evidence.items())
    ]


def write_item_page(run: RunRecord, item: ItemResult, run_dir: Path, scenario: ScenarioPage | None) -> Path:
    folder = item_dir(item)
    back = up(folder)
    page_href = back + scenario.page if scenario else None
    lines = scenario.lines if scenario else 0
    return write_page(
        run_dir / folder / INDEX,
        "item.html.j2",
        run=run,
        item=item,
        up=back,
        evidence=_evidence(item, run_dir),
        spec=spec_text(item.spec),
        scenario=scenario,
        scenario_href=page_href,
        cite=lambda text: cite_lines(text, page_href, lines),
        seconds=seconds_text,
        rerun=rerun_command(run_dir.resolve(), item.item_id),
        keylog="tls-keys.log" in item.evidence,
    )
