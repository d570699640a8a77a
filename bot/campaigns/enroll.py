"""Enrollment: the contacts of a campaign's target segments become advocates, in bulk SQL.

One enrollment is one transaction that first takes the campaign's row while it is live, so two
enrollments of one campaign run one after the other and a paused campaign enrolls nobody. It
picks the target members that are in no excluded segment and not yet advocates, gives each a
fresh code (drawing again for the few that collide with an existing code), and writes one
outbox row (invite) per new advocate: queued, held for the hold window, or not emailed with
the reason. A crash rolls it all back and the job runs it again: exactly once in effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns.codes import new_codes
from bot.jobs.queue import database_now_in, enqueue_in, take_running_in
from models import CampaignState, Database, EnrollmentStatus, SegmentKind
from models.clock import utcnow
from models.locks import lock_contacts

SEND_JOB = "send_invites"
# Why a contact is enrolled but not emailed for want of consent, as its invite records it:
# UNSUBSCRIBED only for one who did (our link, or a lead: `unsubscribed_at` set), NOT_SUBSCRIBED
# for one who never said yes (an import's accepts_marketing=no) or whose file withdrew it.
# "unsubscribed" was said of both, of customers who had never subscribed at all.
UNSUBSCRIBED = "unsubscribed"
NOT_SUBSCRIBED = "not subscribed"


def consent_reason(contact: str) -> str:
    """SQL: why a contact that isn't subscribed (`contact`: an alias of the contact table)
    isn't emailed, UNSUBSCRIBED or NOT_SUBSCRIBED as above."""
    return (f"CASE WHEN {contact}.unsubscribed_at IS NULL THEN '{NOT_SUBSCRIBED}' "
            f"ELSE '{UNSUBSCRIBED}' END")


_TS = UTCDateTime()
_MAX_DRAWS = 20  # a fresh draw collides about once per million: 20 rounds never run out
ENROLL_CHUNK = 100_000  # contacts given codes per round: bounds memory at a million


class EnrollmentError(Exception):
    """The enrollment can't run as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class EnrollResult:
    enrolled: int
    already_advocates: int
    excluded: int
    invites_queued: int  # queued or held: will be emailed
    not_emailed: dict[str, int]  # reason -> count


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where the candidates come from: SQL pieces over `m` (member rows) or `c` (contacts)."""

    source: str  # FROM ... alias m with a contact_id column
    params: dict[str, Any]
    excludes: bool = True  # the campaign excludes some segment (else skip that check)
    # The same scope as a condition on one contact `{contact}`, found by the primary key of
    # segment_member (segment_id, contact_id): for the few invites the re-invite looks at
    holds: str = "1 = 0"



_TAKE_STATUS = text("UPDATE enrollment SET status = status WHERE id = :e RETURNING status")
_UNDER_WAY = (EnrollmentStatus.QUEUED, EnrollmentStatus.RUNNING)


def send_after(start: datetime, hold_until: datetime | None, delay_days: int) -> datetime:
    """When an enrollment's invites are due: the campaign's delay after `start` (the
    enrollment), never before its hold ends. Enrolling and a later change of the delay
    (invites.reschedule_waiting_in) both go by it."""
    return max(hold_until or start, start + timedelta(days=delay_days))

# An enrollment that found its campaign paused (or a draft) when it ran ends so; going live
# runs those reported in a thread again (service._resume_not_live_in)
NOT_LIVE = "The campaign isn't live: nobody was enrolled. Go live to enroll its targets."


