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

from harness import options, resources
from harness.baseline import update_from_run
from harness.diff import compare, diff_exit_code, load_run, render_markdown
from harness.merge import merge_files
from harness.plugin import PROJECT_ROOT, new_run_id
from harness.profiles import ProfileError, load_profile
from harness.report import write_reports
from harness.report.history import render_history
from harness.report.junit import write_junit
from harness.report.matrix import render_matrix
from harness.results import (
    ResultsError,
    RunRecord,
    exit_code,
    read_results,
    write_results,
)
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


def _load_or_report(paths: list[Path]) -> list | None:
    scenarios, errors = load_all(paths)
    for error in errors:
        print(error, file=sys.stderr)
    return None if errors else scenarios


def _load_folders(args: argparse.Namespace) -> list | None:
    """The shipped scenarios and those of every ``--scenarios`` folder, all valid, or None."""
    return _load_or_report([f for folder in options.scenario_folders(args) for f in scenario_files(folder)])


def cmd_validate(args: argparse.Namespace) -> int:
    paths = [p for root in args.paths for p in (scenario_files(root) if root.is_dir() else [root])]
    scenarios = _load_or_report(paths)
    if scenarios is None:
        return USAGE_ERROR
    print(f"{len(scenarios)} scenario files valid")
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
    for path in update_from_run(runs[0][0], args.baselines, products):
        print(path)
    return 0


def cmd_targets_up(args: argparse.Namespace) -> int:
    """Start the selected targets for people's own clients; end them on Ctrl-C or ``down``."""
    state = args.state.resolve()
    try:
        topology = Topology(options.selection(args), resources.CATALOGUE, state)
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
    scenarios = _load_folders(args)
    if scenarios is None:
        return USAGE_ERROR
    try:  # configuration errors are usage errors: report them before any server starts
        Topology(options.selection(args), resources.CATALOGUE, Path("/nonexistent"))
        if args.shard:
            Shard.parse(args.shard)
        if args.profile:
            load_profile(args.profile)
    except (CatalogueError, ShardError, ProfileError) as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return USAGE_ERROR
    run_id = new_run_id()
    args.out = (args.out or Path("reports") / run_id).resolve()
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
        "-o",
        "junit_family=xunit2",
        "-q",
        *args.pytest_args,
    ]
    return _run_pytest(pytest_args, args.out, args.gate)


def _run_pytest(pytest_args: list[str], out: Path, gate: str) -> int:
    """Run pytest in-process, then judge the run from the results it recorded (under ``gate``)."""
    code = pytest.main(pytest_args)
    if code == pytest.ExitCode.USAGE_ERROR:
        return USAGE_ERROR
    if code == pytest.ExitCode.INTERRUPTED:
        return 1
    if not (out / "results.json").exists():
        print("interop: the run executed no item (nothing selected?)", file=sys.stderr)
        return 1
    run = read_results(out / "results.json")
    code = exit_code(run, gate)
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
    lst = sub.add_parser("list", help="list scenarios and targets")
    lst.add_argument("what", nargs="?", choices=["scenarios", "targets", "absence", "all"], default="all")
    options.add_to_parser(lst, options.LIST)
    lst.set_defaults(func=cmd_list)
    val = sub.add_parser("validate", help="check scenario files; exit 2 on a problem")
    val.add_argument("paths", nargs="*", type=Path, default=[resources.SCENARIOS])
    val.set_defaults(func=cmd_validate)
    rep = sub.add_parser("report", help="re-render the reports from a results.json")
    rep.add_argument("results", type=Path)
    rep.add_argument("--print", action="store_true", help="also print the matrix")
    options.add_to_parser(rep, options.REPORT)
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
