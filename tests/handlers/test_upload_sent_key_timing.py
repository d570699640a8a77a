"""*Review import* on an upload offer when the database goes away between the click taking the
review's posting key and the review going to Slack.

The key saying an upload's review was sent to Slack (review_sent_key) was taken with the
posting key, before drawing the review read the import. With the database away from those
reads, letting both keys go failed too (the same outage): from then on every click was told
the review was "posted here … while the bot's database was unavailable", though nothing had
been posted, and the file could only be reviewed by uploading it again. Now the sent key is
taken just before the post: the posting key alone stays, and the first click after
POSTING_GIVEN_UP posts the review, as for a process that died before posting it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from handlers.ids import Action
from models import Database
from models.staging import staging_path
from tests.handlers.conftest import LEAD, REP, Harness, running_app
from tests.handlers.test_upload_offer_given_up import (
    _recorded,
    _reviews,
    _two_minutes_on,
    offered,
)
from tests.imports.outage import Outage
from tests.jobs.test_worker_faults import JobTableLock, impatient

# how long the app's statements wait for a lock before giving up (test_worker_faults.impatient):
# long enough for the test to see the click waiting and take the rest of the database away
# meanwhile
GIVES_UP_MS = 1500


class StagedRowsAway(JobTableLock):
    """Another client keeping every reader out of the staged rows, which drawing a review
    counts: SQLite's staging file held in an exclusive lock (its rollback journal lets no
    reader in, unlike the main file's WAL), PostgreSQL's staged_row table locked ACCESS
    EXCLUSIVE. Nothing else is kept out: the click takes its keys as usual. Let go as
    JobTableLock is (`release`)."""

    async def hold(self) -> None:
        if self.db.is_sqlite:
            # a connection opened now would wait to attach the staging file: the app's
            # are all open beforehand, as they are in a process that ran a while
            await _connections_open(self.db)
            self.sqlite = sqlite3.connect(staging_path(_main_file(self.db)), timeout=10,
                                          isolation_level=None, check_same_thread=False)
            await asyncio.to_thread(self.sqlite.execute, "BEGIN EXCLUSIVE")
        else:
            self.conn = await self.db.engine.connect()
            await self.conn.execute(text("LOCK TABLE staged_row IN ACCESS EXCLUSIVE MODE"))

    async def waited_on(self, team_id: str, key: str, clicks: int = 1,
                        timeout: float = 10.0) -> None:  # fmt: skip
        """Until `key` is taken and `clicks` clicks wait to read the staged rows (PostgreSQL:
        their lock requests are seen; SQLite, whose waits can't be seen: half a second
        after)."""
        deadline = time.monotonic() + timeout
        while not await _taken(self.db, team_id, key):
            assert time.monotonic() < deadline, f"{key} was never taken"
            await asyncio.sleep(0.01)
        if self.db.is_sqlite:
            await asyncio.sleep(0.5)
            return
        waiting = text("SELECT COUNT(*) FROM pg_locks WHERE NOT granted "
                       "AND relation = to_regclass('staged_row')")  # fmt: skip
        while True:
            async with self.db.begin() as conn:
                if (await conn.execute(waiting)).scalar_one() >= clicks:
                    return
            assert time.monotonic() < deadline, "no click waited for the staged rows"
            await asyncio.sleep(0.01)


def _main_file(db: Database) -> str:
    path = make_url(db.url).database
    assert path is not None
    return path


async def _connections_open(db: Database) -> None:
    """Every connection of the engine's pool opened (SQLite's attach the staging file)."""
    size = db.engine.pool.size()  # type: ignore[attr-defined]
    opened = asyncio.Barrier(size)

    async def one() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await opened.wait()

    await asyncio.gather(*(one() for _ in range(size)))


_TAKEN = "SELECT COUNT(*) FROM seen_key WHERE team_id = :t AND key = :k"


async def _taken(db: Database, team_id: str, key: str) -> bool:
    """Whether `key` is taken; on SQLite read from the main file alone (no staging file)."""
    if db.is_sqlite:
        def read() -> bool:
            with closing(sqlite3.connect(_main_file(db), timeout=10)) as own:
                return bool(own.execute(_TAKEN.replace(":t", "?").replace(":k", "?"),
                                        (team_id, key)).fetchone()[0])  # fmt: skip

        return await asyncio.to_thread(read)
    async with db.begin() as conn:
        return bool((await conn.execute(text(_TAKEN), {"t": team_id, "k": key})).scalar_one())


@asynccontextmanager
async def _app(db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               gives_up_ms: int = GIVES_UP_MS
               ) -> AsyncIterator[tuple[Harness, StagedRowsAway, Outage]]:  # fmt: skip
    """The app on a database whose statements give up after `gives_up_ms` waiting for a lock;
    what keeps the staged rows' readers out, and what keeps out the writes that let a
    review's keys go (SQLite: every write; PostgreSQL: those of the job and seen_key
    tables)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    database = impatient(db_env, gives_up_ms)
    reads, writes = StagedRowsAway(database), Outage(database, "seen_key")
    try:
        async with running_app(database, tmp_path) as app:
            yield app, reads, writes
    finally:
        await writes.release()
        await reads.release()
        await database.dispose()


