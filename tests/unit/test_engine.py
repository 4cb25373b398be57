"""The engine: evidence (server log slices are redacted even when an item never got its actors),
ordering barriers, admin steps and step timings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.actors import Account, Actor, actor_kinds
from harness.engine import run_item
from harness.scenario.loader import ScenarioError, load_scenario
from harness.targets.running import RunningTarget
from harness.verdict import Failed, Observation, Outcome, TargetError

SCENARIO = """\
id: auth.engine.two-accounts
title: Two accounts, the second cannot be made
category: authentication
spec: {document: RFC 6120, section: "6.5.10"}
level: MUST
protocol: xmpp
actors:
  alice: {kind: xmpp-raw, account: alice}
  bob: {kind: xmpp-raw, account: bob}
steps:
  - connect: {actor: alice, decisive: true}
"""


class BrokenProvisioning(RunningTarget):
    """Alice's account exists (and the server logs her SASL payload); Bob's cannot be created."""

    driver = "test"
    name = product = version = "stub"
    domain = "stub.test"
    address = "127.0.9.9"
    ports = {"c2s": 5222}
    ca_file = None
    knobs: dict[str, str] = {}
    features = frozenset()

    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log

    def _provide_account(self, name: str, password_part: str | None) -> Account:
        if name == "bob":
            raise TargetError("stub: cannot create bob")
        account = Account(name, self.domain, "Secret-Of-Alice-42")
        self.log.write_text(f"debug Received[c2s]: <password>{account.password}</password>\n")
        return account

    def log_files(self) -> list[Path]:
        return [self.log]

    def stop(self) -> None:
        """Nothing was started."""


class NoServices:
    keylog_foreign_accounts = False

    def source_address(self, target: RunningTarget) -> None:
        return None

    def client_certificate(self, account: Account, directory: Path) -> tuple[Path, Path]:
        raise AssertionError("no client certificate is asked for")


def test_log_slice_is_redacted_when_building_actors_failed(tmp_path: Path) -> None:
    path = tmp_path / "auth.engine.two-accounts.yaml"
    path.write_text(SCENARIO)
    log = tmp_path / "server.log"
    log.write_text("")
    run = run_item(load_scenario(path), {"server": BrokenProvisioning(log)}, tmp_path / "ev", NoServices())
    assert run.verdict.outcome is Outcome.ERROR and "cannot create bob" in run.verdict.reason
    text = (tmp_path / "ev" / "stub.server.log").read_text()
    assert "Received[c2s]" in text and "Secret-Of-Alice-42" not in text


# -- ordering barriers (after:), admin steps and step timings ------------------------------------

BARRIER_SCENARIO = """\
id: authz.engine.barrier
title: Barriers run before the step, admin steps reach the target
category: authorization
spec: {document: RFC 6120, section: "10.1"}
level: MUST
protocol: xmpp
actors:
  alice: {kind: recorder, account: alice}
  bob: {kind: recorder, account: bob}
  carol: {kind: recorder, account: carol}
steps:
  - admin: {op: create-room, room: "r-${random}@conference.${server.domain}", owner: "${alice.jid}"}
  - send: {actor: alice, xml: "<message/>"}
  - expect-nothing: {actor: bob, after: [alice, carol], via: "r-${random}@conference.${server.domain}", match: m,
                    decisive: true}
