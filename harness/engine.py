"""Run one item (a scenario against its targets) and turn what happened into a verdict.

The engine builds the actors, runs the steps in order with a deadline each, and collects the
evidence: actors' stream logs, the TLS key log, a packet capture and the targets' log slices.
It never sleeps to decide anything; waiting is the actors' business, on events with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.actors import Account, Actor, ActorContext, CertificateIssuer, PeerIdentity, actor_kinds
from harness.results import safe_name
from harness.scenario.loader import COMMON_STEP_KEYS, PLACEHOLDER
from harness.scenario.model import ActorSpec, Scenario, Step
from harness.targets.running import RunningTarget
from harness.trace.capture import PacketCapture
from harness.trace.health import count as count_health
from harness.trace.scrub import scrub_credentials
from harness.trace.tls_streams import add_server_keys
from harness.verdict import Failed, HarnessError, Observation, Outcome, StepOutcome, Unsupported, Verdict

STEP_TIMEOUT_S = 10.0
# The whole item's deadline on top of each step's: a run never hangs.
ITEM_TIMEOUT_S = 120.0


class RunServices(Protocol):
    """What the engine needs from the run beyond the targets (the topology provides it)."""

    def source_address(self, target: RunningTarget) -> str | None: ...

    def isolated_source(self, target: RunningTarget) -> str | None:
        """A source address no other actor uses (None: the target cannot be given one)."""
        ...

    def client_certificate(self, account: Account, directory: Path) -> tuple[Path, Path]: ...

    def peer_identity(self, index: int) -> PeerIdentity:
        """The index-th domain and address the run reserved for actors that play a server."""
        ...

    @property
    def pki(self) -> CertificateIssuer: ...

    # whether TLS keys are written for targets whose accounts are not the run's (--keylog)
    keylog_foreign_accounts: bool


@dataclass(frozen=True)
class StepTiming:
    """How long one step took (barrier round trips included): figures for the benchmark."""

    step: int  # 1-based, as in verdict reasons
    line: int
    action: str
    actor: str
    duration_s: float


@dataclass(frozen=True)
class Decision:
    """The evidence of a pass: a step the scenario marks ``decisive`` and what it saw."""

    step: int  # 1-based, as in verdict reasons
    line: int
    observed: str


@dataclass
class ItemRun:
    verdict: Verdict
    duration_s: float
    evidence: dict[str, Path] = field(default_factory=dict)
    actors_connected: bool = False
    steps: list[StepTiming] = field(default_factory=list)  # the steps that ran, in order
    decided_by: list[Decision] = field(default_factory=list)  # decisive steps that completed
    # per target name: what its log slice says of the server's own health (harness/trace/health.py)
    health: dict[str, dict[str, Any]] = field(default_factory=dict)


def item_id(scenario: Scenario, names: dict[str, str]) -> str:
    """``scenario.id[target]``, or ``scenario.id[origin->receiver]`` for a pair (role order)."""
    return f"{scenario.id}[{'->'.join(names[role] for role in scenario.roles)}]"


class Placeholders:
    """Resolves ``${actor.jid}``, ``${role.domain}``, ``${random}`` in step parameters."""

    def __init__(self, actors: dict[str, Actor], targets: dict[str, RunningTarget], item: str) -> None:
        self.actors = actors
        self.targets = targets
        self.values = {"random": secrets.token_hex(4), "item": safe_name(item)}

    def _lookup(self, ref: str) -> str:
        if ref in self.values:
            return self.values[ref]
        name, _, attr = ref.partition(".")
        if name in self.targets:
            return str(getattr(self.targets[name], attr))
        actor = self.actors[name]
        account = actor.ctx.account
        if attr == "full_jid":
            value = getattr(actor, "full_jid", None)
            if not value:
                raise HarnessError(f"${{{ref}}} used before {name} bound a resource")
            return str(value)
        if account is None and attr == "domain" and actor.ctx.peer is not None:
            return actor.ctx.peer.domain  # an actor that plays a server: its own domain
        if account is None:
            raise HarnessError(f"${{{ref}}}: actor {name} has no account")
        return {
            "jid": account.jid,
            "user": account.user,
            "password": account.password,
            "domain": account.domain,
        }[attr]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda m: self._lookup(m.group(1)), value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value


def _source_address(spec: ActorSpec, target: RunningTarget, services: RunServices) -> str | None:
    if not spec.own_address:
        return services.source_address(target)
    address = services.isolated_source(target)
    if address is None:
        raise Unsupported(
            f"actor {spec.name} needs a source address of its own, which a run cannot give for "
            f"{target.name} (not on the run's loopback block)"
        )
    return address


def _missing_features(scenario: Scenario, targets: dict[str, RunningTarget]) -> str | None:
    for role, options in scenario.roles.items():
        missing = sorted(set(options.get("requires", [])) - targets[role].features)
        if missing:
            return f"{targets[role].name} does not have {', '.join(missing)} (catalogue features)"
    return None


async def _expect_any(actors: dict[str, Actor], params: dict[str, Any]) -> Observation:
    """Pass when any alternative's expectation holds (e.g. either actor sees a conflict)."""
    shared = {"within": params["within"]} if "within" in params else {}

    async def alternative(number: int, alt: dict[str, Any]) -> Observation:
        own = {k: v for k, v in alt.items() if k not in COMMON_STEP_KEYS}
        seen = await actors[alt["actor"]].perform("expect", {**shared, **own})
        return Observation(f"alternative {number} ({alt['actor']}): {seen.text if seen else 'held'}")

    tasks = [asyncio.create_task(alternative(n, alt)) for n, alt in enumerate(params["alternatives"], 1)]
    reasons = []
    try:
        for next_done in asyncio.as_completed(tasks):
            try:
                return await next_done
            except Failed as exc:
                reasons.append(exc.reason)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    raise Failed("no alternative held: " + " / ".join(reasons))


