"""The server's bound sessions and the delivery of stanzas to them (RFC 6120 §10, RFC 6121 §8),
with the server's log: the base that rosters, presence and subscriptions build on."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from tests.doubles.xmpp_config import DoubleConfig
from tests.doubles.xmpp_service import DoubleService
from tests.doubles.xmpp_xml import _client_xml, _local, bare_jid, domain_of

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import _Connection


class Router:
    """Which sessions a stanza goes to and whether the services let it through."""

    services: list[DoubleService]  # made by XmppDouble: each service is given the whole double

    def __init__(self, config: DoubleConfig) -> None:
        self.config = config
        self.sessions: dict[str, list[_Connection]] = {}  # full JID -> bound sessions
        self.failed_logins: dict[str, int] = {}  # source address -> failed SASL attempts
        self._log_lock = threading.Lock()

    def log(self, text: str) -> None:
        path = self.config.log_file
        if path is None:
            return
        line = f"{time.strftime('%H:%M:%S')} {text}\n"
        with self._log_lock, path.open("a", encoding="utf-8") as out:
            out.write(line)

    def sessions_for(self, jid: str) -> list[_Connection]:
        """The bound sessions a stanza to ``jid`` goes to: the full JID's, or every resource of a
        bare JID."""
        if "/" in jid:
            return list(self.sessions.get(jid, []))
        return [c for full, conns in self.sessions.items() if full.split("/", 1)[0] == jid for c in conns]

    async def route(self, el: ET.Element, sender: str | None) -> bool:
        """Deliver a stanza to the bound sessions it is addressed to; False if there are none
        (messages to nobody are silently dropped, RFC 6121 §8.5.2)."""
        targets = self.sessions_for(el.get("to", ""))
        if sender is not None:
            el.set("from", sender)
        return await self.deliver(el, targets)

    async def deliver(self, el: ET.Element, targets: list[_Connection]) -> bool:
        refused = [c for c in targets if not all(svc.allows(el, c) for svc in self.services)]
        for conn in refused:
            self.log(f"<{_local(el.tag)}> from {el.get('from')} to {conn.jid}: refused by a service")
        targets = [c for c in targets if c not in refused]
        text = _client_xml(el)
        for conn in targets:
            await conn.send(text)
        if targets:
            self.log(f"routed <{_local(el.tag)}> to {el.get('to')} ({len(targets)} session(s))")
        return bool(targets)

    # -- users -------------------------------------------------------------------------------------

    def serves(self, jid: str) -> bool:
        """The double serves one domain and knows no other (it has no server-to-server side)."""
        return domain_of(jid) == self.config.domain

    def exists(self, jid: str) -> bool:
        local, at, _ = bare_jid(jid).partition("@")
        return bool(at) and self.serves(jid) and local in self.config.accounts
