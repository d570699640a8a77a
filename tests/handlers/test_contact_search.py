"""`/referral contacts` as people meet it over the wire: search from the command and the modal,
a contact's card, and the lead-only changes (refused for others, another workspace's ids
finding nothing, markup in names shown as typed)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
from aiohttp import ClientSession
from sqlalchemy import text

from bot import contact_admin
from bot.app import build_web_app
from bot.campaigns import service
from bot.campaigns.enroll import run_enrollment
from bot.campaigns.links import unsubscribe_link
from bot.imports.importer import import_files
from bot.web import public_routes
from bot.workspaces import ensure_workspace, find_segment
from handlers.ids import Action, BlockId, Callback
from models import CampaignState
from tests.fakes.slack_api import find_element, serve
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_targeting import _report_blocks, _targeted

TEAM = "T0001"
OTHER = "T0002"


async def _import(app: Harness, segment: str, rows: str, team: str = TEAM) -> None:
    await ensure_workspace(app.db, team)
    csv = "email,first_name,last_name\n" + rows
    await import_files(app.db, team, [("people.csv", io.BytesIO(csv.encode()))], segment=segment,
                       create_segment=True)  # fmt: skip


async def _live_campaign(app: Harness, name: str, segment: str) -> None:
    campaign = await service.create_campaign(app.db, TEAM, name, store_url="https://shop.example")
    await service.set_state(app.db, TEAM, campaign.id or 0, CampaignState.LIVE,
                            requested_by=LEAD, queue_job=False)  # fmt: skip
    found = await find_segment(app.db, TEAM, segment)
    assert found is not None
    enrollment = await service.target(app.db, TEAM, campaign.id or 0, found.id or 0,
                                      requested_by=LEAD, queue_job=False)  # fmt: skip
    assert enrollment is not None
    await run_enrollment(app.db, TEAM, enrollment, hold_seconds=0)


async def _rows(app: Harness, sql: str, **params: object) -> list[tuple[Any, ...]]:
    async with app.db.begin() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def _id(app: Harness, email: str) -> int:
    return int((await _rows(app, "SELECT id FROM contact WHERE email_key = :e", e=email))[0][0])


async def _done(app: Harness) -> None:
    """Let the listeners finish their post-ack work (no jobs: quicker than `settle`)."""
    for _ in range(2):
        await app.later.drain()
        await asyncio.sleep(0.01)


async def _command(app: Harness, query: str, user: str = REP) -> dict[str, Any]:
    """Type `/referral contacts <query>`; what the bot answered through the response_url."""
    url = app.slack.new_response_url("C0001", user_id=user)
    reply = await app.requests.slash_command(text=f"contacts {query}".strip(), user_id=user,
                                             response_url=url)  # fmt: skip
    assert reply.status == 200 and not reply.body  # acked at once, answered after
    await _done(app)
    (answer,) = app.slack.responses[url]
    assert answer["response_type"] == "ephemeral"
    return answer


async def _click(app: Harness, action: str, shown: dict[str, Any], value: str | None = None,
                 user: str = LEAD) -> dict[str, Any]:  # fmt: skip
    """Click a button of an ephemeral message (`value`: the button's own unless forged);
    returns what was posted to that click's response_url."""
    url = app.slack.new_response_url("C0001", user_id=user)
    value = value if value is not None else _value(shown, action)
    await app.requests.block_action(action, value, user_id=user, response_url=url,
                                    message={"blocks": shown["blocks"]})  # fmt: skip
    await _done(app)
    (answer,) = app.slack.responses[url]
    return answer


def _value(shown: dict[str, Any], action: str, contains: str = "") -> str:
    """The value of the first `action` button (in a block whose text has `contains`)."""
    for block in shown["blocks"]:
        found = find_element([block], action)
        if found and contains in json.dumps(block):
            return str(found[1]["value"])
    raise AssertionError(f"no {action} button ({contains}) in {shown['blocks']}")


def _rendered(shown: dict[str, Any]) -> str:
    return json.dumps(shown.get("blocks"), ensure_ascii=False) + shown.get("text", "")


async def _ada(app: Harness) -> None:
    """ada in VIP and Newsletter and an advocate of Spring; bob too, in VIP."""
    await _import(app, "VIP", "ada@example.com,Ada,Lovelace\nbob@example.com,Bob,Adams\n")
    await _import(app, "Newsletter", "ada@example.com,Ada,Lovelace\n")
    await _live_campaign(app, "Spring", "VIP")


async def _audit(app: Harness) -> list[tuple[Any, ...]]:
    return await _rows(app, "SELECT actor, action, subject FROM audit_entry "
                            "WHERE action LIKE 'contact.%' ORDER BY id")  # fmt: skip


# ---- searching ------------------------------------------------------------------------------


async def test_search_by_email_or_name_prefix_ignoring_case(app: Harness) -> None:
    await _ada(app)
    found = await _command(app, "ADA")
    assert [_value(found, Action.CONTACT_SHOW, e) for e in ("ada@", "bob@")] == [
        contact_admin.contact_ref(await _id(app, email), email)
        for email in ("ada@example.com", "bob@example.com")]  # fmt: skip
    rendered = _rendered(found)
    assert "in 2 segments · subscribed" in rendered and "in 1 segment · subscribed" in rendered
    assert "Lovelace" in _rendered(await _command(app, "love"))
    assert "bob@example.com" not in _rendered(await _command(app, "love"))
    nothing = await _command(app, "zed")
    assert "No contact matches “zed”" in nothing["text"]
    assert find_element(nothing["blocks"], Action.CONTACT_SHOW) is None
    assert app.slack.block_errors == []


async def test_no_query_offers_the_modal_and_the_modal_searches(app: Harness) -> None:
    await _ada(app)
    prompt = await _command(app, "")
    assert "/referral contacts ada" in prompt["text"] + _rendered(prompt)
    await app.requests.block_action(Action.HOME_SEARCH_CONTACTS, "search", user_id=REP,
                                    message={"blocks": prompt["blocks"]})  # fmt: skip
    await _done(app)
    (modal,) = app.slack.open_views(REP)
    assert modal["callback_id"] == Callback.CONTACT_SEARCH

    def query(q: str | None) -> dict[str, Any]:
        return {BlockId.CONTACT_QUERY: {Action.CONTACT_QUERY: {"type": "plain_text_input",
                                                               "value": q}}}  # fmt: skip

    empty = await app.requests.view_submission(state_values=query(None), view_id=modal["id"],
                                               user_id=REP)  # fmt: skip
    assert set(empty.body["errors"]) == {BlockId.CONTACT_QUERY}
    reply = await app.requests.view_submission(state_values=query("Bob"), view_id=modal["id"],
                                               user_id=REP)  # fmt: skip
    assert reply.body["response_action"] == "update"
    results = app.slack.views[modal["id"]]
    assert "*bob@example.com*" in _rendered(results) and "*ada@" not in _rendered(results)

    # Show replaces the results with the card; Back to results brings them again
    await app.requests.block_action(Action.CONTACT_SHOW, _value(results, Action.CONTACT_SHOW),
                                    view=modal["id"], user_id=REP)  # fmt: skip
    await _done(app)
    shown = app.slack.views[modal["id"]]
    assert "Spring" in _rendered(shown) and find_element(shown["blocks"], Action.CONTACT_DELETE)
    await app.requests.block_action(Action.CONTACT_MORE, _value(shown, Action.CONTACT_MORE),
                                    view=modal["id"], user_id=REP)  # fmt: skip
    await _done(app)
    assert find_element(app.slack.views[modal["id"]]["blocks"], Action.CONTACT_SHOW)
    assert app.slack.block_errors == []


async def test_home_search_contacts_opens_the_modal(app: Harness) -> None:
    home = {"id": "VHOME0001", "type": "home", "blocks": [{"type": "actions", "elements": [
        {"type": "button", "action_id": Action.HOME_SEARCH_CONTACTS, "value": "search",
         "text": {"type": "plain_text", "text": "Search contacts"}}]}]}  # fmt: skip
    reply = await app.requests.block_action(Action.HOME_SEARCH_CONTACTS, "search", view=home,
                                            user_id=REP)  # fmt: skip
    assert reply.status == 200
    await _done(app)
    assert [v["callback_id"] for v in app.slack.open_views(REP)] == [Callback.CONTACT_SEARCH]


async def test_more_pages_through_the_matches(app: Harness) -> None:
    await _import(app, "VIP", "".join(f"p{i:02d}@example.com,P{i},\n" for i in range(13)))
    first = await _command(app, "p")
    assert len([b for b in first["blocks"] if find_element([b], Action.CONTACT_SHOW)]) == 10
    second = await _click(app, Action.CONTACT_MORE, first, user=REP)
    assert second["replace_original"] is True
    assert "p12@example.com" in _rendered(second) and "p00@" not in _rendered(second)
    assert find_element(second["blocks"], Action.CONTACT_MORE) is None
    assert app.slack.block_errors == []


async def test_more_after_a_contact_shown_is_deleted_skips_none(app: Harness) -> None:
    """A lead deleted p02 from the first page's card, then clicked More on the results: the
    next page began at the 11th match of the list as it was then, and p10 was never shown."""
    await _import(app, "VIP", "".join(f"p{i:02d}@example.com,P{i},\n" for i in range(13)))
    first = await _command(app, "p")
    await contact_admin.delete_contact(app.db, TEAM, await _id(app, "p02@example.com"), LEAD)
    second = await _click(app, Action.CONTACT_MORE, first, user=REP)
    shown = _rendered(second)
    assert all(f"p{i}@example.com" in shown for i in (10, 11, 12)) and "p09@" not in shown
    assert "(11–13)" in second["text"]  # numbered on from the page it followed
    assert app.slack.block_errors == []


async def test_markup_in_names_and_queries_is_shown_as_typed(app: Harness) -> None:
    """Slack sends a command's `&`, `<` and `>` as entities: "AT&T" arrived as "AT&amp;T"
    and found nothing."""
    await _import(app, "<!here> VIP", "x@example.com,<!channel>,<@U0002>\n"
                  "y@example.com,AT&T,Shop\n")  # fmt: skip
    assert "AT&amp;T" in _rendered(await _command(app, "AT&T"))
    found = await _command(app, "<!channel")
    assert "&lt;!channel&gt;" in _rendered(found) and "<!channel>" not in _rendered(found)
    assert "“&lt;!channel”" in found["text"]
    shown = await _click(app, Action.CONTACT_SHOW, found, user=REP)
    rendered = _rendered(shown)
    assert "&lt;!channel&gt; &lt;@U0002&gt;" in rendered and "&lt;!here&gt; VIP" in rendered
    assert "<!channel>" not in rendered and "<!here>" not in rendered and "<@U0002>" not in rendered
    assert app.slack.block_errors == []


OUTSIDER, OTHER_ORG = "U0EXT", "T0EXT"  # a member of the organisation C0001 is shared with


async def _home_search_for(app: Harness, user: str, query: str) -> Any:
    """`user` clicks Home's *Search contacts* and submits `query` in the modal it opens: the
    modal's inline errors (None: it was taken)."""
    await app.requests.block_action(Action.HOME_SEARCH_CONTACTS, "search", user_id=user,
                                    view={"id": "VHOME0003", "type": "home", "blocks": []})
    await _done(app)
    (modal,) = app.slack.open_views(user)
    state = {BlockId.CONTACT_QUERY: {Action.CONTACT_QUERY: {"type": "plain_text_input",
                                                            "value": query}}}  # fmt: skip
    reply = await app.requests.view_submission(state_values=state, view_id=modal["id"],
                                               user_id=user)  # fmt: skip
    return (reply.body or {}).get("errors")


async def test_a_member_of_another_organisation_cannot_search_or_open_cards(
    app: Harness,
) -> None:
    """C0001 is shared with another organisation (Slack Connect). One of its members typed
    `/referral contacts a` there and was shown this workspace's customers (emails, names,
    consent, segments); Show opened a card with their referral links."""
    await _ada(app)
    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    refused = "Only members of this workspace can search its contacts."
    answer = await _command(app, "a", user=OUTSIDER)
    assert refused in answer["text"] and "@example.com" not in _rendered(answer)
    found = await _command(app, "a")  # a member's results: their buttons, clicked by the outsider
    for action in (Action.CONTACT_SHOW, Action.CONTACT_MORE):
        value = _value(found, Action.CONTACT_SHOW) if action == Action.CONTACT_SHOW else (
            '{"q":"a","o":0}')  # fmt: skip
        clicked = await _click(app, action, found, value=value, user=OUTSIDER)
        assert refused in clicked["text"] and "@example.com" not in _rendered(clicked), action
    assert await _home_search_for(app, OUTSIDER, "a") == {BlockId.CONTACT_QUERY: refused}
    assert "bob@example.com" not in json.dumps(app.slack.open_views(OUTSIDER))
    assert app.slack.block_errors == []


async def test_a_member_of_another_organisation_sees_no_card_through_a_change_button(
    app: Harness,
) -> None:
    """*Show* and *More* refused an outsider, but Unsubscribe, Resubscribe, Remove from
    segment and Delete answered "Only team leads can …" with the contact's card below it
    (email, names, segments, referral links), of any contact a forged bare id named."""
    await _ada(app)
    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    refused = "Only members of this workspace can search its contacts."
    shown = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"), user=REP)
    for action in (Action.CONTACT_UNSUBSCRIBE, Action.CONTACT_RESUBSCRIBE,
                   Action.CONTACT_REMOVE_FROM_SEGMENT, Action.CONTACT_DELETE):
        value = (_value(shown, action) if action != Action.CONTACT_RESUBSCRIBE
                 else _value(shown, Action.CONTACT_UNSUBSCRIBE))  # fmt: skip
        clicked = await _click(app, action, shown, value=value, user=OUTSIDER)
        assert refused in clicked["text"], (action, clicked["text"])
        assert "Only team leads" not in _rendered(clicked), action
        assert "ada@example.com" not in _rendered(clicked), action
        assert "Lovelace" not in _rendered(clicked) and "/r/" not in _rendered(clicked), action
    bob = await _id(app, "bob@example.com")  # a bare id: any contact of the workspace
    clicked = await _click(app, Action.CONTACT_UNSUBSCRIBE, shown, value=str(bob),
                           user=OUTSIDER)  # fmt: skip
    assert refused in clicked["text"] and "bob@example.com" not in _rendered(clicked)
    assert await _rows(app, "SELECT COUNT(*) FROM contact WHERE unsubscribed_at IS NULL") == [(2,)]
    assert await _rows(app, "SELECT COUNT(*) FROM segment_member") == [(3,)]  # nothing changed
    assert app.slack.block_errors == []


GUEST = "U0GUEST"
GUESTS = [pytest.param({"is_restricted": True}, id="multi-channel"),
          pytest.param({"is_restricted": True, "is_ultra_restricted": True},
                       id="single-channel")]  # fmt: skip


@pytest.mark.parametrize("guest", GUESTS)
async def test_a_guest_of_the_workspace_cannot_search_or_open_cards(
    app: Harness, guest: dict[str, bool],
) -> None:  # fmt: skip
    """A guest (a contractor, an agency, a customer in a channel: users.info's is_restricted)
    is of this workspace by team_id, so the check for another organisation let them through:
    `/referral contacts a`, *Show*, *More*, the modal and a change button showed them the
    merchant's customers (emails, names, referral links). They are refused as an outsider is."""
    await _ada(app)
    app.slack.users[GUEST] = dict(guest)
    refused = "Only members of this workspace can search its contacts."
    answer = await _command(app, "a", user=GUEST)
    assert refused in answer["text"] and "@example.com" not in _rendered(answer)
    found = await _command(app, "a")  # a member's results: their buttons, clicked by the guest
    for action, value in ((Action.CONTACT_SHOW, _value(found, Action.CONTACT_SHOW)),
                          (Action.CONTACT_MORE, '{"q":"a","o":0}'),
                          (Action.CONTACT_UNSUBSCRIBE, _value(found, Action.CONTACT_SHOW))):
        clicked = await _click(app, action, found, value=value, user=GUEST)
        assert refused in clicked["text"], (action, clicked["text"])
        assert "@example.com" not in _rendered(clicked) and "Lovelace" not in _rendered(clicked)
        assert "Only team leads" not in _rendered(clicked), action  # nor whom to ask
    assert await _home_search_for(app, GUEST, "a") == {BlockId.CONTACT_QUERY: refused}
    modals = json.dumps(app.slack.open_views(GUEST))  # its placeholder names an "ada@"
    assert "bob@example.com" not in modals and "Adams" not in modals
    assert await _rows(app, "SELECT COUNT(*) FROM contact WHERE unsubscribed_at IS NULL") == [(2,)]
    assert app.slack.block_errors == []


# ---- the card -------------------------------------------------------------------------------


async def test_the_card_shows_segments_campaigns_links_and_the_buttons(app: Harness) -> None:
    await _ada(app)
    ada = await _id(app, "ada@example.com")
    (code,) = (r[0] for r in await _rows(app, "SELECT code FROM advocate WHERE contact_id = :c",
                                         c=ada))  # fmt: skip
    batch = (await _rows(app, "SELECT batch_id FROM contact WHERE id = :c", c=ada))[0][0]
    found = await _command(app, "ada@")
    shown = await _click(app, Action.CONTACT_SHOW, found, user=REP)
    assert shown["response_type"] == "ephemeral"  # below the results, which stay
    rendered = _rendered(shown)
    for expected in ("ada@example.com", "Ada Lovelace", "workspace default (en)", "subscribed",
                     f"by import #{batch}", "Newsletter", "VIP", "Spring",
                     f"https://bot.example/r/{code}", "invite queued"):  # fmt: skip
        assert expected in rendered, expected
    removable = [b for b in shown["blocks"]
                 if find_element([b], Action.CONTACT_REMOVE_FROM_SEGMENT)]  # fmt: skip
    assert len(removable) == 2
    delete = find_element(shown["blocks"], Action.CONTACT_DELETE)
    assert delete is not None and delete[1]["style"] == "danger"
    assert delete[1]["confirm"]["style"] == "danger"
    assert delete[1]["confirm"]["text"]["text"] == (
        "Deletes ada@example.com everywhere: segments, campaigns, referral links (they'll stop "
        "working). This can't be undone. If they unsubscribed, an import that adds them again "
        "adds them unsubscribed.")  # fmt: skip
    assert find_element(shown["blocks"], Action.CONTACT_RESUBSCRIBE) is None
    assert app.slack.block_errors == []


async def test_a_card_left_open_never_acts_on_the_contact_that_took_its_id(
    app: Harness,
) -> None:
    """SQLite gives a deleted contact's id to the next contact: Delete on x's card, left
    open (its confirm naming x), deleted y, who had taken x's id."""
    await _import(app, "VIP", "keep@example.com,Keep,\n")
    await _import(app, "VIP", "x@example.com,Ex,\n")
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "x@example.com"))
    x = await contact_admin.find_by_email(app.db, TEAM, "x@example.com")
    await contact_admin.delete_contact(app.db, TEAM, x, LEAD)  # from another card, say
    await _import(app, "Other", "y@example.com,Why,\n")
    for action in (Action.CONTACT_UNSUBSCRIBE, Action.CONTACT_REMOVE_FROM_SEGMENT,
                   Action.CONTACT_DELETE):  # fmt: skip
        answer = await _click(app, action, card)
        assert "doesn't exist in this workspace" in answer["text"], action
    assert await _rows(app, "SELECT email, subscribed FROM contact ORDER BY email") in (
        [("keep@example.com", True), ("y@example.com", True)],
        [("keep@example.com", 1), ("y@example.com", 1)])  # fmt: skip
    assert app.slack.block_errors == []


