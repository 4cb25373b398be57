"""Where each page of a run's HTML report lives, and the one Jinja environment that writes them.

Every template is autoescaped and strict about undefined names: target text can only ever be
text, and a missing name fails the render instead of leaving a hole in the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from harness.results import ItemResult, RunRecord, safe_name

INDEX = "index.html"
BEHAVIOUR = "behaviour.html"
RANKING = "ranking.html"
REASON_SHOWN = 160  # characters of a reason in a table cell; the item page has all of it

# every page of every report: autoescaped, strict about undefined names
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("harness.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def item_dir(item: ItemResult) -> str:
    """The item's folder relative to the run directory: its evidence folder (as the engine named
    it), or for an item without evidence ``items/<item id, file-safe>`` so it still has a page."""
    paths = list(item.evidence.values())
    return str(Path(paths[0]).parent) if paths else f"items/{safe_name(item.item_id)}"


def item_links(run: RunRecord) -> dict[str, str]:
    """Item id -> its page, relative to the run directory (where index, behaviour and ranking are)."""
    return {item.item_id: f"{item_dir(item)}/{INDEX}" for item in run.items}


def up(folder: str) -> str:
    """The relative path from ``folder`` (inside the run directory) back to the run directory."""
    return "../" * len(Path(folder).parts)


def existing(run_dir: Path, rel: str) -> str | None:
    """``rel`` when that file is in the run directory, else None: the report has no dead links."""
    return rel if (run_dir / rel).is_file() else None


def write_page(path: Path, template: str, **context: Any) -> Path:
    """Render ``template`` with ``context`` into ``path`` (its folder made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATES.get_template(template).render(**context), encoding="utf-8")
    return path
