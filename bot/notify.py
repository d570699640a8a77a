"""How background work tells people what happened, without bot/ knowing about Slack blocks.

The Slack layer implements this (handlers/notify.py); the command line uses Silent.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.home_refresh import has_recent_viewer_in
from bot.ids import USER_ID
from bot.jobs.queue import enqueue_pending_in
from bot.once import forget, forget_in, seen_in
from models import Database


class ImportNotifier(Protocol):
    async def batch_changed(self, team_id: str, batch_id: int) -> None:
        """Something in the batch changed: refresh the review message."""

    async def source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        """A file finished reading (or failed): refresh, and share its skipped rows."""

    async def rejects_changed(self, team_id: str, batch_id: int, source_id: int) -> None:
        """Rows of a file not read again became valid (another file, or a contact, removed or
        read again): share its skipped rows anew. No refresh: the caller redraws the review
        message once, for all the files that changed."""

    async def import_progress(self, team_id: str, batch_id: int, done: int, total: int) -> None:
        """The approved import moved on (called at most about every 3 seconds)."""

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        """The import is done or failed: report the result and the next step."""

    async def enrollment_changed(self, team_id: str, enrollment_id: int) -> None:
        """An enrollment ran, or its invites went out: refresh its report in the thread."""

    async def undo_finished(self, team_id: str, batch_id: int) -> None:
        """The import was undone: say what was taken out, and refresh the review message."""

    async def undo_stopped(self, team_id: str, batch_id: int) -> None:
        """The undo's job gave up part way: say so, and how to finish it."""

    async def deliver(self, team_id: str, event: str, ids: dict[str, int]) -> None:
        """Send one held-back report now; raise if it still can't go (the job retries)."""


class Silent:
    async def batch_changed(self, team_id: str, batch_id: int) -> None:
        return None

    async def source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        return None

    async def rejects_changed(self, team_id: str, batch_id: int, source_id: int) -> None:
        return None

    async def import_progress(self, team_id: str, batch_id: int, done: int, total: int) -> None:
        return None

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        return None

    async def enrollment_changed(self, team_id: str, enrollment_id: int) -> None:
        return None

    async def undo_finished(self, team_id: str, batch_id: int) -> None:
        return None

    async def undo_stopped(self, team_id: str, batch_id: int) -> None:
        return None

    async def deliver(self, team_id: str, event: str, ids: dict[str, int]) -> None:
        return None


# Reports that could not reach Slack (an outage, a timeout) are retried by a job of this kind,
# run only by workers that can talk to Slack; the import itself is never held up by them.
REPORT_JOB = "slack_report"
BATCH_CHANGED = "batch_changed"
SOURCE_READ = "source_read"
REJECTS_CHANGED = "rejects_changed"
IMPORT_FINISHED = "import_finished"
ENROLLMENT_CHANGED = "enrollment_changed"
UNDO_FINISHED = "undo_finished"
UNDO_STOPPED = "undo_stopped"
REPORT_ATTEMPTS = 11  # at the default 5 s doubling retry delay: 85 minutes of outage (10 gave 43)


def report_key(event: str, ids: dict[str, int]) -> str:
    """The dedupe key of the report job of `event` about `ids` (see enqueue_report_job_in)."""
    return f"report:{event}:" + ",".join(f"{name}={ids[name]}" for name in sorted(ids))


async def enqueue_report_job_in(conn: AsyncConnection, team_id: str, event: str,
                                ids: dict[str, int]) -> int:  # fmt: skip
    """Queue the report of `event` about `ids`, or join the same report still waiting to run.

    A send run reports every couple of seconds: during a Slack outage each report queued a
    job of its own, and once Slack was back they all redrew the same message and republished
    Home, inviting rate limits. A report draws the data as it is when it runs, so the one
    waiting shows the later ones too; one that started may have read it before, so a report
    made meanwhile queues the next (see enqueue_pending_in)."""
    return await enqueue_pending_in(conn, team_id, REPORT_JOB, {"event": event, "ids": ids},
                                    dedupe_key=report_key(event, ids),
                                    max_attempts=REPORT_ATTEMPTS)  # fmt: skip