ADMIN = "U0ADMIN"  # a workspace admin, not on the leads list: is_lead asks Slack (users.info)


@pytest.mark.parametrize("action", [Action.CONTACT_UNSUBSCRIBE, Action.CONTACT_RESUBSCRIBE,
                                    Action.CONTACT_REMOVE_FROM_SEGMENT, Action.CONTACT_DELETE])
async def test_a_contact_deleted_and_its_id_reused_while_the_click_is_under_way_is_left_alone(
    app: Harness, action: str,
) -> None:  # fmt: skip
    """The click names x (id and address check); while it asks Slack whether the person is a
    lead, x is deleted and y takes x's id (SQLite). The change must find x gone, not change y."""
    unsubscribed = action == Action.CONTACT_RESUBSCRIBE  # so that the card has Resubscribe
    await _import(app, "VIP", "keep@example.com,Keep,\n")
    await _import(app, "VIP", "x@example.com,Ex,\n")
    x = await contact_admin.find_by_email(app.db, TEAM, "x@example.com")
    if unsubscribed:
        await contact_admin.unsubscribe(app.db, TEAM, x, LEAD)
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "x@example.com"))
    app.slack.users[ADMIN] = {"is_admin": True}
    gate = app.slack.hold("users.info")
    url = app.slack.new_response_url("C0001", user_id=ADMIN)
    await app.requests.block_action(action, _value(card, action), user_id=ADMIN,
                                    response_url=url, message={"blocks": card["blocks"]})
    await app.slack.wait_for("users.info")
    await contact_admin.delete_contact(app.db, TEAM, x, LEAD)  # from another card, say
    await _import(app, "VIP", "y@example.com,Why,\n")
    y = await contact_admin.find_by_email(app.db, TEAM, "y@example.com")
    if app.db.is_sqlite:
        assert y == x  # the race this is about
    if unsubscribed:
        await contact_admin.unsubscribe(app.db, TEAM, y, LEAD)
    before = await _audit(app)
    gate.set()
    await _done(app)
    (answer,) = app.slack.responses[url]
    assert "doesn't exist in this workspace" in answer["text"]
    assert "y@example.com" not in _rendered(answer)
    assert await _rows(app, "SELECT c.email, c.subscribed, s.name FROM contact c "
                            "JOIN segment_member m ON m.contact_id = c.id "
                            "JOIN segment s ON s.id = m.segment_id "
                            "WHERE c.id = :c AND s.kind = 'static'",
                       c=y) in ([("y@example.com", not unsubscribed, "VIP")],
                                [("y@example.com", int(not unsubscribed), "VIP")])  # fmt: skip
    assert await _audit(app) == before  # nothing else changed either
    assert app.slack.block_errors == []


