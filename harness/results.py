"""The canonical record of a run: ``reports/<run>/results.json``.

Every report (Markdown matrix, HTML, JUnit, ...) is rendered from a :class:`RunRecord`; shards of a
matrix are merged at this level. The file format is fixed by
``harness/schemas/results.schema.json`` (JSON Schema draft 2020-12): :func:`write_results` refuses
to write a record that does not match it, and :func:`read_results` refuses to load one.

Nothing in here knows about XMPP: a record is protocol-neutral.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.verdict import Outcome

__all__ = [
    "DEFAULT_GATE",
    "EXIT_FAILED",
    "EXIT_OK",
    "GATES",
    "LEVELS",
    "POLICY",
    "SCHEMA_VERSION",
    "ItemResult",
    "ResultsError",
    "RunRecord",
    "TargetRecord",
    "exit_code",
    "exit_problems",
    "fails_run",
    "run_gate",
    "load_schema",
    "read_results",
    "utc_timestamp",
    "validate_results",
    "write_results",
]

SCHEMA_VERSION = 1
LEVELS: tuple[str, ...] = ("MUST", "SHOULD", "MAY")  # conformance: the RFC 2119 keyword of the rule
# A policy check scores a behaviour no RFC or XEP requires but campuses care about (open
# registration, brute-force limits), cited to a best current practice; it is counted apart from
# the conformance levels in every report and fails the run under no gate.
POLICY = "POLICY"
EXIT_OK = 0
EXIT_FAILED = 1

# --gate: the conformance levels whose failures fail the run (and are <failure> in JUnit); a
# failure of any other level is a finding. POLICY is in none (docs/decisions.md).
GATES: dict[str, tuple[str, ...]] = {"must": LEVELS[:1], "should": LEVELS[:2], "may": LEVELS}
DEFAULT_GATE = "must"

# Outcomes a gated item may have in a run that passes.
_PASSING = {Outcome.PASS.value, Outcome.XFAIL.value, Outcome.XPASS.value, Outcome.UNSUPPORTED.value}


def safe_name(text: str) -> str:
    """An item id (or any name) as a file name: an item's evidence folder is ``items/<this>``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


class ResultsError(ValueError):
    """A results record is malformed; the message names the JSON path of each problem."""


