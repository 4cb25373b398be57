"""The pytest plugin: scenario files become items, one per target (or ordered target pair).

pytest does what its users expect (``-k``, ``-x``, ``--collect-only``, ``--junitxml``,
``--alluredir``); the plugin adds the run's topology, the verdicts and the reports. Verdicts
map onto pytest outcomes: pass -> passed, fail/error -> failed (an assertion for a fail, another
exception for an error: Allure's failed and broken), unsupported -> skipped, xfail -> xfailed.
``results.json`` keeps the five-way verdict that pytest cannot; a scenario run's ``--junitxml``
is written from it (:mod:`harness.report.junit`), not by pytest, and its exit status is the
run's exit code (:func:`session_status`), as ``interop run`` gives it: an item pytest counts as
failed may be a finding below ``--gate``.

pytest's junit options in a scenario run: ``junit_suite_name`` names the test suite and
``--junit-prefix`` goes before every classname. The others have no meaning for a file written
from results.json, and are ignored: ``junit_family`` (the file has one shape, with the item,
level, verdict and targets as properties of each test case, which xunit2 would drop; xunit1's
file and line point into Python test functions), ``junit_logging`` and
``junit_log_passing_tests`` (an item's output is its evidence, which the file names by path;
results.json holds no captured output), ``junit_duration_report`` (an item has one duration,
the engine's, not pytest's setup, call and teardown phases).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import platform
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import interrupts, options, parallel, resources
from harness.actors import actor_kinds
from harness.baseline import Baselines
from harness.engine import ItemRun, item_id, run_item
from harness.environment.run_env import keeps_work_dir, new_work_dir
from harness.profiles import ProfileError, load_profile
from harness.progress import RunProgress
from harness.report import allure, write_reports
from harness.report.junit import SUITE_NAME, write_junit
from harness.results import (
    ItemResult,
    RunRecord,
    TargetRecord,
    exit_code,
    exit_problems,
    safe_name,
    utc_timestamp,
    write_results,
)
from harness.scenario.loader import ScenarioError, load_all, load_scenario, scenario_files
from harness.scenario.model import Scenario
from harness.shard import Shard, ShardError
from harness.targets.docker import clean_leftovers, connect
from harness.targets.docker import owner as docker_owner
from harness.targets.local import end_processes_under
from harness.targets.running import RunningTarget
from harness.targets.spec import CatalogueError
from harness.topology import SetupStep, Topology, config_diff_path
from harness.verdict import Outcome, StepOutcome, Verdict

PROJECT_ROOT = options.PROJECT_ROOT
_STATE = pytest.StashKey["RunState"]()
NOT_STARTED = "unknown"  # the version of a target an item needed but did not start (or reach)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_to_pytest(parser.getgroup("interop", "IM interop harness"))


def new_run_id() -> str:
    return utc_timestamp().replace(":", "").replace("-", "")[:15] + "-" + secrets.token_hex(2)


class RunState:
    """Everything one pytest session of scenarios shares; created on first use.

    In a parallel run every worker has one (with its own topology, on its own loopback block)
    and so has the controller, which runs no item: it gathers the items' results from their
    reports and writes results.json and the reports. Workers learn the run's id and shared work
    folder from the controller (:func:`pytest_configure_node`)."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.option
        shared = getattr(config, "workerinput", {})
        self.worker = parallel.worker_name(config)
        self.run_id = opt.run_id or shared.get("interop_run_id") or new_run_id()
        self.run_dir: Path = (opt.out or Path("reports") / self.run_id).resolve()
        self.work_root: Path | None = None  # a parallel run's shared server folder (controller)
        work_dir = authorities = None
        if "interop_work_root" in shared:
            root = Path(shared["interop_work_root"])
            work_dir, authorities = root / self.worker, root / "authorities"
        try:
            self.selection = options.selection(opt)  # an --event file's errors are usage errors
            self.topology = Topology(
                self.selection,
                resources.CATALOGUE,
                self.run_dir,
                work_dir=work_dir,
                authorities_dir=authorities,
                owner=shared.get("interop_owner"),
            )
            self.profile = load_profile(opt.profile) if opt.profile else None
            self.baselines = Baselines.load(opt.baselines)
        except (CatalogueError, ProfileError) as exc:  # a baseline's error is a CatalogueError
            raise pytest.UsageError(str(exc)) from None
        self.categories = set(opt.category)
        self.patterns = list(opt.scenario)
        self.items = set(opt.item)  # item ids (--item); empty: every item of the selection
        self.shard: str | None = opt.shard
        self.gate: str = opt.gate
        self.strict_baseline: bool = opt.strict_baseline
        self.started_at = utc_timestamp()
        self.results: list[ItemResult] = []
        # pytest failures no item record holds (a collection error, an item whose worker died)
        self.unrecorded_failures: list[str] = []
        self.command = list(sys.argv)

    def shared_work_root(self) -> Path:
        """The folder under which every worker of a parallel run keeps its servers (the
        controller makes it once and removes it at the end)."""
        if self.work_root is None:
            self.work_root = new_work_dir()
        return self.work_root

    def selected(self, scenario: Scenario) -> bool:
        if self.categories and scenario.category not in self.categories:
            return False
        return not self.patterns or any(fnmatch.fnmatchcase(scenario.id, p) for p in self.patterns)

    def target_sets(self, scenario: Scenario) -> Iterator[dict[str, str]]:
        """Role -> target name: every selected target, or every ordered pair of them (a target
        paired with itself meets its second instance)."""
        roles = list(scenario.roles)
        if len(roles) == 1:
            for name in self.topology.names:
                yield {roles[0]: name}
        else:
            for pair in self.topology.pairs():
                yield dict(zip(roles, pair, strict=True))

    def result(
        self,
        scenario: Scenario,
        targets: dict[str, TargetRecord],
        verdict: Verdict,
        started: str,
        run: ItemRun | None = None,
        setup: list[SetupStep] | None = None,
    ) -> ItemResult:
        """The record of one item (``run``: what the engine did, None when its targets failed)."""
        return ItemResult(
            item_id=item_id(scenario, {role: t.name for role, t in targets.items()}),
            scenario_id=scenario.id,
            title=scenario.title,
            category=scenario.category,
            level=scenario.level,
            spec=dict(scenario.spec),
            targets=list(targets.values()),
            outcome=verdict.outcome.value,
            reason=verdict.reason,
            duration_s=round(run.duration_s, 3) if run else 0.0,
            started_at=started,
            evidence={k: str(p.relative_to(self.run_dir)) for k, p in (run.evidence if run else {}).items()},
            scenario_file=str(_relative(scenario.path)),
            scenario_sha256=scenario.sha256,
            actors_connected=run.actors_connected if run else False,
            steps=[dataclasses.asdict(step) for step in (run.steps if run else [])],
            setup=[dataclasses.asdict(step) for step in setup or []],
            worker=self.worker,
            decided_by=[dataclasses.asdict(d) for d in (run.decided_by if run else [])],
            health=run.health if run else {},
        )

    def record(self) -> RunRecord:
        """The run's record as it stands: every item finished so far (the live report renders it
        while the run goes, :mod:`harness.live`; :meth:`finish` writes it at the end)."""
        items = sorted(self.results, key=lambda item: item.item_id)  # the same order whatever the --jobs
        seen: dict[str, dict[str, Any]] = {}
        addresses: dict[str, set[str]] = {}
        records = [t for item in items for t in item.targets]
        for t in sorted(records, key=lambda t: t.version == NOT_STARTED):  # a started one knows its version
            seen.setdefault(t.name, t.run_target())
            addresses.setdefault(t.name, set()).add(t.address)
        for name, target in seen.items():  # in parallel every worker ran a target of its own
            target["address"] = ", ".join(sorted(addresses[name]))
        return RunRecord(
            run_id=self.run_id,
            harness_version=harness.__version__,
            started_at=self.started_at,
            finished_at=utc_timestamp(),
            command=self.command,
            host={"python": platform.python_version(), "platform": platform.platform()},
            selection={
                "targets": self.topology.names,
                "driver": self.selection.driver,
                "docker_network": self.selection.docker_network,
                "catalogues": [str(p) for p in self.selection.catalogues],
                "target_files": [str(p) for p in self.selection.target_files],
                "keylog": self.selection.keylog,
                **({"event": self.selection.event} if self.selection.event else {}),
                "categories": sorted(self.categories),
                "scenarios": self.patterns,
                **({"items": sorted(self.items)} if self.items else {}),
                "knobs": {t: k for t, k in self.topology.knobs.items() if k},
                "variant": self.selection.variant or "default",
                "gate": self.gate,
                "strict_baseline": self.strict_baseline,
                "profile": self.profile.to_dict() if self.profile else None,
                **({"shard": self.shard} if self.shard else {}),
            },
            targets=list(seen.values()),
            items=items,
        )

    def finish(self, junit: JunitRequest | None, allure_dir: Path | None) -> RunRecord:
        """Write the run's record and its reports (``junit``, ``allure_dir``: where pytest was
        asked for JUnit and Allure results)."""
        self.topology.close()
        run = self.record()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_results(run, self.run_dir / "results.json")
        if junit is not None:
            junit.write(run)
        if allure_dir is not None:
            allure.write_environment(run, allure_dir)
        write_reports(run, self.run_dir)
        return run


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(PROJECT_ROOT)
    except ValueError:
        return path


