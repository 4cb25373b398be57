"""The key-log shim compiled from its source, loaded into a real OpenSSL program (Python's ssl
module runs OpenSSL 3 too), and the evidence made from what it logs: the servers' key-log lines
in the item's tls-keys.log and their streams as text."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.environment.pki import CertificateAuthority, IssuedCertificate
from harness.targets.docker import DockerTarget
from harness.targets.local import LocalTarget
from harness.targets.spec import load_spec
from harness.trace import keylog_shim
from harness.trace.capture import PacketCapture
from harness.trace.keylog_shim import BUILD_SCRIPT, KEYLOG_VARIABLE, complete_lines
from harness.trace.tls_streams import STREAMS_FILE, add_server_keys, client_randoms

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "127.0.0.93"  # this module's own: tests of other modules capture on their own addresses
XMPP_S2S_PORT = 5269  # where tshark's XMPP dissector looks for STARTTLS
STREAM_HEADER = (
    b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

# A TLS client like a server's outgoing s2s connection: optional XMPP STARTTLS, then TLS, sends
# argv[3], reads one answer. No keylog_filename: any key the file gets comes from the shim.
CLIENT = r"""
import socket, ssl, sys
address, port, payload, starttls = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4] == "1"
raw = socket.create_connection((address, port), timeout=10)
if starttls:
    raw.sendall(HEADER + STARTTLS)
    seen = b""
    while b"proceed" not in seen:
        seen += raw.recv(4096)
context = ssl.create_default_context(cafile=sys.argv[5])
context.check_hostname = False
with context.wrap_socket(raw) as tls:
    tls.sendall(payload)
    tls.recv(4096)
