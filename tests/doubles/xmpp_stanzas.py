"""A bound session's stanzas (RFC 6120 §8, RFC 6121 §8): the services see them first; then
the core checks 'from', bounces other domains, routes messages and presence, and answers or
routes IQs (ping, disco#info and rosters it answers itself)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

from tests.doubles.xmpp_connection import _Close
from tests.doubles.xmpp_presence import PresenceMixin
from tests.doubles.xmpp_roster import RosterMixin
from tests.doubles.xmpp_subscription import SUBSCRIPTION_TYPES, SubscriptionMixin
from tests.doubles.xmpp_xml import NS_BIND, NS_DISCO_INFO, NS_PING, NS_ROSTER, NS_STANZAS, _local, bare_jid


class StanzaMixin(RosterMixin, PresenceMixin, SubscriptionMixin):
    """Where a bound session's stanza goes: to a service, an error, another session, or a
    handler of the core."""

    async def on_stanza(self, el: ET.Element) -> None:
        kind = _local(el.tag)
        to = el.get("to", "")
        claimed = el.get("from")
        if (
            claimed is not None
            and claimed not in (self.jid, self.bare)
            and self.cfg.invalid_from == "stream-error"
        ):
            self.log(f"<{kind}> from {claimed}: not this session's JID")  # RFC 6120 §4.9.3.9
            await self.stream_error("invalid-from")
            raise _Close
        for svc in self.server.services:
            if await svc.on_stanza(self, el):
                return
        if to and not self.server.serves(to):
            await self.bounce_unknown_domain(el)
        elif kind == "iq":
            await self.on_iq(el)
        elif kind == "message":
            await self.on_message(el)
        else:
            await self.on_presence(el)

    async def bounce_unknown_domain(self, el: ET.Element) -> None:
        """RFC 6120 §10.4.3: the double knows no domain but its own, so a stanza to another one
        comes back at once with <remote-server-not-found/> (errors and IQ results excepted)."""
        kind, stanza_type = _local(el.tag), el.get("type")
        if stanza_type == "error" or (kind == "iq" and stanza_type == "result"):
            return
        if self.cfg.has("no-bounce-unknown-domain"):
            self.log(f"flaw no-bounce-unknown-domain: <{kind}> to {el.get('to')} dropped")
            return
        await self.stanza_error(el, "remote-server-not-found")

    async def on_message(self, el: ET.Element) -> None:
        to = el.get("to", "")
        if to and bare_jid(to) != self.bare and self.cfg.has("drop-routed-messages"):
            self.log(f"flaw drop-routed-messages: message to {to} dropped")
            return
        sender = self.jid  # RFC 6120 §8.1.2.1: added, or the client's 'from' overridden
        if self.cfg.has("no-from-stamping"):
            self.log(f"flaw no-from-stamping: 'from' left as {el.get('from')!r}")
            sender = None
        elif el.get("from") and self.cfg.has("trust-client-from"):
            self.log(f"flaw trust-client-from: 'from' {el.get('from')} kept")
            sender = el.get("from")
        await self.server.route(el, sender)

    # -- presence (RFC 6121 §3, §4) --------------------------------------------------------------

    async def on_presence(self, el: ET.Element) -> None:
        to, presence_type = el.get("to"), el.get("type")
        if presence_type in SUBSCRIPTION_TYPES and to:
            await self.on_subscription(el, presence_type, bare_jid(to))
        elif presence_type in (None, "unavailable"):
            assert self.jid is not None
            el.set("from", self.jid)
            if to:
                await self.directed_presence(el, to)
            else:
                await self.broadcast_presence(el)
        elif presence_type == "probe" and to and self.cfg.has("probe-reveals-account"):
            await self.answer_probe(bare_jid(to))
        # probes and errors from a client, subscription stanzas without 'to': nothing to do

    async def answer_probe(self, contact: str) -> None:
        """Flaw probe-reveals-account: a probe to an account that does not exist is answered
        with an unsubscribed presence, one to an existing account with nothing."""
        if not self.server.exists(contact):
            self.log(f"flaw probe-reveals-account: unsubscribed from the missing {contact}")
            await self.send(f"<presence type='unsubscribed' from={quoteattr(contact)}/>")

    # -- iq --------------------------------------------------------------------------------------

    async def on_iq(self, el: ET.Element) -> None:
        cfg = self.cfg
        iq_id = quoteattr(el.get("id", ""))
        to = el.get("to", "")
        kind = el.get("type")
        if "@" in to and "/" in to:
            await self.iq_to_full_jid(el, to)
            return
        if kind not in ("get", "set"):
            return
        if el.find(f"{{{NS_BIND}}}bind") is not None:
            await self.send(
                f"<iq type='error' id={iq_id}><error type='cancel'><not-allowed xmlns='{NS_STANZAS}'/>"
                "</error></iq>"
            )
            return
        if el.find(f"{{{NS_PING}}}ping") is not None and to in ("", cfg.domain):
            if cfg.answer_ping:
                await self.iq_result(el, sender=cfg.domain)
            return
        unknown_user = "@" in to and not self.server.exists(to)
        if unknown_user and el.find(f"{{{NS_PING}}}ping") is not None and cfg.has("unknown-user-pong"):
            self.log("flaw unknown-user-pong")
            await self.iq_result(el, sender=to)
            return
        disco = el.find(f"{{{NS_DISCO_INFO}}}query")
        target = to or self.bare
        if (
            disco is not None
            and kind == "get"
            and not disco.get("node")
            and (target == cfg.domain or (self.server.exists(target) and self.may_discover(target)))
        ):
            await self.disco_info(el, target)
            return
        if el.find(f"{{{NS_ROSTER}}}query") is not None and to in ("", self.bare):
            await (self.roster_get(el) if kind == "get" else self.roster_set(el, self.bare))
            return
        if el.find(f"{{{NS_ROSTER}}}query") is not None and "@" in to and self.server.exists(to):
            await self.roster_of_other_user(el, kind, bare_jid(to))
            return
        condition = "service-unavailable"  # RFC 6121 §8.5.1 for a user that does not exist
        if unknown_user and cfg.has("unknown-user-item-not-found"):
            self.log("flaw unknown-user-item-not-found")
            condition = "item-not-found"
        reply_from = quoteattr(to or cfg.domain)
        await self.send(
            f"<iq type='error' id={iq_id} from={reply_from}><error type='cancel'>"
            f"<{condition} xmlns='{NS_STANZAS}'/></error></iq>"
        )

    def may_discover(self, account: str) -> bool:
        """XEP-0030 Security Considerations: the server answers disco#info for an account's bare
        JID only to the account itself and to those who may receive its presence."""
        if account == self.bare or self.cfg.has("disco-info-to-strangers"):
            return True
        item = self.server.rosters.get(account, {}).get(self.bare)
        return item is not None and item.from_

    async def disco_info(self, el: ET.Element, target: str) -> None:
        """XEP-0030 disco#info of the server's domain or an account's bare JID (``target``): the
        core's identity and features, then what every service adds (see
        :meth:`DoubleService.disco_info`)."""
        if target == self.cfg.domain:
            identities = ["<identity category='server' type='im' name='double'/>"]
            features = [NS_DISCO_INFO, NS_PING]
        else:
            identities, features = ["<identity category='account' type='registered'/>"], [NS_DISCO_INFO]
        for svc in self.server.services:
            added_identities, added_features = svc.disco_info(target, self)
            identities += added_identities
            features += added_features
        listed = "".join(f"<feature var={quoteattr(var)}/>" for var in dict.fromkeys(features))
        await self.iq_result(
            el, f"<query xmlns='{NS_DISCO_INFO}'>{''.join(identities)}{listed}</query>", sender=target
        )

    async def iq_to_full_jid(self, el: ET.Element, to: str) -> None:
        """RFC 6121 §8.5.3.1: a result or error is delivered; a request only when the recipient
        shares presence with the sender (else, or without such a session, service-unavailable)."""
        cfg, server = self.cfg, self.server
        assert self.jid is not None
        if el.get("type") in ("result", "error"):
            if cfg.has("iq-result-not-delivered"):
                self.log(f"flaw iq-result-not-delivered: iq {el.get('type')} to {to} dropped")
                return
            await server.route(el, self.jid)  # no such session: ignored
            return
        targets = server.sessions.get(to, [])
        shared = cfg.has("iq-to-full-jid-unchecked") or any(
            server.shares_presence(c, self.jid) for c in targets
        )
        if targets and cfg.has("iq-to-full-jid-refused"):
            self.log(f"flaw iq-to-full-jid-refused: iq to {to} refused")
        elif targets and shared:
            await server.route(el, self.jid)
            return
        await self.stanza_error(el, "service-unavailable")