def _target_record(target: RunningTarget, role: str, instance_of: str) -> TargetRecord:
    """The record of a target that started (with the version it reports, and what the run
    changed in its packaged files: the diff the topology wrote when it started the target)."""
    diff, changes = target.config_diff()
    return TargetRecord(
        instance_of=instance_of,
        name=target.name,
        product=target.product,
        version=target.version,
        driver=target.driver,
        domain=target.domain,
        address=target.address,
        knobs=dict(target.knobs),
        role=role,
        verified_here=target.verified_here,
        config_changes={**changes, "diff": str(config_diff_path(target.name))} if diff else {},
    )


def _state(config: pytest.Config) -> RunState:
    if _STATE not in config.stash:
        config.stash[_STATE] = RunState(config)
    return config.stash[_STATE]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A YAML file in a scenario folder (the shipped one, a ``--scenarios`` one) is a scenario;
    one elsewhere is not, whatever its folder's name."""
    if file_path.suffix == ".yaml" and options.in_scenario_folder(parent.config.option, file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            scenario = load_scenario(self.path)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        state = _state(self.config)
        if not state.selected(scenario):
            return
        for roles in state.target_sets(scenario):
            name = item_id(scenario, roles)
            if state.items and name not in state.items:
                continue
            yield ScenarioItem.from_parent(self, name=name, scenario=scenario, roles=roles)


def needs_reset(scenario: Scenario) -> bool:
    """Items between servers start from no federation state: over pairs, or with an actor that
    plays a server (targets keep streams, dialback results and back-off otherwise)."""
    kinds = actor_kinds()
    return scenario.is_pair or any(kinds[a.kind].plays_server for a in scenario.actors.values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Only this shard's items (``--shard i/N``), in the order that wastes least time. One by one:
    items whose roles need knob values last, so that targets restart with other knobs as rarely
    as possible. In parallel (each worker collects the same list, which the controller hands
    out in this order): the items that may take longest first, so that no worker is left alone
    with a long item at the end (the order is otherwise the files' order)."""
    shard = config.getoption("--shard")
    if shard:
        try:
            keep = Shard.parse(shard).keeps([i.name for i in items if isinstance(i, ScenarioItem)])
        except ShardError as exc:
            raise pytest.UsageError(str(exc)) from None
        dropped = [i for i in items if isinstance(i, ScenarioItem) and i.name not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [i for i in items if i not in dropped]

    def needs_knobs(item: pytest.Item) -> bool:
        return isinstance(item, ScenarioItem) and any(r.get("knobs") for r in item.scenario.roles.values())

    if parallel.is_worker(config):
        items.sort(key=lambda i: -parallel.expected_cost(i.scenario) if isinstance(i, ScenarioItem) else 0)
    else:
        items.sort(key=needs_knobs)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, roles: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.roles = roles
        self.verdict: Verdict | None = None
        self.result: ItemResult | None = None  # the item's record, once it ran
        self.add_marker(pytest.mark.interop_category(scenario.category))
        self.user_properties.append(("level", scenario.level))

    def runtest(self) -> None:
        allure.describe_item(self, self.scenario, self.roles)
        state = _state(self.config)
        started = utc_timestamp()
        evidence_dir = state.run_dir / "items" / safe_name(self.name)
        topology = state.topology
        setup: list[SetupStep] = []  # what this item waited for (none when its knobs are missing)
        try:
            knobs = topology.role_knobs(self.scenario.roles, self.roles, self.scenario.spec_ref)
            try:
                targets = topology.targets(self.roles, knobs, reset=needs_reset(self.scenario))
            finally:
                setup = topology.setup_steps
        except Exception as exc:  # a target that cannot start is an error of every item needing it
            reason = exc.reason if isinstance(exc, StepOutcome) else f"{type(exc).__name__}: {exc}"
            outcome = exc.outcome if isinstance(exc, StepOutcome) else Outcome.ERROR
            verdict = Verdict(outcome, reason)
            planned = {
                role: TargetRecord(
                    role=role,
                    version=NOT_STARTED,
                    instance_of=topology.instance_of(name),
                    **topology.describe(name),
                )
                for role, name in self.roles.items()
            }
            self.result = state.result(self.scenario, planned, verdict, started, setup=setup)
            self._finish(verdict)
            return
        run = run_item(self.scenario, targets, evidence_dir, topology)
        verdict = run.verdict
        if len(targets) == 1:
            verdict = state.baselines.apply(next(iter(targets.values())).product, self.scenario.id, verdict)
        records = {r: _target_record(t, r, topology.instance_of(t.name)) for r, t in targets.items()}
        self.result = state.result(self.scenario, records, verdict, started, run, setup)
        allure.attach_evidence(run.evidence)
        self._finish(verdict)

    def _finish(self, verdict: Verdict) -> None:
        self.verdict = verdict
        if verdict.outcome is Outcome.UNSUPPORTED:
            pytest.skip(f"unsupported: {verdict.reason}")
        if verdict.outcome is Outcome.XFAIL:
            pytest.xfail(verdict.reason)
        if verdict.outcome is Outcome.FAIL:
            raise VerdictFailure(verdict)
        if verdict.outcome is Outcome.ERROR:
            raise VerdictError(verdict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, VerdictRaised):
            v = excinfo.value.verdict
            return (
                f"{v.outcome.value}: {v.reason}\n  scenario: {self.scenario.path}\n"
                f"  spec: {self.scenario.spec_ref}"
            )
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class VerdictRaised(Exception):
    """An item's ``fail`` or ``error``, as the exception that makes pytest report it failed."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class VerdictFailure(VerdictRaised, AssertionError):
    """A ``fail``: a rule the target broke, an assertion that did not hold (Allure: failed)."""


class VerdictError(VerdictRaised):
    """An ``error``: the harness could not judge the target (Allure: broken)."""


@dataclasses.dataclass(frozen=True)
class JunitRequest:
    """The JUnit XML file pytest was asked for (``--junitxml``) and the names pytest's options
    give it (:func:`junit_request`)."""

    path: Path
    suite_name: str
    prefix: str

    def write(self, run: RunRecord) -> Path:
        return write_junit(run, self.path, suite_name=self.suite_name, prefix=self.prefix)


_JUNIT = pytest.StashKey[JunitRequest]()
PYTEST_SUITE_NAME = "pytest"  # pytest's default junit_suite_name: the option was not set


def junit_request(config: pytest.Config) -> JunitRequest:
    """The ``--junitxml`` of a scenario run, named by the junit options that apply to it (the
    module's documentation says which do not); ``junit_suite_name`` left at pytest's default
    names the suite ``interop``, as ``interop merge`` does."""
    suite_name = config.getini("junit_suite_name")
    return JunitRequest(
        Path(os.path.expandvars(config.option.xmlpath)).expanduser().resolve(),
        SUITE_NAME if suite_name == PYTEST_SUITE_NAME else suite_name,
        config.option.junitprefix or "",
    )


@pytest.hookimpl(tryfirst=True)  # before pytest's junitxml plugin reads --junitxml
def pytest_configure(config: pytest.Config) -> None:
    """A scenario run writes ``--junitxml`` itself, from its record (:mod:`harness.report.junit`)."""
    config.addinivalue_line("markers", "interop_category(name): the scenario's category")
    if not parallel.is_worker(config):
        if parallel.scenario_run(config) and config.option.xmlpath:
            config.stash[_JUNIT] = junit_request(config)
            config.option.xmlpath = None
        config.pluginmanager.register(ResultCollector(config), "interop-results")
        if parallel.scenario_run(config) and not config.option.collectonly:
            progress = RunProgress()
            config.pluginmanager.register(progress, "interop-progress")
            if config.option.live is not None:
                from harness.live import LiveReport  # aiohttp takes 0.2 s to load: only when asked

                live = LiveReport(config.option.live, progress, lambda: _state(config))
                config.pluginmanager.register(live, "interop-live")
            interrupts.install()  # SIGTERM too ends the run in order: the finished items are recorded


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Any:
    """``--scenarios`` folders join the collection and ``--jobs`` becomes xdist's workers, before
    xdist reads its own options."""
    _add_scenario_folders(config)
    parallel.configure(config, lambda: _selected_items(config))
    return (yield)


def _add_scenario_folders(config: pytest.Config) -> None:
    """Every ``--scenarios DIR`` is collected too; with no path given, with the shipped scenarios
    (as ``interop run --scenarios DIR`` runs them), not with pytest's ``testpaths``."""
    if not config.option.scenarios:
        return
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args = [str(resources.SCENARIOS)]
    given = {(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args}
    config.args += [str(p.resolve()) for p in config.option.scenarios if p.resolve() not in given]


def _selected_items(config: pytest.Config) -> int:
    """How many items the run's scenario files and selection make (before ``-k``, ``--shard``)."""
    state = _state(config)
    paths = [config.invocation_params.dir / arg.split("::")[0] for arg in config.args]
    files = [f for p in paths for f in (scenario_files(p) if p.is_dir() else [p])]
    scenarios, _ = load_all(files)  # a bad file is reported by the collection, as always
    return sum(len(list(state.target_sets(s))) for s in scenarios if state.selected(s))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if not parallel.scenario_run(config):
        return None
    return parallel.make_scheduler(config, log, lambda nodeid, every: _group(config, nodeid, every))


def _group(config: pytest.Config, nodeid: str, collection: list[str]) -> str | None:
    """The items one worker runs one after the other: every item on an external target with
    every other item on it or on an external target paired with it (an external server is one for
    all workers: its items must not overlap, they share its accounts, and federation with it the
    planned addresses), and items that need the same knob values on the same targets (one
    restart, not one per item)."""
    item = parallel.item_of(config, nodeid)
    if item is None:
        return None
    scenario, names = item
    topology = _state(config).topology
    external = [name for name in names if name in topology.external]
    if external:
        return "external " + _external_groups(config, collection)[external[0]]
    roles = dict(zip(scenario.roles, names, strict=False))
    try:
        knobs = topology.role_knobs(scenario.roles, roles)
    except StepOutcome:  # a knob the target lacks: the item is unsupported, quickly, anywhere
        return None
    parts = [f"{roles[role]}:{sorted(values.items())}" for role, values in knobs.items() if values]
    return "knobs " + " ".join(parts) if parts else None


def pytest_configure_node(node: Any) -> None:
    """Tell a new worker the run it belongs to: its id (hence its folder), the shared folder
    under which it keeps its servers and finds the run's CAs, and the run's process (the owner
    its containers are labelled with)."""
    state = _state(node.config)
    node.workerinput["interop_run_id"] = state.run_id
    node.workerinput["interop_work_root"] = str(state.shared_work_root())
    node.workerinput["interop_owner"] = docker_owner()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """The item's record travels on its report (a worker's reports reach the controller)."""
    report = yield
    result = getattr(item, "result", None)
    if call.when == "call" and result is not None:
        report.interop_item = result.to_dict()
    return report


class ResultCollector:
    """Gathers the items' records where the run's records are written: in the controller of a
    parallel run (from the workers' reports) or in the one process of a serial run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "interop_item", None)
        if data is not None:
            _state(self.config).results.append(ItemResult.from_dict(data))
        elif report.failed:
            _state(self.config).unrecorded_failures.append(report.nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            _state(self.config).unrecorded_failures.append(report.nodeid)


@pytest.hookimpl(tryfirst=True)  # before xdist ends its workers
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    parallel.give_workers_time_to_stop(session.config)
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    if parallel.is_worker(session.config):
        state.topology.close()  # the controller writes the run's records
        return
    if not session.config.option.collectonly and (state.results or state.topology.running()):
        allure_dir = getattr(session.config.option, "allure_report_dir", None)
        run = state.finish(session.config.stash.get(_JUNIT, None), Path(allure_dir) if allure_dir else None)
        session.config.stash[_RUN] = run
        session.exitstatus = session_status(session.exitstatus, run, state.unrecorded_failures)
    else:
        state.topology.close()
    if state.work_root is not None and not keeps_work_dir():
        shutil.rmtree(state.work_root, ignore_errors=True)


_RUN = pytest.StashKey[RunRecord]()
_EXTERNAL_GROUPS = pytest.StashKey[dict[str, str]]()


def _external_groups(config: pytest.Config, collection: list[str]) -> dict[str, str]:
    """External target -> its group: targets that share an item are in one (connected
    components over the collection), named by their first name in order."""
    if _EXTERNAL_GROUPS not in config.stash:
        external = _state(config).topology.external
        group = {name: name for name in external}

        def root(name: str) -> str:
            while group[name] != name:
                name = group[name]
            return name

        for nodeid in collection:
            item = parallel.item_of(config, nodeid)
            shared = sorted({root(n) for n in (item[1] if item else []) if n in external})
            for other in shared[1:]:
                group[other] = shared[0]
        config.stash[_EXTERNAL_GROUPS] = {name: root(name) for name in external}
    return config.stash[_EXTERNAL_GROUPS]


def session_status(status: int, run: RunRecord, unrecorded_failures: list[str]) -> int:
    """The exit status of a scenario session: the run's exit code (:func:`exit_code`, as
    ``interop run`` and ``interop merge`` give it), not pytest's count of failed items, which
    knows no ``--gate`` (a SHOULD finding fails an item) nor ``--strict-baseline``. pytest's
    ``status`` stands when the session did not end normally (interrupted, a usage or internal
    error) or failed in ways no item record holds (``unrecorded_failures``)."""
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or unrecorded_failures:
        return status
    return exit_code(run)


def pytest_unconfigure(config: pytest.Config) -> None:
    """After xdist ended the workers: remove the containers (docker) or end the server processes
    (local) they left. execnet gives a worker 15 s to end once the controller stops it, then
    ``os._exit``s it, which can cut a worker's stop of its servers short (Ctrl-C during a long
    item, or on a loaded machine): containers carry the run's owner label, local servers name the
    run's server folder on their command line."""
    state = config.stash.get(_STATE, None)
    if state is None or parallel.is_worker(config) or not getattr(config.option, "numprocesses", None):
        return
    if state.selection.driver == "docker":
        for thing in clean_leftovers(connect(), owned_by=docker_owner()):
            print(f"interop: removed {thing}, which a stopped worker left", file=sys.stderr)
    elif state.work_root is not None:
        for group in end_processes_under(state.work_root):
            print(f"interop: ended process group {group}, which a stopped worker left", file=sys.stderr)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None:
        return
    state = config.stash[_STATE]
    counts: dict[str, int] = {}
    for item in run.items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
    terminalreporter.section("interop")
    terminalreporter.write_line("verdicts: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    for item in run.items:
        if item.outcome == Outcome.XPASS.value:
            terminalreporter.write_line(f"XPASS {item.item_id}: {item.reason}")
    # what the exit status says, which pytest's counts do not (session_status)
    problems = exit_problems(run) + [f"{n}: failed, with no item record" for n in state.unrecorded_failures]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    judged = f"the run fails: {problems[0]}{more}" if problems else "the run passes"
    terminalreporter.write_line(f"--gate {state.gate}: {judged}")
    terminalreporter.write_line(f"reports: {state.run_dir}/matrix.md, results.json")
