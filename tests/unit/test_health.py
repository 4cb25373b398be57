"""Server health: the catalogue's patterns count error and crash lines in an item's log slices
(only the logs it names), and every report shows them per target, escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.options import PROJECT_ROOT
from harness.report import write_reports
from harness.report.health import run_health
from harness.targets.spec import CatalogueError, catalogues
from harness.trace.health import LogHealth, count
from tests.unit.test_results import item, run_of, target

EJABBERD = LogHealth.parse(
    {"error": r"\[error\]", "crash": "crash_report|crasher:", "logs": ["ejabberd.log"]}, "ejabberd"
)


def test_errors_and_crashes_are_counted_in_the_named_logs_only() -> None:
    log = (
        "2026-12-07 [info] <0.1.0> started\n"
        "2026-12-07 [error] <0.2.0> bad thing <script>\n"
        "2026-12-07 [error] <0.3.0>@proc_lib:crash_report/4 crasher: initial call: x\n"
    )
    out = "2026-12-07 [error] <0.2.0> bad thing, repeated in the .out file\n"
    found = count(EJABBERD, {"ejabberd.log": log, "ejabberd.out": out})
    assert (found["errors"], found["crashes"]) == (1, 1)  # a crash line counts as a crash only
    assert found["examples"][0].startswith("2026-12-07 [error] <0.3.0>@proc_lib:crash_report")


def test_a_bad_health_section_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a regular expression"):
        LogHealth.parse({"error": "["}, "x/target.yaml")
    with pytest.raises(ValueError, match="unknown keys \\['crashes'\\]"):
        LogHealth.parse({"crashes": "x"}, "x/target.yaml")
    folder = tmp_path / "cat" / "broken"
    folder.mkdir(parents=True)
    source = (PROJECT_ROOT / "fixtures/targets/prosody/target.yaml").read_text()
    (folder / "target.yaml").write_text(source.replace('crash: "Traceback', 'crash: "(Traceback'))
    with pytest.raises(CatalogueError, match="health: not a regular expression"):
        catalogues(tmp_path / "cat", [])


def test_the_debian_entries_say_how_to_tell() -> None:
    products = catalogues(PROJECT_ROOT / "fixtures" / "targets", [])
    assert all(products[name].health is not None for name in ("prosody", "ejabberd", "jabberd2"))


def test_every_report_shows_health_per_target(tmp_path: Path) -> None:
    crashed = item("auth.a", [target("ejabberd")])
    crashed.health = {
        "ejabberd": {"errors": 2, "crashes": 1, "examples": ["[error] <img src=x onerror=alert(1)>"]}
    }
    quiet = item("auth.a", [target("prosody")])
    quiet.health = {"prosody": {"errors": 0, "crashes": 0, "examples": []}}
    run = run_of([crashed, quiet, item("auth.b", [target("prosody")])])
    assert [(h.target, h.items, h.errors, h.with_crashes) for h in run_health(run)] == [
        ("prosody", 1, 0, []),
        ("ejabberd", 1, 2, ["auth.a[ejabberd]"]),
    ]
    write_reports(run, tmp_path)
    matrix = " ".join((tmp_path / "matrix.md").read_text().split())
    assert "| ejabberd | 1 | 2 in 1 items | 1 in 1 items | auth.a&#91;ejabberd&#93; |" in matrix
    index = (tmp_path / "index.html").read_text()
    assert "<h3>Server health</h3>" in index
    page = next(p for p in tmp_path.glob("items/**/index.html") if "auth.a[ejabberd]" in p.read_text())
    text = page.read_text()
    assert (
        "logged 2 errors and 1 crash report" in text and "&lt;img src=x" in text and "<img src=x" not in text
    )
