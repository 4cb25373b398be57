"""One-command repro of a cell: ``interop rerun ITEM_ID --from RUN_DIR``.

A vendor who patched a server after an interop event wants the one cell again, under the same
conditions, with evidence to compare. The first run's ``results.json`` says everything needed:
the item's targets (the pair of a pair item), the driver, the catalogues and target files, the
knobs asked for and the variant. The rerun is an ordinary run limited to that item (``--item``),
so its folder has the same shape as the first and the two can be compared file by file (or with
``interop diff``).
"""

from __future__ import annotations

import difflib
import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import resources
from harness.options import PROJECT_ROOT
from harness.results import DEFAULT_GATE, ItemResult, RunRecord, safe_name

EXTERNAL = "external"  # the driver of target-file targets: they come back through --target-file


class RerunError(ValueError):
    """The first run cannot say how to run the item again (a usage error)."""


@dataclass(frozen=True)
class Rerun:
    item: ItemResult
    run_args: list[str]  # `interop run` arguments that run the item again
    scenario_changed: bool  # the scenario file differs from the one the first run used


def find_item(run: RunRecord, item_id: str) -> ItemResult:
    for item in run.items:
        if item.item_id == item_id:
            return item
    close = difflib.get_close_matches(item_id, [i.item_id for i in run.items], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise RerunError(f"run {run.run_id} has no item {item_id!r}{hint}")


def plan(run: RunRecord, item_id: str, out: Path) -> Rerun:
    """The ``interop run`` that runs ``item_id`` of ``run`` again, writing into ``out``."""
    item = find_item(run, item_id)
    selection = run.selection
    scenario_file = PROJECT_ROOT / item.scenario_file
    if not scenario_file.is_file():
        raise RerunError(f"the scenario file of {item_id}, {scenario_file}, is gone")
    managed = sorted({t.instance_of for t in item.targets if t.driver != EXTERNAL})
    args = ["--item", item.item_id, "--scenario", item.scenario_id, "--jobs", "1", "--out", str(out)]
    if managed:
        args += ["--targets", ",".join(managed), "--driver", str(selection.get("driver", "local"))]
        if selection.get("docker_network"):
            args += ["--docker-network", str(selection["docker_network"])]
    if selection.get("event", {}).get("file"):  # its participants, inline ones too, come back with it
        args += ["--event", selection["event"]["file"]]
    for folder in selection.get("catalogues", []):
        args += ["--catalogue", folder]
    external = any(t.driver == EXTERNAL for t in item.targets)
    if external and "--event" not in args and not selection.get("target_files"):
        raise RerunError(f"run {run.run_id} does not record its target files (an older run)")
    for path in selection.get("target_files", []) if external else []:
        args += ["--target-file", path]
    for knob in _asked_knobs(selection.get("knobs", {}), managed):
        args += ["--knob", knob]
    if selection.get("variant", "default") != "default":
        args += ["--variant", str(selection["variant"])]
    if selection.get("gate", DEFAULT_GATE) != DEFAULT_GATE:
        args += ["--gate", str(selection["gate"])]
    if not scenario_file.resolve().is_relative_to(resources.SCENARIOS.resolve()):
        args += ["--scenarios", str(scenario_file.parent)]  # a user's own folder, not the shipped one
    changed = hashlib.sha256(scenario_file.read_bytes()).hexdigest() != item.scenario_sha256
    return Rerun(item, args, changed)


def _asked_knobs(asked: dict[str, Any], targets: list[str]) -> list[str]:
    """``--knob`` values from the record: ``knob -> value`` (every target) or ``target -> {knob ->
    value}``, kept for the item's targets only."""
    knobs = []
    for key, value in sorted(asked.items()):
        if isinstance(value, str):
            knobs.append(f"{key}={value}")
        elif key in targets:
            knobs += [f"{key}:{name}={v}" for name, v in sorted(value.items())]
    return knobs


def command(run_dir: Path, item_id: str) -> str:
    """The command line that reruns ``item_id`` (shown on its HTML page)."""
    return shlex.join(["interop", "rerun", item_id, "--from", str(run_dir)])


def default_out(run_dir: Path, item_id: str) -> Path:
    """Beside the first run: ``<run>-rerun-<item>``, numbered when it exists already."""
    base = run_dir.parent / f"{run_dir.name}-rerun-{safe_name(item_id)}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out
