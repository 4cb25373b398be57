"""The engine's evidence: server log slices are redacted even when an item never got its actors."""

from __future__ import annotations

from pathlib import Path

from harness.actors import Account
from harness.engine import run_item
from harness.scenario.loader import load_scenario
from harness.targets.running import RunningTarget
from harness.verdict import Outcome, TargetError

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
  - connect: {actor: alice}
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