async def test_taking_a_contact_out_of_an_excluded_segment_says_it_may_be_enrolled(
    app: Harness,
) -> None:
    """Summer targets VIP and excludes Newsletter: ada, in both, leaves Newsletter, and the
    reply said only "Removed from Newsletter" while Summer enrolled (and invited) her."""
    await _ada(app)
    summer = await service.create_campaign(app.db, "T0001", "Summer",
                                           store_url="https://shop.example")  # fmt: skip
    news = await find_segment(app.db, "T0001", "Newsletter")
    vip = await find_segment(app.db, "T0001", "VIP")
    assert news is not None and vip is not None
    await service.exclude(app.db, "T0001", summer.id or 0, news.id or 0)
    await service.target(app.db, "T0001", summer.id or 0, vip.id or 0, requested_by=LEAD,
                         queue_job=False)  # fmt: skip
    await service.set_state(app.db, "T0001", summer.id or 0, CampaignState.LIVE,
                            requested_by=LEAD, queue_job=False)  # fmt: skip
    ada = await _id(app, "ada@example.com")
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"))
    removed = await _click(app, Action.CONTACT_REMOVE_FROM_SEGMENT, card,
                           value=f"{ada}:{news.id}")  # fmt: skip
    assert "A live campaign excluded it: if they are in a segment it targets" in removed["text"]


