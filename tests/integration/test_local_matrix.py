"""The default matrix on the real Debian servers: complete, evidenced, redacted, cleaned up."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.integration.conftest import LOCAL_TARGETS, error_cells, missing_items


def test_every_scenario_ran_on_every_target(auth_run, auth_scenarios):
    assert missing_items(auth_run, auth_scenarios) == []


def test_no_error_cells(auth_run):
    assert error_cells(auth_run) == []


def test_exit_code_follows_must_level_verdicts(auth_run):
    must_failed = [i for i in auth_run.run.items if i.level == "MUST" and i.outcome in ("fail", "error")]
    assert auth_run.code == (1 if must_failed else 0), auth_run.stdout[-2000:]


def test_targets_report_their_versions(auth_run):
    versions = {t["name"]: t["version"] for t in auth_run.run.targets}
    assert set(versions) == set(LOCAL_TARGETS)
    assert all(v and v != "unknown" for v in versions.values()), versions


def test_reports_on_disk(auth_run):
    out = auth_run.out
    matrix = (out / "matrix.md").read_text()
    for item in auth_run.run.items:
        assert item.scenario_id in matrix
    junit = ET.parse(out / "junit.xml").getroot()
    cases = junit.findall(".//testcase")
    assert len(cases) == len(auth_run.run.items)
    allure = list((out / "allure-results").glob("*-result.json"))
    assert len(allure) == len(auth_run.run.items)
    attached = json.loads(allure[0].read_text()).get("attachments", [])
    assert attached, "allure results carry the evidence as attachments"
    index = (out / "index.html").read_text()
    for item in auth_run.run.items:
        if item.evidence:
            folder = Path(next(iter(item.evidence.values()))).parent
            assert f'href="{folder}/index.html"' in index
            assert (out / folder / "index.html").is_file()


def test_evidence_per_item(auth_run):
    for item in auth_run.run.items:
        if not item.actors_connected:
            continue
        names = set(item.evidence)
        assert "pcap" in names, item.item_id
        assert any(n.endswith(".xmpp.log") for n in names), item.item_id
        for rel in item.evidence.values():
            assert (auth_run.out / rel).is_file(), rel
        pcap = auth_run.out / item.evidence["pcap"]
        assert pcap.stat().st_size > 24, f"{item.item_id}: empty capture"


def test_passwords_never_reach_reports(auth_run):
    """Neither the password nor a SASL PLAIN payload carrying it is in any report or evidence file."""
    accounts = [
        line.split(" ", 1)
        for path in auth_run.work.glob("**/targets/*/accounts.txt")  # a worker's own folder in parallel
        for line in path.read_text().splitlines()
    ]
    assert accounts, "the run created accounts"
    needles = []
    for jid, password in accounts:
        user = jid.split("@")[0]
        needles += [
            password.encode(),
            base64.b64encode(f"\0{user}\0{password}".encode()),
            base64.b64encode(f"{jid}\0{user}\0{password}".encode()),
        ]
    leaks = []
    for path in auth_run.out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path}: {n[:6]!r}..." for n in needles if n in data]
    assert leaks == []


def test_no_process_or_mount_left(auth_run):
    marker = str(auth_run.work).encode()
    left = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    left.append(proc.name)
            except OSError:
                continue
    assert left == []
    assert str(auth_run.work) not in Path("/proc/self/mountinfo").read_text()


def test_a_knob_changes_the_verdict_and_is_recorded(tmp_path):
    """A real target's knob is the known-bad configuration: prosody without required TLS fails
    auth.tls.starttls-required, and the cell records the knob it ran with."""
    from tests.integration.conftest import interop

    work = Path(tempfile.mkdtemp(prefix="interop-test-"))
    work.chmod(0o755)
    try:
        result = interop(
            [
                "--targets",
                "prosody",
                "--scenario",
                "auth.tls.starttls-required",
                "--knob",
                "prosody:c2s_require_encryption=false",
            ],
            tmp_path / "out",
            work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (item,) = result.run.items
    assert item.outcome == "fail", item.reason
    assert "accepted" in item.reason
    assert item.targets[0].knobs["c2s_require_encryption"] == "false"
    assert result.run.selection["knobs"] == {"prosody": {"c2s_require_encryption": "false"}}


def test_as_installed_shows_what_an_adds_edit_gives_the_product(tmp_path):
    """jabberd2's catalogue entry says its certificate edit adds what the package lacks: as
    installed (--variant as-installed) it offers no STARTTLS, and the reports say what was left out."""
    from tests.integration.conftest import interop, reachable_work_dir

    args = ["--targets", "jabberd2", "--scenario", "auth.tls.starttls-offered"]
    works = [reachable_work_dir(), reachable_work_dir()]
    try:
        as_installed = interop([*args, "--variant", "as-installed"], tmp_path / "installed", works[0])
        default = interop(args, tmp_path / "default", works[1])
    finally:
        for work in works:
            shutil.rmtree(work, ignore_errors=True)
    (item,) = as_installed.run.items
    assert item.outcome == "fail" and "starttls" in item.reason, item.reason
    (target,) = as_installed.run.targets
    assert [left.split(":")[0] for left in target["config_changes"]["left_out"]] == ["c2s.xml", "s2s.xml"]
    assert (
        "left out (as installed): c2s.xml: a TLS certificate" in (as_installed.out / "matrix.md").read_text()
    )
    assert default.run.items[0].outcome == "pass", default.run.items[0].reason
    diff = (default.out / default.run.targets[0]["config_changes"]["diff"]).read_text()
    assert "pemfile=" in diff and "/etc/jabberd2/c2s.xml (as packaged" in diff
