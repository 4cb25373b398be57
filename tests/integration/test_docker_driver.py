"""The docker driver on the real engine (started by ci/setup.sh): the same verdicts as the local
driver for every category, nothing left behind after a run, Ctrl-C or ``interop targets clean``,
``interop targets up``/``down``, and an engine reached through ``DOCKER_HOST``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import pytest
import yaml

from harness.resources import CATALOGUE
from harness.results import read_results
from harness.targets import docker_images
from harness.targets.docker import OWNER_LABEL, RUN_LABEL
from tests.integration.conftest import ROOT, CategoryRuns, InteropRun, interop, interop_cli

LOCAL_RUNS = {
    "authentication": "auth_run",
    "authorization": "authz_run",
    "federation": "fed_run",
    "robustness": "robust_run",
}


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """The engine ci/setup.sh starts; its absence is a failure of the setup, not a skip."""
    client = docker.from_env()
    assert client.ping(), "no docker engine answers: ci/setup.sh starts one"
    return client


def labelled(client: docker.DockerClient, **labels: str) -> list[str]:
    """Containers, networks and volumes of the harness (all runs, or those with ``labels``)."""
    wanted = [f"{k}={v}" for k, v in labels.items()] or [RUN_LABEL]
    # the summaries only: a container removed meanwhile (a worker still stopping) is just gone
    summaries = client.api.containers(all=True, filters={"label": wanted})
    found = [f"container {c['Names'][0].lstrip('/')}" for c in summaries]
    found += [f"network {n.name}" for n in client.networks.list(filters={"label": wanted})]
    found += [f"volume {v.name}" for v in client.volumes.list(filters={"label": wanted})]
    return found


@pytest.fixture(scope="session", params=sorted(LOCAL_RUNS))
def both_drivers(
    request: pytest.FixtureRequest, category_runs: CategoryRuns, engine: docker.DockerClient
) -> dict[str, InteropRun]:
    """One category run with the local driver (the session's) and the same with docker."""
    local = request.getfixturevalue(LOCAL_RUNS[request.param])
    return {"local": local, "docker": category_runs.get((request.param, "docker", None))}


def test_both_drivers_give_the_same_verdict_for_every_item(both_drivers) -> None:
    verdicts = {
        name: {i.item_id: (i.outcome, i.reason) for i in run.run.items} for name, run in both_drivers.items()
    }
    assert set(verdicts["docker"]) == set(verdicts["local"]), "both drivers run the same items"
    differ = [
        f"{item}: local {verdicts['local'][item]} / docker {verdicts['docker'][item]}"
        for item in sorted(verdicts["local"])
        if verdicts["local"][item][0] != verdicts["docker"][item][0]
    ]
    assert differ == [], "\n".join(differ)
    assert both_drivers["docker"].code == both_drivers["local"].code


def test_docker_items_ran_in_containers_of_the_same_packages(both_drivers, engine) -> None:
    docker_run = both_drivers["docker"]
    assert {t["driver"] for t in docker_run.run.targets} == {"docker"}
    versions = {
        name: {t["name"]: t["version"] for t in run.run.targets} for name, run in both_drivers.items()
    }
    assert versions["docker"] == versions["local"], "the images hold the packages the local driver runs"
    assert all(t.get("verified_here") is True for t in docker_run.run.targets)
    assert not [i for i in docker_run.run.items if i.outcome == "error"]
    # evidence as under the local driver: the servers' log slices, read from the engine and volume
    logged = [i for i in docker_run.run.items if i.actors_connected]
    assert logged and all(any(".log" in key or ".out" in key for key in i.evidence) for i in logged)
    owner = {OWNER_LABEL: f"{socket.gethostname()}:{docker_run.pid}"}
    assert labelled(engine, **owner) == [], "a finished run leaves no container, network or volume"


def _spawn(work: Path, *args: str) -> subprocess.Popen[bytes]:
    """``interop ARGS`` in a child process that goes on while the test watches it, in a process
    group of its own (with its workers)."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=ROOT,
        env=dict(os.environ, INTEROP_WORKDIR=str(work)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _owned_by(child: subprocess.Popen[bytes]) -> dict[str, str]:
    """The label of everything the harness process ``child`` makes in the engine."""
    return {OWNER_LABEL: f"{socket.gethostname()}:{child.pid}"}


def _start_docker_run(tmp_path: Path, work: Path) -> subprocess.Popen[bytes]:
    targets = ["--driver", "docker", "--targets", "prosody,ejabberd"]
    return _spawn(work, "run", *targets, "--scenario", "auth.*", "--out", str(tmp_path / "out"))


def _wait_for_containers(engine: docker.DockerClient, child: subprocess.Popen[bytes], count: int) -> None:
    """Until the child's run has ``count`` running containers (both targets' servers are up)."""
    owner = "{}={}".format(*next(iter(_owned_by(child).items())))
    deadline = time.monotonic() + 300
    while len(engine.containers.list(filters={"label": owner})) < count:
        assert child.poll() is None, child.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run's containers did not come up within 300 s"
        time.sleep(0.2)  # polling for the child's progress, not a verdict


def test_ctrl_c_leaves_no_container(tmp_path: Path, work_dir: Path, engine) -> None:
    child = _start_docker_run(tmp_path, work_dir)
    try:
        _wait_for_containers(engine, child, 4)  # prosody: tool + server; ejabberd: tool + server
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    assert labelled(engine, **_owned_by(child)) == [], output.decode()[-3000:]


def test_after_sigkill_targets_clean_removes_what_the_run_left(
    tmp_path: Path, work_dir: Path, engine
) -> None:
    child = _start_docker_run(tmp_path, work_dir)
    try:
        _wait_for_containers(engine, child, 4)
        os.killpg(child.pid, signal.SIGKILL)  # the run and its workers: no clean-up can run
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    left = labelled(engine, **_owned_by(child))
    assert len([x for x in left if x.startswith("container ")]) >= 4, left
    clean = interop_cli("targets", "clean")
    assert clean.returncode == 0, clean.stderr
    assert set(left) <= set(clean.stdout.splitlines()), clean.stdout
    assert labelled(engine, **_owned_by(child)) == []


def test_targets_up_serves_clients_until_down(tmp_path: Path, work_dir: Path, engine) -> None:
    state = tmp_path / "state"
    up = _spawn(
        work_dir,
        "targets",
        "up",
        "--driver",
        "docker",
        "--targets",
        "prosody,jabberd2",
        "--accounts",
        "alice,bob",  # what the clients below use (without it, enough for every scenario)
        "--state",
        str(state),
    )
    try:
        deadline = time.monotonic() + 300
        while not (state / "topology.json").exists():
            assert up.poll() is None, up.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "targets up did not finish within 300 s"
            time.sleep(0.2)  # polling for the child's progress, not a verdict
        info = json.loads((state / "topology.json").read_text())
        assert oct((state / "topology.json").stat().st_mode & 0o777) == "0o600"
        assert {t["name"] for t in info["targets"]} == {"prosody", "jabberd2"}
        assert all(
            [a["jid"].split("@")[0] for a in t["accounts"]] == ["alice", "bob"] for t in info["targets"]
        )
        # people's clients: here the harness itself, through the external driver's target files
        out = tmp_path / "clients"
        argv = ["run", "--out", str(out)]
        for t in info["targets"]:
            argv += ["--target-file", t["target_file"]]
        argv += [
            "--scenario",
            "auth.sasl.wrong-password",
            "--scenario",
            "auth.bind.server-generated-resource",
        ]
        clients = interop_cli(*argv)
        results = json.loads((out / "results.json").read_text())
        verdicts = {i["item_id"]: i["outcome"] for i in results["items"]}
        assert verdicts == {
            f"{s}[{t}]": "pass"
            for s in ("auth.sasl.wrong-password", "auth.bind.server-generated-resource")
            for t in ("prosody", "jabberd2")
        }, clients.stdout[-3000:]
        down = interop_cli("targets", "down", "--state", str(state))
        assert down.returncode == 0, down.stderr
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
    assert labelled(engine, **_owned_by(up)) == []
    assert not (state / "topology.json").exists() and not list(state.glob("*.target.yaml"))


class EngineProxy:
    """A TCP listener on loopback that forwards to the local engine's socket, as a remote engine
    is reached (``DOCKER_HOST=tcp://...``); it keeps what clients sent, to check the requests."""

    def __init__(self, socket_path: str = "/var/run/docker.sock") -> None:
        self.socket_path = socket_path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.socket_path)
            threading.Thread(target=self._pipe, args=(client, engine, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(engine, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    with self._lock:
                        self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_the_driver_works_through_docker_host_without_sharing_files(
    tmp_path: Path, work_dir: Path, engine
) -> None:
    proxy = EngineProxy()
    try:
        run = interop(
            ["--driver", "docker", "--targets", "prosody", "--scenario", "auth.sasl.scram-sha-1"],
            tmp_path / "out",
            work_dir,
            timeout=600,
            env={"DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}"},
        )
    finally:
        proxy.close()
    assert run.run is not None, run.stdout[-3000:]
    assert [i.outcome for i in run.run.items] == ["pass"], run.stdout[-3000:]
    assert proxy.connections > 0, "the run reached the engine through DOCKER_HOST"
    # a remote engine cannot see this machine's files: every mount is a named volume
    creates = [json.loads(body) for body in _request_bodies(bytes(proxy.sent), b"/containers/create")]
    assert creates, "containers were created through the proxy"
    binds = [b for c in creates for b in (c.get("HostConfig") or {}).get("Binds") or []]
    assert binds and not [b for b in binds if b.startswith("/")], binds


def _request_bodies(stream: bytes, path: bytes) -> list[bytes]:
    """The JSON bodies of the HTTP requests to ``path`` in a recorded client stream."""
    bodies = []
    for head in stream.split(b"POST ")[1:]:
        request_line, _, rest = head.partition(b"\r\n")
        if path not in request_line:
            continue
        headers, _, body = rest.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        bodies.append(body[:length])
    return bodies


# enough items to share between two shards (the flow is what this checks, not the product)
VENDOR_SCENARIOS = ("auth.sasl.wrong-password", "auth.sasl.plain-over-tls", "auth.tls.starttls-*")


def test_a_vendor_image_from_its_own_catalogue_runs_sharded_and_merges_into_one_run(
    tmp_path: Path, work_dir: Path, engine
) -> None:
    """The vendor CI flow of docs/vendors.md: the vendor's CI builds its image (here: prosody's
    Dockerfile under a vendor's name), the entry lives in the vendor's own catalogue folder and
    names the image without build or pull, two shards run and `interop merge` makes one run of
    them, equal to the unsharded run."""
    image = "example-vendor/xmppd:ci"
    base = docker_images.base_image(engine)
    engine.images.build(
        path=str(CATALOGUE / "prosody"), tag=image, buildargs={"BASE": base}, network_mode="host", rm=True
    )
    entry = yaml.safe_load((CATALOGUE / "prosody" / "target.yaml").read_text())
    entry.update(product="xmppd", title="xmppd (a vendor's image)", docker={"image": image}, verified=[])
    del entry["package"]
    (tmp_path / "vendor" / "xmppd").mkdir(parents=True)
    (tmp_path / "vendor" / "xmppd" / "target.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    args = ["--driver", "docker", "--catalogue", str(tmp_path / "vendor"), "--targets", "xmppd"]
    args += [arg for pattern in VENDOR_SCENARIOS for arg in ("--scenario", pattern)]
    runs = {  # each run its own work dir (INTEROP_WORKDIR)
        shard: interop([*args, "--shard", shard], tmp_path / f"s{shard[0]}", work_dir / shard[0], timeout=900)
        for shard in ("1/2", "2/2")
    }
    whole = interop(args, tmp_path / "whole", work_dir / "whole", timeout=900)
    assert whole.run is not None and all(r.run is not None for r in runs.values()), whole.stdout[-3000:]
    assert len(whole.run.items) >= 4 and not [i for i in whole.run.items if i.outcome == "error"]
    assert whole.run.targets[0]["verified_here"] is False and whole.run.targets[0]["product"] == "xmppd"
    assert "NOT VERIFIED HERE" in (tmp_path / "whole" / "matrix.md").read_text()
    merged_out = tmp_path / "merged"
    merge = interop_cli(
        "merge", "--out", str(merged_out), *(str(r.out / "results.json") for r in runs.values())
    )
    assert merge.returncode == whole.code, merge.stdout + merge.stderr
    merged = read_results(merged_out / "results.json")
    assert sorted((i.item_id, i.outcome) for i in merged.items) == sorted(
        (i.item_id, i.outcome) for i in whole.run.items
    )
    assert all(len(r.run.items) < len(whole.run.items) for r in runs.values())
