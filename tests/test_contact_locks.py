"""Deleting a contact while an enrollment or an import attaches rows to it (PostgreSQL, READ
COMMITTED, no foreign keys on contact ids): the workspace's contacts lock (models/locks.py)
makes one wait for the other, so nothing is left pointing at a contact that is gone.

Each race is made to happen, not hoped for: a third connection holds a lock on the contact's
invite, so the deletion stops part way (the contact row already deleted, not committed); the
enrollment or import then runs. Without the lock it commits rows for the contact it still
sees; with it, it waits for the deletion and then sees the contact gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text

from bot.campaigns import service
from bot.campaigns.enroll import run_enrollment
from bot.contact_admin import delete_contact, find_by_email
from models import Database
from tests.campaigns.conftest import TEAM, World, people
from tests.waiting import backend_pid, until_waiting_or_done

ORPHANS = """
    SELECT (SELECT COUNT(*) FROM advocate a WHERE NOT EXISTS
                (SELECT 1 FROM contact c WHERE c.id = a.contact_id)),
           (SELECT COUNT(*) FROM invite i WHERE NOT EXISTS
                (SELECT 1 FROM contact c WHERE c.id = i.contact_id)),
           (SELECT COUNT(*) FROM segment_member m WHERE NOT EXISTS
                (SELECT 1 FROM contact c WHERE c.id = m.contact_id))
"""


@pytest.fixture
async def world(db: Database) -> World:
    if db.dialect != "postgresql":
        pytest.skip("SQLite runs one writer at a time: these can't interleave there")
    from bot.workspaces import ensure_workspace

    await ensure_workspace(db, TEAM)
    return World(db)


@asynccontextmanager
async def _deletion_stopped_part_way(world: World, contact_id: int
                                     ) -> AsyncIterator[tuple[int, asyncio.Task[Any]]]:  # fmt: skip
    """Delete the contact, held after its contact row is deleted (before its invites are):
    yields the deleting backend's pid and its task; leaving lets it finish."""
    blocker = await world.db.engine.connect()
    transaction = await blocker.begin()
    await blocker.execute(text("SELECT id FROM invite WHERE contact_id = :c FOR UPDATE"),
                          {"c": contact_id})  # fmt: skip
    pid = await backend_pid(blocker)
    deletion = asyncio.create_task(delete_contact(world.db, TEAM, contact_id, "U0002"))
    try:
        deleting = await until_waiting_or_done(world.db, pid, deletion)
        assert deleting is not None, "the deletion didn't reach the invite it waits for"
        yield deleting, deletion
    finally:
        await transaction.commit()
        await blocker.close()
        await deletion


async def _race(world: World, contact_id: int, other: Coroutine[Any, Any, Any]) -> Any:
    """Run `other` while the contact's deletion is under way; its result."""
    async with _deletion_stopped_part_way(world, contact_id) as (deleting, _):
        task = asyncio.create_task(other)
        waited = await until_waiting_or_done(world.db, deleting, task)
        assert waited is not None, "it ran through a deletion under way"
    return await task


async def _ada_an_advocate(world: World) -> int:
    """ada and bob in VIP, advocates of Spring (invites held): ada has an invite to lock."""
    await world.import_csv("VIP", people("ada@example.com,Ada", "bob@example.com,Bob"))
    await world.target(await world.campaign("Spring"), "VIP", hold=3600)
    return await find_by_email(world.db, TEAM, "ada@example.com")


async def test_an_enrollment_waits_for_a_deletion_under_way(world: World) -> None:
    ada = await _ada_an_advocate(world)
    autumn = await world.campaign("Autumn")
    enrollment = await service.target(world.db, TEAM, autumn, await world.segment_id("VIP"),
                                      requested_by="U1", queue_job=False)  # fmt: skip
    assert enrollment is not None
    result = await _race(world, ada, run_enrollment(world.db, TEAM, enrollment, hold_seconds=0))
    assert result.enrolled == 1  # bob: ada was gone by the time it looked
    assert await world.rows(ORPHANS) == [(0, 0, 0)]
    assert await world.scalar("SELECT COUNT(*) FROM advocate WHERE campaign_id = :c",
                              c=autumn) == 1  # fmt: skip


async def test_an_import_waits_for_a_deletion_under_way(world: World) -> None:
    ada = await _ada_an_advocate(world)
    await _race(world, ada, world.import_csv("Later", people("ada@example.com,Ada")))
    assert await world.rows(ORPHANS) == [(0, 0, 0)]
    again = await find_by_email(world.db, TEAM, "ada@example.com")  # imported anew
    assert again != ada
    assert await world.rows(
        "SELECT s.name FROM segment_member m JOIN segment s ON s.id = m.segment_id "
        "WHERE m.contact_id = :c", c=again) == [("Later",)]  # fmt: skip


async def test_an_undo_waits_for_imports_and_enrollments_under_way(world: World) -> None:
    """An undo deletes contacts its import created: like a deletion, it waits for the chunks
    that hold the contacts lock shared (here a transaction standing in for one)."""
    from bot.imports.undo import undo_now
    from models.locks import lock_contacts

    await world.import_csv("VIP", people("ada@example.com,Ada"))
    batch = int(str(await world.scalar("SELECT MAX(id) FROM import_batch")))
    holder = await world.db.engine.connect()
    transaction = await holder.begin()
    try:
        await lock_contacts(holder, TEAM, exclusive=False)
        pid = await backend_pid(holder)
        undo = asyncio.create_task(undo_now(world.db, TEAM, batch, "U0002",
                                            remove_advocates=False, window_days=7))  # fmt: skip
        assert await until_waiting_or_done(world.db, pid, undo) is not None, "it didn't wait"
        assert await world.scalar("SELECT COUNT(*) FROM contact") == 1
    finally:
        await transaction.commit()
        await holder.close()
    assert (await undo).undo_deleted == 1
    assert await world.rows(ORPHANS) == [(0, 0, 0)]


async def test_taking_a_contact_out_of_a_segment_waits_for_imports_under_way(
    world: World,
) -> None:
    """An import's chunk records which contacts it found in its segment already, from the
    memberships it read (undoing the import that added them hands them on to it): a removal
    committed in between left a record of a membership that was gone. So the removal waits
    for the chunks under way, like a deletion (here a transaction standing in for one)."""
    from bot.contact_admin import remove_from_segment
    from models.locks import lock_contacts

    await world.import_csv("VIP", people("ada@example.com,Ada"))
    ada = await find_by_email(world.db, TEAM, "ada@example.com")
    members = "SELECT COUNT(*) FROM segment_member WHERE contact_id = :c"
    holder = await world.db.engine.connect()
    transaction = await holder.begin()
    try:
        await lock_contacts(holder, TEAM, exclusive=False)
        pid = await backend_pid(holder)
        removal = asyncio.create_task(remove_from_segment(
            world.db, TEAM, ada, await world.segment_id("VIP"), "U0002"))  # fmt: skip
        assert await until_waiting_or_done(world.db, pid, removal) is not None, "it didn't wait"
        assert await world.scalar(members, c=ada) == 1
    finally:
        await transaction.commit()
        await holder.close()
    assert (await removal).segment == "VIP"
    assert await world.scalar(members, c=ada) == 0