async def run_enrollment(db: Database, team_id: str, enrollment_id: int, *, hold_seconds: float,
                         job_id: int | None = None) -> EnrollResult:  # fmt: skip
    """Enroll what the enrollment row asks for; a finished one (done, or failed: an import's
    whose job was cancelled) just reports its counts, and so does a run whose job `job_id`
    was cancelled (`jobs cancel`) before it could take it.

    Queues the invites' send job in the same transaction, due when the hold window ends (or
    when a delayed invite is due).
    """
    async with db.begin() as conn:
        # no contact it enrolls may be deleted before it commits (models/locks.py)
        await lock_contacts(conn, team_id, exclusive=False)
        row = (await conn.execute(
            text("SELECT campaign_id, segment_id, batch_id, thread_ts FROM enrollment "
                 "WHERE id = :e AND team_id = :t"), {"e": enrollment_id, "t": team_id},
        )).first()  # fmt: skip
        if row is None:
            raise EnrollmentError(f"No enrollment #{enrollment_id} in this workspace.")
        campaign_id, segment_id, batch_id, thread = row
        # the campaign's row first: a second run of this enrollment waits here, then sees it done
        campaign = (await conn.execute(
            text("UPDATE campaign SET updated_at = updated_at WHERE id = :c AND team_id = :t "
                 "RETURNING state, invite_email, invite_delay_days"),
            {"c": campaign_id, "t": team_id},
        )).first()  # fmt: skip
        # Taken, not read: a `jobs cancel` committed while this run waited above failed the
        # enrollment, and a read made before it (PostgreSQL: at the statement's start) let the
        # run enroll everyone and mark it done, its invites emailed. The job's row too: a
        # targeting's enrollment stays queued when its job is cancelled (cancel.py).
        status = (await conn.execute(_TAKE_STATUS, {"e": enrollment_id})).scalar_one()
        if status not in _UNDER_WAY or not await take_running_in(conn, team_id, job_id):
            return await counts(conn, team_id, enrollment_id)
        if campaign is None or campaign[0] != CampaignState.LIVE:
            await _finish(conn, enrollment_id, 0, 0, error=NOT_LIVE)
            return await counts(conn, team_id, enrollment_id)
        _, invite_email, delay_days = campaign
        scope = await _scope(conn, team_id, campaign_id, segment_id, batch_id)
        # by the clock due times are compared with (bot.jobs.queue.lease_now: on PostgreSQL,
        # the server's): stamped by a host whose clock was behind, held and delayed invites,
        # and their send job, were due early by its skew (at once, for a hold shorter than it)
        now = await database_now_in(conn)
        hold_until = now + timedelta(seconds=hold_seconds) if hold_seconds > 0 else None
        excluded, already = await _excluded_and_known(conn, team_id, campaign_id, scope)
        await _insert_advocates(conn, team_id, campaign_id, enrollment_id, batch_id, scope,
                                now)  # fmt: skip
        if batch_id is None and thread is not None:  # Target, or Go live and target
            imported = (await conn.execute(_THREADS_IMPORT, {"e": enrollment_id,
                                                             "t": team_id})).first()  # fmt: skip
            if imported is not None:
                await conn.execute(_OF_THE_THREADS_IMPORT, {
                    "e": enrollment_id, "t": team_id, "c": campaign_id, "b": imported[0],
                    "s": imported[1]})  # fmt: skip
        due = send_after(now, hold_until, delay_days)
        # held (*Cancel invites* in the thread's report) while they wait: for the hold, or,
        # reported in a thread, for the campaign's delay (INVITE_HOLD_SECONDS=0 and a 3-day
        # delay read "2 queued", as if going now, with nothing to stop them)
        held = hold_until is not None or (thread is not None and due > now)
        await _insert_invites(conn, team_id, campaign_id, enrollment_id, now=now,
                              invite_email=bool(invite_email), hold=held,
                              send_after=due)  # fmt: skip
        await _invite_again(conn, enrollment_id, scope, now=now, invite_email=bool(invite_email),
                            hold=held, send_after=due)  # fmt: skip
        await conn.execute(
            text("UPDATE enrollment SET hold_until = :h WHERE id = :e")
            .bindparams(bindparam("h", type_=UTCDateTime())), {"h": hold_until, "e": enrollment_id}
        )  # fmt: skip
        await _finish(conn, enrollment_id, excluded, already)
        result = await counts(conn, team_id, enrollment_id)
        if result.invites_queued:
            await enqueue_in(conn, team_id, SEND_JOB, {"enrollment_id": enrollment_id},
                             dedupe_key=f"send:{enrollment_id}", run_after=due)  # fmt: skip
        return result


