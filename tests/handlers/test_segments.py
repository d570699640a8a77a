"""`/referral segments` as a user meets it: the list, New segment, Rename, Delete, Export CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.audit import recent
from bot.campaigns.service import create_campaign, exclude, set_state, target
from bot.cli import main
from bot.imports.importer import import_files
from bot.workspaces import create_segment, ensure_workspace, find_segment, segment_key
from handlers.ids import Action, BlockId, Callback
from handlers.respond import UPLOAD_FAILED
from handlers.segment_messages import PAGE_SIZE
from models import CampaignState, ImportBatch, Segment, SegmentMember
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP, Harness

TEAM, OTHER = "T0001", "T0002"
PEOPLE = ("first_name,last_name,email,locale,Accepts Email Marketing\n"
          "Ana,López,ana@example.com,es,yes\n"
          "=cmd|' /C calc'!A0,Evil,evil@example.com,,no\n"
          "悠斗,田中,yuto@example.jp,ja,yes\n")  # fmt: skip


async def _done(app: Harness) -> None:
    await app.done()


async def _list(app: Harness, user: str = LEAD) -> dict[str, Any]:
    """Type `/referral segments`; returns what the bot answered through the response_url."""
    return await app.listing("segments", user)


async def _click(app: Harness, action: str, value: str, listing: dict[str, Any],
                 user: str = LEAD) -> list[dict[str, Any]]:  # fmt: skip
    return await app.click_in(listing, action, value, user)


def _buttons(listing: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [found[1] for block in listing["blocks"] if (found := find_element([block], action))]


def _button(listing: dict[str, Any], action: str, name: str) -> dict[str, Any]:
    """The `action` button of the segment called `name` (its section comes right before)."""
    blocks = listing["blocks"]
    for i, block in enumerate(blocks):
        if block["type"] == "section" and block["text"]["text"].startswith(f"*{name}*"):
            found = find_element(blocks[i: i + 2], action)
            assert found, f"no {action} for {name}"
            return found[1]
    raise AssertionError(f"no segment {name} in {json.dumps(blocks)[:2000]}")


def _parsed_by_slack(answer: Any) -> str:
    """Every string Slack reads as markup: the message's text and its mrkdwn objects."""
    found: list[str] = [answer.get("text", "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(answer.get("blocks"))
    return "\n".join(found)


def _name(value: str) -> dict[str, Any]:
    return {BlockId.SEGMENT_NAME: {Action.SEGMENT_NAME: {"type": "plain_text_input",
                                                          "value": value}}}  # fmt: skip


async def _import(app: Harness, segment: str, csv_text: str = PEOPLE, team: str = TEAM) -> int:
    await ensure_workspace(app.db, team)
    await import_files(app.db, team, [("people.csv", io.BytesIO(csv_text.encode()))],
                       segment=segment, create_segment=True)  # fmt: skip
    found = await find_segment(app.db, team, segment)
    assert found is not None and found.id is not None
    return found.id


async def _count(app: Harness, sql: str, **params: object) -> int:
    async with app.db.begin() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def _seed(app: Harness, segments: int) -> None:
    """Segments written directly (fast even for hundreds); segment i holds i % 4 members."""
    await ensure_workspace(app.db, TEAM)
    await _import(app, "Segment 000", "email\n" + "".join(f"p{i}@example.com\n" for i in range(3)))
    async with app.db.session() as session:
        names = [f"Segment {i:03d}" for i in range(1, segments)]
        rows = [Segment(team_id=TEAM, name=name, name_key=segment_key(name)) for name in names]
        session.add_all(rows)
        await session.flush()
        contacts = [r[0] for r in (await session.exec(text(  # type: ignore[call-overload]
            "SELECT id FROM contact ORDER BY id"))).all()]  # fmt: skip
        session.add_all([SegmentMember(segment_id=s.id or 0, contact_id=c, team_id=TEAM)
                         for i, s in enumerate(rows, start=1)
                         for c in contacts[: i % 4]])  # fmt: skip
        await session.commit()


# ---- the list -------------------------------------------------------------------------------


async def test_an_empty_workspace_lists_all_customers_and_offers_a_new_segment(
    app: Harness,
) -> None:
    listing = await _list(app, user=REP)
    rendered = json.dumps(listing["blocks"], ensure_ascii=False)
    assert "*All Customers* · every contact\\n0 contacts" in rendered
    assert "No segments of your own yet" in rendered
    assert _buttons(listing, Action.SEGMENT_CREATE)
    assert not _buttons(listing, Action.SEGMENT_MORE)
    assert not _buttons(listing, Action.SEGMENT_DELETE)
    assert app.slack.block_errors == []


async def test_three_hundred_segments_page_within_slacks_limits(app: Harness) -> None:
    await _seed(app, 300)
    listing = await _list(app, user=REP)
    assert len(listing["blocks"]) <= 50 and app.slack.block_errors == []
    rendered = json.dumps(listing["blocks"], ensure_ascii=False)
    assert "*All Customers* · every contact\\n3 contacts" in rendered
    assert len(_buttons(listing, Action.SEGMENT_RENAME)) == PAGE_SIZE
    assert "*Segment 000*\\n3 contacts" in rendered and "*Segment 001*\\n1 contact\"" in rendered
    assert "*Segment 002*\\n2 contacts" in rendered and "*Segment 004*\\n0 contacts" in rendered
    assert "Segments 1–20 of 300" in rendered

    seen = {b["text"]["text"].split("*")[1] for b in listing["blocks"]
            if b["type"] == "section" and "Segment " in b["text"]["text"]}  # fmt: skip
    pages = 1
    while more := _buttons(listing, Action.SEGMENT_MORE):
        answer = await _click(app, Action.SEGMENT_MORE, more[0]["value"], listing, user=REP)
        listing = answer[-1]
        assert listing["replace_original"] is True and len(listing["blocks"]) <= 50
        assert "every contact" not in json.dumps(listing["blocks"])
        seen |= {b["text"]["text"].split("*")[1] for b in listing["blocks"]
                 if b["type"] == "section" and "Segment " in b["text"]["text"]}  # fmt: skip
        pages += 1
    assert pages == 15 and len(seen) == 300
    assert "Segments 281–300 of 300" in json.dumps(listing["blocks"], ensure_ascii=False)
    assert app.slack.block_errors == []

    junk = await _click(app, Action.SEGMENT_MORE, "99999", listing, user=REP)  # a forged offset
    assert "Segments 1–20 of 300" in json.dumps(junk[-1]["blocks"], ensure_ascii=False)


async def test_more_skips_no_segment_when_one_was_deleted_meanwhile(app: Harness) -> None:
    """Another lead deleted a segment of the first page before *More* was clicked: the next
    page started one segment too far (it paged by offset in the list read again), so one
    segment was never shown. *More* now continues after the last segment shown."""
    from bot.segments import delete_segment

    await _ws(app)
    ids = [(await create_segment(app.db, TEAM, f"Segment {i:02d}")).id or 0
           for i in range(PAGE_SIZE + 5)]
    first = await _list(app, user=REP)

    def names(listing: dict[str, Any]) -> list[str]:
        return [b["text"]["text"].split("*")[1] for b in listing["blocks"]
                if b["type"] == "section" and b["text"]["text"].startswith("*Segment ")]

    assert names(first) == [f"Segment {i:02d}" for i in range(PAGE_SIZE)]
    await delete_segment(app.db, TEAM, ids[3], actor=LEAD)  # another lead, meanwhile
    more = _buttons(first, Action.SEGMENT_MORE)[0]
    second = (await _click(app, Action.SEGMENT_MORE, more["value"], first, user=REP))[-1]
    assert names(second) == [f"Segment {i:02d}" for i in range(PAGE_SIZE, PAGE_SIZE + 5)]
    assert "Segments 20–24 of 24" in json.dumps(second["blocks"], ensure_ascii=False)
    assert not _buttons(second, Action.SEGMENT_MORE)


# ---- New segment and Rename -----------------------------------------------------------------


async def test_anyone_creates_a_segment_and_markup_in_its_name_is_inert(app: Harness) -> None:
    await _ws(app)
    await create_segment(app.db, TEAM, "VIP")
    listing = await _list(app, user=REP)
    responses = await _click(app, Action.SEGMENT_CREATE, "0", listing, user=REP)
    modal = app.slack.open_views(REP)[-1]
    assert modal["callback_id"] == Callback.SEGMENT_CREATE

    for taken, why in ((" vip ", "A segment named 'VIP' already exists."),
                       ("all customers", "All Customers is built in (it holds every "
                                         "contact): its name can't be another "
                                         "segment's.")):  # fmt: skip
        bad = await app.requests.view_submission(state_values=_name(taken), view_id=modal["id"],
                                                 user_id=REP)  # fmt: skip
        assert bad.body == {"response_action": "errors", "errors": {BlockId.SEGMENT_NAME: why}}
        assert modal["id"] in app.slack.views  # still open, showing the error on the field

    good = await app.requests.view_submission(state_values=_name("<!channel> fans"),
                                              view_id=modal["id"], user_id=REP)  # fmt: skip
    assert good.status == 200 and modal["id"] not in app.slack.views
    await _done(app)
    assert await find_segment(app.db, TEAM, "<!channel> FANS") is not None
    refreshed = responses[-1]
    assert refreshed["replace_original"] is True
    parsed = _parsed_by_slack(refreshed)  # plain_text (the confirm dialog) is shown as typed
    assert "<!channel>" not in parsed and "&lt;!channel&gt; fans" in parsed
    assert refreshed["text"].startswith(":white_check_mark: *&lt;!channel&gt; fans* is ready")
    (entry, *_) = await recent(app.db, TEAM)
    assert (entry.actor, entry.action, entry.subject) == (REP, "segment.created", "<!channel> fans")
    assert app.slack.block_errors == []


async def test_two_people_creating_one_name_at_once_make_one_segment(app: Harness) -> None:
    """Both forms pass the check before their acks; the create after the ack decides, and
    the other person is told where they asked (in the ack if it was already decided)."""
    await _ws(app)
    answers = []
    for user in (REP, LEAD):
        listing = await _list(app, user=user)
        answers.append(await _click(app, Action.SEGMENT_CREATE, "0", listing, user=user))
    forms = [app.slack.open_views(user)[-1] for user in (REP, LEAD)]
    replies = await asyncio.gather(*(
        app.requests.view_submission(state_values=_name("Spring promo"), view_id=form["id"],
                                     user_id=user)
        for form, user in zip(forms, (REP, LEAD), strict=True)))  # fmt: skip
    await _done(app)
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE team_id = :t "
                             "AND name = 'Spring promo'", t=TEAM) == 1  # fmt: skip
    taken = "A segment named 'Spring promo' already exists."
    told = [reply.body == {"response_action": "errors", "errors": {BlockId.SEGMENT_NAME: taken}}
            or any(taken in (a.get("text") or "") for a in answer)
            for reply, answer in zip(replies, answers, strict=True)]  # fmt: skip
    made = [any("is ready" in (a.get("text") or "") for a in answer) for answer in answers]
    assert sorted(zip(made, told, strict=True)) == [(False, True), (True, False)], (made, told)
    assert app.slack.block_errors == []


async def _ws(app: Harness) -> None:
    await ensure_workspace(app.db, TEAM)


@pytest.mark.parametrize(("user", "asked"), [(LEAD, 0), ("U0ADMIN", 1)])
async def test_a_rename_asks_slack_who_renames_once_at_most_before_answering(
    app: Harness, user: str, asked: int
) -> None:
    """The submission's checks, made before its answer to Slack (due in 3 s), called
    `users.info` twice for one question (of this workspace? a lead?), and once even for a lead
    on the workspace's list, whom `/referral leads` checked when listing them."""
    app.slack.users["U0ADMIN"] = {"is_admin": True}
    await _ws(app)
    await create_segment(app.db, TEAM, "vip")
    listing = await _list(app, user)
    await _click(app, Action.SEGMENT_RENAME, _button(listing, Action.SEGMENT_RENAME,
                                                     "vip")["value"], listing, user)  # fmt: skip
    modal = app.slack.open_views(user)[-1]
    before = len(app.slack.calls_to("users.info"))
    await app.requests.view_submission(state_values=_name("VIP"), view_id=modal["id"],
                                       user_id=user)  # fmt: skip
    await _done(app)
    assert len(app.slack.calls_to("users.info")) - before == asked
    assert (await find_segment(app.db, TEAM, "VIP")) is not None


async def test_a_lead_renames_a_segment_with_the_same_rules(app: Harness) -> None:
    await _ws(app)
    await create_segment(app.db, TEAM, "vip")
    await create_segment(app.db, TEAM, "Newsletter")
    listing = await _list(app)
    rename = _button(listing, Action.SEGMENT_RENAME, "vip")
    responses = await _click(app, Action.SEGMENT_RENAME, rename["value"], listing)
    modal = app.slack.open_views(LEAD)[-1]
    assert modal["callback_id"] == Callback.SEGMENT_RENAME  # the placeholder was filled in
    field = find_element(modal["blocks"], Action.SEGMENT_NAME)
    assert field and field[1]["initial_value"] == "vip"

    taken = await app.requests.view_submission(state_values=_name("NEWSLETTER"),
                                               view_id=modal["id"], user_id=LEAD)  # fmt: skip
    assert taken.body["errors"] == {BlockId.SEGMENT_NAME:
                                    "A segment named 'Newsletter' already exists."}  # fmt: skip
    await app.requests.view_submission(state_values=_name("VIP"), view_id=modal["id"],
                                       user_id=LEAD)  # fmt: skip
    await _done(app)
    assert responses[-1]["text"] == ":pencil2: *vip* is now *VIP*."
    assert _button(responses[-1], Action.SEGMENT_RENAME, "VIP")
    (entry, *_) = await recent(app.db, TEAM)
    assert (entry.actor, entry.action, entry.subject, entry.detail) == (
        LEAD, "segment.renamed", "VIP", "was vip")

    # All Customers has no Rename button; a forged click on its id is refused in the modal
    everyone = await find_segment(app.db, TEAM, "All Customers")
    assert everyone is not None
    await _click(app, Action.SEGMENT_RENAME, f"{everyone.id}:0", listing)
    refusal = app.slack.open_views(LEAD)[-1]
    assert "can't be renamed" in json.dumps(refusal["blocks"])
    assert find_element(refusal["blocks"], Action.SEGMENT_NAME) is None
    assert app.slack.block_errors == []


async def test_renaming_a_segment_redraws_its_open_reviews(app: Harness) -> None:
    """A review of an import into VIP, still waiting for a lead, went on saying "Contact import
    #1 into VIP" after VIP was renamed Gold (its Approve then imported into Gold). The rename
    now has every open review of the segment drawn again, in a job queued with it."""
    from tests.handlers.test_decisions import _start

    message, _batch = await _start(app)  # a review into VIP
    assert "into VIP" in json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    listing = await _list(app)
    rename = _button(listing, Action.SEGMENT_RENAME, "VIP")
    await _click(app, Action.SEGMENT_RENAME, rename["value"], listing)
    modal = app.slack.open_views(LEAD)[-1]
    await app.requests.view_submission(state_values=_name("Gold"), view_id=modal["id"],
                                       user_id=LEAD)  # fmt: skip
    await app.settle()
    redrawn = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "into Gold" in redrawn and "into VIP" not in redrawn
    assert app.slack.find_action(Action.APPROVE, "C0001") is not None  # still open for review
    assert app.slack.block_errors == []


# ---- Delete ---------------------------------------------------------------------------------


async def test_delete_takes_the_members_out_and_frees_the_name(app: Harness) -> None:
    vip = await _import(app, "VIP")
    listing = await _list(app)
    delete = _button(listing, Action.SEGMENT_DELETE, "VIP")
    assert delete["confirm"]["title"]["text"] == "Delete this segment?"  # Slack asks first
    assert "3 contacts stay in All Customers" in delete["confirm"]["text"]["text"]

    first = await _click(app, Action.SEGMENT_DELETE, delete["value"], listing)
    assert first[-1]["replace_original"] is True
    assert first[-1]["text"] == (":wastebasket: *VIP* is deleted; its 3 contacts stay in "
                                 "All Customers.")  # fmt: skip
    assert "*VIP*\\n" not in json.dumps(first[-1]["blocks"])
    assert "every contact\\n3 contacts" in json.dumps(first[-1]["blocks"])
    assert await _count(app, "SELECT COUNT(*) FROM segment_member WHERE segment_id = :s",
                        s=vip) == 0  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 3
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE id = :s AND kind = 'deleted'",
                        s=vip) == 1  # fmt: skip

    again = await _click(app, Action.SEGMENT_DELETE, delete["value"], listing)  # double click
    assert again[-1]["text"] == "'VIP' was already deleted."
    assert again[-1]["replace_original"] is False
    actions = [e.action for e in await recent(app.db, TEAM)]
    assert actions.count("segment.deleted") == 1

    responses = await _click(app, Action.SEGMENT_CREATE, "0", first[-1], user=REP)
    modal = app.slack.open_views(REP)[-1]
    await app.requests.view_submission(state_values=_name("vip"), view_id=modal["id"],
                                       user_id=REP)  # fmt: skip
    await _done(app)
    assert responses[-1]["text"].startswith(":white_check_mark: *vip* is ready")
    assert app.slack.block_errors == []


