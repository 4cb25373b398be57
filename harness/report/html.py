"""The HTML report: the matrix a person clicks through to the evidence of every cell.

``index.html`` opens with a summary (verdict totals, exit code, run time, scores per target,
category and level, who leads each category, what the run changed in packaged configurations,
every problem that failed the run), then one section per category with only its own columns:
targets for single-target scenarios, the ordered pairs that ran for pair scenarios, plus per pair
scenario an origin x receiver grid and the pair summary, as in ``matrix.md``. Filters, sorting
and search are plain inline JavaScript: the page works from a file share, offline.

Every item gets a page (``<item folder>/index.html``): verdict, scenario, steps with their
times, what the verdict rests on, evidence inline. The scenario file is copied into the run
(``scenarios/<file>`` and ``scenarios/<file>.html`` with line anchors) when the file with the
run's hash is found, and "line N" in reasons links there. Links go only to files that exist.

Everything that came from a target (reasons, stanza text, log lines, versions) is escaped:
Jinja2 autoescaping is on for every template, and :func:`cite_lines` escapes each piece it
joins. No template marks target text ``|safe``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from harness.options import PROJECT_ROOT
from harness.report.health import INTRO as HEALTH_INTRO
from harness.report.health import run_health
from harness.report.matrix import (
    CONFIG_CHANGES_INTRO,
    NOT_RUN,
    NOT_VERIFIED,
    category_key,
    config_changes,
    entry_state,
    format_score,
    ordered,
    pair_summary,
    score,
    spec_text,
    truncate,
    variant_text,
)
from harness.report.overview import LEAD_RULE, Scores, leaders, run_seconds, seconds_text, totals
from harness.report.ranking import COSTS_SHOWN, cost_text, ranked, score_text
from harness.results import LEVELS, POLICY, ItemResult, RunRecord, exit_code, exit_problems, safe_name

__all__ = ["cite_lines", "item_dir", "render_html"]

INLINE_LIMIT = 200_000  # characters of one evidence file shown inline; the rest is linked
PROBLEMS_SHOWN = 10  # problems listed open in the summary; the rest are one click away, counted
CELL_REASON = 160  # characters of a reason in a matrix cell; the item page has all of it
# sort rank of a cell: what needs reading first sorts first
VERDICT_RANK = {"fail": 0, "error": 1, "xpass": 2, "xfail": 3, "unsupported": 4, "pass": 5}
LEVEL_RANK = {level: rank for rank, level in enumerate((*LEVELS, POLICY))}
_LINE = re.compile(r"\bline (\d+)\b")

# every page of every report: autoescaped, strict about undefined names
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("harness.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# ---------------------------------------------------------------------------------------------------
# paths


def item_dir(item: ItemResult) -> str:
    """The item's folder relative to the run directory: its evidence folder (as the engine named
    it), or for an item without evidence ``items/<item id, file-safe>`` so it still has a page."""
    paths = list(item.evidence.values())
    return str(Path(paths[0]).parent) if paths else f"items/{safe_name(item.item_id)}"


def _up(folder: str) -> str:
    """The relative path from ``folder`` (inside the run directory) back to the run directory."""
    return "../" * len(Path(folder).parts)


def _link(run_dir: Path, rel: str) -> str | None:
    """``rel`` when that file is in the run directory, else None: the report has no dead links."""
    return rel if (run_dir / rel).is_file() else None


# ---------------------------------------------------------------------------------------------------
# scenario files


@dataclass(frozen=True)
class ScenarioPage:
    """A scenario file as copied into the run: its page (relative to the run) and line count."""

    page: str
    raw: str
    lines: int


def _scenario_source(item: ItemResult, run_dir: Path) -> bytes | None:
    """The bytes of the item's scenario file with the hash the run recorded: from an earlier copy
    in the run folder, else from the project; None when neither has it (edited since, moved)."""
    recorded = Path(item.scenario_file)
    candidates = [
        run_dir / "scenarios" / recorded.name,
        recorded if recorded.is_absolute() else PROJECT_ROOT / recorded,
    ]
    for path in candidates:
        if path.is_file():
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() == item.scenario_sha256:
                return raw
    return None


def _copy_scenarios(run: RunRecord, run_dir: Path) -> dict[str, ScenarioPage]:
    """Copy each scenario file the run used into ``scenarios/`` with a page of numbered lines;
    keyed by the recorded hash (the same file under one hash is copied once)."""
    pages: dict[str, ScenarioPage] = {}
    tried: set[str] = set()
    for item in run.items:
        if item.scenario_sha256 in tried:
            continue
        tried.add(item.scenario_sha256)
        raw = _scenario_source(item, run_dir)
        if raw is None:
            continue
        recorded = Path(item.scenario_file)
        name = recorded.name
        if any(p.raw == f"scenarios/{name}" for p in pages.values()):  # the file changed between merged runs
            name = f"{recorded.stem}.{item.scenario_sha256[:12]}{recorded.suffix}"
        folder = run_dir / "scenarios"
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(raw)
        lines = raw.decode("utf-8", errors="replace").splitlines()
        (folder / f"{name}.html").write_text(
            TEMPLATES.get_template("scenario.html.j2").render(
                run=run, item=item, name=name, lines=lines, back=_up("scenarios")
            ),
            encoding="utf-8",
        )
        pages[item.scenario_sha256] = ScenarioPage(f"scenarios/{name}.html", f"scenarios/{name}", len(lines))
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


# ---------------------------------------------------------------------------------------------------
# the index: one section per category, with only its columns


@dataclass(frozen=True)
class Column:
    """A column of a category table: one target, or one ordered pair (origin, receiver)."""

    targets: tuple[str, ...]

    @property
    def label(self) -> str:
        return " → ".join(self.targets)


@dataclass
class Row:
    """One scenario of a category table; ``cells`` line up with the table's columns."""

    first: ItemResult
    cells: list[list[ItemResult]]

    @property
    def search(self) -> str:
        """What the search box matches: id, title, spec, level and every full reason."""
        texts = [self.first.scenario_id, self.first.title, spec_text(self.first.spec), self.first.level]
        return " ".join(texts + [i.reason for cell in self.cells for i in cell]).lower()


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]


