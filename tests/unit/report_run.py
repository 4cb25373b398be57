"""A synthetic run for the HTML report's tests: two categories, federation pairs, every verdict,
target text that tries to run script, and the evidence and scenario files on disk.

Shared by ``test_html.py`` (the markup) and ``test_html_browser.py`` (the page in Chromium).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.options import PROJECT_ROOT
from harness.profiles import Profile
from harness.report.html import item_dir
from harness.results import ItemResult, RunRecord, TargetRecord

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE = f"{SCRIPT}{IMG}"
LONG_JID = "a-very-long-localpart-" * 6 + "@prosody.test/resource-" + "x" * 60
# real scenario files (copied into the run with line anchors) and one the project does not have
AUTH_FILE = "scenarios/authentication/auth.sasl.wrong-password.yaml"
FED_FILE = "scenarios/federation/fed.s2s.message-delivery.yaml"
MISSING_FILE = "scenarios/authentication/auth.gone.yaml"
TARGETS = ("prosody", "ejabberd", "jabberd2")
PAIRS = (("prosody", "ejabberd"), ("ejabberd", "prosody"), ("prosody", "prosody"), ("ejabberd", "jabberd2"))
# ranks the targets (ranking.html): a must-pass failed, one failed over a pair, one not run everywhere
PROFILE = Profile(
    f"campus{SCRIPT}",
    f"Campus {SCRIPT}",
    {"*": {"MUST": 3, "SHOULD": 2, "MAY": 1, "POLICY": 2}, "federation": {"MUST": 4, "SHOULD": 2}},
    must_pass=["auth.sasl.wrong-password", "fed.s2s.message-delivery", "auth.nothing"],
    description=f"For a campus {IMG}",
)


def _sha(rel: str) -> str:
    path = PROJECT_ROOT / rel
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "0" * 64


def target(name: str, role: str = "server") -> TargetRecord:
    version = f"2.7.0 {IMG}" if name == "jabberd2" else "1.0"
    return TargetRecord(
        name, name, version, "local", f"{name}.test", "127.0.0.2", {"k": SCRIPT}, role, verified_here=True
    )


def item(
    scenario: str,
    names: str | tuple[str, str],
    outcome: str,
    *,
    category: str = "authentication",
    level: str = "MUST",
    reason: str = "",
    scenario_file: str = AUTH_FILE,
    evidence: bool = True,
) -> ItemResult:
    if isinstance(names, str):
        targets, suffix = [target(names)], names
    else:
        targets, suffix = [target(names[0], "origin"), target(names[1], "receiver")], "->".join(names)
    item_id = f"{scenario}[{suffix}]"
    folder = f"items/{scenario}_{suffix.replace('->', '_')}_"
    files = {"alice.xmpp.log": "alice.xmpp.log", "server.log": "server.log", "pcap": "traffic.pcap"}
    return ItemResult(
        item_id=item_id,
        scenario_id=scenario,
        title=f"{scenario} title {SCRIPT}",
        category=category,
        level=level,
        spec={"document": "RFC 6120", "section": "6.4", "quote": f"the {IMG} quote"},
        targets=targets,
        outcome=outcome,
        reason=reason,
        duration_s=0.25,
        started_at="2026-01-01T00:00:00Z",
        evidence={name: f"{folder}/{file}" for name, file in files.items()} if evidence else {},
        scenario_file=scenario_file,
        scenario_sha256=_sha(scenario_file),
        actors_connected=True,
        steps=[
            {"step": 1, "line": 25, "action": "connect", "actor": "alice", "duration_s": 0.0123},
            {"step": 2, "line": 26, "action": "expect", "actor": f"alice{SCRIPT}", "duration_s": 0.2},
        ],
        setup=[{"cause": "start", "target": targets[0].name, "duration_s": 1.5}],
        decided_by=[{"step": 2, "line": 26, "observed": f"received {HOSTILE}"}] if outcome == "pass" else [],
    )


def hostile_run() -> RunRecord:
    """Authentication on three targets (every verdict, hostile reasons, many MUST failures) and
    federation over four ordered pairs plus one single-target scenario, ranked under :data:`PROFILE`."""
    reason = f"step 2 (expect alice, line 26): expected <success/>; got {HOSTILE} from {LONG_JID}"
    items = [
        item("auth.sasl.wrong-password", "prosody", "pass"),
        item("auth.sasl.wrong-password", "ejabberd", "fail", reason=reason),
        item("auth.sasl.wrong-password", "jabberd2", "error", reason=f"target did not start {SCRIPT}"),
        item("auth.tls.plain", "prosody", "unsupported", level="SHOULD", reason="no PLAIN"),
        item("auth.tls.plain", "ejabberd", "xfail", level="SHOULD", reason="baseline E-1"),
        item("auth.tls.plain", "jabberd2", "xpass", level="SHOULD", scenario_file=MISSING_FILE),
        item("auth.nothing", "prosody", "pass", level="MAY", evidence=False),
    ]
    # more MUST failures than the old page listed (it showed 10 and said nothing of the rest)
    items += [
        item(
            f"auth.many.f{n:02d}", "jabberd2", "fail", reason=f"failure {n} {IMG}", scenario_file=MISSING_FILE
        )
        for n in range(14)
    ]
    for origin, receiver in PAIRS:
        outcome = "fail" if (origin, receiver) == ("ejabberd", "prosody") else "pass"
        items.append(
            item(
                "fed.s2s.message-delivery",
                (origin, receiver),
                outcome,
                category="federation",
                reason=f"step 2 (line 26): bounced {HOSTILE}" if outcome == "fail" else "",
                scenario_file=FED_FILE,
            )
        )
    items.append(
        item(
            "fed.dialback.verify",
            ("prosody", "ejabberd"),
            "unsupported",
            category="federation",
            level="SHOULD",
            reason="dialback off",
            scenario_file=FED_FILE,
        )
    )
    items.append(item("fed.probe", "ejabberd", "pass", category="federation", level="POLICY"))
    targets = [target(name) for name in TARGETS]
    targets[0].config_changes = {
        "files": {"prosody.cfg.lua": 3},
        "adds": [f"a {SCRIPT}"],
        "diff": "targets/prosody/packaged-config.diff",
    }
    targets[2].config_changes = {
        "files": {"c2s.xml": 9},
        "adds": [],
        "diff": "targets/jabberd2/packaged-config.diff",
    }
    return RunRecord(
        run_id="20260101T000000-demo",
        harness_version="0.1.0",
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:04:12Z",
        command=["interop", "run", "--targets", ",".join(TARGETS)],
        host={},
        selection={
            "targets": list(TARGETS),
            "categories": [],
            "scenarios": [],
            "knobs": {},
            "profile": PROFILE.to_dict(),
        },
        targets=targets,
        items=items,
    )


def write_evidence(run: RunRecord, run_dir: Path) -> None:
    """The files a run leaves: each item's stream log (a hostile stream id), an empty server log,
    a pcap; prosody's config diff (jabberd2's is missing, as after a merge)."""
    for it in run.items:
        if not it.evidence:
            continue
        folder = run_dir / item_dir(it)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alice.xmpp.log").write_text(f"S->C <stream:stream id='{HOSTILE}' from='{LONG_JID}'>\n")
        (folder / "server.log").write_text("")
        (folder / "traffic.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")
    diff = run_dir / "targets/prosody/packaged-config.diff"
    diff.parent.mkdir(parents=True, exist_ok=True)
    diff.write_text(f"+ {SCRIPT}\n")
    for name in ("results.json", "matrix.md", "junit.xml"):
        (run_dir / name).write_text("{}\n")
