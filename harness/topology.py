"""The targets of one run: which are selected, their names and domains, starting them on demand.

A topology is what ``interop targets up`` would show a person: every target's name, domain,
address and how it runs. Targets start the first time an item needs them and stay up until the
run ends; a target that failed to start fails every item that needs it with the same reason.
A product paired with itself runs as a second instance (``x-2`` on ``x-2.test`` for ``x``).
Every name any target may need (second instances, service subdomains, the domains of actors
that play a server, external targets) is registered when the run's environment is created,
before any target starts. An item that federates with an external target runs once the event
has what it needs (:mod:`harness.preflight`): the run issues from the CA the external targets
trust, listens where the event's name plan puts its servers and peer actors (forwarding to
them), and its own servers trust the external targets' CAs.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from harness import interrupts
from harness.actors import Account, CertificateIssuer, PeerIdentity
from harness.environment.forward import Forwarders
from harness.environment.run_env import RunEnvironment, create_environment
from harness.preflight import NO_FEDERATION, Member, certificate_check, event_issuer, federation_problems
from harness.protocols import srv_records
from harness.scenario.loader import PLACEHOLDER
from harness.targets.docker import DockerRun, DockerTarget
from harness.targets.docker_network import MODES
from harness.targets.external import ExternalTarget, load_target_file
from harness.targets.local import LocalTarget, is_installed
from harness.targets.running import LogCursor, RunningTarget
from harness.targets.spec import AS_INSTALLED, CatalogueError, TargetSpec, catalogues
from harness.verdict import HarnessError, TargetError, Unsupported

DRIVERS = ("local", "docker")


@dataclass
class Selection:
    """What the user asked for (command-line options), before anything is started."""

    targets: list[str] = field(default_factory=list)  # product names; empty: the driver's default
    driver: str = "local"
    docker_network: str = "host"  # docker driver: host (loopback addresses) or bridge
    knobs: list[str] = field(default_factory=list)  # "name=value" or "target:name=value"
    variant: str | None = None  # a named bundle of knobs every selected target defines
    catalogues: list[Path] = field(default_factory=list)  # more product folders (a vendor's own)
    target_files: list[Path] = field(default_factory=list)
    # external targets written inside another file (an event file's `external:` entries): the
    # entry, checked as a target file is, and the file its ca_file is relative to
    inline_targets: list[tuple[dict[str, Any], Path]] = field(default_factory=list)
    keylog: bool = False  # key logs also for targets the harness does not run (their accounts' secrets)
    event: dict[str, str] | None = None  # the event file the selection came from (--event): name, title


def parse_knobs(
    items: list[str], specs: dict[str, TargetSpec], variant: str | None = None
) -> dict[str, dict[str, str]]:
    """``[target:]name=value`` options -> per target {knob: value}, on top of the variant's
    knobs; unknown knobs and variants are usage errors."""
    chosen: dict[str, dict[str, str]] = {name: spec.variant_knobs(variant) for name, spec in specs.items()}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CatalogueError(f"--knob {item!r}: write NAME=VALUE or TARGET:NAME=VALUE")
        target, _, name = key.rpartition(":")
        names = [target] if target else [t for t, s in specs.items() if name in s.knobs]
        if target and target not in specs:
            raise CatalogueError(f"--knob {item!r}: no selected target {target!r}")
        if not names:
            raise CatalogueError(f"--knob {item!r}: no selected target has a knob {name!r}")
        for t in names:
            if name not in specs[t].knobs:
                raise CatalogueError(
                    f"--knob {item!r}: {t} has no knob {name!r}; its knobs: "
                    f"{', '.join(sorted(specs[t].knobs))}"
                )
            chosen[t][name] = value
    return chosen


def by_default(spec: TargetSpec, driver: str) -> bool:
    """Whether a run with ``driver`` selects the product when no --targets are given: it runs
    with that driver (and, locally, is installed) and a run here verified it that way."""
    if driver not in spec.verified or not spec.runs_with(driver):
        return False
    return driver != "local" or is_installed(spec)


SECOND_INSTANCE = "{name}-2"  # a product paired with itself: a second instance, on its own domain
PEER_IDENTITIES = 2  # domains reserved for actors that play a server (see PeerIdentity)


@dataclass(frozen=True)
class SetupStep:
    """Time an item waited for its targets before its steps: a start, a restart with other knobs,
    or a reset of federation state (figures for the benchmark)."""

    cause: str  # start | restart | reset
    target: str
    duration_s: float


def config_diff_path(name: str) -> Path:
    """Where in the run folder a target's packaged-configuration diff is (beside the logs of a
    target that could not start)."""
    return Path("targets") / name / "packaged-config.diff"


class Topology:
    def __init__(
        self,
        selection: Selection,
        catalogue_dir: Path,
        run_dir: Path,
        *,
        work_dir: Path | None = None,
        authorities_dir: Path | None = None,
        owner: str | None = None,
    ) -> None:
        """``work_dir``: the servers' folder (default: a new one); ``authorities_dir``: where the
        run's CAs are (made there by whichever worker of the run comes first); ``owner``: the
        process the run's containers are labelled with (default: this one)."""
        if selection.driver not in DRIVERS:
            raise CatalogueError(f"--driver {selection.driver!r}: choose one of {', '.join(DRIVERS)}")
        if selection.docker_network not in MODES:
            raise CatalogueError(
                f"--docker-network {selection.docker_network!r}: choose one of {', '.join(MODES)}"
            )
        self.run_dir = run_dir
        self._work_dir = work_dir
        self._authorities_dir = authorities_dir
        self._owner = owner
        self.driver = selection.driver
        self.docker_network = selection.docker_network
        self.keylog_foreign_accounts = selection.keylog  # RunServices: key logs for vendors' accounts too
        self.as_installed = selection.variant == AS_INSTALLED  # no edits that add what packages lack
        products = catalogues(catalogue_dir, selection.catalogues)
        names = selection.targets or (
            []
            if selection.target_files or selection.inline_targets
            else [p for p, s in products.items() if by_default(s, self.driver)]
        )
        unknown = [n for n in names if n not in products]
        if unknown:
            raise CatalogueError(
                f"--targets: unknown target {', '.join(unknown)}; the catalogue has {', '.join(products)}"
            )
        cannot = [n for n in names if not products[n].runs_with(self.driver)]
        if cannot:
            how = "no distribution package" if self.driver == "local" else "no docker: section"
            raise CatalogueError(
                f"--targets: {', '.join(cannot)} cannot run with --driver {self.driver} ({how})"
            )
        self.specs = {name: products[name] for name in names}
        self.knobs = parse_knobs(selection.knobs, self.specs, selection.variant)
        # instance name -> selected target it is an instance of (itself, or its second instance)
        self._instance_of = {name: name for name in self.specs} | {
            SECOND_INSTANCE.format(name=name): name for name in self.specs
        }
        self.external: dict[str, ExternalTarget] = {}
        for target in [
            *map(load_target_file, selection.target_files),
            *(ExternalTarget(entry, source) for entry, source in selection.inline_targets),
        ]:
            self.external[target.name] = target
        self._issuer = event_issuer(list(self.external.values()))
        taken = {self.domain(name): name for name in self._instance_of} | {
            f"peer-{index}.test": "an actor that plays a server" for index in range(1, PEER_IDENTITIES + 1)
        }
        for target in self.external.values():
            if target.name in self._instance_of or target.domain in taken:
                raise CatalogueError(
                    f"--target-file {target.name}: its name or domain {target.domain} is also "
                    f"{taken.get(target.domain, target.name)}'s in this run; rename one of them"
                )
        if not self.specs and not self.external:
            raise CatalogueError(
                f"no target selected and none of the catalogue's products is verified with --driver "
                f"{self.driver}{' and installed (run ci/setup.sh)' if self.driver == 'local' else ''}: "
                "give --targets or --target-file"
            )
        self._env: RunEnvironment | None = None
        self._docker: DockerRun | None = None
        self._addresses: dict[str, str] = {}
        self._peers: list[PeerIdentity] = []
        # every name the run's DNS knows: domain -> (address, SRV label -> port)
        self._names: dict[str, tuple[str, dict[str, int]]] = {}
        self._hosting = False  # the names of actors that play a server are other runs' (host_an_event)
        self._forwarders = Forwarders()
        self._forwarded: set[tuple[str, str]] = set()  # (domain, planned address) the run listens at
        self._preflight: dict[frozenset[str], list[str]] = {}  # problems of a set of federating targets
        self._running: dict[str, RunningTarget] = dict(self.external)
        self._failed: dict[str, str] = {}
        self._closed = False
        self.setup_steps: list[SetupStep] = []  # of the last targets() call

    @property
    def names(self) -> list[str]:
        """The selected targets (first instances); items over one target run on these."""
        return [*self.specs, *self.external]

    def pairs(self) -> Iterator[tuple[str, str]]:
        """Ordered (origin, receiver) target names: every selected target with every one,
        itself included as its second instance (an external target has none)."""
        for origin in self.names:
            for receiver in self.names:
                if receiver != origin:
                    yield origin, receiver
                elif origin in self.specs:
                    yield origin, SECOND_INSTANCE.format(name=origin)

    def instance_of(self, name: str) -> str:
        """The selected target ``name`` is an instance of (itself, or its first instance)."""
        return self._instance_of.get(name, name)

    def _spec(self, name: str) -> TargetSpec:
        return self.specs[self._instance_of[name]]

    def product(self, name: str) -> str:
        return self._spec(name).product if name in self._instance_of else self.external[name].product

    def features(self, name: str) -> frozenset[str]:
        return self._spec(name).features if name in self._instance_of else self.external[name].features

    def knob_names(self, name: str) -> frozenset[str]:
        """The knobs a target has (none for a target the harness does not run)."""
        return frozenset(self._spec(name).knobs) if name in self._instance_of else frozenset()

    def domain(self, name: str) -> str:
        return f"{name}.test" if name in self._instance_of else self.external[name].domain

    def describe(self, name: str) -> dict[str, Any]:
        """What is known of a target before (or without) it running: for records of failed starts."""
        if name in self._running:
            t = self._running[name]
            return {
                "name": t.name,
                "product": t.product,
                "driver": t.driver,
                "domain": t.domain,
                "address": t.address,
                "knobs": dict(t.knobs),
                "verified_here": t.verified_here,
            }
        spec = self._spec(name)
        return {
            "name": name,
            "product": spec.product,
            "driver": self.driver,
            "domain": self.domain(name),
            "address": self._addresses.get(name, "unassigned"),
            "knobs": spec.knob_values(self.knobs[self._instance_of[name]]),
            "verified_here": self.driver in spec.verified,
        }

    def role_knobs(
        self, roles: dict[str, dict[str, Any]], names: dict[str, str], purpose: str = ""
    ) -> dict[str, dict[str, str]]:
        """The knob values a scenario's roles need (``roles[role]["knobs"]``) for the targets
        ``names`` plays them, with ``${role.domain}`` / ``${role.name}`` resolved.

        Raises Unsupported when a role's target has no such knob; ``purpose`` (what the scenario
        checks, e.g. its spec reference) goes into the reason, so that it names the feature."""
        values = {f"{role}.name": name for role, name in names.items()} | {
            f"{role}.domain": self.domain(name) for role, name in names.items()
        }
        knobs: dict[str, dict[str, str]] = {}
        for role, options in roles.items():
            wanted = options.get("knobs") or {}
            missing = sorted(set(wanted) - self.knob_names(names[role]))
            if missing:
                raise Unsupported(
                    f"{names[role]} has no knob {', '.join(missing)} (the scenario needs it on {role}"
                    + (f", for {purpose})" if purpose else ")")
                )
            knobs[role] = {k: PLACEHOLDER.sub(lambda m: values[m.group(1)], v) for k, v in wanted.items()}
            for knob, value in knobs[role].items():
                spec = self._spec(names[role])  # a target with knobs is one the harness runs
                try:
                    spec.knobs[knob].edits_for(value)
                except CatalogueError:
                    known = ", ".join(sorted({spec.knobs[knob].default, *spec.knobs[knob].values}))
                    raise Unsupported(
                        f"{names[role]} cannot set knob {knob}={value} (the scenario needs it on "
                        f"{role}); its values: {known}"
                    ) from None
        return knobs

    def _environment(self) -> RunEnvironment:
        """The run's environment, with every name any target may need registered before the
        first target starts (a resolver may read the hosts file only once)."""
        if self._env is None:
            self._env = create_environment(self.run_dir, self._work_dir, self._authorities_dir, self._issuer)
            for name in self._instance_of:
                spec = self._spec(name)
                address = self._addresses[name] = self._env.target_address()
                srv = srv_records(spec.protocol, spec.ports)
                for domain in [self.domain(name), *(f"{sub}.{self.domain(name)}" for sub in spec.subdomains)]:
                    self._names[domain] = (address, srv)
            for index in range(1, 1 + (0 if self._hosting else PEER_IDENTITIES)):
                peer = PeerIdentity(f"peer-{index}.test", self._env.target_address())
                self._names[peer.domain] = (peer.address, {})
                self._peers.append(peer)
            for target in self.external.values():
                self._names[target.domain] = (target.address, srv_records(target.protocol, target.ports))
            for domain, (address, srv) in self._names.items():
                self._env.add_name(domain, address, srv)
            self._env.trust([t.ca_file for t in self.external.values() if t.ca_file is not None])
            atexit.register(self.close)
            interrupts.install()
        return self._env

    def targets(
        self, names: dict[str, str], knobs: dict[str, dict[str, str]] | None = None, *, reset: bool = False
    ) -> dict[str, RunningTarget]:
        """Role -> running target for role -> name: started (in parallel) if not yet up,
        restarted with the role's knobs where a scenario needs them, and with federation
        state dropped when ``reset`` (items over pairs or with a peer server)."""
        knobs = knobs or {}
        self.setup_steps = []
        wanted = {role: self._wanted_knobs(name, knobs.get(role, {})) for role, name in names.items()}
        for name in names.values():
            if name in self._failed:
                raise TargetError(self._failed[name])
        env = self._environment()
        if reset:
            self._federation(list(dict.fromkeys(names.values())))
        to_start = []
        for role, name in names.items():
            if name not in self._running:
                self._running[name] = self._new_target(name, wanted[role] or {}, env)
                to_start.append(name)
        _in_parallel(
            [self._timed("start", name, partial(self._start, name)) for name in dict.fromkeys(to_start)]
        )
        changes = [
            self._timed("restart", name, partial(self._reconfigure, name, wanted[role]))
            for role, name in names.items()
            if name not in to_start and wanted[role] is not None and self._running[name].knobs != wanted[role]
        ]
        _in_parallel(changes)
        if reset:
            _in_parallel(
                [
                    self._timed("reset", name, self._running[name].reset_peer_state)
                    for name in dict.fromkeys(names.values())
                ]
            )
        return {role: self._running[name] for role, name in names.items()}

    def _federation(self, names: list[str]) -> None:
        """An item federating ``names`` (with actors that play a server when there is one name)
        needs, for each external target among them, what its target file's federation section
        declares (Unsupported without one) and a preflight without problems (TargetError with
        them; checked once per set of names)."""
        externals = [self.external[name] for name in names if name in self.external]
        if not externals:
            return
        missing = [t.name for t in externals if t.federation is None]
        if missing:
            raise Unsupported(NO_FEDERATION.format(name=missing[0]))
        key = frozenset(names)
        if key not in self._preflight:
            env = self._environment()
            members = [Member(n, self.domain(n), self._address(n), self.external.get(n)) for n in names]
            problems = [p for t in externals for p in self._listen_where_planned(t, members)]
            check = certificate_check(env, self._peers[0], self.run_dir / "preflight")
            problems += federation_problems(members, self._peers, env.dns_address, check)
            self._preflight[key] = list(dict.fromkeys(problems))
        if self._preflight[key]:
            raise TargetError(
                f"federation preflight of {' x '.join(names)}: {'; '.join(self._preflight[key])}"
            )

    def _address(self, name: str) -> str:
        return self.external[name].address if name in self.external else self._addresses[name]

    def _listen_where_planned(self, target: ExternalTarget, members: list[Member]) -> list[str]:
        """Listen where ``target``'s name plan puts the run's targets among ``members`` and its
        peer actors, forwarding to them (once per name and address); the problems."""
        plan = target.federation.names  # type: ignore[union-attr]
        ours = {
            m.domain: (m.address, list(self._spec(m.name).ports.values()))
            for m in members
            if m.external is None
        }
        ours |= {p.domain: (p.address, sorted(set(target.ports.values()))) for p in self._peers}
        problems = []
        for domain, (address, ports) in ours.items():
            if (domain, plan.get(domain, "")) in self._forwarded or domain not in plan:
                continue  # a missing name is the preflight's to report
            try:
                self._forwarders.add(plan[domain], address, ports)
            except OSError as exc:
                problems.append(
                    f"cannot listen at {plan[domain]} (where {target.name} finds {domain}): {exc}"
                )
                continue
            self._forwarded.add((domain, plan[domain]))
        return problems

    def _timed(self, cause: str, name: str, call: Callable[[], None]) -> Callable[[], None]:
        """``call``, with its duration recorded in :attr:`setup_steps`."""

        def timed() -> None:
            started = time.monotonic()
            try:
                call()
            finally:
                self.setup_steps.append(SetupStep(cause, name, round(time.monotonic() - started, 3)))

        return timed

    def _new_target(self, name: str, knobs: dict[str, str], env: RunEnvironment) -> RunningTarget:
        args = (self._spec(name), name, self.domain(name), self._addresses[name], knobs, env)
        if self.driver == "local":
            return LocalTarget(*args, as_installed=self.as_installed)
        if self._docker is None:
            self._docker = DockerRun.open(env.id, self.docker_network, self._owner)
        return DockerTarget(*args, docker_run=self._docker, as_installed=self.as_installed)

    def _wanted_knobs(self, name: str, role_knobs: dict[str, str]) -> dict[str, str] | None:
        """Every knob value the target must run with for an item (None: a target not run here,
        which has no knobs, so ``role_knobs`` asked for none)."""
        if name not in self._instance_of:
            return None
        return self._spec(name).knob_values({**self.knobs[self._instance_of[name]], **role_knobs})

    def _start(self, name: str) -> None:
        target = self._running[name]
        try:
            target.start()
            self._write_config_diff(target)
        except Exception as exc:
            failed_logs = self.run_dir / "targets" / name
            failed_logs.mkdir(parents=True, exist_ok=True)
            try:  # what the server said is the evidence of why (before stop: a container's goes)
                target.copy_log_slice(LogCursor(), failed_logs)
            finally:
                target.stop()
            self._failed[name] = f"target {name} could not start: {exc}"
            raise TargetError(self._failed[name]) from exc

    def _write_config_diff(self, target: RunningTarget) -> None:
        """The run's edits of the target's packaged files, once per start (knobs do not change
        them), whole: every worker of the run writes the same text to the same file."""
        diff, _ = target.config_diff()
        if diff:
            path = self.run_dir / config_diff_path(target.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}")
            partial.write_text(diff)
            partial.replace(path)

    def _reconfigure(self, name: str, knobs: dict[str, str]) -> None:
        try:
            self._running[name].reconfigure(knobs)
        except Exception as exc:
            self._running[name].stop()
            self._failed[name] = f"target {name} could not restart with other knobs: {exc}"
            raise TargetError(self._failed[name]) from exc

    def client_certificate(self, account: Account, directory: Path) -> tuple[Path, Path]:
        issued = self._environment().ca.issue_client(account.jid, directory)
        return issued.cert_path, issued.key_path

    def source_address(self, target: RunningTarget) -> str | None:
        """A fresh loopback source address for a connection to a target this run started."""
        return self._environment().source_address() if target.in_run_block else None

    def isolated_source(self, target: RunningTarget) -> str | None:
        """A source address no other actor uses (None: not possible for this target)."""
        return self._environment().isolated_address() if target.in_run_block else None

    def peer_identity(self, index: int) -> PeerIdentity:
        """The ``index``-th domain and address reserved for an actor that plays a server."""
        self._environment()
        if index >= len(self._peers):
            raise HarnessError(f"a scenario may have at most {len(self._peers)} actors that play a server")
        return self._peers[index]

    def pki_ca_file(self) -> Path:
        """The certificate of the run's CA, which issued every target's certificate."""
        return self._environment().ca.cert_path

    def dns_address(self) -> str:
        """The run's DNS responder (port 53), which knows every target's domain."""
        return self._environment().dns_address

    def host_an_event(self, guests: list[str]) -> tuple[Path, dict[str, str]]:
        """Let other runs federate with this topology's targets (``interop targets up``): returns
        the key of the CA its targets trust, which those runs issue from, and the name plan of
        the names they bring (the domains of actors that play a server and of ``guests``, targets
        those runs start), each at an address of this topology's block that its servers resolve
        from the start (a resolver may read the hosts file only once). Call it before any target
        starts; such a topology runs no items, so it reserves no names for its own actors."""
        if self._env is not None:
            raise HarnessError("a topology hosts an event from its start, not once its targets run")
        taken = [g for g in guests if g in self._instance_of]
        if taken:
            raise HarnessError(f"--guests {', '.join(taken)}: also a target of this topology")
        self._hosting = True
        env = self._environment()
        plan = {}
        domains = [f"peer-{index}.test" for index in range(1, PEER_IDENTITIES + 1)]
        for domain in [*domains, *(f"{guest}.test" for guest in guests)]:
            plan[domain] = env.target_address()
            env.add_name(domain, plan[domain], {})
        return env.ca.key_path, plan

    @property
    def pki(self) -> CertificateIssuer:
        return self._environment()

    def running(self) -> list[RunningTarget]:
        return list(self._running.values())

    def close(self) -> None:
        """Stop every target this run started (in parallel, with starts still under way in other
        threads) and the run's DNS responder; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with interrupts.shielded():  # a second Ctrl-C waits until everything is stopped
            _in_parallel([target.stop for target in self._running.values()], raise_first=False)
            if self._docker is not None:
                self._docker.close()
            self._forwarders.close()
            if self._env is not None:
                self._env.close()


def _in_parallel(calls: list[Callable[[], None]], *, raise_first: bool = True) -> None:
    """Run calls in threads (servers start and stop mostly waiting); re-raise the first error."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors and raise_first:
        raise errors[0]
