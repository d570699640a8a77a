"""Guests of the workspace (users.info's `is_restricted`: a multi-channel guest; with
`is_ultra_restricted`, a single-channel one) are contractors, agencies or customers the
merchant let into a channel. They are of the workspace by `team_id`, so the check for another
organisation let them read the merchant's customers; they are refused everywhere a member of
another organisation is, in the same words, and never count as team leads."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import text

from bot.campaigns.service import create_campaign
from bot.imports.importer import import_files
from bot.leads import lead_ids
from bot.workspaces import ensure_workspace
from handlers.ids import Action
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_contact_search import GUEST, GUESTS
from tests.handlers.test_decisions import _start
from tests.handlers.test_home import _action_ids, _open_home
from tests.handlers.test_hostile import (
    non_member_clicks_in_the_reviews_channel,
    review_upload_into_a_new_segment,
)
from tests.handlers.test_import_flow import _count
from tests.handlers.test_segments import _button

TEAM = "T0001"
NOT_A_MEMBER = "Only members of this workspace can see or change its imports and segments."


async def _vip(app: Harness) -> None:
    """Secret VIP (ada and bob) and the campaign Spring."""
    await ensure_workspace(app.db, TEAM)
    csv = b"email,first_name,last_name\nada@example.com,Ada,Lovelace\nbob@example.com,Bob,Adams\n"
    await import_files(app.db, TEAM, [("people.csv", io.BytesIO(csv))], segment="Secret VIP",
                       create_segment=True)  # fmt: skip
    await create_campaign(app.db, TEAM, "Spring", store_url="https://shop.example",
                          created_by=LEAD)  # fmt: skip


def _shows_nothing(shown: Any) -> None:
    words = json.dumps(shown, ensure_ascii=False)
    for secret in ("example.com", "Lovelace", "Secret VIP", "Spring", "q3.csv", f"<@{LEAD}>"):
        assert secret not in words, (secret, words[:500])


@pytest.mark.parametrize("guest", GUESTS)
@pytest.mark.parametrize(("typed", "refused"), [
    ("contacts a", "Only members of this workspace can search its contacts."),
    ("segments", NOT_A_MEMBER),
    ("campaigns", "Only members of this workspace can see its campaigns."),
    ("leads", "Only members of this workspace can see its team leads."),
])  # fmt: skip
async def test_a_guest_typing_a_listing_command_is_refused_as_an_outsider(
    app: Harness, guest: dict[str, bool], typed: str, refused: str,
) -> None:  # fmt: skip
    """Each answered a guest with the workspace's contacts, segments (names and sizes),
    campaigns or team leads. One users.info decides it, as for anyone else."""
    await _vip(app)
    app.slack.users[GUEST] = dict(guest)
    before = len(app.slack.calls_to("users.info"))
    answer = await app.listing(typed, user=GUEST)
    assert answer["text"] == refused
    _shows_nothing(answer)
    assert len(app.slack.calls_to("users.info")) - before == 1


@pytest.mark.parametrize("guest", GUESTS)
async def test_a_guest_exporting_a_segment_gets_no_csv_nor_the_leads_names(
    app: Harness, guest: dict[str, bool],
) -> None:  # fmt: skip
    """*Export CSV* on a list left in a channel told a guest "Only team leads can export
    segments. Ask <@U…>.": whom to ask for the customer list. They are told what an outsider
    is, and nothing is uploaded."""
    await _vip(app)
    app.slack.users[GUEST] = dict(guest)
    listing = await app.listing("segments")  # a lead's list; its button clicked by the guest
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    answers = await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=GUEST)
    assert answers[-1]["text"] == "Only members of this workspace can export segments."
    _shows_nothing(answers)
    assert app.slack.uploads == []


@pytest.mark.parametrize("guest", GUESTS)
async def test_a_guest_in_the_reviews_channel_sees_no_staged_contacts(
    app: Harness, guest: dict[str, bool],
) -> None:  # fmt: skip
    """A review posted in a channel with a guest in it: *Review contacts* showed them every
    staged contact's email and name, *Preview only* and *All sources* the import; the import
    form, an upload's offer and its segment menu were theirs too. Each is refused in the
    words a member of another organisation is told, and nothing is made."""
    message, batch = await _start(app)
    app.slack.users[GUEST] = dict(guest)
    offer = await non_member_clicks_in_the_reviews_channel(app, GUEST, message, batch)
    await review_upload_into_a_new_segment(app, GUEST, offer)
    told = [e["text"] for e in app.slack.ephemerals if e["user"] == GUEST]
    assert told == [NOT_A_MEMBER] * 3  # contacts, preview, review import
    shown = app.slack.open_views(GUEST)
    assert json.dumps(shown).count(NOT_A_MEMBER) == 2  # All sources, the import form
    _shows_nothing(shown)
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE name = 'Partners'") == 0
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 1


@pytest.mark.parametrize("guest", GUESTS)
@pytest.mark.parametrize("workspace_exists", [True, False], ids=["known", "new"])
async def test_a_guests_home_shows_nothing_of_the_workspace(
    app: Harness, guest: dict[str, bool], workspace_exists: bool,
) -> None:  # fmt: skip
    """Home listed segments, campaigns and imports to a guest, with *Search contacts*."""
    if workspace_exists:
        await _vip(app)
    app.slack.users[GUEST] = dict(guest)
    view = await _open_home(app, GUEST)
    assert "Only members of this workspace" in json.dumps(view["blocks"])
    assert _action_ids(view) == []
    _shows_nothing(view)
    assert await _count(app, "SELECT COUNT(*) FROM home_viewer WHERE user_id = 'U0GUEST'") == 0


@pytest.mark.parametrize("flags", [
    pytest.param({"is_restricted": True}, id="TEAM_LEADS-guest"),
    pytest.param({"is_restricted": True, "is_admin": True}, id="admin-flagged-guest"),
])  # fmt: skip
async def test_a_guest_is_never_a_team_lead(app: Harness, flags: dict[str, bool]) -> None:
    """TEAM_LEADS names LEAD, whom Slack now calls a guest: the first check kept them on the
    list (they are of this workspace), a lead for good without asking Slack again, who then
    exported the customers. A guest leaves the list as someone of another workspace does; an
    admin flag on a guest (Slack sets none) counts for nothing either."""
    await _vip(app)
    listing = await app.listing("segments", user=REP)  # a member's list: the buttons are there
    app.slack.users[LEAD] = dict(flags)
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    answers = await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=LEAD)
    assert answers[-1]["text"] == "Only members of this workspace can export segments."
    assert app.slack.uploads == []
    assert await _count(app, "SELECT COUNT(*) FROM team_lead WHERE user_id = 'U0002'") == 0
    assert (await app.listing("contacts a", user=LEAD))["text"] == (
        "Only members of this workspace can search its contacts.")


async def test_a_guest_the_release_before_checked_into_the_leads_is_asked_about_again(
    app: Harness,
) -> None:  # fmt: skip
    """The release before checked a TEAM_LEADS lead by team alone and marked them checked
    ("seed:checked"): a guest named there was checked in, and a checked lead is a lead without
    asking Slack again, so upgrading left them exporting the customers. Their mark is asked
    about again once: a guest leaves the list, a member stays checked (one users.info, then
    none)."""
    await _vip(app)
    listing = await app.listing("segments", user=REP)
    assert await lead_ids(app.db, TEAM, [LEAD]) == [LEAD]  # seeded, unchecked
    async with app.db.begin() as conn:  # what the release before left of its check
        await conn.execute(text("UPDATE team_lead SET added_by = 'seed:checked' "
                                "WHERE user_id = :u"), {"u": LEAD})  # fmt: skip
    app.slack.users[LEAD] = {"is_restricted": True}
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    answers = await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=LEAD)
    assert answers[-1]["text"] == "Only members of this workspace can export segments."
    assert app.slack.uploads == []
    assert await _count(app, "SELECT COUNT(*) FROM team_lead WHERE user_id = 'U0002'") == 0


async def test_a_member_the_release_before_checked_into_the_leads_stays_a_lead(
    app: Harness,
) -> None:  # fmt: skip
    """The same mark on a member: asked about once, and a lead without asking after."""
    await _vip(app)
    listing = await app.listing("segments", user=REP)
    assert await lead_ids(app.db, TEAM, [LEAD]) == [LEAD]
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE team_lead SET added_by = 'seed:checked' "
                                "WHERE user_id = :u"), {"u": LEAD})  # fmt: skip
    value = _button(listing, Action.SEGMENT_EXPORT, "Secret VIP")["value"]
    await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=LEAD)
    asked = len(app.slack.calls_to("users.info"))
    await app.click_in(listing, Action.SEGMENT_EXPORT, value, user=LEAD)
    assert len(app.slack.uploads) == 2
    assert len(app.slack.calls_to("users.info")) == asked  # checked: not asked again
    assert await _count(app, "SELECT COUNT(*) FROM team_lead WHERE user_id = 'U0002'") == 1
