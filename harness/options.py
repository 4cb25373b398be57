"""Every run option, declared once, for both front ends: ``interop`` (argparse) and pytest.

The table :data:`OPTIONS` is the only place an option's name, type, default and help live.
``interop run`` parses them, checks them, and hands pytest the same values as arguments
(:func:`pytest_args`); a plain ``pytest scenarios/`` run declares the same options through the
plugin (:func:`add_to_pytest`). Either way :func:`selection` turns the values into the one
:class:`~harness.topology.Selection` the run uses.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import resources
from harness.results import DEFAULT_GATE, GATES
from harness.topology import Selection

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the folder holding the harness package

# the interop commands an option belongs to: the run, `interop targets up`, `interop list`,
# `interop merge`, `interop diff`, `interop report`
RUN = "run"
UP = "up"
LIST = "list"
MERGE = "merge"
DIFF = "diff"
REPORT = "report"
TARGETING = frozenset({RUN, UP})


def jobs_value(text: str) -> int | str:
    """``--jobs``: a number of concurrent workers (1: the serial run) or ``auto``."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs {text!r}: write a number of workers or auto") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jobs {text!r}: at least 1 (1 runs the items one by one)")
    return value


def folder(text: str) -> Path:
    """A folder that must exist (``--scenarios``): a typo must not silently add nothing."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return path


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    default: Any = None
    repeat: bool = False  # may be given several times (a list)
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    commands: frozenset[str] = frozenset({RUN})  # the interop commands that offer it
    cli: bool = True  # False: pytest only (interop sets it itself)
    switch: bool = False  # a flag without a value (False unless given)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"help": self.help, "dest": self.dest}
        if self.switch:
            return out | {"action": "store_true", "default": False}
        if self.repeat:
            out |= {"action": "append", "default": []}
        else:
            out["default"] = self.default
        if self.type is not str:
            out["type"] = self.type
        if self.choices:
            out["choices"] = list(self.choices)
        if self.metavar:
            out["metavar"] = self.metavar
        return out

    def as_arguments(self, value: Any) -> list[str]:
        """The pytest arguments that carry ``value`` (none for the default)."""
        if self.switch:
            return [self.flag] if value else []
        values = value if self.repeat else ([] if value in (None, self.default) else [value])
        return [part for v in values for part in (self.flag, str(_absolute(v)))]


def _absolute(value: Any) -> Any:
    """Paths go to pytest absolute: it may run from another directory (``--rootdir``)."""
    return value.resolve() if isinstance(value, Path) else value


OPTIONS: tuple[Option, ...] = (
    # what selects and configures targets: `interop targets up` has these too
    Option(
        "--targets",
        "comma-separated catalogue targets (default: every verified, installed one)",
        "",
        commands=TARGETING,
    ),
    Option(
        "--driver",
        "how the targets run: local processes or docker containers",
        "local",
        choices=("local", "docker"),
        commands=TARGETING,
    ),
    Option(
        "--docker-network",
        "docker driver: host (each target on its loopback address) or bridge",
        "host",
        choices=("host", "bridge"),
        commands=TARGETING,
    ),
    Option(
        "--catalogue",
        "a folder of more product folders (<product>/target.yaml), e.g. a vendor's own",
        repeat=True,
        type=Path,
        commands=TARGETING | {LIST},
    ),
    Option(
        "--knob", "[TARGET:]NAME=VALUE, a configuration knob (repeatable)", repeat=True, commands=TARGETING
    ),
    Option(
        "--variant",
        "a named bundle of knobs every target defines, e.g. hardened; as-installed: the default without "
        "the run's edits that add what the package lacks (adds: in target.yaml)",
        commands=TARGETING,
    ),
    # what a run selects and where it writes
    Option(
        "--target-file",
        "a server already running elsewhere (external target file; repeatable)",
        repeat=True,
        type=Path,
    ),
    Option("--category", "only scenarios of this category (repeatable)", repeat=True),
    Option("--scenario", "scenario id or glob, e.g. 'auth.sasl.*' (repeatable)", repeat=True),
    Option(
        "--scenarios",
        "a folder (any name) of your own scenario files, added to the shipped ones and validated "
        "with them (repeatable)",
        repeat=True,
        type=folder,
        metavar="DIR",
        commands=frozenset({RUN, LIST}),
    ),
    Option("--out", "run directory (default reports/<run-id>)", type=Path),
    Option("--baselines", "folder of <product>.yaml known-failure files", resources.BASELINES, type=Path),
    Option("--shard", "i/N: run the i-th of N deterministic shares of the items"),
    Option(
        "--jobs",
        "items run at once, each worker with targets of its own (1: one by one; auto: "
        "as many as suit the machine)",
        "auto",
        type=jobs_value,
        metavar="N",
    ),
    Option(
        "--gate",
        "the levels whose failures fail the run and are <failure> in junit.xml: must (MUST), should "
        "(MUST, SHOULD) or may (MUST, SHOULD, MAY); lower levels and POLICY are findings",
        DEFAULT_GATE,
        choices=tuple(GATES),
        commands=frozenset({RUN, MERGE, DIFF}),
    ),
    Option(
        "--profile",
        "a scoring profile (a name in fixtures/profiles/, or a file): reports rank the targets under it",
        commands=frozenset({RUN, REPORT}),
    ),
    Option(
        "--strict-baseline",
        "a known failure of the baseline that passed (xpass) fails the run: the baseline is out of date",
        switch=True,
        commands=frozenset({RUN, MERGE}),
    ),
    Option("--run-id", "the run's id (default: UTC time and a random suffix)", cli=False),
)


def add_to_parser(parser: argparse.ArgumentParser, command: str) -> None:
    """Declare the options of ``interop COMMAND``."""
    for option in OPTIONS:
        if option.cli and command in option.commands:
            parser.add_argument(option.flag, **option.kwargs())


def add_to_pytest(group: pytest.OptionGroup) -> None:
    """Declare every option for a plain pytest run (the plugin's ``pytest_addoption``)."""
    for option in OPTIONS:
        group.addoption(option.flag, **option.kwargs())


def pytest_args(values: argparse.Namespace) -> list[str]:
    """The pytest arguments that carry what ``interop run`` was given."""
    return [
        part
        for option in OPTIONS
        if option.cli and hasattr(values, option.dest)
        for part in option.as_arguments(getattr(values, option.dest))
    ]


def scenario_folders(values: Any) -> list[Path]:
    """The folders whose YAML files are scenarios: the shipped ones and every ``--scenarios``,
    from either front end's parsed values."""
    return [resources.SCENARIOS.resolve(), *(p.resolve() for p in values.scenarios)]


def in_scenario_folder(values: Any, path: Path) -> bool:
    """Whether ``path`` is in (or is) a scenario folder, whose YAML files are scenarios."""
    path = path.resolve()
    return any(path.is_relative_to(folder) for folder in scenario_folders(values))


def selection(values: Any) -> Selection:
    """The targets asked for, from either front end's parsed values."""
    return Selection(
        targets=[t for t in values.targets.split(",") if t],
        driver=values.driver,
        docker_network=values.docker_network,
        catalogues=[p.resolve() for p in values.catalogue],
        knobs=list(values.knob),
        target_files=[p.resolve() for p in getattr(values, "target_file", [])],
        variant=values.variant,
    )
