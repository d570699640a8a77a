"""A segment made for an import that came to nothing is withdrawn only while it is empty,
asked in the deleting transaction itself.

withdraw_segment counted the members, then deleted the segment in a transaction of its own:
a contact added in between (an import into it finishing) was taken out with it. The delete
it asks for now refuses, in its own transaction, a segment that holds a contact."""

from __future__ import annotations

import pytest

from bot.audit import recent
from bot.segments import delete_segment, withdraw_segment
from bot.workspaces import WorkspaceError, create_segment, ensure_workspace, find_segment
from models import Database
from tests.test_segments import TEAM, _import


async def test_a_delete_for_an_empty_segment_keeps_one_with_a_contact(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    await _import(db, "VIP", "email\nana@example.com\n")
    vip = await find_segment(db, TEAM, "VIP")
    assert vip is not None
    with pytest.raises(WorkspaceError, match="It holds contacts now"):
        await delete_segment(db, TEAM, vip.id or 0, actor="U0002", only_if_empty=True)
    kept = await find_segment(db, TEAM, "VIP")
    assert kept is not None and kept.id == vip.id
    assert not [e for e in await recent(db, TEAM) if e.action == "segment.deleted"]


async def test_an_empty_segment_made_for_nothing_is_withdrawn(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_workspace(db, TEAM)
    made = await create_segment(db, TEAM, "Spring list")
    with caplog.at_level("INFO", logger="bot.segments"):
        await withdraw_segment(db, TEAM, made.id or 0, "U0002")
    assert await find_segment(db, TEAM, "Spring list") is None
    # whose segment, in the log: several workspaces share one database
    assert f"segment {made.id} of {TEAM} withdrawn" in caplog.text, caplog.text
    [entry] = [e for e in await recent(db, TEAM) if e.action == "segment.deleted"]
    # why it went, not only that it held nothing: the log said what a lead's deletion says
    assert (entry.actor, entry.subject, entry.detail) == (
        "U0002", "Spring list", "created for an import that imported nothing, removed again "
        "with it")  # fmt: skip
