"""What a double may be told: the named flaws (:data:`FLAWS`) and :class:`DoubleConfig`.

One table for every flaw, so that a configuration is checked against all of them and the proofs
(``tests/proofs``) can map scenarios onto the names. The services add theirs when they are
imported; :mod:`tests.doubles.xmpp_server` imports them all, so import the table from there.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

ALL_MECHANISMS = ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "EXTERNAL")

# name -> the rule it breaks. tests/proofs/test_can_fail.py maps scenarios onto these.
FLAWS: dict[str, str] = {
    # -- TLS and streams ------------------------------------------------------------------------
    "no-starttls": "STARTTLS is not offered on the client port (TLS switched off), RFC 6120 §5.2",
    "tls-optional": "STARTTLS is offered without <required/> and SASL (not PLAIN) works on the "
    "unencrypted stream, RFC 7525 §3.2 strict TLS",
    "plain-before-tls": "like tls-optional, and PLAIN is also offered and accepted on the "
    "unencrypted stream, RFC 6120 §13.8.3",
    "no-restart-after-tls": "after the TLS handshake the server ignores the client's new stream "
    "header (no new header, no features), RFC 6120 §5.4.3.3",
    "starttls-offered-after-tls": "the features of the TLS-protected stream offer STARTTLS again, "
    "RFC 6120 §5.4.3.3",
    "no-stream-id-after-tls": "the response stream header after TLS carries no id, RFC 6120 §4.7.3",
    "wrong-cert-name": "every port presents a certificate for another name (same CA), RFC 6125",
    "cert-without-dns-id": "the certificate names the domain only as CN and id-on-xmppAddr, without a "
    "DNS-ID (subjectAltName dNSName), RFC 6125 §4.1",
    "accept-tls1.0": "TLS 1.0 (and 1.1) handshakes complete, RFC 8996",
    "accept-tls1.1": "TLS 1.1 handshakes complete (1.0 is still refused), RFC 8996",
    "direct-tls-wrong-cert": "the direct-TLS port presents a certificate for another name, XEP-0368 §3",
    "direct-tls-plaintext": "the direct-TLS port speaks XMPP without TLS, XEP-0368 §3",
    "starttls-inside-direct-tls": "the stream on the direct-TLS port offers STARTTLS (a plain "
    "listener behind a TLS proxy), XEP-0368 §3",
    # -- SASL -----------------------------------------------------------------------------------
    "accept-any-password": "PLAIN and SCRAM accept any password of an existing account, RFC 6120 §6.5.10",
    "reveal-unknown-user": "an unknown user gets <account-disabled/>, a wrong password "
    "<not-authorized/>, RFC 6120 §6.5.10",
    "plain-rejects-right-password": "PLAIN is offered but every attempt gets <not-authorized/> "
    "(a backend that cannot verify it), RFC 6120 §13.8.3 / RFC 4616",
    "no-scram-sha-1": "SCRAM-SHA-1 is not offered, RFC 6120 §13.8.1",
    "no-scram-sha-1-plus": "SCRAM-SHA-1-PLUS is not offered, RFC 6120 §13.8.1",
    "scram-bad-server-signature": "the server signature (v=) of SCRAM is computed with the client "
    "key, so it does not verify, RFC 5802 §3",
    "scram-sha-256-wrong-keys": "SCRAM-SHA-256 keys are derived with SHA-1 PBKDF2 (only SHA-1 "
    "keys stored), so right passwords fail, RFC 7677 §3",
    "scram-plus-wrong-channel-binding": "the channel binding data the server expects is computed "
    "wrongly (tls-server-end-point with SHA-1), so correct -PLUS exchanges fail, RFC 5929 §4.1",
    "plus-ignores-binding": "SCRAM -PLUS does not check the channel binding data (c=), RFC 5802 §6",
    "no-saslprep": "SCRAM keys and PLAIN comparisons use the password as provisioned, without "
    "SASLprep, RFC 5802 §2.2 / RFC 4013",
    "wrong-condition-invalid-mechanism": "an unknown mechanism gets <not-authorized/>, RFC 6120 §6.5.7",
    "wrong-condition-incorrect-encoding": "a payload that is not base64 gets <malformed-request/>, "
    "RFC 6120 §6.5.5",
    "wrong-condition-malformed-request": "a PLAIN message without NUL separators gets "
    "<not-authorized/>, RFC 6120 §6.5.8",
    "wrong-condition-abort": "<abort/> gets <not-authorized/> instead of <aborted/>, RFC 6120 §6.4.4",
    "ignore-abort": "<abort/> gets no answer at all, RFC 6120 §6.4.4",
    "silent-auth-before-tls": "an <auth/> on the unencrypted stream gets no answer at all (no "
    "<failure/>, no stream error), RFC 6120 §6.4.5",
    "accept-any-authzid": "an authorization identity is granted without a check (Alice logs in as "
    "Bob), RFC 6120 §6.3.8",
    "unlimited-retries": "failed SASL attempts are never limited, RFC 6120 §6.4.5 / §13.9.4",
    "retry-limit-without-stream-error": "past the retry limit the TCP connection is dropped "
    "without a stream error, RFC 6120 §6.4.5",
    "idle-timeout-instead-of-retry-limit": "no retry limit: the stream ends later with the stream "
    "error of an idle timer (<connection-timeout/>), as if that were one, RFC 6120 §6.4.5",
    "external-no-cert-request": "EXTERNAL is offered but no client certificate is requested in the "
    "TLS handshake, so every EXTERNAL attempt fails, XEP-0178 §2",
    "external-without-cert": "EXTERNAL with an authzid succeeds without any client certificate, XEP-0178",
    # -- binding and stanzas --------------------------------------------------------------------
    "no-server-resource": "an empty <bind/> gets <bad-request/>: no server-generated resource, RFC 6120 §7.6",
    "duplicate-resources": "two sessions may hold the same full JID, RFC 6120 §7.7.2.2",
    "conflict-drop-first-silently": "a resource conflict drops the first session's TCP connection "
    "without the <conflict/> stream error, RFC 6120 §7.7.2.2",
    "process-stanza-before-auth": "a message on an unauthenticated stream is routed before the "
    "<not-authorized/> stream error, RFC 6120 §4.9.3.12",
    "ignore-stanza-before-auth": "a stanza on an unauthenticated stream is silently dropped, "
    "RFC 6120 §4.9.3.12",
    "register-not-allowed": "a registration request before authentication gets <not-allowed/>, XEP-0077 §3.1",
    "register-silent": "a registration request before authentication gets no answer, XEP-0077 §3.1",
    "bind-bare-jid": "the resource binding result carries the bare JID, without the resource the "
    "session got, RFC 6120 §7.6.1",
    "unlimited-failed-logins": "failed logins from one address are never limited, on any number of "
    "connections, XEP-0205 §4.2",
    "register-before-tls": "in-band registration is offered on the unencrypted stream and an "
    "account is registered there, XEP-0077 Security Considerations",
    # -- routing, presence and subscriptions (RFC 6121) -----------------------------------------
    "drop-routed-messages": "a message to another user is accepted but never delivered, RFC 6121 §8.5.3.1",
    "iq-to-full-jid-refused": "an IQ get/set to a full JID gets <service-unavailable/> although the "
    "recipient shares presence with the sender, RFC 6121 §8.5.3.1",
    "iq-to-full-jid-unchecked": "an IQ get/set to a full JID is delivered although the recipient "
    "shares no presence with the sender (<service-unavailable/> is due), RFC 6121 §8.5.3.1",
    "iq-result-not-delivered": "an IQ result or error to a full JID is dropped, RFC 6121 §8.5.3.1",
    "unknown-user-item-not-found": "an IQ to a user that does not exist gets <item-not-found/> "
    "instead of <service-unavailable/>, RFC 6121 §8.5.1",
    "disco-info-to-strangers": "disco#info to an existing account's bare JID is answered with its "
    "identity and features to anyone, XEP-0030 Security Considerations",
    "probe-reveals-account": "a stranger's presence probe to an account that does not exist is "
    "answered with an unsubscribed presence, one to an existing account with nothing, RFC 6120 §13.11",
    "unknown-user-pong": "a ping to the bare JID of a user that does not exist is answered with a "
    "result on the user's behalf, RFC 6121 §8.5.1",
    "no-bounce-unknown-domain": "a stanza to a domain the server does not know is dropped "
    "silently, without <remote-server-not-found/>, RFC 6120 §10.4.3",
    "subscription-from-full-jid": "outbound subscription stanzas are stamped with the sender's "
    "full JID, not the bare JID, RFC 6121 §3.1.2 / §3.1.5",
    "no-presence-after-approval": "after a subscription approval the contact's server does not "
    "send the contact's current presence to the user, RFC 6121 §3.1.5",
    # -- authorization: presence, rosters, addresses (RFC 6121, RFC 6120 §8.1.2.1) ---------------
    "presence-broadcast-to-all": "broadcast presence goes to every available user of the server, "
    "not only to the subscribers ('from' or 'both'), RFC 6121 §4.4.2 / §11",
    "presence-before-approval": "a subscription request is approved by the server itself at "
    "once (subscribed and the contact's presence go to the requester), RFC 6121 §3.1.3",
    "unsubscribe-ignored": "an unsubscribe from a client is dropped: no roster change, no push, "
    "the subscription stays, RFC 6121 §3.3",
    "unsubscribe-keeps-presence": "an unsubscribe updates and pushes the contact's roster, but "
    "the former subscriber still gets the contact's presence broadcasts, RFC 6121 §3.3.3 / §4.4.2",
    "directed-presence-broadcast": "directed presence also goes to the sender's subscribers, "
    "RFC 6121 §4.6.3 / §11",
    "directed-presence-sticky": "the target of directed available presence gets the sender's "
    "later presence broadcasts too, RFC 6121 §4.6.3 rule 2",
    "roster-push-to-all": "roster pushes go to every interested resource of every user, "
    "RFC 6121 §2.3.2 / §2.1.6",
    "roster-of-other-user": "a roster get addressed to another user's bare JID returns that "
    "user's roster, RFC 6121 §2.1.5 / §8.5.2.1.3",
    "roster-set-by-other-user": "a roster set addressed to another user's bare JID is applied to "
    "that user's roster (a result and a push), RFC 6121 §2.1.5 / §2.3.3",
    "no-from-stamping": "messages from a client are routed with the 'from' it gave (none when it "
    "gave none), RFC 6120 §8.1.2.1",
    "trust-client-from": "a 'from' a client puts on a message is kept (a message without one is "
    "stamped), so a user can send as anyone, RFC 6120 §8.1.2.1",
}

# conflict policies of RFC 6120 §7.7.2.2
CONFLICT_POLICIES = ("override", "rename", "refuse")


@dataclass
class DoubleConfig:
    """How one double behaves: its domain and accounts, its flaws, and the knobs the actor unit
    tests and the server policies of RFC 6120 leave open."""

    domain: str = "double.test"
    accounts: dict[str, str] = field(default_factory=lambda: {"alice": "s3cret-Pa55"})
    flaws: frozenset[str] | set[str] | tuple[str, ...] = frozenset()
    offer_starttls: bool = True
    mechanisms: tuple[str, ...] = ALL_MECHANISMS
    channel_bindings: tuple[str, ...] = ("tls-server-end-point",)
    tls_min: ssl.TLSVersion | None = None  # never below TLS 1.2 unless a flaw says so
    direct_tls: bool = False  # a second, direct-TLS port (c2s_tls)
    answer_ping: bool = True
    answer_bind: bool = True
    scram_iterations: int = 4096
    max_auth_failures: int = 3  # failures per stream; the next failure ends the stream
    # failed logins per source address (all streams); then <auth/> from there ends the stream
    max_failures_per_address: int = 20
    conflict_policy: str = "override"  # RFC 6120 §7.7.2.2: override | rename | refuse
    registration: str = "closed"  # XEP-0077 before auth: closed (service-unavailable) | open (form)
    # RFC 6120 §8.1.2.1 / §4.9.3.9: a stanza whose 'from' is not the sender's JID gets it
    # overridden ("override") or ends the stream with <invalid-from/> ("stream-error")
    invalid_from: str = "override"
    log_file: Path | None = None

    def __post_init__(self) -> None:
        self.flaws = frozenset(self.flaws)
        unknown = sorted(self.flaws - FLAWS.keys())
        if unknown:
            raise ValueError(f"unknown flaw(s) {', '.join(unknown)}; known: {', '.join(sorted(FLAWS))}")
        if self.conflict_policy not in CONFLICT_POLICIES:
            raise ValueError(f"conflict_policy must be one of {CONFLICT_POLICIES}")
        if self.registration not in ("closed", "open"):
            raise ValueError("registration must be closed or open")
        if self.invalid_from not in ("override", "stream-error"):
            raise ValueError("invalid_from must be override or stream-error")

    def has(self, flaw: str) -> bool:
        assert flaw in FLAWS, flaw
        return flaw in self.flaws

    # -- derived settings ----------------------------------------------------------------------

    @property
    def starttls_offered(self) -> bool:
        return self.offer_starttls and not self.has("no-starttls")

    @property
    def tls_required(self) -> bool:
        """SASL only after TLS (only meaningful when STARTTLS is offered)."""
        return self.starttls_offered and not (self.has("tls-optional") or self.has("plain-before-tls"))

    def offered(self, tls: bool) -> list[str]:
        """The mechanisms offered on a stream with or without TLS (before authentication)."""
        mechs = list(self.mechanisms)
        if self.has("no-scram-sha-1"):
            mechs = [m for m in mechs if m != "SCRAM-SHA-1"]
        if self.has("no-scram-sha-1-plus"):
            mechs = [m for m in mechs if m != "SCRAM-SHA-1-PLUS"]
        if tls:
            return mechs
        if self.tls_required:
            return []
        plain_ok = self.has("plain-before-tls")
        return [
            m for m in mechs if not m.endswith("-PLUS") and m != "EXTERNAL" and (m != "PLAIN" or plain_ok)
        ]