""".replace("HEADER", repr(STREAM_HEADER)).replace("STARTTLS", repr(STARTTLS))


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim, compiled from the project's source by the script ci/setup.sh runs."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc builds the shim (ci/setup.sh installs it)")
    out = tmp_path_factory.mktemp("shim") / "sslkeylog.so"
    subprocess.run(["sh", str(BUILD_SCRIPT), str(out)], check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[IssuedCertificate, Path]:
    ca = CertificateAuthority.create(tmp_path_factory.mktemp("ca"))
    return ca.issue_server("server.test", tmp_path_factory.mktemp("cert")), ca.cert_path


class TlsServer:
    """A TLS server in this process (no key log of its own) answering each connection once."""

    def __init__(self, cert: IssuedCertificate, address: str, port: int, starttls: bool) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert.cert_path, cert.key_path)
        self.listener = socket.create_server((address, port), reuse_port=False)
        self.port = self.listener.getsockname()[1]
        self.starttls = starttls
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                if self.starttls:
                    seen = b""
                    while STARTTLS not in seen:
                        seen += conn.recv(4096)
                    conn.sendall(STREAM_HEADER + b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                try:
                    with self.context.wrap_socket(conn, server_side=True) as tls:
                        self.received.append(tls.recv(4096))
                        tls.sendall(b"<db:result from='b.test' to='a.test' type='valid'/>")
                except (OSError, ssl.SSLError):
                    continue

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept() in the thread (close alone does not)
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(cert: tuple[IssuedCertificate, Path]) -> Iterator[TlsServer]:
    tls = TlsServer(cert[0], "127.0.0.1", 0, starttls=False)
    yield tls
    tls.close()


def run_client(
    shim: Path | None,
    key_log: Path | None,
    port: int,
    ca: Path,
    payload: str = "hello",
    *,
    address: str = "127.0.0.1",
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", KEYLOG_VARIABLE, "SSLKEYLOGFILE")}
    if shim is not None and key_log is not None:
        env |= keylog_shim.environment(shim, key_log)
    starttls = "1" if port == XMPP_S2S_PORT else "0"
    argv = [sys.executable, "-c", CLIENT, address, str(port), payload, starttls, str(ca)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)


def test_a_client_under_the_shim_logs_its_traffic_secrets(
    shim: Path, server: TlsServer, cert: tuple[IssuedCertificate, Path], tmp_path: Path
) -> None:
    key_log = tmp_path / "keys.log"
    run_client(shim, key_log, server.port, cert[1])
    lines = key_log.read_text().splitlines()
    labels = {line.split()[0] for line in lines}
    assert {"CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "CLIENT_HANDSHAKE_TRAFFIC_SECRET"} <= labels
    assert all(len(line.split()) == 3 and len(line.split()[1]) == 64 for line in lines), lines
    assert len(client_randoms(key_log.read_bytes())) == 1  # one handshake, one client random
    assert server.received == [b"hello"]


def test_without_the_variable_the_shim_writes_nothing_and_changes_nothing(
    shim: Path, server: TlsServer, cert: tuple[IssuedCertificate, Path], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != KEYLOG_VARIABLE} | {"LD_PRELOAD": str(shim)}
    argv = [sys.executable, "-c", CLIENT, "127.0.0.1", str(server.port), "plain", "0", str(cert[1])]
    subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True, cwd=tmp_path)
    assert server.received == [b"plain"] and list(tmp_path.iterdir()) == []


def test_many_processes_append_whole_lines(
    shim: Path, server: TlsServer, cert: tuple[IssuedCertificate, Path], tmp_path: Path
) -> None:
    """Several processes share one key log (as a server's processes do): no line is torn."""
    key_log = tmp_path / "keys.log"
    threads = [
        threading.Thread(target=run_client, args=(shim, key_log, server.port, cert[1])) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = key_log.read_text().splitlines()
    assert len(client_randoms(key_log.read_bytes())) == 8
    assert len(lines) == 8 * 5  # TLS 1.3: two handshake, two traffic secrets and the exporter
    assert all(len(line.split()) == 3 for line in lines)


def test_complete_lines_drops_a_line_cut_by_the_cursor_or_still_being_written() -> None:
    assert complete_lines(b"A 1 2\nB 3 4\n", mid_file=False) == b"A 1 2\nB 3 4\n"
    # read from one byte before the cursor: a newline there means the cursor was at a line start
    assert complete_lines(b"\nB 3 4\n", mid_file=True) == b"B 3 4\n"
    assert complete_lines(b" 2\nB 3 4\nC 5", mid_file=True) == b"B 3 4\n"
    assert complete_lines(b"C 5", mid_file=False) == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="packet capture needs root")
@pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark follows the streams (ci/setup.sh installs it)"
)
def test_streams_only_the_servers_keys_open_are_written_as_redacted_text(
    shim: Path, cert: tuple[IssuedCertificate, Path], tmp_path: Path
) -> None:
    """A server's outgoing s2s stream (STARTTLS, then TLS): its keys come from the shim alone, and
    tshark turns the pcap into text; the actors' keys already in the item's key log stay."""
    receiving = TlsServer(cert[0], ADDRESS, XMPP_S2S_PORT, starttls=True)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "tls-keys.log").write_text(f"CLIENT_RANDOM {'ab' * 32} {'cd' * 48}\n")  # an actor's
    server_log = tmp_path / "origin-keys.log"
    capture = PacketCapture([ADDRESS], evidence / "traffic.pcap")
    capture.start()
    try:
        payload = "<db:result from='a.test' to='b.test'>dialback-key</db:result><message><body>s3cret</body></message>"
        run_client(shim, server_log, XMPP_S2S_PORT, cert[1], payload, address=ADDRESS)
    finally:
        pcap = capture.stop()
        receiving.close()
    server_keys = {"origin": server_log.read_bytes()}
    written = add_server_keys(
        evidence, pcap, server_keys, {ADDRESS: "receiver"}, lambda text: text.replace("s3cret", "[redacted]")
    )

    assert set(written) == {"tls-keys.log", STREAMS_FILE}
    keys = (evidence / "tls-keys.log").read_text()
    assert keys.startswith("CLIENT_RANDOM abab") and keys.endswith(server_log.read_text())
    text = (evidence / STREAMS_FILE).read_text()
    assert "origin (127.0.0.1:" in text and f"-> receiver ({ADDRESS}:{XMPP_S2S_PORT})" in text, text
    assert "<db:result from='a.test' to='b.test'>dialback-key</db:result>" in text
    assert "<db:result from='b.test' to='a.test' type='valid'/>" in text  # the answer, decrypted too
    assert "s3cret" not in text and "[redacted]" in text


