"""interop diff (cells that changed between runs) and interop baseline update (known failures
written from a run, with the reasons and links people gave kept)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from harness.baseline import Baselines, read_file, update_from_run
from harness.cli import main
from harness.diff import compare, diff_exit_code, knob_changes, knob_rows, load_run, render_markdown
from harness.results import write_results
from harness.targets.spec import CatalogueError
from harness.verdict import Outcome, Verdict
from tests.unit.test_results import item, run_of, target

P, E = (dataclasses.replace(target(n), product=n) for n in ("prosody", "ejabberd"))


def run(*items) -> object:
    return run_of(list(items))


def test_a_cell_that_now_fails_a_gated_level_is_a_regression() -> None:
    old = run(item("auth.a", [P]), item("auth.b", [P], "fail", level="SHOULD"), item("auth.c", [E], "fail"))
    new = run(
        item("auth.a", [P], "fail", reason="<script>x</script> refused"),
        item("auth.b", [P], "pass", level="SHOULD"),
        item("auth.c", [E], "fail"),
    )
    changes = compare(old, new)
    assert [(c.cell, c.old_outcome, c.new_outcome, c.regression) for c in changes] == [
        ("auth.a[prosody]", "pass", "fail", True),
        ("auth.b[prosody]", "fail", "pass", False),
    ]
    assert diff_exit_code(changes) == 1
    md = render_markdown(changes, old, new)
    assert "2 changed cells, 1 regressions" in md and "<script>" not in md and "&lt;script&gt;" in md


def test_a_should_failure_regresses_only_under_the_should_gate() -> None:
    old, new = run(item("auth.b", [P], level="SHOULD")), run(item("auth.b", [P], "fail", level="SHOULD"))
    assert diff_exit_code(compare(old, new)) == 0
    assert diff_exit_code(compare(old, new, gate="should")) == 1


def test_cells_only_one_run_has_are_listed() -> None:
    old = run(item("auth.gone", [P]), item("auth.same", [P]))
    new = run(item("auth.same", [P]), item("auth.new", [P], "error"), item("auth.ok", [P]))
    changes = {c.cell: c for c in compare(old, new)}
    assert (
        changes["auth.gone[prosody]"].new_outcome == "absent" and not changes["auth.gone[prosody]"].regression
    )
    assert changes["auth.new[prosody]"].regression  # an error fails the run at any level
    assert not changes["auth.ok[prosody]"].regression
    assert "auth.same[prosody]" not in changes


def test_a_run_folder_or_its_results_file(tmp_path: Path) -> None:
    record = run(item("auth.a", [P]))
    write_results(record, tmp_path / "results.json")
    assert load_run(tmp_path).run_id == load_run(tmp_path / "results.json").run_id == record.run_id


def test_baseline_update_keeps_what_people_wrote_and_drops_what_passed(tmp_path: Path) -> None:
    (tmp_path / "prosody.yaml").write_text(
        yaml.safe_dump(
            {
                "known_failures": {
                    "auth.kept": {"reason": "tracked", "link": "https://tracker.example/1"},
                    "auth.fixed": "was broken",
                }
            }
        )
    )
    record = run(
        item("auth.kept", [P], "xfail", reason="known failure (tracked): refused"),
        item("auth.fixed", [P], "xpass"),
        item("auth.new", [P], "fail", reason="no limit\nsecond line"),
        item("auth.fine", [E]),
        item("fed.pair", [P, E], "fail"),
    )
    written = update_from_run(record, tmp_path)
    assert sorted(p.name for p in written) == ["ejabberd.yaml", "prosody.yaml"]
    prosody = read_file(tmp_path / "prosody.yaml")
    assert prosody["auth.kept"].link == "https://tracker.example/1"
    assert prosody["auth.new"].reason == "no limit"
    assert set(prosody) == {"auth.kept", "auth.new"}  # passed: trimmed; pairs: never baselined
    assert read_file(tmp_path / "ejabberd.yaml") == {}


def test_a_baseline_entry_with_a_link_marks_the_failure_known(tmp_path: Path) -> None:
    (tmp_path / "prosody.yaml").write_text("known_failures:\n  auth.a: {reason: r, link: 'https://t/2'}\n")
    verdict = Baselines.load(tmp_path).apply("prosody", "auth.a", Verdict(Outcome.FAIL, "refused"))
    assert verdict.outcome is Outcome.XFAIL and "https://t/2" in verdict.reason


def test_a_malformed_baseline_entry_says_what_to_write(tmp_path: Path) -> None:
    (tmp_path / "prosody.yaml").write_text("known_failures:\n  auth.a: {why: r}\n")
    with pytest.raises(CatalogueError, match="known_failures.auth.a: give a reason, or a mapping"):
        Baselines.load(tmp_path)


def test_the_configuration_the_two_runs_differ_in() -> None:
    old = run(item("auth.a", [P]))
    hardened = dataclasses.replace(
        old,
        selection={**old.selection, "variant": "hardened"},
        targets=[{**t, "knobs": {**t["knobs"], "sasl_plain": "off"}} for t in old.targets],
        items=[item("auth.a", [P], "unsupported")],
    )
    changes = knob_changes(old, hardened)
    assert {(k.target, k.knob, k.old, k.new) for k in changes} == {
        ("prosody", "sasl_plain", "", "off"),
        ("ejabberd", "sasl_plain", "", "off"),
    }
    md = render_markdown(compare(old, hardened), old, hardened)
    assert "(default) -> 20240501-120000-abcd (hardened)" in md
    assert "| prosody | sasl_plain |  | off |" in md


def test_knobs_over_several_runs_and_the_two_run_view_of_them() -> None:
    """One rule for any number of runs (the history's table); two runs (the diff's) keep the
    targets both ran, since a target only one run has is a change of coverage."""
    default = run(item("auth.a", [P]))
    hardened = dataclasses.replace(
        default, targets=[{**t, "knobs": {"sasl_plain": "off"}} for t in default.targets]
    )
    extra = {**dataclasses.replace(target("tigase"), product="tigase").run_target(), "knobs": {"muc": "on"}}
    plus_one = dataclasses.replace(hardened, targets=[*hardened.targets, extra])
    rows = knob_rows([default, hardened, plus_one])
    assert [(r.target, r.knob, r.values) for r in rows] == [
        ("ejabberd", "sasl_plain", ["", "off", "off"]),
        ("prosody", "sasl_plain", ["", "off", "off"]),
        ("tigase", "muc", ["", "", "on"]),
    ]
    assert knob_rows([hardened, hardened]) == []
    assert [(k.target, k.knob, k.old, k.new) for k in knob_changes(hardened, plus_one)] == []
    assert {k.target for k in knob_changes(default, plus_one)} == {"prosody", "ejabberd"}


def test_the_commands_diff_history_and_baseline_update(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write_results(run(item("auth.a", [P]), item("auth.b", [P], "fail")), old / "results.json")
    write_results(
        run(item("auth.a", [P], "fail", reason="refused"), item("auth.b", [P], "fail")), new / "results.json"
    )
    summary = tmp_path / "summary.md"
    assert main(["diff", str(old), str(new / "results.json"), "--markdown", str(summary)]) == 1
    assert "REGRESSION" in capsys.readouterr().out and "REGRESSION" in summary.read_text()
    assert main(["diff", str(old), str(old)]) == 0
    assert main(["diff", str(old), str(tmp_path / "nowhere")]) == 2
    assert main(["history", str(old), str(new), "--out", str(tmp_path / "h.html")]) == 0
    assert "auth.a[prosody]" in (tmp_path / "h.html").read_text()
    assert main(["baseline", "update", str(new), "--baselines", str(tmp_path / "bl")]) == 0
    assert set(read_file(tmp_path / "bl" / "prosody.yaml")) == {"auth.a", "auth.b"}