async def test_deleting_a_targeted_segment_names_the_campaign_first(app: Harness) -> None:
    vip = await _import(app, "VIP")
    spring = await create_campaign(app.db, TEAM, "Referral spring", created_by=LEAD,
                                   store_url="https://shop.example")  # fmt: skip
    await target(app.db, TEAM, spring.id or 0, vip, requested_by=LEAD)
    listing = await _list(app)
    assert "*VIP*\\n3 contacts · used by 1 campaign" in json.dumps(listing["blocks"],
                                                                   ensure_ascii=False)
    delete = _button(listing, Action.SEGMENT_DELETE, "VIP")
    assert "confirm" not in delete  # the modal asks instead

    responses = await _click(app, Action.SEGMENT_DELETE, delete["value"], listing)
    modal = app.slack.open_views(LEAD)[-1]
    assert modal["callback_id"] == Callback.SEGMENT_DELETE
    said = json.dumps(modal["blocks"])
    assert ("Referral spring targets it: its advocates stay advocates, but contacts added later "
            "won't be enrolled through this segment") in said  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 3  # nothing yet

    forged = {k: v for k, v in modal.items() if not k.startswith("_")} | {"id": "VFORGED"}
    refused = await app.requests.view_submission(state_values={}, view=forged, user_id=REP)
    assert refused.body["response_action"] == "update"  # a rep's forged submission
    assert "Only team leads can delete segments" in json.dumps(refused.body["view"])
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 3

    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await _done(app)
    assert responses[-1]["text"] == (
        ":wastebasket: *VIP* is deleted; its 3 contacts stay in All Customers. No longer used "
        "by: Referral spring.")
    assert await _count(app, "SELECT COUNT(*) FROM campaign_segment") == 0
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 0
    assert app.slack.block_errors == []


