"""interop merge: shards or jobs of one selection become one run; what is not one result set is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.merge import merge_files, merge_runs
from harness.results import ResultsError, validate_results, write_results
from tests.unit.test_results import full_run, item, run_of, target


def _halves():
    whole = full_run()
    first = dataclasses.replace(whole, items=whole.items[:3], selection={**whole.selection, "shard": "1/2"})
    second = dataclasses.replace(
        whole,
        run_id="20240501-130000-beef",
        started_at="2024-05-01T13:00:00Z",
        finished_at="2024-05-01T13:05:00Z",
        items=whole.items[3:],
        selection={**whole.selection, "shard": "2/2"},
    )
    return whole, first, second


def test_two_shards_merge_into_the_whole_run() -> None:
    whole, first, second = _halves()
    merged = merge_runs([first, second], "merged-x", ["interop", "merge"])
    assert [i.to_dict() for i in merged.items] == [i.to_dict() for i in whole.items]
    assert merged.targets == whole.targets
    assert merged.selection == whole.selection  # the shard is gone
    assert (merged.started_at, merged.finished_at) == (first.started_at, second.finished_at)
    validate_results(merged.to_dict())


def test_an_item_in_two_runs_is_refused() -> None:
    _, first, _ = _halves()
    with pytest.raises(ResultsError, match="in more than one run"):
        merge_runs([first, first], "m", [])


def test_one_name_for_two_targets_is_refused() -> None:
    one = run_of([item("auth.a", [target("prosody")])])
    other = run_of([item("auth.b", [target("prosody")])])
    other.targets[0]["version"] = "9.9"
    with pytest.raises(ResultsError, match="target prosody differs"):
        merge_runs([one, other], "m", [])


def test_different_harness_versions_are_refused() -> None:
    one = run_of([item("auth.a", [target("prosody")])])
    other = dataclasses.replace(run_of([item("auth.b", [target("prosody")])]), harness_version="0.2.0")
    with pytest.raises(ResultsError, match="different harness versions"):
        merge_runs([one, other], "m", [])


def test_evidence_is_copied_under_the_same_paths(tmp_path: Path) -> None:
    _, first, second = _halves()
    paths = []
    for name, run in (("a", first), ("b", second)):
        results = write_results(run, tmp_path / name / "results.json")
        for one in run.items:
            for relative in one.evidence.values():
                (tmp_path / name / relative).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name / relative).write_text(f"{name}:{relative}")
        paths.append(results)
    merged = merge_files(paths, tmp_path / "merged", "m", [])
    for one in merged.items:
        for relative in one.evidence.values():
            assert (tmp_path / "merged" / relative).read_text().endswith(relative)
