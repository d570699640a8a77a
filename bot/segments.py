"""Changing segments: rename, delete, and writing one out as CSV. Knows nothing of Slack.

Each change is one transaction that starts with a conditional UPDATE of the segment row
(`... WHERE kind = 'static'`): of two people renaming or deleting at once, exactly one wins
and the other is told the segment's real state. The audit entry commits with the change.

Deleting is soft: import batches keep pointing at the segment (a foreign key), so the row
stays as `kind = 'deleted'` with its name (for the history of those imports) and gives its
name key up (`deleted:<id>`) so the name can be used again. Its memberships (with the later
imports' listings of them: bot/imports/undo.py) and campaign links go in the same
transaction; its contacts stay in All Customers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

from sqlalchemy import BindParameter, bindparam, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import CLI, Act, import_subject, record, record_in
from bot.campaigns.service import enroll_when_exclusion_ends_in, enrolled_when
from bot.contacts import EXPORT_COLUMNS, segment_contacts
from bot.imports.batches import freeze_counts, neutralise
from bot.imports.job_kinds import import_job_key_sql
from bot.notify import BATCH_CHANGED, enqueue_report_in
from bot.words import plural, quoted
from bot.workspaces import (
    GONE,
    WorkspaceError,
    deleted_key,
    find_segment,
    free_name,
    get_segment,
    name_taken,
    segment_key,
    shown_name,
)
from models import (
    BatchStatus,
    Database,
    ImportBatch,
    Segment,
    SegmentKind,
    SegmentRole,
)
from models.clock import utcnow
from models.contacts import ALL_CUSTOMERS

log = logging.getLogger(__name__)

# An import in one of these states will still write into its segment (or is being reviewed)
BUSY = {BatchStatus.DRAFT: "is waiting for review", BatchStatus.QUEUED: "is queued",
        BatchStatus.IMPORTING: "is running", BatchStatus.UNDOING: "is being undone"}  # fmt: skip
ROLE_WORDS = {SegmentRole.TARGET: "targeted", SegmentRole.EXCLUDE: "excluded"}

# The state of an import's job while it is queued or running (`import --background`'s draft
# has one from the start), else NULL
_IMPORT_JOB_STATE = f"""
    SELECT j.state FROM job j WHERE j.team_id = import_batch.team_id
    AND j.dedupe_key = {import_job_key_sql("import_batch.id")} AND j.state IN ('queued', 'running')
"""

# A draft the shell is staging (`referral-bot import`, `--dry-run`): no review message, and no
# job until it is approved, so nobody but its own process can finish or cancel it. One whose
# process was killed (a dropped SSH session) stayed a draft for good, and its segment could
# never be deleted; a dry run under way kept it for a while. So such a draft doesn't keep its
# segment: deleting the segment withdraws it, and a live import then stops saying why. Slack's
# drafts (a user's id, a review message) and `import --background` (its job) still do.
# A Slack draft whose review was never posted is one too, once it is older than a review
# takes to post (ORPHANED_AFTER): the process making it died between the two (a restart), and
# the segment said "waiting for review" of a review nobody could see, approve or cancel.
_SHELL_DRAFT = f"""
    status = 'draft' AND message_ts IS NULL AND NOT EXISTS ({_IMPORT_JOB_STATE})
    AND (requested_by = '{CLI}' OR created_at < :orphaned)
