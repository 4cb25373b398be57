"""Every scenario can fail: for each one, a known-bad server makes it ``fail``.

For every scenario file under ``scenarios/``:

* against the correct double (:mod:`tests.doubles.xmpp_server`) the verdict is ``pass``;
* against the double with each flaw listed for it in :data:`PROOFS` the verdict is ``fail``,
  and the reason starts with the step that checks the broken rule (found in the scenario by
  action, actor and a piece of its parameters, so renumbered steps do not break the proofs).

A scenario without an entry in :data:`PROOFS` fails the suite ("no proof for scenario X").
Every flaw of the double is either used by a proof or listed in :data:`GAPS` (no scenario
catches it yet).

Federation scenarios (two roles, origin and receiver) run with *both* roles mapped to one
double, which serves the origin's and the receiver's users alike (``${receiver.domain}`` is the
double's domain; a domain it does not serve is one it cannot resolve). That is enough here:
these proofs show that each step of a scenario can fail, i.e. that the rule it checks is
observable from the clients; that a message, IQ or subscription really crosses a
server-to-server stream is shown against real servers, in pairs, elsewhere
(``tests/integration/test_federation_proofs.py``). Scenarios with an actor of a kind that plays
a server (``plays_server``, e.g. ``xmpp-peer-server``) cannot run against the c2s double at all,
nor can those whose roles need a server configuration the double does not have (a block list:
any role knob outside :data:`DOUBLE_KNOBS`): they are left out here and listed in
:data:`REAL_SERVER_SCENARIOS`; the same integration tests prove them.

Deadlines. A flaw that makes the server *not* send what a step expects can only be noticed when
the step's deadline passes; the proofs shorten the engine's per-step deadline
(``harness.engine.STEP_TIMEOUT_S``) to :data:`STEP_TIMEOUT_S`, since the double answers on
loopback within milliseconds. A scenario's own ``within`` is left alone: the proofs that wait
for one (``long=True``, 10 to 45 s) run in background threads from the start of the module,
concurrently with the others, and their tests collect the results.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import harness.engine as engine
from harness.actors import actor_kinds
from harness.engine import ItemRun
from harness.plugin import PROJECT_ROOT
from harness.results import read_results
from harness.scenario.loader import load_all, scenario_files
from harness.scenario.model import Scenario, Step
from harness.verdict import Outcome
from tests.doubles.target import DOMAIN, DoubleServices, DoubleTarget, running_double
from tests.doubles.xmpp_server import FLAWS, Pki, pki_from_ca
from tests.proofs.proof import Proof
from tests.proofs.prove import run_on_double

STEP_TIMEOUT_S = 2.0
SCENARIOS_DIR = PROJECT_ROOT / "scenarios"


# scenario id -> the flawed doubles it must fail against (the first is the scenario's main proof);
# the proofs_<group>.py modules beside this file add theirs (see _merged_proofs)
PROOFS: dict[str, list[Proof]] = {
    "auth.bind.resource-conflict": [
        Proof("duplicate-resources", "expect-any", "no alternative held", long=True),
        Proof("conflict-drop-first-silently", "expect-any", "connection closed", long=True),
    ],
    "auth.bind.server-generated-resource": [
        Proof("no-server-resource", "authenticate alice", "bad-request"),
        Proof("bind-bare-jid", "authenticate alice", "not a full JID"),
    ],
    "auth.legacy.iq-auth-after-sasl-failure": [
        Proof("legacy-auth-after-sasl-failure", "expect alice: policy-violation", "policy-violation"),
    ],
    "auth.legacy.iq-auth-not-before-tls": [
        Proof(
            "legacy-auth-before-tls",
            "expect alice: iq-auth",
            "unexpected child {http://jabber.org/features/iq-auth}auth",
        ),
    ],
    "auth.register.not-before-tls": [
        Proof(
            "register-before-tls",
            "expect newcomer: iq-register",
            "unexpected child {http://jabber.org/features/iq-register}register",
        ),
    ],
    "auth.register.policy": [
        Proof("register-not-allowed", "expect newcomer: jabber:iq:register", "id='reg1'"),
        Proof("register-silent", "expect newcomer: jabber:iq:register", "nothing like it received"),
    ],
    "auth.sasl.abort": [
        Proof("wrong-condition-abort", "expect alice: <aborted/>", "not-authorized"),
        Proof("ignore-abort", "authenticate alice", "did not answer <abort/>"),
    ],
    "auth.sasl.channel-binding-verified": [
        Proof("plus-ignores-binding", "authenticate alice", "server accepted SCRAM-SHA-1-PLUS"),
    ],
    "auth.sasl.external-client-cert": [
        Proof("external-no-cert-request", "authenticate alice", "not-authorized"),
    ],
    "auth.sasl.incorrect-encoding": [
        Proof(
            "wrong-condition-incorrect-encoding", "expect alice: <incorrect-encoding/>", "malformed-request"
        ),
    ],
    "auth.sasl.failed-logins-limited": [
        Proof("unlimited-failed-logins", "login-attempts attacker", "nothing limited them"),
        Proof("plain-rejects-right-password", "authenticate owner", "not-authorized"),
    ],
    "auth.sasl.invalid-authzid": [
        Proof("accept-any-authzid", "authenticate alice", f"bob@{DOMAIN}"),
    ],
    "auth.sasl.invalid-mechanism": [
        Proof("wrong-condition-invalid-mechanism", "expect alice: <invalid-mechanism/>", "not-authorized"),
    ],
    "auth.sasl.malformed-request": [
        Proof("wrong-condition-malformed-request", "expect alice: <malformed-request/>", "not-authorized"),
    ],
    "auth.sasl.no-plain-without-tls": [
        Proof("plain-before-tls", "expect alice: m:absent", "mechanisms"),
        Proof("silent-auth-before-tls", "authenticate alice", "did not answer"),
    ],
    "auth.sasl.plain-over-tls": [
        Proof("plain-rejects-right-password", "authenticate alice", "not-authorized"),
    ],
    "auth.sasl.retry-limit": [
        Proof("retry-limit-without-stream-error", "expect alice: policy-violation", "connection closed"),
        Proof("unlimited-retries", "expect alice: policy-violation", "within 45s", long=True),
        Proof("idle-timeout-instead-of-retry-limit", "expect alice: policy-violation", "connection-timeout"),
    ],
    "auth.sasl.saslprep": [
        Proof("no-saslprep", "authenticate carol", "not-authorized"),
    ],
    "auth.sasl.scram-sha-1": [
        Proof("scram-bad-server-signature", "authenticate alice", "server signature does not verify"),
        Proof("no-scram-sha-1", "expect alice: SCRAM-SHA-1", "SCRAM-SHA-1"),
    ],
    "auth.sasl.scram-sha-1-plus": [
        Proof("scram-plus-wrong-channel-binding", "authenticate alice", "not-authorized"),
        Proof("no-scram-sha-1-plus", "expect alice: SCRAM-SHA-1-PLUS", "SCRAM-SHA-1-PLUS"),
    ],
    "auth.sasl.scram-sha-256": [
        Proof("scram-sha-256-wrong-keys", "authenticate alice", "not-authorized"),
    ],
    "auth.sasl.unknown-user": [
        Proof("reveal-unknown-user", "expect stranger: <not-authorized/>", "account-disabled"),
    ],
    "auth.sasl.wrong-password": [
        Proof("accept-any-password", "authenticate alice", "server accepted PLAIN"),
    ],
    "auth.stream.stanza-before-auth": [
        Proof("process-stanza-before-auth", "expect-nothing bob", "before-auth-"),
        Proof("ignore-stanza-before-auth", "expect intruder: not-authorized", "not-authorized"),
    ],
    "auth.tls.certificate-matches-domain": [
        Proof("wrong-cert-name", "connect alice", "certificate verification failed"),
        Proof("cert-without-dns-id", "connect alice", "certificate verification failed"),
    ],
    "auth.tls.direct-tls": [
        Proof("direct-tls-wrong-cert", "connect alice", "certificate verification failed"),
        Proof("direct-tls-plaintext", "connect alice", "TLS handshake failed"),
        Proof("starttls-inside-direct-tls", "expect alice: starttls", "starttls"),
    ],
    "auth.tls.legacy-protocols-refused": [
        Proof("accept-tls1.0", "connect tls10", "server accepted TLS TLSv1"),
        Proof("accept-tls1.1", "connect tls11", "server accepted TLS TLSv1.1"),
    ],
    "auth.tls.starttls-offered": [
        Proof("no-starttls", "expect cleartext: starttls", "starttls"),
    ],
    "auth.tls.starttls-required": [
        Proof("tls-optional", "authenticate scram", "server accepted SCRAM-SHA-1"),
        Proof("silent-auth-before-tls", "authenticate scram", "did not answer"),
    ],
    "auth.tls.stream-restart-after-tls": [
        Proof("starttls-offered-after-tls", "expect alice: m:absent", "starttls"),
        Proof("no-stream-id-after-tls", "expect alice: stream:stream", "id"),
        Proof("no-restart-after-tls", "connect alice", "no new stream header"),
    ],
    # federation: origin and receiver are one double (see the module documentation)
    "fed.muc.remote-join": [
        Proof("muc-no-join-broadcast", "expect bob: /alice' m:without", "within 20s", long=True),
        Proof(
            "muc-no-self-presence-status",
            "expect bob: code='110'",
            "missing child {http://jabber.org/protocol/muc#user}status with code='110'",
            long=True,
        ),
    ],
    "fed.s2s.iq-roundtrip": [
        Proof("iq-result-not-delivered", "expect alice: type='result'", "within 20s", long=True),
        Proof("iq-to-full-jid-refused", "expect bob: type='get'", "within 20s", long=True),
    ],
    "fed.s2s.message-delivery": [
        Proof("drop-routed-messages", "expect bob: federated", "within 20s", long=True),
    ],
    "fed.s2s.presence-subscription": [
        Proof("no-presence-after-approval", "expect alice: ${bob.full_jid}", "within 20s", long=True),
        Proof("subscription-from-full-jid", "expect bob: type='subscribe'", "attribute from is", long=True),
    ],
    "fed.s2s.remote-server-not-found": [
        Proof("no-bounce-unknown-domain", "expect alice: remote-server-not-found", "within 10s", long=True),
    ],
    "fed.s2s.remote-user-not-found": [
        Proof(
            "unknown-user-item-not-found",
            "expect alice: nu-version",
            "missing child {urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable",
        ),
        Proof("unknown-user-pong", "expect alice: nu-ping", "attribute type is 'result', expected 'error'"),
    ],
    "authz.disco.no-account-harvesting": [
        Proof(
            "disco-info-to-strangers", "expect eve: dh-exists", "attribute type is 'result', expected 'error'"
        ),
        Proof("unknown-user-item-not-found", "expect eve: dh-missing", "service-unavailable"),
    ],
    "authz.stanza.local-user-not-found": [
        Proof(
            "unknown-user-item-not-found",
            "expect alice: nu-version",
            "missing child {urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable",
        ),
        Proof("unknown-user-pong", "expect alice: nu-ping", "attribute type is 'result', expected 'error'"),
    ],
}


def _merged_proofs() -> None:
    """Add the PROOFS of every ``tests/proofs/proofs_*.py`` module (a scenario in one place only)."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("proofs_"):
            group = importlib.import_module(f"tests.proofs.{info.name}").PROOFS
            twice = sorted(group.keys() & PROOFS.keys())
            assert not twice, f"proofs of {twice} in {info.name} and elsewhere"
            PROOFS.update(group)


