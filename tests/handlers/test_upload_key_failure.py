"""*Review import* on an upload offer when the click's write of the key saying its review was
sent (review_sent_key) fails, after another click took that key.

A click whose taking of the sent key raised (the database away) let the key go with its
posting key when giving up (_not_posted), though the key was not its own: a slow click taken
for dead (POSTING_GIVEN_UP), failing there after the click that took over had taken the key
and posted, deleted that click's keys, and the next click found neither and posted a second
live review of the import. A click lets the sent key go only once it took it.

PostgreSQL only: the click's write has to fail while the key is taken by another click, and
its giving up has to wait until then (row locks held by another client, and the click's
connection ended from outside, as a database restart ends it). SQLite has one write lock
for the whole file: a click's write can only fail by waiting out the busy timeout behind
it, and then no other click can write either, before or after it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from handlers.ids import Action
from models import Database
from tests.handlers.conftest import LEAD, REP, Harness, running_app
from tests.handlers.test_upload_offer_given_up import _reviews, _two_minutes_on, offered
from tests.handlers.test_upload_sent_key_timing import _taken
from tests.jobs.test_worker_faults import impatient

_BLOCKED = text("SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid)) "
                "ORDER BY pid")  # fmt: skip


async def _pid(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _blocked_by(app: Harness, holder: int, count: int) -> list[int]:
    """The app's connections waiting on a lock `holder` holds, once there are `count`."""
    deadline = time.monotonic() + 10
    while True:
        async with app.db.begin() as conn:
            pids = list((await conn.execute(_BLOCKED, {"holder": holder})).scalars())
        if len(pids) >= count:
            return pids
        assert time.monotonic() < deadline, f"{len(pids)} connections waited, not {count}"
        await asyncio.sleep(0.01)


async def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_a_slow_click_whose_sent_key_write_failed_leaves_the_key_of_the_one_that_posts(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if db.is_sqlite:
        pytest.skip("needs row locks and a connection ended from outside (see the docstring)")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    database = impatient(db_env, 10_000)
    sent_key = await database.engine.connect()  # holds the sent key, not yet committed
    posting_key = await database.engine.connect()  # holds the row of the posting key
    try:
        async with running_app(database, tmp_path) as app:
            click = await offered(app)
            posted = app.slack.hold("chat.postMessage")
            before = len(app.slack.calls_to("chat.postMessage"))

            # another client is taking the sent key: REP's click, taking it just before its
            # post, waits for it, long enough for LEAD's click to take REP's for dead
            await sent_key.execute(text("INSERT INTO seen_key (team_id, key, created_at) "
                                        "VALUES ('T0001', 'review-sent:1', now())"))
            holder = await _pid(sent_key)
            await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click)
            (rep,) = await _blocked_by(app, holder, 1)
            await _two_minutes_on(app)
            await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD,
                                            **click)  # fmt: skip
            await _blocked_by(app, holder, 2)

            # REP's write of the sent key fails (its connection ended, as by a restart of
            # the database); its giving up waits behind the posting key's row, which LEAD's
            # click now holds
            await posting_key.execute(text("SELECT key FROM seen_key WHERE team_id = 'T0001' "
                                           "AND key = 'review-post:1' FOR UPDATE"))
            async with app.db.begin() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": rep})
            await _blocked_by(app, await _pid(posting_key), 1)

            # LEAD's click takes the sent key and sends its review; REP's then gives up
            await sent_key.rollback()
            await app.slack.wait_for("chat.postMessage", count=before + 1, timeout=10)
            await posting_key.rollback()

            async def given_up() -> bool:
                return not await _taken(app.db, "T0001", "review-post:1")

            await _until(given_up, "REP's click never gave up")

            # a click now, with LEAD's review on its way, posts no second one
            await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click)

            async def answered() -> bool:
                return (len(app.slack.calls_to("chat.postMessage")) > before + 1
                        or any("already has a review" in e["text"]
                               for e in app.slack.ephemerals))  # fmt: skip

            await _until(answered, "the last click never answered")
            app.slack.unhold("chat.postMessage")
            posted.set()
            await app.settle()
            (review,) = _reviews(app)
            assert review["channel"] == "C0001"
            told = [e["text"] for e in app.slack.ephemerals if "already has a review" in e["text"]]
            assert len(told) == 1 and "import #1" in told[0], told
    finally:
        await posting_key.close()
        await sent_key.close()
        await database.dispose()