"""
ORPHANED_AFTER = timedelta(minutes=10)


def _orphaned() -> BindParameter[Any]:
    return bindparam("orphaned", value=utcnow() - ORPHANED_AFTER, type_=UTCDateTime())


@dataclass(frozen=True, slots=True)
class CampaignUse:
    """A campaign that targets or excludes a segment (what deleting it changes)."""

    name: str
    role: str  # SegmentRole
    state: str  # CampaignState: only a live campaign enrolls the contacts it stops excluding
    campaign_id: int

    def consequence(self) -> str:
        """What deleting the segment means for this campaign, in one plain sentence."""
        if self.role == SegmentRole.TARGET:
            return (f"{self.name} targets it: its advocates stay advocates, but contacts added "
                    "later won't be enrolled through this segment.")  # fmt: skip
        # a live one enrolls them at once (enroll_when_exclusion_ends_in), a draft or paused
        # one with all its targets when it goes live
        return (f"{self.name} excludes it: its contacts are no longer kept out of that "
                f"campaign, so those of them in a segment it targets "
                f"{enrolled_when(self.state)}.")


def uses_key(campaigns: Sequence[CampaignUse]) -> str:
    """A short fingerprint of what a confirmation said deleting the segment means (which
    campaigns, and each one's consequence): what `delete_segment` checks it against."""
    said = sorted((c.campaign_id, c.consequence()) for c in campaigns)
    return hashlib.sha256(json.dumps(said).encode()).hexdigest()[:16]


NO_CAMPAIGNS = uses_key([])  # what Slack's own confirm dialog (no campaign used it) said


class SegmentInUse(WorkspaceError):
    """Campaigns use the segment otherwise than the person deleting it was shown: nothing was
    deleted. `campaigns` are those using it now, to show them first."""

    def __init__(self, name: str, campaigns: list[CampaignUse]) -> None:
        names = ", ".join(c.name for c in campaigns) or "none"
        super().__init__(f"Nothing was deleted: the campaigns using {quoted(name)} changed "
                         f"meanwhile (now: {names}). Click Delete again to see what deleting "
                         "it means.")
        self.campaigns = campaigns


@dataclass(frozen=True, slots=True)
class Renamed:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Deleted:
    name: str
    members: int  # memberships removed (the contacts stay in All Customers)
    campaigns: list[CampaignUse]


def built_in(verb: str) -> WorkspaceError:
    """All Customers refused as `verb` ("deleted", "renamed")."""
    return WorkspaceError(f"{ALL_CUSTOMERS} is built in and holds every contact: it can't be "
                          f"{verb}.")  # fmt: skip


async def _why_unchanged(conn: AsyncConnection, team_id: str, segment_id: int,
                         verb: str) -> WorkspaceError:  # fmt: skip
    """The real state of a segment a conditional UPDATE didn't change."""
    row = (await conn.execute(
        text("SELECT name, kind FROM segment WHERE id = :s AND team_id = :t"),
        {"s": segment_id, "t": team_id})).first()  # fmt: skip
    if row is None:
        return WorkspaceError(GONE)
    if row.kind == SegmentKind.ALL:
        return built_in(verb)
    if row.kind == SegmentKind.STATIC:  # the conditional UPDATE also named the old name
        return WorkspaceError(f"It was renamed to {quoted(row.name)} meanwhile: nothing changed.")
    return WorkspaceError(f"{quoted(row.name)} was already deleted.")


async def campaigns_using(db: Database, team_id: str, segment_id: int) -> list[CampaignUse]:
    """Campaigns of this workspace that target or exclude the segment, by name."""
    async with db.begin() as conn:
        return await _campaigns_in(conn, team_id, segment_id)


async def member_count(db: Database, team_id: str, segment_id: int) -> int:
    """How many contacts a static segment holds, counted from its rows."""
    async with db.begin() as conn:
        return int((await conn.execute(
            text("SELECT COUNT(*) FROM segment_member WHERE team_id = :t AND segment_id = :s"),
            {"t": team_id, "s": segment_id})).scalar_one())  # fmt: skip


async def campaign_counts(db: Database, team_id: str) -> dict[int, int]:
    """segment id -> how many campaigns target or exclude it (for the segment list)."""
    async with db.begin() as conn:
        rows = (await conn.execute(text(
            "SELECT segment_id, COUNT(*) FROM campaign_segment WHERE team_id = :t "
            "GROUP BY segment_id"), {"t": team_id})).all()  # fmt: skip
    return {segment_id: count for segment_id, count in rows}


async def _campaigns_in(conn: AsyncConnection, team_id: str,
                        segment_id: int) -> list[CampaignUse]:  # fmt: skip
    rows = (await conn.execute(text(
        "SELECT c.name, cs.role, c.state, c.id FROM campaign_segment cs JOIN campaign c "
        "ON c.id = cs.campaign_id AND c.team_id = cs.team_id "
        "WHERE cs.team_id = :t AND cs.segment_id = :s ORDER BY c.name_key, cs.role"),
        {"t": team_id, "s": segment_id})).all()  # fmt: skip
    return [CampaignUse(name, role, state, int(campaign_id))
            for name, role, state, campaign_id in rows]


async def renamable(db: Database, team_id: str, segment_id: int) -> Segment:
    """The workspace's static segment with this id; WorkspaceError if it is gone or built in."""
    segment = await get_segment(db, team_id, segment_id)
    if segment.kind == SegmentKind.ALL:
        raise built_in("renamed")
    return segment


def require_new_name(segment: Segment, name: str) -> None:
    """WorkspaceError when `name` (as `free_name` stores it) is the segment's name already:
    the rename recorded "renamed a segment to VIP (was VIP)" and said "*VIP* is now *VIP*".
    Another case of it is a new name; one that differs only by what shows nothing ("VIP" +
    U+200E) is not."""
    if shown_name(name) == shown_name(segment.name):
        raise WorkspaceError(f"The segment is already named {quoted(segment.name)}: nothing to "
                             "change.")  # fmt: skip


async def rename_segment(db: Database, team_id: str, segment_id: int, new_name: str, *,
                         actor: str = CLI) -> Renamed:  # fmt: skip
    """Rename a static segment; the same rules as creating one (unique ignoring case and
    spacing, not All Customers). Changing only the case of its own name is allowed; its
    own name as it is (`require_new_name`) is refused, and nothing is written.

    Its open reviews are drawn again (a job each, queued with the rename, so a rename from
    the shell redraws them too): they said "Contact import #1 into VIP" after VIP was renamed
    Gold, while their Approve imported into Gold."""
    segment = await renamable(db, team_id, segment_id)
    name = await free_name(db, team_id, new_name, renaming=segment_id)
    require_new_name(segment, name)
    try:
        async with db.begin() as conn:
            # from the name it was read with: two renames at once can't both say "was A"
            changed = await conn.execute(
                text("UPDATE segment SET name = :n, name_key = :k WHERE id = :s AND team_id = :t "
                     "AND kind = :static AND name = :old"),
                {"n": name, "k": segment_key(name), "s": segment_id, "t": team_id,
                 "static": SegmentKind.STATIC, "old": segment.name})  # fmt: skip
            if changed.rowcount != 1:
                raise await _why_unchanged(conn, team_id, segment_id, "renamed")
            await record_in(conn, team_id, actor, Act.SEGMENT_RENAMED, name,
                            f"was {segment.name}")  # fmt: skip
            await _redraw_reviews_in(conn, team_id, segment_id)
    except IntegrityError:  # the name was taken a moment ago
        raced = await find_segment(db, team_id, name)
        if raced is None:
            raise
        raise name_taken(raced) from None
    return Renamed(segment.name, name)


async def _redraw_reviews_in(conn: AsyncConnection, team_id: str, segment_id: int) -> None:
    """Queue a redraw of every open review (a draft with a message) of an import into the
    segment, in the caller's transaction."""
    reviews = (await conn.execute(
        text("SELECT id FROM import_batch WHERE team_id = :t AND segment_id = :s "
             "AND status = :draft AND message_ts IS NOT NULL ORDER BY id"),
        {"t": team_id, "s": segment_id, "draft": BatchStatus.DRAFT})).scalars().all()  # fmt: skip
    for batch_id in reviews:
        await enqueue_report_in(conn, team_id, int(batch_id), BATCH_CHANGED)


async def busy_import(db: Database, team_id: str, segment_id: int) -> str | None:
    """Why the segment can't go now ("Import #12 into it is waiting for review"), if so."""
    async with db.begin() as conn:
        return await _busy_in(conn, team_id, segment_id)


async def _busy_in(conn: AsyncConnection, team_id: str, segment_id: int) -> str | None:
    statuses = ", ".join(f"'{s.value}'" for s in BUSY)
    row = (await conn.execute(text(  # type: ignore[attr-defined]
        f"SELECT id, status, ({_IMPORT_JOB_STATE}) AS job FROM import_batch WHERE team_id = :t "
        f"AND segment_id = :s AND status IN ({statuses}) AND NOT ({_SHELL_DRAFT}) "
        "ORDER BY id LIMIT 1").bindparams(_orphaned()), {"t": team_id, "s": segment_id}
    )).first()  # fmt: skip
    if row is None:
        return None
    words = BUSY[BatchStatus(row.status)]
    if row.status == BatchStatus.DRAFT and row.job is not None:
        # `import --background`: a draft only until its job has read the files; nobody
        # reviews it, so "waiting for review" sent people looking for a review message
        words = BUSY[BatchStatus.QUEUED if row.job == "queued" else BatchStatus.IMPORTING]
    return f"Import #{row.id} into it {words}: finish or cancel it first."


async def _withdraw_shell_drafts_in(conn: AsyncConnection, team_id: str, segment_id: int,
                                    actor: str) -> None:  # fmt: skip
    """Cancel the segment's shell drafts (_SHELL_DRAFT); their staged rows are purged as any
    cancelled import's. On PostgreSQL a draft whose file is being staged right now holds its
    row: it is skipped rather than waited for (that can take minutes), and its import finds
    the segment deleted when it comes to approve. An import that was asked for (not a dry
    run) is recorded as cancelled."""
    skip = " FOR UPDATE SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
    params = {"t": team_id, "s": segment_id}
    drafts = (await conn.execute(text(
        f"SELECT id FROM import_batch WHERE team_id = :t AND segment_id = :s AND {_SHELL_DRAFT}"
        + skip).bindparams(_orphaned()), params)).scalars().all()  # fmt: skip
    for batch_id in drafts:
        await freeze_counts(conn, team_id, batch_id)
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id)
            .values(status=BatchStatus.CANCELLED, cancelled_by=actor, finished_at=utcnow(),
                    updated_at=utcnow())
        )  # fmt: skip
        if await _was_requested(conn, team_id, batch_id):
            await record_in(conn, team_id, actor, Act.IMPORT_CANCELLED,
                            import_subject(batch_id), "withdrawn: its segment was deleted")