"""


class Recorder(Actor):
    """Records what the engine asks of it, in one list shared by every recorder."""

    kind = "recorder"
    protocol = "test"
    actions: ClassVar[dict[str, dict[str, Any]]] = {
        "send": {"type": "object"},
        "expect-nothing": {"type": "object"},
    }
    deciding_actions: ClassVar[frozenset[str]] = frozenset({"expect-nothing"})
    calls: ClassVar[list[str]] = []

    async def perform(self, action: str, params: dict[str, Any]) -> Observation | None:
        self.reached_server = True
        self.calls.append(f"{self.ctx.name} {action} {params.get('via', '')}".strip())
        if action != "expect-nothing":
            return None
        return Observation(f"saw {params['match']}", exercised=params["match"] != "untested")

    async def round_trip(self, via: str | None = None) -> None:
        self.calls.append(f"{self.ctx.name} round-trip {via}")

    async def close(self) -> None:
        """Nothing to release."""


class AdminTarget(BrokenProvisioning):
    """Every account can be made; admin operations are recorded."""

    def __init__(self, log: Path) -> None:
        super().__init__(log)
        self.admin_calls: list[tuple[str, dict[str, str]]] = []

    def _provide_account(self, name: str, password_part: str | None) -> Account:
        return Account(name, self.domain, f"pw-{name}")

    def admin(self, op: str, params: dict[str, str]) -> None:
        self.admin_calls.append((op, params))


@pytest.mark.usefixtures("actors_for_tests")
def test_after_runs_round_trips_in_order_and_admin_reaches_the_target(tmp_path: Path) -> None:
    Recorder.calls.clear()
    path = tmp_path / "authz.engine.barrier.yaml"
    path.write_text(BARRIER_SCENARIO)
    target = AdminTarget(tmp_path / "server.log")
    run = run_item(load_scenario(path), {"server": target}, tmp_path / "ev", NoServices())
    assert run.verdict.outcome is Outcome.PASS, run.verdict.reason
    ((op, params),) = target.admin_calls
    room = params["room"]
    assert op == "create-room" and room.endswith("@conference.stub.test") and "${" not in room
    assert params == {"room": room, "owner": "alice@stub.test"}
    assert Recorder.calls == [
        "alice send",
        f"alice round-trip {room}",
        f"carol round-trip {room}",
        f"bob expect-nothing {room}",
    ]
    assert [(s.step, s.action, s.actor) for s in run.steps] == [
        (1, "admin", ""),
        (2, "send", "alice"),
        (3, "expect-nothing", "bob"),
    ]
    assert all(s.duration_s >= 0 for s in run.steps)
    assert [(d.step, d.observed) for d in run.decided_by] == [(3, "saw m")]


class SlowAdminTarget(AdminTarget):
    """An admin tool that takes longer than any step deadline (ejabberdctl on a loaded machine)."""

    def admin(self, op: str, params: dict[str, str]) -> None:
        time.sleep(0.3)
        super().admin(op, params)


@pytest.mark.usefixtures("actors_for_tests")
def test_an_admin_step_is_bounded_by_the_targets_tool_timeout_not_the_step_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.engine.STEP_TIMEOUT_S", 0.01)
    path = tmp_path / "authz.engine.barrier.yaml"
    path.write_text(BARRIER_SCENARIO.replace(", via: ", ", within: 0, via: "))
    target = SlowAdminTarget(tmp_path / "server.log")
    run = run_item(load_scenario(path), {"server": target}, tmp_path / "ev", NoServices())
    assert run.verdict.outcome is Outcome.PASS, run.verdict.reason
    assert [op for op, _ in target.admin_calls] == ["create-room"]


def _run_recorders(tmp_path: Path, steps: str) -> Any:
    path = tmp_path / "authz.engine.barrier.yaml"
    path.write_text(BARRIER_SCENARIO[: BARRIER_SCENARIO.index("steps:")] + "steps:\n" + steps)
    return run_item(
        load_scenario(path), {"server": AdminTarget(tmp_path / "server.log")}, tmp_path / "ev", NoServices()
    )


@pytest.mark.usefixtures("actors_for_tests")
def test_a_decisive_step_that_did_not_test_the_rule_makes_the_item_unsupported(tmp_path: Path) -> None:
    run = _run_recorders(
        tmp_path,
        "  - expect-nothing: {actor: bob, match: untested, decisive: true}\n"
        "  - expect-nothing: {actor: bob, match: later}\n",
    )
    assert run.verdict.outcome is Outcome.UNSUPPORTED
    assert (
        run.verdict.reason == "step 1 (line 12) checks the rule but did not put it to the test: saw untested"
    )
    assert run.decided_by == []
    assert [s.step for s in run.steps] == [1]  # the item ends there


@pytest.mark.usefixtures("actors_for_tests")
def test_the_same_observation_on_a_step_that_is_not_decisive_changes_nothing(tmp_path: Path) -> None:
    run = _run_recorders(
        tmp_path,
        "  - expect-nothing: {actor: bob, match: untested}\n"
        "  - expect-nothing: {actor: bob, match: rule, decisive: true}\n",
    )
    assert run.verdict.outcome is Outcome.PASS
    assert [(d.step, d.line, d.observed) for d in run.decided_by] == [(2, 13, "saw rule")]


@pytest.mark.usefixtures("actors_for_tests")
def test_a_decisive_step_that_observes_nothing_cannot_give_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An action that returns no observation (here send, forced past the loader) decides nothing."""
    monkeypatch.setattr(Recorder, "deciding_actions", frozenset({"send", "expect-nothing"}))
    run = _run_recorders(tmp_path, "  - send: {actor: alice, xml: x, decisive: true}\n")
    assert run.verdict.outcome is Outcome.UNSUPPORTED
    assert run.verdict.reason.endswith("did not put it to the test: the step observed nothing")


