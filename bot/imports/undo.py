"""Undoing a finished import: take out what it added, within UNDO_WINDOW_DAYS of it.

`request_undo` is the one decision: a conditional UPDATE (`done` and recent enough ->
`undoing`), the undo job and the audit entry commit together, so of two clicks exactly one
wins and the other is told the real state. The job (`run_undo`) then works in chunks, each one
transaction that makes its changes and adds their rowcounts to the batch's `undo_*` columns:

1. Memberships of the import's segment that this import added (`segment_member.batch_id`),
   a chunk of contacts at a time. For those contacts, in the same transaction:
   - first, those a later import into the same segment listed too (it found them there
     already: `segment_member_listing`, written by the engine) stay when that import still
     stands (neither being undone nor undone, and not failed or cancelled having added
     nothing, which can't be undone: _STANDING): the membership becomes the earliest such
     import's, and with it the contact if this one created it (_HAND_ON below) and the
     advocates this import enrolled through it (`advocate.batch_id`), so undoing that one later
     with its advocates takes them out as if this one had never happened; the other listings stay
     with the membership and hand it on again. Nothing below touches them: they are still in
     the audience of the campaigns that target the segment;
   - with `undo_advocates`, the advocates this import enrolled for them go (`advocate.
     batch_id`: its enrollments made them, or an earlier import's undo handed them on with the
     membership; their codes retired: links answer 410) with their invites that never went
     out; a waiting invite (_WAITING) is cancelled first; not those the campaign
     still reaches through another segment it targets (or All Customers): they keep their link,
     and become the import's whose membership there reaches the contact (the latest such; none
     for All Customers or a membership no import added), so undoing it with its advocates
     takes them out, whichever of the two is undone first;
   - any invite still waiting (held or queued, or unsent while the campaign's invite email
     was off, which *Email them* would send: _WAITING) of a campaign that targets the
     segment is cancelled unless the contact is still in another segment it targets (or it
     targets All Customers): the undo takes them out of the audience, whichever enrollment
     queued it (this import's, or a campaign targeted at the segment later). Other campaigns
     never reached them through this segment: their invites stay. Sent invites are history
     and stay;
   - the membership rows are deleted, and the contacts this import created that are now in
     no segment are deleted with their advocates (codes retired) and invites, except those
     who unsubscribed (`unsubscribed_at`: our link, or a lead): they stay, in no segment, like
     a contact that was there before the import. Deleting them lost the unsubscribe, and the
     same file imported again (into the right segment) had them emailed.
   - listings of those contacts that no longer point at another import's membership go:
     a listing never outlives its membership (SQLite gives a deleted contact's id to the
     next contact inserted, which a stale one would keep in the segment).
   - the reports of the enrollments whose invites or advocates the chunk cancelled or
     deleted are redrawn (queued in the chunk's transaction), in whatever thread they are.
2. A sweep of the contacts this import created (`contact.batch_id`) that were no longer in
   its segment when the undo started (removed by hand) and are in no segment: deleted too
   (the same exception).
3. This import's own listings (contacts that were in the segment already when it ran): they
   go. The memberships were never its own and stay, as they do for a member from before it.
4. The consent it gave: the contacts an --update-existing import re-subscribed (they had said
   no, its file said yes: `resubscribed_contact`, written by the engine) are unsubscribed
   again, whether or not it added them to the segment, unless their consent changed since:
   only those still subscribed (an import's no or an unsubscribe since stands) and never
   unsubscribed through our link or by a lead (`unsubscribed_at`: no import re-subscribes
   those anyway). A later import that re-subscribed them again holds the record instead (the
   engine moves it), and a lead's resubscribe deletes it: their yes stands. The records go
   with the chunk. Consent it withdrew stays withdrawn: a no is never undone.

Members that were in the segment before the import keep their older membership row (the
engine's ON CONFLICT DO NOTHING), so they are never touched; contacts that existed before it
have another `batch_id` and are never deleted. So in either order, undoing an import A and a
later import B that listed a contact A had added takes it out once, with the second. Every
chunk re-reads what is left, so a crash or a second run (a retried job, the CLI beside a
worker) resumes without counting twice; the batch's row is taken at the start of each chunk,
so two runners go one chunk at a time.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import asyncpg.exceptions
import sqlalchemy.exc
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import CLI, Act, by_whom, import_subject, record_in
from bot.campaigns.consent import redraw_reports_in
from bot.campaigns.enroll import undone_reason
from bot.campaigns.reports import INVITE_EMAIL_OFF
from bot.campaigns.service import enroll_when_exclusion_ends_in
from bot.imports.batches import ReviewError, get_batch, status_words
from bot.imports.job_kinds import UNDO_JOB
from bot.imports.undo_window import STILL_OPEN, undo_closed_before
from bot.jobs.here import running_here, shell_owner
from bot.jobs.queue import (
    Done,
    claim_by_key,
    database_now,
    enqueue_in,
    enqueue_running_in,
    find_by_key,
    lease_now,
    runnable_kinds,
    take_running_in,
)
from bot.jobs.worker import (
    GivingUp,
    Handler,
    JobContext,
    JobStopped,
    PermanentJobError,
    database_words,
    surely,
)
from bot.notify import UNDO_FINISHED, UNDO_STOPPED, ImportNotifier, enqueue_report_in
from bot.words import plural
from models import BatchStatus, Database, ImportBatch, JobState
from models.clock import utcnow
from models.locks import lock_contacts

UNDO_CHUNK = 10_000  # contacts per transaction
# (memberships removed or handed on, of those it added)
Progress = Callable[[int, int], Awaitable[None]]


class UndoError(ReviewError):
    """Why this import can't be undone now, for the person who asked (Slack mrkdwn)."""


@dataclass(frozen=True, slots=True)
class UndoPlan:
    """What an undo would do now, counted from rows (the confirmation modal shows it)."""

    batch_id: int
    segment: str
    finished_at: datetime | None
    removes: int  # memberships of the segment this import added, still there, that go
    deletes: int  # contacts it created that would be in no segment afterwards
    keeps: int  # ... but that unsubscribed or were emailed: they stay, and so does that
    invites: int  # invites still waiting (_WAITING) that would be cancelled
    advocates: int  # advocates its enrollments made for the contacts it added
    # ... and the invites cancelled when those advocates go too: theirs go with them, but
    # not where the campaign still reaches the contact through another segment it targets
    invites_with_advocates: int
    # memberships it added that stay, handed on to a later import still standing that listed
    # those contacts too (they were in the segment already when it ran): not in `removes`
    hands_on: int
    # live campaigns that exclude the segment: contacts leaving it that are in one of their
    # targets are enrolled (and invited) once the undo is done
    excluding: tuple[str, ...] = ()
    # contacts it re-subscribed (--update-existing) that would be unsubscribed again
    unsubscribes: int = 0


def _sql(statement: str) -> TextClause:
    """text() with `:now` / `:cutoff` typed as our timestamps."""
    return text(statement).bindparams(*(bindparam(n, type_=UTCDateTime())
                                        for n in ("now", "cutoff") if f":{n}" in statement))


# ---- asking for an undo ---------------------------------------------------------------------

# what a failed or cancelled import changed that an undo takes back (undoable, in SQL)
_CHANGED_SQL = ("{b}new_contacts > 0 OR {b}added_to_segment > 0 "
                "OR ({b}update_existing AND {b}apply_cursor > 0)")

_START = _sql(f"""
    UPDATE import_batch SET status = 'undoing', undone_by = :who, undone_at = :now,
        undo_advocates = :advocates, updated_at = :now
    WHERE team_id = :t AND id = :b AND finished_at >= :cutoff AND {STILL_OPEN}
      AND (status = 'done' OR (status IN ('failed', 'cancelled') AND ({_CHANGED_SQL.format(b="")})))
""")


