"""bot.once.post_once: a post made once per key, with no window where a poster killed between
the key and the post loses the post for good, and none where a live poster is taken over."""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.once import PostUnderWay, hold, post_once
from models import Database
from tests.conftest import BACKEND

TEAM = "T0001"
KEY = "greeting:1"
STALE = timedelta(seconds=1)

# a process that takes KEY and dies with its post on the way (SIGKILL): no `except`, no
# `finally` of it runs
KILLED_POSTING = """
import asyncio, sys
from datetime import timedelta
from bot.once import post_once
from models import Database

async def post() -> None:
    print("posting", flush=True)
    await asyncio.sleep(3600)

async def main() -> None:
    db = Database(sys.argv[1], schema=sys.argv[2] or None)
    await post_once(db, "T0001", sys.argv[3], post, stale_after=timedelta(seconds=1))

asyncio.run(main())
"""


async def _keys(db: Database) -> list[str]:
    async with db.begin() as conn:
        found = await conn.execute(text("SELECT key FROM seen_key WHERE team_id = :t "
                                        "ORDER BY key"), {"t": TEAM})  # fmt: skip
        return list(found.scalars())


async def _taken_at(db: Database) -> datetime:
    async with db.begin() as conn:
        return (await conn.execute(
            text("SELECT created_at FROM seen_key WHERE team_id = :t AND key = :k")
            .columns(created_at=UTCDateTime()), {"t": TEAM, "k": f"posting:{KEY}"},
        )).scalar_one()  # fmt: skip


class Poster:
    """A post that records itself, and can be made to wait or fail."""

    def __init__(self) -> None:
        self.made = 0
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.go.set()
        self.fail = False

    async def __call__(self) -> None:
        self.started.set()
        await self.go.wait()
        if self.fail:
            raise ConnectionError("Slack unreachable")
        self.made += 1

    async def once(self, db: Database) -> bool:
        return await post_once(db, TEAM, KEY, self, stale_after=STALE)


async def test_a_post_is_made_once_and_then_the_key_alone_says_so(db: Database) -> None:
    post = Poster()
    assert await post.once(db) is True
    assert await post.once(db) is False
    assert post.made == 1
    assert await _keys(db) == [KEY]


async def test_a_failed_post_lets_its_key_go_and_the_next_attempt_makes_it(
    db: Database,
) -> None:
    post = Poster()
    post.fail = True
    with pytest.raises(ConnectionError):
        await post.once(db)
    assert await _keys(db) == []
    post.fail = False
    assert await post.once(db) is True
    assert post.made == 1


async def test_a_post_no_longer_due_is_not_made_and_takes_no_key(db: Database) -> None:
    post = Poster()

    async def not_due() -> bool:
        return False

    assert await post_once(db, TEAM, KEY, post, stale_after=STALE, due=not_due) is False
    assert post.made == 0 and not post.started.is_set()
    assert await _keys(db) == []


async def test_a_poster_killed_with_its_post_on_the_way_is_taken_over_once_stale(
    db: Database, db_env: dict[str, str],
) -> None:
    """Killed after the key was taken and before the post landed, the poster leaves the
    key and its posting key: the next attempt after they went stale makes the post, once."""
    killed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_POSTING, db_env["DATABASE_URL"],
        db_env.get("DATABASE_SCHEMA", ""), KEY, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert killed.stdout is not None
        assert await asyncio.wait_for(killed.stdout.readline(), 120) == b"posting\n"
    finally:
        killed.send_signal(signal.SIGKILL)
        await killed.wait()
    assert await _keys(db) == [KEY, f"posting:{KEY}"]  # what tests/handlers recreate

    await asyncio.sleep((STALE * 1.2).total_seconds())  # its posting key kept fresh no more
    post = Poster()
    assert await post.once(db) is True
    assert await post.once(db) is False
    assert post.made == 1
    assert await _keys(db) == [KEY]


async def test_a_live_slow_poster_is_never_taken_over_and_the_post_is_made_once(
    db: Database,
) -> None:
    """A post slower than the stale limit (a rate limit's wait, the client's retries): its
    posting key is kept fresh, so another attempt is told to try again later, not made to
    post it too; once the slow one landed, nothing more is posted."""
    slow = Poster()
    slow.go.clear()
    posting = asyncio.create_task(slow.once(db))
    await slow.started.wait()
    began = await _taken_at(db)
    await asyncio.sleep((STALE * 2).total_seconds())
    assert await _taken_at(db) > began  # renewed while it posts
    other = Poster()
    with pytest.raises(PostUnderWay):
        await other.once(db)
    assert not other.started.is_set()
    slow.go.set()
    assert await posting is True
    assert await other.once(db) is False
    assert (slow.made, other.made) == (1, 0)
    assert await _keys(db) == [KEY]


async def test_a_live_posters_failure_leaves_the_post_to_the_one_told_to_try_later(
    db: Database,
) -> None:
    failing = Poster()
    failing.go.clear()
    failing.fail = True
    posting = asyncio.create_task(failing.once(db))
    await failing.started.wait()
    later = Poster()
    with pytest.raises(PostUnderWay):
        await later.once(db)
    failing.go.set()
    with pytest.raises(ConnectionError):
        await posting
    assert await later.once(db) is True
    assert later.made == 1


def _clock_ahead(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's clock runs `seconds` ahead of the database server's (another host's
    clock, as NTP left it): every clock bot.once may read here."""
    from models.clock import utcnow

    def ahead() -> datetime:
        return utcnow() + timedelta(seconds=seconds)

    for name in ("bot.once", "bot.jobs.queue"):
        module = importlib.import_module(name)
        if hasattr(module, "utcnow"):
            monkeypatch.setattr(module, "utcnow", ahead)


@pytest.mark.skipif(BACKEND != "postgres", reason="one host shares SQLite's file and clock")
async def test_a_host_whose_clock_runs_ahead_never_takes_over_a_live_poster(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Posting keys were stamped and judged stale by each process's own clock: a host 15 s
    ahead saw a live poster's freshly renewed key as 15 s old, took it over and posted too
    (two progress replies, two reports). They go by the database server's clock now, as job
    leases do."""
    slow = Poster()
    slow.go.clear()
    posting = asyncio.create_task(slow.once(db))
    await slow.started.wait()
    other = Poster()
    with monkeypatch.context() as m:
        _clock_ahead(m, 15)
        with pytest.raises(PostUnderWay):
            await other.once(db)
    slow.go.set()
    assert await posting is True
    assert (slow.made, other.made) == (1, 0)


@pytest.mark.skipif(BACKEND != "postgres", reason="one host shares SQLite's file and clock")
async def test_a_host_whose_clock_runs_ahead_never_takes_a_held_key(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`hold` (an export under way, a review being posted) judged a key stale by the clock
    of whoever asked: a host 15 s ahead took a 10 s hold taken a moment before by another."""
    assert await hold(db, TEAM, "exporting:1", stale_after=timedelta(seconds=10)) is True
    with monkeypatch.context() as m:
        _clock_ahead(m, 15)
        assert await hold(db, TEAM, "exporting:1", stale_after=timedelta(seconds=10)) is False
    assert await _keys(db) == ["exporting:1"]
