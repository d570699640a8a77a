"""Which of a workspace's ended jobs its purge forgets some day, and which it keeps.

Apart from bot.jobs.retention, which deletes them, because bot.jobs.queue asks it too: when
one of the workspace's jobs ends and no purge waits, the queue queues one only if there is
something for it to forget (`jobs_left_to_forget_in`), as the purge's own run decides whether
to queue the next. This module reads the database only; it imports nothing of the queue's.

Kept, whatever their age (see bot.jobs.retention for why): the undo job of an import still
being undone (`UNDO_UNDER_WAY`), and the workspace's newest job.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

ENDED = "('done', 'failed', 'cancelled')"
# the undo's key (bot.imports.undo.undo_key) of an import being undone; `j` is the job
UNDO_UNDER_WAY = """
    SELECT 1 FROM import_batch b
    WHERE b.team_id = :t AND b.status = 'undoing'
      AND j.dedupe_key = 'undo:' || CAST(b.id AS VARCHAR(20))
"""

# An ended job that isn't kept (neither the workspace's newest nor an undo under way) and isn't
# of `own`, the purge's kind: it is forgotten some day, by a purge still to run.
_LEFT_TO_FORGET = text(f"""
    SELECT 1 FROM job j
    WHERE j.team_id = :t AND j.state IN {ENDED} AND j.kind <> :own
      AND j.id < (SELECT MAX(n.id) FROM job n WHERE n.team_id = :t)
      AND NOT EXISTS ({UNDO_UNDER_WAY})
    LIMIT 1
""")


async def jobs_left_to_forget_in(conn: AsyncConnection, team_id: str, own_kind: str) -> bool:
    """Whether the workspace has ended jobs that a later purge will forget (those not kept:
    see the module), leaving out the purge's own runs (`own_kind`): the purge queues its next
    run while there are, and a job's end queues one (none waiting) once there are."""
    params = {"t": team_id, "own": own_kind}
    return (await conn.execute(_LEFT_TO_FORGET, params)).first() is not None
