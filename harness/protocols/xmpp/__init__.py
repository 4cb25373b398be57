"""XMPP: actors and structural matching of stream elements. Importing registers the actor kinds."""

from harness.protocols.xmpp import raw  # noqa: F401