async def _scope(conn: AsyncConnection, team_id: str, campaign_id: int, segment_id: int | None,
                 batch_id: int | None) -> _Scope:  # fmt: skip
    """Members to consider: an import's new members, one segment, or every target."""
    params: dict[str, Any] = {"t": team_id, "c": campaign_id}
    excludes = bool((await conn.execute(
        text("SELECT 1 FROM campaign_segment WHERE campaign_id = :c AND role = 'exclude' "
             "LIMIT 1"), params)).first())  # fmt: skip
    scope = await _members(conn, segment_id, batch_id, params)
    return _Scope(scope.source, scope.params, excludes, scope.holds)


async def _members(conn: AsyncConnection, segment_id: int | None, batch_id: int | None,
                   params: dict[str, Any]) -> _Scope:  # fmt: skip
    if batch_id is not None:  # contacts an import just added to a targeted segment
        params.update(s=segment_id, b=batch_id)
        members = ("(SELECT contact_id FROM segment_member WHERE team_id = :t "
                   "AND segment_id = :s AND batch_id = :b)")  # fmt: skip
        holds = ("EXISTS (SELECT 1 FROM segment_member m WHERE m.segment_id = :s "
                 "AND m.contact_id = {contact} AND m.team_id = :t AND m.batch_id = :b)")
        if await _targets_everyone(conn, params):  # and those it created, in All Customers
            # whatever became of its segment: deleted (or a contact taken out of it) before
            # this ran, they stayed in All Customers without a link, for good
            members = (f"({members[1:-1]} UNION "
                       "SELECT id FROM contact WHERE team_id = :t AND batch_id = :b)")
            holds = (f"({holds} OR EXISTS (SELECT 1 FROM contact n WHERE n.id = {{contact}} "
                     "AND n.team_id = :t AND n.batch_id = :b))")
        return _Scope(members, params, holds=holds)
    targets = [segment_id] if segment_id is not None else [
        r[0] for r in await conn.execute(
            text("SELECT segment_id FROM campaign_segment WHERE campaign_id = :c "
                 "AND team_id = :t AND role = 'target'"), params)
    ]  # fmt: skip
    kinds = dict((await conn.execute(
        text("SELECT id, kind FROM segment WHERE team_id = :t"), params)).all())  # fmt: skip
    if any(kinds.get(s) == SegmentKind.ALL for s in targets):
        return _Scope("(SELECT id AS contact_id FROM contact WHERE team_id = :t)", params,
                      holds="1 = 1")  # an invite's contact is one of the workspace's
    if not targets:
        return _Scope("(SELECT contact_id FROM segment_member WHERE 1 = 0)", params)
    names = {f"s{i}": s for i, s in enumerate(targets)}
    params.update(names)
    members = ", ".join(f":{n}" for n in names)
    return _Scope(f"(SELECT DISTINCT contact_id FROM segment_member WHERE team_id = :t "
                  f"AND segment_id IN ({members}))", params,
                  holds=f"EXISTS (SELECT 1 FROM segment_member m WHERE m.segment_id IN "
                  f"({members}) AND m.contact_id = {{contact}} AND m.team_id = :t)")


async def _targets_everyone(conn: AsyncConnection, params: dict[str, Any]) -> bool:
    """Whether the campaign (:c) targets All Customers."""
    return bool((await conn.execute(text(
        "SELECT 1 FROM campaign_segment cs JOIN segment g ON g.id = cs.segment_id "
        "AND g.team_id = cs.team_id WHERE cs.campaign_id = :c AND cs.team_id = :t "
        "AND cs.role = 'target' AND g.kind = :all LIMIT 1"),
        {**params, "all": SegmentKind.ALL})).first())  # fmt: skip


def in_excluded_segment(contact: str, *, campaign: str = ":c", team: str = ":t",
                        other_than: str | None = None) -> str:  # fmt: skip
    """SQL: whether the contact whose id is `contact` (a column) is in a segment the campaign
    `campaign` excludes (but the segment `other_than`, if given: one about to become a target,
    as the shell's count before targeting it has it). Written once because enrolling,
    inviting again, each invite's start, the review's preview and that count must agree on
    who is kept out. Lookups by key: the campaign's segments (campaign_segment's key starts
    with campaign_id), then each excluded one's member row (segment_member's key:
    segment_id, contact_id)."""
    but = "" if other_than is None else f" AND cs.segment_id <> {other_than}"
    return (f"EXISTS (SELECT 1 FROM campaign_segment cs JOIN segment_member x "
            f"ON x.segment_id = cs.segment_id AND x.contact_id = {contact} "
            f"AND x.team_id = {team} WHERE cs.campaign_id = {campaign} "
            f"AND cs.team_id = {team} AND cs.role = 'exclude'{but})")