async def test_a_button_from_before_there_were_checks_still_acts_by_id(app: Harness) -> None:
    await _ada(app)
    ada = await _id(app, "ada@example.com")
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"))
    vip = (await _rows(app, "SELECT id FROM segment WHERE name = 'VIP'"))[0][0]
    removed = await _click(app, Action.CONTACT_REMOVE_FROM_SEGMENT, card, value=f"{ada}:{vip}")
    assert "Removed from *VIP*" in removed["text"]
    after = await _click(app, Action.CONTACT_UNSUBSCRIBE, card, value=str(ada))
    assert "Unsubscribed: no more invite emails." in after["text"]
    back = await _click(app, Action.CONTACT_RESUBSCRIBE, after, value=str(ada))
    assert "Resubscribed" in back["text"]
    done = await _click(app, Action.CONTACT_DELETE, card, value=str(ada))
    assert "Deleted *ada@example.com*" in done["text"]
    assert [a[1] for a in await _audit(app)] == [
        "contact.removed_from_segment", "contact.unsubscribed", "contact.resubscribed",
        "contact.deleted"]  # fmt: skip


async def test_another_workspaces_contact_is_refused(app: Harness) -> None:
    await _ada(app)
    await _import(app, "VIP", "theirs@example.com,Ada,\n", team=OTHER)
    theirs = await _id(app, "theirs@example.com")
    assert "theirs@" not in _rendered(await _command(app, "ada"))
    found = await _command(app, "ada@")
    shown = await _click(app, Action.CONTACT_SHOW, found, value=str(theirs), user=REP)
    assert "doesn't exist in this workspace" in shown["text"]
    card = await _click(app, Action.CONTACT_SHOW, found, user=LEAD)
    for action in (Action.CONTACT_DELETE, Action.CONTACT_UNSUBSCRIBE):
        answer = await _click(app, action, card, value=str(theirs))
        assert "doesn't exist in this workspace" in answer["text"], action
    segment = (await _rows(app, "SELECT segment_id FROM segment_member WHERE contact_id = :c",
                           c=theirs))[0][0]  # fmt: skip
    answer = await _click(app, Action.CONTACT_REMOVE_FROM_SEGMENT, card,
                          value=f"{theirs}:{segment}")  # fmt: skip
    assert "doesn't exist in this workspace" in answer["text"]
    assert await _rows(app, "SELECT subscribed FROM contact WHERE id = :c", c=theirs) in (
        [(True,)], [(1,)])  # fmt: skip
    assert len(await _rows(app, "SELECT 1 FROM segment_member WHERE contact_id = :c",
                           c=theirs)) == 1  # fmt: skip
    assert await _audit(app) == []


