"""Where credentials sit in text, for every protocol's redaction and the packet scrubber.

Redaction works on structure, never by replacing every substring that equals a password: a
test account's password may be two letters ("pa", from an external target file), and a blind
replace would turn ``urn:ietf:params`` into ``urn:ietf:[redacted]rams``. In order:

1. the protocol's own passes (XMPP: SASL payloads, ``<password>``, ``<digest>``; in
   :mod:`harness.protocols.xmpp.redact`);
2. :func:`redact_command_lines`: the password argument of admin command lines that create an
   account or change its password (``ejabberdctl ... register USER HOST PASSWORD``,
   ``prosodyctl register ...``, ``--password VALUE``), as a command or as a list of arguments;
3. the guard, :func:`redact_leftovers`: a secret still standing alone in a place that holds a
   value (the whole text of an element, a quoted string or attribute value, the value after a
   ``password=``-like key) is a credential the passes above missed: it is replaced by
   :data:`LEFTOVER`, which says so in the evidence;
4. :func:`redact_long_secrets`, a second net for secrets of at least :data:`LITERAL_MIN`
   characters only: such a string is no accident in unrelated text, so every occurrence goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from xml.sax.saxutils import escape

REDACTED = "[redacted]"
LEFTOVER = "[redacted: a secret outside any credential field]"
# A secret this long is unambiguous: every occurrence is the secret, not part of other text.
LITERAL_MIN = 8

_ARG = r"""(?:'[^'\n]*'|"[^"\n]*"|[^\s'",\]]+)"""  # one argument: quoted, or up to a separator
_SEP = r"""['"]?[\s,]+"""  # between arguments of a command line or of a list of them
_ADMIN_TOOL = r"(?:ejabberdctl|prosodyctl|mongooseimctl|[\w.-]*admin\.sh)"
_COMMAND_PASSWORD = re.compile(
    # an account command of an admin tool: the argument after USER HOST (USER for create-user)
    rf"""(?:\b{_ADMIN_TOOL}\b[^\n]*?(?<![\w-])['"]?"""
    rf"""(?:(?:register|change_password)(?:{_SEP}{_ARG}){{2}}|create-user{_SEP}{_ARG}){_SEP}"""
    # any command's --password option
    rf"""|(?<![\w-])--password(?:['"]?=|{_SEP}))"""
    rf"""(?P<secret>{_ARG})"""
)
_CREDENTIAL_KEY = r"(?:password|passwd|pwd|secret)"


def text_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear in text: plain and XML-escaped; longest first."""
    forms = set()
    for secret in secrets:
        if secret:
            forms |= {secret, escape(secret), escape(secret, {"'": "&apos;", '"': "&quot;"})}
    return sorted(forms, key=len, reverse=True)


def _replace_group(match: re.Match[str], group: str, replacement: str) -> str:
    start, end = match.span(group)
    whole = match.group(0)
    offset = match.start(0)
    return whole[: start - offset] + replacement + whole[end - offset :]


def redact_command_lines(text: str) -> str:
    """The password argument of admin command lines (quotes around it stay)."""

    def one(match: re.Match[str]) -> str:
        value = match.group("secret")
        quote = value[0] if value[0] in "'\"" else ""
        return _replace_group(match, "secret", quote + REDACTED + quote)

    return _COMMAND_PASSWORD.sub(one, text)


_LEFTOVER_GROUPS = ("in_element", "quoted", "keyed")


def leftover_pattern(secrets: Iterable[str]) -> str | None:
    """Regex source: a secret standing alone where a value goes (:func:`leftover_group` names
    the group that holds it); None when there is no secret."""
    forms = text_forms(secrets)
    if not forms:
        return None
    alternatives = "|".join(re.escape(form) for form in forms)
    return (
        rf"""(?:>\s*(?P<in_element>{alternatives})\s*<"""
        rf"""|(?P<q>['"])(?P<quoted>{alternatives})(?P=q)"""
        rf"""|(?i:\b{_CREDENTIAL_KEY}\s*[=:]\s*)(?P<keyed>{alternatives})(?=[\s,;&)\]}}]|$))"""
    )


def redact_leftovers(text: str, secrets: Iterable[str]) -> str:
    """The guard: a secret still standing alone in a value's place becomes :data:`LEFTOVER`."""
    source = leftover_pattern(secrets)
    if source is None:
        return text

    return re.sub(source, lambda m: _replace_group(m, leftover_group(m), LEFTOVER), text, flags=re.MULTILINE)


def leftover_group(match: re.Match[str] | re.Match[bytes]) -> str:
    """The group of a :func:`leftover_pattern` match that holds the secret."""
    return next(g for g in _LEFTOVER_GROUPS if match.group(g) is not None)


def long_secrets(secrets: Iterable[str]) -> list[str]:
    """The secrets long enough (:data:`LITERAL_MIN`) to be removed wherever they appear."""
    return [s for s in secrets if len(s) >= LITERAL_MIN]


def redact_long_secrets(text: str, secrets: Iterable[str]) -> str:
    """Every occurrence of a long secret (plain or XML-escaped) becomes :data:`REDACTED`."""
    for form in text_forms(long_secrets(secrets)):
        text = text.replace(form, REDACTED)
    return text


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """The protocol-neutral passes (2 to 4 above), after a protocol's own."""
    secret_list = [s for s in secrets if s]
    return redact_long_secrets(redact_leftovers(redact_command_lines(text), secret_list), secret_list)


def holds_secret(decoded: bytes, secrets: Iterable[str]) -> bool:
    """Whether a decoded payload (SASL, HTTP Basic) contains a secret: a long one anywhere, a
    short one as a whole field (between NULs or commas, or after ``key=``)."""
    needles = [s.encode("utf-8") for s in secrets if s]
    if any(len(n) >= LITERAL_MIN and n in decoded for n in needles):
        return True
    fields = re.split(rb"[\0,:]", decoded)
    values = set(fields) | {f.split(b"=", 1)[1] for f in fields if b"=" in f}
    return any(n in values for n in needles)