async def enqueue_enrollment_report_in(conn: AsyncConnection, team_id: str,
                                       enrollment_id: int) -> None:  # fmt: skip
    """Queue a refresh of an enrollment's report inside the caller's transaction, if there
    is somewhere in Slack to show it: the enrollment's thread, or the Home tab someone in the
    workspace opened lately (the report republishes it).

    The job runs only on a worker that can talk to Slack: queued for a workspace used only
    from the shell (`undo`, `segments delete`, `campaign edit` of an enrollment with no
    thread), it waited for such a worker for good, and `jobs` showed it so."""
    if await _reported_in_slack(conn, team_id, enrollment_id):
        await enqueue_report_job_in(conn, team_id, ENROLLMENT_CHANGED,
                                    {"enrollment_id": enrollment_id})  # fmt: skip


async def _reported_in_slack(conn: AsyncConnection, team_id: str, enrollment_id: int) -> bool:
    """Whether the enrollment's report has a Slack thread to go to, or the workspace a Home
    tab to republish (bot.home_refresh.has_recent_viewer_in)."""
    thread = (await conn.execute(
        text("SELECT 1 FROM enrollment WHERE team_id = :t AND id = :e "
             "AND channel_id IS NOT NULL AND thread_ts IS NOT NULL"),
        {"t": team_id, "e": enrollment_id},
    )).first()  # fmt: skip
    return thread is not None or await has_recent_viewer_in(conn, team_id)


async def enqueue_report_in(
    conn: AsyncConnection, team_id: str, batch_id: int, event: str, *, source_id: int | None = None
) -> None:
    """Queue a report about a batch inside the caller's transaction, if the batch has a message
    to report to (CLI imports have none), or, for an undo that stopped, someone in Slack who
    asked for it: the undo of a shell import asked from App Home and cancelled from the shell
    (`jobs cancel`) told nobody, and Home, not republished, kept hiding how to finish it."""
    row = (await conn.execute(
        text("SELECT channel_id IS NOT NULL AND message_ts IS NOT NULL, undone_by "
             "FROM import_batch WHERE team_id = :t AND id = :b"),
        {"t": team_id, "b": batch_id},
    )).first()  # fmt: skip
    if row is None:
        return
    has_message, undone_by = row
    # no message: an undo a person asked in Slack (Home's Undo) is told by DM, stopped or,
    # finished from the shell or by a worker without Slack, done (that was dropped)
    if not has_message and not (event in (UNDO_STOPPED, UNDO_FINISHED)
                                and USER_ID.match(undone_by or "")):  # fmt: skip
        return
    ids = {"batch_id": batch_id} if source_id is None else {"batch_id": batch_id,
                                                            "source_id": source_id}
    await enqueue_report_job_in(conn, team_id, event, ids)


# The skipped-rows CSV of a file reaches the import's thread once per reading of the file.
# rejects_key is taken (bot.once) when the CSV of the current reading is shared; reading the
# file again (*Map columns*) lets it go, so the new reading shares its own, and takes
# earlier_rejects_key instead while the thread shows an earlier reading's CSV: a new reading
# that skips no row then says that CSV no longer applies.
def rejects_key(source_id: int) -> str:
    return f"rejects:{source_id}"


def earlier_rejects_key(source_id: int) -> str:
    return f"rejects-earlier:{source_id}"


async def reading_again_in(conn: AsyncConnection, team_id: str, source_id: int) -> None:
    """The source is put back to be read, in the caller's transaction: its skipped rows are
    shared again once it is read; a CSV shared of the reading before becomes an earlier one."""
    if await forget_in(conn, team_id, rejects_key(source_id)):
        await seen_in(conn, team_id, earlier_rejects_key(source_id))


async def take_earlier_rejects(db: Database, team_id: str, source_id: int) -> bool:
    """Whether the thread's skipped-rows CSV of the source was an earlier reading's, not told
    since that it no longer applies; True once (put it back with bot.once.first_time if the
    telling fails)."""
    return await forget(db, team_id, earlier_rejects_key(source_id))
