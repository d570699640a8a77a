"""Doing a thing once per workspace, across retries and processes: a unique key in the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from bot.jobs.queue import shared_now
from models import Database, SeenKey
from models.db import upsert

log = logging.getLogger(__name__)


def _now(conn: AsyncConnection, earlier_by: timedelta = timedelta(0)) -> ColumnElement[datetime]:
    """Now (less `earlier_by`) by the clock keys are stamped and judged stale with: the one
    job leases go by (on PostgreSQL the server's). Each process's own clock let a host
    running 15 s ahead take a live poster's key as stale, and post a second time."""
    return shared_now(conn.dialect.name == "sqlite", earlier_by)


async def first_time(db: Database, team_id: str, key: str) -> bool:
    """True the first time `key` is seen for this workspace, False on every repeat."""
    async with db.begin() as conn:
        return await first_time_in(conn, team_id, key)


async def first_time_in(conn: AsyncConnection, team_id: str, key: str) -> bool:
    """first_time() in the caller's transaction, for a thing done in that same transaction
    (an audit entry): a repeat leaves the transaction usable, its key untouched."""
    stmt = upsert(conn, SeenKey).values(team_id=team_id, key=key[:200], created_at=_now(conn))
    return bool((await conn.execute(stmt.on_conflict_do_nothing())).rowcount)


async def was_seen(db: Database, team_id: str, key: str) -> bool:
    """Whether `key` was seen for this workspace (first_time() returned True for it): a read
    only, which waits for no writer, on the database's reader (it runs before Slack's ack:
    no pool checkout or transaction)."""
    return bool(await db.reader.rows("SELECT 1 FROM seen_key WHERE team_id = :t AND key = :k",
                                     {"t": team_id, "k": key[:200]}))  # fmt: skip


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
                                              created_at=_now(conn)))  # fmt: skip


async def hold(db: Database, team_id: str, key: str, *, stale_after: timedelta) -> bool:
    """Take `key` while a thing is under way (forget() it when done): True if this caller
    took it, False while someone else holds it. A key older than `stale_after` belongs to a
    holder that died without letting go (a process killed mid-way): it is taken over."""
    async with db.begin() as conn:
        await conn.execute(
            delete(SeenKey).where(col(SeenKey.team_id) == team_id, col(SeenKey.key) == key[:200],
                                  col(SeenKey.created_at) < _now(conn, stale_after))
        )  # fmt: skip
    return await first_time(db, team_id, key)


@asynccontextmanager
async def held(db: Database, team_id: str, key: str, *,
               stale_after: timedelta) -> AsyncIterator[bool]:  # fmt: skip
    """hold() for the length of a block: yields whether this caller took `key` (False: someone
    else's block is under way, and this one says so instead), and lets go of it when the block
    ends, by an error too, so the next try isn't told to wait for a thing that failed."""
    mine = await hold(db, team_id, key, stale_after=stale_after)
    try:
        yield mine
    finally:
        if mine:
            await forget(db, team_id, key)


async def taken(db: Database, team_id: str, key: str, *,
                within: timedelta | None = None) -> bool:  # fmt: skip
    """Whether `key` is taken for this workspace; with `within`, taken (or renewed) less
    than that long ago, by the clock hold() judges a key stale by: a holder still in time,
    not a dead one's key that hold(stale_after=within) would take over. Reads only."""
    async with db.begin() as conn:
        where = [_row(team_id, key)]
        if within is not None:
            where.append(col(SeenKey.created_at) >= _now(conn, within))
        return (await conn.execute(select(SeenKey.key).where(*where))).first() is not None


# -- posting once: a post and its key, with no crash window between them --------------------
#
# A post whose key was taken before it (first_time, then post, forget() if it raises) was lost
# for good when the process died in between (SIGKILL, the machine gone): the key stayed, and
# the job run again once its lease lapsed found it and skipped. post_once() takes the key with
# a second one beside it, the posting key, dropped once the post landed; the posting key of a
# live poster is kept fresh while it posts, so one that went stale belongs to a poster that
# died, and the next attempt takes it over and posts. The key itself is taken with the
# posting key, not after the post, so that what reads it (bot.notify.reading_again_in: "the
# thread has, or is getting, this reading's skipped rows") sees it as before.
#
#   key, no posting key      posted
#   key and posting key      being posted; stale: its poster died, post it again
#   neither                  not posted (a failed post gives both back)
POSTING = "posting:"


class PostUnderWay(Exception):
    """Another live process is making this post right now: try again later, not never (its
    post may yet fail, and then it is this caller's to make)."""