_merged_proofs()

# Flaws no scenario catches yet (a scenario for them would be welcome).
GAPS: dict[str, str] = {
    "iq-to-full-jid-unchecked": "no scenario sends an IQ request to the full JID of a user who "
    "shares no presence with the sender and expects <service-unavailable/> (RFC 6121 §8.5.3.1)",
    "external-without-cert": "no scenario tries EXTERNAL (with an authzid) without a client "
    "certificate and expects a failure",
}

# -- the scenarios -------------------------------------------------------------------------------

_SCENARIOS, _LOAD_ERRORS = load_all(scenario_files(SCENARIOS_DIR))


# Role knobs the double satisfies as it is: its MUC, PEP and archive services are always on, and
# its administrators are the accounts called "admin" (knob admins); "*": any value.
DOUBLE_KNOBS: dict[str, str] = {"muc": "on", "pep": "on", "mam": "on", "admins": "*"}


def _needs_real_servers(scenario: Scenario) -> bool:
    """An actor that plays a server (the double has no server-to-server side), or a role knob
    the double does not honour (see the module documentation)."""
    kinds = actor_kinds()
    if any(getattr(kinds.get(actor.kind), "plays_server", False) for actor in scenario.actors.values()):
        return True
    wanted = [(k, v) for role in scenario.roles.values() for k, v in (role.get("knobs") or {}).items()]
    return not all(DOUBLE_KNOBS.get(k) in (v, "*") for k, v in wanted)


