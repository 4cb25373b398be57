"""``interop rerun``: the run arguments that put one cell of a finished run back on the same
targets, driver, knobs and variant (the real rerun of a pair item runs in tests/integration)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness import rerun
from harness.cli import main
from harness.options import PROJECT_ROOT
from harness.results import write_results
from tests.unit.test_results import item, run_of, target

SCENARIO = "auth.sasl.wrong-password"
FILE = f"scenarios/authentication/{SCENARIO}.yaml"
SHA = hashlib.sha256((PROJECT_ROOT / FILE).read_bytes()).hexdigest()


def _item(targets, **changes):
    one = item(SCENARIO, targets)
    one.scenario_file, one.scenario_sha256 = FILE, SHA
    for key, value in changes.items():
        setattr(one, key, value)
    return one


def _value(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_a_pair_item_runs_again_on_its_pair_with_the_knobs_and_variant_asked_for(tmp_path: Path) -> None:
    pair = _item([target("prosody", "origin"), target("ejabberd", "receiver")])
    run = run_of([pair], ("prosody", "ejabberd", "jabberd2"))
    run.selection |= {"variant": "hardened", "gate": "should", "driver": "docker", "docker_network": "bridge"}
    run.selection["knobs"] = {
        "registration": "open",
        "jabberd2": {"s2s_tls": "off"},
        "prosody": {"muc": "on"},
    }
    again = rerun.plan(run, pair.item_id, tmp_path / "again")
    args = again.run_args
    assert _value(args, "--item") == [pair.item_id]
    assert _value(args, "--targets") == ["ejabberd,prosody"]  # not jabberd2, which the item did not use
    assert _value(args, "--knob") == ["prosody:muc=on", "registration=open"]
    assert (_value(args, "--variant"), _value(args, "--gate")) == (["hardened"], ["should"])
    assert (_value(args, "--driver"), _value(args, "--docker-network")) == (["docker"], ["bridge"])
    assert _value(args, "--jobs") == ["1"] and _value(args, "--out") == [str(tmp_path / "again")]
    assert not _value(args, "--scenarios")  # a shipped scenario
    assert again.scenario_changed is False


def test_an_external_target_comes_back_through_its_target_file(tmp_path: Path) -> None:
    vendor = target("vendor-x")
    vendor.driver = "external"
    one = _item([vendor])
    run = run_of([one], ("vendor-x",))
    with pytest.raises(rerun.RerunError, match="does not record its target files"):
        rerun.plan(run, one.item_id, tmp_path)
    run.selection["target_files"] = ["/events/vendor-x.target.yaml"]
    args = rerun.plan(run, one.item_id, tmp_path).run_args
    assert _value(args, "--target-file") == ["/events/vendor-x.target.yaml"]
    assert "--targets" not in args and "--driver" not in args


def test_a_changed_scenario_file_and_a_users_own_folder_are_noticed(tmp_path: Path) -> None:
    own = tmp_path / "mine" / "x.yaml"
    own.parent.mkdir()
    own.write_text((PROJECT_ROOT / FILE).read_text() + "# edited\n")
    one = _item([target("prosody")], scenario_file=str(own))
    again = rerun.plan(run_of([one]), one.item_id, tmp_path / "again")
    assert again.scenario_changed is True
    assert _value(again.run_args, "--scenarios") == [str(own.parent)]


def test_an_unknown_item_is_a_usage_error_that_names_the_close_ones(tmp_path: Path, capsys) -> None:
    one = _item([target("prosody")])
    write_results(run_of([one]), tmp_path / "results.json")
    code = main(["rerun", f"{SCENARIO}[prosdy]", "--from", str(tmp_path)])
    assert code == 2
    assert f"did you mean {SCENARIO}[prosody]" in capsys.readouterr().err


def test_the_default_folder_sits_beside_the_first_run_and_never_reuses_one(tmp_path: Path) -> None:
    first = rerun.default_out(tmp_path / "run1", "a.b[x->y]")
    assert first.parent == tmp_path and first.name.startswith("run1-rerun-a.b")
    first.mkdir()
    assert rerun.default_out(tmp_path / "run1", "a.b[x->y]").name == first.name + "-2"
    assert rerun.command(Path("/r/run1"), "a.b[x->y]") == "interop rerun 'a.b[x->y]' --from /r/run1"


def test_an_event_run_comes_back_through_its_event_file(tmp_path: Path) -> None:
    """Inline participants of an event are in no target file: the event file brings them back."""
    vendor = target("vendor-y")
    vendor.driver = "external"
    one = _item([vendor])
    run = run_of([one], ("vendor-y",))
    run.selection["event"] = {"name": "campus-day", "title": "Campus day", "file": "/events/day.yaml"}
    args = rerun.plan(run, one.item_id, tmp_path).run_args
    assert _value(args, "--event") == ["/events/day.yaml"] and not _value(args, "--target-file")
