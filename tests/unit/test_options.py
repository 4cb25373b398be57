"""Run options are declared once and mean the same through ``interop`` and through pytest."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from _pytest.config.argparsing import Parser

from harness import options
from harness.cli import build_parser


def _pytest_parse(args: list[str]) -> argparse.Namespace:
    parser = Parser(_ispytest=True)
    options.add_to_pytest(parser.getgroup("interop"))
    return parser.parse(args)


def test_interop_run_hands_pytest_the_values_it_was_given(tmp_path: Path) -> None:
    given = build_parser().parse_args(
        [
            "run",
            "--targets=prosody,ejabberd",
            "--driver=docker",
            "--docker-network=bridge",
            f"--catalogue={tmp_path}",
            "--knob=prosody:muc=on",
            "--knob=mam=on",
            "--variant=hardened",
            "--category=authentication",
            "--scenario=auth.*",
            f"--out={tmp_path / 'out'}",
            "--shard=2/3",
            "--jobs=4",
            "--gate=should",
        ]
    )
    received = _pytest_parse(options.pytest_args(given))
    for option in options.OPTIONS:
        if option.cli:
            assert getattr(received, option.dest) == getattr(given, option.dest), option.flag


def test_defaults_are_not_passed_and_agree_on_both_sides() -> None:
    given = build_parser().parse_args(["run"])
    assert options.pytest_args(given) == []
    received = _pytest_parse([])
    for option in options.OPTIONS:
        if option.cli:
            assert getattr(received, option.dest) == getattr(given, option.dest), option.flag


def test_every_command_declares_its_options_from_the_table() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    run_flags = {s for a in sub.choices["run"]._actions for s in a.option_strings}
    up = next(
        a for a in sub.choices["targets"]._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["up"]
    up_flags = {s for a in up._actions for s in a.option_strings}
    assert {o.flag for o in options.OPTIONS if o.cli} <= run_flags
    assert {o.flag for o in options.OPTIONS if options.UP in o.commands} <= up_flags
    assert "--jobs" not in up_flags and "--run-id" not in run_flags
    merge_flags = {s for a in sub.choices["merge"]._actions for s in a.option_strings}
    assert {o.flag for o in options.OPTIONS if options.MERGE in o.commands} == {"--gate", "--strict-baseline"}
    assert {"--gate", "--strict-baseline"} <= merge_flags
    diff_flags = {s for a in sub.choices["diff"]._actions for s in a.option_strings}
    assert {o.flag for o in options.OPTIONS if options.DIFF in o.commands} == {"--gate"} <= diff_flags


@pytest.mark.parametrize("text", ["0", "-1", "many"])
def test_jobs_must_be_a_positive_number_or_auto(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        options.jobs_value(text)
    assert options.jobs_value("auto") == "auto" and options.jobs_value("3") == 3


def test_one_selection_from_either_front_end(tmp_path: Path) -> None:
    given = build_parser().parse_args(["run", "--targets=prosody", f"--target-file={tmp_path / 'x.yaml'}"])
    from_cli = options.selection(given)
    from_pytest = options.selection(_pytest_parse(options.pytest_args(given)))
    assert from_cli == from_pytest
    assert from_cli.targets == ["prosody"] and from_cli.target_files == [tmp_path / "x.yaml"]
