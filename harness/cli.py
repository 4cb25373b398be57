"""The ``interop`` command: run, list, validate, report.

``run`` checks everything it can before starting a server (scenario files, targets, knobs) and
exits 2 on a usage or configuration error; then it hands the items to pytest and takes its exit
code from ``results.json``, not from pytest (see :func:`harness.results.exit_code`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from harness import options
from harness.merge import merge_files
from harness.plugin import CATALOGUE, PROJECT_ROOT, new_run_id
from harness.report import write_reports
from harness.report.matrix import render_matrix
from harness.results import ResultsError, exit_code, read_results, write_results
from harness.scenario.absence import absence_checks, markdown_table
from harness.scenario.loader import load_all, scenario_files
from harness.shard import Shard, ShardError
from harness.standing import bring_down, bring_up, describe, forget, wait_for_the_end
from harness.targets.docker import clean_leftovers, connect
from harness.targets.local import package_version
from harness.targets.spec import CatalogueError, TargetSpec, catalogues
from harness.topology import Topology
from harness.verdict import HarnessError, TargetError

USAGE_ERROR = 2
DEFAULT_STATE = Path(".interop/topology")  # `interop targets up`'s folder, relative to where it runs
SCENARIOS = PROJECT_ROOT / "scenarios"


def _load_or_report(paths: list[Path]) -> list | None:
    scenarios, errors = load_all(paths)
    for error in errors:
        print(error, file=sys.stderr)
    return None if errors else scenarios


def cmd_validate(args: argparse.Namespace) -> int:
    paths = [p for root in args.paths for p in (scenario_files(root) if root.is_dir() else [root])]
    scenarios = _load_or_report(paths)
    if scenarios is None:
        return USAGE_ERROR
    print(f"{len(scenarios)} scenario files valid")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what in ("scenarios", "absence", "all"):
        scenarios = _load_or_report(scenario_files(SCENARIOS))
        if scenarios is None:
            return USAGE_ERROR
        if args.what == "absence":  # every expect-nothing step and its barrier (docs/barriers.md)
            print(markdown_table(absence_checks(scenarios)))
            return 0
        for s in sorted(scenarios, key=lambda s: s.id):
            print(f"{s.id:45} {s.level:6} {s.category:15} {s.spec_ref}")
    if args.what in ("targets", "all"):
        try:
            products = catalogues(CATALOGUE, args.catalogue)
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
    try:
        run = read_results(args.results)
    except (OSError, ResultsError) as exc:
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
    command = ["interop", "merge", *map(str, args.results), "--out", str(out)]
    try:
        run = merge_files(args.results, out, f"merged-{new_run_id()}", command)
    except (OSError, ResultsError) as exc:
        print(f"interop merge: {exc}", file=sys.stderr)
        return USAGE_ERROR
    write_results(run, out / "results.json")
    write_reports(run, out)
    code = exit_code(run)
    print(f"interop: merged {len(args.results)} runs, {len(run.items)} items; reports in {out}; exit {code}")
    return code


def cmd_targets_up(args: argparse.Namespace) -> int:
    """Start the selected targets for people's own clients; end them on Ctrl-C or ``down``."""
    state = args.state.resolve()
    try:
        topology = Topology(options.selection(args), CATALOGUE, state)
    except CatalogueError as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        info = bring_up(topology, [a for a in args.accounts.split(",") if a], state)
        print(describe(info), flush=True)
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
    scenarios = _load_or_report(scenario_files(SCENARIOS))
    if scenarios is None:
        return USAGE_ERROR
    try:  # configuration errors are usage errors: report them before any server starts
        Topology(options.selection(args), CATALOGUE, Path("/nonexistent"))
        if args.shard:
            Shard.parse(args.shard)
    except (CatalogueError, ShardError) as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return USAGE_ERROR
    run_id = new_run_id()
    args.out = (args.out or PROJECT_ROOT / "reports" / run_id).resolve()
    pytest_args = [
        str(SCENARIOS),
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
        "-o",
        "junit_family=xunit2",
        "-q",
        *args.pytest_args,
    ]
    return _run_pytest(pytest_args, args.out)


def _run_pytest(pytest_args: list[str], out: Path) -> int:
    """Run pytest in-process, then judge the run from the results it recorded."""
    code = pytest.main(pytest_args)
    if code == pytest.ExitCode.USAGE_ERROR:
        return USAGE_ERROR
    if code == pytest.ExitCode.INTERRUPTED:
        return 1
    if not (out / "results.json").exists():
        print("interop: the run executed no item (nothing selected?)", file=sys.stderr)
        return 1
    run = read_results(out / "results.json")
    code = exit_code(run)
    print(f"interop: {len(run.items)} items; reports in {out}; exit {code}")
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
    mrg.set_defaults(func=cmd_merge)
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="list scenarios and targets")
    lst.add_argument("what", nargs="?", choices=["scenarios", "targets", "absence", "all"], default="all")
    options.add_to_parser(lst, options.LIST)
    lst.set_defaults(func=cmd_list)
    val = sub.add_parser("validate", help="check scenario files; exit 2 on a problem")
    val.add_argument("paths", nargs="*", type=Path, default=[SCENARIOS])
    val.set_defaults(func=cmd_validate)
    rep = sub.add_parser("report", help="re-render the reports from a results.json")
    rep.add_argument("results", type=Path)
    rep.add_argument("--print", action="store_true", help="also print the matrix")
    rep.set_defaults(func=cmd_report)
    tgt = sub.add_parser("targets", help="keep targets up for people's own clients; clean up after crashes")
    tsub = tgt.add_subparsers(dest="action", required=True)
    up = tsub.add_parser("up", help="start targets, CA and accounts; print how to reach them; wait")
    options.add_to_parser(up, options.UP)
    up.add_argument("--accounts", default="alice,bob", help="comma-separated users made on every target")
    up.add_argument("--state", type=Path, default=DEFAULT_STATE, help="folder of topology.json and ca.crt")
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