async def test_a_review_the_database_stopped_before_it_was_sent_is_posted_by_a_later_click(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _app(db_env, tmp_path, monkeypatch) as (app, reads, writes):
        click = await offered(app)

        # REP's click takes the key of posting the review; the database is then away from
        # drawing it (reading the import's rows) and from letting the key go: nothing posted
        await reads.hold()
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click)
        await reads.waited_on("T0001", "review-post:1")
        await writes.hold()
        await app.done()
        assert _reviews(app) == []

        # the database is back; the file is read. Long after, a click on the offer posts
        # the review, which nobody had seen
        await reads.release()
        await writes.release()
        await app.settle()
        await _two_minutes_on(app)
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD, **click)
        await app.settle()
        told = [e["text"] for e in app.slack.ephemerals if e["user"] == LEAD]
        assert not any("posted here" in t for t in told), told
        (review,) = _reviews(app)
        assert review["channel"] == "C0001"
        assert "2 valid" in json.dumps(review["blocks"])
        ((status, _by, channel, ts),) = await _recorded(app)
        assert (status, channel, ts) == ("draft", "C0001", review["ts"])
        said = json.dumps(app.slack.message("C0001", click["message_ts"])["blocks"])
        assert f"<@{LEAD}> started a review for *VIP*" in said

        # and only once: a click after it is told where it is
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click)
        await app.settle()
        assert [m["ts"] for m in _reviews(app)] == [review["ts"]]
        assert "import #1 in <#C0001>" in app.slack.ephemerals[-1]["text"]
        assert app.slack.block_errors == []


async def test_a_slow_click_taken_for_dead_and_the_one_that_took_over_post_one_review(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REP's click is slow to draw its review (the staged rows locked by another client)
    for so long that LEAD's click takes it for dead (POSTING_GIVEN_UP) and posts it: the
    key saying it was sent, taken just before each post, lets one of them post, and the
    other is told it is being posted; neither lets the other's keys go."""
    # the slow click waits long enough for the other one to come
    async with _app(db_env, tmp_path, monkeypatch, 10_000) as (app, reads, _writes):
        click = await offered(app)
        await reads.hold()
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click)
        await reads.waited_on("T0001", "review-post:1")
        await _two_minutes_on(app)
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD, **click)
        await reads.waited_on("T0001", "review-post:1", clicks=2)
        await reads.release()
        await app.settle()

        (review,) = _reviews(app)
        assert review["channel"] == "C0001"
        told = [e["text"] for e in app.slack.ephemerals]
        assert len(told) == 1 and "import #1 (being posted)" in told[0], told
        ((_status, _by, channel, ts),) = await _recorded(app)
        assert (channel, ts) == ("C0001", review["ts"])
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click)
        await app.settle()
        assert [m["ts"] for m in _reviews(app)] == [review["ts"]]
        assert "import #1 in <#C0001>" in app.slack.ephemerals[-1]["text"]


async def test_a_review_the_dm_could_not_take_either_is_posted_by_the_next_click(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The channel refuses the review (the bot removed from it) and the DM it goes to
    instead can't be opened: the key saying it was sent, taken once before the channel's
    try, goes with the posting key, and the next click posts the review at once."""
    async with _app(db_env, tmp_path, monkeypatch) as (app, _reads, _writes):
        click = await offered(app)
        app.slack.fail("chat.postMessage", "not_in_channel")
        app.slack.fail("conversations.open", "internal_error")
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click)
        await app.settle()
        assert _reviews(app) == []
        assert len(app.slack.calls_to("conversations.open")) == 1
        assert not await _taken(app.db, "T0001", "review-sent:1")
        assert not await _taken(app.db, "T0001", "review-post:1")

        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD, **click)
        await app.settle()
        (review,) = _reviews(app)
        assert review["channel"] == "C0001"
        ((_status, _by, channel, ts),) = await _recorded(app)
        assert (channel, ts) == ("C0001", review["ts"])
        assert not any("already has a review" in e["text"] for e in app.slack.ephemerals)
