"""Unsubscribing from the public link stops invites and redraws the reports counting them."""

from __future__ import annotations

from sqlalchemy import text

from bot.campaigns.consent import suppress, unsubscribe
from bot.notify import ENROLLMENT_CHANGED, REPORT_JOB, report_key
from tests.campaigns.conftest import TEAM, World, people, reported_in_a_thread


async def _reports_queued(world: World) -> set[str]:
    return {str(key) for (key,) in await world.rows(
        "SELECT dedupe_key FROM job WHERE kind = :k AND state = 'queued'", k=REPORT_JOB)}


async def _no_reports_queued(world: World) -> None:
    async with world.db.begin() as conn:
        await conn.execute(text("DELETE FROM job WHERE kind = :k"), {"k": REPORT_JOB})


async def test_the_link_redraws_the_report_of_the_invites_it_stops(world: World) -> None:
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    await world.target(await world.campaign(), "VIP", hold=3600)
    (enrollment,) = [int(e) for (e,) in await world.rows("SELECT id FROM enrollment")]
    await reported_in_a_thread(world)
    a, key = (await world.rows("SELECT id, email_key FROM contact "
                               "WHERE email = 'a@example.com'"))[0]  # fmt: skip
    await _no_reports_queued(world)
    assert await unsubscribe(world.db, TEAM, int(a), str(key)) == "a@example.com"
    assert await world.rows("SELECT state FROM invite WHERE contact_id = :c", c=a) == [
        ("not_emailed",)]
    assert await _reports_queued(world) == {
        report_key(ENROLLMENT_CHANGED, {"enrollment_id": enrollment})}
    await _no_reports_queued(world)
    assert await unsubscribe(world.db, TEAM, int(a), str(key)) == "a@example.com"  # again
    assert await _reports_queued(world) == set()  # nothing stopped, nothing to redraw


async def test_a_deleted_contacts_link_redraws_the_report_of_its_new_contact(
    world: World,
) -> None:
    """The link of a deleted contact suppresses its address, and unsubscribes the contact an
    import made of it since, stopping that one's invites: their report is redrawn."""
    await world.emailed_then_deleted()
    await world.import_csv("Later", people("a@example.com,A,"))
    await world.target(await world.campaign("Autumn"), "Later", hold=3600)
    (enrollment,) = [int(e) for (e,) in await world.rows(
        "SELECT enrollment_id FROM invite WHERE state IN ('queued', 'held')")]  # fmt: skip
    await reported_in_a_thread(world)
    await _no_reports_queued(world)
    await suppress(world.db, TEAM, "a@example.com")
    assert await world.scalar("SELECT COUNT(*) FROM invite WHERE state IN ('queued', 'held')") == 0
    assert await _reports_queued(world) == {
        report_key(ENROLLMENT_CHANGED, {"enrollment_id": enrollment})}
