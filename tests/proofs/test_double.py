"""The double's own parts that the proofs rely on but do not exercise one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from harness.actors import Account, ActorContext, TargetView
from harness.protocols.xmpp.raw import RawXmppActor
from harness.verdict import Failed
from tests.doubles.actors import DOMAIN, PASSWORD
from tests.doubles.saslprep import SaslprepError, saslprep
from tests.doubles.xmpp_server import FLAWS, DoubleConfig, Pki, XmppDouble, make_pki

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("I\u00adX", "IX"),  # RFC 4013 §3 examples: SOFT HYPHEN mapped to nothing
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),  # <ORDINAL INDICATOR> -> NFKC
        ("\u2168", "IX"),  # <ROMAN NUMERAL NINE> -> NFKC
        ("cafe\u0301\u00a0noir", "caf\u00e9 noir"),  # the saslprep scenario's password
    ],
)
def test_saslprep_rfc4013_examples(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared


@pytest.mark.parametrize("bad", ["\u0007", "\u0627\u0031"])  # control; bidi rule (RFC 4013 §3)
def test_saslprep_prohibits(bad: str) -> None:
    with pytest.raises(SaslprepError):
        saslprep(bad)


def test_flaws_are_checked_and_documented() -> None:
    with pytest.raises(ValueError, match="unknown flaw"):
        DoubleConfig(flaws={"no-such-flaw"})
    assert all(description.strip() for description in FLAWS.values())
    assert DoubleConfig().tls_required and DoubleConfig().offered(tls=False) == []
    assert "PLAIN" in DoubleConfig(flaws={"plain-before-tls"}).offered(tls=False)
    assert "PLAIN" not in DoubleConfig(flaws={"tls-optional"}).offered(tls=False)


# -- routing, presence and subscriptions (RFC 6121) ----------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), DOMAIN)


Users = dict[str, RawXmppActor]


def with_users(
    pki: Pki,
    tmp_path: Path,
    body: Callable[[Users], Awaitable[None]],
    names: tuple[str, ...] = ("alice", "bob"),
    flaws: tuple[str, ...] = (),
) -> None:
    """Run ``body`` with one connected, authenticated raw actor per name (each its own account)."""

    async def main() -> None:
        config = DoubleConfig(accounts={name: PASSWORD for name in names}, flaws=frozenset(flaws))
        async with XmppDouble(pki, config) as server:
            view = TargetView("double", "double", DOMAIN, server.host, dict(server.ports), pki.ca_file)
            users = {
                name: RawXmppActor(
                    ActorContext(
                        name=name,
                        target=view,
                        account=Account(name, DOMAIN, PASSWORD),
                        evidence_dir=tmp_path / name,
                        keylog_file=tmp_path / "keylog.txt",
                        step_timeout=5.0,
                    ),
                    {},
                )
                for name in names
            }
            try:
                for user in users.values():
                    await user.connect()
                    await user.authenticate()
                await body(users)
            finally:
                for user in users.values():
                    await user.close()

    asyncio.run(main())


def test_subscription_both_ways_and_presence(pki: Pki, tmp_path: Path) -> None:
    async def body(users: Users) -> None:
        alice, bob = users["alice"], users["bob"]
        a, b = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
        for user in (alice, bob):
            await user.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
            await user.expect("<iq type='result' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
            await user.send("<presence/>")
            # RFC 6121 §4.2.2: initial presence comes back to the user's own resources
            await user.expect(f"<presence from='{user.full_jid}' m:without='type'/>")
        await alice.send(f"<presence to='{b}/any' type='subscribe' id='s1'/>")  # to: bare JID
        await bob.expect(f"<presence type='subscribe' id='s1' from='{a}' to='{b}'/>")
        await alice.expect(
            f"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='{b}' subscription='none' "
            "ask='subscribe'/></query></iq>"
        )
        await bob.send(f"<presence to='{a}' type='subscribed'/>")
        await bob.expect(
            f"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='{a}' subscription='from'/></query></iq>"
        )
        await alice.expect(f"<presence type='subscribed' from='{b}'/>")
        await alice.expect(
            f"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='{b}' subscription='to'/></query></iq>"
        )
        await alice.expect(f"<presence from='{bob.full_jid}' to='{a}' m:without='type'/>")  # §3.1.5
        # a repeated approval is ignored (§3.1.5); a repeated request is approved by bob's server
        # at once (§3.1.3) and that approval ignored by alice's, which has no request pending
        await bob.send(f"<presence to='{a}' type='subscribed'/>")
        await alice.send(f"<presence to='{b}' type='subscribe'/>")
        await alice.expect_nothing(["<presence type='subscribed'/>", "<presence type='subscribe'/>"])
        await bob.expect_nothing("<presence type='subscribe'/>")
        # bob's presence now reaches alice; alice's does not reach bob
        await bob.send("<presence><show>away</show></presence>")
        await alice.expect(f"<presence from='{bob.full_jid}'><show>away</show></presence>")
        await alice.send("<presence><show>dnd</show></presence>")
        await bob.expect_nothing(f"<presence from='{alice.full_jid}'/>")
        await alice.send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
        await alice.expect(
            f"<iq type='result' id='r2'><query xmlns='jabber:iq:roster'><item jid='{b}' "
            "subscription='to'/></query></iq>"
        )

    with_users(pki, tmp_path, body)


def test_subscription_request_waits_for_an_available_resource(pki: Pki, tmp_path: Path) -> None:
    async def body(users: Users) -> None:
        alice, bob = users["alice"], users["bob"]
        await alice.send(f"<presence to='bob@{DOMAIN}' type='subscribe' id='s1'/>")
        await bob.expect_nothing("<presence type='subscribe'/>")  # bob is not available yet
        await bob.send("<presence/>")
        await bob.expect(f"<presence type='subscribe' id='s1' from='alice@{DOMAIN}'/>")
        # a request to a user that does not exist is declined, to the interested resources
        await alice.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        await alice.send(f"<presence to='nobody@{DOMAIN}' type='subscribe'/>")
        await alice.expect(f"<presence type='unsubscribed' from='nobody@{DOMAIN}'/>")

    with_users(pki, tmp_path, body)


def test_iq_to_a_full_jid_needs_shared_presence(pki: Pki, tmp_path: Path) -> None:
    async def body(users: Users) -> None:
        alice, bob = users["alice"], users["bob"]
        request = f"<iq type='get' id='v1' to='{bob.full_jid}'><query xmlns='jabber:iq:version'/></iq>"
        await alice.send(request)
        refused = f"<iq type='error' id='v1' from='{bob.full_jid}'><error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></iq>"
        await alice.expect(refused)
        await bob.expect_nothing("<iq type='get'/>")
        await bob.send(f"<presence to='{alice.full_jid}'/>")  # directed presence: shared
        await alice.expect(f"<presence from='{bob.full_jid}' to='{alice.full_jid}' m:without='type'/>")
        await alice.send(request)
        await bob.expect(f"<iq type='get' id='v1' from='{alice.full_jid}'/>")
        await bob.send(f"<iq type='result' id='v1' to='{alice.full_jid}'/>")
        await alice.expect(f"<iq type='result' id='v1' from='{bob.full_jid}'/>")
        # a result to a resource nobody holds is dropped; a request gets service-unavailable
        await bob.send(f"<iq type='result' id='v2' to='alice@{DOMAIN}/gone'/>")
        await bob.send(f"<iq type='get' id='v3' to='alice@{DOMAIN}/gone'/>")
        await bob.expect(
            f"<iq type='error' id='v3'><error><service-unavailable xmlns='{STANZAS}'/></error></iq>"
        )

    with_users(pki, tmp_path, body)

    async def unchecked(users: Users) -> None:
        alice, bob = users["alice"], users["bob"]
        await alice.send(f"<iq type='get' id='v1' to='{bob.full_jid}'/>")
        await bob.expect(f"<iq type='get' id='v1' from='{alice.full_jid}'/>")

    with_users(pki, tmp_path, unchecked, flaws=("iq-to-full-jid-unchecked",))


def test_unknown_users_and_domains(pki: Pki, tmp_path: Path) -> None:
    async def body(users: Users) -> None:
        alice = users["alice"]
        await alice.send(
            f"<iq type='get' id='u1' to='nosuch@{DOMAIN}'><query xmlns='jabber:iq:version'/></iq>"
        )
        await alice.expect(
            f"<iq type='error' id='u1' from='nosuch@{DOMAIN}'><error type='cancel'>"
            f"<service-unavailable xmlns='{STANZAS}'/></error></iq>"
        )
        # RFC 6120 §10.4.3: another domain cannot be resolved, so the stanza bounces at once
        await alice.send("<message to='bob@elsewhere.test' id='m1' type='chat'><body>hi</body></message>")
        await alice.expect(
            f"<message type='error' id='m1' from='bob@elsewhere.test' to='{alice.full_jid}'><body>hi</body>"
            f"<error type='cancel'><remote-server-not-found xmlns='{STANZAS}'/></error></message>"
        )
        await alice.send("<iq type='get' id='u2' to='elsewhere.test'><ping xmlns='urn:xmpp:ping'/></iq>")
        await alice.expect(
            f"<iq type='error' id='u2'><error><remote-server-not-found xmlns='{STANZAS}'/></error></iq>"
        )
        await alice.send("<presence to='bob@elsewhere.test' type='subscribe'/>")
        await alice.expect(
            f"<presence type='error'><error><remote-server-not-found xmlns='{STANZAS}'/></error></presence>"
        )
        # no error in reply to an error or a result
        await alice.send("<iq type='result' id='u3' to='elsewhere.test'/>")
        await alice.send("<message type='error' to='bob@elsewhere.test'/>")
        await alice.expect_nothing(["<iq type='error'/>", "<message type='error'/>"])

    with_users(pki, tmp_path, body, names=("alice",))

    async def flawed(users: Users) -> None:
        alice = users["alice"]
        await alice.send(f"<iq type='get' id='u1' to='nosuch@{DOMAIN}'/>")
        await alice.expect(
            f"<iq type='error' id='u1'><error><item-not-found xmlns='{STANZAS}'/></error></iq>"
        )
        await alice.send("<message to='bob@elsewhere.test' type='chat'><body>hi</body></message>")
        await alice.expect_nothing("<message type='error'/>")

    with_users(
        pki,
        tmp_path,
        flawed,
        names=("alice",),
        flaws=("unknown-user-item-not-found", "no-bounce-unknown-domain"),
    )


def test_routing_flaws(pki: Pki, tmp_path: Path) -> None:
    async def body(users: Users) -> None:
        alice, bob = users["alice"], users["bob"]
        await alice.send(f"<message to='{bob.full_jid}' type='chat'><body>lost</body></message>")
        await bob.expect_nothing("<message/>")
        await alice.send(f"<message to='{alice.full_jid}' type='chat'><body>loop</body></message>")
        await alice.expect(f"<message from='{alice.full_jid}'><body>loop</body></message>")
        await bob.send(f"<presence to='{alice.full_jid}'/>")
        await alice.expect(f"<presence from='{bob.full_jid}'/>")
        await alice.send(f"<iq type='get' id='q1' to='{bob.full_jid}'/>")
        await alice.expect(
            f"<iq type='error' id='q1'><error><service-unavailable xmlns='{STANZAS}'/></error></iq>"
        )
        await bob.send(f"<iq type='result' id='q2' to='{alice.full_jid}'/>")
        await alice.expect_nothing("<iq id='q2'/>")
        await bob.send("<presence/>")
        await alice.send(f"<presence to='bob@{DOMAIN}' type='subscribe'/>")
        await bob.expect(f"<presence type='subscribe' from='{alice.full_jid}'/>")
        await bob.send(f"<presence to='alice@{DOMAIN}' type='subscribed'/>")
        with pytest.raises(Failed):
            await alice.expect(f"<presence from='{bob.full_jid}' m:without='type'/>", within=0.5)

    flaws = (
        "drop-routed-messages",
        "iq-to-full-jid-refused",
        "iq-result-not-delivered",
        "subscription-from-full-jid",
        "no-presence-after-approval",
    )
    with_users(pki, tmp_path, body, flaws=flaws)


# -- multi-user chat (XEP-0045) -----------------------------------------------------------------

MUC_USER = "http://jabber.org/protocol/muc#user"
ROOM = f"lobby@conference.{DOMAIN}"
INSTANT = (
    "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"
)


def join(nick: str) -> str:
    return f"<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"


def occupant(
    nick: str, item: str, status: str = "<status m:absent='true'/>", kind: str = "m:without='type'"
) -> str:
    """A pattern for the presence of ``ROOM/nick`` (available unless ``kind`` says otherwise)."""
    return f"<presence from='{ROOM}/{nick}' {kind}><x xmlns='{MUC_USER}'>{item}{status}</x></presence>"


OWNER = "<item affiliation='owner' role='moderator'/>"
PARTICIPANT = "<item affiliation='none' role='participant'/>"
SELF = "<status code='110'/>"


def test_muc_room_lifecycle(pki: Pki, tmp_path: Path) -> None:
    async def body(users: Users) -> None:
        alice, bob, carol = users["alice"], users["bob"], users["carol"]
        await bob.send(join("bob"))  # a new room: bob owns it, and it is locked (§10.1.1)
        await bob.expect(occupant("bob", OWNER, SELF + "<status code='201'/>"))
        await alice.send(join("alice"))
        await alice.expect(
            f"<presence type='error' from='{ROOM}/alice'><error><item-not-found xmlns='{STANZAS}'/></error></presence>"
        )
        await alice.send(f"<iq type='set' id='c1' to='{ROOM}'>{INSTANT}</iq>")
        await alice.expect(f"<iq type='error' id='c1'><error><forbidden xmlns='{STANZAS}'/></error></iq>")
        await bob.send(f"<iq type='set' id='c2' to='{ROOM}'>{INSTANT}</iq>")
        await bob.expect(f"<iq type='result' id='c2' from='{ROOM}' to='{bob.full_jid}'/>")
        # a join: the occupants' presence to the newcomer, the newcomer's to all (§7.2.2, §7.2.3)
        await alice.send(join("alice"))
        await alice.expect(occupant("bob", OWNER))
        await alice.expect(occupant("alice", PARTICIPANT, SELF))
        await bob.expect(occupant("alice", PARTICIPANT))
        await carol.send(join("alice"))
        await carol.expect(f"<presence type='error'><error><conflict xmlns='{STANZAS}'/></error></presence>")
        await carol.send(f"<message to='{ROOM}' type='groupchat'><body>intruder</body></message>")
        await carol.expect(
            f"<message type='error'><error><not-acceptable xmlns='{STANZAS}'/></error></message>"
        )
        await alice.send(f"<message to='{ROOM}' type='groupchat' id='g1'><body>hi</body></message>")
        for user in (alice, bob):  # §7.4: to every occupant, from the sender's occupant JID
            await user.expect(
                f"<message type='groupchat' id='g1' from='{ROOM}/alice' to='{user.full_jid}'><body>hi</body></message>"
            )
        # leaving: by unavailable presence, or when the connection ends (§7.14)
        await alice.send(f"<presence to='{ROOM}/alice' type='unavailable'/>")
        gone = "<item role='none'/>"
        await alice.expect(occupant("alice", gone, SELF, "type='unavailable'"))
        await bob.expect(occupant("alice", gone, kind="type='unavailable'"))
        await carol.send(join("carol"))
        await carol.expect(occupant("carol", PARTICIPANT, SELF))
        await bob.expect(occupant("carol", PARTICIPANT))
        await carol.close()
        await bob.expect(occupant("carol", gone, kind="type='unavailable'"))
        # the last occupant leaves: the room is gone, the next join creates it anew
        await bob.send(f"<presence to='{ROOM}/bob' type='unavailable'/>")
        await bob.expect(occupant("bob", "<item role='none'/>", SELF, "type='unavailable'"))
        await alice.send(join("alice"))
        await alice.expect(occupant("alice", OWNER, SELF + "<status code='201'/>"))

    with_users(pki, tmp_path, body, names=("alice", "bob", "carol"))


def test_muc_flaws(pki: Pki, tmp_path: Path) -> None:
    async def body(users: Users) -> None:
        alice, bob = users["alice"], users["bob"]
        await bob.send(join("bob"))
        await bob.expect(occupant("bob", OWNER, "<status code='201'/><status code='110' m:absent='true'/>"))
        await bob.send(f"<iq type='set' id='c1' to='{ROOM}'>{INSTANT}</iq>")
        await bob.expect(f"<iq type='result' id='c1' from='{ROOM}'/>")
        await alice.send(join("alice"))
        await alice.expect(occupant("bob", OWNER))
        await alice.expect(occupant("alice", PARTICIPANT))
        await bob.expect_nothing(f"<presence from='{ROOM}/alice'/>")

    with_users(pki, tmp_path, body, flaws=("muc-no-join-broadcast", "muc-no-self-presence-status"))