@pytest.mark.usefixtures("actors_for_tests")
@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ("  - expect-nothing: {actor: bob, match: m}\n", ":12: no step is marked decisive: true"),
        (
            "  - send: {actor: alice, xml: x, decisive: true}\n"
            "  - expect-nothing: {actor: bob, match: m, decisive: true}\n",
            ":12: step 1: decisive: a send step checks nothing",
        ),
        (
            "  - expect-nothing: {actor: bob, match: m, decisive: true, unsupported_on_fail: not here please}\n",
            ":12: step 1: decisive and unsupported_on_fail",
        ),
    ],
)
def test_the_loader_wants_one_decisive_step_that_can_decide(tmp_path: Path, steps: str, problem: str) -> None:
    path = tmp_path / "authz.engine.barrier.yaml"
    path.write_text(BARRIER_SCENARIO[: BARRIER_SCENARIO.index("steps:")] + "steps:\n" + steps)
    with pytest.raises(ScenarioError, match=problem):
        load_scenario(path)


class NoCapture:
    """No packet capture in a unit test (nothing goes over the network)."""

    def __init__(self, addresses: list[str], path: Path) -> None:
        self.path = path
        self.truncated = False

    def start(self) -> None:
        """Nothing to capture."""

    def stop(self, scrub: Any) -> Path:
        return self.path


def test_after_naming_an_unknown_actor_points_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "authz.engine.bad-after.yaml"
    path.write_text(
        SCENARIO.replace("auth.engine.two-accounts", "authz.engine.bad-after")
        + "  - expect-nothing: {actor: alice, after: [mallory], match: '<message/>'}\n"
    )
    with pytest.raises(ScenarioError, match=r":12: step 2: after: no actor 'mallory'"):
        load_scenario(path)


def test_admin_step_in_a_pair_scenario_must_name_its_role(tmp_path: Path) -> None:
    path = tmp_path / "fed.engine.admin.yaml"
    text = SCENARIO.replace("auth.engine.two-accounts", "fed.engine.admin").replace(
        "actors:\n", "roles: {origin: {}, receiver: {}}\nactors:\n"
    )
    text = text.replace("account: alice}", "account: alice, role: origin}").replace(
        "account: bob}", "account: bob, role: receiver}"
    )
    path.write_text(text + "  - admin: {op: create-room, room: r@x}\n")
    with pytest.raises(ScenarioError, match="admin: say which role"):
        load_scenario(path)


class Judge(Actor):
    """``expect`` fails when its match starts with "bad" (what a broken part of a rule looks like)."""

    kind = "judge"
    protocol = "test"
    actions: ClassVar[dict[str, dict[str, Any]]] = {"expect": {"type": "object"}, "send": {"type": "object"}}
    deciding_actions: ClassVar[frozenset[str]] = frozenset({"expect"})

    async def perform(self, action: str, params: dict[str, Any]) -> Observation | None:
        self.reached_server = True
        if action == "expect" and str(params["match"]).startswith("bad"):
            raise Failed(f"{params['match']} broke the rule")
        return Observation(f"saw {params.get('match')}") if action == "expect" else None

    async def close(self) -> None:
        """Nothing to release."""


@pytest.mark.usefixtures("actors_for_tests")
def test_every_broken_part_among_consecutive_decisive_expects_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "authz.engine.parts.yaml"
    path.write_text(
        SCENARIO.replace("auth.engine.two-accounts", "authz.engine.parts")
        .replace("xmpp-raw", "judge")
        .split("steps:")[0]
        + "steps:\n"
        "  - expect: {actor: alice, match: bad-ping, decisive: true}\n"
        "  - expect: {actor: alice, match: good-version, decisive: true}\n"
        "  - expect: {actor: alice, match: bad-disco, decisive: true}\n"
        "  - send: {actor: alice, xml: x}\n"
        "  - expect: {actor: alice, match: bad-later, decisive: true}\n"
    )
    run = run_item(
        load_scenario(path), {"server": AdminTarget(tmp_path / "server.log")}, tmp_path / "ev", NoServices()
    )
    assert run.verdict.outcome is Outcome.FAIL
    assert run.verdict.reason == (
        "step 1 (line 11): bad-ping broke the rule | also step 3 (line 13): bad-disco broke the rule"
    )
    assert [s.step for s in run.steps] == [1, 2, 3]  # nothing after the run of expects


@pytest.fixture
def actors_for_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine and the loader know the test actors (recorder, judge); nothing is captured."""
    kinds = {**actor_kinds(), "recorder": Recorder, "judge": Judge}
    monkeypatch.setattr("harness.engine.actor_kinds", lambda: kinds)
    monkeypatch.setattr("harness.scenario.loader.actor_kinds", lambda: kinds)
    monkeypatch.setattr("harness.engine.PacketCapture", NoCapture)
