"""tshark follows a STARTTLS stream between servers on whatever port the receiving target listens
on: an ephemeral one (a worker's servers, an external target), and 5222, where tshark's XMPP
dissector would claim the stream and lose its TLS when the ``<proceed/>`` shares a segment with
the stream header."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
from pathlib import Path

import pytest

from harness.environment.pki import CertificateAuthority
from harness.trace.capture import PacketCapture
from harness.trace.tls_streams import FIND_TLS, STREAMS_FILE, add_server_keys
from tests.unit.test_keylog_shim import STARTTLS, STREAM_HEADER, TlsServer

ADDRESS = "127.0.0.95"  # this module's own: tests of other modules capture on their own addresses
PAYLOAD = "<db:result from='a.test' to='b.test'>dialback-key</db:result>"


def _s2s_stream(port: int, ca: Path, key_log: Path) -> None:
    """An origin server's outgoing stream: XMPP, STARTTLS, then the payload over TLS (the keys
    logged by this side alone, as a server's are by the key-log shim)."""
    with socket.create_connection((ADDRESS, port), timeout=10) as raw:
        raw.sendall(STREAM_HEADER + STARTTLS)
        seen = b""
        while b"proceed" not in seen:
            seen += raw.recv(4096)
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = False
        context.keylog_filename = str(key_log)
        with context.wrap_socket(raw) as tls:
            tls.sendall(PAYLOAD.encode())
            tls.recv(4096)


@pytest.mark.skipif(os.geteuid() != 0, reason="packet capture needs root")
@pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark follows the streams (ci/setup.sh installs it)"
)
@pytest.mark.parametrize("port", [0, 5222], ids=["ephemeral", "xmpp-client"])
def test_a_starttls_stream_is_followed_on_any_port(tmp_path: Path, port: int) -> None:
    ca = CertificateAuthority.create(tmp_path / "ca")
    receiving = TlsServer(ca.issue_server("b.test", tmp_path / "cert"), ADDRESS, port, starttls=True)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    capture = PacketCapture([ADDRESS], evidence / "traffic.pcap")
    capture.start()
    try:
        _s2s_stream(receiving.port, ca.cert_path, tmp_path / "origin-keys.log")
    finally:
        pcap = capture.stop()
        receiving.close()
    server_keys = {"origin": (tmp_path / "origin-keys.log").read_bytes()}
    add_server_keys(evidence, pcap, server_keys, {ADDRESS: "receiver"}, str)

    text = (evidence / STREAMS_FILE).read_text()
    assert f"-> receiver ({ADDRESS}:{receiving.port})" in text and PAYLOAD in text, text
    assert "<db:result from='b.test' to='a.test' type='valid'/>" in text  # the answer, decrypted too
    assert " ".join(FIND_TLS) in text  # how to see the same with tshark