async def test_a_non_lead_sees_the_card_but_cannot_change_it(app: Harness) -> None:
    await _ada(app)
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"), user=REP)
    refusals = {Action.CONTACT_DELETE: "delete contacts",
                Action.CONTACT_UNSUBSCRIBE: "unsubscribe contacts",
                Action.CONTACT_REMOVE_FROM_SEGMENT: "remove contacts from segments"}  # fmt: skip
    for action, verb in refusals.items():
        answer = await _click(app, action, card, user=REP)
        assert answer["replace_original"] is True
        assert f"Only team leads can {verb}. Ask <@{LEAD}>." in answer["text"], action
        assert "ada@example.com" in _rendered(answer)  # the card, still there
    assert await _rows(app, "SELECT COUNT(*) FROM segment_member") == [(3,)]
    assert await _rows(app, "SELECT subscribed FROM contact WHERE email = 'ada@example.com'") in (
        [(True,)], [(1,)])  # fmt: skip
    assert await _audit(app) == []
    assert app.slack.block_errors == []


# ---- changes --------------------------------------------------------------------------------


async def test_a_lead_removes_a_contact_from_a_segment_twice(app: Harness) -> None:
    await _ada(app)
    app.slack.home_views.clear()
    await app.requests.event({"type": "app_home_opened", "user": LEAD, "channel": "D0HOME",
                              "tab": "home", "event_ts": "1.0"})  # fmt: skip
    await _done(app)
    published = len(app.slack.calls_to("views.publish"))
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"))
    value = _value(card, Action.CONTACT_REMOVE_FROM_SEGMENT, "VIP")
    after = await _click(app, Action.CONTACT_REMOVE_FROM_SEGMENT, card, value=value)
    assert "Removed from *VIP* (still in All Customers)" in after["text"]
    segments = [b for b in after["blocks"] if find_element([b], Action.CONTACT_REMOVE_FROM_SEGMENT)]
    assert len(segments) == 1 and "Newsletter" in json.dumps(segments)
    assert len(app.slack.calls_to("views.publish")) == published + 1  # Home shows the counts
    again = await _click(app, Action.CONTACT_REMOVE_FROM_SEGMENT, card, value=value)  # stale card
    assert "ada@example.com isn't in VIP any more" in again["text"]
    # still a contact: All Customers, the campaign, the search
    assert "ada@example.com" in _rendered(await _command(app, "ada"))
    assert await _rows(app, "SELECT COUNT(*) FROM advocate") == [(2,)]
    assert await _audit(app) == [(LEAD, "contact.removed_from_segment", "contact ada@example.com")]


