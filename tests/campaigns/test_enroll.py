"""Enrollment: who becomes an advocate, once, and who is emailed."""

from __future__ import annotations

import asyncio
import io
import os

import pytest
from sqlalchemy import text

from bot.campaigns import codes, service
from bot.campaigns.after_import import enroll_imported
from bot.campaigns.enroll import run_enrollment
from models import CampaignState
from tests.campaigns.conftest import TEAM, World, people, reported_in_a_thread
from tests.waiting import backend_pid, until_waiting_or_done


async def test_a_live_campaign_enrolls_a_targeted_segment_once(world: World) -> None:
    await world.import_csv("VIP", people("a@example.com,A,fr", "b@example.com,B,",
                                         "c@example.com,C,ja"))  # fmt: skip
    spring = await world.campaign()
    first = await world.target(spring, "VIP")
    assert (first.enrolled, first.already_advocates, first.invites_queued) == (3, 0, 3)
    again = await world.target(spring, "VIP")  # re-targeting, or a double click
    assert (again.enrolled, again.already_advocates, again.invites_queued) == (0, 3, 0)
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 3
    assert await world.scalar("SELECT COUNT(*) FROM invite") == 3
    assert await world.scalar("SELECT COUNT(DISTINCT code) FROM advocate") == 3
    for (code,) in await world.rows("SELECT code FROM advocate"):
        assert len(code) == codes.LENGTH and set(code) <= set(codes.ALPHABET)


async def test_two_enrollments_at_once_never_enroll_anyone_twice(world: World) -> None:
    await world.import_csv("VIP", people(*(f"p{i}@example.com,P,en" for i in range(300))))
    spring = await world.campaign()
    segment = await world.segment_id("VIP")
    ids = [await service.target(world.db, TEAM, spring, segment, requested_by="U1",
                                queue_job=False) for _ in range(2)]  # fmt: skip
    assert ids[0] == ids[1]  # targeting again while it is pending: the same enrollment
    async with world.db.begin() as conn:  # a second one all the same (e.g. two processes
        # before that check existed), to run both at once
        ids[1] = (await conn.execute(text(
            "INSERT INTO enrollment (team_id, campaign_id, segment_id, requested_by, status, "
            "enrolled, already_advocates, excluded, created_at) SELECT team_id, campaign_id, "
            "segment_id, requested_by, status, 0, 0, 0, created_at FROM enrollment "
            "WHERE id = :e RETURNING id"), {"e": ids[0]})).scalar_one()  # fmt: skip
    results = await asyncio.gather(*(run_enrollment(world.db, TEAM, e or 0, hold_seconds=0)
                                     for e in ids))  # fmt: skip
    assert sorted(r.enrolled for r in results) == [0, 300]
    assert await world.scalar("SELECT COUNT(*) FROM invite") == 300


async def test_targeting_again_gives_an_unrun_enrollment_its_job(world: World) -> None:
    """One the shell made and never ran (no job) is returned by the next targeting: it gets
    its job then, or nobody would ever enroll it; one that has its job gets no second."""
    await world.import_csv("VIP", people("a@example.com,A,"))
    spring = await world.campaign()
    segment = await world.segment_id("VIP")
    unrun = await service.target(world.db, TEAM, spring, segment, requested_by="cli",
                                 queue_job=False)  # fmt: skip
    for _ in range(2):
        assert await service.target(world.db, TEAM, spring, segment, requested_by="U1") == unrun
    assert await world.rows("SELECT dedupe_key FROM job WHERE kind = 'enroll'") == [
        (f"enroll:{unrun}",)]  # fmt: skip


async def test_a_draft_campaign_enrolls_nobody_until_it_goes_live(world: World) -> None:
    await world.import_csv("VIP", people("a@example.com,A,"))
    draft = await world.campaign(live=False)
    segment = await world.segment_id("VIP")
    assert await service.target(world.db, TEAM, draft, segment, requested_by="U1") is None
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 0
    enrollment = await service.set_state(world.db, TEAM, draft, CampaignState.LIVE,
                                         requested_by="U1", queue_job=False)  # fmt: skip
    assert enrollment is not None
    result = await run_enrollment(world.db, TEAM, enrollment, hold_seconds=0)
    assert result.enrolled == 1


