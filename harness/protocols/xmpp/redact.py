"""Keep credentials out of XMPP traces (stream logs and server log slices).

SASL payloads are base64, so a plain text search for the password would miss them: the payloads
of ``<auth>``, ``<response>``, ``<success>`` and ``<challenge>`` (SASL namespace, any prefix or
quoting style) are decoded and

* replaced by ``[redacted: N bytes, contains credentials]`` when the decoded payload holds a
  secret (:func:`~harness.trace.redaction.holds_secret`), belongs to a PLAIN ``<auth>``, or
  looks like a PLAIN message (``authzid NUL user NUL password``, i.e. at least two NUL bytes);
* re-encoded with the SCRAM proof blanked (``p=[redacted]``) when it is a SCRAM client-final
  message: the proof is not the password but lets anyone who has the exchange brute-force it;
* left exactly as they were otherwise (client-first, server-first, server-final messages).

The content of XEP-0077 and XEP-0078 ``<password>`` and ``<digest>`` elements, and the value of
a data form's ``password`` field (XEP-0077 extensible registration), is redacted even when the
secret is not known to us. Then the protocol-neutral passes of :mod:`harness.trace.redaction`
run: admin command lines, the guard for secrets left standing alone, long secrets anywhere.
Nothing else is replaced: a short password does not mangle namespaces or other text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from harness.trace.redaction import REDACTED, holds_secret, redact_text

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

_SASL_ELEMENT = re.compile(
    r"<(?P<prefix>[A-Za-z_][\w.-]*:)?(?P<name>auth|response|success|challenge)"
    r"(?P<attrs>\s[^<>]*?)?(?<!/)>"
    r"(?P<payload>[^<]*)"
    r"</(?P=prefix)?(?P=name)\s*>"
)
_XMLNS = re.compile(r"""xmlns(?::(?P<prefix>[\w.-]+))?\s*=\s*(?P<q>['"])(?P<ns>.*?)(?P=q)""")
_MECHANISM = re.compile(r"""\bmechanism\s*=\s*(?P<q>['"])(?P<value>.*?)(?P=q)""")
_SCRAM_PROOF = re.compile(rb"(^|,)p=[^,]*")
_CREDENTIAL_ELEMENT = re.compile(
    r"<(?P<prefix>[A-Za-z_][\w.-]*:)?(?P<name>password|digest)(?P<attrs>\s[^<>]*?)?(?<!/)>"
    r"(?P<content>[^<]+)"
    r"</(?P=prefix)?(?P=name)\s*>"
    # a data form's password field (XEP-0077 extensible registration, XEP-0133 add-user)
    r"""|<(?:[A-Za-z_][\w.-]*:)?field\s[^<>]*?\bvar\s*=\s*(?P<q>['"])password(?P=q)[^<>]*>"""
    r"\s*<(?:[A-Za-z_][\w.-]*:)?value\s*>(?P<value>[^<]+)<"
)


def _declared_namespace(attrs: str, prefix: str | None) -> str | None:
    """The namespace the element's own attributes declare for its prefix (None: inherited)."""
    for decl in _XMLNS.finditer(attrs or ""):
        if (decl.group("prefix") or None) == prefix:
            return decl.group("ns")
    return None


def _redact_sasl_payload(match: re.Match[str], secrets: list[str]) -> str:
    prefix = match.group("prefix")
    attrs = match.group("attrs") or ""
    ns = _declared_namespace(attrs, prefix[:-1] if prefix else None)
    if ns is not None and ns != NS_SASL:
        return match.group(0)  # some other protocol's <auth>/<response>: literal pass only
    payload = match.group("payload")
    compact = "".join(payload.split())
    if compact in ("", "="):
        return match.group(0)
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)  # not base64 (a malformed-input check): the literal pass applies
    mechanism = _MECHANISM.search(attrs)
    is_plain = (
        match.group("name") == "auth"
        and mechanism is not None
        and mechanism.group("value").upper() == "PLAIN"
    )
    if holds_secret(decoded, secrets) or is_plain or decoded.count(b"\0") >= 2:
        replacement = f"[redacted: {len(decoded)} bytes, contains credentials]"
    elif match.group("name") == "response" and _SCRAM_PROOF.search(decoded) and b"c=" in decoded:
        cleaned = _SCRAM_PROOF.sub(lambda m: m.group(1) + b"p=" + REDACTED.encode(), decoded)
        replacement = base64.b64encode(cleaned).decode("ascii")
    else:
        return match.group(0)
    start = match.start("payload") - match.start(0)
    end = match.end("payload") - match.start(0)
    whole = match.group(0)
    return whole[:start] + replacement + whole[end:]


def _redact_credential_element(match: re.Match[str]) -> str:
    group = "content" if match.group("content") is not None else "value"
    whole = match.group(0)
    start = match.start(group) - match.start(0)
    end = match.end(group) - match.start(0)
    return whole[:start] + REDACTED + whole[end:]


def redact_xml_text(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` (XML, possibly a fragment or not well-formed) without credentials."""
    secret_list = [s for s in secrets if s]
    out = _SASL_ELEMENT.sub(lambda m: _redact_sasl_payload(m, secret_list), text)
    out = _CREDENTIAL_ELEMENT.sub(_redact_credential_element, out)
    return redact_text(out, secret_list)
