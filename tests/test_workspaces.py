"""Workspaces come into being once, however many first requests arrive together."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from bot.workspaces import ensure_workspace
from models import Database


async def test_simultaneous_first_requests_create_one_workspace(db: Database) -> None:
    made = await asyncio.gather(*(ensure_workspace(db, "TNEW") for _ in range(6)))
    assert {w.team_id for w in made} == {"TNEW"}
    async with db.begin() as conn:
        segments = (await conn.execute(text(
            "SELECT COUNT(*) FROM segment WHERE team_id = 'TNEW'"))).scalar_one()  # fmt: skip
    assert segments == 1  # one All Customers