async def test_excluded_segments_are_never_enrolled(world: World) -> None:
    await world.import_csv("VIP", people("a@example.com,A,", "staff@example.com,S,"))
    await world.import_csv("Staff", people("staff@example.com,S,"))
    spring = await world.campaign()
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Staff"))
    result = await world.target(spring, "VIP")
    assert (result.enrolled, result.excluded) == (1, 1)
    assert await world.rows("SELECT c.email FROM advocate a JOIN contact c ON c.id = a.contact_id"
                            ) == [("a@example.com",)]  # fmt: skip


async def test_all_customers_cant_be_excluded(world: World) -> None:
    await world.import_csv("VIP", people("a@example.com,A,"))
    spring = await world.campaign()
    with pytest.raises(service.CampaignError, match="holds every contact"):
        await service.exclude(world.db, TEAM, spring, await world.segment_id("All Customers"))
    assert await world.scalar("SELECT COUNT(*) FROM campaign_segment") == 0


async def test_unsubscribed_contacts_are_enrolled_but_never_emailed(world: World) -> None:
    """Who never said yes (accepts_marketing no, or a value we can't read) is "not
    subscribed"; only who used the unsubscribe link is "unsubscribed": both were called
    unsubscribed, of customers who had never subscribed at all."""
    from bot.campaigns.consent import unsubscribe

    csv = people("yes@example.com,Y,true", "no@example.com,N,no", "unsure@example.com,U,maybe",
                 "plain@example.com,P,", "left@example.com,L,yes",
                 header="email,first_name,accepts_marketing")  # fmt: skip
    await world.import_csv("VIP", csv)
    left, key = (await world.rows("SELECT id, email_key FROM contact "
                                  "WHERE email = 'left@example.com'"))[0]  # fmt: skip
    assert await unsubscribe(world.db, TEAM, int(left), str(key)) == "left@example.com"
    spring = await world.campaign()
    result = await world.target(spring, "VIP")
    assert result.enrolled == 5 and result.invites_queued == 2
    assert result.not_emailed == {"not subscribed": 2, "unsubscribed": 1}
    states = dict(await world.rows("SELECT c.email, i.state FROM invite i "
                                   "JOIN contact c ON c.id = i.contact_id"))  # fmt: skip
    assert states == {"yes@example.com": "queued", "plain@example.com": "queued",
                      "no@example.com": "not_emailed", "unsure@example.com": "not_emailed",
                      "left@example.com": "not_emailed"}


async def test_a_campaign_without_invite_email_enrolls_silently(world: World) -> None:
    await world.import_csv("VIP", people("a@example.com,A,"))
    klaviyo = await world.campaign("Klaviyo", invite_email=False)
    result = await world.target(klaviyo, "VIP")
    assert (result.enrolled, result.invites_queued) == (1, 0)
    assert result.not_emailed == {"invite email off": 1}
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'send_invites'") == 0


# All Customers: every contact any import adds is in it too, whatever segment it imports into
@pytest.mark.parametrize(("target", "later"), [("VIP", "VIP"), ("All Customers", "Newsletter")])
async def test_a_later_import_into_a_targeted_segment_enrolls_only_its_new_contacts(
    world: World, target: str, later: str,
) -> None:  # fmt: skip
    await world.import_csv("VIP", people("old@example.com,O,"))
    spring = await world.campaign()
    await world.target(spring, target)
    await world.import_csv(later, people("old@example.com,O,", "new@example.com,N,"))
    emails = await world.rows("SELECT c.email FROM advocate a JOIN contact c "
                              "ON c.id = a.contact_id ORDER BY a.id")  # fmt: skip
    assert emails == [("old@example.com",), ("new@example.com",)]
    assert await world.scalar("SELECT COUNT(*) FROM invite") == 2


