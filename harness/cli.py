"""The ``interop`` command: run, list, validate, report.

``run`` checks everything it can before starting a server (scenario files, targets, knobs) and
exits 2 on a usage or configuration error; then it hands the items to pytest, whose exit status
the plugin makes the run's exit code, judged from ``results.json`` (see
:func:`harness.results.exit_code`), as it does for a plain ``pytest scenarios/``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import pytest

from harness import options, rerun, resources
from harness.baseline import KEY as BASELINE_KEY
from harness.baseline import BaselineError, Baselines, update_from_run
from harness.baseline import read_file as read_baseline
from harness.diff import compare, diff_exit_code, load_run, render_markdown
from harness.event import load_event
from harness.merge import merge_files
from harness.plugin import PROJECT_ROOT, new_run_id
from harness.profiles import ProfileError, load_profile
from harness.report import write_reports
from harness.report.history import render_history
from harness.report.junit import write_junit
from harness.report.matrix import render_matrix
from harness.results import (
    EXIT_FAILED,
    EXIT_OK,
    ResultsError,
    RunRecord,
    exit_code,
    read_results,
    safe_name,
    write_results,
)
from harness.scenario.absence import absence_checks, markdown_table
from harness.scenario.loader import load_all, scenario_files
from harness.scenario.model import Scenario
from harness.shard import Shard, ShardError
from harness.standing import bring_down, bring_up, describe, forget, wait_for_the_end
from harness.targets.docker import clean_leftovers, connect
from harness.targets.knobs import markdown as knobs_markdown
from harness.targets.local import package_version
from harness.targets.spec import (
    CatalogueError,
    TargetSpec,
    catalogue,
    catalogues,
    load_spec,
    read_target_file,
)
from harness.topology import Topology
from harness.verdict import HarnessError, TargetError
from harness.yaml_file import YamlFileError, read_bytes

USAGE_ERROR = 2
DEFAULT_STATE = Path(".interop/topology")  # `interop targets up`'s folder, relative to where it runs


def _load_or_report(paths: list[Path]) -> list | None:
    scenarios, errors = load_all(paths)
    for error in errors:
        print(error, file=sys.stderr)
    return None if errors else scenarios


def _load_folders(args: argparse.Namespace) -> list | None:
    """The shipped scenarios and those of every ``--scenarios`` folder, all valid, or None."""
    return _load_or_report([f for folder in options.scenario_folders(args) for f in scenario_files(folder)])


# what `interop validate` tells apart in a folder: a catalogue entry by its name (target.yaml),
# an event, a target file and a profile by a top-level key only they have; any other YAML file is a scenario
_ENTRY, _TARGET_FILE, _PROFILE, _SCENARIO = "catalogue entries", "target files", "profiles", "scenario files"
_BASELINE, _EVENT = "baselines", "event files"
_TOP_LEVEL_KEY = {
    _EVENT: re.compile(r"^participants\s*:", re.M),
    _TARGET_FILE: re.compile(r"^host\s*:", re.M),
    _PROFILE: re.compile(r"^weights\s*:", re.M),
    _BASELINE: re.compile(rf"^{BASELINE_KEY}\s*:", re.M),
}


def _validation_kind(path: Path) -> str:
    if path.name == "target.yaml":
        return _ENTRY
    try:
        text = read_bytes(path).decode("utf-8", errors="replace")
    except YamlFileError:
        return _SCENARIO  # unreadable or too large: its loader says what is wrong
    return next((kind for kind, key in _TOP_LEVEL_KEY.items() if key.search(text)), _SCENARIO)


def _validate_one(kind: str, path: Path, catalogue_dirs: list[Path]) -> None:
    """Load one file as what it is; its problems raise (YamlFileError, CatalogueError). An event
    names products of the catalogue with ``catalogue_dirs`` (``--catalogue``)."""
    if kind == _ENTRY:
        load_spec(path.parent)
    elif kind == _EVENT:
        load_event(path, catalogue_dirs)
    elif kind == _TARGET_FILE:
        read_target_file(path)
    elif kind == _BASELINE:
        read_baseline(path)
    else:
        load_profile(str(path))


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the files people write (scenarios, catalogue entries, target files, profiles, event
    files) as a run would read them; every problem as file:line, exit 2 on any."""
    roots = args.paths or [resources.SCENARIOS, resources.CATALOGUE, resources.PROFILES, resources.BASELINES]
    found: dict[str, list[Path]] = {
        _SCENARIO: [],
        _ENTRY: [],
        _TARGET_FILE: [],
        _PROFILE: [],
        _BASELINE: [],
        _EVENT: [],
    }
    for root in [*roots, *args.scenarios, *args.catalogue]:
        for path in sorted(root.rglob("*.yaml")) if root.is_dir() else [root]:
            found[_validation_kind(path)].append(path)
    scenarios, errors = load_all(found[_SCENARIO])
    problems: list[Exception] = list(errors)
    for kind in (_ENTRY, _TARGET_FILE, _PROFILE, _BASELINE, _EVENT):
        for path in found[kind]:
            try:
                _validate_one(kind, path, args.catalogue)
            except (YamlFileError, CatalogueError) as exc:
                problems.append(exc)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return USAGE_ERROR
    if not any(found.values()):
        print("interop validate: no YAML file there", file=sys.stderr)
        return USAGE_ERROR
    print(", ".join(f"{len(paths)} {kind}" for kind, paths in found.items() if paths) + " valid")
    return 0


