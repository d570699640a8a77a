"""How far back imports can be undone: UNDO_WINDOW_DAYS, never past where it once reached.

An apply skips listing the contacts it shares with imports past the window (engine.py), and
the daily purge clears those imports' listings and re-subscriptions (retention.py): undoing
one of them afterwards would take out contacts a later import put in its segment. So both
record, per workspace and in their own transaction, the finish time before which nothing
can be undone any more (`workspace.undo_closed_before`, which only moves forward); raising
UNDO_WINDOW_DAYS later doesn't reach past it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from models import Database
from models.clock import utcnow

_CLOSE = text("""
    UPDATE workspace SET undo_closed_before = :cutoff
    WHERE team_id = :t AND (undo_closed_before IS NULL OR undo_closed_before < :cutoff)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))
_CLOSED = text("SELECT undo_closed_before FROM workspace WHERE team_id = :t").columns(
    undo_closed_before=UTCDateTime()
)
# The undo's conditional UPDATE of `import_batch`: its import finished where undo still reaches
STILL_OPEN = ("NOT EXISTS (SELECT 1 FROM workspace w WHERE w.team_id = :t "
              "AND w.undo_closed_before > import_batch.finished_at)")  # fmt: skip


async def close_undo_before(conn: AsyncConnection, team_id: str, cutoff: datetime) -> None:
    """Imports of the workspace that finished before `cutoff` can't be undone from now on."""
    await conn.execute(_CLOSE, {"t": team_id, "cutoff": cutoff})


async def undo_closed_before(db: Database, team_id: str) -> datetime | None:
    """The finish time before which the workspace's imports can't be undone (None: any)."""
    async with db.begin() as conn:
        return (await conn.execute(_CLOSED, {"t": team_id})).scalar()


async def undoable_since(db: Database, team_id: str, window_days: int) -> datetime:
    """The earliest finish time of an import that can be undone now: within the window, and
    never before `undo_closed_before`."""
    since = utcnow() - timedelta(days=window_days)
    closed = await undo_closed_before(db, team_id)
    return since if closed is None else max(since, closed)
