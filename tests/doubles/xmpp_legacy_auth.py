"""Legacy non-SASL authentication (XEP-0078, ``jabber:iq:auth``), as a careful server keeps it:
offered and accepted only on a TLS-protected stream, and refused with ``<policy-violation/>``
once SASL failed on the stream (XEP-0078 Security Considerations). Its flaws break those rules."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from tests.doubles.xmpp_config import FLAWS
from tests.doubles.xmpp_connection import _Close
from tests.doubles.xmpp_sasl import SaslMixin
from tests.doubles.xmpp_xml import NS_STANZAS

NS_IQ_AUTH = "jabber:iq:auth"
NS_IQ_AUTH_FEATURE = "http://jabber.org/features/iq-auth"

FLAWS.update(
    {
        "legacy-auth-before-tls": "jabber:iq:auth is offered on the unencrypted stream and a clear-text "
        "password logs in there, XEP-0078 Security Considerations",
        "legacy-auth-after-sasl-failure": "jabber:iq:auth with the right password logs in after a "
        "failed SASL attempt on the stream, XEP-0078 Security Considerations",
    }
)


class LegacyAuthMixin(SaslMixin):
    """The connection side of ``jabber:iq:auth`` (before a session exists)."""

    def legacy_auth_offered(self) -> bool:
        """Whether this stream's features offer (and its stanzas accept) jabber:iq:auth."""
        return self.user is None and (self.tls or self.cfg.has("legacy-auth-before-tls"))

    def legacy_auth_feature(self) -> str:
        return f"<auth xmlns='{NS_IQ_AUTH_FEATURE}'/>" if self.legacy_auth_offered() else ""

    @staticmethod
    def is_legacy_auth(el: ET.Element) -> bool:
        return el.find(f"{{{NS_IQ_AUTH}}}query") is not None

    async def on_legacy_auth(self, el: ET.Element) -> bool:
        """Answer a jabber:iq:auth request; False when this stream does not take one (the caller
        then treats it as any stanza before authentication)."""
        if not self.legacy_auth_offered():
            return False
        iq_id = quoteattr(el.get("id", ""))
        query = el.find(f"{{{NS_IQ_AUTH}}}query")
        assert query is not None
        if el.get("type") == "get":
            await self.send(
                f"<iq type='result' id={iq_id}><query xmlns='{NS_IQ_AUTH}'>"
                "<username/><password/><resource/></query></iq>"
            )
            return True
        if self.failures and not self.cfg.has("legacy-auth-after-sasl-failure"):
            await self.stream_error("policy-violation", "jabber:iq:auth after a failed SASL attempt")
            raise _Close
        fields = {
            name: (query.findtext(f"{{{NS_IQ_AUTH}}}{name}") or "").strip()
            for name in ("username", "password", "resource")
        }
        if not all(fields.values()) or not self._password_matches(fields["username"], fields["password"]):
            await self.send(
                f"<iq type='error' id={iq_id}><error code='401' type='auth'>"
                f"<not-authorized xmlns='{NS_STANZAS}'/></error></iq>"
            )
            return True
        self.user = fields["username"]
        self.jid = f"{self.user}@{self.cfg.domain}/{fields['resource']}"
        self.server.sessions.setdefault(self.jid, []).append(self)
        self.log(f"legacy jabber:iq:auth: bound {escape(self.jid)}")
        await self.send(f"<iq type='result' id={iq_id}/>")
        return True
