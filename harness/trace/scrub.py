"""Mask credentials in captured bytes, keeping every length (so a pcap stays a valid capture).

Stream logs are redacted by the protocol that wrote them; raw packets cannot be parsed that
way, so this is the generic net, overwriting with ``X`` of the same length:

* each base64 token that decodes to something holding a secret (SASL PLAIN, HTTP Basic; see
  :func:`~harness.trace.redaction.holds_secret`);
* each secret standing alone where a value goes (the guard of :mod:`harness.trace.redaction`:
  ``<password>pa</password>``, a quoted value, ``password=pa``);
* each secret of at least :data:`~harness.trace.redaction.LITERAL_MIN` characters wherever it
  appears. A shorter one is not masked inside other bytes: ``urn:ietf:params`` keeps its "pa".
"""

from __future__ import annotations

import base64
import binascii
import re

from harness.trace.redaction import (
    holds_secret,
    leftover_group,
    leftover_pattern,
    long_secrets,
    text_forms,
)

_BASE64_TOKEN = re.compile(rb"[A-Za-z0-9+/]{8,}={0,2}")


def _masked(match: re.Match[bytes], group: str | None = None) -> bytes:
    start, end = match.span(group or 0)
    whole, offset = match.group(0), match.start(0)
    return whole[: start - offset] + b"X" * (end - start) + whole[end - offset :]


def scrub_credentials(data: bytes, secrets: list[str]) -> bytes:
    source = leftover_pattern(secrets)
    if source is None:  # no secret to look for
        return data

    def mask_token(match: re.Match[bytes]) -> bytes:
        token = match.group(0)
        try:
            decoded = base64.b64decode(token + b"=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return token
        return _masked(match) if holds_secret(decoded, secrets) else token

    data = _BASE64_TOKEN.sub(mask_token, data)
    leftover = re.compile(source.encode("utf-8"), re.MULTILINE)
    data = leftover.sub(lambda m: _masked(m, leftover_group(m)), data)
    for form in text_forms(long_secrets(secrets)):
        needle = form.encode("utf-8")
        data = data.replace(needle, b"X" * len(needle))
    return data