def undoable(batch: ImportBatch) -> bool:
    """Whether the batch added anything an undo could take out: it finished, or it failed or
    was cancelled part way (what it added stays until it is undone). That is contacts or
    memberships, or, with --update-existing, any chunk applied: it may have given consent
    back to people who had said no (one that stopped having only re-subscribed people was
    refused as having "added nothing", and they stayed subscribed)."""
    return batch.status == BatchStatus.DONE or (
        batch.status in (BatchStatus.FAILED, BatchStatus.CANCELLED)
        and bool(batch.new_contacts or batch.added_to_segment
                 or (batch.update_existing and batch.apply_cursor > 0)))


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "an unknown date"


def _gone_or_undone(batch: ImportBatch | None, batch_id: int) -> str:
    if batch is None:
        return f"Import #{batch_id} doesn't exist in this workspace."
    return (f"Import #{batch_id} was already undone {by_whom(batch.undone_by)} on "
            f"{_when(batch.undone_at)}.")  # fmt: skip


def refusal(batch: ImportBatch | None, batch_id: int, window_days: int,
            closed_before: datetime | None = None) -> str | None:  # fmt: skip
    """Why this batch can't be undone now (None: it can), read as it stands;
    `closed_before`: the workspace's `undo_closed_before` (bot/imports/undo_window.py)."""
    if batch is None or batch.status == BatchStatus.UNDONE:
        return _gone_or_undone(batch, batch_id)
    if batch.status == BatchStatus.UNDOING:
        return (f"Import #{batch_id} is already being undone (asked {by_whom(batch.undone_by)} "
                f"on {_when(batch.undone_at)}).")  # fmt: skip
    if not undoable(batch):
        if batch.status == BatchStatus.DRAFT and batch.requested_by == CLI and (
                batch.message_ts is None):  # `import --background`: there is no review
            return (f"Import #{batch_id} hasn't run yet (a shell import, queued or being "
                    "read: `referral-bot jobs` shows it): only a finished import can be "
                    "undone.")  # fmt: skip
        state = status_words(batch.status, batch.approved_by, batch.cancelled_by)
        if batch.status in (BatchStatus.FAILED, BatchStatus.CANCELLED):
            said = state if batch.status == BatchStatus.FAILED else f"was {state}"  # it's over
            return f"Import #{batch_id} {said} and added nothing: there is nothing to undo."
        return f"Import #{batch_id} is {state}: only a finished import can be undone."
    if not window_days:
        return "Imports can't be undone here (UNDO_WINDOW_DAYS is 0)."
    if batch.finished_at is None or batch.finished_at < utcnow() - timedelta(days=window_days):
        days = "a day" if window_days == 1 else f"{window_days} days"
        return (f"Imports can be undone for {days}; this one finished on "
                f"{_when(batch.finished_at)}.")  # fmt: skip
    if closed_before is not None and batch.finished_at < closed_before:
        return (f"Import #{batch_id} can't be undone any more: it finished on "
                f"{_when(batch.finished_at)}, and what undoing it needs was cleared when it "
                "passed the undo window of the time (UNDO_WINDOW_DAYS was shorter).")  # fmt: skip
    return None


async def request_undo(db: Database, team_id: str, batch_id: int, user_id: str, *,
                       remove_advocates: bool, window_days: int, max_attempts: int = 5,
                       runner: tuple[str, float] | None = None) -> ImportBatch:  # fmt: skip
    """Mark a finished import as being undone and queue its undo job, in one transaction.
    `runner` (owner, lease seconds): the job is queued as that process's own, running
    (bot.jobs.here), so no worker takes it first.

    Raises UndoError with the real state when it can't be (already undone or being undone,
    not finished, too old, another workspace's): a double click queues one job."""
    now = utcnow()
    async with db.begin() as conn:
        started = await conn.execute(_START, {
            "t": team_id, "b": batch_id, "who": user_id[:64], "now": now,
            "advocates": remove_advocates, "cutoff": now - timedelta(days=window_days),
        })  # fmt: skip
        if started.rowcount == 1 and runner is not None:
            await enqueue_running_in(conn, team_id, UNDO_JOB, {"batch_id": batch_id},
                                     dedupe_key=undo_key(batch_id), owner=runner[0],
                                     lease_seconds=runner[1])  # fmt: skip
        elif started.rowcount == 1:
            await enqueue_in(conn, team_id, UNDO_JOB, {"batch_id": batch_id},
                             dedupe_key=undo_key(batch_id), max_attempts=max_attempts)  # fmt: skip
        if started.rowcount == 1:
            segment = (await conn.execute(
                text("SELECT s.name FROM import_batch b JOIN segment s ON s.id = b.segment_id "
                     "WHERE b.id = :b AND b.team_id = :t"), {"b": batch_id, "t": team_id},
            )).scalar_one()  # fmt: skip
            also = ", and the advocates it enrolled" if remove_advocates else ""
            await record_in(conn, team_id, user_id, Act.IMPORT_UNDONE, import_subject(batch_id),
                            f"started: taking out what it added to {segment}{also}")  # fmt: skip
    batch = await get_batch(db, team_id, batch_id)
    if started.rowcount != 1:
        closed = await undo_closed_before(db, team_id)
        raise UndoError(refusal(batch, batch_id, window_days, closed) or
                        f"Import #{batch_id} can't be undone now.")  # fmt: skip
    assert batch is not None
    return batch


# ---- finishing an undo whose job stopped for good --------------------------------------------

# Due now by the shared clock (bot.jobs.queue.lease_now; by SQLite or not): stamped with this
# process's clock, *Finish the undo* clicked on a host whose clock ran ahead left the undo
# waiting that long for a worker, and `referral-bot jobs` said it queued meanwhile.
_RESUME = {sqlite: _sql(f"""
    UPDATE job SET state = 'queued', attempts = 0, run_after = {lease_now(sqlite)},
        updated_at = :now, last_error = NULL, lease_owner = NULL, lease_expires_at = NULL,
        finished_at = NULL
    WHERE team_id = :t AND dedupe_key = :key AND state IN ('failed', 'cancelled')
      AND EXISTS (SELECT 1 FROM import_batch
                  WHERE team_id = :t AND id = :b AND status = 'undoing')
""") for sqlite in (True, False)}


async def stalled_undo(db: Database, team_id: str, batch_id: int) -> str | None:
    """Why the undo of a batch being undone stopped for good (its job failed or was
    cancelled), as Slack's *Finish the undo* says it; None when it didn't (it runs, or the
    batch isn't being undone). Its job's error, a database error in words (`_in_words`)."""
    batch = await get_batch(db, team_id, batch_id)
    if batch is None or batch.status != BatchStatus.UNDOING:
        return None
    job = await find_by_key(db, team_id, undo_key(batch_id))
    if job is None or job.state not in (JobState.FAILED, JobState.CANCELLED):
        return None
    if job.state == JobState.CANCELLED or not job.last_error:
        # cancelled: by someone (`jobs cancel`), whatever an attempt before met; its last
        # error, kept from a retried attempt, said the database failed it
        return f"its job was {job.state}"
    return _in_words(job.last_error, sqlite=db.is_sqlite)


# Where the errors a job records by their driver's class (bot.jobs.worker._job_error: the
# class and the first line of its message) come from, by the database's kind: its driver's,
# then SQLAlchemy's own (a pool timed out, a result closed)
_ERRORS_OF: dict[bool, tuple[ModuleType, ...]] = {
    True: (sqlite3, sqlalchemy.exc), False: (asyncpg.exceptions, sqlalchemy.exc)}
_SQLALCHEMY_ERROR = "sqlalche.me/e/"  # the link every error of SQLAlchemy's own ends with