async def test_an_imports_enrollment_is_queued_once_however_often_asked(world: World) -> None:
    await world.import_csv("VIP", people("old@example.com,O,"))
    spring = await world.campaign()
    await world.target(spring, "VIP")
    await world.import_csv("VIP", people("new@example.com,N,"))
    from bot.imports.batches import get_batch

    batch = await get_batch(world.db, TEAM, int(str(await world.scalar(
        "SELECT MAX(id) FROM import_batch"))))  # fmt: skip
    assert batch is not None
    first = await enroll_imported(world.db, batch, hold=False)  # e.g. a retried import job
    second = await enroll_imported(world.db, batch, hold=False)
    assert first == second and len(first) == 1
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'enroll'") == 1
async def test_a_code_that_collides_is_drawn_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    real = os.urandom
    draws = iter([b"\x00" * 16])  # both contacts draw "22222222" the first time

    def urandom(n: int) -> bytes:
        chunk = next(draws, None)
        return chunk[:n] if chunk is not None and len(chunk) >= n else real(n)

    monkeypatch.setattr(codes.os, "urandom", urandom)
    result = await world.target(spring, "VIP")
    assert result.enrolled == 2
    found = [c for (c,) in await world.rows("SELECT code FROM advocate ORDER BY code")]
    assert len(set(found)) == 2 and "22222222" in found


async def test_a_retired_code_is_never_drawn_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted contact's link answers 410 for good: its code is never handed out again."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    async with world.db.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("INSERT INTO retired_code (code, team_id, retired_at) "
                                "VALUES ('22222222', :t, CURRENT_TIMESTAMP)"), {"t": TEAM})
    real = os.urandom
    draws = iter([b"\x00" * 16])  # both contacts draw "22222222" the first time

    def urandom(n: int) -> bytes:
        chunk = next(draws, None)
        return chunk[:n] if chunk is not None and len(chunk) >= n else real(n)

    monkeypatch.setattr(codes.os, "urandom", urandom)
    assert (await world.target(spring, "VIP")).enrolled == 2
    found = [c for (c,) in await world.rows("SELECT code FROM advocate")]
    assert len(set(found)) == 2 and "22222222" not in found


