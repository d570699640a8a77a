"""A team lead listed by hand is trusted without asking Slack again (`role_in`: no users.info
for them, one call saved per click). Deactivated, made a guest or moved to another workspace
in Slack afterwards, they stayed a lead for good: a contractor downgraded to guest still
approved imports and exported the customer list. Slack says so with `user_change`, which the
bot now hears: such a lead leaves the list (one conditional delete, audited as Slack's), and
anyone else's `user_change`, which big workspaces send all day, costs no write and no call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy import text as sa_text

from bot.audit import recent, sentence
from handlers.ids import Action
from models import Database, TeamLead
from models.clock import utcnow
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_guests import _vip
from tests.handlers.test_leads_and_audit import (
    _audit_rows,
    _click,
    _command,
    _leads_in_db,
    _picked,
)
from tests.handlers.test_segments import _button

TEAM = "T0001"
HAND = "U0HAND"  # a lead added with /referral leads (not TEAM_LEADS)


def _user(user_id: str, **flags: Any) -> dict[str, Any]:
    """The `user` of a user_change, as Slack sends it (the users.info user object)."""
    user = {"id": user_id, "team_id": TEAM, "name": user_id.lower(), "real_name": user_id,
            "deleted": False, "is_admin": False, "is_owner": False, "is_primary_owner": False,
            "is_restricted": False, "is_ultra_restricted": False, "is_bot": False,
            "is_app_user": False, "updated": int(time.time()), "tz": "Europe/London",
            "profile": {"real_name": user_id, "display_name": user_id.lower(),
                        "status_text": "riding a train", "team": TEAM}}  # fmt: skip
    return user | flags


def _user_change(user_id: str, **flags: Any) -> dict[str, Any]:
    return {"type": "user_change", "user": _user(user_id, **flags),
            "cache_ts": int(time.time()), "event_ts": f"{time.time():.6f}"}  # fmt: skip


async def _hand_listed(app: Harness, user_id: str = HAND) -> None:
    """`user_id` added by LEAD through the list's picker, as people do."""
    shown = await _command(app, "leads")
    await _click(app, Action.LEADS_ADD, None, shown, state=_picked(user_id))
    assert user_id in await _leads_in_db(app.db)


async def _lead_changes(db: Database) -> list[tuple[str, str, str]]:
    """The audit log's entries of lead changes (actor, action, subject), oldest first."""
    return [row for row in await _audit_rows(db) if row[1].startswith("lead.")]


@contextmanager
def _writes(db: Database) -> Iterator[list[str]]:
    """Every INSERT, UPDATE or DELETE the app's engine sends meanwhile."""
    seen: list[str] = []

    def heard(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", heard)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", heard)


DEMOTED = [
    pytest.param({"is_restricted": True}, "made a guest", id="multi-channel-guest"),
    pytest.param({"is_restricted": True, "is_ultra_restricted": True}, "made a guest",
                 id="single-channel-guest"),
    pytest.param({"deleted": True}, "deactivated", id="deactivated"),
    pytest.param({"team_id": "T0OTHER"}, "another workspace", id="moved-out"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "why"), DEMOTED)
async def test_a_hand_listed_lead_demoted_in_slack_is_no_longer_a_lead(
    app: Harness, caplog: pytest.LogCaptureFixture, flags: dict[str, Any], why: str,
) -> None:  # fmt: skip
    await _vip(app)
    await _hand_listed(app)
    app.slack.users[HAND] = dict(flags)  # what users.info says from now on, too
    caplog.set_level(logging.INFO)
    change = _user_change(HAND, **flags)
    first = await app.requests.event(change, event_id="Ev0DEMOTED")
    again = await app.requests.event(change, event_id="Ev0DEMOTED", retry_num=1)
    await app.done()
    # they export nothing any more (the customer list was theirs to take), and the list no
    # longer names them
    listing = await app.listing("segments", user=REP)
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    answers = await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=HAND)
    assert app.slack.uploads == []
    assert answers[-1]["text"].startswith(("Only members of this workspace can export",
                                           "Only team leads can export"))  # fmt: skip
    assert f"<@{HAND}>" not in str((await _command(app, "leads"))["blocks"])
    assert HAND not in await _leads_in_db(app.db)
    assert (first.status, again.status) == (200, 200)
    # once, as Slack's, though Slack delivered it twice
    assert await _lead_changes(app.db) == [(LEAD, "lead.added", f"<@{HAND}>"),
                                           ("Slack", "lead.removed", f"<@{HAND}>")]  # fmt: skip
    said = sentence((await recent(app.db, TEAM, limit=1))[0])
    assert said.startswith(f"removed <@{HAND}> from the team leads") and why in said, said
    logged = [r.getMessage() for r in caplog.records if HAND in r.getMessage()
              and "team leads" in r.getMessage()]  # fmt: skip
    assert len(logged) == 1 and TEAM in logged[0] and why in logged[0], logged