# Proven against real servers by tests/integration/test_federation_proofs.py, not here.
REAL_SERVER_SCENARIOS: frozenset[str] = frozenset(s.id for s in _SCENARIOS if _needs_real_servers(s))
SCENARIOS: dict[str, Scenario] = {s.id: s for s in _SCENARIOS if s.id not in REAL_SERVER_SCENARIOS}


@dataclass(frozen=True)
class Case:
    scenario_id: str
    proof: Proof | None  # None: the scenario has no proof (a failing test says so)

    @property
    def id(self) -> str:
        return f"{self.scenario_id}[{'+'.join(self.proof.flaws) if self.proof else 'NO PROOF'}]"


def _cases() -> list[Case]:
    cases = []
    for scenario_id in sorted(SCENARIOS):
        proofs = PROOFS.get(scenario_id) or [None]
        cases += [Case(scenario_id, proof) for proof in proofs]
    return cases


CASES = _cases()


def find_step(scenario: Scenario, selector: str) -> tuple[int, Step]:
    """The one step ``selector`` ("ACTION [ACTOR][: TEXT]") names in ``scenario``."""
    head, _, text = selector.partition(":")
    action, _, actor = head.strip().partition(" ")
    fits = [
        (index, step)
        for index, step in enumerate(scenario.steps)
        if step.action == action
        and (not actor or step.actor == actor.strip())
        and text.strip() in repr(step.params)
    ]
    if len(fits) != 1:
        where = ", ".join(step.describe(i) for i, step in fits) or "none"
        pytest.fail(
            f"PROOFS of {scenario.id}: step selector {selector!r} fits {len(fits)} steps ({where}); "
            "it must name exactly one: update the selector to the scenario"
        )
    return fits[0]


