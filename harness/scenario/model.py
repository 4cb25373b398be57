"""A loaded scenario: plain data, already validated, with the line of every step for errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROLE = "server"


@dataclass(frozen=True)
class Step:
    action: str
    actor: str
    params: dict[str, Any]  # the action's own parameters (without the COMMON_STEP_KEYS)
    # ``actor`` is empty for expect-any, whose params hold the alternatives, each with its actor
    line: int
    unsupported_on_fail: str | None = None
    # actors that first complete a round trip through the server (an ordering barrier: what they
    # sent before has been handled), in this order
    after: tuple[str, ...] = ()
    # the step that checks the rule: a pass rests on what it saw (``Decision`` in the results)
    decisive: bool = False

    def describe(self, index: int) -> str:
        return f"step {index + 1} (line {self.line})"


@dataclass(frozen=True)
class ActorSpec:
    name: str
    kind: str
    role: str
    account: str | None
    client_cert: bool
    options: dict[str, Any]
    # connections from a source address of its own (a ban it provokes hits no other actor)
    own_address: bool = False


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    description: str
    category: str
    level: str
    protocol: str
    spec: dict[str, str]
    roles: dict[str, dict[str, Any]]
    actors: dict[str, ActorSpec]
    steps: list[Step]
    can_fail: str
    path: Path
    sha256: str
    accounts: dict[str, str] = field(default_factory=dict)  # account name -> declared password part

    @property
    def spec_ref(self) -> str:
        return f"{self.spec['document']} §{self.spec['section']}"

    @property
    def is_pair(self) -> bool:
        return len(self.roles) == 2