# the database refusing to take anyone off the team leads, as a failing one would
_REFUSE_DELETE = {
    "sqlite": ["CREATE TRIGGER refuse_lead_delete BEFORE DELETE ON team_lead "
               "BEGIN SELECT RAISE(ABORT, 'refused'); END"],
    "postgresql": ["CREATE FUNCTION refuse_lead_delete() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'refused'; END $$",
                   "CREATE TRIGGER refuse_lead_delete BEFORE DELETE ON team_lead "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_lead_delete()"],
}  # fmt: skip
_ALLOW_DELETE = {"sqlite": ["DROP TRIGGER refuse_lead_delete"],
                 "postgresql": ["DROP TRIGGER refuse_lead_delete ON team_lead",
                                "DROP FUNCTION refuse_lead_delete"]}  # fmt: skip


async def _execute(db: Database, statements: list[str]) -> None:
    async with db.begin() as conn:
        for statement in statements:
            await conn.execute(sa_text(statement))


async def test_a_demotion_the_database_failed_to_record_is_delivered_again_and_recorded(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Taken off the list after the ack, a lead made a guest while the database failed
    stayed a lead for good: Slack had its 200 and never sent the event again. Now the event
    is answered 503 and Slack's retry takes them off, once, telling nobody of the failure."""
    await _vip(app)
    await _hand_listed(app)
    app.slack.users[HAND] = {"is_restricted": True}
    change = _user_change(HAND, is_restricted=True)
    calls = len(app.slack.calls)
    await _execute(app.db, _REFUSE_DELETE[app.db.dialect])
    try:
        first = await app.requests.event(change, event_id="Ev0REFUSED")
        await app.done()
    finally:
        await _execute(app.db, _ALLOW_DELETE[app.db.dialect])
    assert HAND in await _leads_in_db(app.db)  # nothing half done
    assert any(HAND in r.getMessage() and TEAM in r.getMessage() and "again" in r.getMessage()
               for r in caplog.records if r.levelno >= logging.WARNING), caplog.text  # fmt: skip
    # as Slack does: an event not answered 2xx comes again, with its retry number
    retries = 0
    while first.status != 200 and retries < 3:
        retries += 1
        first = await app.requests.event(change, event_id="Ev0REFUSED", retry_num=retries)
        await app.done()
    assert HAND not in await _leads_in_db(app.db)
    assert (first.status, retries) == (200, 1)
    assert await _lead_changes(app.db) == [(LEAD, "lead.added", f"<@{HAND}>"),
                                           ("Slack", "lead.removed", f"<@{HAND}>")]  # fmt: skip
    # nobody was sent "something went wrong" of it: no message, ephemeral or direct
    said = [c for c in app.slack.calls[calls:] if c.method.startswith("chat.")]
    assert said == [], said


@pytest.mark.parametrize(("user_id", "flags"), [
    pytest.param(HAND, {}, id="a-lead-editing-their-profile"),
    pytest.param(HAND, {"is_admin": True}, id="a-lead-made-an-admin"),
    pytest.param(REP, {}, id="a-member"),
    pytest.param("U0GUEST", {"is_restricted": True}, id="a-guest-not-a-lead"),
    pytest.param("U0GONE", {"deleted": True}, id="a-non-lead-deactivated"),
    pytest.param("U0OUT", {"team_id": "T0OTHER"}, id="someone-of-another-workspace"),
])  # fmt: skip
async def test_anyone_elses_user_change_writes_nothing_and_asks_slack_nothing(
    app: Harness, user_id: str, flags: dict[str, Any],
) -> None:  # fmt: skip
    await _hand_listed(app)
    await app.done()
    leads, audit = await _leads_in_db(app.db), await _audit_rows(app.db)
    calls = len(app.slack.calls)
    with _writes(app.db) as writes:
        reply = await app.requests.event(_user_change(user_id, **flags))
        await app.done()
    assert reply.status == 200
    assert writes == []
    assert len(app.slack.calls) == calls
    assert (await _leads_in_db(app.db), await _audit_rows(app.db)) == (leads, audit)


async def test_a_seeded_lead_made_a_guest_leaves_the_list_too(app: Harness) -> None:
    """TEAM_LEADS' lead, checked once by Slack (a lead without asking again since), is
    taken off as a lead added by hand is."""
    await _vip(app)
    await _command(app, "leads")  # seeded, and the first check: LEAD is of this workspace
    assert await _leads_in_db(app.db) == [LEAD]
    app.slack.users[LEAD] = {"is_restricted": True}
    assert (await app.requests.event(_user_change(LEAD, is_restricted=True))).status == 200
    await app.done()
    assert await _leads_in_db(app.db) == []
    assert await _lead_changes(app.db) == [("Slack", "lead.removed", f"<@{LEAD}>")]


async def test_a_lead_made_a_guest_has_their_open_home_republished_without_the_workspace(
    app: Harness,
) -> None:  # fmt: skip
    """Their Home, opened as a lead, kept the segments and the lead's buttons (*New
    campaign*, *Connect Mailchimp*) until they opened it again."""
    from tests.handlers.test_home import _action_ids, _open_home

    await _vip(app)
    await _hand_listed(app)
    assert Action.CAMPAIGN_CREATE in _action_ids(await _open_home(app, HAND))
    app.slack.users[HAND] = {"is_restricted": True}
    assert (await app.requests.event(_user_change(HAND, is_restricted=True))).status == 200
    await app.settle()
    home = app.slack.home_views[HAND]
    assert _action_ids(home) == [] and "Secret VIP" not in str(home["blocks"])
    # no longer a viewer (the refresh that took them off the leads forgot them): a later
    # change doesn't republish theirs, and their next status edit costs nothing, as anyone
    # else's. They were republished the outsider's Home after every change, for 30 days.
    await _open_home(app, REP)
    published, to_rep = len(_published_to(app, HAND)), len(_published_to(app, REP))
    await _hand_listed(app, "U0NEW")  # a change that republishes the open Homes
    await app.settle()
    assert len(_published_to(app, REP)) > to_rep
    assert len(_published_to(app, HAND)) == published
    calls = len(app.slack.calls)
    assert (await app.requests.event(_user_change(HAND, is_restricted=True))).status == 200
    await app.settle()
    assert len(app.slack.calls) == calls


async def test_a_viewer_who_opens_home_while_a_refresh_finds_them_an_outsider_stays_one(
    app: Harness,
) -> None:  # fmt: skip
    """A lead made a guest, then a member again, opened Home while the refresh that took
    them off the list was publishing them the outsider's Home: that refresh, done, forgot
    them (it had found them an outsider a moment before), so the Home they had just opened
    was republished after no change, until they opened the tab again."""
    from tests.handlers.test_home import _home_opened, _open_home

    await _vip(app)
    await _hand_listed(app)
    await _open_home(app, HAND)
    app.slack.users[HAND] = {"is_restricted": True}
    gate = app.slack.hold("views.publish")
    assert (await app.requests.event(_user_change(HAND, is_restricted=True))).status == 200
    await app.slack.wait_for("views.publish", len(app.slack.calls_to("views.publish")) + 1)
    # the refresh publishes the outsider's Home: held. A member again, they open the tab.
    app.slack.unhold("views.publish")
    app.slack.users[HAND] = {}
    before = await _opened_at(app, HAND)
    assert (await app.requests.event(_home_opened(HAND))).status == 200
    for _ in range(500):
        if (await _opened_at(app, HAND)) != before:
            break
        await asyncio.sleep(0.01)
    assert (await _opened_at(app, HAND)) != before, "their opening wasn't remembered"
    gate.set()
    await app.settle()
    assert await _opened_at(app, HAND) is not None, "forgotten by the refresh"
    published = len(_published_to(app, HAND))
    await _hand_listed(app, "U0NEW")  # a change that republishes the open Homes
    await app.settle()
    assert len(_published_to(app, HAND)) > published
    assert "Secret VIP" in str(app.slack.home_views[HAND]["blocks"])


async def _opened_at(app: Harness, user_id: str) -> Any:
    """When `user_id` last opened Home, as the viewers' list holds it; None: not listed."""
    async with app.db.begin() as conn:
        return (await conn.execute(sa_text(
            "SELECT opened_at FROM home_viewer WHERE team_id = :t AND user_id = :u"),
            {"t": TEAM, "u": user_id})).scalar_one_or_none()  # fmt: skip


def _published_to(app: Harness, user_id: str) -> list[Any]:
    """Every views.publish of `user_id`'s Home so far."""
    return [c for c in app.slack.calls_to("views.publish") if c.args.get("user_id") == user_id]


@pytest.mark.parametrize("flags", [
    pytest.param({"is_restricted": True}, id="made-a-guest"),
    pytest.param({"team_id": "T0OTHER"}, id="moved-out"),
])  # fmt: skip
async def test_a_member_made_a_guest_has_their_open_home_republished_without_the_workspace(
    app: Harness, flags: dict[str, Any],
) -> None:  # fmt: skip
    """Not a lead, so nothing to take off the list: their Home, opened a moment before as a
    member, kept listing the segments and campaigns (Slack keeps a published Home until the
    bot publishes another) until some change republished it, and then from users.info's
    answer kept a minute. Slack's own word is acted on at once: their Home is asked about
    afresh and shows nothing of the workspace."""
    from tests.handlers.test_home import _open_home

    await _vip(app)
    assert "Secret VIP" in str((await _open_home(app, REP))["blocks"])
    app.slack.users[REP] = dict(flags)
    assert (await app.requests.event(_user_change(REP, **flags))).status == 200
    await app.settle()
    home = app.slack.home_views[REP]
    assert "Only members of this workspace" in str(home["blocks"])
    assert "Secret VIP" not in str(home["blocks"]) and "Spring" not in str(home["blocks"])
    assert await _leads_in_db(app.db) == [LEAD]  # nobody's list changed
    # no longer a viewer: their next status edit costs nothing, as anyone else's
    calls = len(app.slack.calls)
    assert (await app.requests.event(_user_change(REP, **flags))).status == 200
    await app.settle()
    assert len(app.slack.calls) == calls


async def test_a_guest_the_shell_made_a_lead_is_asked_about_and_leaves_when_they_first_act(
    app: Harness,
) -> None:
    """`referral-bot leads add` takes an id with no Slack at hand: a guest's id pasted there
    was a lead for good, exporting the customers, where `/referral leads` refuses guests. Now
    Slack is asked once, at their first act: the guest leaves the list (audited as Slack's),
    a member stays a lead listed as the shell's without being asked again."""
    from bot.audit import CLI
    from bot.leads import NOT_A_MEMBER, add_lead, leads

    await _vip(app)
    guest, member = "U0SHGUEST", "U0SHMEMBER"
    for user_id in (guest, member):  # as `referral-bot leads add USER_ID` adds them
        assert await add_lead(app.db, TEAM, user_id, by=CLI)
    app.slack.users[guest] = {"is_restricted": True}
    app.slack.users[member] = {}
    listing = await app.listing("segments", user=REP)
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    answers = await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=guest)
    await app.done()
    assert app.slack.uploads == []
    assert answers[-1]["text"].startswith("Only members of this workspace can export"), answers
    assert guest not in await _leads_in_db(app.db)
    assert (await _lead_changes(app.db))[-1] == ("Slack", "lead.removed", f"<@{guest}>")
    said = sentence((await recent(app.db, TEAM, limit=1))[0])
    assert NOT_A_MEMBER in said, said

    asked = len(app.slack.calls_to("users.info"))
    for _ in range(2):  # asked about at the first export only
        await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=member)
        await app.done()
    assert len(app.slack.uploads) == 2
    assert len(app.slack.calls_to("users.info")) == asked + 1
    assert [(lead.user_id, lead.added_by) for lead in await leads(app.db, TEAM)
            if lead.user_id == member] == [(member, CLI)]  # fmt: skip


