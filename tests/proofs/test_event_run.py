"""``interop run --event``: a real run of an event file whose one participant is the double,
written in the event file itself (``external:``, its CA relative to the event file). The run
writes into a folder named after the event, records the event, runs the event's scenario on
its participant, and copies no password of the event file into the run folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.results import read_results
from tests.doubles.target import DOMAIN, running_double
from tests.doubles.xmpp_server import Pki, pki_from_ca
from tests.proofs.test_can_fail import DOUBLE_ACCOUNTS

SCENARIO = "auth.sasl.wrong-password"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pki_from_ca(tmp_path_factory.mktemp("double-pki"), DOMAIN)


def test_an_event_file_runs_its_participants_and_is_recorded(pki: Pki, tmp_path: Path) -> None:
    shutil.copy(pki.ca_file, tmp_path / "double-ca.pem")
    with running_double(pki, (), accounts=dict(DOUBLE_ACCOUNTS)) as double:
        event = {
            "event": "double-day",
            "title": "A day with the double",
            "participants": [
                {
                    "external": {
                        "name": "double-event",
                        "product": "xmpp-double",
                        "version": "test",
                        "domain": double.domain,
                        "host": double.address,
                        "ports": dict(double.ports),
                        "ca_file": "double-ca.pem",
                        "accounts": [{"user": u, "password": p} for u, p in DOUBLE_ACCOUNTS.items()],
                    }
                }
            ],
            "categories": ["authentication"],
            "scenarios": [SCENARIO],
        }
        (tmp_path / "event.yaml").write_text(yaml.safe_dump(event))
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", "--event", "event.yaml", "--jobs", "1"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    [out] = (tmp_path / "reports").glob("double-day-*")  # the event names the run's folder
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = read_results(out / "results.json")
    assert "- **Event:** A day with the double (double-day)" in (out / "matrix.md").read_text()
    assert (
        '<p class="event">Event: A day with the double (double-day).</p>' in (out / "index.html").read_text()
    )
    assert run.selection["event"] == {
        "name": "double-day",
        "title": "A day with the double",
        "file": str((tmp_path / "event.yaml").resolve()),
    }
    assert run.selection["targets"] == ["double-event"]
    assert (run.selection["categories"], run.selection["scenarios"]) == (["authentication"], [SCENARIO])
    assert [(i.item_id, i.outcome) for i in run.items] == [(f"{SCENARIO}[double-event]", "pass")]
    assert [t["name"] for t in run.targets] == ["double-event"]
    leaks = [
        p
        for p in out.rglob("*")
        if p.is_file()
        for pw in DOUBLE_ACCOUNTS.values()
        if pw.encode() in p.read_bytes()
    ]
    assert leaks == []