async def test_a_lead_unsubscribes_then_resubscribes(app: Harness) -> None:
    await _ada(app)
    ada = await _id(app, "ada@example.com")
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"))
    after = await _click(app, Action.CONTACT_UNSUBSCRIBE, card)
    assert ("Unsubscribed: no more invite emails. 1 invite not yet sent won't be."
            in after["text"])  # fmt: skip
    assert "unsubscribed" in _rendered(after)
    assert await _rows(app, "SELECT state, reason FROM invite WHERE contact_id = :c",
                       c=ada) == [("not_emailed", "unsubscribed")]  # fmt: skip
    resubscribe = find_element(after["blocks"], Action.CONTACT_RESUBSCRIBE)
    assert resubscribe is not None
    assert resubscribe[1]["confirm"]["text"]["text"] == (
        "Only if ada@example.com agreed to hear from us again.")  # fmt: skip
    twice = await _click(app, Action.CONTACT_UNSUBSCRIBE, card)  # the old card's button
    assert "ada@example.com is already unsubscribed" in twice["text"]
    back = await _click(app, Action.CONTACT_RESUBSCRIBE, after)
    assert "Resubscribed" in back["text"] and find_element(back["blocks"],
                                                           Action.CONTACT_UNSUBSCRIBE)
    assert await _rows(app, "SELECT unsubscribed_at FROM contact WHERE id = :c", c=ada) == [
        (None,)]  # fmt: skip
    assert [a[1] for a in await _audit(app)] == ["contact.unsubscribed", "contact.resubscribed"]
    assert app.slack.block_errors == []


async def test_a_contact_imported_without_consent_can_be_unsubscribed_for_good(
    app: Harness,
) -> None:
    """Bob was imported saying no to marketing: his card offered only Resubscribe, so a lead
    asked never to email him couldn't make it stick against a later import saying yes."""
    await ensure_workspace(app.db, TEAM)
    csv = "email,first_name,accepts_marketing\nbob@example.com,Bob,no\n"
    await import_files(app.db, TEAM, [("people.csv", io.BytesIO(csv.encode()))], segment="VIP",
                       create_segment=True)  # fmt: skip
    found = await _command(app, "bob")
    assert "in 1 segment · not subscribed" in _rendered(found)
    card = await _click(app, Action.CONTACT_SHOW, found)
    assert find_element(card["blocks"], Action.CONTACT_RESUBSCRIBE)
    after = await _click(app, Action.CONTACT_UNSUBSCRIBE, card)
    assert "Unsubscribed: no more invite emails." in after["text"]
    assert find_element(after["blocks"], Action.CONTACT_UNSUBSCRIBE) is None
    assert find_element(after["blocks"], Action.CONTACT_RESUBSCRIBE)
    assert "in 1 segment · unsubscribed" in _rendered(await _command(app, "bob"))
    assert app.slack.block_errors == []