async def test_targeting_a_segment_being_deleted_is_refused(world: World) -> None:
    """PostgreSQL: a deletion under way (its row lock held here, as its UPDATE holds it) is
    waited for and then seen; before, the campaign kept a target naming a deleted segment."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite's write lock orders them already")
    await world.import_csv("VIP", people("a@example.com,A,"))
    spring = await world.campaign(live=False)
    segment = await world.segment_id("VIP")
    deleting = await world.db.engine.connect()
    transaction = await deleting.begin()
    await deleting.execute(text("UPDATE segment SET kind = 'deleted' WHERE id = :s"),
                           {"s": segment})  # fmt: skip
    pid = await backend_pid(deleting)
    targeting = asyncio.create_task(service.target(world.db, TEAM, spring, segment,
                                                   requested_by="U1"))  # fmt: skip
    await until_waiting_or_done(world.db, pid, targeting)
    await deleting.execute(text("DELETE FROM campaign_segment WHERE segment_id = :s"),
                           {"s": segment})  # fmt: skip
    await transaction.commit()
    await deleting.close()
    with pytest.raises(service.CampaignError, match="deleted meanwhile"):
        await targeting
    assert await world.scalar("SELECT COUNT(*) FROM campaign_segment") == 0


async def test_a_shell_imports_enrollment_is_a_job_run_in_the_shell_and_marked_done(
    world: World,
) -> None:
    """The command line enrolled in its own process with no job: cut short (Ctrl-C, a
    dropped SSH session), the enrollment stayed queued for ever and its contacts were never
    enrolled. Its first step now queues the job (a worker finishes what the shell didn't);
    run here, the job is marked done."""
    await world.import_csv("VIP", people("old@example.com,O,"))
    spring = await world.campaign()
    await world.target(spring, "VIP")
    await world.import_csv("VIP", people("new@example.com,N,"))  # the shell's import
    batch = int(str(await world.scalar("SELECT MAX(id) FROM import_batch")))
    assert await world.rows("SELECT state FROM job WHERE kind = 'enroll' AND dedupe_key = :k",
                            k=service.import_enrollment_key(spring, batch)) == [("done",)]
    assert await world.rows("SELECT status, enrolled FROM enrollment WHERE batch_id = :b",
                            b=batch) == [("done", 1)]  # fmt: skip


async def _run_queued_enrollments(world: World) -> None:
    """What a worker does with the enrollment jobs queued meanwhile."""
    for (enrollment,) in await world.rows("SELECT id FROM enrollment WHERE status = 'queued'"):
        await run_enrollment(world.db, TEAM, int(enrollment), hold_seconds=0)


async def _advocates(world: World) -> list[str]:
    return [r[0] for r in await world.rows(
        "SELECT c.email FROM advocate a JOIN contact c ON c.id = a.contact_id ORDER BY c.email")]


@pytest.mark.parametrize("how", ["segment deleted", "contact removed", "import undone"])
async def test_contacts_no_longer_excluded_are_enrolled(world: World, how: str) -> None:
    """Spring targets VIP and excludes Staff; a is in both. Once a leaves Staff (Staff
    deleted, a taken out of it, the import that put a there undone) nothing enrolled a: it
    stayed in a targeted segment without a link, importing it again enrolled nobody (a was a
    member already) and the review's preview promised it an invite."""
    from bot.imports.undo import undo_now

    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    await world.import_csv("Staff", people("a@example.com,A,"))
    spring = await world.campaign()
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Staff"))
    first = await world.target(spring, "VIP")
    assert (first.enrolled, first.excluded) == (1, 1)
    staff = await world.segment_id("Staff")
    if not await world.leave(how, staff, "a@example.com"):  # the import undone
        from bot.imports.undo import undo_plan

        batch = int(str(await world.scalar(
            "SELECT id FROM import_batch WHERE segment_id = :s", s=staff)))  # fmt: skip
        # the confirmation says so
        assert (await undo_plan(world.db, TEAM, batch, window_days=7)).excluding == ("Spring",)
        await undo_now(world.db, TEAM, batch, "U1", remove_advocates=False, window_days=7)
    await _run_queued_enrollments(world)
    assert await _advocates(world) == ["a@example.com", "b@example.com"]


async def test_undo_with_advocates_keeps_one_another_target_still_reaches(world: World) -> None:
    """Spring targets VIP and News. n came new with an import into VIP (enrolled through
    it), then with one into News. Undoing the VIP import with its advocates retired n's link
    though n stayed in News, which Spring targets: a contact in the audience without a link,
    whose sent link answered 410, and importing News again enrolled nobody."""
    from bot.imports.undo import undo_now, undo_plan

    spring = await world.campaign()
    await world.import_csv("VIP", people("z@example.com,Z,"))
    await world.import_csv("News", people("y@example.com,Y,"))
    await world.target(spring, "VIP")
    await world.target(spring, "News")
    await world.import_csv("VIP", people("n@example.com,N,", "o@example.com,O,"))
    vip_batch = int(str(await world.scalar("SELECT MAX(id) FROM import_batch")))
    await world.import_csv("News", people("n@example.com,N,"))
    plan = await undo_plan(world.db, TEAM, vip_batch, window_days=7)
    assert plan.advocates == 1  # o's, not n's
    code = await world.scalar("SELECT a.code FROM advocate a JOIN contact c "
                              "ON c.id = a.contact_id WHERE c.email = 'n@example.com'")
    await undo_now(world.db, TEAM, vip_batch, "U1", remove_advocates=True, window_days=7)
    assert await _advocates(world) == ["n@example.com", "y@example.com", "z@example.com"]
    assert await world.scalar("SELECT a.code FROM advocate a JOIN contact c "
                              "ON c.id = a.contact_id WHERE c.email = 'n@example.com'") == code


async def test_a_deleted_contact_imported_again_is_not_emailed_twice(world: World) -> None:
    """Deleting a contact deleted its sent invite with it: imported again, it was enrolled
    with a new link and emailed a second time by the same campaign."""
    await world.emailed_then_deleted()
    await world.import_csv("VIP", people("A@example.com,A,", "b@example.com,B,"))
    states = await world.rows(
        "SELECT c.email, i.state, i.reason FROM invite i JOIN contact c ON c.id = i.contact_id "
        "ORDER BY c.email")  # fmt: skip
    assert states == [("A@example.com", "not_emailed", "invited before"),
                      ("b@example.com", "queued", None)]  # fmt: skip
    from bot.campaigns.preview import preview_batch
    from bot.contact_admin import delete_contact as delete
    from bot.imports.batches import add_source, create_batch, stage_csv

    again = int(str(await world.scalar("SELECT id FROM contact WHERE email = 'A@example.com'")))
    await delete(world.db, TEAM, again, "U1")  # its invite never went: nothing remembered anew
    batch = await create_batch(world.db, TEAM, await world.segment_id("VIP"), "U1")
    source = await add_source(world.db, TEAM, batch.id or 0, "csv", "p.csv")
    await stage_csv(world.db, TEAM, source.id or 0, io.BytesIO(b"email\na@example.com\n"))
    [shown] = await preview_batch(world.db, TEAM, batch.id or 0, await world.segment_id("VIP"))
    assert (shown.will_invite, shown.without_email) == (0, {"invited before": 1})


async def test_contacts_taken_out_one_by_one_share_one_waiting_enrollment(world: World) -> None:
    """Each contact taken out of an excluded segment queued an enrollment of every target,
    each reading the whole audience: one waiting to start sees every change."""
    from bot.contact_admin import remove_from_segment

    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    await world.import_csv("Staff", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Staff"))
    await world.target(spring, "VIP")
    staff = await world.segment_id("Staff")
    for email in ("a@example.com", "b@example.com"):
        contact = int(str(await world.scalar("SELECT id FROM contact WHERE email = :e", e=email)))
        await remove_from_segment(world.db, TEAM, contact, staff, "U1")
    assert await world.scalar("SELECT COUNT(*) FROM enrollment WHERE status = 'queued'") == 1
    await _run_queued_enrollments(world)
    assert await _advocates(world) == ["a@example.com", "b@example.com"]


_INVITE_STATE = ("SELECT i.state FROM invite i JOIN contact c ON c.id = i.contact_id "
                 "WHERE c.email = :e")


async def _undone_with_its_invite_cancelled(world: World) -> int:
    """b, a contact already (in Other), imported into VIP, which live Spring targets (invites
    delayed 3 days): its invite queued; that import undone without its advocates, so the
    invite is cancelled and b stays an advocate. Returns Spring."""
    from bot.imports.undo import undo_now

    await world.import_csv("Other", people("b@example.com,B,"))
    spring = await world.campaign()
    await world.import_csv("VIP", people("z@example.com,Z,"))
    await world.target(spring, "VIP")
    async with world.db.begin() as conn:
        await conn.execute(text("UPDATE campaign SET invite_delay_days = 3"))
    await world.import_csv("VIP", people("b@example.com,B,"))
    batch = int(str(await world.scalar("SELECT MAX(id) FROM import_batch")))
    await undo_now(world.db, TEAM, batch, "U1", remove_advocates=False, window_days=7)
    assert await world.scalar(_INVITE_STATE, e="b@example.com") == "cancelled"
    return spring


async def test_an_undone_import_done_again_invites_a_known_contact(world: World) -> None:
    """The same file again: b was "already an advocate" and its cancelled invite stayed so,
    never emailed."""
    from bot.campaigns.preview import preview_batch
    from bot.imports.batches import add_source, create_batch, stage_csv

    await _undone_with_its_invite_cancelled(world)
    vip = await world.segment_id("VIP")
    draft = await create_batch(world.db, TEAM, vip, "U1")
    source = await add_source(world.db, TEAM, draft.id or 0, "csv", "p.csv")
    await stage_csv(world.db, TEAM, source.id or 0, io.BytesIO(b"email\nb@example.com\n"))
    [shown] = await preview_batch(world.db, TEAM, draft.id or 0, vip)
    assert (shown.will_invite, shown.already_advocates) == (1, 0)  # as the apply then does
    await world.import_csv("VIP", people("b@example.com,B,"))
    assert await world.scalar(_INVITE_STATE, e="b@example.com") == "queued"


async def test_an_undone_import_done_again_invites_nobody_the_campaign_now_excludes(
    world: World,
) -> None:
    spring = await _undone_with_its_invite_cancelled(world)
    await world.import_csv("Blocked", people("b@example.com,B,"))
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Blocked"))
    await world.import_csv("VIP", people("b@example.com,B,"))
    assert await world.scalar(_INVITE_STATE, e="b@example.com") == "cancelled"


@pytest.mark.parametrize("how", ["target", "go live", "exclusion ends"])
async def test_an_advocate_whose_invite_an_undo_cancelled_is_invited_when_targeted_again(
    world: World, how: str,
) -> None:
    """b, in Other, was invited to Spring through VIP; that import was undone (the invite
    cancelled, b kept as an advocate). Spring then reached Other (targeted there, going live
    with it targeted, or b leaving a segment Spring excludes): b was in Spring's audience
    again but stayed an advocate with a cancelled invite, never emailed, though a later
    import into VIP would have invited it."""
    from bot.contact_admin import remove_from_segment

    spring = await _undone_with_its_invite_cancelled(world)
    other = await world.segment_id("Other")
    if how == "target":
        assert (await world.target(spring, "Other")).invites_queued == 1
    elif how == "go live":
        await service.set_state(world.db, TEAM, spring, CampaignState.PAUSED, requested_by="U1")
        assert await service.target(world.db, TEAM, spring, other, requested_by="U1") is None
        await service.set_state(world.db, TEAM, spring, CampaignState.LIVE, requested_by="U1",
                                queue_job=False)  # fmt: skip
        await _run_queued_enrollments(world)
    else:
        await world.import_csv("Blocked", people("b@example.com,B,"))
        blocked = await world.segment_id("Blocked")
        await service.exclude(world.db, TEAM, spring, blocked)
        await world.target(spring, "Other")
        assert await world.scalar(_INVITE_STATE, e="b@example.com") == "cancelled"  # excluded
        bea = int(str(await world.scalar("SELECT id FROM contact WHERE email = 'b@example.com'")))
        await remove_from_segment(world.db, TEAM, bea, blocked, "U1")
        await _run_queued_enrollments(world)
    assert await world.scalar(_INVITE_STATE, e="b@example.com") == "queued"
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 2  # b's link kept, z's


@pytest.mark.parametrize(("change", "why"), [
    # a file that withdrew consent: she never unsubscribed (said so of her, it was untrue)
    ("UPDATE contact SET subscribed = :no WHERE email = 'b@example.com'", "not subscribed"),
    ("UPDATE contact SET subscribed = :no, unsubscribed_at = updated_at "
     "WHERE email = 'b@example.com'", "unsubscribed"),  # our link, or a lead
    ("UPDATE campaign SET invite_email = :no", "invite email off")],
    ids=["not subscribed", "unsubscribed", "invite email off"])  # fmt: skip
async def test_targeting_again_emails_no_undone_advocate_the_campaign_may_not(
    world: World, change: str, why: str,
) -> None:
    """Invited again as a new advocate would be: not emailed once it said no, nor by a
    campaign that sends no invites."""
    spring = await _undone_with_its_invite_cancelled(world)
    async with world.db.begin() as conn:
        await conn.execute(text(change), {"no": False})
    await world.target(spring, "Other")
    assert await world.rows(
        "SELECT i.state, i.reason FROM invite i JOIN contact c ON c.id = i.contact_id "
        "WHERE c.email = 'b@example.com'") == [("not_emailed", why)]  # fmt: skip


async def test_an_advocate_in_an_excluded_segment_is_not_called_excluded(world: World) -> None:
    """Targeting again after an exclusion said "(1 already were, 1 excluded)" of two
    advocates: the one in the excluded segment kept her link, she was never left out."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    assert (await world.target(spring, "VIP")).enrolled == 2
    await world.import_csv("Staff", people("a@example.com,A,", "c@example.com,C,"))
    await service.exclude(world.db, TEAM, spring, await world.segment_id("Staff"))
    await world.import_csv("VIP", people("c@example.com,C,"))

    again = await world.target(spring, "VIP")

    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 2
    assert (again.enrolled, again.already_advocates, again.excluded) == (0, 2, 1), again


async def test_excluding_a_segment_cancels_its_contacts_waiting_invites(world: World) -> None:
    """With an invite delay (or a hold), a contact of a segment excluded after targeting was
    still emailed when the delay ended: the send checks consent and the campaign, not the
    exclusions. Her advocate and link stay."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign(invite_delay_days=3)
    assert (await world.target(spring, "VIP")).invites_queued == 2
    await reported_in_a_thread(world)
    await world.import_csv("Staff", people("a@example.com,A,"))

    await service.exclude(world.db, TEAM, spring, await world.segment_id("Staff"))

    invites = await world.rows(
        "SELECT c.email, i.state, i.reason FROM invite i JOIN contact c ON c.id = i.contact_id "
        "ORDER BY c.email")  # fmt: skip
    assert invites == [("a@example.com", "cancelled", "excluded: in Staff, which the campaign "
                        "excludes"), ("b@example.com", "queued", None)], invites  # fmt: skip
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 2
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'slack_report' AND "
                              "payload LIKE '%enrollment_changed%'") == 1


async def test_cancelling_an_imports_enrollment_job_ends_the_enrollment_saying_so(
    world: World,
) -> None:
    """`jobs cancel` of the job enrolling an import's contacts left the enrollment "queued"
    for ever: nothing queues an import's enrollment again, so its thread kept saying
    "Enrolling contacts…" and its contacts were never enrolled, with nothing to say so."""
    from bot.imports.batches import get_batch
    from bot.imports.cancel import cancel_job

    await world.import_csv("VIP", people("new@example.com,N,"))  # no campaign yet
    batch = await get_batch(world.db, TEAM, int(str(await world.scalar(
        "SELECT MAX(id) FROM import_batch"))))  # fmt: skip
    assert batch is not None
    await world.target(await world.campaign(), "VIP")
    (enrollment,) = await enroll_imported(world.db, batch, hold=False)  # queued, not run
    await reported_in_a_thread(world)
    job = int(str(await world.scalar("SELECT id FROM job WHERE kind = 'enroll' "
                                     "AND state = 'queued'")))  # fmt: skip

    await cancel_job(world.db, TEAM, job)

    assert await world.rows("SELECT status, error FROM enrollment WHERE id = :e",
                            e=enrollment) == [("failed", "its job was cancelled "
                                                         "(`referral-bot jobs cancel`).")]
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'slack_report' AND "
                              "payload LIKE '%enrollment_changed%'") == 1


