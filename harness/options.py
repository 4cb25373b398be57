"""Every run option, declared once, for both front ends: ``interop`` (argparse) and pytest.

The table :data:`OPTIONS` is the only place an option's name, type, default and help live.
``interop run`` parses them, checks them, and hands pytest the same values as arguments
(:func:`pytest_args`); a plain ``pytest scenarios/`` run declares the same options through the
plugin (:func:`add_to_pytest`). Either way :func:`selection` turns the values into the one
:class:`~harness.topology.Selection` the run uses.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import resources
from harness.event import Event, load_event
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


LIVE_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LiveAddress:
    """Where ``--live`` serves the report (port 0: a free one)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback


def live_address(text: str) -> LiveAddress:
    """``--live``: ``ADDR:PORT`` (``[ADDR]:PORT`` for IPv6) or ``PORT`` alone, on loopback. ADDR
    must be an IP address, not a name: a name could resolve off loopback, and only an address
    the user wrote may be anything but loopback (tests contact only loopback)."""
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = LIVE_LOOPBACK, text
    host = host.removeprefix("[").removesuffix("]")
    try:
        address = LiveAddress(str(ipaddress.ip_address(host)), int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--live {text!r}: write ADDR:PORT with an IP address (e.g. 127.0.0.1:8000), or a port"
        ) from None
    if not 0 <= address.port <= 65535:
        raise argparse.ArgumentTypeError(f"--live {text!r}: a port is 0 (a free one) to 65535")
    return address


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
    const: str | None = None  # the value of the flag given without one (its value is optional)

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
        if self.const is not None:
            out |= {"nargs": "?", "const": self.const}
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
    Option(
        "--event",
        "an event file (docs/interop-events.md#the-event-file): its participants, categories, "
        "scenarios, variant, gate and profile are the run's; --targets, --target-file, --catalogue "
        "and --knob given beside it add to its own (a knob given here wins), other options given "
        "here replace its values",
        type=Path,
        metavar="FILE",
    ),
    Option("--category", "only scenarios of this category (repeatable)", repeat=True),
    Option("--scenario", "scenario id or glob, e.g. 'auth.sasl.*' (repeatable)", repeat=True),
    Option(
        "--item",
        "only this item, e.g. 'fed.s2s.message-delivery[prosody->ejabberd]' (repeatable; "
        "interop rerun sets it)",
        repeat=True,
        metavar="ITEM_ID",
    ),
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
    Option(
        "--live",
        "serve the HTML report while the run goes, its cells filling in as items finish, at "
        f"ADDR:PORT (default {LIVE_LOOPBACK} on a free port; an address other than loopback only "
        "when written here)",
        type=live_address,
        const=f"{LIVE_LOOPBACK}:0",
        metavar="ADDR:PORT",
    ),
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
    Option(
        "--keylog",
        "also write TLS key logs for targets the harness does not run: anyone holding the run "
        "folder can then decrypt the SASL exchanges of their (the vendors') accounts",
        switch=True,
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


# the options whose values add to an event's (who takes part); the others, given, replace its value
_ADD_TO_EVENT = frozenset({"targets", "target_file", "catalogue", "knob"})


def _join_event(values: Any) -> Event | None:
    """Merge the ``--event`` file's values into ``values``, in place: both front ends, every
    worker and ``interop run``'s checks call it (:func:`selection`), so merging twice changes
    nothing. An option counts as given when its value is not its default."""
    path = getattr(values, "event", None)
    if path is None:
        return None
    event = load_event(path, getattr(values, "catalogue", []))
    by_dest = {option.dest: option for option in OPTIONS}
    for dest, value in event.options.items():
        given, option = getattr(values, dest), by_dest[dest]
        if dest in _ADD_TO_EVENT:
            setattr(values, dest, _added(value, given))
        elif given == ([] if option.repeat else option.default):
            setattr(values, dest, value)
    return event


def _added(event: Any, given: Any) -> Any:
    """The event's values, then the given ones, each once (``--targets``: comma-separated)."""
    if isinstance(event, str):
        return ",".join(_added(event.split(","), given.split(",")))
    return [v for v in dict.fromkeys([*event, *map(_absolute, given)]) if v]


def selection(values: Any) -> Selection:
    """The targets asked for, from either front end's parsed values. An ``--event`` file's values
    join ``values`` first (:func:`_join_event`), so that the rest of the run finds the event's
    categories, scenarios, gate and profile where it finds the options'."""
    event = _join_event(values)
    return Selection(
        targets=[t for t in values.targets.split(",") if t],
        driver=values.driver,
        docker_network=values.docker_network,
        catalogues=[p.resolve() for p in values.catalogue],
        knobs=list(values.knob),
        target_files=[p.resolve() for p in getattr(values, "target_file", [])],
        variant=values.variant,
        keylog=getattr(values, "keylog", False),
        inline_targets=event.inline_targets if event else [],
        event=event.record() if event else None,
    )