def _in_words(error: str, *, sqlite: bool) -> str:
    """A job's recorded error as Slack says it: a database error, which the job records by its
    driver's class and first line (`referral-bot jobs` shows it; it may hold a parameter's
    value: an email address, an id), in words (bot.jobs.worker.database_words: unavailable,
    full, a step refused), as the thread said it; any other as recorded. Told by its class's
    name, looked up among the database's errors (a builtin's name, as TimeoutError, only with
    SQLAlchemy's own link in its text: a pool timed out)."""
    name, _, message = error.partition(": ")
    for module in _ERRORS_OF[sqlite]:
        kind = getattr(module, name, None)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            continue
        if hasattr(builtins, name) and _SQLALCHEMY_ERROR not in message:
            return error  # the builtin's, not the database's
        try:
            rebuilt: Exception = kind(message)
        except Exception:  # one that SQLAlchemy wraps a driver's in (never recorded as such)
            rebuilt = sqlalchemy.exc.SQLAlchemyError(message)
        return database_words(rebuilt) or error
    return error


async def resume_undo(db: Database, team_id: str, batch_id: int, actor: str) -> ImportBatch:
    """Queue the stopped undo again, in one transaction with its audit entry; it resumes where
    it stopped (run_undo deletes by chunks and skips what is gone). Of two clicks one queues
    it; UndoError with the real state for the other, and for a batch with no such undo."""
    async with db.begin() as conn:
        resumed = await conn.execute(_RESUME[conn.dialect.name == "sqlite"], {
            "t": team_id, "b": batch_id, "key": undo_key(batch_id), "now": utcnow()})
        if resumed.rowcount == 1:
            await record_in(conn, team_id, actor, Act.IMPORT_UNDONE, import_subject(batch_id),
                            "resumed: finishing what had stopped part way")  # fmt: skip
    batch = await get_batch(db, team_id, batch_id)
    if resumed.rowcount == 1 and batch is not None:
        return batch
    if batch is None or batch.status == BatchStatus.UNDONE:
        raise UndoError(_gone_or_undone(batch, batch_id))
    if batch.status == BatchStatus.UNDOING:
        raise UndoError(f"The undo of import #{batch_id} is running again already.")
    raise UndoError(f"Import #{batch_id} has no stopped undo to finish.")


STOPPED = "stopped"  # its job failed or was cancelled: *Finish the undo* queues it again
WAITING = "waiting"  # its job waits for a worker, and none is alive to run it
LEASE_SECONDS = 30.0  # JOB_LEASE_SECONDS' default, for callers that don't pass the setting


async def unattended_undo(db: Database, team_id: str, batch_id: int, *,
                          lease_seconds: float = LEASE_SECONDS) -> str | None:  # fmt: skip
    """Why nobody is running the undo of this import being undone, or None (it runs, a live
    worker is about to take it, or the import isn't being undone).

    STOPPED: its job failed or was cancelled (`stalled_undo`). WAITING: it is queued, or its
    runner's lease lapsed (`_waiting_undo`), and no live worker runs undo jobs
    (`queue.runnable_kinds`, the rule `referral-bot jobs` and the waiting-for-a-sender line
    follow too: a worker whose lease lapsed is dead, whatever its row says). An
    import from the shell has no thread whose *Undo import* could finish it: App Home offers
    its *Undo* for these, so that a lead can finish it (or be told how) from Slack."""
    if await stalled_undo(db, team_id, batch_id) is not None:
        return STOPPED
    if not await _waiting_undo(db, team_id, batch_id):
        return None
    return None if UNDO_JOB in await runnable_kinds(db, lease_seconds) else WAITING


# ---- what it would do (the confirmation) ----------------------------------------------------

_MEMBERS_OF_BATCH = ("SELECT contact_id FROM segment_member "
                     "WHERE segment_id = :s AND team_id = :t AND batch_id = :b")  # fmt: skip

# Imports that stand: not being undone, nor undone (one that failed or was cancelled part way
# keeps what it did until it is undone), and that can be undone later (_START): one that
# failed or was cancelled having added nothing can't, so a membership handed on to it stayed
# in the segment for good, though the confirmation said undoing it takes them out.
_STANDING = ("lb.status NOT IN ('undoing', 'undone') AND (lb.status NOT IN ('failed', "
             f"'cancelled') OR {_CHANGED_SQL.format(b='lb.')})")  # fmt: skip


def _listed_later(contact: str) -> str:
    """Another import still standing listed this contact of the segment while it was in it
    already (segment_member_listing): undoing this import hands the membership on to it."""
    return ("EXISTS (SELECT 1 FROM segment_member_listing l JOIN import_batch lb "
            "ON lb.id = l.batch_id AND lb.team_id = :t "
            f"WHERE l.segment_id = :s AND l.contact_id = {contact} AND l.team_id = :t "
            f"AND l.batch_id <> :b AND {_STANDING})")  # fmt: skip


# Contacts this import created that have no membership but the one it added ...
_ORPHANED = """
    SELECT c.id FROM contact c WHERE c.team_id = :t AND c.batch_id = :b
      AND NOT EXISTS (SELECT 1 FROM segment_member x WHERE x.contact_id = c.id AND x.team_id = :t
                      AND (x.segment_id <> :s OR x.batch_id IS NULL OR x.batch_id <> :b))
"""

# An invite still waiting to go out, which the undo cancels: held or queued, or left unsent by
# its campaign's invite email being off (reports.INVITE_EMAIL_OFF, bound as :off), which a
# lead's *Email them* queues once it is on again. Those were left as they were, and *Email
# them* then emailed contacts the undo had taken out of the campaign's audience (it checks
# only that the advocate exists). Cancelled, they are invited again (enroll.invited_again),
# as the campaign's invite email then stands, if it reaches the contact again.
_WAITING = ("(invite.state IN ('queued', 'held') OR (invite.state = 'not_emailed' "
            "AND invite.reason = :off))")

# The invite's campaign reached its contact through the membership in :s and no longer does
# once it is gone: the campaign targets :s, and neither All Customers nor another segment the
# contact is in. A campaign that doesn't target :s never reached anyone through it: its invite
# stays (a contact a lead took out of that campaign's target "stays in its campaigns", and an
# import into an untargeted segment cancelled its invite on undo).
_NOT_TARGETED_ELSEWHERE = """
    EXISTS (SELECT 1 FROM campaign_segment cs
            WHERE cs.campaign_id = invite.campaign_id AND cs.team_id = :t
              AND cs.role = 'target' AND cs.segment_id = :s)
    AND NOT EXISTS (SELECT 1 FROM campaign_segment cs JOIN segment g ON g.id = cs.segment_id
                    WHERE cs.campaign_id = invite.campaign_id AND cs.team_id = :t
                      AND cs.role = 'target' AND g.kind = 'all')
    AND NOT EXISTS (SELECT 1 FROM campaign_segment cs
                    JOIN segment_member x ON x.segment_id = cs.segment_id
                    WHERE cs.campaign_id = invite.campaign_id AND cs.team_id = :t
                      AND cs.role = 'target' AND x.team_id = :t
                      AND x.contact_id = invite.contact_id AND x.segment_id <> :s)
"""

# The invite is of an advocate this import enrolled (advocate.batch_id): it goes with it.
_OWN_ADVOCATES_INVITE = ("EXISTS (SELECT 1 FROM advocate a WHERE a.campaign_id = "
                         "invite.campaign_id AND a.contact_id = invite.contact_id "
                         "AND a.team_id = :t AND a.batch_id = :b)")  # fmt: skip


def _kept(contact: str) -> str:
    """The contact (a column or alias) stays although it is in no segment: it unsubscribed,
    or an invite went out to it (sent, or maybe: uncertain, sending)."""
    return (f"({contact}.unsubscribed_at IS NOT NULL OR EXISTS (SELECT 1 FROM invite i "
            f"WHERE i.contact_id = {contact}.id AND i.team_id = :t "
            "AND i.state IN ('sent', 'sending', 'uncertain')))")  # fmt: skip