async def _spring_excluding(app: Harness, segment_id: int, name: str = "Spring") -> int:
    """Another lead's live campaign targeting All Customers and excluding the segment."""
    everyone = await find_segment(app.db, TEAM, "All Customers")
    assert everyone is not None
    spring = await create_campaign(app.db, TEAM, name, created_by=LEAD,
                                   store_url="https://shop.example")  # fmt: skip
    await target(app.db, TEAM, spring.id or 0, everyone.id or 0, requested_by=LEAD)
    await exclude(app.db, TEAM, spring.id or 0, segment_id)
    await set_state(app.db, TEAM, spring.id or 0, CampaignState.LIVE, requested_by=LEAD)
    return spring.id or 0


async def test_a_campaign_using_the_segment_since_the_click_is_named_before_it_goes(
    app: Harness,
) -> None:
    """PostgreSQL, a real race: a lead confirms Delete in Slack's dialog (no campaign used VIP
    when the list was shown); the click found no campaign using it, and while its delete was
    held up another lead made a live campaign exclude VIP. The delete went ahead: VIP's
    contacts were enrolled in that campaign, which the lead never saw named ("No longer used
    by: Spring" afterwards). The check is now part of the delete's transaction: nothing is
    deleted and the modal names the campaign."""
    from tests.waiting import backend_pid, until_waiting_or_done

    if app.db.dialect != "postgresql":
        pytest.skip("SQLite's one writer can't interleave the two")
    vip = await _import(app, "VIP")
    listing = await _list(app)
    delete = _button(listing, Action.SEGMENT_DELETE, "VIP")
    assert "confirm" in delete  # Slack's own dialog, no modal
    url = app.slack.new_response_url("C0001", user_id=LEAD)
    holder = await app.db.engine.connect()
    try:
        held = await holder.begin()
        # updating a segment waits (the delete); reading one, or locking it to link it, doesn't
        await holder.execute(text("LOCK TABLE segment IN SHARE MODE"))
        await app.requests.block_action(Action.SEGMENT_DELETE, delete["value"], user_id=LEAD,
                                        response_url=url, message={"blocks": listing["blocks"]})
        clicking = asyncio.create_task(app.later.drain())
        assert await until_waiting_or_done(app.db, await backend_pid(holder), clicking)
        spring = await asyncio.wait_for(_spring_excluding(app, vip), 10)  # another lead
        await held.commit()
    finally:
        await holder.close()
    await clicking
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE id = :s AND kind = 'static'",
                        s=vip) == 1  # fmt: skip
    modal = app.slack.open_views(LEAD)[-1]
    assert modal["callback_id"] == Callback.SEGMENT_DELETE
    assert "Spring excludes it" in json.dumps(modal["blocks"])
    assert "No longer used by" not in json.dumps(app.slack.responses.get(url) or [])
    assert await _count(app, "SELECT COUNT(*) FROM advocate WHERE campaign_id = :c",
                        c=spring) == 0  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM segment_member WHERE segment_id = :s",
                        s=vip) == 3  # fmt: skip

    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()  # now they have been told: it goes, and Spring enrolls them
    assert app.slack.responses[url][-1]["text"].endswith("No longer used by: Spring.")
    assert await _count(app, "SELECT COUNT(*) FROM advocate WHERE campaign_id = :c",
                        c=spring) == 3  # fmt: skip
    assert app.slack.block_errors == []


