"""Enqueue, claim, heartbeat and finish jobs with plain SQL that works on SQLite and PostgreSQL.

A claim is one UPDATE ... RETURNING: atomic under SQLite's single writer, and on PostgreSQL
its subquery takes the row FOR UPDATE SKIP LOCKED, so N workers share the queue without ever
running one job twice. A running job whose lease has expired (its worker died) is claimable
again; that counts as an attempt. A worker claims only the kinds it has handlers for, so a job
no running worker can handle waits in the queue; the `worker_process` table says which kinds
the live workers run. A job's end sees that its workspace's purge is queued, which deletes
it a month on (`schedule_purge_after_in`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, literal, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports.job_kinds import PURGE_JOB
from bot.jobs.forgettable import jobs_left_to_forget_in
from models import Database, Job, JobState, WorkerProcess
from models.clock import utcnow

MAX_BACKOFF = timedelta(hours=1)
_TIMES = ("now", "lease", "run_after", "cutoff")
_JOB_COLUMNS = ", ".join(column.name for column in Job.__table__.columns)  # type: ignore[attr-defined]


def _sql(statement: str) -> Any:
    """text() with our timestamp parameters typed, so both dialects store them alike."""
    names = [name for name in _TIMES if re.search(rf":{name}\b", statement)]
    return text(statement).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in names))


# Leases and due times (a job's run_after, an invite's send_after) are stamped and compared by
# one clock for every process. On PostgreSQL that is the server's: hosts' clocks drift apart,
# and a host whose clock ran a lease ahead of another's took a job whose worker was alive and
# renewing it, and both ran it; one ahead claimed jobs (and sent held invites) early by its
# skew, and one behind stamped retries due at once. SQLite is a file that every process opens
# on one host, so they share its clock: there it is the process's, bound as :now and :lease.
# (The bookkeeping times, created_at and updated_at, stay the process's: nothing waits on
# them.)
_PG_NOW = "statement_timestamp()"


def lease_now(sqlite: bool) -> str:
    """SQL for "now" as leases and due times are stamped and compared (see above)."""
    return ":now" if sqlite else _PG_NOW


def due_in(sqlite: bool, name: str) -> str:
    """SQL for a due time a wait from now by the shared clock, bound as `due_params` binds
    it: on PostgreSQL the wait, in seconds, is added to the server's now; on SQLite (whose
    shared clock is the process's) the time itself is bound."""
    return f":{name}" if sqlite else f"{_PG_NOW} + make_interval(secs => :{name}_seconds)"