def utc_timestamp(when: _dt.datetime | None = None) -> str:
    """ISO 8601 UTC timestamp as the schema wants it (``2024-05-01T12:00:00.123456Z``)."""
    when = when or _dt.datetime.now(_dt.UTC)
    if when.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    return when.astimezone(_dt.UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------
# records


@dataclass
class TargetRecord:
    """One target as it took part in an item (``role``: the scenario role it played)."""

    name: str
    product: str
    version: str
    driver: str
    domain: str
    address: str
    knobs: dict[str, str] = field(default_factory=dict)
    role: str = "server"
    # the selected target this one is an instance of ("x" for "x-2"): reports put a
    # second instance under its first; "" (the default) means the target itself
    instance_of: str = ""
    # whether a run on the project's machines verified the catalogue entry with this driver
    # (None: not a catalogue entry, e.g. an external target). Reports mark False loudly.
    verified_here: bool | None = None
    # what the run's edits changed in the packaged files: files (lines changed), adds, diff path
    config_changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.instance_of = self.instance_of or self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instance_of": self.instance_of,
            "product": self.product,
            "version": self.version,
            "driver": self.driver,
            "domain": self.domain,
            "address": self.address,
            "knobs": dict(self.knobs),
            "role": self.role,
            **({} if self.verified_here is None else {"verified_here": self.verified_here}),
            **({"config_changes": self.config_changes} if self.config_changes else {}),
        }

    def run_target(self) -> dict[str, Any]:
        """This target as an entry of :attr:`RunRecord.targets` (no role)."""
        data = self.to_dict()
        del data["role"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetRecord:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass
class ItemResult:
    """The verdict and evidence of one item: one scenario against one target (or one ordered pair)."""

    item_id: str
    scenario_id: str
    title: str
    category: str
    level: str
    spec: dict[str, str]
    targets: list[TargetRecord]
    outcome: str
    reason: str
    duration_s: float
    started_at: str
    evidence: dict[str, str]
    scenario_file: str
    scenario_sha256: str
    actors_connected: bool
    # how long each step that ran took: {step, line, action, actor, duration_s} (benchmark figures)
    steps: list[dict[str, Any]] = field(default_factory=list)
    # what the item waited for before its steps: {cause, target, duration_s} (benchmark figures)
    setup: list[dict[str, Any]] = field(default_factory=list)
    worker: str = "main"  # the worker that ran it (its targets are that worker's own)
    # the decisive steps that completed and what each saw: {step, line, observed}; a pass rests on them
    decided_by: list[dict[str, Any]] = field(default_factory=list)
    # per target name: {errors, crashes, examples} its log slice showed (harness/trace/health.py)
    health: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.outcome, Outcome):
            self.outcome = self.outcome.value
        self.targets = [t if isinstance(t, TargetRecord) else TargetRecord.from_dict(t) for t in self.targets]

    @property
    def is_pair(self) -> bool:
        """True for items over an ordered pair of targets (federation: ``[origin->receiver]``)."""
        return len(self.targets) == 2

    @property
    def pair(self) -> tuple[str, str] | None:
        """``(origin, receiver)`` selected target names for pair items, else None (a target
        paired with itself gives ``(x, x)``: its second instance counts as ``x``).

        Roles decide when the targets carry ``origin``/``receiver``; otherwise the list order does.
        """
        if not self.is_pair:
            return None
        roles = {t.role: t.instance_of for t in self.targets}
        if "origin" in roles and "receiver" in roles:
            return roles["origin"], roles["receiver"]
        return self.targets[0].instance_of, self.targets[1].instance_of

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def selected_names(self) -> list[str]:
        """The selected targets the item ran on (second instances under their first)."""
        return [t.instance_of for t in self.targets]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "scenario_id": self.scenario_id,
            "title": self.title,
            "category": self.category,
            "level": self.level,
            "spec": dict(self.spec),
            "targets": [t.to_dict() for t in self.targets],
            "outcome": self.outcome,
            "reason": self.reason,
            "duration_s": self.duration_s,
            "started_at": self.started_at,
            "evidence": dict(self.evidence),
            "scenario_file": self.scenario_file,
            "scenario_sha256": self.scenario_sha256,
            "actors_connected": self.actors_connected,
            "steps": [dict(step) for step in self.steps],
            "setup": [dict(step) for step in self.setup],
            "worker": self.worker,
            "decided_by": [dict(d) for d in self.decided_by],
            "health": {name: dict(h) for name, h in self.health.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemResult:
        kwargs = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        kwargs["targets"] = [TargetRecord.from_dict(t) for t in data["targets"]]
        kwargs["spec"] = dict(data["spec"])
        kwargs["evidence"] = dict(data["evidence"])
        return cls(**kwargs)


@dataclass
class RunRecord:
    """One run: what was asked, where it ran, the targets with their versions, and every item."""

    run_id: str
    harness_version: str
    started_at: str
    finished_at: str
    command: list[str]
    host: dict[str, str]
    selection: dict[str, Any]
    targets: list[dict[str, Any]]
    items: list[ItemResult]
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Accept TargetRecord objects for convenience; the record keeps plain dicts (no role).
        self.targets = [t.run_target() if isinstance(t, TargetRecord) else dict(t) for t in self.targets]
        self.items = [i if isinstance(i, ItemResult) else ItemResult.from_dict(i) for i in self.items]

    @property
    def variant(self) -> str:
        """The variant the run was made in (``--variant``, recorded in its selection)."""
        return str(self.selection.get("variant") or "default")

    def unverified_targets(self) -> list[str]:
        """Targets whose catalogue entry no run on the project's machines has verified with the
        driver used: their verdicts stand for the entry as written, not for a checked product."""
        return [t["name"] for t in self.targets if t.get("verified_here") is False]

    def target_names(self) -> list[str]:
        """Target names in run order, then any that appear only in items (sorted)."""
        names = [t["name"] for t in self.targets]
        extra = sorted({n for i in self.items for n in i.target_names} - set(names))
        return names + extra

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "harness_version": self.harness_version,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "command": list(self.command),
            "host": dict(self.host),
            "selection": dict(self.selection),
            "targets": [dict(t) for t in self.targets],
            "items": [i.to_dict() for i in self.items],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        return cls(
            run_id=data["run_id"],
            harness_version=data["harness_version"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            command=list(data["command"]),
            host=dict(data["host"]),
            selection=dict(data["selection"]),
            targets=[dict(t) for t in data["targets"]],
            items=[ItemResult.from_dict(i) for i in data["items"]],
            schema_version=data["schema_version"],
        )


# ---------------------------------------------------------------------------------------------------
# schema


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The results JSON schema shipped in ``harness/schemas/results.schema.json``."""
    text = resources.files("harness").joinpath("schemas/results.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _json_path(path: Iterable[Any]) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _semantic_problems(data: Mapping[str, Any]) -> list[str]:
    """Rules a JSON schema cannot say: unique item ids, ids that match their scenario, known targets."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    names = [t["name"] for t in data["targets"]]
    for index, name in enumerate(names):
        if names.index(name) != index:
            problems.append(f"$.targets[{index}].name: duplicate target name {name!r}")
    known = set(names)
    for index, item in enumerate(data["items"]):
        where = f"$.items[{index}]"
        item_id = item["item_id"]
        if item_id in seen:
            problems.append(
                f"{where}.item_id: duplicate item id {item_id!r} (first at $.items[{seen[item_id]}])"
            )
        else:
            seen[item_id] = index
        if not item_id.startswith(item["scenario_id"] + "["):
            problems.append(
                f"{where}.item_id: {item_id!r} does not belong to scenario {item['scenario_id']!r} "
                f"(expected {item['scenario_id']}[<target>] or {item['scenario_id']}[<origin>-><receiver>])"
            )
        for t_index, target in enumerate(item["targets"]):
            if target["name"] not in known:
                problems.append(
                    f"{where}.targets[{t_index}].name: {target['name']!r} is not a target of the run "
                    f"(run targets: {', '.join(names) or 'none'})"
                )
    return problems


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, but patterns explained in words (the schema's ``x-meaning``)."""
    if error.validator == "pattern" and isinstance(error.schema, dict) and "x-meaning" in error.schema:
        return f"{_short(error.instance)} is not {error.schema['x-meaning']}"
    if error.validator == "maxItems" and isinstance(error.instance, list):
        return f"has {len(error.instance)} entries, at most {error.validator_value} allowed"
    if len(error.message) > 200:
        return f"{_short(error.instance)}: fails {error.validator} {error.validator_value!r}"
    return error.message


def validate_results(data: Any) -> None:
    """Check a results document (parsed JSON) against the schema and the cross-field rules.

    Raises :class:`ResultsError` listing each problem as ``<JSON path>: <what is wrong>``.
    """
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    problems = [f"{_json_path(e.absolute_path)}: {_message(e)}" for e in errors]
    if not problems:
        problems = _semantic_problems(data)
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ResultsError(
            f"invalid results record ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n  "
            + "\n  ".join(shown)
            + more
        )


def write_results(run: RunRecord, path: Path) -> Path:
    """Validate ``run`` and write it as JSON (sorted keys, indent 2) to ``path`` atomically."""
    path = Path(path)
    data = run.to_dict()
    validate_results(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def read_results(path: Path) -> RunRecord:
    """Load and validate a ``results.json``; :class:`ResultsError` names the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from exc
    try:
        validate_results(data)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    return RunRecord.from_dict(data)


# ---------------------------------------------------------------------------------------------------
# exit code


def run_gate(run: RunRecord) -> str:
    """The gate the run was judged under (``--gate``, recorded in its selection)."""
    return str(run.selection.get("gate") or DEFAULT_GATE)


def fails_run(item: ItemResult, gate: str = DEFAULT_GATE, strict_baseline: bool = False) -> bool:
    """Whether ``item`` fails the run under ``gate``: an ``error`` at any level, a gated level's
    item that did not pass (nor is a known failure, nor lacks an optional feature), and with
    ``strict_baseline`` a known failure that passed (the baseline is out of date)."""
    if item.outcome == Outcome.ERROR.value:
        return True
    if strict_baseline and item.outcome == Outcome.XPASS.value:
        return True
    return item.level in GATES[gate] and item.outcome not in _PASSING


def exit_problems(run: RunRecord, gate: str | None = None) -> list[str]:
    """Why the run failed, one line each; empty when it passed. See :func:`exit_code`."""
    gate = gate or run_gate(run)
    strict = bool(run.selection.get("strict_baseline"))
    problems: list[str] = []
    if not run.items:
        problems.append("the run executed no item")
        return problems
    if not any(item.actors_connected for item in run.items):
        problems.append("no actor of any item reached a server")
    problems += [_problem(item) for item in run.items if fails_run(item, gate, strict)]
    return problems


def _problem(item: ItemResult) -> str:
    text = f"{item.item_id} ({item.level}): {item.outcome}"
    return f"{text}: {item.reason}" if item.reason else text


def exit_code(run: RunRecord, gate: str | None = None) -> int:
    """The process exit code of a run: 0 (passed) or 1 (failed).

    The run passes (0) when all of these hold:

    * it executed at least one item;
    * at least one item had an actor that reached a server (``actors_connected``);
    * no item of any level ended in ``error`` (the harness could not judge it);
    * every item of a level the gate names (``--gate``: ``must`` the default, MUST only;
      ``should`` MUST and SHOULD; ``may`` MUST, SHOULD and MAY) is ``pass``, ``xfail`` (known
      failure in the baseline), ``unsupported`` (optional feature absent) or ``xpass``.

    Otherwise it fails (1): a gated ``fail``, any ``error``, an empty run, or a run whose actors
    never connected. Failures of levels below the gate, and POLICY failures under every gate, are
    findings: they are shown in the matrix and scored, but they do not fail the run. An ``xpass``
    (a known failure that passed) does not fail the run either, unless the run was made with
    ``--strict-baseline``; the reports list it so the baseline gets updated. ``gate`` defaults to
    the one the run recorded (``--gate``).
    """
    return EXIT_FAILED if exit_problems(run, gate) else EXIT_OK
