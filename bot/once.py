"""Doing a thing once per workspace, across retries and processes: a unique key in the database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from models import Database, SeenKey
from models.clock import utcnow


async def first_time(db: Database, team_id: str, key: str) -> bool:
    """True the first time `key` is seen for this workspace, False on every repeat."""
    async with db.session() as session:
        session.add(SeenKey(team_id=team_id, key=key[:200]))
        try:
            await session.commit()
        except IntegrityError:
            return False
    return True


async def forget(db: Database, team_id: str, key: str) -> bool:
    """Undo first_time() for a thing that turned out not to be done (so a retry does it);
    True if the key was there."""
    async with db.begin() as conn:
        return await forget_in(conn, team_id, key)


async def forget_in(conn: AsyncConnection, team_id: str, key: str) -> bool:
    """forget(), in the caller's transaction."""
    result = await conn.execute(
        delete(SeenKey).where(col(SeenKey.team_id) == team_id, col(SeenKey.key) == key[:200])
    )
    return bool(result.rowcount)


async def keys_under(db: Database, team_id: str, prefix: str) -> list[str]:
    """The workspace's keys that start with `prefix`: things noted to be done once another
    process gets to them (forget() each when done)."""
    async with db.begin() as conn:
        found = await conn.execute(select(SeenKey.key).where(
            col(SeenKey.team_id) == team_id,
            col(SeenKey.key).startswith(prefix[:200], autoescape=True)))  # fmt: skip
        return list(found.scalars())


async def seen_in(conn: AsyncConnection, team_id: str, key: str) -> None:
    """Mark `key` seen in the caller's transaction, whether or not it was (first_time() after
    it is False)."""
    await forget_in(conn, team_id, key)
    await conn.execute(insert(SeenKey).values(team_id=team_id, key=key[:200],
                                              created_at=utcnow()))  # fmt: skip


async def hold(db: Database, team_id: str, key: str, *, stale_after: timedelta) -> bool:
    """Take `key` while a thing is under way (forget() it when done): True if this caller
    took it, False while someone else holds it. A key older than `stale_after` belongs to a
    holder that died without letting go (a process killed mid-way): it is taken over."""
    async with db.begin() as conn:
        await conn.execute(
            delete(SeenKey).where(col(SeenKey.team_id) == team_id, col(SeenKey.key) == key[:200],
                                  col(SeenKey.created_at) < utcnow() - stale_after)
        )  # fmt: skip
    return await first_time(db, team_id, key)
