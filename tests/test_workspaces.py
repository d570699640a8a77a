"""Workspaces come into being once, however many first requests arrive together."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bot.workspaces import WorkspaceError, ensure_workspace, resolve_team
from models import Database


async def test_simultaneous_first_requests_create_one_workspace(db: Database) -> None:
    made = await asyncio.gather(*(ensure_workspace(db, "TNEW") for _ in range(6)))
    assert {w.team_id for w in made} == {"TNEW"}
    async with db.begin() as conn:
        segments = (await conn.execute(text(
            "SELECT COUNT(*) FROM segment WHERE team_id = 'TNEW'"))).scalar_one()  # fmt: skip
    assert segments == 1  # one All Customers


async def test_a_shell_command_among_several_workspaces_names_them(db: Database) -> None:
    """It said "There are several workspaces: choose one with --team." and left the reader to
    find the team ids somewhere else."""
    for team in ("TB2", "TA1"):
        await ensure_workspace(db, team)
    with pytest.raises(WorkspaceError) as refused:
        await resolve_team(db, None)
    assert str(refused.value) == ("There are several workspaces: choose one with --team "
                                  "(TA1, TB2).")  # fmt: skip
