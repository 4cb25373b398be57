"""XMPP: actors and structural matching of stream elements. Importing registers the actor kinds
(``xmpp-raw``: bytes and XML over a socket; ``xmpp-client``: an ordinary slixmpp client)."""

from harness.protocols.xmpp import client, raw  # noqa: F401
