"""XMPP: actors and structural matching of stream elements. Importing registers the actor kinds
and the keeper of test accounts (:mod:`.account_state`)."""

from harness.protocols.xmpp import account_state, client, peer, raw  # noqa: F401

#: The SRV service each named target port publishes (RFC 6120 §3.2.1, XEP-0368).
SRV_LABELS = {
    "c2s": "_xmpp-client._tcp",
    "s2s": "_xmpp-server._tcp",
    "c2s_tls": "_xmpps-client._tcp",
    "s2s_tls": "_xmpps-server._tcp",
}