async def _was_requested(conn: AsyncConnection, team_id: str, batch_id: int) -> bool:
    """Whether the audit log has the batch's request (a dry run's has none)."""
    return (await conn.execute(
        text("SELECT 1 FROM audit_entry WHERE team_id = :t AND subject = :s AND action = :a"),
        {"t": team_id, "s": import_subject(batch_id), "a": Act.IMPORT_REQUESTED})
    ).first() is not None  # fmt: skip


async def delete_segment(db: Database, team_id: str, segment_id: int, *, actor: str = CLI,
                         expect_campaigns: str | None = None,
                         only_if_empty: bool = False) -> Deleted:  # fmt: skip
    """Soft-delete a static segment in one transaction (see the module's docstring).

    Refused for All Customers, and while an import into the segment is still in review,
    queued, running or being undone (it would write into a segment nobody can see).

    `expect_campaigns`: the `uses_key` of the campaigns the person was shown (NO_CAMPAIGNS
    for none); if the campaigns using the segment differ now, SegmentInUse is raised and
    nothing changes. Read after the UPDATE, in its transaction: a check made before it, in
    another, let a campaign that started excluding the segment in between enroll its contacts
    unseen. Once the UPDATE is made no campaign can link the segment (they wait for this
    transaction: bot.campaigns.service._segment_stays). None: not checked (the shell).

    `only_if_empty`: refused (WorkspaceError) if a contact is in it, asked in the same
    transaction, after the UPDATE (withdraw_segment: a count asked before, in a transaction
    of its own, let a contact added in between be taken out with the segment).
    """
    async with db.begin() as conn:
        params = {"s": segment_id, "t": team_id}
        changed = await conn.execute(
            text("UPDATE segment SET kind = :deleted, name_key = :k WHERE id = :s AND team_id = :t "
                 "AND kind = :static"),
            {**params, "deleted": SegmentKind.DELETED, "k": deleted_key(segment_id),
             "static": SegmentKind.STATIC})  # fmt: skip
        if changed.rowcount != 1:
            raise await _why_unchanged(conn, team_id, segment_id, "deleted")
        if busy := await _busy_in(conn, team_id, segment_id):
            raise WorkspaceError(busy)  # rolls the UPDATE back
        if only_if_empty and (await conn.execute(
                text("SELECT 1 FROM segment_member WHERE team_id = :t AND segment_id = :s "
                     "LIMIT 1"), params)).first() is not None:  # fmt: skip
            raise WorkspaceError("It holds contacts now.")  # rolls the UPDATE back
        name = (await conn.execute(text("SELECT name FROM segment WHERE id = :s AND team_id = :t"),
                                   params)).scalar_one()  # fmt: skip
        campaigns = await _campaigns_in(conn, team_id, segment_id)
        if expect_campaigns is not None and uses_key(campaigns) != expect_campaigns:
            raise SegmentInUse(name, campaigns)  # rolls the UPDATE back
        await _withdraw_shell_drafts_in(conn, team_id, segment_id, actor)
        members = (await conn.execute(
            text("DELETE FROM segment_member WHERE team_id = :t AND segment_id = :s"),
            params)).rowcount  # fmt: skip
        await conn.execute(  # later imports' listings of those memberships go with them
            text("DELETE FROM segment_member_listing WHERE team_id = :t AND segment_id = :s"),
            params)  # fmt: skip
        await enroll_when_exclusion_ends_in(conn, team_id, segment_id, actor)
        await conn.execute(
            text("DELETE FROM campaign_segment WHERE team_id = :t AND segment_id = :s"), params
        )
        # no brackets: the audit log shows a detail in brackets ("deleted the segment VIP
        # (3 contacts taken out (they stay in All Customers))")
        stay = "it stays" if members == 1 else "they stay"  # as the shell says it
        detail = (f"{plural(members, 'contact')} taken out; {stay} in {ALL_CUSTOMERS}"
                  if members else "it held no contacts")  # fmt: skip
        if only_if_empty:  # withdraw_segment's: the log said no more than a lead's deletion
            detail = "created for an import that imported nothing, removed again with it"
        if campaigns:
            detail += "; " + ", ".join(f"{ROLE_WORDS.get(c.role, c.role)} by {c.name}"
                                       for c in campaigns)  # fmt: skip
        await record_in(conn, team_id, actor, Act.SEGMENT_DELETED, name, detail)
    return Deleted(name, members, campaigns)


