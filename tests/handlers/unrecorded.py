"""A review posted while the database can't record it, for the tests of what happens next.

The app runs on a database whose statements give up after 100 ms waiting for a lock, beside
another client that can hold the lock a review's record needs (WriteLock): a review posted
while it is held is live in Slack but unrecorded, as when the database is away."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from handlers import import_modal
from tests.handlers.conftest import Harness, running_app
from tests.jobs.test_last_attempt_outage import WriteLock
from tests.jobs.test_worker_faults import impatient


def without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTTP proxy between the app and the fake Slack on loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@asynccontextmanager
async def impatient_app(db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        *, quick_record: bool = True) -> AsyncIterator[tuple[Harness, WriteLock]]:
    """The app on an impatient database, and the client that can hold its write lock;
    `quick_record`: a review's record tried again after 0.05 s (twice), not its pauses."""
    without_proxies(monkeypatch)
    if quick_record:
        monkeypatch.setattr(import_modal, "RECORD_PAUSES", (0.05, 0.05))
    database = impatient(db_env)
    lock = WriteLock(database)
    try:
        async with running_app(database, tmp_path) as app:
            yield app, lock
    finally:
        await lock.release()
        await database.dispose()


async def posted_unrecorded(app: Harness, lock: WriteLock,
                            click: Callable[[], Awaitable[object]]) -> None:  # fmt: skip
    """`click()` posts a review; the database is locked by another client once the review is
    on its way to Slack, so it is posted but every try to record it gives up. The database
    is back afterwards."""
    before = len(app.slack.calls_to("chat.postMessage"))
    gate = app.slack.hold("chat.postMessage")
    await click()
    await app.slack.wait_for("chat.postMessage", count=before + 1, timeout=10)
    await lock.hold()
    app.slack.unhold("chat.postMessage")
    gate.set()
    await app.done()  # every try to record it failed
    await lock.release()
    await app.settle()


async def recorded(app: Harness) -> tuple[str, str | None, str | None]:
    """The one import's status, and the review message recorded for it (channel, ts)."""
    async with app.db.begin() as conn:
        status, channel, ts = (await conn.execute(text(
            "SELECT status, channel_id, message_ts FROM import_batch"))).one()  # fmt: skip
    return str(status), channel, ts