async def test_a_campaign_using_the_segment_since_the_modal_opened_is_named_first(
    app: Harness,
) -> None:
    """The confirmation named Referral spring; before the lead pressed Delete, another lead
    made a live campaign exclude the segment. The delete went ahead and enrolled the segment's
    contacts in it unseen. The modal now comes back naming both; Delete there deletes."""
    vip = await _import(app, "VIP")
    referral = await create_campaign(app.db, TEAM, "Referral spring", created_by=LEAD,
                                     store_url="https://shop.example")  # fmt: skip
    await target(app.db, TEAM, referral.id or 0, vip, requested_by=LEAD)
    listing = await _list(app)
    responses = await _click(app, Action.SEGMENT_DELETE,
                             _button(listing, Action.SEGMENT_DELETE, "VIP")["value"], listing)
    modal = app.slack.open_views(LEAD)[-1]
    assert "Summer" not in json.dumps(modal["blocks"])
    summer = await _spring_excluding(app, vip, "Summer")  # another lead, meanwhile

    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE id = :s AND kind = 'static'",
                        s=vip) == 1  # fmt: skip
    again = app.slack.open_views(LEAD)[-1]
    assert again["callback_id"] == Callback.SEGMENT_DELETE
    said = json.dumps(again["blocks"])
    assert "Summer excludes it" in said and "Referral spring targets it" in said
    assert await _count(app, "SELECT COUNT(*) FROM advocate WHERE campaign_id = :c",
                        c=summer) == 0  # fmt: skip

    await app.requests.view_submission(state_values={}, view_id=again["id"], user_id=LEAD)
    await app.settle()
    assert responses[-1]["text"].endswith("No longer used by: Referral spring, Summer.")
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE id = :s AND kind = 'deleted'",
                        s=vip) == 1  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM advocate WHERE campaign_id = :c",
                        c=summer) == 3  # fmt: skip
    assert app.slack.block_errors == []


