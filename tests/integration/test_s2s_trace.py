"""Readable federation traces on real servers: one pair, one scenario. The servers run with the
key-log shim, the item's tls-keys.log then decrypts their stream to each other, and the item's
s2s-streams.txt shows it in clear."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.engine import run_item
from harness.scenario.loader import load_scenario
from harness.targets.local import LocalTarget
from harness.topology import Selection, Topology
from harness.trace import keylog_shim
from harness.trace.tls_streams import STREAMS_FILE, client_randoms
from tests.integration.conftest import ROOT

pytestmark = [
    pytest.mark.skipif(keylog_shim.built_shim() is None, reason="ci/setup.sh builds the key-log shim"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="ci/setup.sh installs tshark"),
]


def mapped_files(target: LocalTarget) -> str:
    """Every file mapped into the target's processes (the process groups the driver started)."""
    groups = {popen.pid for popen in target._children}  # each one leads its own session
    maps = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getpgid(int(proc.name)) in groups:
                maps.append((proc / "maps").read_text())
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
    return "".join(maps)


def follow(pcap: Path, keylog: Path, stream: int) -> str:
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-o",
            f"tls.keylog_file:{keylog}",
            "-q",
            "-z",
            f"follow,tls,ascii,{stream}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def test_the_stream_between_two_servers_decrypts_with_the_items_key_log(tmp_path, work_dir, monkeypatch):
    monkeypatch.setenv("INTEROP_WORKDIR", str(work_dir))
    scenario = load_scenario(ROOT / "scenarios" / "federation" / "fed.s2s.message-delivery.yaml")
    topology = Topology(Selection(targets=["prosody", "ejabberd"]), ROOT / "fixtures" / "targets", tmp_path)
    try:
        targets = topology.targets({"origin": "prosody", "receiver": "ejabberd"}, reset=True)
        run = run_item(scenario, targets, tmp_path / "item", topology)
        # a session between the two servers is in both their key logs, one with an actor in one
        origin_keys, receiver_keys = (client_randoms(t.key_log_slice(0)) for t in targets.values())
        # both servers run OpenSSL 3 from the distribution, with the shim loaded next to it
        for target in targets.values():
            assert isinstance(target, LocalTarget)
            mapped = mapped_files(target)
            assert "libssl.so.3" in mapped and "sslkeylog.so" in mapped, target.name
    finally:
        topology.close()
    assert run.verdict.outcome.value == "pass", run.verdict.reason
    evidence = tmp_path / "item"
    assert run.evidence[STREAMS_FILE] == evidence / STREAMS_FILE
    text = (evidence / STREAMS_FILE).read_text()
    assert "=== TCP stream" in text and "--- prosody" in text and "--- ejabberd" in text, text[:2000]
    assert "<db:result" in text or "<message" in text, text[:2000]

    # tshark itself, with the item's key log as a user would give it: the s2s stream decrypts,
    # and with the actors' lines alone it does not
    keylog, pcap = evidence / "tls-keys.log", evidence / "traffic.pcap"
    stream = int(text.split("=== TCP stream ", 1)[1].split(":", 1)[0])
    clear = follow(pcap, keylog, stream)
    assert "<message" in clear or "<db:result" in clear, clear[:2000]
    between_servers = origin_keys & receiver_keys
    actors_only = tmp_path / "actors-only.log"
    lines = keylog.read_text().splitlines(keepends=True)
    actors_only.write_text("".join(line for line in lines if not set(line.split()) & between_servers))
    assert between_servers and client_randoms(actors_only.read_bytes())  # both kinds were there
    hidden = follow(pcap, actors_only, stream)
    assert "<message" not in hidden and "<db:result" not in hidden