def _reached_elsewhere(table: str) -> str:
    """... whose campaign still reaches the contact: it targets All Customers, or another
    segment the contact is in. Such an advocate stays: undoing the import that enrolled it
    retired the link of a contact still in a segment the campaign targets (and, its invite
    sent, that link answered 410 while the contact stayed in the audience)."""
    return f"""(EXISTS (SELECT 1 FROM campaign_segment cs JOIN segment g ON g.id = cs.segment_id
                        WHERE cs.campaign_id = {table}.campaign_id AND cs.team_id = :t
                          AND cs.role = 'target' AND g.kind = 'all')
                OR EXISTS (SELECT 1 FROM campaign_segment cs
                           JOIN segment_member x ON x.segment_id = cs.segment_id
                           WHERE cs.campaign_id = {table}.campaign_id AND cs.team_id = :t
                             AND cs.role = 'target' AND x.team_id = :t
                             AND x.contact_id = {table}.contact_id AND x.segment_id <> :s))"""


def _orphaned(listed: bool) -> str:
    """The contacts this import created that would be in no segment after its undo (not
    those a later import listed: handed on, they stay)."""
    return f"{_ORPHANED} AND NOT {_listed_later('c.id')}" if listed else _ORPHANED


def _deletable(listed: bool) -> str:
    """... and neither unsubscribed nor emailed: those stay (deleting one deleted its
    unsubscribe too; a new import of an emailed one emailed it again). The undo deletes
    these."""
    return f"{_orphaned(listed)} AND NOT {_kept('c')}"


def _plan(listed: bool) -> TextClause:
    """The counts of UndoPlan. `listed`: some import listed contacts of the segment that were
    in it already (segment_member_listing), so some memberships may be handed on rather than
    removed; with none, the counts skip the probe per membership that would find nothing
    (it made them a third slower)."""
    stays, handed_on = "", "SELECT 0 WHERE 1 = 0"
    if listed:  # those a later import listed stay: handed on, neither removed nor deleted
        later = _listed_later("segment_member.contact_id")
        stays, handed_on = f" AND NOT {later}", f"{_MEMBERS_OF_BATCH} AND {later}"
    removed = f"{_MEMBERS_OF_BATCH}{stays}"
    deletable = _deletable(listed)
    kept = f"{_orphaned(listed)} AND {_kept('c')}"
    return _sql(f"""
        SELECT
          (SELECT COUNT(*) FROM segment_member
           WHERE segment_id = :s AND team_id = :t AND batch_id = :b{stays}),
          (SELECT COUNT(*) FROM ({deletable}) d),
          (SELECT COUNT(*) FROM ({kept}) k),
          (SELECT COUNT(*) FROM invite WHERE team_id = :t AND {_WAITING}
             AND ((contact_id IN ({removed}) AND {_NOT_TARGETED_ELSEWHERE})
                  OR contact_id IN ({deletable}))),
          (SELECT COUNT(*) FROM advocate WHERE team_id = :t AND batch_id = :b
             AND contact_id IN ({removed})
             AND (NOT {_reached_elsewhere("advocate")} OR contact_id IN ({deletable}))),
          (SELECT COUNT(*) FROM invite WHERE team_id = :t AND {_WAITING}
             AND ((contact_id IN ({removed})
                   AND ({_NOT_TARGETED_ELSEWHERE} OR ({_OWN_ADVOCATES_INVITE}
                                                      AND NOT {_reached_elsewhere("invite")})))
                  OR contact_id IN ({deletable}))),
          (SELECT COUNT(*) FROM ({handed_on}) h)
    """)


_PLANS = {listed: _plan(listed) for listed in (False, True)}


def _unsubscribes(listed: bool) -> TextClause:
    """The contacts it re-subscribed that its undo unsubscribes again (_UNSUBSCRIBE_AGAIN's
    test), but not those it deletes (the confirmation counted one contact as both)."""
    return _sql(f"""
        SELECT COUNT(*) FROM resubscribed_contact r JOIN contact c ON c.id = r.contact_id
        WHERE r.team_id = :t AND r.batch_id = :b AND c.team_id = :t AND c.subscribed = :yes
          AND c.unsubscribed_at IS NULL AND c.id NOT IN ({_deletable(listed)})
    """)


_UNSUBSCRIBES = {listed: _unsubscribes(listed) for listed in (False, True)}
_ANY_LISTED = text("SELECT 1 FROM segment_member_listing "
                   "WHERE segment_id = :s AND team_id = :t LIMIT 1")  # fmt: skip


async def undo_plan(db: Database, team_id: str, batch_id: int, *,
                    window_days: int) -> UndoPlan:  # fmt: skip
    """What undoing this import would do now; UndoError if it can't be undone."""
    batch = await get_batch(db, team_id, batch_id)
    why = refusal(batch, batch_id, window_days, await undo_closed_before(db, team_id))
    if why is not None:
        raise UndoError(why)
    assert batch is not None
    async with db.begin() as conn:
        segment = (await conn.execute(
            text("SELECT name FROM segment WHERE id = :s AND team_id = :t"),
            {"s": batch.segment_id, "t": team_id},
        )).scalar_one()  # fmt: skip
        params = {"t": team_id, "b": batch_id, "s": batch.segment_id, "off": INVITE_EMAIL_OFF}
        listed = (await conn.execute(_ANY_LISTED, params)).first() is not None
        counts = (await conn.execute(_PLANS[listed], params)).one()
        unsubscribes = (await conn.execute(_UNSUBSCRIBES[listed],
                                           {**params, "yes": True})).scalar_one()
        excluding = tuple(str(r[0]) for r in await conn.execute(text(
            "SELECT c.name FROM campaign c JOIN campaign_segment cs ON cs.campaign_id = c.id "
            "WHERE c.team_id = :t AND c.state = 'live' AND cs.team_id = :t "
            "AND cs.segment_id = :s AND cs.role = 'exclude' ORDER BY c.name_key"), params))
    return UndoPlan(batch_id, str(segment), batch.finished_at, *(int(c) for c in counts),
                    excluding=excluding, unsubscribes=int(unsubscribes))  # fmt: skip


# ---- the job's work -------------------------------------------------------------------------

_HOLD = _sql("UPDATE import_batch SET updated_at = :now "
             "WHERE team_id = :t AND id = :b AND status = 'undoing'")  # fmt: skip
# A chunk is a range of contact ids [:lo, :hi]: the next `:n` contacts to look at. Every
# statement names the range, so invites and advocates are found through their unique
# (campaign_id, contact_id) index (the workspace's campaigns times a range of contacts); they
# have no index on contact_id alone, and no list of ids is bound.
_MEMBERS_HI = _sql(f"SELECT MAX(contact_id) FROM ({_MEMBERS_OF_BATCH} AND contact_id >= :lo "
                   "ORDER BY contact_id LIMIT :n) m")  # fmt: skip
_OWN_HI = _sql("SELECT MAX(id) FROM (SELECT id FROM contact WHERE team_id = :t "
               "AND batch_id = :b AND id >= :lo ORDER BY id LIMIT :n) c")  # fmt: skip


def _in_range(table: str) -> str:
    """Rows of `table` (advocate or invite) for the range's contacts, by its unique index."""
    return (f"{table}.team_id = :t AND {table}.campaign_id IN "
            "(SELECT id FROM campaign WHERE team_id = :t) "
            f"AND {table}.contact_id BETWEEN :lo AND :hi")  # fmt: skip


def _added(table: str) -> str:
    """... whose contact's membership of the segment was added by this import (a primary
    key lookup per row: a plan that stays right before the planner has statistics)."""
    return (f"{_in_range(table)} AND EXISTS (SELECT 1 FROM segment_member m "
            f"WHERE m.segment_id = :s AND m.contact_id = {table}.contact_id "
            "AND m.team_id = :t AND m.batch_id = :b)")  # fmt: skip


