"""Every scenario the c2s double cannot run (mostly federation) is shown to fail on real servers.

``tests/proofs/test_can_fail.py`` proves scenarios against the c2s double; the ones listed in
its ``REAL_SERVER_SCENARIOS`` (an actor that plays a server, or a role knob the double does not
honour) are proven here, each in one of two ways:

* a real cell that breaks the rule in its packaged configuration (``mutate=None``): the named
  targets must fail at the step that checks the rule;
* the scenario made to misbehave (``mutate``): the peer server told to do what a correct
  scenario would not (present a valid certificate where the scenario presents a bad one, send
  a key its listener will not vouch for), or the role knob that configures the rule left out.
  The mutated scenario must fail at the step that checks the rule.

All proofs share one topology of the three local servers (second instances included).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.engine import run_item
from harness.plugin import needs_reset
from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario
from harness.topology import Selection, Topology
from harness.verdict import Outcome
from tests.integration.conftest import LOCAL_TARGETS, ROOT
from tests.proofs.test_can_fail import REAL_SERVER_SCENARIOS, find_step

Mutation = Callable[[Scenario], Scenario]


def with_params(selector: str, **params: object) -> Mutation:
    """Change (or, with value None, drop) parameters of the one step ``selector`` names."""

    def mutate(scenario: Scenario) -> Scenario:
        index, step = find_step(scenario, selector)
        new = {k: v for k, v in {**step.params, **params}.items() if v is not None}
        steps = list(scenario.steps)
        steps[index] = dataclasses.replace(step, params=new)
        return dataclasses.replace(scenario, steps=steps)

    return mutate


def without_role_knobs(scenario: Scenario) -> Scenario:
    """The scenario with the server configuration it asks for left out."""
    return dataclasses.replace(scenario, roles={role: {} for role in scenario.roles})


@dataclasses.dataclass(frozen=True)
class FedProof:
    targets: tuple[str, ...]  # the target of each role, in the scenario's order (origin, receiver)
    step: str  # the step that must catch it (find_step selector)
    mutate: Mutation | None = None  # None: the real cell breaks the rule as packaged
    why: str = ""


def valid_cert(bad: str) -> Mutation:
    """The impostor presents a valid certificate where the scenario presents a ``bad`` one."""
    return with_params(f"connect impostor: '{bad}'", certificate="valid")


FED_PROOFS: dict[str, FedProof] = {
    "fed.tls.starttls-offered": FedProof(
        ("prosody", "ejabberd"),
        "expect remote",
        with_params("connect remote", tls="starttls", require_tls=None),
        "the features after TLS have no <starttls/>: the expect step reads what is offered",
    ),
    "fed.tls.required": FedProof(
        ("prosody", "jabberd2"),
        "authenticate remote: 'failure'",
        None,
        "jabberd2 as packaged: TLS optional on s2s",
    ),
    "fed.dialback.verify": FedProof(
        ("prosody", "ejabberd"),
        "authenticate remote",
        with_params("authenticate remote", key="invalid"),
        "the peer's listener does not vouch for its key",
    ),
    "fed.dialback.invalid-key-rejected": FedProof(
        ("prosody", "ejabberd"),
        "authenticate impostor: 'failure'",
        lambda s: with_params("authenticate impostor: 'failure'", key="valid")(
            with_params("connect impostor: origin.domain", **{"from": None})(s)
        ),
        "the peer claims its own domain and sends a key its listener vouches for",
    ),
    "fed.cert.untrusted-ca-rejected": FedProof(
        ("ejabberd", "prosody"), "authenticate impostor: 'failure'", valid_cert("untrusted")
    ),
    "fed.cert.wrong-name-rejected": FedProof(
        ("ejabberd", "prosody"), "authenticate impostor: 'failure'", valid_cert("wrong-name")
    ),
    "fed.cert.expired-rejected": FedProof(
        ("ejabberd", "prosody"), "authenticate impostor: 'failure'", valid_cert("expired")
    ),
    "fed.sasl-external.valid-cert": FedProof(
        ("prosody", "jabberd2"),
        "expect remote: EXTERNAL",
        None,
        "jabberd2 as packaged offers no SASL EXTERNAL to a peer with a valid certificate",
    ),
    "fed.spoof.from-domain-mismatch": FedProof(
        ("prosody", "jabberd2"), "expect remote", None, "jabberd2 drops the stanza silently"
    ),
    "fed.spoof.unverified-stream": FedProof(
        ("ejabberd", "jabberd2"), "expect impostor", None, "jabberd2 ignores the stanza silently"
    ),
    "fed.dialback.after-untrusted-certificate": FedProof(
        ("ejabberd",),
        "authenticate peer: 'failure'",
        None,
        "ejabberd as packaged accepts dialback from any peer, whatever its certificate",
    ),
    "auth.register.admin-address-not-claimable": FedProof(
        ("prosody",),
        "expect claimer",
        None,
        "prosody with open registration lets a stranger register the administrator's address",
    ),
    "fed.dialback.refused-under-certificate-policy": FedProof(
        ("ejabberd",),
        "authenticate peer: 'failure'",
        without_role_knobs,
        "without its certificate policy ejabberd accepts dialback from any peer",
    ),
    "fed.s2s.reconnect-backoff": FedProof(
        ("prosody",),
        "count-connections peer",
        None,
        "prosody opens a new connection for every stanza to a peer that refuses it",
    ),
    "fed.presence.probe-no-account-harvesting": FedProof(
        ("jabberd2",),
        "answers-alike remote",
        with_params(
            "answers-alike remote",
            send={
                "existing account": "<iq type='get' from='stranger@${remote.domain}' to='${bob.jid}' "
                "id='ph-exists-${random}'><ping xmlns='urn:xmpp:ping'/></iq>",
                "missing account": "<presence type='probe' from='stranger@${remote.domain}' "
                "to='nosuch-${random}@${receiver.domain}' id='ph-missing-${random}'/>",
            },
        ),
        "the existing account asked with a ping instead of a probe: jabberd2 answers the two "
        "differently, and the step must tell",
    ),
    "fed.policy.blocked-domain": FedProof(("jabberd2", "prosody"), "expect alice", without_role_knobs),
    "fed.policy.allowlist": FedProof(("jabberd2", "prosody"), "expect alice", without_role_knobs),
}


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The three local servers, their directories in a work dir the servers' users can reach."""
    work = Path(tempfile.mkdtemp(prefix="interop-test-"))
    work.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INTEROP_WORKDIR", str(work))
        topology = Topology(
            Selection(targets=list(LOCAL_TARGETS)),
            ROOT / "fixtures" / "targets",
            tmp_path_factory.mktemp("run"),
        )
        yield topology
        topology.close()
    shutil.rmtree(work, ignore_errors=True)