async def _admin(target: RunningTarget, params: dict[str, Any]) -> None:
    """An admin operation with the product's own tool (a blocking command: off the event loop, so
    the actors' connections stay served meanwhile)."""
    args = {k: str(v) for k, v in params.items() if k not in ("op", "role")}
    await asyncio.to_thread(target.admin, params["op"], args)


async def _perform(
    step: Step, actors: dict[str, Actor], targets: dict[str, RunningTarget], params: dict[str, Any]
) -> Observation | None:
    for name in step.after:  # the ordering barrier: what these actors sent has been handled
        await actors[name].round_trip(params.get("via"))
    if step.action == "expect-any":
        return await _expect_any(actors, params)
    if step.action == "admin":
        await _admin(targets[params["role"]], params)
        return None
    return await actors[step.actor].perform(step.action, params)


def _decide(step: Step, index: int, seen: Observation | None, decided: list[Decision]) -> Verdict | None:
    """Record what a decisive step saw; a step that did not put the rule to the test ends the item
    ``unsupported`` (a pass must rest on an observation of the rule, never on a default)."""
    if seen is None or not seen.exercised:
        what = seen.text if seen else "the step observed nothing"
        return Verdict(
            Outcome.UNSUPPORTED,
            f"{step.describe(index)} checks the rule but did not put it to the test: {what}",
        )
    decided.append(Decision(index + 1, step.line, seen.text))
    return None


def _deadline(step: Step, params: dict[str, Any]) -> float | None:
    """How long a step may take: what it waits for on the wire plus a margin. An admin step runs
    the product's tool, bounded by the target's own command timeout (an error of the target,
    not of the step, when exceeded): a slow tool on a loaded machine is not a finding."""
    if step.action == "admin":
        return None
    within = max(
        [float(params.get("within", 0))] + [float(a.get("within", 0)) for a in params.get("alternatives", [])]
    )
    return within + STEP_TIMEOUT_S * 2