def _own(table: str) -> str:
    """... that this import enrolled (advocate.batch_id), or the invites of those advocates."""
    own = "advocate.batch_id = :b" if table == "advocate" else _OWN_ADVOCATES_INVITE
    return f"{_added(table)} AND {own}"


def _own_leaving(table: str) -> str:
    """_own, but not what the campaign still reaches through another target (those stay)."""
    return f"{_own(table)} AND NOT {_reached_elsewhere(table)}"


# Contacts this import created that are in no segment (now), never unsubscribed and never
# (perhaps) emailed an invite: an unsubscribed one stays, and so does one whose invite went
# out (sent, or maybe: uncertain, sending), or the next import of the same file would create
# it again and email it a second time (with a new link; the first one's answered 410).
_GOES = ("NOT EXISTS (SELECT 1 FROM segment_member x "
         f"WHERE x.contact_id = contact.id AND x.team_id = :t) AND NOT {_kept('contact')}")


def _of_gone(table: str) -> str:
    """... whose contact this import created, is in no segment (now) and goes."""
    return (f"{_in_range(table)} AND EXISTS (SELECT 1 FROM contact "
            f"WHERE contact.id = {table}.contact_id AND contact.team_id = :t "
            f"AND contact.batch_id = :b AND {_GOES})")  # fmt: skip


def _earliest_lister(contact: str) -> str:
    """The earliest import still standing that listed this contact of the segment: the one
    undoing this import hands the membership on to."""
    return ("SELECT MIN(l.batch_id) FROM segment_member_listing l JOIN import_batch lb "
            "ON lb.id = l.batch_id AND lb.team_id = :t "
            f"WHERE l.segment_id = :s AND l.contact_id = {contact} AND l.team_id = :t "
            f"AND l.batch_id <> :b AND {_STANDING}")  # fmt: skip


# Memberships it added of contacts a later import still standing listed too (they were in the
# segment already when it ran, so its insert conflicted): they stay, and become the earliest
# such import's, so undoing that one later takes them out as if this one had never happened.
# Done first in a chunk: what follows (advocates, invites, the removal, the contacts'
# deletion and _HAND_ON) then sees them as that import's.
_HAND_OVER = _sql(f"""
    UPDATE segment_member SET batch_id = ({_earliest_lister("segment_member.contact_id")})
    WHERE segment_id = :s AND team_id = :t AND batch_id = :b AND contact_id BETWEEN :lo AND :hi
      AND {_listed_later("segment_member.contact_id")}
""")
# ... and the advocates this import enrolled through those memberships go with them, to the
# same import: undoing it with its advocates then removes them as the contact leaves the
# segment (they stayed, tied to this import's enrollment, though nothing held them any more).
# Run just before _HAND_OVER, while the memberships are still this import's.
_HAND_ADVOCATES = _sql(f"""
    UPDATE advocate SET batch_id = ({_earliest_lister("advocate.contact_id")})
    WHERE {_own("advocate")} AND {_listed_later("advocate.contact_id")}
""")
# Listings of the range that no longer point at another import's membership: the one that
# now holds its membership, and those whose membership went (an import being undone too had
# listed it). A listing never outlives its membership: SQLite gives a deleted contact's id
# to the next contact, which it must not keep in the segment.
_DROP_SPENT_LISTINGS = _sql("""
    DELETE FROM segment_member_listing
    WHERE segment_id = :s AND team_id = :t AND contact_id BETWEEN :lo AND :hi
      AND NOT EXISTS (SELECT 1 FROM segment_member m WHERE m.segment_id = :s
                      AND m.contact_id = segment_member_listing.contact_id AND m.team_id = :t
                      AND m.batch_id <> segment_member_listing.batch_id)
""")
_CANCEL_OWN_INVITES = _sql(f"""
    UPDATE invite SET state = 'cancelled', reason = :why, updated_at = :now
    WHERE {_own_leaving("invite")} AND {_WAITING}
    RETURNING enrollment_id
""")
# Invites that never went out leave with their advocate (a later enrollment may invite the
# contact afresh): cancelled, not emailed, or failed (refused, or out of retries: never
# delivered; one left behind pointed at the advocate gone, and the contact enrolled again was
# never invited: its campaign had an invite for it already). Those that did, or may have
# (sent, sending, uncertain), stay, so nobody is emailed twice for one campaign.
_DROP_OWN_UNSENT = _sql(f"DELETE FROM invite WHERE {_own_leaving('invite')} "
                        "AND state IN ('cancelled', 'not_emailed', 'failed') "
                        "RETURNING enrollment_id")  # fmt: skip
_RETIRE_OWN = _sql(f"""
    INSERT INTO retired_code (code, team_id, retired_at)
    SELECT code, team_id, :now FROM advocate WHERE {_own_leaving("advocate")}
    ON CONFLICT (code) DO NOTHING
""")
_DELETE_OWN = _sql(f"DELETE FROM advocate WHERE {_own_leaving('advocate')} "
                   "RETURNING enrollment_id")  # fmt: skip
# Its advocates that stay because another segment the campaign targets still reaches the
# contact through a membership an import added: they become that import's (the latest
# such), so undoing it later with its advocates takes them out. They stayed this import's,
# and undoing the other one (A then B) left them for good, where B then A removed them.
# Those only All Customers or a membership no import added reaches stay as they are.
_OTHER_TARGET_MEMBERSHIPS = """
    FROM campaign_segment cs JOIN segment_member x ON x.segment_id = cs.segment_id
    WHERE cs.campaign_id = advocate.campaign_id AND cs.team_id = :t AND cs.role = 'target'
      AND x.team_id = :t AND x.contact_id = advocate.contact_id AND x.segment_id <> :s
      AND x.batch_id IS NOT NULL AND x.batch_id <> :b
"""
_HAND_ON_KEPT = _sql(f"""
    UPDATE advocate SET batch_id = (SELECT MAX(x.batch_id) {_OTHER_TARGET_MEMBERSHIPS})
    WHERE {_own("advocate")} AND EXISTS (SELECT 1 {_OTHER_TARGET_MEMBERSHIPS})
""")
_CANCEL_UNTARGETED = _sql(f"""
    UPDATE invite SET state = 'cancelled', reason = :why, updated_at = :now
    WHERE {_added("invite")} AND {_WAITING} AND {_NOT_TARGETED_ELSEWHERE}
    RETURNING enrollment_id
""")
_REMOVE_MEMBERS = _sql("DELETE FROM segment_member WHERE segment_id = :s AND team_id = :t "
                       "AND batch_id = :b AND contact_id BETWEEN :lo AND :hi")  # fmt: skip
_DROP_WAITING = _sql(f"DELETE FROM invite WHERE {_of_gone('invite')} AND {_WAITING} "
                     "RETURNING enrollment_id")  # fmt: skip
_DROP_INVITES = _sql(f"DELETE FROM invite WHERE {_of_gone('invite')} RETURNING enrollment_id")
_RETIRE_CODES = _sql(f"""
    INSERT INTO retired_code (code, team_id, retired_at)
    SELECT code, team_id, :now FROM advocate WHERE {_of_gone("advocate")}
    ON CONFLICT (code) DO NOTHING
""")
_DROP_ADVOCATES = _sql(f"DELETE FROM advocate WHERE {_of_gone('advocate')} "
                       "RETURNING enrollment_id")  # fmt: skip
_DELETE_CONTACTS = _sql("DELETE FROM contact WHERE team_id = :t AND batch_id = :b "
                        f"AND id BETWEEN :lo AND :hi AND {_GOES}")  # fmt: skip
# Contacts it created that stay because a later import put them in another segment become
# that import's: undoing it, later, takes them too (they stayed in All Customers for good).
_LATER_IMPORT = ("SELECT MAX(x.batch_id) FROM segment_member x "
                 "WHERE x.contact_id = contact.id AND x.team_id = :t AND x.batch_id IS NOT NULL")