async def test_a_lead_deletes_a_contact_everywhere(app: Harness) -> None:
    await _ada(app)
    ada = await _id(app, "ada@example.com")
    codes = [r[0] for r in await _rows(app, "SELECT code FROM advocate WHERE contact_id = :c",
                                       c=ada)]  # fmt: skip
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"))
    done = await _click(app, Action.CONTACT_DELETE, card)
    assert done["replace_original"] is True
    assert done["text"] == (":wastebasket: Deleted *ada@example.com* from All Customers, 2 "
                            "segments and 1 campaign (1 referral link retired, 1 invite record "
                            "deleted). Its "
                            "referral links now answer “gone”.")  # fmt: skip
    for table in ("contact WHERE id", "segment_member WHERE contact_id",
                  "advocate WHERE contact_id", "invite WHERE contact_id"):  # fmt: skip
        assert await _rows(app, f"SELECT COUNT(*) FROM {table} = :c", c=ada) == [(0,)], table
    assert [r[0] for r in await _rows(app, "SELECT code FROM retired_code")] == codes
    again = await _click(app, Action.CONTACT_DELETE, card)  # a double click
    assert "doesn't exist in this workspace" in again["text"]
    assert "bob@example.com" in _rendered(await _command(app, "b"))
    assert await _audit(app) == [(LEAD, "contact.deleted", "contact ada@example.com")]
    assert app.slack.block_errors == []


async def test_a_lead_deletes_from_the_modal(app: Harness) -> None:
    await _ada(app)
    await app.requests.block_action(Action.HOME_SEARCH_CONTACTS, "search", user_id=LEAD,
                                    view={"id": "VHOME0002", "type": "home", "blocks": []})
    await _done(app)
    (modal,) = app.slack.open_views(LEAD)
    state = {BlockId.CONTACT_QUERY: {Action.CONTACT_QUERY: {"type": "plain_text_input",
                                                            "value": "ada"}}}  # fmt: skip
    await app.requests.view_submission(state_values=state, view_id=modal["id"], user_id=LEAD)
    results = app.slack.views[modal["id"]]
    await app.requests.block_action(Action.CONTACT_SHOW, _value(results, Action.CONTACT_SHOW),
                                    view=modal["id"], user_id=LEAD)  # fmt: skip
    await _done(app)
    shown = app.slack.views[modal["id"]]
    await app.requests.block_action(Action.CONTACT_DELETE, _value(shown, Action.CONTACT_DELETE),
                                    view=modal["id"], user_id=LEAD)  # fmt: skip
    await _done(app)
    assert "Deleted *ada@example.com*" in _rendered(app.slack.views[modal["id"]])
    assert await _rows(app, "SELECT COUNT(*) FROM contact WHERE email = 'ada@example.com'") == [
        (0,)]  # fmt: skip
    assert app.slack.block_errors == []


@pytest.mark.parametrize("offset", ["99999999999999999999", "9223372036854775807", "1e400"])
async def test_a_more_button_with_an_absurd_offset_is_answered_not_crashed(
    app: Harness, caplog: pytest.LogCaptureFixture, offset: str,
) -> None:  # fmt: skip
    await _import(app, "VIP", "".join(f"p{i:02d}@example.com,P{i},\n" for i in range(13)))
    first = await _command(app, "p")
    with caplog.at_level(logging.INFO):
        answer = await _click(app, Action.CONTACT_MORE, first, value=f'{{"q":"p","o":{offset}}}',
                              user=REP)  # fmt: skip
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Something went wrong" not in _rendered(answer)
    assert "old message: search again" in _rendered(answer)


async def test_every_segment_of_a_contact_in_many_can_be_left_from_its_card(
    app: Harness,
) -> None:
    """The card has a Remove button for 15 segments; past them it said only "…and 5 more
    segments": those weren't named, and a lead couldn't take the contact out of them from
    Slack. They are in a menu that removes the one chosen."""
    for i in range(1, 21):
        await _import(app, f"S{i:02d}", "ada@example.com,Ada,Lovelace\n")
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"), user=LEAD)
    shown = _rendered(card)
    assert all(f"S{i:02d}" in shown for i in range(1, 21)), shown
    menu = find_element(card["blocks"], Action.CONTACT_REMOVE_FROM_SEGMENT_PICK)
    assert menu is not None, shown
    option = next(o for o in menu[1]["options"] if o["text"]["text"] == "S20")
    url = app.slack.new_response_url("C0001", user_id=LEAD)
    await app.requests.block_action(
        Action.CONTACT_REMOVE_FROM_SEGMENT_PICK, user_id=LEAD, response_url=url,
        message={"blocks": card["blocks"]},
        action={"type": "static_select", "action_id": Action.CONTACT_REMOVE_FROM_SEGMENT_PICK,
                "block_id": menu[0], "selected_option": option},
    )  # fmt: skip
    await _done(app)
    (answer,) = app.slack.responses[url]
    assert "Removed from *S20*" in _rendered(answer), _rendered(answer)
    ada = await _id(app, "ada@example.com")
    left = await _rows(app, "SELECT s.name FROM segment_member m JOIN segment s "
                            "ON s.id = m.segment_id WHERE m.contact_id = :c", c=ada)  # fmt: skip
    assert sorted(name for (name,) in left) == [f"S{i:02d}" for i in range(1, 20)]