_IN_EXCLUDED = in_excluded_segment("m.contact_id")
_IS_ADVOCATE = """EXISTS (SELECT 1 FROM advocate a WHERE a.campaign_id = :c
                          AND a.contact_id = m.contact_id)"""


async def _excluded_and_known(conn: AsyncConnection, team_id: str, campaign_id: int,
                              scope: _Scope) -> tuple[int, int]:  # fmt: skip
    """(left out, already advocates) of the scope: an advocate in an excluded segment is one
    that already was (an exclusion keeps advocates), not one left out, as the preview counts."""
    if not scope.excludes:
        known = (await conn.execute(text(
            f"SELECT COUNT(*) FROM {scope.source} m WHERE {_IS_ADVOCATE}"), scope.params)
        ).scalar_one()  # fmt: skip
        return 0, int(known)
    excluded, known = (await conn.execute(text(f"""
        SELECT COALESCE(SUM(CASE WHEN {_IN_EXCLUDED} AND NOT {_IS_ADVOCATE} THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN {_IS_ADVOCATE} THEN 1 ELSE 0 END), 0)
        FROM {scope.source} m
    """), scope.params)).one()  # fmt: skip
    return int(excluded), int(known)


# Targeted from an import's thread (Target a campaign, Go live and target): the advocates of
# the contacts that import put in the segment are that import's, as Home counts them, so that
# undoing it with its advocates removes them. They had no import, and the undo's confirmation
# said "Also remove the 0 advocates it enrolled" and kept their links.
_OF_THE_THREADS_IMPORT = text("""
    UPDATE advocate SET batch_id = :b
    WHERE campaign_id = :c AND team_id = :t AND enrollment_id = :e AND batch_id IS NULL
      AND contact_id IN (SELECT m.contact_id FROM segment_member m
                         WHERE m.segment_id = :s AND m.team_id = :t AND m.batch_id = :b)
""")
# The import whose review message the enrollment's thread is (and the segment it went into).
_THREADS_IMPORT = text("""
    SELECT b.id, b.segment_id FROM import_batch b JOIN enrollment e
      ON e.channel_id = b.channel_id AND e.thread_ts = b.message_ts
    WHERE e.id = :e AND e.team_id = :t AND b.team_id = :t
""")


async def _insert_advocates(conn: AsyncConnection, team_id: str, campaign_id: int,
                            enrollment_id: int, batch_id: int | None, scope: _Scope,
                            now: datetime) -> None:  # fmt: skip
    """New advocates with fresh codes, a chunk of contacts at a time (bounded memory); the few
    whose code collides with an existing one are drawn again. Each names its enrollment and
    the import that enrolled it (`batch_id`; None when targeting or going live did): undoing
    that import with its advocates removes it."""
    exclusion = f"AND NOT {_IN_EXCLUDED}" if scope.excludes else ""
    query = text(f"SELECT m.contact_id FROM {scope.source} m WHERE m.contact_id > :after "
                 f"{exclusion} AND NOT {_IS_ADVOCATE} "
                 "ORDER BY m.contact_id LIMIT :chunk")  # fmt: skip
    after, stalled = 0, 0
    while True:
        params = {**scope.params, "after": after, "chunk": ENROLL_CHUNK}
        contacts = [r[0] for r in await conn.execute(query, params)]
        if not contacts:
            return
        rows = list(zip(contacts, new_codes(len(contacts)), strict=True))
        if conn.dialect.name == "sqlite":
            inserted = await _sqlite_advocates(conn, team_id, campaign_id, enrollment_id,
                                               batch_id, rows, now)  # fmt: skip
        else:
            inserted = await _postgres_advocates(conn, team_id, campaign_id, enrollment_id,
                                                 batch_id, rows, now)  # fmt: skip
        if inserted == len(rows):
            after, stalled = contacts[-1], 0  # the next chunk
            continue
        stalled += 1  # some codes collided: the same window again, for those contacts only
        if stalled >= _MAX_DRAWS:
            raise EnrollmentError("Could not draw unique referral codes; try again.")


