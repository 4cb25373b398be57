"""The extension point of the double: a :class:`DoubleService` is a feature in a module of its own
(``tests/doubles/xmpp_<feature>.py``) that registers itself with :func:`service`, so that the
core knows services only through this interface and never by name."""

from __future__ import annotations

import importlib
import pkgutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import XmppDouble, _Connection


class DoubleService:
    """A feature of the double in a module of its own (see the module documentation)."""

    # where the service runs among the others (stanzas, disco#info, delivery, ended sessions):
    # lower sees stanzas first; equal orders keep the order of registration
    order: ClassVar[int] = 0

    def __init__(self, server: XmppDouble) -> None:
        self.server = server
        self.cfg = server.config

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        """A stanza a bound session sent; True when this service handled it."""
        return False

    def allows(self, el: ET.Element, to: _Connection) -> bool:
        """Whether ``el`` (``from`` already stamped) may be delivered to the session ``to``."""
        return True

    def disco_info(self, to: str, requester: _Connection) -> tuple[list[str], list[str]]:
        """What this service adds to the disco#info (XEP-0030, no node) the core answers for
        ``to``, the server's domain or an existing account's bare JID, asked by ``requester``:
        identities (XML snippets) and feature vars."""
        return [], []

    async def on_unbind(self, conn: _Connection) -> None:
        """The session's connection ended."""

    def admin(self, op: str, params: dict[str, str]) -> bool:
        """An admin operation (``docs/targets.md``); True when this service carries it out.
        Runs on the double's event loop; a ValueError is a failed operation."""
        return False


SERVICES: list[type[DoubleService]] = []


def service(cls: type[DoubleService]) -> type[DoubleService]:
    """Class decorator: every double runs this service (ordered by :attr:`DoubleService.order`)."""
    SERVICES.append(cls)
    return cls


def load_services() -> None:
    """Import every module ``tests/doubles/xmpp_*.py``: the services among them register (and
    add their flaws to :data:`~tests.doubles.xmpp_config.FLAWS`). By name, so that services of
    equal :attr:`~DoubleService.order` keep one order of registration."""
    package = __name__.rpartition(".")[0]
    for module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if module.name.startswith("xmpp_"):
            importlib.import_module(f"{package}.{module.name}")
