"""Finished jobs are deleted JOB_RETENTION_DAYS after they ended.

Every job leaves its row in `job` once it ends: each Home refresh, report, send run and purge
added one, and the table grew for ever. The workspace's daily purge (bot.imports.retention)
deletes the rows of its jobs that ended (done, failed or cancelled) more than
JOB_RETENTION_DAYS ago, by the database's clock (bot.jobs.queue.database_now: PostgreSQL's on
PostgreSQL, as leases go by).

Why 30 days: a job's row is what `referral-bot jobs` shows of it (a failed one, with its
error, is listed until then), and a month gives whoever runs the bot time to notice a failure
and look into it; well past the undo window (UNDO_WINDOW_DAYS, 7 by default) and as long as
staged rows are kept (STAGED_RETENTION_DAYS' default), so no import that can still be undone
or reviewed loses its job's row. The work a job did keeps its own record (the import's batch,
the enrollment and its invites, the audit log): nothing that shows an import, a campaign or
Home reads a job that ended. Nothing refers to a job's row by a foreign key; the one id kept
elsewhere, an invite's `sender_job`, is only asked whether its job is still running (a job
that is gone isn't either) or compared with the id of the run at work.

Two kinds of row stay, whatever their age:
- the undo job of an import still being undone (its job failed or was cancelled part way):
  *Finish the undo* and `referral-bot undo N` queue that very row again
  (bot.imports.undo.resume_undo), and its thread, Home and `undo` tell why it stopped from it;
  deleted, the import would stay "being undone" for good with nothing able to finish it;
- the workspace's newest job: SQLite gives a new row the largest id in the table plus one, so
  deleting the newest rows would hand their ids to the next jobs, and an id from an old log
  line or a script (`jobs cancel ID`) would name another job. Keeping each workspace's newest
  keeps the table's largest id.
The purge keeps its daily schedule while the workspace has ended jobs that aren't kept
(bot.jobs.forgettable.jobs_left_to_forget_in, which says which are): each of them becomes old
enough some day, and a workspace that stopped importing stopped purging (it went on only
while staged rows were left), its Home refreshes, reports and send runs kept for good. It
stops once only kept rows and its own runs are left: counting those, each run would find the
one before it and go on for ever (a month of its own runs stays, at most about 30 rows).

What queues a workspace's purge when none waits: the creation of an import's batch
(bot.imports.batches), and the end of any of its jobs once it has one a purge will forget
(bot.jobs.queue.schedule_purge_after_in, due a day on). Only imports queued it once, so a
workspace that never imported (it only sent invites, enrolled, read Mailchimp), or whose
purge had stopped, kept every job it ran for good. A job's end costs one look-up by the
purge's key while a purge waits, which it almost always does; one purge waits per workspace
whoever queues it (bot.jobs.queue.PURGE_KEY).
A job's dedupe key is free again once its row is gone: what a key keeps from running twice is
asked for again only soon after (a double click, Slack's retry of an event, a run of the job
itself) or checks its own state first (an import is approved once, an undo asked for once),
and posts made once keep their keys in `seen_key`, which this leaves alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.jobs.forgettable import ENDED, UNDO_UNDER_WAY
from bot.jobs.queue import database_now
from models import Database

JOB_RETENTION_DAYS = 30
# rows deleted per transaction: the first purge after an upgrade may find a year of them, and
# on SQLite a delete holds the one write lock every click needs for as long as it takes
FORGET_CHUNK = 5_000

log = logging.getLogger(__name__)

# The state is asked again of the row deleted: a job queued again meanwhile (`_pending_in`'s
# enrollment) is seen by PostgreSQL's recheck of a row updated under the delete, and stays.
_FORGET = text(f"""
    DELETE FROM job WHERE team_id = :t AND state IN {ENDED} AND finished_at < :cutoff
      AND id IN (
        SELECT j.id FROM job j
        WHERE j.team_id = :t AND j.state IN {ENDED} AND j.finished_at < :cutoff
          AND j.id < (SELECT MAX(n.id) FROM job n WHERE n.team_id = :t)
          AND NOT EXISTS ({UNDO_UNDER_WAY})
        ORDER BY j.id LIMIT :n)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))


async def forget_finished_jobs(db: Database, team_id: str,
                               days: float = JOB_RETENTION_DAYS) -> int:  # fmt: skip
    """Delete the workspace's jobs that ended more than `days` ago (but those kept: see the
    module), FORGET_CHUNK rows per transaction; how many were deleted."""
    cutoff = await database_now(db) - timedelta(days=days)
    params = {"t": team_id, "cutoff": cutoff, "n": FORGET_CHUNK}
    forgotten = 0
    while True:
        async with db.begin() as conn:
            deleted = (await conn.execute(_FORGET, params)).rowcount or 0
        forgotten += deleted
        if deleted < FORGET_CHUNK:
            break
    if forgotten:
        log.info("deleted %d jobs that ended more than %g days ago (team=%s)", forgotten, days,
                 team_id)  # fmt: skip
    return forgotten