async def _sqlite_advocates(conn: AsyncConnection, team_id: str, campaign_id: int,
                            enrollment_id: int, batch_id: int | None,
                            rows: list[tuple[int, str]], now: datetime) -> int:  # fmt: skip
    raw = (await conn.get_raw_connection()).driver_connection
    stamp = _TS.bind_processor(conn.dialect)(now)  # type: ignore[misc]
    before = raw.total_changes
    batch = "NULL" if batch_id is None else int(batch_id)
    await raw.executemany(
        "INSERT INTO advocate (team_id, campaign_id, contact_id, code, enrollment_id, batch_id, "
        f"clicks, created_at) SELECT ?, {int(campaign_id)}, ?, ?, {int(enrollment_id)}, {batch}, "
        "0, ? WHERE NOT EXISTS (SELECT 1 FROM retired_code WHERE code = ?) "
        "ON CONFLICT DO NOTHING",
        ((team_id, contact, code, stamp, code) for contact, code in rows),
    )
    return int(raw.total_changes - before)


async def _postgres_advocates(conn: AsyncConnection, team_id: str, campaign_id: int,
                              enrollment_id: int, batch_id: int | None,
                              rows: list[tuple[int, str]], now: datetime) -> int:  # fmt: skip
    raw = (await conn.get_raw_connection()).driver_connection
    await raw.execute("CREATE TEMP TABLE IF NOT EXISTS new_advocate "
                      "(contact_id integer, code varchar(16)) ON COMMIT DROP")  # fmt: skip
    await raw.execute("TRUNCATE new_advocate")
    await raw.copy_records_to_table("new_advocate", records=rows,
                                    columns=["contact_id", "code"])  # fmt: skip
    status = await raw.execute(
        "INSERT INTO advocate (team_id, campaign_id, contact_id, code, enrollment_id, batch_id, "
        "clicks, created_at) SELECT $1, $2, contact_id, code, $3, $5, 0, $4 FROM new_advocate n "
        "WHERE NOT EXISTS (SELECT 1 FROM retired_code r WHERE r.code = n.code) "
        "ON CONFLICT DO NOTHING", team_id, campaign_id, enrollment_id, now, batch_id,
    )  # fmt: skip
    return int(status.rsplit(" ", 1)[-1])  # "INSERT 0 <rows>"


# A deleted contact this campaign had emailed, imported again (models.InvitedAddress), is not
# emailed a second time. Looked up only in a campaign that has such addresses: a probe per
# advocate otherwise, for nothing.
_INVITED_BEFORE = ("EXISTS (SELECT 1 FROM invited_address x WHERE x.team_id = a.team_id "
                   "AND x.campaign_id = a.campaign_id AND x.email_key = c.email_key)")


def _invites_insert(invited_before: bool) -> Any:
    before = f"WHEN {_INVITED_BEFORE} THEN" if invited_before else ""
    return text(f"""
        INSERT INTO invite (team_id, campaign_id, contact_id, advocate_id, enrollment_id, state,
                            reason, send_after, attempts, fell_back, updated_at)
        SELECT a.team_id, a.campaign_id, a.contact_id, a.id, :e,
               CASE WHEN NOT c.subscribed THEN 'not_emailed'
                    WHEN NOT :invite_email THEN 'not_emailed'
                    {before + " 'not_emailed'" if before else ""}
                    WHEN :hold THEN 'held' ELSE 'queued' END,
               CASE WHEN NOT c.subscribed THEN {consent_reason("c")}
                    WHEN NOT :invite_email THEN 'invite email off'
                    {before + " 'invited before'" if before else ""} END,
               :send_after, 0, :no, :now
        FROM advocate a JOIN contact c ON c.id = a.contact_id AND c.team_id = a.team_id
        WHERE a.campaign_id = :c AND a.enrollment_id = :e AND a.team_id = :t
        ON CONFLICT (campaign_id, contact_id) DO NOTHING
    """).bindparams(bindparam("send_after", type_=UTCDateTime()),
                    bindparam("now", type_=UTCDateTime()))  # fmt: skip


_INSERT_INVITES = {before: _invites_insert(before) for before in (False, True)}
_ANY_INVITED_BEFORE = text("SELECT 1 FROM invited_address WHERE team_id = :t "
                           "AND campaign_id = :c LIMIT 1")  # fmt: skip


