"""The authorization catalogue on the real Debian servers: every id of the catalogue ran on every
target, no error cells, every unsupported cell names what is missing, absence proven by
barriers, and the benchmark script prints what the absence checks cost."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.integration.conftest import LOCAL_TARGETS, ROOT, error_cells, missing_items

# The catalogue as the issue lists it (scenarios may add more ids).
CATALOGUE = (
    "authz.presence.no-leak-without-subscription",
    "authz.presence.subscription-requires-approval",
    "authz.presence.unsubscribe-stops-flow",
    "authz.presence.directed-presence-only-to-target",
    "authz.roster.push-only-to-owner",
    "authz.roster.get-other-user-forbidden",
    "authz.stanza.from-stamped",
    "authz.stanza.spoofed-from-rejected",
    "authz.blocking.block-messages",
    "authz.blocking.block-presence",
    "authz.blocking.blocked-user-gets-error-or-nothing",
    "authz.muc.members-only-denies-non-member",
    "authz.muc.password-required",
    "authz.muc.banned-user-rejected",
    "authz.muc.moderated-visitor-cannot-speak",
    "authz.muc.non-owner-cannot-configure",
    "authz.muc.kick-requires-moderator",
    "authz.pep.presence-access-model",
    "authz.pep.whitelist-access-model",
    "authz.pubsub.publish-requires-publisher",
    "authz.mam.only-owner-reads-archive",
    "authz.private.other-user-forbidden",
    "authz.vcard.only-owner-edits",
    "authz.admin.adhoc-denied-to-non-admin",
    "authz.admin.adhoc-allowed-to-admin",
)

# An unsupported reason names the missing feature by its specification: what service discovery
# or the catalogue found missing, or the feature a knob the product lacks would turn on.
NAMES_WHAT_IS_MISSING = re.compile(r"XEP-\d{4}|RFC \d{4}")


def test_the_catalogue_is_complete(authz_scenarios):
    ids = {s.id for s in authz_scenarios}
    assert set(CATALOGUE) - ids == set()


def test_every_authorization_scenario_ran_on_every_target(authz_run, authz_scenarios):
    assert missing_items(authz_run, authz_scenarios) == []


def test_no_error_cells(authz_run):
    assert error_cells(authz_run) == []


def test_every_unsupported_cell_names_the_missing_feature(authz_run):
    vague = [
        f"{i.item_id}: {i.reason}"
        for i in authz_run.run.items
        if i.outcome == "unsupported" and not NAMES_WHAT_IS_MISSING.search(i.reason)
    ]
    assert vague == []


def test_absence_checks_ran_their_barriers(authz_run, authz_scenarios):
    """Every item that got through an expect-nothing step pinged: the stream logs of the item
    carry a barrier ping per absence check (a check that only waited would have none; the
    round trips of ``after:`` actors are not counted, as an actor whose stream the server
    closed has none to make)."""
    by_id = {s.id: s for s in authz_scenarios}
    checked = 0
    for item in authz_run.run.items:
        done = [s for s in item.steps if s["action"] == "expect-nothing"]
        if not done or item.outcome != "pass":
            continue
        scenario = by_id[item.scenario_id]
        logs = [authz_run.out / p for name, p in item.evidence.items() if name.endswith(".xmpp.log")]
        text = "".join(path.read_text() for path in logs)
        pings = len(re.findall(r"<iq type='get' id='barrier-\d+'", text))
        wanted = sum(
            1
            for step in scenario.steps
            if step.action == "expect-nothing" and step.params.get("barrier", "ping") == "ping"
        )
        assert pings >= wanted, f"{item.item_id}: {pings} barrier pings in the stream logs, {wanted} expected"
        checked += 1
    assert checked, "no passing item with an absence check"


def test_benchmark_prints_the_time_spent_in_absence_checks(authz_run):
    out = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "benchmark.py"), "--results", str(authz_run.out / "results.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "Where the time goes" in out and "sum of item time (s)" in out
    setup = out.split("Target start, restart and reset times")[1].split("Absence checks")[0]
    absence = out.split("Absence checks per target")[1]
    for target in LOCAL_TARGETS:
        assert any(line.split()[:2] == [target, "start"] for line in setup.splitlines() if line.strip()), (
            setup
        )
        row = next(line for line in absence.splitlines() if line.startswith(f"{target} "))
        checks = int(row.split()[1])
        assert checks > 0, row