def test_every_real_server_scenario_has_a_proof() -> None:
    assert REAL_SERVER_SCENARIOS, "no scenario needs real servers (the selection is broken)"
    assert sorted(REAL_SERVER_SCENARIOS - FED_PROOFS.keys()) == [], "add them to FED_PROOFS"
    assert sorted(FED_PROOFS.keys() - REAL_SERVER_SCENARIOS) == [], "stale or misplaced FED_PROOFS"


@pytest.mark.parametrize("scenario_id", sorted(FED_PROOFS))
def test_fails_on_real_servers(scenario_id: str, topology: Topology, tmp_path: Path) -> None:
    proof = FED_PROOFS[scenario_id]
    (path,) = (ROOT / "scenarios").glob(f"*/{scenario_id}.yaml")
    scenario = load_scenario(path)
    if proof.mutate is not None:
        scenario = proof.mutate(scenario)
    index, step = find_step(scenario, proof.step)
    assert step.decisive, f"the proof of {scenario_id} fails at {proof.step!r}, not a decisive step"
    names = dict(zip(scenario.roles, proof.targets, strict=True))
    targets = topology.targets(names, topology.role_knobs(scenario.roles, names), reset=needs_reset(scenario))
    run = run_item(scenario, targets, tmp_path / "evidence", topology)
    explain = f"{run.verdict.outcome.value}: {run.verdict.reason} ({proof.why}; evidence {tmp_path})"
    assert run.verdict.outcome is Outcome.FAIL, explain
    assert run.verdict.reason.startswith(step.describe(index) + ":"), explain
