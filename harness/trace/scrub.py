"""Mask credentials in captured bytes, keeping every length (so a pcap stays a valid capture).

Stream logs are redacted by the protocol that wrote them; raw packets cannot be parsed that
way, so this is the generic net: each secret, and each base64 token that decodes to something
containing a secret (SASL PLAIN, HTTP Basic), is overwritten with ``X`` of the same length.
"""

from __future__ import annotations

import base64
import binascii
import re

_BASE64_TOKEN = re.compile(rb"[A-Za-z0-9+/]{8,}={0,2}")


def scrub_credentials(data: bytes, secrets: list[str]) -> bytes:
    needles = [s.encode() for s in secrets if s]
    if not needles:
        return data
    for needle in needles:
        data = data.replace(needle, b"X" * len(needle))

    def mask(match: re.Match[bytes]) -> bytes:
        token = match.group(0)
        try:
            decoded = base64.b64decode(token + b"=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return token
        return b"X" * len(token) if any(n in decoded for n in needles) else token

    return _BASE64_TOKEN.sub(mask, data)
