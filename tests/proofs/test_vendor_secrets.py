"""A vendor's credentials stay theirs: a run against an external target (the double, with the
accounts of its target file) writes no TLS key log and no password of the target file into any
artifact, so no one holding the run folder can read the SASL exchanges; ``--keylog`` writes the
key logs on request and every report says so."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from harness.results import read_results
from tests.doubles.target import DOMAIN, running_double
from tests.doubles.xmpp_server import Pki, pki_from_ca
from tests.proofs.test_can_fail import DOUBLE_ACCOUNTS, interop_on_double

# SASL PLAIN and SCRAM logins over TLS, a wrong password, and in-band data with the password
SCENARIOS = ("auth.sasl.plain-over-tls", "auth.sasl.scram-sha-1", "auth.sasl.wrong-password")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pki_from_ca(tmp_path_factory.mktemp("double-pki"), DOMAIN)


def _secret_forms() -> list[bytes]:
    """Each password as text and inside the SASL PLAIN blob of its account, in base64."""
    forms = []
    for user, password in DOUBLE_ACCOUNTS.items():
        forms.append(password.encode())
        for authzid in ("", f"{user}@{DOMAIN}"):
            forms.append(base64.b64encode(f"{authzid}\0{user}\0{password}".encode()))
    return forms


def _run(pki: Pki, tmp_path: Path, *args: str) -> Path:
    selection = [arg for s in SCENARIOS for arg in ("--scenario", s)]
    with running_double(pki, (), accounts=dict(DOUBLE_ACCOUNTS)) as target:
        done, out = interop_on_double(target, pki, "vendor", tmp_path, *selection, *args)
    assert (out / "results.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    run = read_results(out / "results.json")
    assert {i.outcome for i in run.items} == {"pass"}, [(i.item_id, i.reason) for i in run.items]
    return out


def test_no_key_log_and_no_password_of_the_target_file_in_any_artifact(pki: Pki, tmp_path: Path) -> None:
    out = _run(pki, tmp_path)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".pcap" for p in files)  # the TLS traffic is there, encrypted
    assert [p for p in files if p.name == "tls-keys.log"] == []
    leaks = [(p, form) for p in files for form in _secret_forms() if form in p.read_bytes()]
    assert leaks == []
    assert "No TLS key log was written for double-vendor" in (out / "matrix.md").read_text()


def test_keylog_writes_them_on_request_and_the_reports_warn(pki: Pki, tmp_path: Path) -> None:
    out = _run(pki, tmp_path, "--keylog")
    assert list(out.rglob("tls-keys.log"))
    assert read_results(out / "results.json").selection["keylog"] is True
    assert "WARNING, key logs" in (out / "matrix.md").read_text()
    assert 'class="key-log warning"' in (out / "index.html").read_text()