# -- running items against doubles -------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pki_from_ca(tmp_path_factory.mktemp("double-pki"), DOMAIN)


@pytest.fixture(scope="module")
def services(pki: Pki) -> DoubleServices:
    return DoubleServices(pki)


@pytest.fixture(scope="module", autouse=True)
def short_step_deadline() -> Iterator[None]:
    """See the module documentation (Deadlines)."""
    saved = engine.STEP_TIMEOUT_S
    engine.STEP_TIMEOUT_S = STEP_TIMEOUT_S
    yield
    engine.STEP_TIMEOUT_S = saved


def run_against(
    scenario: Scenario,
    pki: Pki,
    services: DoubleServices,
    flaws: tuple[str, ...],
    workdir: Path,
    **config: Any,
) -> ItemRun:
    """Run ``scenario`` with ``harness.engine.run_item`` against a fresh double with ``flaws``;
    every role (one, or a federation scenario's origin and receiver) is that same double (see the
    module documentation)."""
    if scenario.id in REAL_SERVER_SCENARIOS or len(scenario.roles) not in (1, 2):
        pytest.fail(f"{scenario.id} cannot run against the c2s double (see the module documentation)")
    return run_on_double(scenario, pki, flaws, workdir, **config)


def explain(run: ItemRun, workdir: Path) -> str:
    log = workdir / "double.log"
    tail = "".join(log.read_text().splitlines(keepends=True)[-25:]) if log.exists() else "(no log)"
    return (
        f"verdict {run.verdict.outcome.value}: {run.verdict.reason}\n"
        f"evidence: {workdir / 'evidence'}\nthe double's log (tail):\n{tail}"
    )


