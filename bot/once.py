"""Doing a thing once per workspace, across retries and processes: a unique key in the database."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from models import Database, SeenKey


async def first_time(db: Database, team_id: str, key: str) -> bool:
    """True the first time `key` is seen for this workspace, False on every repeat."""
    async with db.session() as session:
        session.add(SeenKey(team_id=team_id, key=key[:200]))
        try:
            await session.commit()
        except IntegrityError:
            return False
    return True
