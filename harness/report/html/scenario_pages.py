"""The scenario files a run used, copied into it (``scenarios/<file>`` and a page of numbered
lines, ``scenarios/<file>.html``), so that "line N" in a reason or a step links to the line the
run actually ran: a copy is made only from the file with the hash the run recorded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from harness.options import PROJECT_ROOT
from harness.report.html.pages import up, write_page
from harness.results import ItemResult, RunRecord

FOLDER = "scenarios"
_LINE = re.compile(r"\bline (\d+)\b")


@dataclass(frozen=True)
class ScenarioPage:
    """A scenario file as copied into the run: its page (relative to the run) and line count."""

    page: str
    raw: str
    lines: int


def _source(item: ItemResult, run_dir: Path) -> bytes | None:
    """The bytes of the item's scenario file with the hash the run recorded: from an earlier copy
    in the run folder, else from the project; None when neither has it (edited since, moved)."""
    recorded = Path(item.scenario_file)
    candidates = [
        run_dir / FOLDER / recorded.name,
        recorded if recorded.is_absolute() else PROJECT_ROOT / recorded,
    ]
    for path in candidates:
        if path.is_file():
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() == item.scenario_sha256:
                return raw
    return None


def copy_scenarios(run: RunRecord, run_dir: Path) -> dict[str, ScenarioPage]:
    """Copy each scenario file the run used into ``scenarios/`` with a page of numbered lines;
    keyed by the recorded hash (the same file under one hash is copied once)."""
    pages: dict[str, ScenarioPage] = {}
    tried: set[str] = set()
    for item in run.items:
        if item.scenario_sha256 in tried:
            continue
        tried.add(item.scenario_sha256)
        raw = _source(item, run_dir)
        if raw is None:
            continue
        recorded = Path(item.scenario_file)
        name = recorded.name
        if any(p.raw == f"{FOLDER}/{name}" for p in pages.values()):  # the file changed between merged runs
            name = f"{recorded.stem}.{item.scenario_sha256[:12]}{recorded.suffix}"
        folder = run_dir / FOLDER
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(raw)
        lines = raw.decode("utf-8", errors="replace").splitlines()
        write_page(
            folder / f"{name}.html",
            "scenario.html.j2",
            run=run,
            item=item,
            name=name,
            lines=lines,
            back=up(FOLDER),
        )
        pages[item.scenario_sha256] = ScenarioPage(f"{FOLDER}/{name}.html", f"{FOLDER}/{name}", len(lines))
    return pages


def cite_lines(text: str, page: str | None, lines: int) -> Markup:
    """``text`` escaped, with each "line N" (N within the scenario file) a link to ``page#LN``."""
    if not page:
        return escape(text)
    parts: list[Markup] = []
    last = 0
    for match in _LINE.finditer(text):
        number = int(match.group(1))
        if not 1 <= number <= lines:
            continue
        parts.append(escape(text[last : match.start()]))
        parts.append(Markup('<a href="{}#L{}">line {}</a>').format(page, number, number))
        last = match.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)
