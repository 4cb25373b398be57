"""Keep credentials out of XMPP traces.

SASL payloads are base64, so a plain text search for the password would miss them: the payloads
of ``<auth>``, ``<response>``, ``<success>`` and ``<challenge>`` (SASL namespace, any prefix or
quoting style) are decoded and

* replaced by ``[redacted: N bytes, contains credentials]`` when the decoded payload contains a
  secret, belongs to a PLAIN ``<auth>``, or looks like a PLAIN message (``authzid NUL user NUL
  password``, i.e. at least two NUL bytes);
* re-encoded with the SCRAM proof blanked (``p=[redacted]``) when it is a SCRAM client-final
  message: the proof is not the password but lets anyone who has the exchange brute-force it;
* left exactly as they were otherwise (client-first, server-first, server-final messages).

Then every secret that appears literally anywhere (XEP-0077 ``<password>``, iq-auth, a message
body...) is replaced by ``[redacted]``, in its plain and its XML-escaped form, and the content of
``<password>`` and ``<digest>`` elements is redacted even when the secret is not known to us.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from xml.sax.saxutils import escape

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

REDACTED = "[redacted]"

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
    has_secret = any(s.encode("utf-8") in decoded for s in secrets)
    if has_secret or is_plain or decoded.count(b"\0") >= 2:
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
    whole = match.group(0)
    start = match.start("content") - match.start(0)
    end = match.end("content") - match.start(0)
    return whole[:start] + REDACTED + whole[end:]


def redact_xml_text(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` (XML, possibly a fragment or not well-formed) without credentials."""
    secret_list = sorted({s for s in secrets if s}, key=len, reverse=True)
    out = _SASL_ELEMENT.sub(lambda m: _redact_sasl_payload(m, secret_list), text)
    out = _CREDENTIAL_ELEMENT.sub(_redact_credential_element, out)
    for secret in secret_list:
        for form in {secret, escape(secret), escape(secret, {"'": "&apos;", '"': "&quot;"})}:
            out = out.replace(form, REDACTED)
    return out