@dataclass
class _Steps:
    """What every step of one item shares: its actors and targets, the placeholders, and the
    records the item keeps (each step's time, what each decisive step saw)."""

    actors: dict[str, Actor]
    targets: dict[str, RunningTarget]
    placeholders: Placeholders
    timings: list[StepTiming]
    decided: list[Decision]

    async def run_one(self, index: int, step: Step) -> Verdict | None:
        """One step: None when it held, else the item's verdict."""
        started = time.monotonic()
        try:
            params = self.placeholders.resolve(step.params)
            async with asyncio.timeout(_deadline(step, params)):
                seen = await _perform(step, self.actors, self.targets, params)
            return _decide(step, index, seen, self.decided) if step.decisive else None
        except StepOutcome as exc:
            if exc.outcome is Outcome.FAIL and step.unsupported_on_fail:
                return Verdict(Outcome.UNSUPPORTED, f"{step.unsupported_on_fail} ({exc.reason})")
            return Verdict(exc.outcome, f"{step.describe(index)}: {exc.reason}")
        except TimeoutError:
            return Verdict(Outcome.ERROR, f"{step.describe(index)}: no result within the step deadline")
        finally:
            elapsed = round(time.monotonic() - started, 4)
            self.timings.append(StepTiming(index + 1, step.line, step.action, step.actor, elapsed))

    async def run_all(self, steps: list[Step]) -> Verdict:
        for index, step in enumerate(steps):
            verdict = await self.run_one(index, step)
            if verdict is None:
                continue
            if verdict.outcome is Outcome.FAIL and step.decisive and step.action == "expect":
                also = await self._other_broken_parts(steps, index)
                if also:
                    return Verdict(Outcome.FAIL, verdict.reason + " | also " + " | also ".join(also))
            return verdict
        if not self.decided:  # the loader requires a decisive step; a pass never rests on none
            return Verdict(
                Outcome.ERROR, "no step marked decisive completed: nothing shows the rule was checked"
            )
        return Verdict(Outcome.PASS, "")

    async def _other_broken_parts(self, steps: list[Step], failed: int) -> list[str]:
        """The decisive expects right after a failed one read what already arrived: each part of a
        rule that broke is reported, not only the first (e.g. ping and disco#info both wrong)."""
        also = []
        for later in range(failed + 1, len(steps)):
            if not (steps[later].decisive and steps[later].action == "expect"):
                break
            part = await self.run_one(later, steps[later])
            if part is not None and part.outcome is Outcome.FAIL:
                also.append(part.reason)
        return also


async def _run(
    scenario: Scenario,
    targets: dict[str, RunningTarget],
    evidence_dir: Path,
    services: RunServices,
    item: str,
    timings: list[StepTiming],
    decided: list[Decision],
) -> tuple[Verdict, dict[str, Actor]]:
    kinds = actor_kinds()
    actors: dict[str, Actor] = {}
    keylog = evidence_dir / "tls-keys.log"
    secrets_seen: list[str] = []
    servers_played = 0
    for role, target in targets.items():  # the accounts each target's actors use, in scenario order
        names = [spec.account for spec in scenario.actors.values() if spec.role == role and spec.account]
        target.begin_item(list(dict.fromkeys(names)))
    for name, spec in scenario.actors.items():
        target = targets[spec.role]
        kind = kinds[spec.kind]
        peer = services.peer_identity(servers_played) if kind.plays_server else None
        servers_played += kind.plays_server
        account = target.account(spec.account, scenario.accounts.get(spec.account)) if spec.account else None
        if account:
            secrets_seen.append(account.password)
        ctx = ActorContext(
            name=name,
            target=target.view(),
            account=account,
            evidence_dir=evidence_dir,
            keylog_file=keylog if services.keylog_foreign_accounts or not target.foreign_accounts else None,
            source_address=_source_address(spec, target, services),
            client_cert=services.client_certificate(account, evidence_dir)
            if spec.client_cert and account
            else None,
            secrets=secrets_seen,
            step_timeout=STEP_TIMEOUT_S,
            peer=peer,
            pki=services.pki if kind.plays_server else None,
        )
        actors[name] = kind(ctx, spec.options)
    placeholders = Placeholders(actors, targets, item)
    try:
        async with asyncio.timeout(ITEM_TIMEOUT_S):
            verdict = await _Steps(actors, targets, placeholders, timings, decided).run_all(scenario.steps)
    except TimeoutError:
        verdict = Verdict(Outcome.ERROR, f"item did not finish within {ITEM_TIMEOUT_S:.0f} s")
    finally:
        for actor in actors.values():
            with contextlib.suppress(Exception):  # closing is best effort; the verdict stands
                await actor.close()
    return verdict, actors