async def test_deleting_a_contact_redraws_its_enrollment_report(app: Harness) -> None:
    """The thread's report kept "2 held" and *Cancel invites* for the deleted contact's
    invite: deleting it redraws the report, which counts it as removed since."""
    _, message = await _targeted(app)
    before = _report_blocks(app, message)
    assert "*2* new advocates" in before and "2 held until" in before, before
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "jane@"))
    done = await _click(app, Action.CONTACT_DELETE, card)
    assert "Deleted *jane@example.com*" in done["text"], done["text"]
    await app.settle()
    after = _report_blocks(app, message)
    assert "2 held until" not in after and "1 held until" in after, after
    assert "1 remain" in after, after


async def test_unsubscribing_a_contact_redraws_its_enrollment_report(app: Harness) -> None:
    _, message = await _targeted(app)
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "jane@"))
    done = await _click(app, Action.CONTACT_UNSUBSCRIBE, card)
    assert "1 invite not yet sent won't be" in done["text"], done["text"]
    await app.settle()
    after = _report_blocks(app, message)
    assert "2 held until" not in after and "1 held until" in after, after


async def test_the_unsubscribe_link_redraws_the_enrollment_report(app: Harness) -> None:
    """The link stops the contact's invites as a lead's Unsubscribe does: the report too."""
    _, message = await _targeted(app)
    jane = await _id(app, "jane@example.com")
    async with (serve(build_web_app(None, routes=public_routes(app.db, app.settings))) as site,
                ClientSession() as http):  # fmt: skip
        link = unsubscribe_link(site, app.settings.secret_key, TEAM, jane, "jane@example.com")
        async with http.post(link, data={"List-Unsubscribe": "One-Click"}) as response:
            assert response.status == 200 and "unsubscribed" in await response.text()
    assert await _rows(app, "SELECT state FROM invite WHERE contact_id = :c", c=jane) == [
        ("not_emailed",)]
    await app.settle()
    after = _report_blocks(app, message)
    assert "2 held until" not in after and "1 held until" in after, after


async def test_show_on_results_left_open_doesnt_open_the_card_of_who_took_the_id(
    app: Harness,
) -> None:
    """SQLite gives a deleted contact's id to the next contact: *Show* on x's row of results
    left open, after x was deleted and y imported, opened y's card (its Delete and
    Unsubscribe working on y). The card's own buttons checked the address; *Show* didn't."""
    await _import(app, "VIP", "keep@example.com,Keep,\n")
    await _import(app, "VIP", "x@example.com,Ex,\n")
    listing = await _command(app, "x@example.com")
    x = await contact_admin.find_by_email(app.db, TEAM, "x@example.com")
    await contact_admin.delete_contact(app.db, TEAM, x, LEAD)
    await _import(app, "Other", "y@example.com,Why,\n")
    if app.db.is_sqlite:  # the id taken again (PostgreSQL's sequence never does)
        assert await contact_admin.find_by_email(app.db, TEAM, "y@example.com") == x
    card = await _click(app, Action.CONTACT_SHOW, listing)
    shown = _rendered(card)
    assert "y@example.com" not in shown and "doesn't exist" in shown, shown[:400]


async def test_a_name_stored_with_doubled_or_no_break_spaces_is_found_by_its_words(
    app: Harness,
) -> None:
    """An import kept a name's inner spacing as the file had it ("Mary  Ann" typed with two
    spaces, "van der\u00a0Berg" pasted from a web page into Excel), while the search takes
    the query's words one space apart: neither contact was found by its full first or last
    name, however it was typed, not even copied from the file."""
    await _import(app, "VIP", "mary@example.com,Mary  Ann,Smith\n"
                  "berg@example.com,Hans,van der\u00a0Berg\n")  # fmt: skip
    for query, email in (("mary ann", "mary@example.com"), ("Mary  Ann", "mary@example.com"),
                         ("mary ann smith", "mary@example.com"),
                         ("van der berg", "berg@example.com"),
                         ("van der\u00a0Berg", "berg@example.com")):  # fmt: skip
        found = await _command(app, query)
        assert email in _rendered(found), (query, found["text"])
    assert app.slack.block_errors == []


async def test_a_contact_change_not_made_logs_no_address(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A stale card's Unsubscribe: the log line said "contact change not made:
    ada@example.com is already unsubscribed.", an address in a log no deletion reaches."""
    await _ada(app)
    card = await _click(app, Action.CONTACT_SHOW, await _command(app, "ada@"))
    await _click(app, Action.CONTACT_UNSUBSCRIBE, card)
    with caplog.at_level(logging.INFO):
        twice = await _click(app, Action.CONTACT_UNSUBSCRIBE, card)  # the old card's button
    assert "already unsubscribed" in twice["text"]
    said = [r.getMessage() for r in caplog.records if "contact change" in r.getMessage()]
    assert said and not [line for line in said if "ada@example.com" in line], said
