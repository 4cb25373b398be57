"""Protocol families. Importing this package registers every family's actor kinds."""

from harness.protocols import xmpp  # noqa: F401