async def test_campaigns_changed_after_the_trigger_expired_are_said_where_they_asked(
    app: Harness,
) -> None:
    """The modal can't open again once Slack's trigger id is stale (a delete waiting for the
    write lock): nothing is deleted and the lead is told where they asked."""
    vip = await _import(app, "VIP")
    referral = await create_campaign(app.db, TEAM, "Referral spring", created_by=LEAD,
                                     store_url="https://shop.example")  # fmt: skip
    await target(app.db, TEAM, referral.id or 0, vip, requested_by=LEAD)
    listing = await _list(app)
    responses = await _click(app, Action.SEGMENT_DELETE,
                             _button(listing, Action.SEGMENT_DELETE, "VIP")["value"], listing)
    modal = app.slack.open_views(LEAD)[-1]
    await _spring_excluding(app, vip, "Summer")  # another lead, meanwhile
    app.slack.trigger_ttl = 0
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    assert responses[-1]["text"] == (
        "Nothing was deleted: the campaigns using 'VIP' changed meanwhile (now: Referral spring, "
        "Summer). Click Delete again to see what deleting it means.")
    assert responses[-1]["replace_original"] is False  # the list stays
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE id = :s AND kind = 'static'",
                        s=vip) == 1  # fmt: skip


async def test_delete_is_refused_during_an_import_and_for_all_customers(app: Harness) -> None:
    vip = await _import(app, "VIP")
    async with app.db.session() as session:
        batch = ImportBatch(team_id=TEAM, segment_id=vip, requested_by=REP)
        session.add(batch)
        await session.commit()
        batch_id = batch.id
    listing = await _list(app)
    delete = _button(listing, Action.SEGMENT_DELETE, "VIP")["value"]
    refused = await _click(app, Action.SEGMENT_DELETE, delete, listing)
    assert refused[-1]["text"] == (f"Import #{batch_id} into it is waiting for review: finish "
                                   "or cancel it first.")  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE kind = 'deleted'") == 0

    everyone = await find_segment(app.db, TEAM, "All Customers")
    assert everyone is not None
    assert len(_buttons(listing, Action.SEGMENT_DELETE)) == 1  # none for All Customers
    forged = await _click(app, Action.SEGMENT_DELETE, f"{everyone.id}:0", listing)
    assert forged[-1]["text"] == ("All Customers is built in and holds every contact: it "
                                  "can't be deleted.")  # fmt: skip
    await _click(app, Action.SEGMENT_DELETE, f"{everyone.id}:0:ask", listing)
    assert "can't be deleted" in json.dumps(app.slack.open_views(LEAD)[-1]["blocks"])
    assert app.slack.block_errors == []