@pytest.fixture(scope="module", autouse=True)
def long_proofs(
    request: pytest.FixtureRequest,
    pki: Pki,
    services: DoubleServices,
    tmp_path_factory: pytest.TempPathFactory,
    short_step_deadline: None,
) -> Iterator[dict[str, tuple[Future[ItemRun], Path]]]:
    """Start the selected ``long`` proofs at once, in the background (see the module doc)."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and hasattr(item, "callspec")
        and isinstance(item.callspec.params.get("case"), Case)
        and item.originalname == "test_fails_against_the_flawed_double"
    ]
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="long-proof")
    started: dict[str, tuple[Future[ItemRun], Path]] = {}
    for case in selected:
        if case.proof is not None and case.proof.long and case.scenario_id in SCENARIOS:
            workdir = tmp_path_factory.mktemp("long-proof")
            future = pool.submit(
                run_against, SCENARIOS[case.scenario_id], pki, services, case.proof.flaws, workdir
            )
            started[case.id] = (future, workdir)
    yield started
    pool.shutdown(wait=True, cancel_futures=True)


# -- the proofs ----------------------------------------------------------------------------------


def test_scenarios_load() -> None:
    assert not _LOAD_ERRORS, "\n".join(str(e) for e in _LOAD_ERRORS)
    assert SCENARIOS, f"no scenario found under {SCENARIOS_DIR}"


@pytest.mark.parametrize("scenario_id", sorted(SCENARIOS))
def test_passes_against_the_correct_double(
    scenario_id: str, pki: Pki, services: DoubleServices, tmp_path: Path
) -> None:
    scenario = SCENARIOS[scenario_id]
    run = run_against(scenario, pki, services, (), tmp_path)
    assert run.verdict.outcome is Outcome.PASS, explain(run, tmp_path)
    assert run.actors_connected
    # the pass rests on every step the scenario marks decisive, each with what it saw
    decisive = [index + 1 for index, step in enumerate(scenario.steps) if step.decisive]
    assert [d.step for d in run.decided_by] == decisive and all(d.observed for d in run.decided_by)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fails_against_the_flawed_double(
    case: Case,
    pki: Pki,
    services: DoubleServices,
    tmp_path: Path,
    long_proofs: dict[str, tuple[Future[ItemRun], Path]],
) -> None:
    proof = case.proof
    if proof is None:
        pytest.fail(
            f"no proof for scenario {case.scenario_id}: add one to PROOFS in {__file__} (a flaw of "
            "tests/doubles/xmpp_server.py that makes it fail; add a flaw there if none fits)"
        )
    scenario = SCENARIOS[case.scenario_id]
    index, step = find_step(scenario, proof.step)
    if proof.long:
        future, workdir = long_proofs[case.id]
        run = future.result()
    else:
        workdir = tmp_path
        run = run_against(scenario, pki, services, proof.flaws, workdir)
    assert run.verdict.outcome is Outcome.FAIL, explain(run, workdir)
    if proof is PROOFS[case.scenario_id][0]:  # the main proof breaks the rule itself
        assert step.decisive, (
            f"the main proof of {case.scenario_id} fails at {proof.step!r}, not a decisive step"
        )
    prefix = step.describe(index) + ":"
    where = f"expected the failure at {prefix}\n"
    assert run.verdict.reason.startswith(prefix), where + explain(run, workdir)
    says = f"expected {proof.says!r} in the reason\n"
    assert proof.says in run.verdict.reason, says + explain(run, workdir)


def test_every_flaw_is_accounted_for() -> None:
    """Each flaw of the double proves a scenario, or is a known gap, or a known error."""
    used = {flaw for proofs in PROOFS.values() for proof in proofs for flaw in proof.flaws}
    unknown = sorted((used | GAPS.keys()) - FLAWS.keys())
    assert not unknown, f"not flaws of the double: {unknown}"
    unaccounted = sorted(FLAWS.keys() - used - GAPS.keys())
    assert not unaccounted, f"flaws neither in PROOFS nor GAPS: {unaccounted}"
    misplaced = sorted(PROOFS.keys() & REAL_SERVER_SCENARIOS)
    assert not misplaced, f"PROOFS for scenarios the double cannot run (an actor plays a server): {misplaced}"
    stale = sorted(PROOFS.keys() - SCENARIOS.keys() - REAL_SERVER_SCENARIOS)
    assert not stale, f"PROOFS for scenarios that do not exist (renamed?): {stale}"


@pytest.mark.parametrize(
    ("policy", "registration", "invalid_from"),
    [
        ("override", "closed", "override"),
        ("rename", "open", "stream-error"),
        ("refuse", "closed", "override"),
    ],
)
def test_every_allowed_server_policy_passes(
    policy: str, registration: str, invalid_from: str, pki: Pki, services: DoubleServices, tmp_path: Path
) -> None:
    """Where the rule leaves the server a choice, every allowed choice passes: the three
    resource-conflict behaviours of RFC 6120 §7.7.2.2, open or closed registration, and a
    spoofed 'from' overridden or answered with <invalid-from/> (RFC 6120 §8.1.2.1)."""
    for scenario_id, config in (
        ("auth.bind.resource-conflict", {"conflict_policy": policy}),
        ("auth.register.policy", {"registration": registration}),
        ("authz.stanza.spoofed-from-rejected", {"invalid_from": invalid_from}),
        ("authz.stanza.from-stamped", {"invalid_from": invalid_from}),
    ):
        workdir = tmp_path / scenario_id
        run = run_against(SCENARIOS[scenario_id], pki, services, (), workdir, **config)
        assert run.verdict.outcome is Outcome.PASS, f"{scenario_id} {config}: " + explain(run, workdir)


# -- the command line, through the external driver -----------------------------------------------


def double_target_file(target: DoubleTarget, pki: Pki, name: str, workdir: Path, **fields: Any) -> Path:
    """``workdir/NAME.target.yaml``: the double as the external target ``double-NAME`` with the
    accounts alice and bob (``fields``: other values, e.g. a ``host`` where nothing listens)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.target.yaml"
    data = {
        "name": f"double-{name}",
        "product": "xmpp-double",
        "version": "test",
        "domain": target.domain,
        "host": target.address,
        "ports": dict(target.ports),
        "ca_file": str(pki.ca_file),
        "accounts": [{"user": user, "password": password} for user, password in DOUBLE_ACCOUNTS.items()],
    }
    path.write_text(yaml.safe_dump(data | fields))
    return path