def cmd_knobs(args: argparse.Namespace) -> int:
    """docs/knobs.md, generated: the standard knobs and which product has which."""
    print(knobs_markdown(catalogue(resources.CATALOGUE)), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what in ("scenarios", "absence", "all"):
        scenarios = _load_folders(args)
        if scenarios is None:
            return USAGE_ERROR
        if args.what == "absence":  # every expect-nothing step and its barrier (docs/barriers.md)
            print(markdown_table(absence_checks(scenarios)))
            return 0
        for s in sorted(scenarios, key=lambda s: s.id):
            print(f"{s.id:45} {s.level:6} {s.category:15} {s.spec_ref}")
    if args.what in ("targets", "all"):
        try:
            products = catalogues(resources.CATALOGUE, args.catalogue)
        except CatalogueError as exc:
            print(f"interop: {exc}", file=sys.stderr)
            return USAGE_ERROR
        for name, spec in products.items():
            print(f"{name:18} {spec.title}")
            for line in _target_lines(spec):
                print(f"{'':18} {line}")
    return 0


def _target_lines(spec: TargetSpec) -> list[str]:
    """How a catalogue entry runs with each driver, and whether a run here verified it."""
    lines = []
    if spec.package:
        version = package_version(spec.package)
        state = f"installed {version}" if version is not None else "not installed"
        lines.append(f"local:  package {spec.package} ({state})")
    if spec.docker:
        how = (
            "built from " + spec.docker["build"]
            if "build" in spec.docker
            else ("pulled" if spec.docker.get("pull") else "must be in the engine")
        )
        lines.append(f"docker: image {spec.docker['image']} ({how})")
    verified = ", ".join(sorted(spec.verified))
    lines.append(f"verified here with: {verified}" if verified else "NOT VERIFIED HERE (no run here yet)")
    lines.append("knobs: " + ", ".join(f"{k}={v.default}" for k, v in sorted(spec.knobs.items())))
    if spec.admin:
        lines.append(f"admin operations: {', '.join(sorted(spec.admin))}")
    return lines


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render the reports of a run; with ``--profile``, ranked under that profile instead of
    the one the run recorded (results.json is left as it is)."""
    try:
        run = read_results(args.results)
        if args.profile:
            run.selection["profile"] = load_profile(args.profile).to_dict()
    except (OSError, ResultsError, ProfileError) as exc:
        print(f"{args.results}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    written = write_reports(run, args.results.parent)
    if args.print:
        print(render_matrix(run))
    print("\n".join(str(p) for p in written))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """One run from several results.json files; exits like a run with those items."""
    out = args.out.resolve()
    command = ["interop", "merge", *map(str, args.results), "--out", str(out), "--gate", args.gate]
    command += ["--strict-baseline"] if args.strict_baseline else []
    try:
        run = merge_files(args.results, out, f"merged-{new_run_id()}", command)
    except (OSError, ResultsError) as exc:
        print(f"interop merge: {exc}", file=sys.stderr)
        return USAGE_ERROR
    run.selection |= {"gate": args.gate, "strict_baseline": args.strict_baseline}
    write_results(run, out / "results.json")
    write_reports(run, out)
    write_junit(run, out / "junit.xml")
    code = exit_code(run)
    print(f"interop: merged {len(args.results)} runs, {len(run.items)} items; reports in {out}; exit {code}")
    return code


def _read_runs(paths: list[Path], command: str) -> list[tuple[RunRecord, Path]] | None:
    """Each run (results.json or its folder) with its folder; None after saying what is wrong."""
    runs = []
    for path in paths:
        try:
            runs.append((load_run(path), path if path.is_dir() else path.parent))
        except (OSError, ResultsError) as exc:
            print(f"interop {command}: {path}: {exc}", file=sys.stderr)
            return None
    return runs


def cmd_diff(args: argparse.Namespace) -> int:
    """The cells that changed from OLD to NEW, as Markdown; exit 1 when NEW regressed."""
    runs = _read_runs([args.old, args.new], "diff")
    if runs is None:
        return USAGE_ERROR
    (old, _), (new, _) = runs
    changes = compare(old, new, args.gate)
    text = render_markdown(changes, old, new)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    print(text, end="")
    return diff_exit_code(changes)


def cmd_history(args: argparse.Namespace) -> int:
    runs = _read_runs(args.runs, "history")
    if runs is None:
        return USAGE_ERROR
    print(render_history(runs, args.out.resolve()))
    return 0


def cmd_baseline_update(args: argparse.Namespace) -> int:
    """Known failures of each product from a run, into ``--baselines``."""
    runs = _read_runs([args.run], "baseline update")
    if runs is None:
        return USAGE_ERROR
    products = [p for p in args.products.split(",") if p] if args.products else None
    try:
        written = update_from_run(runs[0][0], args.baselines, products)
    except BaselineError as exc:  # an existing file it would update is broken: say where
        print(f"interop baseline update: {exc}", file=sys.stderr)
        return USAGE_ERROR
    for path in written:
        print(path)
    return 0


# The users ``targets up`` makes when --accounts is not given (``user<n>`` past the last).
USER_NAMES = ("alice", "bob", "carol", "dave", "eve", "frank", "grace", "heidi")


def accounts_for_every_scenario() -> tuple[list[str], str]:
    """Users enough for the shipped scenario that needs most accounts on one target (its id is
    the second value): an external target's items take the first accounts they need from its
    target file, so the file ``targets up`` writes serves every scenario."""
    scenarios, _ = load_all(scenario_files(resources.SCENARIOS))

    def needs(scenario: Scenario) -> int:
        per_role: dict[str, set[str]] = {}
        for actor in scenario.actors.values():
            if actor.account:
                per_role.setdefault(actor.role, set()).add(actor.account)
        return max(map(len, per_role.values()), default=0)

    largest = max(scenarios, key=needs)
    users = [USER_NAMES[i] if i < len(USER_NAMES) else f"user{i + 1}" for i in range(needs(largest))]
    return users, largest.id


def cmd_targets_up(args: argparse.Namespace) -> int:
    """Start the selected targets for people's own clients; end them on Ctrl-C or ``down``."""
    state = args.state.resolve()
    try:
        topology = Topology(options.selection(args), resources.CATALOGUE, state)
    except CatalogueError as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.accounts is None:
        users, largest = accounts_for_every_scenario()
        why = f"as many as the scenario needing most ({largest}); --accounts to choose"
    else:
        users, why = [a for a in args.accounts.split(",") if a], "as --accounts says"
    try:
        info = bring_up(topology, users, state, [g for g in (args.guests or "").split(",") if g])
        print(describe(info), flush=True)
        print(f"\n{len(users)} accounts on every target, {why}", flush=True)
        print(f"\nup; end it with Ctrl-C or: interop targets down --state {state}", flush=True)
        wait_for_the_end()
    except KeyboardInterrupt:
        print("interop: ending the topology", file=sys.stderr)
    except HarnessError as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return 1
    finally:
        topology.close()
        forget(state)
    return 0


def cmd_targets_down(args: argparse.Namespace) -> int:
    try:
        pid = bring_down(args.state.resolve())
    except HarnessError as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return 1
    print(f"interop: the topology of pid {pid} is down")
    return 0


def cmd_targets_clean(args: argparse.Namespace) -> int:
    """Remove what crashed runs left in the docker engine (labelled with their run)."""
    try:
        removed = clean_leftovers(connect(), everything=args.all)
    except TargetError as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return 1
    print("\n".join(removed) if removed else "interop: nothing to clean")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    scenarios = _load_folders(args)
    if scenarios is None:
        return USAGE_ERROR
    try:  # configuration errors are usage errors: report them before any server starts
        chosen = options.selection(args)  # an --event file's values join args here
        Topology(chosen, resources.CATALOGUE, Path("/nonexistent"))
        if args.shard:
            Shard.parse(args.shard)
        if args.profile:
            load_profile(args.profile)
        Baselines.load(args.baselines)
    except (CatalogueError, ShardError, ProfileError) as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return USAGE_ERROR
    run_id = new_run_id()
    folder = f"{chosen.event['name']}-{run_id}" if chosen.event else run_id
    args.out = (args.out or Path("reports") / folder).resolve()
    pytest_args = [
        str(resources.SCENARIOS),  # the plugin adds the --scenarios folders
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(PROJECT_ROOT),
        *options.pytest_args(args),
        "--run-id",
        run_id,
        "--junitxml",
        str(args.out / "junit.xml"),
        "--alluredir",
        str(args.out / "allure-results"),
        "-q",
        *args.pytest_args,
    ]
    return _run_pytest(pytest_args, args.out)


def cmd_rerun(args: argparse.Namespace) -> int:
    """One item of a finished run again, under the same conditions (harness/rerun.py)."""
    runs = _read_runs([args.source], "rerun")
    if runs is None:
        return USAGE_ERROR
    [(first, first_dir)] = runs
    out = (args.out or rerun.default_out(first_dir.resolve(), args.item_id)).resolve()
    try:
        again = rerun.plan(first, args.item_id, out)
    except rerun.RerunError as exc:
        print(f"interop rerun: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if again.scenario_changed:
        print(
            f"interop rerun: warning: {again.item.scenario_file} changed since run {first.run_id} "
            "(its sha256 differs): the rerun uses the file as it is now",
            file=sys.stderr,
        )
    print("interop rerun: " + shlex.join(["interop", "run", *again.run_args]))
    code = main(["run", *again.run_args])
    if (out / "results.json").exists():
        redone = rerun.find_item(read_results(out / "results.json"), args.item_id)
        for label, item, folder in (("first", again.item, first_dir), ("rerun", redone, out)):
            evidence = folder / "items" / safe_name(item.item_id)
            why = item.reason or "; ".join(d["observed"] for d in item.decided_by)
            print(f"interop rerun: {label}: {item.outcome}: {why[:300]}  [{evidence}]")
    return code


def _run_pytest(pytest_args: list[str], out: Path) -> int:
    """Run pytest in-process; its exit status is already the run's exit code (the plugin judges
    the run it recorded, :func:`harness.plugin.session_status`), here narrowed to 0, 1 and 2."""
    status = pytest.main(pytest_args)
    if status == pytest.ExitCode.USAGE_ERROR:
        return USAGE_ERROR
    if status == pytest.ExitCode.INTERRUPTED:
        return EXIT_FAILED
    if not (out / "results.json").exists():
        print("interop: the run executed no item (nothing selected?)", file=sys.stderr)
        return EXIT_FAILED
    code = EXIT_OK if status == pytest.ExitCode.OK else EXIT_FAILED
    print(f"interop: {len(read_results(out / 'results.json').items)} items; reports in {out}; exit {code}")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interop", description="IM server interoperability conformance harness"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run scenarios against targets and write reports")
    options.add_to_parser(run, options.RUN)
    run.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments (e.g. -x, -k)")
    mrg = sub.add_parser(
        "merge", help="merge results.json files (shards, CI jobs) into one run and its reports"
    )
    mrg.add_argument("results", nargs="+", type=Path)
    mrg.add_argument("--out", type=Path, required=True, help="directory of the merged run")
    options.add_to_parser(mrg, options.MERGE)
    mrg.set_defaults(func=cmd_merge)
    run.set_defaults(func=cmd_run)
    dif = sub.add_parser("diff", help="the cells that changed between two runs; exit 1 on a regression")
    dif.add_argument("old", type=Path, help="results.json or run folder")
    dif.add_argument("new", type=Path, help="results.json or run folder")
    dif.add_argument("--markdown", type=Path, help="also write the Markdown here (e.g. $GITHUB_STEP_SUMMARY)")
    options.add_to_parser(dif, options.DIFF)  # --gate: a cell that now fails the run under it regressed
    dif.set_defaults(func=cmd_diff)
    his = sub.add_parser("history", help="one page of every cell over several runs")
    his.add_argument("runs", nargs="+", type=Path, help="results.json files or run folders")
    his.add_argument("--out", type=Path, default=Path("history.html"), help="the page (default history.html)")
    his.set_defaults(func=cmd_history)
    bas = sub.add_parser("baseline", help="known-failure files of products")
    bsub = bas.add_subparsers(dest="action", required=True)
    upd = bsub.add_parser("update", help="write <product>.yaml known failures from a run")
    upd.add_argument("run", type=Path, help="results.json or run folder")
    upd.add_argument("--baselines", type=Path, required=True, help="folder of <product>.yaml files")
    upd.add_argument(
        "--products", default="", help="comma-separated products (default: every one of the run)"
    )
    upd.set_defaults(func=cmd_baseline_update)
    rer = sub.add_parser("rerun", help="run one item of a finished run again, on the same targets and knobs")
    rer.add_argument("item_id", help="the item, e.g. 'fed.s2s.message-delivery[prosody->ejabberd]'")
    rer.add_argument(
        "--from", dest="source", type=Path, required=True, help="the run folder or its results.json"
    )
    rer.add_argument("--out", type=Path, help="the new run's folder (default: beside the first run)")
    rer.set_defaults(func=cmd_rerun)
    lst = sub.add_parser("list", help="list scenarios and targets")
    lst.add_argument("what", nargs="?", choices=["scenarios", "targets", "absence", "all"], default="all")
    options.add_to_parser(lst, options.LIST)
    lst.set_defaults(func=cmd_list)
    val = sub.add_parser(
        "validate",
        help="check scenarios, catalogue entries, target files, profiles, event files; exit 2 on a problem",
    )
    val.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="files or folders (default: the shipped scenarios, catalogue and profiles)",
    )
    options.add_to_parser(val, options.LIST)
    val.set_defaults(func=cmd_validate)
    kno = sub.add_parser("knobs", help="print docs/knobs.md: the standard knobs and which product has which")
    kno.set_defaults(func=cmd_knobs)
    rep = sub.add_parser("report", help="re-render the reports from a results.json")
    rep.add_argument("results", type=Path)
    rep.add_argument("--print", action="store_true", help="also print the matrix")
    options.add_to_parser(rep, options.REPORT)
    rep.set_defaults(func=cmd_report)
    tgt = sub.add_parser("targets", help="keep targets up for people's own clients; clean up after crashes")
    tsub = tgt.add_subparsers(dest="action", required=True)
    up = tsub.add_parser("up", help="start targets, CA and accounts; print how to reach them; wait")
    options.add_to_parser(up, options.UP)
    up.add_argument(
        "--accounts",
        help="comma-separated users made on every target (default: as many as the shipped scenario "
        "needing most accounts uses, so that the target files serve every scenario)",
    )
    up.add_argument("--state", type=Path, default=DEFAULT_STATE, help="folder of topology.json and ca.crt")
    up.add_argument(
        "--guests",
        help="comma-separated catalogue targets another run will start and federate with these "
        "(its target files plan an address for each; docs/interop-events.md, Federation at an event)",
    )
    up.set_defaults(func=cmd_targets_up)
    down = tsub.add_parser("down", help="end the topology that `up` started")
    down.add_argument("--state", type=Path, default=DEFAULT_STATE)
    down.set_defaults(func=cmd_targets_down)
    clean = tsub.add_parser("clean", help="remove containers, networks, volumes of runs that are gone")
    clean.add_argument("--all", action="store_true", help="also those of runs still going")
    clean.set_defaults(func=cmd_targets_clean)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