# ---- Export CSV -----------------------------------------------------------------------------


async def test_export_lands_in_the_leads_dm_and_imports_again_to_the_same_contacts(
    app: Harness, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    await _import(app, "<VIP> & co")
    listing = await _list(app)
    export = _button(listing, Action.SEGMENT_EXPORT, "&lt;VIP&gt; &amp; co")
    responses = await _click(app, Action.SEGMENT_EXPORT, export["value"], listing)

    (upload,) = app.slack.uploads
    dm = app.slack.dm_channels[LEAD]
    assert upload.completed and upload.channel_id == dm and upload.channels == []
    assert upload.filename.startswith("_VIP_ _ co-contacts-") and upload.filename.endswith(".csv")
    assert upload.initial_comment and "&lt;VIP&gt; &amp; co" in upload.initial_comment
    content = (upload.content or b"").decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(content)))
    assert header == ["first_name", "last_name", "email", "locale", "subscribed"]
    assert sorted(rows, key=lambda r: r[2]) == [
        ["Ana", "López", "ana@example.com", "es", "yes"],
        ["'=cmd|' /C calc'!A0", "Evil", "evil@example.com", "", "no"],
        ["悠斗", "田中", "yuto@example.jp", "ja", "yes"],
    ]
    assert responses[-1]["replace_original"] is False  # a note; the list stays
    assert responses[-1]["text"].startswith(":inbox_tray: *&lt;VIP&gt; &amp; co* (3 contacts) "
                                            "is in your direct messages")  # fmt: skip
    (entry, *_) = await recent(app.db, TEAM)
    assert (entry.actor, entry.action, entry.subject, entry.detail) == (
        LEAD, "segment.exported", "<VIP> & co", "3 contacts")

    # the file reads back: into a fresh workspace, it makes the same contacts
    exported = tmp_path / upload.filename
    exported.write_bytes(upload.content or b"")
    await ensure_workspace(app.db, OTHER)
    for name in list(os.environ):
        if name.startswith(("DATABASE_", "DEFAULT_")):
            monkeypatch.delenv(name)
    for name, value in db_env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["import", str(exported), "--segment", "Copy",
                                          "--create-segment", "--team", OTHER, "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and (summary["valid"], summary["new_contacts"], summary["rejected"]) == (
        3, 3, 0)
    assert await asyncio.to_thread(main, ["export", "--segment", "copy", "--team", OTHER]) == 0
    header2, *again = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert header2 == header and sorted(again) == sorted(rows)
    assert app.slack.block_errors == []


async def test_export_clicked_twice_sends_one_file_and_tells_the_second_click(
    app: Harness,
) -> None:
    await _import(app, "VIP")
    listing = await _list(app)
    value = _button(listing, Action.SEGMENT_EXPORT, "VIP")["value"]
    gate = app.slack.hold("conversations.open")  # the first click's file is half way
    first, second = (app.slack.new_response_url("C0001", user_id=LEAD) for _ in range(2))
    for url in (first, second):
        await app.requests.block_action(Action.SEGMENT_EXPORT, value, user_id=LEAD,
                                        response_url=url, message={"blocks": listing["blocks"]})
    await app.slack.wait_for("conversations.open")
    told = ":hourglass_flowing_sand: Your export of *VIP* is already on its way to your direct "
    for _ in range(500):  # one click's answer comes while the other one's file waits
        if any(app.slack.responses.get(url) for url in (first, second)):
            break
        await asyncio.sleep(0.01)
    gate.set()
    await app.done()
    answers = sorted(app.slack.responses[url][-1]["text"] for url in (first, second))
    assert answers[0] == f"{told}messages with me."
    assert answers[1].startswith(":inbox_tray: *VIP* (3 contacts)")
    assert len(app.slack.uploads) == 1
    again = await _click(app, Action.SEGMENT_EXPORT, value, listing)  # done: a new file
    assert again[-1]["text"].startswith(":inbox_tray:") and len(app.slack.uploads) == 2


async def test_an_export_the_upload_host_refuses_says_so_and_the_next_click_sends_it(
    app: Harness,
) -> None:
    """Slack's upload host answering 500: the click is told the file didn't reach the DM, in
    the words *Send me the CSV* uses (it said "Something went wrong"), nothing is audited
    as exported, and the next click sends the file (the first click's hold let go)."""
    await _import(app, "VIP")
    listing = await _list(app)
    value = _button(listing, Action.SEGMENT_EXPORT, "VIP")["value"]
    app.slack.failing_uploads = 1
    refused = await _click(app, Action.SEGMENT_EXPORT, value, listing)
    assert refused[-1]["text"] == UPLOAD_FAILED and refused[-1]["replace_original"] is False
    assert [u for u in app.slack.uploads if u.completed] == []
    assert [e.action for e in await recent(app.db, TEAM)].count("segment.exported") == 0
    again = await _click(app, Action.SEGMENT_EXPORT, value, listing)
    assert again[-1]["text"].startswith(":inbox_tray: *VIP* (3 contacts)")
    assert [u.completed for u in app.slack.uploads if u.completed] == [True]