# The reason an undo gives the waiting invites it cancels (bot/imports/undo.py), and the
# pattern that finds them again: the re-invite below and the campaigns' preview.
def undone_reason(batch_id: int) -> str:
    return f"import #{batch_id} was undone"


UNDONE_REASONS = "import #% was undone"  # LIKE


# The reason an exclusion gives the waiting invites it cancels (service.exclude, and the send
# itself for a contact that joined an excluded segment later), and the pattern that finds
# them again once the contact is no longer excluded.
def excluded_reason(segment_name: str) -> str:
    return f"excluded: in {segment_name}, which the campaign excludes"


EXCLUDED_REASONS = "excluded: in %, which the campaign excludes"  # LIKE


def invited_again(reason: str) -> str:
    """SQL: whether a cancelled invite's `reason` (a column) is one whose advocate is invited
    again when back in the campaign's scope: its import undone, or its contact excluded (the
    exclusion ended). Not one a person cancelled (Cancel invites): that stays cancelled."""
    return f"({reason} LIKE '{UNDONE_REASONS}' OR {reason} LIKE '{EXCLUDED_REASONS}')"

# An advocate whose waiting invite an undo cancelled (the import that put it in a targeted
# segment undone, its advocates kept), or an exclusion cancelled (now ended: the excluded
# segment deleted or targeted, the contact taken out of it), in the enrollment's scope again
# (an import put it back in a targeted segment, a segment it is in was targeted, the campaign
# went live, it left a segment the campaign excludes): invited as a new advocate would be,
# instead of staying an advocate with a cancelled invite, never emailed. Only an import did it
# before, and an exclusion's were never invited again.
#
# Run by every enrollment, so it must cost nothing when nobody is to be invited again (an
# enrollment of a million contacts has just written a million invites of this campaign): it
# starts from the workspace's cancelled invites (ix_invite_due: team_id, state), a handful,
# and looks each one's contact up in the scope by segment_member's key (`holds`), never
# reading the scope's members nor the campaign's invites. The unary + on campaign_id keeps
# SQLite (no statistics) off the unique (campaign_id, contact_id) index, which it prefers
# otherwise and which reads every invite of the campaign; PostgreSQL picks ix_invite_due
# either way.
_INVITE_AGAIN = """
    UPDATE invite SET enrollment_id = :e, send_after = :send_after, updated_at = :now,
        state = CASE WHEN NOT (SELECT c.subscribed FROM contact c WHERE
                               c.id = invite.contact_id AND c.team_id = :t) THEN 'not_emailed'
                     WHEN NOT :invite_email THEN 'not_emailed'
                     WHEN {invited_before} THEN 'not_emailed'
                     WHEN :hold THEN 'held' ELSE 'queued' END,
        reason = CASE WHEN NOT (SELECT c.subscribed FROM contact c WHERE
                                c.id = invite.contact_id AND c.team_id = :t)
                      THEN (SELECT {not_subscribed} FROM contact c WHERE
                            c.id = invite.contact_id AND c.team_id = :t)
                      WHEN NOT :invite_email THEN 'invite email off'
                      WHEN {invited_before} THEN 'invited before' END
    WHERE team_id = :t AND state = 'cancelled' AND +campaign_id = :c
      AND {again}
      AND {holds}
      AND NOT {excluded}
"""
# As _INVITED_BEFORE, for the invite's contact (of the campaign :c).
INVITE_INVITED_BEFORE = ("EXISTS (SELECT 1 FROM invited_address x WHERE x.team_id = :t "
                        "AND x.campaign_id = :c AND x.email_key = (SELECT c.email_key "
                        "FROM contact c WHERE c.id = invite.contact_id AND c.team_id = :t))")