def test_no_server_keys_no_evidence_and_actor_only_sessions_no_text(tmp_path: Path) -> None:
    """A single-server item: the server logs the same sessions as the actors, so nothing but the
    merged keys is written (and tshark is not started)."""
    actor_line = f"CLIENT_RANDOM {'ab' * 32} {'cd' * 48}\n"
    (tmp_path / "tls-keys.log").write_text(actor_line)
    assert add_server_keys(tmp_path, tmp_path / "traffic.pcap", {"t": b""}, {}, str) == {}
    written = add_server_keys(tmp_path, tmp_path / "traffic.pcap", {"t": actor_line.encode()}, {}, str)
    assert set(written) == {"tls-keys.log"} and not (tmp_path / STREAMS_FILE).exists()
    assert (tmp_path / "tls-keys.log").read_text() == actor_line * 2


# -- how the drivers give the shim to the server processes ------------------------------------


class RecordingTarget(LocalTarget):
    """A local target whose processes are only recorded with their environment."""

    def __init__(self, *args: Any, loads: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loads = loads
        self.launched: dict[str, dict[str, str]] = {}

    def _shim_loads(self) -> bool:
        return self.loads

    def _launch(self, proc: dict[str, Any], argv: list[str], env: dict[str, str]) -> Any:
        self.launched[proc["name"]] = env
        return proc["name"]


def recording_target(tmp_path: Path, **kwargs: Any) -> RecordingTarget:
    spec = load_spec(ROOT / "fixtures" / "targets" / "jabberd2")
    env = SimpleNamespace(work_dir=tmp_path, ca=SimpleNamespace(cert_path=tmp_path / "ca.crt"))
    target = RecordingTarget(spec, "jabberd2", "jabberd2.test", "127.0.0.94", {}, env, **kwargs)  # type: ignore[arg-type]
    target.run_dir.mkdir(parents=True)
    target._context = {"run_dir": str(target.run_dir)}  # what the processes' argv need
    return target


def test_every_server_process_gets_the_shim_but_one_that_opts_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "built" / "sslkeylog.so"
    built.parent.mkdir()
    built.write_bytes(b"\x7fELF")
    monkeypatch.setattr(keylog_shim, "BUILT_SHIM", built)
    target = recording_target(tmp_path)
    target.key_log = target._place_keylog_shim()
    assert target.key_log == target.run_dir / "keylog" / "tls-keys.log"
    assert (
        target.run_dir / "keylog" / "sslkeylog.so"
    ).read_bytes() == b"\x7fELF"  # same path under every driver
    processes = [dict(p) for p in target.spec.processes]
    processes[0]["keylog"] = False  # a process the shim must not be loaded into
    for proc in processes:
        target._start_process({k: v for k, v in proc.items() if k != "wait_tcp"}, deadline=0)
    first, *others = (target.launched[p["name"]] for p in processes)
    assert "LD_PRELOAD" not in first and KEYLOG_VARIABLE not in first
    for env in others:
        assert env["LD_PRELOAD"] == str(target.run_dir / "keylog" / "sslkeylog.so")
        assert env[KEYLOG_VARIABLE] == str(target.key_log)


def test_no_shim_where_it_is_not_built_or_cannot_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keylog_shim, "BUILT_SHIM", tmp_path / "not-built.so")
    assert recording_target(tmp_path / "a")._place_keylog_shim() is None
    monkeypatch.setattr(keylog_shim, "BUILT_SHIM", Path(__file__))  # any file: "built"
    assert recording_target(tmp_path / "b", loads=False)._place_keylog_shim() is None
    assert (
        recording_target(tmp_path / "c").key_log_size() == 0
        and recording_target(tmp_path / "d").key_log_slice(9) == b""
    )


def test_docker_loads_the_shim_only_into_images_built_on_the_harness_base() -> None:
    """The shim is compiled against this machine's glibc: pulled images may have another."""
    built = DockerTarget.__new__(DockerTarget)
    built.spec = load_spec(ROOT / "fixtures" / "targets" / "prosody")
    pulled = DockerTarget.__new__(DockerTarget)
    pulled.spec = load_spec(ROOT / "fixtures" / "targets" / "prosody-image")
    assert built._shim_loads() and not pulled._shim_loads()
