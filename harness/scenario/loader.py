"""Load scenario files: safe YAML, schema validation, and errors that point at file:line
(:mod:`harness.yaml_file`). A bad file raises :class:`ScenarioError` listing every problem found.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema

from harness.actors import actor_kinds
from harness.scenario.absence import checks_of
from harness.scenario.model import DEFAULT_ROLE, ActorSpec, Scenario, Step
from harness.yaml_file import (
    Problem,
    YamlFileError,
    compose,
    decode,
    hint,
    line_of,
    read_bytes,
    schema,
    schema_problems,
)

DOCS = "docs/scenarios.md"  # where an author reads what a scenario file holds
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
ACTOR_ATTRIBUTES = ("jid", "user", "password", "domain", "full_jid")
ROLE_ATTRIBUTES = ("domain", "address", "name")
FREE_PLACEHOLDERS = ("random", "item")
KNOB_ROLE_ATTRIBUTES = ("domain", "name")
COMMON_STEP_KEYS = ("actor", "note", "unsupported_on_fail", "after", "decisive")
# the keys of an actor that the engine reads; any other key is an option of the actor's kind
ACTOR_KEYS = ("kind", "role", "account", "client_cert", "own_address")
# engine actions whose outcome can check a rule (``decisive: true``); an actor kind names its own
# (``Actor.deciding_actions``)
ENGINE_DECIDING_ACTIONS = ("expect-any",)


class ScenarioError(YamlFileError):
    """One or more problems in one scenario file, each with its line."""


def _placeholders(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield from PLACEHOLDER.findall(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _placeholders(v)
    elif isinstance(value, list):
        for v in value:
            yield from _placeholders(v)


def load_scenario(path: Path) -> Scenario:
    """Load and validate one scenario file; raises :class:`ScenarioError` with every problem."""
    raw = read_bytes(path, ScenarioError)
    text = decode(raw, path, ScenarioError)
    data, lines = compose(text, path, f"a scenario needs id, title, ... ({DOCS})", ScenarioError)
    problems = schema_problems(data, lines, schema("scenario"), DOCS)
    if problems:
        raise ScenarioError(path, problems)
    if path.stem != data["id"]:
        problems.append(
            Problem(
                line_of(lines, ("id",)),
                f"id {data['id']!r} differs from the file name; name the file {data['id']}.yaml",
            )
        )

    roles = data.get("roles") or {DEFAULT_ROLE: {}}
    for role, options in roles.items():
        for knob, value in (options.get("knobs") or {}).items():
            for ref in PLACEHOLDER.findall(value):
                name, _, attr = ref.partition(".")
                if name not in roles or attr not in KNOB_ROLE_ATTRIBUTES:
                    problems.append(
                        Problem(
                            line_of(lines, ("roles", role, "knobs", knob)),
                            f"role {role}, knob {knob}: ${{{ref}}}: a knob value may only use "
                            f"${{ROLE.X}} with ROLE one of {', '.join(roles)} and X one of "
                            f"{', '.join(KNOB_ROLE_ATTRIBUTES)} (known before targets start)",
                        )
                    )
    kinds = actor_kinds()
    actors: dict[str, ActorSpec] = {}
    for name, spec in data["actors"].items():
        at = ("actors", name)
        cls = kinds.get(spec["kind"])
        if cls is None:
            problems.append(
                Problem(
                    line_of(lines, at + ("kind",)),
                    f"unknown actor kind {spec['kind']!r}; known kinds: {', '.join(sorted(kinds))}",
                )
            )
            continue
        role = spec.get("role", next(iter(roles)) if len(roles) == 1 else None)
        if role not in roles:
            problems.append(
                Problem(
                    line_of(lines, at),
                    f"actor {name}: role {role!r} is not one of the "
                    f"scenario's roles ({', '.join(roles)}); set role:",
                )
            )
            continue
        options = {k: v for k, v in spec.items() if k not in ACTOR_KEYS}
        for e in jsonschema.Draft202012Validator(cls.options_schema).iter_errors(options):
            problems.append(
                Problem(line_of(lines, at + tuple(e.absolute_path)), f"actor {name}: {e.message}")
            )
        actors[name] = ActorSpec(
            name,
            spec["kind"],
            role,
            spec.get("account"),
            bool(spec.get("client_cert", False)),
            options,
            bool(spec.get("own_address", False)),
        )

    steps: list[Step] = []
    for index, entry in enumerate(data["steps"]):
        ((action, params),) = entry.items()
        line = line_of(lines, ("steps", index))
        if action == "admin":
            problems.extend(_check_admin(index, params, roles, data["actors"], lines))
            params = {**params, "role": params.get("role", next(iter(roles)))}
            checks = []
        elif action == "expect-any":
            checks = [
                (("steps", index, action, "alternatives", i), alt)
                for i, alt in enumerate(params["alternatives"])
            ]
        else:
            checks = [(("steps", index, action), params)]
        for at, check in checks:
            problems.extend(
                _check_step(
                    index,
                    "expect" if action == "expect-any" else action,
                    check,
                    at,
                    actors,
                    data["actors"],
                    roles,
                    kinds,
                    lines,
                )
            )
        common = {k: params.get(k) for k in COMMON_STEP_KEYS}
        own = {k: v for k, v in params.items() if k not in COMMON_STEP_KEYS}
        for name in common["after"] or []:
            if name not in data["actors"]:
                problems.append(
                    Problem(
                        line_of(lines, ("steps", index, action, "after")),
                        f"step {index + 1}: after: no actor {name!r}; actors: {', '.join(data['actors'])}",
                    )
                )
        steps.append(
            Step(
                action,
                common["actor"] or "",
                own,
                line,
                common["unsupported_on_fail"],
                tuple(common["after"] or ()),
                bool(common["decisive"]),
            )
        )
    every_step_read = len(steps) == len(data["steps"])  # checks of the whole list need all of it
    problems.extend(_decisive_problems(steps, every_step_read, actors, kinds, lines))
    if every_step_read:
        problems.extend(_barrier_problems(data["id"], len(roles) == 2, steps))
    if problems:
        raise ScenarioError(path, problems)
    return Scenario(
        id=data["id"],
        title=data["title"],
        description=data.get("description", ""),
        category=data["category"],
        level=data["level"],
        protocol=data["protocol"],
        spec=data["spec"],
        roles=roles,
        actors=actors,
        steps=steps,
        can_fail=data.get("can_fail", ""),
        path=path,
        accounts={name: a["password"] for name, a in (data.get("accounts") or {}).items()},
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _barrier_problems(scenario_id: str, is_pair: bool, steps: list[Step]) -> list[Problem]:
    """An absence check whose barrier does not order what it checks (docs/barriers.md)."""
    return [
        Problem(check.line, f"step {check.step}: expect-nothing: {check.problem} (docs/barriers.md)")
        for check in checks_of(scenario_id, is_pair, steps)
        if check.problem
    ]


def _decisive_problems(
    steps: list[Step],
    every_step_read: bool,
    actors: dict[str, ActorSpec],
    kinds: dict[str, Any],
    lines: dict[tuple[Any, ...], int],
) -> list[Problem]:
    """A scenario marks the step(s) that check its rule, and only steps that can check one."""
    problems = []
    for index, step in enumerate(steps):
        if not step.decisive:
            continue
        at = line_of(lines, ("steps", index, step.action, "decisive"))
        actor = actors.get(step.actor)
        deciding = set(ENGINE_DECIDING_ACTIONS) | (kinds[actor.kind].deciding_actions if actor else set())
        if step.action not in deciding:
            problems.append(
                Problem(
                    at,
                    f"step {index + 1}: decisive: a {step.action} step checks nothing; "
                    f"mark the step that checks the rule ({', '.join(sorted(deciding))})",
                )
            )
        if step.unsupported_on_fail:
            problems.append(
                Problem(
                    at,
                    f"step {index + 1}: decisive and unsupported_on_fail: the step that "
                    "checks the rule cannot turn its fail into unsupported",
                )
            )
    if steps and every_step_read and not any(step.decisive for step in steps):
        problems.append(
            Problem(
                line_of(lines, ("steps",)),
                "no step is marked decisive: true; mark the step "
                "whose outcome checks the rule (docs/scenarios.md, 'The decisive step')",
            )
        )
    return problems


def _check_step(
    index: int,
    action: str,
    params: dict[str, Any],
    at: tuple[Any, ...],
    actors: dict[str, ActorSpec],
    declared: dict[str, Any],
    roles: dict[str, Any],
    kinds: dict[str, Any],
    lines: dict[tuple[Any, ...], int],
) -> list[Problem]:
    """Problems of one step (or one alternative of an expect-any step) against its actor's kind."""
    line = line_of(lines, at[:2] if len(at) == 3 else at)  # the step's line, or the alternative's
    actor = actors.get(params["actor"])
    if actor is None:
        if params["actor"] in declared:
            return []  # the actor itself is broken and already reported
        return [
            Problem(
                line_of(lines, at + ("actor",)),
                f"step {index + 1}: no actor {params['actor']!r}; actors: {', '.join(declared)}",
            )
        ]
    cls = kinds[actor.kind]
    if action not in cls.actions:
        return [
            Problem(
                line,
                f"step {index + 1}: actor kind {actor.kind} cannot {action}; "
                f"it can: {', '.join(cls.actions)}",
            )
        ]
    own = {k: v for k, v in params.items() if k not in COMMON_STEP_KEYS}
    problems = [
        Problem(line_of(lines, at + tuple(e.absolute_path)), f"step {index + 1} ({action}): {hint(e, DOCS)}")
        for e in jsonschema.Draft202012Validator(cls.actions[action]).iter_errors(own)
    ]
    if not problems:  # an actor kind's own checks expect parameters of the schema's shape
        problems = [
            Problem(line, f"step {index + 1} ({action}): {p}") for p in cls.param_problems(action, own)
        ]
    for ref in _placeholders(own):
        problem = _check_placeholder(ref, declared.keys(), roles)
        if problem:
            problems.append(Problem(line, f"step {index + 1}: {problem}"))
    return problems