def due_params(sqlite: bool, name: str, wait: timedelta | None,
               now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """The parameter of `due_in(sqlite, name)` for `wait` from now (None: no due time, NULL);
    on SQLite from `now` if given (the time the caller stamps its row with)."""
    if sqlite:
        return {name: None if wait is None else (now or utcnow()) + wait}
    return {f"{name}_seconds": None if wait is None else wait.total_seconds()}


def shared_now(sqlite: bool, earlier_by: timedelta = timedelta(0)) -> ColumnElement[datetime]:
    """`lease_now` (less `earlier_by`) for statements built with SQLAlchemy Core: what else
    processes on several hosts stamp and compare goes by the same clock (bot.once's keys,
    whose holders renew them as workers renew leases)."""
    if sqlite:
        return literal(utcnow() - earlier_by, UTCDateTime())
    return func.statement_timestamp(type_=UTCDateTime()) - earlier_by


def _lease_until(sqlite: bool) -> str:
    """SQL for when a lease taken now lapses: `:lease_seconds` after `lease_now`."""
    return ":lease" if sqlite else f"{_PG_NOW} + make_interval(secs => :lease_seconds)"


def _lease_params(lease_seconds: float) -> dict[str, Any]:
    """The parameters of `lease_now` and `_lease_until`, for either database."""
    now = utcnow()
    return {"now": now, "lease": now + timedelta(seconds=lease_seconds),
            "lease_seconds": float(lease_seconds)}  # fmt: skip


async def database_now(db: Database) -> datetime:
    """Now by the clock leases are stamped with (see `lease_now`): a lease is lapsed when it
    is earlier than this."""
    if db.is_sqlite:
        return utcnow()
    async with db.begin() as conn:
        return await database_now_in(conn)


async def database_now_in(conn: AsyncConnection) -> datetime:
    """`database_now` in the caller's transaction: what a due time computed in Python (a
    wait from now) starts from, so that it is due by the clock it is compared with."""
    if conn.dialect.name == "sqlite":
        return utcnow()
    now = (await conn.execute(text(f"SELECT {_PG_NOW}"))).scalar_one()
    return now.astimezone(UTC)


@dataclass
class _Defaults:
    max_attempts: int = 5


# JOB_MAX_ATTEMPTS, for the jobs whose callers don't choose (set once from the settings by
# the CLI, serve and its workers: enqueue sites deep in the services don't see the settings)
_defaults = _Defaults()


def use_max_attempts(attempts: int) -> int:
    """Jobs enqueued from now on without their own limit get `attempts` (JOB_MAX_ATTEMPTS);
    returns the limit before, to put back."""
    before, _defaults.max_attempts = _defaults.max_attempts, max(1, attempts)
    return before


async def enqueue(
    db: Database,
    team_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
) -> Job:
    """Add a job, due now by the shared clock (see `lease_now`); with a `dedupe_key` a second
    enqueue (double click, retry) returns the first."""
    async with db.begin() as conn:
        job_id = await enqueue_in(conn, team_id, kind, payload, dedupe_key=dedupe_key,
                                  max_attempts=max_attempts)  # fmt: skip
    job = await get_job(db, team_id, job_id)
    assert job is not None
    return job


async def enqueue_in(
    conn: AsyncConnection,
    team_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
    run_after: datetime | None = None,
) -> int:
    """Add a job inside the caller's transaction (so a state change and its job commit together),
    due at `run_after`, or now by the shared clock (see `lease_now`).

    With a `dedupe_key` an existing job of that key wins, whatever its state, and its id is
    returned: a double click finds the job its first click queued, even running or ended.
    (Work that reads its data when it runs, and must run again for a change made once its
    job started, is queued with `enqueue_pending_in`.) The insert never raises, so the
    caller's transaction stays usable on PostgreSQL too.
    """
    row = await _insert_in(conn, team_id, kind, payload, dedupe_key=dedupe_key,
                           max_attempts=max_attempts, run_after=run_after)  # fmt: skip
    return await _inserted_or_existing(conn, row, team_id, dedupe_key)


async def _insert_in(
    conn: AsyncConnection,
    team_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None,
    max_attempts: int | None,
    run_after: datetime | None,
) -> Any:
    """INSERT the job unless one of its key exists: the row of its id, or None. Without a
    `run_after` it is due now by the shared clock."""
    now = utcnow()
    params = {"team": team_id, "kind": kind, "payload": json.dumps(payload), "key": dedupe_key,
              "max": max_attempts or _defaults.max_attempts, "now": now,
              "run_after": run_after}  # fmt: skip
    due = ":run_after" if run_after is not None else lease_now(conn.dialect.name == "sqlite")
    return (
        await conn.execute(
            _sql(f"""
                INSERT INTO job (team_id, kind, payload, dedupe_key, state, attempts, max_attempts,
                                 run_after, progress_done, progress_total, created_at, updated_at)
                VALUES (:team, :kind, :payload, :key, 'queued', 0, :max, {due}, 0, 0,
                        :now, :now)
                ON CONFLICT (team_id, dedupe_key) DO NOTHING
                RETURNING id
            """),
            params,
        )
    ).first()


# A job of `enqueue_pending_in` that was no longer queued when a newer one took its key keeps
# it as "was:<its id>:<key>": unique still, and a run of it that fails or is handed back then
# knows which key to look under for the newer copy that does its work (`_leave_owned`).
_RETIRED = "was:"
_RETIRE = f"'{_RETIRED}' || CAST(id AS VARCHAR(20)) || ':' || dedupe_key"
_JOIN_TRIES = 5  # each try but the last loses to another enqueue that committed meanwhile


def pending_key(dedupe_key: str | None) -> str | None:
    """The key a job of `enqueue_pending_in` gave up to a newer copy; None for any other."""
    if dedupe_key is None or not dedupe_key.startswith(_RETIRED):
        return None
    return dedupe_key.split(":", 2)[2]


async def enqueue_pending_in(
    conn: AsyncConnection,
    team_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    max_attempts: int | None = None,
    run_after: datetime | None = None,
) -> int:
    """Queue a job that redoes work from the data as it is when it runs (a refresh, a report,
    a send run: it sends the invites due then), or join the job of that key still waiting to
    run: changes made while one waits need no second run. A change made once it started
    queues the next, since it may have read the data before (even a change the running job
    makes itself: a send run's next run, for invites due later): the key is taken from a
    job of that key that is no longer queued (a job of one kind: the same key always comes
    with the same payload).

    One UPDATE takes the keyed row and decides by its state then: on PostgreSQL it waits for a
    worker claiming the job, so a change never joins a job that already started (its report
    would be lost); a concurrent enqueue that inserted the key first is joined on the next try.

    A job that hasn't failed yet is due no later than a new one would be; one that failed
    keeps its attempts and its backoff: Slack down, every report joining it would otherwise
    retry it at once, and a report that fails for good would live as long as reports come.

    Without a `run_after` it is due now by the shared clock (see `lease_now`)."""
    params = {"team": team_id, "key": dedupe_key, "now": utcnow(), "run_after": run_after}
    due = ":run_after" if run_after is not None else lease_now(conn.dialect.name == "sqlite")
    for _ in range(_JOIN_TRIES):
        holder = (await conn.execute(_sql(f"""
            UPDATE job SET updated_at = :now,
                run_after = CASE WHEN state = 'queued' AND attempts = 0
                                      AND run_after > {due}
                                 THEN {due} ELSE run_after END,
                dedupe_key = CASE WHEN state = 'queued' THEN dedupe_key ELSE {_RETIRE} END
            WHERE team_id = :team AND dedupe_key = :key
            RETURNING id, state
        """), params)).first()  # fmt: skip
        if holder is not None and holder.state == JobState.QUEUED:
            return int(holder.id)
        row = await _insert_in(conn, team_id, kind, payload, dedupe_key=dedupe_key,
                               max_attempts=max_attempts, run_after=run_after)  # fmt: skip
        if row is not None:
            return int(row[0])
    raise RuntimeError(f"no job of key {dedupe_key!r} queued after {_JOIN_TRIES} tries")


async def _inserted_or_existing(conn: AsyncConnection, row: Any, team_id: str,
                                dedupe_key: str | None) -> int:  # fmt: skip
    """The id an INSERT ... ON CONFLICT DO NOTHING RETURNING id gave, or the existing job's."""
    if row is not None:
        return int(row[0])
    existing = await conn.execute(
        text("SELECT id FROM job WHERE team_id = :team AND dedupe_key = :key"),
        {"team": team_id, "key": dedupe_key},
    )
    return int(existing.scalar_one())


# The workspace's purge (bot.imports.retention) deletes what it no longer needs, among it its
# jobs that ended a month ago (bot.jobs.retention). One waits per workspace, under this key:
# queued as a job of `enqueue_pending_in`, so whoever queues it while one waits joins that one
# (due no later than either wants), and the key's unique index keeps a second from ever
# waiting beside it, even when two transactions queue it at once on PostgreSQL (keyed by the
# minute it was due, as it was, two queued for different minutes both went in). A run of it
# gives the key up as it queues the next, or when a job's end queues it meanwhile.
PURGE_KEY = "purge"
# A job's end queues the purge (none waiting) this far on: nothing it left is forgotten for a
# month (JOB_RETENTION_DAYS), and the purge runs daily once it runs at all.
PURGE_AFTER_A_JOB = timedelta(days=1)

_PURGE_STATE = text("SELECT state FROM job WHERE team_id = :t AND dedupe_key = :key")
# A purge queued before PURGE_KEY (keyed by the minute it was due), or by hand with no key: the
# next run, as one under the key would be.
_PURGE_OF_OLD = text("""
    SELECT 1 FROM job WHERE team_id = :t AND kind = :k AND state = 'queued'
      AND (dedupe_key IS NULL OR dedupe_key <> :key)
    LIMIT 1
""")


async def schedule_purge_in(conn: AsyncConnection, team_id: str, when: datetime) -> None:
    """Queue the workspace's purge for `when` (by the shared clock: see `lease_now`), in the
    caller's transaction; a purge already waiting is the one that runs, due no later than
    `when` (see PURGE_KEY)."""
    params = {"t": team_id, "k": PURGE_JOB, "key": PURGE_KEY}
    if (await conn.execute(_PURGE_OF_OLD, params)).first() is not None:
        return
    await enqueue_pending_in(conn, team_id, PURGE_JOB, {}, dedupe_key=PURGE_KEY, run_after=when)


async def schedule_purge_after_in(conn: AsyncConnection, team_id: str, kind: str) -> None:
    """A job of `kind` of the workspace ended, in the caller's transaction: queue the
    workspace's purge, a day on (PURGE_AFTER_A_JOB), unless one waits or the workspace has no
    ended job for it to forget (bot.jobs.forgettable: its newest is kept, so its first job's
    end queues none). Only an import's batch queued it before: a workspace that never imported
    kept every job it ran for good.

    On every job's end, so it is cheap while a purge waits, as one almost always does (each run
    queues the next while there is work left): one look-up on the key's unique index, nothing
    written. The purge's own end queues nothing: its run queued the next itself if there was
    work left, and counting its own runs it would go on for ever (bot.jobs.retention)."""
    if kind == PURGE_JOB:
        return
    state = (await conn.execute(_PURGE_STATE, {"t": team_id, "key": PURGE_KEY})).scalar()
    if state == JobState.QUEUED:
        return
    if not await jobs_left_to_forget_in(conn, team_id, PURGE_JOB):
        return
    await schedule_purge_in(conn, team_id, await database_now_in(conn) + PURGE_AFTER_A_JOB)


async def enqueue_running_in(
    conn: AsyncConnection,
    team_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    owner: str,
    lease_seconds: float,
) -> int:
    """Add a job that this process runs itself, already claimed under its lease (the command
    line's import): killed part way, it stops renewing the lease and a worker takes the job
    over, as from a worker that died. An existing job of that key is returned untouched."""
    params = {"team": team_id, "kind": kind, "payload": json.dumps(payload), "key": dedupe_key,
              "max": _defaults.max_attempts, "owner": owner,
              **_lease_params(lease_seconds)}  # fmt: skip
    until = _lease_until(conn.dialect.name == "sqlite")
    row = (await conn.execute(_sql(f"""
        INSERT INTO job (team_id, kind, payload, dedupe_key, state, attempts, max_attempts,
                         run_after, lease_owner, lease_expires_at, progress_done,
                         progress_total, created_at, updated_at)
        VALUES (:team, :kind, :payload, :key, 'running', 1, :max, :now, :owner, {until}, 0, 0,
                :now, :now)
        ON CONFLICT (team_id, dedupe_key) DO NOTHING
        RETURNING id
    """), params)).first()  # fmt: skip
    return await _inserted_or_existing(conn, row, team_id, dedupe_key)


async def claim_by_key(db: Database, team_id: str, dedupe_key: str, owner: str,
                       lease_seconds: float) -> Job | None:  # fmt: skip
    """Take the job of that key for this process to run now (the command line: see
    bot.jobs.here; the web process: Worker.run_by_key): queued (even if not due yet), or
    running under a lease that lapsed (a run killed part way). None when there is no such job
    or a live worker runs it."""
    statement = _sql(f"""
        UPDATE job SET state = 'running', lease_owner = :owner,
            lease_expires_at = {_lease_until(db.is_sqlite)}, attempts = attempts + 1,
            updated_at = :now
        WHERE team_id = :t AND dedupe_key = :key
          AND (state = 'queued'
               OR (state = 'running' AND lease_expires_at < {lease_now(db.is_sqlite)}))
        RETURNING {_JOB_COLUMNS}
    """)
    params = {"t": team_id, "key": dedupe_key, "owner": owner, **_lease_params(lease_seconds)}
    rows = select(Job).from_statement(statement.columns(*Job.__table__.columns))  # type: ignore[attr-defined]
    async with db.session() as session:
        row = (await session.exec(rows, params=params)).first()  # type: ignore[call-overload]
        await session.commit()
    return None if row is None else row[0]


_DONE_BY_HAND = _sql("""
    UPDATE job SET state = 'done', finished_at = :now, updated_at = :now, last_error = NULL
    WHERE team_id = :t AND dedupe_key = :key AND state IN ('queued', 'failed')
    RETURNING kind
""")


async def done_by_hand_in(conn: AsyncConnection, team_id: str, dedupe_key: str) -> bool:
    """The work of the job keyed `dedupe_key` was done in this process (the command line runs
    what it queued at once): it is done, unless a worker is running it (that run finds the
    work done and finishes it itself) or it was cancelled (`jobs cancel`): its work was
    stopped then (an enrollment failed, "cancelled"), and `jobs` listed as done a job whose
    work never ran. True when it was marked done."""
    params = {"t": team_id, "key": dedupe_key, "now": utcnow()}
    done = (await conn.execute(_DONE_BY_HAND, params)).first()
    if done is not None:
        await schedule_purge_after_in(conn, team_id, str(done.kind))
    return done is not None


async def find_by_key(db: Database, team_id: str, dedupe_key: str) -> Job | None:
    async with db.session() as session:
        query = select(Job).where(Job.team_id == team_id, Job.dedupe_key == dedupe_key)
        return (await session.exec(query)).first()


async def get_job(db: Database, team_id: str, job_id: int) -> Job | None:
    async with db.session() as session:
        job = await session.get(Job, job_id)
    return job if job is not None and job.team_id == team_id else None


# Jobs with nothing left to run or to look into; the others (queued, running, failed) are
# always listed, so a failed import never drops off behind a day's home refreshes.
SETTLED = (JobState.DONE, JobState.CANCELLED)


JOBS_SHOWN = 50  # done or cancelled jobs listed unless all are asked for (newest first)


async def list_jobs(db: Database, team_id: str, limit: int | None = JOBS_SHOWN) -> list[Job]:
    """The workspace's jobs, newest first: every queued, running and failed one, and the
    newest `limit` done or cancelled ones (None: all; see `count_settled`)."""
    mine = select(Job).where(Job.team_id == team_id)
    settled = mine.where(col(Job.state).in_(SETTLED)).order_by(col(Job.id).desc())
    if limit is not None:
        settled = settled.limit(limit)
    async with db.session() as session:
        jobs = [*(await session.exec(mine.where(col(Job.state).not_in(SETTLED)))).all(),
                *(await session.exec(settled)).all()]  # fmt: skip
    return sorted(jobs, key=lambda job: job.id or 0, reverse=True)


async def count_settled(db: Database, team_id: str) -> int:
    """How many of the workspace's jobs are done or cancelled (what `list_jobs` may leave out)."""
    async with db.session() as session:
        query = select(func.count()).select_from(Job).where(
            Job.team_id == team_id, col(Job.state).in_(SETTLED))
        return int((await session.exec(query)).one())


async def claim(
    db: Database, owner: str, lease_seconds: float, kinds: Collection[str] | None = None
) -> Job | None:
    """Take the oldest runnable job (queued and due, or running with an expired lease).

    With `kinds`, only jobs of those kinds: a worker never takes a job it has no handler for.
    One statement claims and returns the row, so a claimed job is never lost between two.
    """
    if kinds is not None and not kinds:
        return None
    lock = "" if db.is_sqlite else "FOR UPDATE SKIP LOCKED"
    of_kind = "" if kinds is None else "AND kind IN :kinds"
    statement = _sql(f"""
        UPDATE job SET state = 'running', lease_owner = :owner,
            lease_expires_at = {_lease_until(db.is_sqlite)}, attempts = attempts + 1,
            updated_at = :now
        WHERE id = (
            SELECT id FROM job
            WHERE ((state = 'queued' AND run_after <= {lease_now(db.is_sqlite)})
                   OR (state = 'running' AND lease_expires_at < {lease_now(db.is_sqlite)}))
                  {of_kind}
            ORDER BY id LIMIT 1 {lock})
        RETURNING {_JOB_COLUMNS}
    """)
    params: dict[str, Any] = {"owner": owner, **_lease_params(lease_seconds)}
    if kinds is not None:
        statement = statement.bindparams(bindparam("kinds", expanding=True))
        params["kinds"] = sorted(kinds)
    rows = select(Job).from_statement(statement.columns(*Job.__table__.columns))  # type: ignore[attr-defined]
    async with db.session() as session:
        row = (await session.exec(rows, params=params)).first()  # type: ignore[call-overload]
        await session.commit()
    return None if row is None else row[0]


async def _update_owned(
    db: Database, job: Job, owner: str, assignments: str, **params: Any
) -> bool:
    """Apply `assignments` only while `owner` still holds the running job; False if it lost it."""
    async with db.begin() as conn:
        return await _update_owned_in(conn, job, owner, assignments, **params)


async def _update_owned_in(
    conn: AsyncConnection, job: Job, owner: str, assignments: str, *, when: str = "",
    **params: Any,
) -> bool:  # fmt: skip
    """`_update_owned` in the caller's transaction; `when`: SQL over the job's row (`job`)
    that must hold too."""
    result = await conn.execute(
        _sql(f"UPDATE job SET {assignments}, updated_at = :now "
             "WHERE id = :id AND lease_owner = :owner AND state = 'running'"
             f"{f' AND ({when})' if when else ''}"),
        {"id": job.id, "owner": owner, "now": utcnow(), **params},
    )  # fmt: skip
    return result.rowcount == 1


@dataclass(frozen=True, slots=True)
class Done:
    """A job's work recorded complete, as its kind tells it: SQL over the job's row (`job`),
    e.g. its import's batch `done` (written with the apply's last write), and the
    parameters it names, each `done_...` (apart from those of the statements it goes in).

    A worker that gives up on a job (every attempt's worker died, or its last attempt
    failed before its handler ended it: bot.jobs.worker.GivingUp) ends it done when this
    holds (`finish` with it): the run that did the work was killed before it marked the job
    done, or that marking failed, and the job said "failed" of an import whose contacts were
    all in."""

    sql: str
    params: dict[str, Any]


async def work_complete(db: Database, job: Job, done: Done) -> bool:
    """Whether `done` holds of the job (its work recorded complete) now."""
    async with db.begin() as conn:
        found = await conn.execute(
            text(f"SELECT 1 FROM job WHERE id = :id AND team_id = :t AND ({done.sql})"),
            {"id": job.id, "t": job.team_id, **done.params},
        )
        return found.first() is not None


# A job's row taken for the rest of a transaction while it is still running (held by `owner`
# if given): on PostgreSQL the row stays locked until the transaction ends, so a `jobs cancel`
# (bot/imports/cancel.py, which takes the job's row first) lands wholly before it, and is
# seen, or wholly after, and sees what it wrote.
_TAKE_RUNNING = "UPDATE job SET updated_at = updated_at WHERE id = :job AND team_id = :t " \
                "AND state = 'running'"
_TAKE = {False: text(_TAKE_RUNNING + " RETURNING id"),
         True: text(_TAKE_RUNNING + " AND lease_owner = :owner RETURNING id")}


async def take_running_in(conn: AsyncConnection, team_id: str, job_id: int | None,
                          owner: str | None = None) -> bool:  # fmt: skip
    """Whether the job is still running (not cancelled; held by `owner` if given), its row
    held for the rest of the caller's transaction; True without a job (work run outside
    one)."""
    if job_id is None:
        return True
    params = {"job": job_id, "t": team_id, "owner": owner}
    return (await conn.execute(_TAKE[owner is not None], params)).first() is not None


def worker_of(lease_owner: str | None) -> str | None:
    """The worker (its row in the worker list) a lease owner names: a worker running jobs
    side by side holds each under a name of its own, "<worker>#<n>" (bot/jobs/worker.py)."""
    return None if lease_owner is None else lease_owner.partition("#")[0]


async def heartbeat(db: Database, job: Job, owner: str, lease_seconds: float) -> bool:
    return await _update_owned(db, job, owner, f"lease_expires_at = {_lease_until(db.is_sqlite)}",
                               **_lease_params(lease_seconds))  # fmt: skip


async def report_progress(db: Database, job: Job, owner: str, done: int, total: int) -> bool:
    return await _update_owned(
        db, job, owner, "progress_done = :done, progress_total = :total", done=done, total=total
    )


async def finish(db: Database, job: Job, owner: str, complete: Done | None = None) -> bool:
    """Mark the job done while `owner` holds it (False if it lost it), its workspace's purge
    queued in the same transaction (`schedule_purge_after_in`). With `complete`, only if its
    work is recorded complete (False if not), decided in the same UPDATE: a job given up on
    (see Done)."""
    when, params = ("", {}) if complete is None else (complete.sql, complete.params)
    async with db.begin() as conn:
        done = await _update_owned_in(
            conn, job, owner, "state = 'done', finished_at = :now, lease_owner = NULL, "
            "lease_expires_at = NULL, last_error = NULL", when=when, **params
        )  # fmt: skip
        if done:
            await schedule_purge_after_in(conn, job.team_id, job.kind)
        return done


async def release(db: Database, job: Job, owner: str) -> bool:
    """Hand a job back untouched by this attempt (graceful shutdown): it runs again at once."""
    return await _leave_owned(
        db, job, owner, "state = 'queued', attempts = attempts - 1, lease_owner = NULL, "
        f"lease_expires_at = NULL, run_after = {lease_now(db.is_sqlite)}", outcome="handed back"
    )  # fmt: skip


async def fail(
    db: Database, job: Job, owner: str, error: str, *, retry_base: float, permanent: bool = False
) -> bool:
    """Record the error; retry later with exponential backoff, or give up after max attempts.
    The retry is due by the shared clock (see `lease_now`): a worker whose clock was behind
    stamped it due early, by its skew."""
    if permanent or job.attempts >= job.max_attempts:
        return await _leave_owned(
            db, job, owner, "state = 'failed', last_error = :error, finished_at = :now, "
            "lease_owner = NULL, lease_expires_at = NULL", outcome=error, ends=True,
            error=error[:4000]
        )  # fmt: skip
    return await _leave_owned(
        db, job, owner, "state = 'queued', last_error = :error, "
        f"run_after = {due_in(db.is_sqlite, 'run_after')}, lease_owner = NULL, "
        "lease_expires_at = NULL", outcome=error, error=error[:4000],
        **due_params(db.is_sqlite, "run_after", retry_delay(retry_base, job.attempts)),
    )  # fmt: skip


_SUPERSEDED = ("state = 'done', finished_at = :now, lease_owner = NULL, "
               "lease_expires_at = NULL, last_error = :note")  # fmt: skip


async def _leave_owned(db: Database, job: Job, owner: str, assignments: str, *, outcome: str,
                       ends: bool = False, **params: Any) -> bool:  # fmt: skip
    """`_update_owned` for a run that ends without the job's work done (failed, handed back).

    A job of `enqueue_pending_in` whose key a newer copy took while it ran would wait in the
    queue beside that copy, keyless: during a Slack outage one more per retry, each replayed
    once Slack was back. The copy started after this run and does the same work from newer
    data, so this job is done, superseded. Only when that copy gave up or was cancelled does
    this one go on, with the key back, for later reports to join.

    A job that `ends` (fails for good, or superseded) has its workspace's purge queued in the
    same transaction (`schedule_purge_after_in`: nothing is written while one waits)."""
    async with db.begin() as conn:
        mine = (await conn.execute(
            _sql("UPDATE job SET updated_at = :now WHERE id = :id AND lease_owner = :owner "
                 "AND state = 'running' RETURNING dedupe_key"),
            {"id": job.id, "owner": owner, "now": utcnow()},
        )).first()  # fmt: skip
        if mine is None:
            return False
        values = {"id": job.id, "now": utcnow(), **params}
        if (key := pending_key(mine.dedupe_key)) is not None:
            if (newer := await _copy_at_work_in(conn, job.team_id, key)) is not None:
                note = f"superseded by job {newer}, queued while this one ran ({outcome})"
                assignments, values["note"] = _SUPERSEDED, note[:4000]
            else:
                assignments, values["key"] = f"{assignments}, dedupe_key = :key", key
        await conn.execute(_sql(f"UPDATE job SET {assignments}, updated_at = :now "
                                "WHERE id = :id"), values)  # fmt: skip
        if ends:
            await schedule_purge_after_in(conn, job.team_id, job.kind)
    return True


async def _copy_at_work_in(conn: AsyncConnection, team_id: str, key: str) -> int | None:
    """The job holding `key` that is queued, running or done (see `_leave_owned`), if any; one
    that failed or was cancelled gives the key up."""
    params = {"team": team_id, "key": key, "now": utcnow()}
    await conn.execute(_sql(f"UPDATE job SET dedupe_key = {_RETIRE}, updated_at = :now "
                            "WHERE team_id = :team AND dedupe_key = :key "
                            "AND state IN ('failed', 'cancelled')"), params)  # fmt: skip
    holder = await conn.execute(
        text("SELECT id FROM job WHERE team_id = :team AND dedupe_key = :key"),
        {"team": team_id, "key": key},
    )
    return holder.scalar()


def retry_delay(retry_base: float, attempts: int) -> timedelta:
    """`retry_base` doubled per failed attempt, at most MAX_BACKOFF. Capped as a number of
    seconds before the timedelta is built: a job allowed some 45 attempts (JOB_MAX_ATTEMPTS)
    would otherwise ask timedelta for more days than it holds (OverflowError)."""
    doublings = min(max(attempts - 1, 0), 64)
    return timedelta(seconds=min(retry_base * 2.0**doublings, MAX_BACKOFF.total_seconds()))


async def cancel(db: Database, team_id: str, job_id: int) -> Job | None:
    """Cancel a queued or running job (a running one stops at its next checkpoint)."""
    async with db.begin() as conn:
        await cancel_jobs_in(conn, team_id, "id = :id AND state IN ('queued', 'running')",
                             id=job_id)  # fmt: skip
    return await get_job(db, team_id, job_id)


async def cancel_jobs_in(conn: AsyncConnection, team_id: str, where: str,
                         **params: Any) -> list[int]:  # fmt: skip
    """Cancel the workspace's jobs that `where` (SQL over the job table, with `params`)
    picks, in the caller's transaction; their ids. Every cancel goes through here, so a
    cancelled job's end queues its workspace's purge as any other end does
    (`schedule_purge_after_in`): `jobs cancel` and a Slack cancel wrote their own UPDATE,
    and skipped it."""
    rows = (await conn.execute(
        _sql("UPDATE job SET state = 'cancelled', finished_at = :now, updated_at = :now "
             f"WHERE team_id = :team AND ({where}) RETURNING id, kind"),
        {**params, "team": team_id, "now": utcnow()},
    )).all()  # fmt: skip
    for kind in {str(row.kind) for row in rows}:
        await schedule_purge_after_in(conn, team_id, kind)
    return [int(row.id) for row in rows]


# The registry of live workers: which job kinds some running process can take.


def stale_after(lease_seconds: float) -> timedelta:
    """A worker row not refreshed for this long is a dead worker's (workers refresh every <=5 s)."""
    return timedelta(seconds=max(3 * lease_seconds, 15.0))


async def register_worker(
    db: Database, owner: str, kinds: Collection[str], *, pid: int, host: str
) -> None:
    """Record (or refresh) a live worker and the kinds it runs: an upsert, safe to repeat.
    Stamped, and later compared (live_workers, forget_stale_workers), by the clock leases
    are (lease_now): each host's own made `jobs` on a host a minute or two ahead call a live
    worker dead, and its jobs "waiting for a worker"."""
    async with db.begin() as conn:
        await _register_in(conn, owner, kinds, pid=pid, host=host)


async def _register_in(conn: AsyncConnection, owner: str, kinds: Collection[str], *, pid: int,
                       host: str) -> None:  # fmt: skip
    """`register_worker` in the caller's transaction."""
    now = lease_now(conn.dialect.name == "sqlite")
    await conn.execute(
        _sql(f"""
            INSERT INTO worker_process (owner, kinds, pid, host, started_at, seen_at)
            VALUES (:owner, :kinds, :pid, :host, {now}, {now})
            ON CONFLICT (owner) DO UPDATE SET kinds = excluded.kinds,
                seen_at = excluded.seen_at
        """),
        {"owner": owner, "kinds": ",".join(sorted(kinds)), "pid": pid, "host": host,
         "now": utcnow()},
    )  # fmt: skip


async def forget_stale_workers(db: Database, older_than: timedelta) -> int:
    """Delete rows of workers that stopped refreshing (killed, or their host went away)."""
    async with db.begin() as conn:
        result = await conn.execute(
            _sql("DELETE FROM worker_process WHERE seen_at < :cutoff"),
            {"cutoff": await database_now(db) - older_than},
        )
        return int(result.rowcount or 0)


async def refresh_worker(db: Database, owner: str) -> bool:
    """Mark a live worker seen now; False when its row is gone: another worker's start forgot
    it as dead (not seen for `stale_after`: a long database outage, a stopped VM). It must
    then be recorded again as a start is (bot.jobs.worker: `worker_started_in`), since what
    its absence changed (App Home's "no running worker can send") was said then."""
    now = lease_now(db.is_sqlite)
    async with db.begin() as conn:
        seen = await conn.execute(_sql(f"UPDATE worker_process SET seen_at = {now} "
                                       "WHERE owner = :owner"),
                                  {"owner": owner, "now": utcnow()})  # fmt: skip
    return seen.rowcount == 1


async def unregister_worker(db: Database, owner: str) -> None:
    async with db.begin() as conn:
        await conn.execute(
            text("DELETE FROM worker_process WHERE owner = :owner"), {"owner": owner}
        )


# A worker's start and its clean stop change which kinds some live worker can run, and what
# shows it (App Home: invites waiting for a sender) is told in the transaction that makes the
# change (bot.jobs.worker). On PostgreSQL each such transaction takes this lock first, so they
# run one after another: two workers stopping at once (serve's children on SIGTERM) each saw
# the other's row, not yet deleted, and neither said that no worker could run their kinds any
# more. Keyed by the schema (deployments sharing a server keep their own workers), and in the
# one-number key space, apart from the workspaces' contacts locks (models/locks.py). SQLite
# needs none: one writer at a time, and each transaction writes first (its DELETE).
_WORKERS_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended("
                     "'worker_process:' || coalesce(current_schema(), ''), 0))")  # fmt: skip
_TRY_WORKERS_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended("
                         "'worker_process:' || coalesce(current_schema(), ''), 0))")  # fmt: skip
_ANY_STALE = _sql("SELECT 1 FROM worker_process WHERE seen_at < :cutoff AND owner <> :owner "
                  "LIMIT 1")  # fmt: skip
_FORGET_OTHERS_STALE = _sql("DELETE FROM worker_process WHERE seen_at < :cutoff "
                            "AND owner <> :owner RETURNING kinds")  # fmt: skip
_OTHERS_LIVE = _sql("SELECT kinds FROM worker_process WHERE seen_at >= :cutoff "
                    "AND owner <> :owner")  # fmt: skip


async def worker_started_in(
    conn: AsyncConnection, owner: str, kinds: Collection[str], *, pid: int, host: str,
    older_than: timedelta,
) -> frozenset[str]:  # fmt: skip
    """Record a worker that starts, in the caller's transaction, forgetting the rows of workers
    not seen within `older_than` (killed, their host gone: `stale_after`); the kinds this
    changed: those the worker brings that no other live worker ran, and those only a forgotten
    worker ran. (A forgotten worker stopped counting once its row went stale, and nothing said
    so then: this start is the first moment anything notices.)"""
    if conn.dialect.name == "postgresql":
        await conn.execute(_WORKERS_LOCK)
    cutoff = await database_now_in(conn) - older_than
    gone = await _forgotten_in(conn, owner, cutoff)
    before = await _other_live_kinds_in(conn, owner, cutoff)
    await _register_in(conn, owner, kinds, pid=pid, host=host)
    return (frozenset(kinds) | gone) - before


async def dead_workers_forgotten_in(conn: AsyncConnection, owner: str, *,
                                    older_than: timedelta) -> frozenset[str]:  # fmt: skip
    """Forget the rows of workers not seen within `older_than`, but `owner`'s (the worker
    asking), in the caller's transaction, as a start does (`worker_started_in`); the kinds no
    live worker runs any more. A live worker asks at each refresh of its row: a sender that
    died with nobody starting after it was noticed by nothing, and App Home never said its
    invites wait. Cheap when there is nothing to forget (a read, no lock, no write: SQLite's
    one writer is an import's for seconds at a time); on PostgreSQL the workers' lock is only
    tried, and the work left to the next refresh if another start, stop or refresh holds it:
    waited for, a session holding it (a host cut off mid-transaction) stopped every worker's
    refresh until they all looked dead."""
    cutoff = await database_now_in(conn) - older_than
    params = {"cutoff": cutoff, "owner": owner}
    if (await conn.execute(_ANY_STALE, params)).first() is None:
        return frozenset()
    if conn.dialect.name == "postgresql" and not (await conn.execute(_TRY_WORKERS_LOCK)).scalar():
        return frozenset()
    gone = await _forgotten_in(conn, owner, cutoff)
    if not gone:
        return gone
    return gone - await _other_live_kinds_in(conn, "", cutoff)


async def _forgotten_in(conn: AsyncConnection, owner: str, cutoff: datetime) -> frozenset[str]:
    """Delete the rows of workers not seen since `cutoff` but `owner`'s; the kinds they ran."""
    forgotten = await conn.execute(_FORGET_OTHERS_STALE, {"cutoff": cutoff, "owner": owner})
    return frozenset().union(*(_kinds_of(row.kinds) for row in forgotten))


async def worker_stopped_in(conn: AsyncConnection, owner: str, kinds: Collection[str], *,
                            older_than: timedelta) -> frozenset[str]:  # fmt: skip
    """Remove a worker that stops cleanly, in the caller's transaction; the kinds it ran that
    no other worker seen within `older_than` runs (no live worker can run them any more)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_WORKERS_LOCK)
    await conn.execute(text("DELETE FROM worker_process WHERE owner = :owner"), {"owner": owner})
    cutoff = await database_now_in(conn) - older_than
    return frozenset(kinds) - await _other_live_kinds_in(conn, owner, cutoff)


async def _other_live_kinds_in(conn: AsyncConnection, owner: str,
                               cutoff: datetime) -> frozenset[str]:  # fmt: skip
    """The kinds the workers seen since `cutoff` run, but `owner`."""
    rows = await conn.execute(_OTHERS_LIVE, {"cutoff": cutoff, "owner": owner})
    return frozenset().union(*(_kinds_of(row.kinds) for row in rows))


def _kinds_of(kinds: str | None) -> frozenset[str]:
    """A `worker_process.kinds` column's kinds (see WorkerProcess.kind_set)."""
    return frozenset(kind for kind in (kinds or "").split(",") if kind)


async def live_workers(db: Database, older_than: timedelta) -> list[WorkerProcess]:
    """Workers seen within `older_than` (see `stale_after`), oldest first."""
    now = await database_now(db)  # the clock their rows are stamped with (register_worker)
    async with db.session() as session:
        query = (
            select(WorkerProcess)
            .where(WorkerProcess.seen_at >= now - older_than)
            .order_by(col(WorkerProcess.started_at))
        )
        return list((await session.exec(query)).all())


async def live_kinds(db: Database, older_than: timedelta) -> frozenset[str]:
    """Every job kind that at least one live worker can run."""
    return frozenset().union(*(w.kind_set for w in await live_workers(db, older_than)))


# The owners of running jobs whose lease lapsed: their workers are dead, though their rows
# may not be stale yet (a live worker renews every third of a lease). Of every workspace's
# jobs: workers are shared, and one killed holding another workspace's job counted as alive
# for this one's.
_LAPSED_OWNERS = _sql("""
    SELECT DISTINCT lease_owner FROM job WHERE state = 'running' AND lease_expires_at < :now
""")


async def runnable_kinds(db: Database, lease_seconds: float, *,
                         now: datetime | None = None) -> frozenset[str]:  # fmt: skip
    """The job kinds some live worker can take: the workers seen within
    `stale_after(lease_seconds)`, but those whose lease on a running job lapsed by
    `now` (`database_now` unless given: a caller that judged leases lapsed at its own `now`
    passes it, so both agree). A dead worker resumes nothing, and its row stays fresh a while.

    The one rule of "a job waits for a worker": `referral-bot jobs` says so of each queued
    job whose kind isn't among these, and a campaign's due invites wait for a sender while
    the send job's isn't (bot.campaigns.invites.waiting_for_a_sender): one rule, so the two
    never tell a different story of the same workers."""
    async with db.begin() as conn:  # now, read in the same transaction when not given
        now = now or (utcnow() if db.is_sqlite else await database_now_in(conn))
        rows = await conn.execute(_LAPSED_OWNERS, {"now": now})
        dead = {worker_of(owner) for (owner,) in rows}
    workers = await live_workers(db, stale_after(lease_seconds))
    return frozenset().union(*(w.kind_set for w in workers if w.owner not in dead))
