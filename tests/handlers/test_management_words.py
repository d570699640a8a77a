"""Management surfaces' words: one address emailed, an empty segment deleted, and an
outsider refused without being told who the leads are."""

from __future__ import annotations

import json

from bot.campaigns.service import change_state, create_campaign
from bot.workspaces import create_segment, ensure_workspace
from handlers.ids import Action
from models import CampaignState
from tests.handlers.conftest import LEAD, Harness

TEAM = "T0001"
SHOP = "https://shop.example.com"


async def _unsent_by_the_invite_email(app: Harness) -> int:
    """Spring, live with its invite email off, enrolled VIP's one contact (no invite sent);
    then the invite email turned on: the list offers *Email them*."""
    import io

    from sqlalchemy import text as sql

    from bot.campaigns.service import target, update_campaign
    from bot.imports.importer import import_files

    await ensure_workspace(app.db, TEAM)
    await import_files(app.db, TEAM, [("p.csv", io.BytesIO(b"email\na@example.com\n"))],
                       segment="VIP", create_segment=True)
    spring = (await create_campaign(app.db, TEAM, "Spring", store_url=SHOP, created_by=LEAD,
                                    invite_email=False)).id or 0
    async with app.db.begin() as conn:
        vip = (await conn.execute(sql("SELECT id FROM segment WHERE name = 'VIP'"))).scalar_one()
    await target(app.db, TEAM, spring, vip, requested_by=LEAD)
    await change_state(app.db, TEAM, spring, CampaignState.LIVE, requested_by=LEAD)
    await app.settle()
    await update_campaign(app.db, TEAM, spring, invite_email=True, actor=LEAD)
    await app.settle()
    return spring


async def test_email_them_when_its_one_address_was_emailed_before_says_so_in_words(
    app: Harness,
) -> None:
    """The campaign list's *Email them*, whose one advocate's address the campaign had
    emailed before: "had emailed all 1 of those addresses before"."""
    from sqlalchemy import text as sql

    spring = await _unsent_by_the_invite_email(app)
    async with app.db.begin() as conn:  # the campaign emailed that address before
        await conn.execute(sql(
            "INSERT INTO invited_address (team_id, campaign_id, email_key, invited_at) "
            "SELECT team_id, :c, email_key, created_at FROM contact"), {"c": spring})
    listing = await app.listing("campaign")
    assert Action.CAMPAIGN_EMAIL_UNSENT in json.dumps(listing["blocks"]), listing["blocks"]
    answered = await app.click_in(listing, Action.CAMPAIGN_EMAIL_UNSENT, str(spring))
    said = answered[-1]["text"]
    assert "emailed" in said, said
    assert "all 1 " not in said, said


async def test_deleting_an_empty_segment_doesnt_say_its_0_contacts_stay(app: Harness) -> None:
    """An empty segment's Delete: its confirm dialog and the note after said "its 0 contacts
    stay in All Customers"; the audit log (and the shell) say "it held no contacts"."""
    from tests.fakes.slack_api import find_element

    await ensure_workspace(app.db, TEAM)
    await create_segment(app.db, TEAM, "VIP")
    listing = await app.listing("segments")
    found = next(f[1] for b in listing["blocks"]
                 if (f := find_element([b], Action.SEGMENT_DELETE)))
    assert "0 contacts" not in found["confirm"]["text"]["text"], found["confirm"]
    answered = await app.click_in(listing, Action.SEGMENT_DELETE, found["value"])
    said = answered[-1]["text"]
    assert "is deleted" in said and "0 contacts" not in said, said


async def test_a_member_of_another_organisation_isnt_told_who_the_leads_are(
    app: Harness,
) -> None:
    """`/referral audit` typed in a channel shared with another organisation by one of its
    members: refused, but "Ask <@lead>" handed them the team leads' list, which
    `/referral leads` refuses them ("shown nothing of it")."""
    outsider = "U0EXT"
    app.slack.users[outsider] = {"team_id": "T0EXT"}
    await ensure_workspace(app.db, TEAM)
    assert f"<@{LEAD}>" not in json.dumps(await app.listing("leads", user=outsider))
    answer = await app.listing("audit", user=outsider)
    assert f"<@{LEAD}>" not in answer["text"], answer["text"]


async def test_email_them_on_a_paused_campaign_says_the_invites_wait_for_go_live(
    app: Harness,
) -> None:
    """*Email them* on a paused campaign queues the invites, which go once it is live again:
    the note said "Sending 1 invite of Spring." and nothing went."""
    spring = await _unsent_by_the_invite_email(app)
    await change_state(app.db, TEAM, spring, CampaignState.PAUSED, requested_by=LEAD)
    listing = await app.listing("campaign")
    answered = await app.click_in(listing, Action.CAMPAIGN_EMAIL_UNSENT, str(spring))
    said = answered[-1]["text"]
    assert said.startswith("1 invite of Spring is queued: it goes once Spring is live again "
                           "(*Go live*)."), said


async def test_resend_uncertain_on_a_paused_campaign_says_the_invites_wait_for_go_live(
    app: Harness,
) -> None:
    """*Resend uncertain* on a paused campaign queues the invites, which go once it is live
    again, as *Email them* says: the note said "Sending 1 invite of Spring again: a worker
    sends it." and nothing went."""
    from sqlalchemy import text as sql

    spring = await _unsent_by_the_invite_email(app)
    async with app.db.begin() as conn:  # its invite went to a server that didn't answer
        await conn.execute(sql("UPDATE invite SET state = 'uncertain', reason = 'may have "
                               "been delivered: no reply'"))  # fmt: skip
    await change_state(app.db, TEAM, spring, CampaignState.PAUSED, requested_by=LEAD)
    listing = await app.listing("campaign")
    answered = await app.click_in(listing, Action.CAMPAIGN_RESEND_UNCERTAIN, str(spring))
    await app.settle()
    async with app.db.begin() as conn:
        state = (await conn.execute(sql("SELECT state FROM invite"))).scalar_one()
    assert state == "queued"  # waiting for Go live: nothing went
    assert answered[-1]["text"].startswith(
        "1 invite of Spring is queued: it goes once Spring is live again (*Go live*)."), (
        answered[-1]["text"])
