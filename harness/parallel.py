"""Items run concurrently: pytest-xdist workers, each with a topology of its own.

``--jobs N`` (default ``auto``) starts N xdist workers when pytest runs scenarios. Every worker
builds its own topology on its own loopback block (the first free ``127.B/16``, chosen by
binding its DNS responder), so its servers, their logs and their traffic are its own; inside a
worker items run one at a time, as in a serial run. Two items that run at the same time therefore
never share a server process, and an item's pcap (filtered on its targets' addresses), log slice
and stream logs hold only its own traffic. What workers share: the run's id and folder (each item
writes only its own ``items/<item>/``) and the run's two certificate authorities (one CA per run,
so every pcap's certificates check against ``environment/run-ca.crt``).

Scheduling (:func:`make_scheduler`): items whose roles need the same knob values on the same
targets are grouped, so that one worker restarts a target once per knob set, not once per item;
the biggest groups go first (xdist's reordering), single items after them in collection order.
Results come back to the controller on each item's report (``report.interop_item``), which is
where ``results.json`` and the reports are written; a worker writes none.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import options
from harness.scenario.loader import ScenarioError, load_scenario
from harness.scenario.model import Scenario

# Items mostly wait on servers and the network: more workers than cores pays, up to the point
# where the servers themselves (six per worker in federation) compete for the CPU; measured on
# 2 cores by ci/benchmark.py, see docs/decisions.md.
AUTO_JOBS_PER_CORE = 3
AUTO_JOBS_MAX = 6
MAIN = "main"  # the worker name of a serial run (and of the controller)


def auto_jobs() -> int:
    return max(2, min(AUTO_JOBS_MAX, AUTO_JOBS_PER_CORE * (os.cpu_count() or 1)))


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def worker_name(config: pytest.Config) -> str:
    return config.workerinput["workerid"] if is_worker(config) else MAIN


def scenario_run(config: pytest.Config) -> bool:
    """Whether pytest was asked for scenarios only (``interop run``, ``pytest scenarios/``): the
    harness's own tests (``pytest tests/``) keep pytest's serial default."""
    paths = [config.invocation_params.dir / arg.split("::")[0] for arg in config.args]
    return bool(paths) and all(options.in_scenario_folder(config.option, p) for p in paths)


def configure(config: pytest.Config, count_items: Callable[[], int]) -> None:
    """Turn ``--jobs`` into xdist workers (called before xdist reads its options); ``auto``
    starts no more workers than there are items (``count_items``: the selection's, before -k)."""
    if is_worker(config) or not config.pluginmanager.hasplugin("xdist"):
        return
    option = config.option
    if option.numprocesses or option.collectonly or option.usepdb or not scenario_run(config):
        return  # a user's own -n wins; collecting or debugging stays in one process
    jobs = min(auto_jobs(), count_items()) if option.jobs == "auto" else int(option.jobs)
    if jobs > 1:
        option.numprocesses = jobs
        option.dist = "load"


# How long the controller waits for its workers to stop their servers when a run ends (xdist's
# own default, 10 s, then kills them: too short for a worker stopping containers).
WORKER_STOP_S = 180.0


def give_workers_time_to_stop(config: pytest.Config) -> None:
    """Let every worker stop its targets before xdist would kill it (an interrupt that reached
    only the run's process ends the workers through xdist, not through a signal of their own)."""
    session = config.pluginmanager.getplugin("dsession")
    manager = getattr(session, "nodemanager", None)
    if manager is not None:
        manager.EXIT_TIMEOUT = WORKER_STOP_S


# rough costs of what happens before an item's steps (seen on 2 cores: an ejabberd restart takes
# about 10 s, a federation reset about half a second per target)
KNOB_RESTART_S = 10.0
PAIR_RESET_S = 1.0


def expected_cost(scenario: Scenario) -> float:
    """A rough upper bound of an item's time, to start the longest first: the deadlines its steps
    declare (an item that fails may wait them out), a restart when it needs knob values, a
    reset when it is a pair."""
    waits = sum(float(step.params.get("within", 0)) for step in scenario.steps)
    knobs = any(options.get("knobs") for options in scenario.roles.values())
    return waits + KNOB_RESTART_S * knobs + PAIR_RESET_S * scenario.is_pair


def item_of(config: pytest.Config, nodeid: str) -> tuple[Scenario, list[str]] | None:
    """The scenario and target names of a scenario item's node id (None for other items).

    The node id's path is relative to the rootdir or, for a file outside it (a ``--scenarios``
    folder elsewhere), to the collected path that holds it (pytest's rule); the item's name,
    ``id[targets]``, tells which of those files it is."""
    path, _, name = nodeid.partition("::")
    if not name.endswith("]") or "[" not in name:
        return None
    scenario_id, _, targets = name[:-1].partition("[")
    given = [(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args]
    for base in (config.rootpath, *given):
        scenario = _scenario(base / path)
        if scenario is not None and scenario.id == scenario_id:
            return scenario, targets.split("->")
    return None


@functools.cache
def _scenario(path: Path) -> Scenario | None:
    try:
        return load_scenario(path)
    except (ScenarioError, OSError):
        return None


def make_scheduler(config: pytest.Config, log: Any, group_of: Callable[[str, list[str]], str | None]) -> Any:
    """xdist's scope scheduling with one scope per ``group_of(nodeid, collection)`` (None: the
    item alone); ``collection``: every node id of the run, which a group may depend on."""
    from xdist.scheduler import LoadScopeScheduling

    class ScenarioScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid, self.collection or []) or nodeid

    return ScenarioScheduling(config, log)
