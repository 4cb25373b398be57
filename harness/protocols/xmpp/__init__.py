"""XMPP: actors and structural matching of stream elements. Importing registers the actor kinds."""

from harness.protocols.xmpp import client, raw  # noqa: F401