_HAND_ON = _sql(f"""
    UPDATE contact SET batch_id = ({_LATER_IMPORT})
    WHERE team_id = :t AND batch_id = :b AND id BETWEEN :lo AND :hi
      AND EXISTS (SELECT 1 FROM segment_member x WHERE x.contact_id = contact.id
                  AND x.team_id = :t AND x.batch_id IS NOT NULL)
""")
# 3. Its own listings (contacts that were in the segment already when it ran): they go, a
# range at a time; the memberships they point at were never its own and stay.
_LISTED_HI = _sql("SELECT MAX(contact_id) FROM (SELECT contact_id FROM segment_member_listing "
                  "WHERE segment_id = :s AND team_id = :t AND batch_id = :b "
                  "AND contact_id >= :lo ORDER BY contact_id LIMIT :n) l")  # fmt: skip
_DROP_OWN_LISTINGS = _sql("DELETE FROM segment_member_listing WHERE segment_id = :s "
                          "AND team_id = :t AND batch_id = :b "
                          "AND contact_id BETWEEN :lo AND :hi")  # fmt: skip
# 4. The consent it gave, a range of the contacts it re-subscribed at a time: unsubscribed
# again where it still stands (see the module's docstring); the records go with them.
_RESUBSCRIBED_HI = _sql("SELECT MAX(contact_id) FROM (SELECT contact_id "
                        "FROM resubscribed_contact WHERE team_id = :t AND batch_id = :b "
                        "AND contact_id >= :lo ORDER BY contact_id LIMIT :n) r")  # fmt: skip
_RESUBSCRIBED = ("SELECT contact_id FROM resubscribed_contact WHERE team_id = :t "
                 "AND batch_id = :b AND contact_id BETWEEN :lo AND :hi")  # fmt: skip
_UNSUBSCRIBE_AGAIN = _sql(f"""
    UPDATE contact SET subscribed = :no, updated_at = :now
    WHERE team_id = :t AND id IN ({_RESUBSCRIBED}) AND subscribed = :yes
      AND unsubscribed_at IS NULL
""")
_DROP_RESUBSCRIBED = _sql("DELETE FROM resubscribed_contact WHERE team_id = :t "
                          "AND batch_id = :b AND contact_id BETWEEN :lo AND :hi")  # fmt: skip
# Any import's records of the range's contacts that were deleted: SQLite gives a deleted
# contact's id to the next contact, which a record left behind would unsubscribe.
_DROP_RESUBSCRIBED_OF_GONE = _sql("""
    DELETE FROM resubscribed_contact WHERE contact_id BETWEEN :lo AND :hi AND team_id = :t
      AND NOT EXISTS (SELECT 1 FROM contact c
                      WHERE c.id = resubscribed_contact.contact_id AND c.team_id = :t)
""")
_COUNT = _sql("""
    UPDATE import_batch SET undo_removed = undo_removed + :removed,
        undo_handed_on = undo_handed_on + :handed,
        undo_deleted = undo_deleted + :deleted,
        undo_invites_cancelled = undo_invites_cancelled + :cancelled,
        undo_advocates_removed = undo_advocates_removed + :advocates, updated_at = :now
    WHERE team_id = :t AND id = :b
""")
_UNSUBSCRIBED_AGAIN = _sql("UPDATE import_batch SET undo_unsubscribed = undo_unsubscribed "
                          "+ :count, updated_at = :now WHERE team_id = :t AND id = :b")
_FINISH = _sql("UPDATE import_batch SET status = 'undone', updated_at = :now "
               "WHERE team_id = :t AND id = :b AND status = 'undoing'")  # fmt: skip
# The contacts it created that it kept because they unsubscribed or were emailed (in no
# segment once it is done): counted from the rows when it finishes, as nothing else counts
# them.
_KEPT_AFTER = _sql(f"""
    SELECT COUNT(*) FROM contact WHERE team_id = :t AND batch_id = :b AND {_kept("contact")}
      AND NOT EXISTS (SELECT 1 FROM segment_member x
                      WHERE x.contact_id = contact.id AND x.team_id = :t)
""")


@dataclass
class _Tally:
    removed: int = 0
    handed: int = 0
    deleted: int = 0
    cancelled: int = 0
    advocates: int = 0
    # the enrollments whose invites or advocates the chunk cancelled or deleted: their
    # reports are redrawn (_count), whichever thread they are in
    enrollments: set[int | None] = field(default_factory=set)

    async def changing(self, conn: AsyncConnection, statement: TextClause,
                       params: dict[str, Any]) -> int:  # fmt: skip
        """Run a statement that cancels or deletes invites or advocates (RETURNING their
        enrollment_id); returns how many rows it changed."""
        changed = (await conn.execute(statement, params)).scalars().all()
        self.enrollments.update(changed)
        return len(changed)


async def run_undo(db: Database, team_id: str, batch_id: int, *, chunk_size: int = UNDO_CHUNK,
                   progress: Progress | None = None,
                   job: tuple[int | None, str | None] = (None, None)) -> ImportBatch:  # fmt: skip
    """Do (or finish) the undo of a batch that is `undoing`; an undone one is returned as is.

    `job`: the job this run is and its runner (worker or shell); once it is no longer theirs
    (`jobs cancel`, a worker that took it over) the run stops at its next range, the batch
    still `undoing`. Safe to run again after a crash at any point, and beside another run of
    itself."""
    batch = await get_batch(db, team_id, batch_id)
    if batch is None:
        raise UndoError(f"Import #{batch_id} doesn't exist in this workspace.")
    if batch.status == BatchStatus.UNDONE:
        return batch
    if batch.status != BatchStatus.UNDOING:
        raise UndoError(f"Import #{batch_id} is {batch.status}: there is no undo to run.")
    chunk = max(1, min(chunk_size, UNDO_CHUNK))
    params = {"t": team_id, "b": batch_id, "s": batch.segment_id, "n": chunk,
              "why": undone_reason(batch_id), "off": INVITE_EMAIL_OFF, "job": job[0],
              "owner": job[1]}  # fmt: skip
    # memberships dealt with: removed, or handed on to a later import
    removed = batch.undo_removed + batch.undo_handed_on

    async def members(conn: AsyncConnection, range_: dict[str, Any]) -> None:
        nonlocal removed
        removed += await _members_chunk(conn, range_, batch.undo_advocates)

    async def own(conn: AsyncConnection, range_: dict[str, Any]) -> None:
        tally = _Tally()
        await _delete_contacts(conn, range_, tally)
        await _count(conn, params, tally)

    async def listings(conn: AsyncConnection, range_: dict[str, Any]) -> None:
        await conn.execute(_DROP_OWN_LISTINGS, range_)

    async def consent(conn: AsyncConnection, range_: dict[str, Any]) -> None:
        again = await conn.execute(_UNSUBSCRIBE_AGAIN, {**range_, "no": False, "yes": True,
                                                        "now": utcnow()})  # fmt: skip
        await conn.execute(_DROP_RESUBSCRIBED, range_)
        if again.rowcount:  # counted in the range's transaction: a consent changed, said
            await conn.execute(_UNSUBSCRIBED_AGAIN, {**params, "count": again.rowcount,
                                                     "now": utcnow()})  # fmt: skip

    async def told() -> None:
        if progress is not None:
            await progress(removed, max(removed, batch.added_to_segment))

    await _by_ranges(db, params, _MEMBERS_HI, members, told)  # 1. the memberships it added
    await _by_ranges(db, params, _OWN_HI, own, told)  # 2. its contacts already out of it
    await _by_ranges(db, params, _LISTED_HI, listings)  # 3. its own listings
    await _by_ranges(db, params, _RESUBSCRIBED_HI, consent)  # 4. the consent it gave
    async with db.begin() as conn:
        if not await take_running_in(conn, team_id, job[0], job[1]):
            return await _as_it_stands(db, team_id, batch_id)  # cancelled after the last range
        if (await conn.execute(_FINISH, {**params, "now": utcnow()})).rowcount == 1:
            await _record_result(conn, team_id, batch_id)
            # its contacts left the segment: a live campaign excluding it may enroll them now
            await enroll_when_exclusion_ends_in(conn, team_id, batch.segment_id,
                                                batch.undone_by or batch.requested_by)
    return await _as_it_stands(db, team_id, batch_id)