# ---- Slack's word lost: asked again a day later -----------------------------------------------


async def _vouched_for_days_ago(app: Harness, user_id: str, days: float) -> None:
    """As if Slack last said `user_id` may be a lead `days` ago (listed then, or asked then)."""
    then = utcnow() - timedelta(days=days)
    async with app.db.begin() as conn:
        await conn.execute(update(TeamLead).where(
            TeamLead.team_id == TEAM, TeamLead.user_id == user_id,
        ).values(added_at=then, checked_at=None))  # fmt: skip


def _asked_about(app: Harness, user_id: str) -> int:
    return sum(c.args.get("user") == user_id for c in app.slack.calls_to("users.info"))


async def _export_by(app: Harness, user_id: str) -> list[dict[str, Any]]:
    listing = await app.listing("segments", user=REP)
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    answers = await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=user_id)
    await app.done()
    return answers


@pytest.mark.parametrize(("flags", "why"), DEMOTED)
async def test_a_lead_demoted_while_no_user_change_came_is_asked_about_a_day_later(
    app: Harness, caplog: pytest.LogCaptureFixture, flags: dict[str, Any], why: str,
) -> None:  # fmt: skip
    """Slack sent user_change while serve was down (a deploy, a crash), or gave up retrying
    while the database was: the event never came again, and the lead made a guest kept
    exporting the customers for good. Their first click a day after Slack last vouched for
    them asks Slack again: they are refused, and off the list as the event would have done."""
    await _vip(app)
    await _hand_listed(app)
    app.slack.users[HAND] = dict(flags)  # demoted in Slack; no event reaches the bot
    await _vouched_for_days_ago(app, HAND, 1.01)
    caplog.set_level(logging.INFO)
    answers = await _export_by(app, HAND)
    assert app.slack.uploads == []
    assert answers[-1]["text"].startswith(("Only members of this workspace can export",
                                           "Only team leads can export")), answers  # fmt: skip
    assert HAND not in await _leads_in_db(app.db)
    assert await _lead_changes(app.db) == [(LEAD, "lead.added", f"<@{HAND}>"),
                                           ("Slack", "lead.removed", f"<@{HAND}>")]  # fmt: skip
    said = sentence((await recent(app.db, TEAM, limit=1))[0])
    assert said.startswith(f"removed <@{HAND}> from the team leads") and why in said, said
    assert any(HAND in r.getMessage() and TEAM in r.getMessage() and why in r.getMessage()
               for r in caplog.records), caplog.text  # fmt: skip


