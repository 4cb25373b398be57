"""Merge the results of several runs (shards, CI jobs, machines) into one run with its reports.

The items of every run are kept as they are, with their evidence copied into the merged run's
directory under the same relative paths (item folders have unique names). Runs that cannot be
one result set are refused: different harness versions, an item id in two runs, or one target
name standing for different products, versions or knobs.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import Any

from harness.results import ItemResult, ResultsError, RunRecord, read_results

# selection lists that are unions of the runs'; the other selection keys must agree
_LISTS = ("targets", "categories", "scenarios", "items", "catalogues", "target_files")


def merge_runs(runs: list[RunRecord], run_id: str, command: list[str]) -> RunRecord:
    if not runs:
        raise ResultsError("nothing to merge")
    versions = sorted({r.harness_version for r in runs})
    if len(versions) > 1:
        raise ResultsError(
            f"runs of different harness versions ({', '.join(versions)}) are not one result set"
        )
    items: dict[str, ItemResult] = {}
    for run in runs:
        for item in run.items:
            if item.item_id in items:
                raise ResultsError(f"item {item.item_id} is in more than one run (overlapping shards?)")
            items[item.item_id] = item
    return RunRecord(
        run_id=run_id,
        harness_version=versions[0],
        started_at=min(r.started_at for r in runs),
        finished_at=max(r.finished_at for r in runs),
        command=command,
        host={"python": platform.python_version(), "platform": platform.platform()},
        selection=_selection(runs),
        targets=_targets(runs),
        items=list(items.values()),
    )


def _targets(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """Every run's targets, each once; a target that differs (other than in where it listened,
    which differs between runs and their workers) is not the same target."""
    merged: dict[str, dict[str, Any]] = {}
    for run in runs:
        for target in run.targets:
            known = merged.setdefault(target["name"], dict(target))
            if _without_address(known) != _without_address(target):
                raise ResultsError(
                    f"target {target['name']} differs between the runs "
                    f"({_describe(known)} / {_describe(target)}): not one result set"
                )
            places = {*known["address"].split(", "), *target["address"].split(", ")}
            known["address"] = ", ".join(sorted(places))
    return list(merged.values())


def _without_address(target: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in target.items() if key != "address"}


def _describe(target: dict[str, Any]) -> str:
    return f"{target.get('product')} {target.get('version')}, knobs {target.get('knobs')}"


# how the runs were judged, not what they ran: the merge is judged under its own --gate
_JUDGEMENT = frozenset({"shard", "gate", "strict_baseline"})


def _selection(runs: list[RunRecord]) -> dict[str, Any]:
    """The union of what the runs were asked to run (a shard of a selection is that selection)."""
    merged: dict[str, Any] = {}
    for run in runs:
        for key, value in run.selection.items():
            if key in _JUDGEMENT:
                continue
            if key in _LISTS:
                merged[key] = list(dict.fromkeys([*merged.get(key, []), *value]))  # first seen first
            elif key == "knobs":
                merged[key] = {**value, **merged.get(key, {})}
            elif key == "event" and merged.get(key, value)["name"] == value["name"]:
                merged.setdefault(key, value)  # one event, whichever checkout its file was in
            elif merged.setdefault(key, value) != value:
                raise ResultsError(
                    f"the runs differ in {key} ({merged[key]!r} / {value!r}): not one result set"
                )
    return merged


def merge_files(results: list[Path], out: Path, run_id: str, command: list[str]) -> RunRecord:
    """Read ``results`` (results.json files), merge them and copy every item's evidence into
    ``out``; the caller writes the merged results and reports there."""
    runs = [read_results(path) for path in results]
    merged = merge_runs(runs, run_id, command)
    for path, run in zip(results, runs, strict=True):
        for item in run.items:
            for relative in item.evidence.values():
                source, dest = path.parent / relative, out / relative
                if source.exists() and source.resolve() != dest.resolve():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, dest)
    return merged