async def _as_it_stands(db: Database, team_id: str, batch_id: int) -> ImportBatch:
    done = await get_batch(db, team_id, batch_id)
    assert done is not None
    return done


async def _by_ranges(db: Database, params: dict[str, Any], highest: TextClause,
                     work: Callable[[AsyncConnection, dict[str, Any]], Awaitable[None]],
                     after: Callable[[], Awaitable[None]] | None = None) -> None:  # fmt: skip
    """`work` on one range of contact ids after another (up to what `highest` reads from each
    `lo`), each in its own transaction that first takes the batch (_hold); stops when nothing
    is left or the undo is no longer running. `after` runs after each committed range."""
    lo = 0
    while True:
        async with db.begin() as conn:
            if not await _hold(conn, params):
                return
            hi = (await conn.execute(highest, {**params, "lo": lo})).scalar()
            if hi is None:
                return
            await work(conn, {**params, "lo": lo, "hi": hi})
        lo = hi + 1  # everything up to `hi` is done with now
        if after is not None:
            await after()


def handed_on_words(count: int) -> str:
    """" (2 kept: a later import listed them too)" after "N removed from SEGMENT", or "": the
    memberships an undo handed on (the thread, the command line and the audit log say it)."""
    return f" ({count:,} kept: a later import listed them too)" if count else ""


def unsubscribed_again_words(count: int) -> str:
    """", 3 unsubscribed again" at the end of an undo's result, or "": the contacts the
    import had re-subscribed that its undo unsubscribed again, a consent changed."""
    return f", {count:,} unsubscribed again" if count else ""


def unsubscribed_words(count: int) -> str:
    """" (3 kept: they unsubscribed or were emailed)" after "N deleted", or "": the contacts
    the import created that stay because they unsubscribed or an invite went out to them (the
    command line and the audit log say it)."""
    return f" ({count:,} kept: they unsubscribed or were emailed)" if count else ""


async def _record_result(conn: AsyncConnection, team_id: str, batch_id: int) -> None:
    """The audit entry of the finished undo, with its counts (read in its transaction)."""
    row = (await conn.execute(text("""
        SELECT b.undone_by, s.name, b.undo_removed, b.undo_deleted, b.undo_invites_cancelled,
               b.undo_advocates_removed, b.undo_handed_on, b.undo_unsubscribed
        FROM import_batch b JOIN segment s ON s.id = b.segment_id
        WHERE b.team_id = :t AND b.id = :b
    """), {"t": team_id, "b": batch_id})).one()  # fmt: skip
    actor, segment, removed, deleted, cancelled, advocates, handed, unsubscribed = row
    kept = unsubscribed_words(await kept_unsubscribed_in(conn, team_id, batch_id))
    listed = handed_on_words(handed)
    await record_in(conn, team_id, actor or "cli", Act.IMPORT_UNDONE, import_subject(batch_id),
                    f"done: {removed:,} removed from {segment}{listed}, "
                    f"{plural(deleted, 'contact')} deleted{kept}, "
                    f"{plural(cancelled, 'invite')} cancelled, "
                    f"{plural(advocates, 'advocate')} removed"
                    f"{unsubscribed_again_words(unsubscribed)}")  # fmt: skip


async def other_advocates(db: Database, team_id: str, batch_id: int) -> bool:
    """Whether the workspace has advocates that another enrollment than the import's made:
    what `undo --advocates` leaves of the contacts the import keeps (none, or no campaign: a
    note about those that stay would be said of nothing)."""
    async with db.engine.connect() as conn:
        found = await conn.execute(_OTHER_ADVOCATES, {"t": team_id, "b": batch_id})
        return found.first() is not None


_OTHER_ADVOCATES = text("SELECT 1 FROM advocate WHERE team_id = :t "
                        "AND (batch_id IS NULL OR batch_id <> :b) LIMIT 1")


async def kept_unsubscribed(db: Database, team_id: str, batch_id: int) -> int:
    """kept_unsubscribed_in, in a transaction of its own: for the undo's result in Slack."""
    async with db.begin() as conn:
        return await kept_unsubscribed_in(conn, team_id, batch_id)


async def kept_unsubscribed_in(conn: AsyncConnection, team_id: str, batch_id: int) -> int:
    """How many contacts this undone import created stay, in no segment, because they
    unsubscribed or were emailed: the undo keeps them so that no later import emails them
    (again)."""
    return int((await conn.execute(_KEPT_AFTER, {"t": team_id, "b": batch_id})).scalar_one())


async def _hold(conn: AsyncConnection, params: dict[str, Any]) -> bool:
    """Take the batch's row for this chunk while it is being undone (else stop quietly),
    after the workspace's contacts lock: the chunk deletes contacts that no import or
    enrollment under way may attach rows to meanwhile (models/locks.py). And the run's job
    while it is still the run's: `jobs cancel` of a shell's undo said "cancelled" and the
    undo went on to the end (a worker's stopped at its next progress report, which the last
    steps don't make)."""
    await lock_contacts(conn, params["t"], exclusive=True)
    if not await take_running_in(conn, params["t"], params["job"], params["owner"]):
        return False
    return (await conn.execute(_HOLD, {**params, "now": utcnow()})).rowcount == 1


async def _members_chunk(conn: AsyncConnection, params: dict[str, Any], advocates: bool) -> int:
    """One chunk of the contacts this import added to its segment; returns memberships removed
    or handed on."""
    p = {**params, "now": utcnow()}
    tally = _Tally()
    if (await conn.execute(_ANY_LISTED, p)).first() is not None:  # else nothing to hand on
        await conn.execute(_HAND_ADVOCATES, p)
        tally.handed += (await conn.execute(_HAND_OVER, p)).rowcount
    if advocates:
        tally.cancelled += await tally.changing(conn, _CANCEL_OWN_INVITES, p)
        await tally.changing(conn, _DROP_OWN_UNSENT, p)
        await conn.execute(_RETIRE_OWN, p)
        tally.advocates += await tally.changing(conn, _DELETE_OWN, p)
        await conn.execute(_HAND_ON_KEPT, p)  # those that stay: after the others went
    tally.cancelled += await tally.changing(conn, _CANCEL_UNTARGETED, p)
    tally.removed += (await conn.execute(_REMOVE_MEMBERS, p)).rowcount
    await conn.execute(_DROP_SPENT_LISTINGS, p)
    await _delete_contacts(conn, params, tally)
    await _count(conn, params, tally)
    return tally.removed + tally.handed


async def _delete_contacts(conn: AsyncConnection, params: dict[str, Any], tally: _Tally) -> None:
    """Delete the range's contacts created by this import that are in no segment, with their
    advocates and invites; their referral codes are retired (links answer 410, never reused).
    Those a later import holds in a segment are handed on to it (_HAND_ON)."""
    p = {**params, "now": utcnow()}
    tally.cancelled += await tally.changing(conn, _DROP_WAITING, p)
    await tally.changing(conn, _DROP_INVITES, p)
    await conn.execute(_RETIRE_CODES, p)
    tally.advocates += await tally.changing(conn, _DROP_ADVOCATES, p)
    deleted = (await conn.execute(_DELETE_CONTACTS, p)).rowcount
    if deleted:
        await conn.execute(_DROP_RESUBSCRIBED_OF_GONE, p)
    tally.deleted += deleted
    await conn.execute(_HAND_ON, p)