# ---- who may, and whose segment -------------------------------------------------------------


async def test_a_rep_may_look_and_create_but_not_rename_delete_or_export(app: Harness) -> None:
    vip = await _import(app, "VIP")
    listing = await _list(app, user=REP)
    value = _button(listing, Action.SEGMENT_DELETE, "VIP")["value"]
    refusal = f"Ask <@{LEAD}>."
    for action, what in ((Action.SEGMENT_DELETE, "delete"), (Action.SEGMENT_EXPORT, "export")):
        answer = await _click(app, action, value, listing, user=REP)
        assert answer[-1]["text"] == f"Only team leads can {what} segments. {refusal}"
        assert answer[-1]["replace_original"] is False
    await _click(app, Action.SEGMENT_DELETE, f"{vip}:0:ask", listing, user=REP)
    assert "Only team leads can delete segments" in json.dumps(
        app.slack.open_views(REP)[-1]["blocks"])
    await _click(app, Action.SEGMENT_RENAME, value, listing, user=REP)
    modal = app.slack.open_views(REP)[-1]
    assert "Only team leads can rename segments" in json.dumps(modal["blocks"])
    forged = await app.requests.view_submission(
        Callback.SEGMENT_RENAME, _name("Mine"), view_id=modal["id"], user_id=REP,
        private_metadata=json.dumps({"segment": vip}))  # fmt: skip
    assert forged.body["response_action"] == "update"
    await _done(app)
    assert app.slack.uploads == []
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE name = 'VIP' AND kind = "
                             "'static'") == 1  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 3
    assert app.slack.block_errors == []


OUTSIDER, OTHER_ORG = "U0EXT", "T0EXT"  # a member of the organisation C0001 is shared with
NOT_A_MEMBER = "Only members of this workspace can see or change its imports and segments."


async def test_a_member_of_another_organisation_cannot_list_or_create_segments(
    app: Harness,
) -> None:
    """C0001 is shared with another organisation (Slack Connect): its members typed
    `/referral segments` there and saw every segment's name and size, and created segments
    (in the audit log under their id)."""
    await _import(app, "Secret VIP list")
    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    answer = await _list(app, user=OUTSIDER)
    assert answer["text"] == NOT_A_MEMBER and "Secret" not in json.dumps(answer)
    listing = await _list(app)  # a member's list, its buttons clicked by the outsider
    more = await _click(app, Action.SEGMENT_MORE, "0", listing, user=OUTSIDER)
    assert more[-1]["text"] == NOT_A_MEMBER and more[-1]["replace_original"] is True
    assert "Secret" not in json.dumps(more)
    await _click(app, Action.SEGMENT_CREATE, "0", listing, user=OUTSIDER)
    (modal,) = app.slack.open_views(OUTSIDER)
    assert NOT_A_MEMBER in json.dumps(modal["blocks"]) and "submit" not in modal
    url = app.slack.new_response_url("C0001", user_id=OUTSIDER)
    forged = await app.requests.view_submission(  # the form, submitted all the same
        Callback.SEGMENT_CREATE, _name("made by an outsider"), user_id=OUTSIDER,
        private_metadata=json.dumps({"url": url, "offset": 0}))  # fmt: skip
    assert forged.body["response_action"] == "update"
    assert NOT_A_MEMBER in json.dumps(forged.body["view"])
    await _done(app)
    assert await find_segment(app.db, TEAM, "made by an outsider") is None
    assert url not in app.slack.responses or "Secret" not in json.dumps(app.slack.responses[url])
    assert all(e.actor != OUTSIDER for e in await recent(app.db, TEAM))
    assert app.slack.block_errors == []


async def test_another_workspaces_segment_is_refused(app: Harness) -> None:
    theirs = await _import(app, "Theirs", team=OTHER)
    await _import(app, "Ours")
    listing = await _list(app)
    assert "Theirs" not in json.dumps(listing)
    for action in (Action.SEGMENT_DELETE, Action.SEGMENT_EXPORT):
        answer = await _click(app, action, f"{theirs}:0", listing)
        assert answer[-1]["text"] == "That segment no longer exists."
    await _click(app, Action.SEGMENT_RENAME, f"{theirs}:0", listing)
    assert "That segment no longer exists." in json.dumps(app.slack.open_views(LEAD)[-1]["blocks"])
    hijack = await app.requests.view_submission(
        Callback.SEGMENT_RENAME, _name("Hijacked"), user_id=LEAD,
        private_metadata=json.dumps({"segment": theirs}))  # fmt: skip
    assert hijack.body["errors"] == {BlockId.SEGMENT_NAME: "That segment no longer exists."}
    url = app.slack.new_response_url("C0001", user_id=LEAD)
    await app.requests.view_submission(Callback.SEGMENT_DELETE, {}, user_id=LEAD,
                                       private_metadata=json.dumps({"segment": theirs,
                                                                    "url": url}))  # fmt: skip
    await _done(app)
    assert app.slack.responses[url][-1]["text"] == "That segment no longer exists."
    assert app.slack.uploads == []
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE team_id = :t AND name = 'Theirs' "
                             "AND kind = 'static'", t=OTHER) == 1  # fmt: skip
    garbage = await _click(app, Action.SEGMENT_EXPORT, "drop table", listing)
    assert garbage[-1]["text"] == ("That button doesn't name a segment: it may come from an old "
                                   "message.")  # fmt: skip
    assert app.slack.block_errors == []


