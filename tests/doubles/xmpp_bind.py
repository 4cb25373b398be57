"""Resource binding (RFC 6120 §7) with its conflict policies, and what a stream may send before
it has a session: XEP-0077 registration requests; anything else ends the stream."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from tests.doubles.xmpp_connection import ConnectionBase, _Close
from tests.doubles.xmpp_xml import NS_BIND, NS_CLIENT, NS_REGISTER, NS_STANZAS, _local

NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"


class BindMixin(ConnectionBase):
    """A connection's way from authenticated stream to bound session (and back, ``unbind``)."""

    async def on_stanza_before_bind(self, el: ET.Element) -> None:
        cfg = self.cfg
        if el.tag == f"{{{NS_CLIENT}}}iq" and self.user is not None:
            await self.on_bind(el)
            return
        registration = el.find(f"{{{NS_REGISTER}}}query") is not None
        if el.tag == f"{{{NS_CLIENT}}}iq" and self.user is None and registration and self.registers_here():
            await self.on_register(el)
            return
        if self.user is None and cfg.has("ignore-stanza-before-auth"):
            self.log(f"flaw ignore-stanza-before-auth: dropped <{_local(el.tag)}>")
            return
        is_message = el.tag == f"{{{NS_CLIENT}}}message"
        if self.user is None and cfg.has("process-stanza-before-auth") and is_message:
            self.log("flaw process-stanza-before-auth: routing the message first")
            await self.server.route(el, el.get("from"))
        await self.stream_error("not-authorized")
        raise _Close

    def registers_here(self) -> bool:
        """Registration requests are taken on a TLS-protected stream only (XEP-0077 Security
        Considerations); before TLS they are stanzas before authentication like any other."""
        return self.tls or self.cfg.has("register-before-tls")

    def register_feature(self) -> str:
        offered = self.user is None and self.cfg.registration == "open" and self.tls
        if self.user is None and not self.tls and self.cfg.has("register-before-tls"):
            offered = True
        return f"<register xmlns='{NS_REGISTER_FEATURE}'/>" if offered else ""

    async def on_register(self, el: ET.Element) -> None:
        cfg = self.cfg
        iq_id = quoteattr(el.get("id", ""))
        if not self.tls and cfg.has("register-before-tls") and el.get("type") == "set":
            user = (el.findtext(f"{{{NS_REGISTER}}}query/{{{NS_REGISTER}}}username") or "").strip()
            password = el.findtext(f"{{{NS_REGISTER}}}query/{{{NS_REGISTER}}}password") or ""
            self.log(f"flaw register-before-tls: registered {user} on the clear-text stream")
            cfg.accounts[user] = password
            await self.send(f"<iq type='result' id={iq_id} from='{cfg.domain}'/>")
            return
        if cfg.has("register-silent"):
            self.log("flaw register-silent: no answer")
            return
        if cfg.has("register-not-allowed"):
            await self.send(
                f"<iq type='error' id={iq_id} from='{cfg.domain}'><error type='cancel'>"
                f"<not-allowed xmlns='{NS_STANZAS}'/></error></iq>"
            )
            return
        if el.get("type") == "get" and cfg.registration == "open":
            await self.send(
                f"<iq type='result' id={iq_id} from='{cfg.domain}'><query xmlns='{NS_REGISTER}'>"
                "<instructions>Choose a username and password.</instructions><username/><password/>"
                "</query></iq>"
            )
            return
        await self.send(
            f"<iq type='error' id={iq_id} from='{cfg.domain}'><error type='cancel'>"
            f"<service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
        )

    async def on_bind(self, el: ET.Element) -> None:
        cfg = self.cfg
        iq_id = quoteattr(el.get("id", ""))
        bind = el.find(f"{{{NS_BIND}}}bind")
        if bind is None or el.get("type") != "set":
            await self.stream_error("not-authorized")
            raise _Close
        if not cfg.answer_bind:
            return
        resource_el = bind.find(f"{{{NS_BIND}}}resource")
        resource = (resource_el.text or "").strip() if resource_el is not None else ""
        if not resource and cfg.has("no-server-resource"):
            await self.send(
                f"<iq type='error' id={iq_id}><error type='modify'><bad-request xmlns='{NS_STANZAS}'/>"
                "</error></iq>"
            )
            return
        bare = f"{self.user}@{cfg.domain}"
        full = f"{bare}/{resource or os.urandom(6).hex()}"
        holders = self.server.sessions.get(full, [])
        if holders and not cfg.has("duplicate-resources"):
            if cfg.conflict_policy == "refuse":
                await self.send(
                    f"<iq type='error' id={iq_id}><error type='cancel'><conflict xmlns='{NS_STANZAS}'/>"
                    "</error></iq>"
                )
                return
            if cfg.conflict_policy == "rename":
                full = f"{full}-{os.urandom(3).hex()}"
            else:  # override: end the existing session
                for old in list(holders):
                    old.unbind()
                    if cfg.has("conflict-drop-first-silently"):
                        old.drop()
                    else:
                        await old.stream_error("conflict", "replaced by a new session")
                        old.writer.close()
        self.jid = full
        self.server.sessions.setdefault(full, []).append(self)
        self.log(f"bound {full}")
        shown = full.split("/")[0] if cfg.has("bind-bare-jid") else full
        await self.send(
            f"<iq type='result' id={iq_id}><bind xmlns='{NS_BIND}'><jid>{escape(shown)}</jid></bind></iq>"
        )

    def unbind(self) -> None:
        if self.jid is None:
            return
        holders = self.server.sessions.get(self.jid, [])
        if self in holders:
            holders.remove(self)
        if not holders:
            self.server.sessions.pop(self.jid, None)
        self.jid = None
