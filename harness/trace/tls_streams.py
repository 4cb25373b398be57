"""The servers' TLS in an item's evidence: their key-log lines, and their streams as text.

The servers the harness runs log their TLS keys (:mod:`harness.trace.keylog_shim`). Per item,
the lines each server wrote while the item ran go into the item's ``tls-keys.log`` beside the
actors', so Wireshark decrypts every TLS stream of ``traffic.pcap``. The streams that only the
servers' keys open are the ones between two servers (dialback, SASL EXTERNAL, routed stanzas):
the actors' logs show everything else. tshark follows each of them as text into
``s2s-streams.txt``, redacted like every other log.

Keys are matched to streams by the TLS client random (the second field of every key-log line,
the random of the ClientHello in the pcap); which servers logged a random tells who spoke.

tshark finds that ClientHello by its TLS heuristic, on every TCP stream whatever its port, so the
streams are followed on the ports the targets really use (a worker's servers, a second instance,
an external target), not only on XMPP's usual ones, and the item's targets need not be told
to it. Telling tshark that a target's ports carry XMPP would be worse: its XMPP dissector loses
the TLS that follows a ``<proceed/>`` sent in one segment with the stream header, as it does on
5222, which it claims by default; the text needs no XMPP decoding, so that dissector is off.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

STREAMS_FILE = "s2s-streams.txt"
KEYLOG_FILE = "tls-keys.log"
TSHARK_TIMEOUT_S = 120.0
# A stream's text is cut after this many bytes: a flood between servers must not make the item
# page unreadable; the pcap keeps everything.
MAX_STREAM_BYTES = 256 * 1024
_CLIENT_HELLO = "1"
# How tshark finds the TLS of every stream, STARTTLS or direct, on any port (module docstring).
FIND_TLS = ("--enable-heuristic", "tls_tcp", "--disable-protocol", "xmpp")
_NO_HANDSHAKE = "tshark found no TLS handshake between servers in the pcap."


@dataclass
class _Stream:
    """One TCP stream of the pcap that carries a TLS handshake between servers."""

    number: int
    client: str  # address:port
    server: str
    speakers: set[str]  # the targets whose key logs hold its secrets


def client_randoms(key_log: bytes) -> set[str]:
    """The TLS client randoms a key log holds secrets for (lower-case hex)."""
    randoms = set()
    for line in key_log.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#"):
            randoms.add(fields[1].lower())
    return randoms


def add_server_keys(
    evidence_dir: Path,
    pcap: Path,
    server_keys: dict[str, bytes],
    addresses: dict[str, str],
    redact: Callable[[str], str],
) -> dict[str, Path]:
    """Append the servers' key-log lines (target name -> lines written during the item) to the
    item's key log and write the streams between servers as text; returns the evidence files
    (name -> path) this wrote. ``addresses``: target address -> target name."""
    keys = b"".join(server_keys.values())
    if not keys:
        return {}
    keylog = evidence_dir / KEYLOG_FILE
    actors = client_randoms(keylog.read_bytes()) if keylog.exists() else set()
    with keylog.open("ab") as out:
        out.write(keys)
    evidence = {KEYLOG_FILE: keylog}
    speakers: dict[str, set[str]] = {}
    for name, lines in server_keys.items():
        for random in client_randoms(lines) - actors:
            speakers.setdefault(random, set()).add(name)
    if not speakers:
        return evidence
    path = evidence_dir / STREAMS_FILE
    path.write_text(redact(streams_text(pcap, keylog, speakers, addresses)))
    evidence[path.name] = path
    return evidence


def streams_text(pcap: Path, keylog: Path, speakers: dict[str, set[str]], addresses: dict[str, str]) -> str:
    """Every TLS stream of ``pcap`` whose client random is in ``speakers`` (random -> targets that
    logged it), decrypted with ``keylog``, as text in the order the pcap has them."""
    head = [
        "TLS streams between the item's servers, decrypted with the keys they logged (tshark).",
        f"The same with tshark: tshark -r traffic.pcap -o tls.keylog_file:{KEYLOG_FILE} {' '.join(FIND_TLS)}",
        "(what a stream carried before STARTTLS is plain text in the pcap)",
        "",
    ]
    tshark = shutil.which("tshark")
    if tshark is None:
        return "\n".join([*head, "tshark is not installed here (ci/setup.sh installs it): no text.", ""])
    try:
        streams, senders = _tls_streams(tshark, pcap, keylog, speakers)
        if not streams:
            return "\n".join([*head, _NO_HANDSHAKE, ""])
        parts = head
        for stream in streams:
            parts += _stream_text(tshark, pcap, keylog, stream, senders, addresses)
    except (OSError, RuntimeError, subprocess.TimeoutExpired, yaml.YAMLError) as exc:
        # the text is a convenience: the pcap and the key log are the evidence, and stay
        return "\n".join([*head, f"tshark could not follow the streams: {exc}", ""])
    return "\n".join(parts)


def _tshark(tshark: str, pcap: Path, keylog: Path, args: list[str]) -> str:
    out = subprocess.run(
        [tshark, "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", *FIND_TLS, *args],
        capture_output=True,
        text=True,
        timeout=TSHARK_TIMEOUT_S,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tshark exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return out.stdout


def _tls_streams(
    tshark: str, pcap: Path, keylog: Path, speakers: dict[str, set[str]]
) -> tuple[list[_Stream], dict[int, str]]:
    """The streams whose ClientHello has one of the randoms, and the sender (address:port) of
    every packet with a payload (frame number -> sender)."""
    fields = ["frame.number", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport"]
    fields += ["ip.dst", "ipv6.dst", "tcp.dstport", "tls.handshake.type", "tls.handshake.random"]
    args = ["-Y", "tcp.len > 0", "-T", "fields", *(arg for f in fields for arg in ("-e", f))]
    streams: dict[int, _Stream] = {}
    senders: dict[int, str] = {}
    for line in _tshark(tshark, pcap, keylog, args).splitlines():
        frame, number, src4, src6, sport, dst4, dst6, dport, types, randoms = (line.split("\t") + [""] * 10)[
            :10
        ]
        sender, receiver = f"{src4 or src6}:{sport}", f"{dst4 or dst6}:{dport}"
        senders[int(frame)] = sender
        if types.split(",")[0] == _CLIENT_HELLO and randoms.split(",")[0] in speakers:
            names = speakers[randoms.split(",")[0]]
            streams.setdefault(int(number), _Stream(int(number), sender, receiver, set(names)))
    return [streams[n] for n in sorted(streams)], senders


def _stream_text(
    tshark: str, pcap: Path, keylog: Path, stream: _Stream, senders: dict[int, str], addresses: dict[str, str]
) -> list[str]:
    """One stream's decrypted application data, each chunk headed by who sent it and when."""
    server = addresses.get(stream.server.rpartition(":")[0])
    clients = sorted(stream.speakers - {server}) or ["?"]
    names = {stream.client: "/".join(clients), stream.server: server or "?"}
    lines = [
        f"=== TCP stream {stream.number}: {names[stream.client]} ({stream.client}) -> "
        f"{names[stream.server]} ({stream.server})"
    ]
    follow = _tshark(tshark, pcap, keylog, ["-q", "-z", f"follow,tls,yaml,{stream.number}"])
    packets = (yaml.safe_load(follow) or {}).get("packets") or []
    if not packets:
        return [*lines, "(no application data: the handshake did not complete)", ""]
    start = float(packets[0]["timestamp"])
    budget = MAX_STREAM_BYTES
    for packet in packets:
        sender = senders.get(int(packet["packet"]), "?")
        data: bytes = packet["data"]
        lines.append(f"--- {names.get(sender, sender)}, +{float(packet['timestamp']) - start:.3f} s")
        lines.append(data[:budget].decode(errors="replace"))
        budget -= len(data)
        if budget <= 0:
            lines.append(f"(cut after {MAX_STREAM_BYTES} bytes; the pcap has the rest)")
            break
    return [*lines, ""]