@pytest.mark.skipif(os.environ.get("TEST_DATABASE", "sqlite") != "postgres",
                    reason="needs two writers at once: row locks")
@pytest.mark.parametrize("of_an_import", [True, False])
async def test_jobs_cancel_while_an_enrollment_waits_for_its_campaign_enrolls_nobody(
    world: World, of_an_import: bool,
) -> None:  # fmt: skip
    """`jobs cancel` of an enroll job whose run was waiting for its campaign's row (an Edit or
    a Target holding it): the run had read the enrollment's status before, went on to enroll
    everyone, marked the import's enrollment done over the cancel's "failed", and queued the
    invites (a targeting's enrollment, left queued by the cancel, was enrolled all the same)."""
    from bot.imports.cancel import ENROLL_CANCELLED, cancel_job
    from tests.imports.test_cancel_finished_work import _enroll_worker, _enrollment_with_its_job

    # an import's enrollment (as an import into a segment Spring targets ends) or a Target's
    enrollment, job = await _enrollment_with_its_job(world, of_an_import)
    spring = int(str(await world.scalar("SELECT id FROM campaign")))
    worker = _enroll_worker(world.db)
    async with world.db.engine.connect() as blocker:
        await blocker.begin()  # holds Spring's row: the run stops at its campaign take
        await blocker.execute(text("UPDATE campaign SET updated_at = updated_at WHERE id = :c"),
                              {"c": spring})  # fmt: skip
        run = asyncio.create_task(worker.run_until_idle())
        assert await until_waiting_or_done(world.db, await backend_pid(blocker), run)
        cancelled = await cancel_job(world.db, TEAM, job)  # `referral-bot jobs cancel`
        assert cancelled is not None and cancelled.state == "cancelled"
        await blocker.rollback()
        await run
    assert await world.rows("SELECT status, error FROM enrollment WHERE id = :e",
                            e=enrollment) == [("failed", ENROLL_CANCELLED) if of_an_import
                                              else ("queued", None)]  # fmt: skip
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 0
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'send_invites'") == 0
