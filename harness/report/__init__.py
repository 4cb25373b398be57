"""Reports of a run, all rendered from its ``results.json`` record."""

from __future__ import annotations

from pathlib import Path

from harness.report.behaviour import render_behaviour
from harness.report.html import render_html
from harness.report.matrix import render_matrix
from harness.results import RunRecord


def write_reports(run: RunRecord, run_dir: Path) -> list[Path]:
    """Write ``matrix.md``, ``behaviour.md`` and every HTML page (:func:`render_html`) into ``run_dir``;
    returns the files written, the two Markdown reports first."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    matrix = run_dir / "matrix.md"
    matrix.write_text(render_matrix(run), encoding="utf-8")
    behaviour = run_dir / "behaviour.md"
    behaviour.write_text(render_behaviour(run), encoding="utf-8")
    return [matrix, behaviour, *render_html(run, run_dir)]
