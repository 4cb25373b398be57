"""What every XMPP actor kind shares: the protocol name and how XMPP text is redacted."""

from __future__ import annotations

from harness.actors import Actor
from harness.protocols.xmpp.redact import redact_xml_text


class XmppActor(Actor):
    protocol = "xmpp"

    @classmethod
    def redact(cls, text: str, secrets: list[str]) -> str:
        """Decode SASL payloads and drop credentials (server log slices pass here too)."""
        return redact_xml_text(text, secrets)