async def _count(conn: AsyncConnection, params: dict[str, Any], tally: _Tally) -> None:
    """Add the chunk's counts to the batch's, and queue a redraw of the reports of the
    enrollments it changed, in the chunk's transaction: another thread's report (a campaign
    targeted at the segment from there, a later import's) went on counting the invites this
    undo cancelled or deleted as held, with their *Cancel invites*."""
    await redraw_reports_in(conn, params["t"], tally.enrollments)
    await conn.execute(_COUNT, {"t": params["t"], "b": params["b"], "now": utcnow(),
                                "removed": tally.removed, "handed": tally.handed,
                                "deleted": tally.deleted,
                                "cancelled": tally.cancelled,
                                "advocates": tally.advocates})  # fmt: skip


def undo_handler(chunk_size: int, notifier: ImportNotifier | None = None) -> Handler:
    """The undo job: run (or resume) the undo, then report it in the import's thread; a
    worker that can't talk to Slack leaves the report to one that can (a report job)."""

    async def tell(db: Database, team_id: str, batch_id: int, event: str) -> None:
        if notifier is None:  # a worker without Slack: a report job takes it there
            async with db.begin() as conn:
                await enqueue_report_in(conn, team_id, batch_id, event)
        elif event == UNDO_FINISHED:
            await notifier.undo_finished(team_id, batch_id)
        else:
            await notifier.undo_stopped(team_id, batch_id)

    async def told(ctx: JobContext, batch_id: int, event: str) -> None:
        """`tell`, through a database outage (`surely`): failing with
        the database, the report of the undo's end was lost, its job failed or done all the
        same (the thread never said that the undo stopped and how to finish it, or what it
        took out)."""
        await surely(ctx, f"undo of import {batch_id}: reporting it ({event})",
                     lambda: tell(ctx.db, ctx.team_id, batch_id, event))  # fmt: skip

    async def run(ctx: JobContext) -> None:
        batch_id = int(ctx.payload["batch_id"])

        async def progress(done: int, total: int) -> None:
            await ctx.progress(done, total)  # stops here on shutdown or cancellation

        try:
            batch = await run_undo(ctx.db, ctx.team_id, batch_id, chunk_size=chunk_size,
                                   progress=progress, job=(ctx.job.id, ctx.owner))  # fmt: skip
        except UndoError as exc:
            raise PermanentJobError(str(exc)) from None
        except JobStopped:
            raise
        except Exception:
            if ctx.last_attempt:  # the import stays half undone: whoever asked must know
                await told(ctx, batch_id, UNDO_STOPPED)
            raise
        if batch.status == BatchStatus.UNDONE:
            await told(ctx, batch_id, UNDO_FINISHED)

    async def give_up(ctx: JobContext, error: str) -> None:  # every attempt killed its worker
        # the last may have finished it and died before telling the thread: told it was
        # stopped, the notifier dropped that of an undone import, and nothing was said
        batch_id = int(ctx.payload["batch_id"])
        batch = await surely(ctx, f"undo of import {batch_id}: reading how it stands",
                             lambda: _as_it_stands(ctx.db, ctx.team_id, batch_id))  # fmt: skip
        await told(ctx, batch_id,
                   UNDO_FINISHED if batch.status == BatchStatus.UNDONE else UNDO_STOPPED)

    return GivingUp(run, give_up, done_when=undo_done)


# An undo's batch is `undone` in the transaction of its last step (run_undo's _FINISH)
_UNDONE = ("EXISTS (SELECT 1 FROM import_batch WHERE import_batch.team_id = job.team_id "
           f"AND import_batch.id = :done_batch AND import_batch.status = '{BatchStatus.UNDONE}')")


def undo_done(ctx: JobContext) -> Done:
    """The undo job's work is complete (GivingUp.done_when): its import is undone. Its
    give-up step then tells the thread the undo finished."""
    return Done(_UNDONE, {"done_batch": int(ctx.payload["batch_id"])})


# ---- at once, from the shell ----------------------------------------------------------------

async def undo_now(db: Database, team_id: str, batch_id: int, actor: str, *,
                   remove_advocates: bool, window_days: int, chunk_size: int = UNDO_CHUNK,
                   max_attempts: int = 5, lease_seconds: float = 30.0) -> ImportBatch:  # fmt: skip
    """Request the undo and do its work in this process (the CLI), as its job's runner (see
    bot.jobs.here: interrupted, a worker or the next `undo` finishes it). An undo whose job
    failed or was cancelled part way is finished here too, resumed like Slack's *Finish the
    undo* (`resume_undo`), so the audit log says who finished it; so is one left waiting for
    a worker (a run interrupted by Ctrl-C) that none has taken."""
    owner = shell_owner()
    try:
        await request_undo(db, team_id, batch_id, actor, remove_advocates=remove_advocates,
                           window_days=window_days, max_attempts=max_attempts,
                           runner=(owner, lease_seconds))  # fmt: skip
        job = await find_by_key(db, team_id, undo_key(batch_id))
    except UndoError:
        await _same_advocates(db, team_id, batch_id, remove_advocates)
        if await stalled_undo(db, team_id, batch_id) is not None:
            await resume_undo(db, team_id, batch_id, actor)
        elif not await _waiting_undo(db, team_id, batch_id):
            raise
        job = await claim_by_key(db, team_id, undo_key(batch_id), owner, lease_seconds)
    if job is None or job.id is None:
        raise UndoError(f"A worker is undoing import #{batch_id} now: `referral-bot jobs` "
                        "follows it.")  # fmt: skip
    async with running_here(db, team_id, job.id, owner, lease_seconds):
        batch = await run_undo(db, team_id, batch_id, chunk_size=chunk_size,
                               job=(job.id, owner))  # fmt: skip
        if batch.status != BatchStatus.UNDONE:  # its job cancelled meanwhile (`jobs cancel`)
            raise UndoError(f"The undo of import #{batch_id} was cancelled part way: "
                            f"`referral-bot undo {batch_id}` finishes it.")  # fmt: skip
        # before the job ends: failing (or killed) here, the job goes back to the workers,
        # whose run reports it (the report is made once, whoever queues it)
        async with db.begin() as conn:
            await enqueue_report_in(conn, team_id, batch_id, UNDO_FINISHED)  # the Slack thread
    return batch


async def _same_advocates(db: Database, team_id: str, batch_id: int, remove: bool) -> None:
    """An undo asked without its advocates (in Slack, or by another shell) can't be finished
    with them: the chunks already undone kept theirs. `undo N --advocates` finished it and said
    "undone" with those advocates and their links still there; it is refused, saying so."""
    batch = await get_batch(db, team_id, batch_id)
    if (remove and batch is not None and batch.status == BatchStatus.UNDOING
            and not batch.undo_advocates):
        raise UndoError(f"Import #{batch_id} is being undone without removing its advocates, "
                        "as it was asked; part of it is done already, so --advocates can't "
                        f"apply now. Finish it with `referral-bot undo {batch_id}`.")  # fmt: skip


async def _waiting_undo(db: Database, team_id: str, batch_id: int) -> bool:
    """Being undone, by a job nobody runs: queued, or its runner's lease lapsed."""
    batch = await get_batch(db, team_id, batch_id)
    job = await find_by_key(db, team_id, undo_key(batch_id))
    if batch is None or batch.status != BatchStatus.UNDOING or job is None:
        return False
    # by the clock the lease was stamped with (PostgreSQL's): this host's may run ahead
    lapsed = job.lease_expires_at is not None and job.lease_expires_at < await database_now(db)
    return job.state == JobState.QUEUED or (job.state == JobState.RUNNING and lapsed)


def undo_key(batch_id: int) -> str:
    """The undo job's dedupe key: one undo job per import."""
    return f"undo:{batch_id}"