def segment_withdrawn(name: str) -> str:
    """What the shell and an import's error add once the segment made for it is withdrawn."""
    return f"The segment {quoted(name)}, created for this import, was removed again."


async def withdraw_segment(db: Database, team_id: str, segment_id: int,
                           actor: str) -> str | None:  # fmt: skip
    """Delete a segment made for an import that was then refused or imported nothing, while
    nothing is in it: left, it sat empty in every segment menu (and `segments`), and its name
    was taken when the person tried again. Kept if it holds a contact, an import under way or
    a campaign's use (someone chose it meanwhile: delete_segment checks all three in its own
    transaction; the count first is only the common case's shortcut). Returns its name if
    this call deleted it (callers say so: segment_withdrawn), else None. Nice to have: a
    failure is logged, and the caller's refusal stands."""
    try:
        if await member_count(db, team_id, segment_id):
            log.info("segment %s of %s kept after a refused import: it holds contacts",
                     segment_id, team_id)  # fmt: skip
            return None
        deleted = await delete_segment(db, team_id, segment_id, actor=actor,
                                       expect_campaigns=NO_CAMPAIGNS, only_if_empty=True)
    except WorkspaceError as exc:  # in use meanwhile, or deleted already
        log.info("segment %s of %s kept after a refused import: %s", segment_id, team_id, exc)
    except Exception as exc:  # the database failed too: said in the log, not over the refusal
        log.warning("segment %s of %s made for a refused import was not withdrawn: %r",
                    segment_id, team_id, exc)  # fmt: skip
    else:
        log.info("segment %s of %s withdrawn with the import it was made for", segment_id,
                 team_id)  # fmt: skip
        return deleted.name
    return None


async def write_export(db: Database, team_id: str, segment_id: int, out: TextIO) -> int:
    """Write the segment as CSV to `out` (the header, then one formula-safe row per contact,
    a chunk at a time); returns how many contacts it holds."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    rows = 0
    async for chunk in segment_contacts(db, team_id, segment_id):
        writer.writerows(neutralise(list(row)) for row in chunk)
        rows += len(chunk)
    return rows


async def record_export(db: Database, team_id: str, actor: str, name: str, rows: int) -> None:
    """The audit entry of an export (nothing of ours changed, so it stands alone)."""
    # the count without separators, as every detail stores it (bot.audit adds them to show it)
    await record(db, team_id, actor, Act.SEGMENT_EXPORTED, name,
                 f"{rows} contact{'' if rows == 1 else 's'}")  # fmt: skip