async def _invite_again(conn: AsyncConnection, enrollment_id: int, scope: _Scope, *,
                        now: datetime, invite_email: bool, hold: bool,
                        send_after: datetime) -> None:  # fmt: skip
    """Invite again those of the scope whose waiting invite an undo or an exclusion cancelled
    (_INVITE_AGAIN), honouring the exclusions, their consent, the campaign's invite email and
    the addresses it emailed before, as a new advocate's invite does; the campaign is live
    (the caller)."""
    statement = _INVITE_AGAIN.format(holds=scope.holds.format(contact="invite.contact_id"),
                                     again=invited_again("reason"),
                                     invited_before=INVITE_INVITED_BEFORE,
                                     not_subscribed=consent_reason("c"),
                                     excluded=in_excluded_segment("invite.contact_id"))  # fmt: skip
    await conn.execute(text(statement).bindparams(
        bindparam("send_after", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime())), {
        **scope.params, "e": enrollment_id, "invite_email": invite_email, "hold": hold,
        "send_after": send_after, "now": now})  # fmt: skip


async def _insert_invites(conn: AsyncConnection, team_id: str, campaign_id: int,
                          enrollment_id: int, *, now: datetime, invite_email: bool, hold: bool,
                          send_after: datetime) -> None:  # fmt: skip
    params = {"t": team_id, "c": campaign_id}
    before = (await conn.execute(_ANY_INVITED_BEFORE, params)).first() is not None
    await conn.execute(_INSERT_INVITES[before], {
        **params, "e": enrollment_id, "invite_email": invite_email, "hold": hold, "no": False,
        "send_after": send_after, "now": now})  # fmt: skip


async def _finish(conn: AsyncConnection, enrollment_id: int, excluded: int, already: int,
                  error: str | None = None) -> None:  # fmt: skip
    await conn.execute(
        text("""UPDATE enrollment SET status = :done, excluded = :x, already_advocates = :k,
                enrolled = (SELECT COUNT(*) FROM advocate WHERE enrollment_id = :e),
                error = :error, finished_at = :now WHERE id = :e""")
        .bindparams(bindparam("now", type_=UTCDateTime())),
        {"done": EnrollmentStatus.DONE, "x": excluded, "k": already, "e": enrollment_id,
         "error": error, "now": utcnow()},
    )  # fmt: skip


async def fail_enrollment(db: Database, team_id: str, enrollment_id: int, error: str) -> bool:
    """Give up on an enrollment out of attempts: it is `failed` with the reason (what it
    enrolled stays), so its thread says so and the segment can be targeted again (an
    unfinished enrollment is what a second Target click is given). False if it had ended."""
    async with db.begin() as conn:
        return await fail_enrollment_in(conn, team_id, enrollment_id, error)


async def fail_enrollment_in(conn: AsyncConnection, team_id: str, enrollment_id: int,
                             error: str) -> bool:  # fmt: skip
    """fail_enrollment inside the caller's transaction (`jobs cancel` of its job)."""
    ended = await conn.execute(
        text("""UPDATE enrollment SET status = :failed, error = :error, finished_at = :now,
                    enrolled = (SELECT COUNT(*) FROM advocate WHERE enrollment_id = :e)
                WHERE id = :e AND team_id = :t AND status IN ('queued', 'running')""")
        .bindparams(bindparam("now", type_=UTCDateTime())),
        {"failed": EnrollmentStatus.FAILED, "error": error[:2000], "now": utcnow(),
         "e": enrollment_id, "t": team_id},
    )  # fmt: skip
    return ended.rowcount == 1


async def counts(conn: AsyncConnection, team_id: str, enrollment_id: int) -> EnrollResult:
    """The enrollment's figures, counted from its rows."""
    enrolled, already, excluded = (await conn.execute(
        text("SELECT enrolled, already_advocates, excluded FROM enrollment "
             "WHERE id = :e AND team_id = :t"), {"e": enrollment_id, "t": team_id},
    )).one()  # fmt: skip
    queued = 0
    not_emailed: dict[str, int] = {}
    for state, reason, n in await conn.execute(
        text("SELECT state, reason, COUNT(*) FROM invite WHERE enrollment_id = :e "
             "AND team_id = :t GROUP BY state, reason"), {"e": enrollment_id, "t": team_id},
    ):  # fmt: skip
        if state == "not_emailed":
            why = reason or "not emailed"
            not_emailed[why] = not_emailed.get(why, 0) + n
        elif state in ("queued", "held", "sending", "sent", "uncertain", "failed", "cancelled"):
            queued += n
    return EnrollResult(enrolled, already, excluded, queued, not_emailed)
