"""The protocol-neutral actor interface and the registry of actor kinds.

An actor is a scripted participant of a scenario (a client, a raw byte stream, a peer server).
Protocol packages (``harness.protocols.<name>``) register their actor kinds here; the scenario
engine only knows this interface, so a second protocol family (SIP) adds kinds, not branches.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from harness.trace.redaction import redact_text
from harness.verdict import HarnessError, Observation, TargetError


@dataclass(frozen=True)
class Account:
    """A test account on a target (``user@domain`` with its password)."""

    user: str
    domain: str
    password: str

    @property
    def jid(self) -> str:
        return f"{self.user}@{self.domain}"


@dataclass(frozen=True)
class TargetView:
    """What an actor may know of the target it talks to: where it is and whom to trust."""

    name: str
    product: str
    domain: str
    address: str
    ports: dict[str, int]
    ca_file: Path | None  # None: do not verify the target's certificate (external targets only)
    features: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PeerIdentity:
    """A domain and loopback address the run reserved for an actor that plays a server.

    Every target resolves the domain to the address (hosts file and DNS, registered before any
    target started), so a target treats the actor as just another remote domain.
    """

    domain: str
    address: str


class CertificateIssuer(Protocol):
    """The run's test PKI as an actor may use it: certificates a peer server presents."""

    def server_certificate(
        self,
        domain: str,
        directory: Path,
        *,
        trusted: bool = True,
        expired: bool = False,
    ) -> tuple[Path, Path]:
        """(certificate, key) naming ``domain``; ``trusted=False`` issues it from the run's second
        CA, which no target trusts; ``expired=True`` gives a validity period that has ended."""
        ...


@dataclass
class ActorContext:
    """Everything an actor gets from the run: target, account, where evidence goes."""

    name: str
    target: TargetView
    account: Account | None
    evidence_dir: Path
    keylog_file: Path | None  # where TLS keys go (None: nowhere, the target's accounts are not ours)
    source_address: str | None = None  # bind outgoing connections here (spreads per-address limits)
    client_cert: tuple[Path, Path] | None = None  # (certificate, key) issued by the run's CA
    secrets: list[str] = field(default_factory=list)  # strings to redact from every log
    step_timeout: float = 10.0
    peer: PeerIdentity | None = None  # for kinds that play a server (``plays_server``)
    pki: CertificateIssuer | None = None  # for kinds that present server certificates


class Actor(abc.ABC):
    """A scenario participant. Steps call ``perform(action, params)``.

    Actions that can decide a rule (connect, authenticate, expect, ...) return an
    :class:`~harness.verdict.Observation` of what they saw. They raise
    :class:`harness.verdict.Failed` when the target broke the rule,
    :class:`~harness.verdict.Unsupported` when an optional feature is missing and
    :class:`~harness.verdict.HarnessError` when the check itself could not be carried out.
    """

    kind: ClassVar[str]
    protocol: ClassVar[str]
    # JSON schema (as a dict) of the params of each supported action, used when loading scenarios.
    actions: ClassVar[dict[str, dict[str, Any]]]
    # JSON schema of the actor's own options in the scenario's ``actors:`` section.
    options_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    # True for kinds that play a server: the engine gives them a PeerIdentity and the PKI.
    plays_server: ClassVar[bool] = False
    # the actions whose outcome can check a rule (a scenario may mark them ``decisive``): they
    # return an Observation of what they saw
    deciding_actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ctx: ActorContext, options: dict[str, Any]) -> None:
        self.ctx = ctx
        self.options = options
        self.reached_server = False  # set once a connection to the target was established

    async def perform(self, action: str, params: dict[str, Any]) -> Observation | None:
        """Run one action; what it saw (an :class:`Observation`) when it can decide a rule."""
        if action not in self.actions:
            raise HarnessError(f"actor kind {self.kind} has no action {action!r}")
        result: Observation | None = await getattr(self, action.replace("-", "_"))(**params)
        return result

    async def round_trip(self, via: str | None = None) -> None:
        """An ordering barrier: a request to the server (or to ``via``, an entity it hosts, such
        as a chat room) and its answer. Servers handle one connection's stanzas in order, so once
        the answer is here everything this actor sent before has been handled (a step's
        ``after:``). Kinds that can do this override it."""
        raise HarnessError(f"actor kind {self.kind} cannot make a round trip (step option after:)")

    @classmethod
    def param_problems(cls, action: str, params: dict[str, Any]) -> list[str]:
        """Checks of a step's parameters beyond their JSON schema, run by ``interop validate``
        (e.g. that a pattern parses). Placeholders are still unresolved here."""
        return []

    @classmethod
    def redact(cls, text: str, secrets: list[str]) -> str:
        """Remove credentials from text this protocol produced (server log slices pass here too).

        Protocols override this to also catch their own credential places (e.g. base64 SASL
        payloads) before the protocol-neutral passes.
        """
        return redact_text(text, secrets)

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection, whatever state the actor is in."""

    @property
    def stream_logs(self) -> list[Path]:
        """Evidence files this actor wrote (already redacted)."""
        return []


_KINDS: dict[str, type[Actor]] = {}


def register(cls: type[Actor]) -> type[Actor]:
    """Class decorator: make an actor kind available to scenarios."""
    _KINDS[cls.kind] = cls
    return cls


def actor_kinds() -> dict[str, type[Actor]]:
    """All registered kinds (importing the protocol packages registers theirs)."""
    import harness.protocols  # noqa: F401  (registration side effect)

    return dict(_KINDS)


# Brings a test account of a target the harness does not run to a known state (the context's
# account on the context's target): what it found and removed, as lines for the item's evidence;
# TargetError when the account cannot be brought there.
AccountKeeper = Callable[[ActorContext], Awaitable[list[str]]]

_KEEPERS: dict[str, AccountKeeper] = {}


def register_account_keeper(protocol: str) -> Callable[[AccountKeeper], AccountKeeper]:
    """Decorator: the protocol family's way of bringing a test account to a known state."""

    def add(keeper: AccountKeeper) -> AccountKeeper:
        _KEEPERS[protocol] = keeper
        return keeper

    return add


def account_keeper(protocol: str) -> AccountKeeper:
    """The keeper of ``protocol`` (importing the protocol packages registers theirs)."""
    import harness.protocols  # noqa: F401  (registration side effect)

    if protocol not in _KEEPERS:
        raise TargetError(f"protocol {protocol!r} cannot bring test accounts to a known state")
    return _KEEPERS[protocol]
