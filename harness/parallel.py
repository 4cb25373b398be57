"""Items run concurrently: pytest-xdist workers, each with a topology of its own.

``--jobs N`` (default ``auto``) starts N xdist workers when pytest runs scenarios. Every worker
builds its own topology on its own loopback block (the first free ``127.B/16``, chosen by
binding its DNS responder), so its servers, their logs and their traffic are its own; inside a
worker items run one at a time, as in a serial run. Two items that run at the same time therefore
never share a server process, and an item's pcap (filtered on its targets' addresses), log slice
and stream logs hold only its own traffic. What workers share: the run's id and folder (each item
writes only its own ``items/<item>/``) and the run's two certificate authorities (one CA per run,
so every pcap's certificates check against ``environment/run-ca.crt``).

Scheduling (:class:`ScenarioScheduling`): items whose roles need knob values are grouped by
target and knobs, so that one worker restarts a target once per knob set, not once per item;
the biggest groups go first (xdist's reordering), single items after them in collection order.
Results come back to the controller on each item's report (``report.interop_item``), which is
where ``results.json`` and the reports are written; a worker writes none.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest

from harness.scenario.loader import ScenarioError, load_scenario
from harness.scenario.model import Scenario

# Items mostly wait on servers and the network: more workers than cores pays, up to the point
# where the servers themselves (six per worker in federation) compete for the CPU; measured on
# 2 cores by ci/benchmark.py, see docs/decisions.md.
AUTO_JOBS_PER_CORE = 2
AUTO_JOBS_MAX = 6
MAIN = "main"  # the worker name of a serial run (and of the controller)


def auto_jobs() -> int:
    return max(2, min(AUTO_JOBS_MAX, AUTO_JOBS_PER_CORE * (os.cpu_count() or 1)))


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def worker_name(config: pytest.Config) -> str:
    return config.workerinput["workerid"] if is_worker(config) else MAIN


def is_distributed(config: pytest.Config) -> bool:
    """The controller of a parallel run: it runs no item itself."""
    return (
        not is_worker(config)
        and bool(getattr(config.option, "tx", None))
        and (getattr(config.option, "dist", "no") != "no")
    )


def scenario_run(config: pytest.Config) -> bool:
    """Whether pytest was asked for scenarios only (``interop run``, ``pytest scenarios/``): the
    harness's own tests (``pytest tests/``) keep pytest's serial default."""
    paths = [Path(arg.split("::")[0]) for arg in config.args]
    return bool(paths) and all(
        "scenarios" in (config.invocation_params.dir / p).resolve().parts for p in paths
    )


def configure(config: pytest.Config) -> None:
    """Turn ``--jobs`` into xdist workers (called before xdist reads its options)."""
    if is_worker(config) or not config.pluginmanager.hasplugin("xdist"):
        return
    option = config.option
    if option.numprocesses or option.collectonly or option.usepdb or not scenario_run(config):
        return  # a user's own -n wins; collecting or debugging stays in one process
    jobs = auto_jobs() if option.jobs == "auto" else int(option.jobs)
    if jobs > 1:
        option.numprocesses = jobs
        option.dist = "load"


@functools.cache
def _scenario(path: Path) -> Scenario | None:
    try:
        return load_scenario(path)
    except (ScenarioError, OSError):
        return None


def knob_group(scenario: Scenario, names: dict[str, str]) -> str | None:
    """The group of an item whose roles need knob values: its targets with those knobs."""
    parts = [
        f"{names[role]}:{sorted(options['knobs'].items())}"
        for role, options in scenario.roles.items()
        if options.get("knobs") and role in names
    ]
    return "knobs " + " ".join(parts) if parts else None


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    class ScenarioScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with a scope per knob group (see the module docs)."""

        def _split_scope(self, nodeid: str) -> str:
            path, _, name = nodeid.partition("::")
            scenario = _scenario(root / path)
            if scenario is None or "[" not in name:
                return nodeid
            names = dict(zip(scenario.roles, name[name.index("[") + 1 : -1].split("->"), strict=False))
            return knob_group(scenario, names) or nodeid

    return ScenarioScheduling(config, log)