def run_item(
    scenario: Scenario, targets: dict[str, RunningTarget], evidence_dir: Path, services: RunServices
) -> ItemRun:
    """Run the scenario's steps against ``targets`` (role -> target) and collect evidence."""
    started = time.monotonic()
    item = item_id(scenario, {role: t.name for role, t in targets.items()})
    evidence_dir.mkdir(parents=True, exist_ok=True)
    missing = _missing_features(scenario, targets)
    if missing:
        return ItemRun(Verdict(Outcome.UNSUPPORTED, missing), time.monotonic() - started)
    cursors = {role: t.log_cursor() for role, t in targets.items()}
    # before the capture starts: every handshake in the pcap logs its keys after this
    key_log_sizes = {role: t.key_log_size() for role, t in targets.items()}
    capture = PacketCapture(sorted({t.address for t in targets.values()}), evidence_dir / "traffic.pcap")
    capture.start()
    actors: dict[str, Actor] = {}
    timings: list[StepTiming] = []
    decided: list[Decision] = []
    try:
        verdict, actors = asyncio.run(_run(scenario, targets, evidence_dir, services, item, timings, decided))
    except StepOutcome as exc:  # raised while building actors (e.g. account creation failed)
        verdict = Verdict(exc.outcome, exc.reason)
    except Exception as exc:  # the harness's own bug: an error verdict, never a crash of the run
        verdict = Verdict(Outcome.ERROR, f"harness error: {type(exc).__name__}: {exc}")
    finally:
        for target in targets.values():
            target.end_item()
        # every password of the targets' test accounts: known even when building an actor failed
        secrets_used = [account.password for t in targets.values() for account in t.accounts()]
        pcap = capture.stop(scrub=lambda data: scrub_credentials(data, secrets_used))
    evidence: dict[str, Path] = {"pcap": pcap}
    if capture.truncated:
        note = evidence_dir / "traffic.pcap.truncated.txt"
        note.write_text(
            f"The capture stopped after {capture.max_packets} packets; later traffic is not in the pcap.\n"
        )
        evidence[note.name] = note
    # The scenario's actor kinds decide how text is redacted, also when building an actor failed.
    kinds = actor_kinds()
    redactors = {kinds[spec.kind].redact for spec in scenario.actors.values()}

    def redacted(text: str) -> str:
        for redact in redactors:
            text = redact(text, secrets_used)
        return text

    health: dict[str, dict[str, Any]] = {}
    for role, target in targets.items():
        slices: dict[str, str] = {}  # log name -> redacted text, counted below without a re-read
        for path in target.copy_log_slice(cursors[role], evidence_dir):
            text = redacted(path.read_text(errors="replace"))
            path.write_text(text)
            evidence[path.name] = path
            slices[path.name.removeprefix(f"{target.name}.")] = text
        patterns = target.log_health()
        if patterns is not None:
            health[target.name] = count_health(patterns, slices)
    for actor in actors.values():
        for path in actor.stream_logs:
            evidence[path.name] = path
    server_keys = {t.name: t.key_log_slice(key_log_sizes[role]) for role, t in targets.items()}
    addresses = {t.address: t.name for t in targets.values()}
    evidence.update(add_server_keys(evidence_dir, pcap, server_keys, addresses, redacted))
    keylog = evidence_dir / "tls-keys.log"
    if keylog.exists():
        evidence["tls-keys.log"] = keylog
    connected = any(a.reached_server for a in actors.values())
    if verdict.outcome is Outcome.PASS and actors and not connected:
        verdict = Verdict(Outcome.ERROR, "no actor reached the server")
    return ItemRun(verdict, time.monotonic() - started, evidence, connected, timings, decided, health)
