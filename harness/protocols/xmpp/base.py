"""What every XMPP actor kind shares: the protocol name and how XMPP text is redacted."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from harness.actors import Actor
from harness.protocols.xmpp.inbox import WITHIN_SCHEMA
from harness.protocols.xmpp.match import PatternError, compile_match
from harness.protocols.xmpp.ports import PORT_SCHEMA
from harness.protocols.xmpp.redact import redact_xml_text
from harness.protocols.xmpp.tls import VERSION_SCHEMA

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


# connect parameters both XMPP actor kinds understand the same way
CONNECT_PARAMS: dict[str, Any] = {
    "tls": {"enum": ["starttls", "direct", "none"], "default": "starttls"},
    "port": PORT_SCHEMA,
    "tls_min": VERSION_SCHEMA,
    "tls_max": VERSION_SCHEMA,
    "client_cert": {"type": "boolean", "default": False},
    "within": WITHIN_SCHEMA,
}


class XmppActor(Actor):
    protocol = "xmpp"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }

    @classmethod
    def param_problems(cls, action: str, params: dict[str, Any]) -> list[str]:
        """A ``match`` pattern must parse (placeholders stand in as plain text)."""
        if "match" not in params:
            return []
        match = params["match"]
        try:
            compile_match(
                [_PLACEHOLDER.sub("x", m) for m in match]
                if isinstance(match, list)
                else _PLACEHOLDER.sub("x", match)
            )
        except PatternError as exc:
            return [f"match: {exc}"]
        return []

    @classmethod
    def redact(cls, text: str, secrets: list[str]) -> str:
        """Decode SASL payloads and drop credentials (server log slices pass here too)."""
        return redact_xml_text(text, secrets)
