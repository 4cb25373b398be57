"""Credentials are masked in captured bytes without changing any length."""

import base64

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from harness.trace.capture import _scrubbed
from harness.trace.scrub import scrub_credentials

SECRET = "s3cr3t-Pa55"


def test_literal_secret_is_masked_in_place():
    data = f"<password>{SECRET}</password>".encode()
    out = scrub_credentials(data, [SECRET])
    assert SECRET.encode() not in out and len(out) == len(data)
    assert out == b"<password>" + b"X" * len(SECRET) + b"</password>"


def test_base64_sasl_plain_payload_is_masked():
    token = base64.b64encode(f"\0alice\0{SECRET}".encode())
    data = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + token + b"</auth>"
    out = scrub_credentials(data, [SECRET])
    assert token not in out and len(out) == len(data)
    assert b"mechanism='PLAIN'>" + b"X" * len(token) + b"</auth>" in out


def test_base64_without_credentials_is_kept():
    token = base64.b64encode(b"n,,n=alice,r=abcdefgh")
    data = b"<auth>" + token + b"</auth>"
    assert scrub_credentials(data, [SECRET]) == data


def test_scrubbed_packet_keeps_length_and_gets_a_valid_checksum():
    payload = base64.b64encode(f"\0alice\0{SECRET}".encode())
    packet = IP(src="127.0.0.1", dst="127.0.0.11") / TCP(sport=40000, dport=5222) / Raw(payload)
    packet = IP(bytes(packet))
    packet.time = 1234.5
    clean = _scrubbed(packet, lambda d: scrub_credentials(d, [SECRET]))
    assert len(bytes(clean)) == len(bytes(packet)) and clean.time == 1234.5
    assert payload not in bytes(clean)
    expected = IP(bytes(clean))
    del expected[TCP].chksum
    assert IP(bytes(expected))[TCP].chksum == clean[TCP].chksum


def test_a_short_secret_is_masked_only_where_it_is_a_credential():
    short = "pa"
    header = b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
    token = base64.b64encode(b"\0alice\0pa")
    data = header + b"<auth mechanism='PLAIN'>" + token + b"</auth><password>pa</password>"
    out = scrub_credentials(data, [short])
    assert len(out) == len(data)
    assert out.startswith(header)  # "params" keeps its "pa"
    assert token not in out and out.endswith(b"<password>XX</password>")


def test_a_long_secret_is_masked_inside_other_bytes():
    data = f"user:alice;{SECRET}trailing".encode()
    assert scrub_credentials(data, [SECRET]) == b"user:alice;" + b"X" * len(SECRET) + b"trailing"