async def test_an_import_form_for_a_segment_being_deleted_imports_nothing(app: Harness) -> None:
    """PostgreSQL, a real race: a lead's deletion of VIP is under way (its transaction paused
    here, at the campaign links, by a table lock) when a rep submits the import form with VIP
    chosen. The form's work waited for the deletion, then created the import into the deleted
    segment and posted its review. Now the rep is told by direct message and nothing is made."""
    from bot.workspaces import import_target
    from tests.handlers.test_errors_and_retention import _dms
    from tests.handlers.test_import_flow import _form, _open_modal
    from tests.waiting import pause_segment_deletion, until_waiting_or_done

    if app.db.dialect != "postgresql":
        pytest.skip("SQLite's one writer can't interleave the two")
    await ensure_workspace(app.db, TEAM)
    vip = await import_target(app.db, TEAM, "VIP", create=True)
    view_id = await _open_modal(app)
    deletion = await pause_segment_deletion(app.db, TEAM, vip.id or 0, actor=LEAD)
    form = _form(email="a@example.com")
    form[BlockId.SEGMENT][Action.SEGMENT]["selected_option"] = {
        "text": {"type": "plain_text", "text": "VIP"}, "value": str(vip.id)}  # fmt: skip
    reply = await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    assert reply.status == 200 and not reply.body  # the form closed: VIP was there
    creating = asyncio.create_task(app.later.drain())
    assert await until_waiting_or_done(app.db, deletion.pid, creating) is not None
    await deletion.let_go()
    await creating
    await app.settle()
    async with app.db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM import_batch"))).scalar() == 0
    assert app.slack.find_action(Action.APPROVE, "C0001") is None  # no review posted
    told = _dms(app, REP)
    assert told and "The segment 'VIP' was deleted; nothing was imported." in told[-1], told


async def test_the_new_segment_form_submitted_twice_makes_one_and_no_error(app: Harness) -> None:
    """The second Create of one form (Slack slow to hear the first's answer) was told "A
    segment named 'Spring promo' already exists." of the one the first had just made."""
    await _ws(app)
    listing = await _list(app, user=REP)
    await _click(app, Action.SEGMENT_CREATE, "0", listing, user=REP)
    modal = app.slack.open_views(REP)[-1]
    view = {k: v for k, v in app.slack.views[modal["id"]].items() if not k.startswith("_")}
    replies = [await app.requests.view_submission(state_values=_name("Spring promo"), view=view,
                                                  user_id=REP) for _ in range(2)]  # fmt: skip
    await _done(app)
    assert [(r.status, r.body) for r in replies] == [(200, "")] * 2, replies
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE name = 'Spring promo'") == 1


async def test_segment_forms_each_submitted_twice_at_once_are_never_told_their_own_name(
    app: Harness, recwarn: pytest.WarningsRecorder,
) -> None:
    """The second Create of a form was told its own new segment's name was taken when the
    first's save landed between "was this form submitted already" and the name's check;
    twelve forms, each submitted twice in a row and all at once, give the reads every
    order."""
    await _ws(app)
    views = await app.forms_opened_by("segments", Action.SEGMENT_CREATE, "0", 12, user=REP)
    forms = [(_name(f"Promo {n}"), view) for n, view in enumerate(views)]
    replies = await app.each_submitted_twice_at_once(forms, user=REP)
    await _done(app)
    assert [(r.status, r.body) for r in replies] == [(200, "")] * len(replies), replies
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE name LIKE 'Promo %'") == 12
    # a repeat's work, never begun, is let go of quietly (its inner change too)
    assert not [str(w.message) for w in recwarn if "never awaited" in str(w.message)]


async def test_deleting_an_empty_segment_a_campaign_uses_says_it_holds_none(app: Harness) -> None:
    """Slack's dialog, the deleted note and the shell say an empty segment "held no
    contacts"; the modal for one a campaign uses said "Its 0 contacts stay in All Customers"."""
    await ensure_workspace(app.db, TEAM)
    empty = await create_segment(app.db, TEAM, "Empty")
    spring = await create_campaign(app.db, TEAM, "Referral spring", created_by=LEAD,
                                   store_url="https://shop.example")  # fmt: skip
    await target(app.db, TEAM, spring.id or 0, empty.id or 0, requested_by=LEAD)
    listing = await _list(app)
    await _click(app, Action.SEGMENT_DELETE,
                 _button(listing, Action.SEGMENT_DELETE, "Empty")["value"], listing)
    modal = app.slack.open_views(LEAD)[-1]
    said = json.dumps(modal["blocks"])
    assert modal["callback_id"] == Callback.SEGMENT_DELETE
    assert "0 contacts" not in said and "It holds no contacts" in said, said
