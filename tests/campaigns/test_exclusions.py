"""Exclusions that change while invites wait: a contact joining an excluded segment after it
was enrolled is not emailed; one whose exclusion ends is invited again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns import service
from bot.campaigns.invites import Links, cancel_held, send_invites
from bot.email.send import sender_for
from models.clock import utcnow
from tests.campaigns.conftest import SECRET, TEAM, World, people
from tests.campaigns.test_enroll import _run_queued_enrollments

STAFF_REASON = "excluded: in Staff, which the campaign excludes"


async def _invites(world: World) -> list[tuple]:
    return await world.rows("SELECT c.email, i.state, i.reason FROM invite i "
                            "JOIN contact c ON c.id = i.contact_id ORDER BY c.email")  # fmt: skip


async def _send_now(world: World, tmp_path: Path) -> list[str]:
    """The delay is over and the send job runs; the addresses it emailed."""
    async with world.db.begin() as conn:
        await conn.execute(text("UPDATE invite SET send_after = :n").bindparams(
            bindparam("n", type_=UTCDateTime())), {"n": utcnow()})  # fmt: skip
    outbox = tmp_path / "outbox"
    for (enrollment,) in await world.rows("SELECT id FROM enrollment ORDER BY id"):
        await send_invites(world.db, TEAM, int(enrollment), sender=sender_for(None, outbox),
                           links=Links("https://bot.example", SECRET))  # fmt: skip
    return sorted(r[0] for r in await world.rows(
        "SELECT c.email FROM invite i JOIN contact c ON c.id = i.contact_id "
        "WHERE i.state = 'sent'"))  # fmt: skip


async def test_a_contact_imported_into_an_excluded_segment_later_is_not_emailed(
        world: World, tmp_path: Path) -> None:  # fmt: skip
    """Spring targets VIP and excludes Staff, with a 3-day delay; a turns out to be staff and
    is imported into Staff while her invite waits. Only excluding the segment cancelled waiting
    invites, and the send didn't look at exclusions: a was emailed all the same."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    await world.import_csv("Staff", people("s@example.com,S,"))
    spring = await world.campaign(invite_delay_days=3)
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Staff"))
    assert (await world.target(spring, "VIP")).invites_queued == 2
    await world.import_csv("Staff", people("a@example.com,A,"))

    assert await _send_now(world, tmp_path) == ["b@example.com"]
    assert await _invites(world) == [("a@example.com", "cancelled", STAFF_REASON),
                                     ("b@example.com", "sent", None)]  # fmt: skip
    # and once she leaves Staff she is invited after all, as excluding first then ending it
    from bot.contact_admin import remove_from_segment

    ada = int(str(await world.scalar("SELECT id FROM contact WHERE email = 'a@example.com'")))
    await remove_from_segment(world.db, TEAM, ada, await world.segment_id("Staff"), "U1")
    await _run_queued_enrollments(world)
    assert await _send_now(world, tmp_path) == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("how", ["segment deleted", "contact removed", "targeted"])
async def test_an_advocate_whose_invite_an_exclusion_cancelled_is_invited_once_it_ends(
        world: World, how: str) -> None:  # fmt: skip
    """Spring targets VIP with a delay; excluding Staff cancels a's waiting invite. The lead
    changes their mind (Staff deleted, a taken out of it, Staff targeted): only an undo's
    cancelled invites were invited again, so a stayed an advocate never emailed."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign(invite_delay_days=3)
    assert (await world.target(spring, "VIP")).invites_queued == 2
    await world.import_csv("Staff", people("a@example.com,A,"))
    staff = await world.segment_id("Staff")
    await service.exclude(world.db, TEAM, spring, staff)
    assert (await _invites(world))[0] == ("a@example.com", "cancelled", STAFF_REASON)

    if not await world.leave(how, staff, "a@example.com"):  # targeted
        await service.target(world.db, TEAM, spring, staff, requested_by="U1", queue_job=False)
    await _run_queued_enrollments(world)

    assert await _invites(world) == [("a@example.com", "queued", None),
                                     ("b@example.com", "queued", None)]  # fmt: skip
    assert int(str(await world.scalar("SELECT COUNT(*) FROM advocate"))) == 2  # no second link


async def test_an_exclusion_that_still_holds_or_a_hand_cancel_is_not_invited_again(
        world: World) -> None:  # fmt: skip
    """Invites cancelled by Cancel invites stay cancelled when an exclusion ends, and one
    whose contact is still in another excluded segment stays cancelled too."""
    from bot.segments import delete_segment

    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,",
                                         "c@example.com,C,"))  # fmt: skip
    spring = await world.campaign(invite_delay_days=3)
    await world.target(spring, "VIP", hold=3600)
    enrollment = int(str(await world.scalar("SELECT MAX(id) FROM enrollment")))
    await world.import_csv("Staff", people("a@example.com,A,", "b@example.com,B,"))
    await world.import_csv("Interns", people("b@example.com,B,"))
    for segment in ("Staff", "Interns"):
        await service.exclude(world.db, TEAM, spring, await world.segment_id(segment))
    assert (await cancel_held(world.db, TEAM, enrollment, "U1")).cancelled == 1  # c's cancel

    await delete_segment(world.db, TEAM, await world.segment_id("Staff"))
    await _run_queued_enrollments(world)

    assert await _invites(world) == [
        ("a@example.com", "queued", None),
        ("b@example.com", "cancelled", STAFF_REASON),  # in Interns still
        ("c@example.com", "cancelled", "cancelled by U1"),
    ]  # fmt: skip



async def test_targeting_going_live_pausing_or_excluding_meanwhile_dont_refuse_an_edit(
        world: World) -> None:  # fmt: skip
    """A lead opens Edit; meanwhile another targets Spring from an import's thread, excludes a
    segment, puts it live and pauses it. Nobody saved the form's fields, yet the Save was
    refused: "Someone saved this campaign after you opened Edit"."""
    from models import CampaignState

    await world.import_csv("VIP", people("a@example.com,A,"))
    await world.import_csv("Staff", people("s@example.com,S,"))
    spring = await world.campaign(live=False)
    opened = (await service.get_campaign(world.db, TEAM, spring)).updated_at  # Edit opened
    await service.target(world.db, TEAM, spring, await world.segment_id("VIP"),
                         requested_by="U2", queue_job=False)  # fmt: skip
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Staff"))
    for state in (CampaignState.LIVE, CampaignState.PAUSED):
        await service.set_state(world.db, TEAM, spring, state, requested_by="U2",
                                queue_job=False)  # fmt: skip

    await service.update_campaign(world.db, TEAM, spring, opened=opened, invite_email=False)
    assert (await service.get_campaign(world.db, TEAM, spring)).invite_email is False
    # a form opened before that save is still refused
    with pytest.raises(service.CampaignError, match="Someone saved this campaign"):
        await service.update_campaign(world.db, TEAM, spring, opened=opened, offer="Give 5%")
    assert (await service.get_campaign(world.db, TEAM, spring)).offer == "Give 10%, get $10"