@dataclass
class Grid:
    """One pair scenario as an origin x receiver grid (rows: origins, columns: receivers)."""

    row: Row
    origins: list[str]
    receivers: list[str]
    cells: dict[tuple[str, str], list[ItemResult]]


@dataclass
class CategoryView:
    name: str
    singles: Table | None
    pairs: Table | None
    grids: list[Grid] = field(default_factory=list)
    # the pair summary: passed/total per (origin, receiver) over every pair scenario
    pair_summary: dict[tuple[str, str], str] = field(default_factory=dict)
    origins: list[str] = field(default_factory=list)
    receivers: list[str] = field(default_factory=list)
    scores: dict[str, str] = field(default_factory=dict)  # target -> its formatted score, in order
    leaders: list[str] = field(default_factory=list)


def _column_of(item: ItemResult) -> tuple[str, ...]:
    return tuple(item.pair) if item.pair else (item.targets[0].name,)


def table(items: list[ItemResult], order: list[str]) -> Table:
    """Rows per scenario (sorted by id), columns only for the targets or pairs that ran."""
    index = {name: i for i, name in enumerate(order)}
    keys = sorted(
        {_column_of(i) for i in items}, key=lambda k: [index.get(n, len(index)) for n in k] + list(k)
    )
    columns = [Column(key) for key in keys]
    cells: dict[str, dict[tuple[str, ...], list[ItemResult]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        cells[item.scenario_id][_column_of(item)].append(item)
    rows = [
        Row(next(iter(by_column.values()))[0], [by_column.get(c.targets, []) for c in columns])
        for _, by_column in sorted(cells.items())
    ]
    return Table(columns, rows)


def _grid(row: Row, order: list[str]) -> Grid:
    items = [i for cell in row.cells for i in cell]
    cells: dict[tuple[str, str], list[ItemResult]] = defaultdict(list)
    for item in items:
        cells[item.pair].append(item)
    return Grid(
        row,
        ordered((i.pair[0] for i in items), order),
        ordered((i.pair[1] for i in items), order),
        dict(cells),
    )


def _category_view(name: str, items: list[ItemResult], run: RunRecord, scores: Scores) -> CategoryView:
    order = run.target_names()
    singles = [i for i in items if not i.is_pair]
    pairs = [i for i in items if i.is_pair]
    view = CategoryView(
        name,
        table(singles, order) if singles else None,
        table(pairs, order) if pairs else None,
        scores={
            target: format_score(scores[target][name])
            for target in ordered((n for i in items for n in i.selected_names), order)
        },
        leaders=leaders(scores, name),
    )
    if view.pairs:
        view.grids = [_grid(row, order) for row in view.pairs.rows]
        per_pair: dict[tuple[str, str], list[ItemResult]] = defaultdict(list)
        for item in pairs:
            per_pair[item.pair].append(item)
        view.pair_summary = {pair: pair_summary(group) for pair, group in per_pair.items()}
        view.origins = ordered((p[0] for p in per_pair), order)
        view.receivers = ordered((p[1] for p in per_pair), order)
    return view


def category_views(run: RunRecord) -> list[CategoryView]:
    """The run's categories in the reports' order, each with its own tables and scores."""
    by_category: dict[str, list[ItemResult]] = defaultdict(list)
    for item in run.items:
        by_category[item.category].append(item)
    scores = score(run)  # matrix.md's scores: the two reports never disagree
    return [_category_view(c, by_category[c], run, scores) for c in sorted(by_category, key=category_key)]


def _problems(run: RunRecord, links: dict[str, str]) -> list[tuple[str, str | None]]:
    """Every reason the run failed, with the page of the item it names (None for run-wide ones)."""
    return [(problem, links.get(problem.split(" (", 1)[0])) for problem in exit_problems(run)]


def _present(values: Iterable[str], order: Iterable[str]) -> list[str]:
    """The values that occur, in ``order`` first, then the rest sorted (filter choices)."""
    return ordered(set(values), list(order))


# ---------------------------------------------------------------------------------------------------
# item pages


def _inline(run_dir: Path, rel: str) -> str | None:
    """Text evidence shown in the page; None for binary files (pcap) and missing ones."""
    path = run_dir / rel
    if path.suffix in (".pcap",) or path.name == "tls-keys.log" or not path.is_file():
        return None
    text = path.read_text(errors="replace")
    return text if len(text) <= INLINE_LIMIT else text[:INLINE_LIMIT] + "\n[... cut: open the file]"


@dataclass(frozen=True)
class Evidence:
    name: str
    href: str | None  # relative to the item page; None: the file is not in the run folder
    text: str | None  # shown inline (None: binary or missing; "" an empty log, folded away)


def _evidence(item: ItemResult, run_dir: Path) -> list[Evidence]:
    folder = item_dir(item)
    return [
        Evidence(
            name,
            os.path.relpath(rel, folder) if _link(run_dir, rel) else None,
            _inline(run_dir, rel),
        )
        for name, rel in sorted(item.evidence.items())
    ]


def _item_page(run: RunRecord, item: ItemResult, run_dir: Path, scenario: ScenarioPage | None) -> Path:
    folder = item_dir(item)
    up = _up(folder)
    page_href = up + scenario.page if scenario else None
    lines = scenario.lines if scenario else 0
    page = run_dir / folder / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(
        TEMPLATES.get_template("item.html.j2").render(
            run=run,
            item=item,
            up=up,
            evidence=_evidence(item, run_dir),
            spec=spec_text(item.spec),
            scenario=scenario,
            scenario_href=page_href,
            cite=lambda text: cite_lines(text, page_href, lines),
            seconds=seconds_text,
        ),
        encoding="utf-8",
    )
    return page


# ---------------------------------------------------------------------------------------------------


def render_html(run: RunRecord, run_dir: Path) -> list[Path]:
    """Write ``index.html``, one page per item and the scenario pages; returns the pages written
    (index first, then the items')."""
    run_dir = Path(run_dir)
    scenarios = _copy_scenarios(run, run_dir)
    links = {item.item_id: f"{item_dir(item)}/index.html" for item in run.items}
    categories = category_views(run)
    changes = [(c, _link(run_dir, c.diff)) for c in config_changes(run)]
    index = run_dir / "index.html"
    index.write_text(
        TEMPLATES.get_template("index.html.j2").render(
            run=run,
            categories=categories,
            links=links,
            totals=totals(run),
            exit_code=exit_code(run),
            problems=_problems(run, links),
            problems_shown=PROBLEMS_SHOWN,
            duration=seconds_text(run_seconds(run)),
            lead_rule=LEAD_RULE,
            spec_text=spec_text,
            truncate=lambda text: truncate(text, CELL_REASON),
            verdict_rank=VERDICT_RANK,
            level_rank=LEVEL_RANK,
            not_run=NOT_RUN,
            entry_state=entry_state,
            not_verified=NOT_VERIFIED,
            config_changes=changes,
            variant=variant_text(run),
            config_changes_intro=CONFIG_CHANGES_INTRO,
            filter_categories=[c.name for c in categories],
            filter_levels=_present((i.level for i in run.items), LEVEL_RANK),
            filter_verdicts=_present((i.outcome for i in run.items), VERDICT_RANK),
            filter_targets=_present((n for i in run.items for n in i.selected_names), run.target_names()),
            file_link=lambda rel: _link(run_dir, rel),
            ranking=ranked(run),
            health=run_health(run),
            health_intro=HEALTH_INTRO,
            score_text=score_text,
            cost_text=cost_text,
            costs_shown=COSTS_SHOWN,
        ),
        encoding="utf-8",
    )
    written = [index]
    for item in run.items:
        written.append(_item_page(run, item, run_dir, scenarios.get(item.scenario_sha256)))
    return written