async def test_a_lead_dropped_at_a_click_has_their_open_home_republished_without_the_workspace(
    app: Harness,
) -> None:  # fmt: skip
    """As when user_change takes them off: their Home, opened as a lead, kept the segments and
    the lead's buttons until some other change republished it."""
    from tests.handlers.test_home import _action_ids, _open_home
    from tests.handlers.test_home_from_the_shell import _run_due_jobs

    await _vip(app)
    await _hand_listed(app)
    assert Action.CAMPAIGN_CREATE in _action_ids(await _open_home(app, HAND))
    app.slack.users[HAND] = {"is_restricted": True}
    await _vouched_for_days_ago(app, HAND, 2)
    await _export_by(app, HAND)
    assert HAND not in await _leads_in_db(app.db)
    await _run_due_jobs(app)  # the refresh waits a moment (REFRESH_DELAY) to gather changes
    home = app.slack.home_views[HAND]
    assert _action_ids(home) == [] and "Secret VIP" not in str(home["blocks"])


async def test_a_lead_slack_still_vouches_for_is_asked_once_a_day_not_at_every_click(
    app: Harness,
) -> None:
    await _vip(app)
    await _hand_listed(app)
    app.slack.users[HAND] = {}
    asked = _asked_about(app, HAND)  # when /referral leads added them
    await _export_by(app, HAND)  # listed a moment ago: Slack's word holds
    assert _asked_about(app, HAND) == asked
    await _vouched_for_days_ago(app, HAND, 0.99)
    await _export_by(app, HAND)
    assert _asked_about(app, HAND) == asked
    await _vouched_for_days_ago(app, HAND, 1.01)
    for _ in range(2):  # asked at the first click a day on, and its word holds a day more
        await _export_by(app, HAND)
    assert _asked_about(app, HAND) == asked + 1
    assert len(app.slack.uploads) == 4
    assert HAND in await _leads_in_db(app.db)
    assert [row for row in await _lead_changes(app.db)
            if row[1] == "lead.removed"] == []  # fmt: skip


async def test_slack_failing_when_a_lead_is_asked_about_again_leaves_them_a_lead(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A Slack outage mustn't stop every lead's approvals: the lead acts, the failure is
    logged, and their next click asks again (and, demoted, is refused then)."""
    await _vip(app)
    await _hand_listed(app)
    await _vouched_for_days_ago(app, HAND, 2)
    app.slack.users[HAND] = {"is_restricted": True}
    listing = await app.listing("segments", user=REP)
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    app.slack.outage("users.info", status=503)
    answers = await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=HAND)
    await app.done()
    assert app.slack._outages["users.info"][0] == 0  # the click met the outage
    assert answers[-1]["text"].startswith(":inbox_tray: *Secret VIP*"), answers
    assert any(r.levelno == logging.WARNING and HAND in r.getMessage() and TEAM in
               r.getMessage() for r in caplog.records), caplog.text  # fmt: skip
    assert HAND in await _leads_in_db(app.db)
    answers = await _export_by(app, HAND)  # Slack answers now: a guest
    assert answers[-1]["text"].startswith("Only members of this workspace can export"), answers
    assert len(app.slack.uploads) == 1
    assert HAND not in await _leads_in_db(app.db)