def _check_admin(
    index: int,
    params: dict[str, Any],
    roles: dict[str, Any],
    actors: Iterable[str],
    lines: dict[tuple[Any, ...], int],
) -> list[Problem]:
    """An admin step names a role (implied when the scenario has one) and uses known placeholders."""
    at = ("steps", index, "admin")
    problems = []
    role = params.get("role")
    if role is None and len(roles) > 1:
        problems.append(Problem(line_of(lines, at), f"step {index + 1}: admin: say which role (role: ...)"))
    elif role is not None and role not in roles:
        problems.append(
            Problem(
                line_of(lines, at + ("role",)),
                f"step {index + 1}: admin: role {role!r} is not one of {', '.join(roles)}",
            )
        )
    for ref in _placeholders(params):
        problem = _check_placeholder(ref, actors, roles)
        if problem:
            problems.append(Problem(line_of(lines, at), f"step {index + 1}: {problem}"))
    return problems


def _check_placeholder(ref: str, actors: Iterable[str], roles: dict[str, Any]) -> str | None:
    if ref in FREE_PLACEHOLDERS:
        return None
    name, _, attr = ref.partition(".")
    kinds = (("an actor", actors, ACTOR_ATTRIBUTES), ("a role", roles, ROLE_ATTRIBUTES))
    for kind, names, attributes in kinds:
        if name in names:
            if attr in attributes:
                return None
            return f"${{{ref}}}: {kind} placeholder is ${{{name}.X}} with X one of {', '.join(attributes)}"
    return f"${{{ref}}} names neither an actor nor a role (nor one of {', '.join(FREE_PLACEHOLDERS)})"


def load_all(paths: Iterable[Path]) -> tuple[list[Scenario], list[ScenarioError]]:
    """Load every file; a run starts only when the error list is empty."""
    scenarios, errors = [], []
    for path in sorted(paths):
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            errors.append(exc)
    seen: dict[str, Path] = {}
    for s in scenarios:
        if s.id in seen:
            errors.append(ScenarioError(s.path, [Problem(1, f"id {s.id} is also used by {seen[s.id]}")]))
        seen[s.id] = s.path
    return scenarios, errors


def scenario_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())