def interop_on_double(
    target: DoubleTarget, pki: Pki, name: str, workdir: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``interop run --target-file`` against a running double (as the external target ``name``
    with the accounts alice and bob) with ``args``, in ``workdir``; the completed process and
    the run directory."""
    target_file = double_target_file(target, pki, name, workdir)
    out = workdir / f"run-{name}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--target-file",
            str(target_file),
            "--out",
            str(out),
            *args,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, out


DOUBLE_ACCOUNTS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}


def test_cli_exit_codes_against_the_double(pki: Pki, tmp_path: Path) -> None:
    """``interop run --target-file`` against the double: exit 0 and ``pass`` when it is
    correct, exit 1 and ``fail`` (a MUST) when it accepts any password."""
    for flaws, code, outcome in (((), 0, "pass"), (("accept-any-password",), 1, "fail")):
        name = "accept-any-password" if flaws else "correct"
        with running_double(
            pki, flaws, accounts=dict(DOUBLE_ACCOUNTS), log_file=tmp_path / f"{name}.double.log"
        ) as target:
            done, out = interop_on_double(
                target, pki, name, tmp_path, "--scenario", "auth.sasl.wrong-password"
            )
        transcript = f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        assert done.returncode == code, transcript
        run = read_results(out / "results.json")
        verdicts = [(i.scenario_id, i.outcome) for i in run.items]
        assert verdicts == [("auth.sasl.wrong-password", outcome)], transcript
        assert [(t["name"], t["driver"]) for t in run.targets] == [(f"double-{name}", "external")], transcript


def test_cli_shards_merge_into_the_unsharded_run(pki: Pki, tmp_path: Path) -> None:
    """``--shard 1/2`` and ``--shard 2/2`` merged with ``interop merge`` are the unsharded run:
    the same items with the same verdicts, and the shards shared nothing."""
    selection = [arg for s in SHARD_SCENARIOS for arg in ("--scenario", s)]
    with running_double(pki, (), accounts=dict(DOUBLE_ACCOUNTS)) as target:
        runs = {
            shard: interop_on_double(
                target, pki, "double", tmp_path / f"shard{shard[0]}", *selection, "--shard", shard
            )
            for shard in ("1/2", "2/2")
        }
        whole, whole_out = interop_on_double(target, pki, "double", tmp_path / "whole", *selection)
    for done, out in [*runs.values(), (whole, whole_out)]:
        assert (out / "results.json").exists(), done.stdout[-2000:] + done.stderr[-2000:]
    shards = [read_results(out / "results.json") for _, out in runs.values()]
    assert all(len(run.items) >= 2 for run in shards), [len(r.items) for r in shards]
    assert [r.selection["shard"] for r in shards] == ["1/2", "2/2"]
    merged_out = tmp_path / "merged"
    merge = subprocess.run(
        [sys.executable, "-m", "harness.cli", "merge", "--out", str(merged_out)]
        + [str(out / "results.json") for _, out in runs.values()],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert merge.returncode == whole.returncode, merge.stdout + merge.stderr
    merged = read_results(merged_out / "results.json")
    verdicts = sorted((i.item_id, i.outcome) for i in merged.items)
    assert verdicts == sorted((i.item_id, i.outcome) for i in read_results(whole_out / "results.json").items)
    assert len(verdicts) == len(SHARD_SCENARIOS)
    assert (merged_out / "matrix.md").exists() and (merged_out / "index.html").exists()
    for one in merged.items:
        assert all((merged_out / p).exists() for p in one.evidence.values()), one.item_id


SHARD_SCENARIOS = (
    "auth.sasl.wrong-password",
    "auth.sasl.unknown-user",
    "auth.sasl.plain-over-tls",
    "auth.sasl.invalid-mechanism",
    "auth.tls.starttls-offered",
)


def test_pytest_habits_hold_in_a_parallel_run(pki: Pki, tmp_path: Path) -> None:
    """With ``--jobs 2``: ``-k`` selects, ``-x`` stops at the first failure, JUnit and Allure get
    every item, ``--collect-only`` runs nothing; an external target (one server for all workers)
    has its items run by one worker, one after the other."""
    selection = [arg for s in SHARD_SCENARIOS for arg in ("--scenario", s)]
    with running_double(pki, (), accounts=dict(DOUBLE_ACCOUNTS)) as target:
        done, out = interop_on_double(
            target, pki, "k", tmp_path / "k", "--jobs", "2", *selection, "--", "-k", "sasl"
        )
        target_file = tmp_path / "k" / "k.target.yaml"
        listed = subprocess.run(
            [sys.executable, "-m", "pytest", "scenarios", "--target-file", str(target_file), "--jobs", "2"]
            + selection
            + ["--collect-only", "-q", "-p", "no:cacheprovider"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    with running_double(pki, ("accept-any-password",), accounts=dict(DOUBLE_ACCOUNTS)) as target:
        stopped, stopped_out = interop_on_double(
            target, pki, "x", tmp_path / "x", "--jobs", "2", "--scenario", "auth.sasl.*", "--", "-x"
        )
    transcript = done.stdout[-2000:] + done.stderr[-2000:]
    run = read_results(out / "results.json")
    assert sorted(i.scenario_id for i in run.items) == sorted(s for s in SHARD_SCENARIOS if "sasl" in s), (
        transcript
    )
    assert len({i.worker for i in run.items}) == 1 and run.items[0].worker.startswith("gw")
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == len(run.items)
    assert len(list((out / "allure-results").glob("*-result.json"))) == len(run.items)
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    assert sum("::" in line for line in listed.stdout.splitlines()) == len(SHARD_SCENARIOS)
    items = read_results(stopped_out / "results.json").items
    all_sasl = len([p for p in SCENARIOS_DIR.rglob("auth.sasl.*.yaml")])
    assert stopped.returncode == 1 and 1 <= len(items) < all_sasl, stopped.stdout[-2000:]
    assert [i.outcome for i in items].count("fail") >= 1