def posting_key(key: str) -> str:
    """The key a poster holds beside `key` while its post is on its way."""
    return f"{POSTING}{key}"


def posting_stale(lease_seconds: float) -> timedelta:
    """When a posting key is a dead poster's: half a job lease (JOB_LEASE_SECONDS) without
    being kept fresh. A job whose worker died is run again once its lease lapsed, at least
    two thirds of a lease after its last renewal (renewed every third), so that run takes the
    dead poster's key over at once; a live poster renews its key every third of this."""
    return timedelta(seconds=lease_seconds / 2)


def _row(team_id: str, key: str) -> ColumnElement[bool]:
    return (col(SeenKey.team_id) == team_id) & (col(SeenKey.key) == key[:200])


async def post_once(db: Database, team_id: str, key: str, post: Callable[[], Awaitable[object]],
                    *, stale_after: timedelta,
                    due: Callable[[], Awaitable[bool]] | None = None) -> bool:  # fmt: skip
    """Make `post` once per `key` of the workspace: True if this call made it, False if it
    was made already. Raises PostUnderWay while another live poster makes it; a dead
    poster's key (its posting key gone stale) is taken over, and the post made again.
    `due`, asked once the key is taken, may find the post not wanted any more: nothing is
    posted and the key is let go. If `post` raises, the key is let go too (the next attempt
    posts) and the error raised."""
    if not await _take(db, team_id, key, stale_after):
        return False
    try:
        wanted = due is None or await due()
        if wanted:
            async with _kept_fresh(db, team_id, posting_key(key), stale_after / 3):
                await post()
    except BaseException:
        await _let_go(db, team_id, key)
        raise
    if not wanted:
        await _let_go(db, team_id, key)
        return False
    try:
        await forget(db, team_id, posting_key(key))  # posted: the key alone says so
    except Exception:  # raised, the caller would try again, and post again once it is stale
        log.exception("%s of team %s posted, but its posting key stays: an attempt after "
                      "it went stale would post it again", key, team_id)  # fmt: skip
    return True


async def _take(db: Database, team_id: str, key: str, stale_after: timedelta) -> bool:
    """Take `key` and its posting key in one transaction; False if the post was made."""
    posting = posting_key(key)
    try:
        async with db.begin() as conn:
            died = await conn.execute(delete(SeenKey).where(
                _row(team_id, posting),
                col(SeenKey.created_at) < _now(conn, stale_after)))  # fmt: skip
            await conn.execute(insert(SeenKey).values(team_id=team_id, key=posting[:200],
                                                      created_at=_now(conn)))  # fmt: skip
            done = (await conn.execute(select(SeenKey.key).where(_row(team_id, key)))).first()
            if done is not None and not died.rowcount:
                await forget_in(conn, team_id, posting)  # made, by whoever held it last
                return False
            if done is None:
                await conn.execute(insert(SeenKey).values(team_id=team_id, key=key[:200],
                                                          created_at=_now(conn)))  # fmt: skip
    except IntegrityError:  # a live poster holds it (or took it over from a dead one first)
        raise PostUnderWay(f"{key} is being posted by another process") from None
    return True


async def _let_go(db: Database, team_id: str, key: str) -> None:
    """Not posted: the key and its posting key go together, so the next attempt posts."""
    async with db.begin() as conn:
        await forget_in(conn, team_id, key)
        await forget_in(conn, team_id, posting_key(key))


@asynccontextmanager
async def _kept_fresh(db: Database, team_id: str, key: str,
                      every: timedelta) -> AsyncIterator[None]:  # fmt: skip
    """The posting key renewed every `every` while the post is on its way: a slow post (a
    rate limit's wait, the client's retries) is never taken for a dead one."""
    renewing = asyncio.create_task(_renew(db, team_id, key, every.total_seconds()))
    try:
        yield
    finally:
        renewing.cancel()
        await asyncio.wait([renewing])


async def _renew(db: Database, team_id: str, key: str, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            async with db.begin() as conn:
                kept = await conn.execute(update(SeenKey).where(_row(team_id, key))
                                          .values(created_at=_now(conn)))  # fmt: skip
        except Exception:  # the database busy or away: the post goes on, renewed next time
            log.warning("renewing %s of team %s failed; trying again in %.1f s", key, team_id,
                        every, exc_info=True)  # fmt: skip
            continue
        if not kept.rowcount:
            return  # taken over (this process was stalled longer than it may be): so be it
