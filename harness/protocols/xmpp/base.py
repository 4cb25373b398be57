"""What every XMPP actor kind shares: the protocol name and how XMPP text is redacted."""

from __future__ import annotations

import re
from typing import Any

from harness.actors import Actor
from harness.protocols.xmpp.match import PatternError, compile_match
from harness.protocols.xmpp.redact import redact_xml_text

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


class XmppActor(Actor):
    protocol = "xmpp"

    @classmethod
    def param_problems(cls, action: str, params: dict[str, Any]) -> list[str]:
        """A ``match`` pattern must parse (placeholders stand in as plain text)."""
        if "match" not in params:
            return []
        match = params["match"]
        try:
            compile_match([_PLACEHOLDER.sub("x", m) for m in match] if isinstance(match, list)
                          else _PLACEHOLDER.sub("x", match))
        except PatternError as exc:
            return [f"match: {exc}"]
        return []

    @classmethod
    def redact(cls, text: str, secrets: list[str]) -> str:
        """Decode SASL payloads and drop credentials (server log slices pass here too)."""
        return redact_xml_text(text, secrets)
