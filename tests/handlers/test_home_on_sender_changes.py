"""App Home is republished when who can send invites changes, not only when the data does.

Home says, under a live campaign, that its due invites wait because no running worker can
send them (invites.waiting_for_a_sender). Nothing republished it when that changed: a worker
that can send starting (a `referral-bot worker` with SMTP_URL but no SLACK_BOT_TOKEN sends
without telling Slack anything) left Home saying the invites wait while they went out, and
the last such worker stopping left Home saying nothing waits. A worker's start and clean stop
now queue the workspace's `home_refresh` job, as the shell's changes do; so does a worker's
start that forgets a dead sender's row, the first moment anything notices one died.

Each test runs real workers (`Worker.run`, registering themselves) beside the harness's app,
and runs the refresh job with the harness's worker, whose Slack client is the fake's: what
Home says is what the fake Slack was given in views.publish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.app import build_worker
from bot.campaigns import service
from bot.campaigns.enroll import SEND_JOB
from bot.home_refresh import workers_changed_in
from bot.jobs import queue
from bot.jobs.worker import Worker, WorkerConfig
from bot.workspaces import ensure_workspace
from models import CampaignState, Database, HomeViewer
from models.clock import utcnow
from tests.conftest import BACKEND
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_campaign_list_waiting import TEAM, WAITING, _live_with_due_invites
from tests.handlers.test_home_waiting_invites import _campaign_text, _open_home
from tests.jobs.test_worker_processes import wait_for
from tests.waiting import backend_pid

HOME_REFRESH_JOB = "home_refresh"  # the kind, and the key of the workspace's pending one
NO_SENDER = "no running worker"  # what the line under a waiting campaign says
BOUND = 60  # seconds a worker gets to start, stop or send: a bound on a wait, never measured


def _sender(app: Harness) -> Worker:
    """A `referral-bot worker` that can send (OUTBOX_DIR, SECRET_KEY and PUBLIC_URL) but has no
    SLACK_BOT_TOKEN: it tells Slack nothing of what it sends."""
    worker = build_worker(app.settings, None, app.db)
    assert SEND_JOB in worker.kinds and HOME_REFRESH_JOB not in worker.kinds
    return worker


def _not_a_sender(app: Harness) -> Worker:
    """A worker without what sending needs (it runs the rest): the sender's kinds but its."""
    kinds = {k: h for k, h in _sender(app).handlers.items() if k != SEND_JOB}
    config = app.worker.config
    return Worker(app.db, kinds, WorkerConfig(lease_seconds=config.lease_seconds,
                                              poll_seconds=config.poll_seconds),
                  kinds_changed=workers_changed_in)  # as build_worker's  # fmt: skip


async def _registered(db: Database, worker: Worker) -> bool:
    return any(w.owner == worker.owner for w in await queue.live_workers(db, timedelta(hours=1)))


@asynccontextmanager
async def _running(app: Harness, worker: Worker) -> AsyncIterator[Worker]:
    """The worker runs (as `referral-bot worker` does) once it is in the worker list, and has
    stopped cleanly, its row gone, when the block ends."""
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: _registered(app.db, worker), BOUND, "the worker to register")
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, BOUND)
    assert not await _registered(app.db, worker)


async def _refreshes(db: Database) -> list[tuple[str, str]]:
    """The workspaces' home_refresh jobs, oldest first: (team, state)."""
    async with db.begin() as conn:
        rows = (await conn.execute(text("SELECT team_id, state FROM job WHERE kind = :kind "
                                        "ORDER BY id"), {"kind": HOME_REFRESH_JOB})).all()
    return [(str(team), str(state)) for team, state in rows]


async def _republished(app: Harness) -> bool:
    """Run the workspace's pending refresh now (it waits two seconds to gather changes) with
    the harness's worker, which has the Slack client; False when none was queued (Home then
    stays as it was last published)."""
    return await app.worker.run_by_key(TEAM, HOME_REFRESH_JOB)


def _home(app: Harness) -> str:
    """What Home last said of Spring, as published to the lead."""
    return _campaign_text(app.slack.home_views[LEAD], "Spring")


async def _send_later(db: Database) -> None:
    """The send job is due in a while (as after the mail server turned the bot away): a worker
    that can send runs, but its invites stay due, and wait for one once it stops."""
    async with db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = :later WHERE kind = :kind")
                           .bindparams(bindparam("later", type_=UTCDateTime())),
                           {"later": datetime(2100, 1, 1, tzinfo=UTC), "kind": SEND_JOB})


async def _sent(db: Database) -> bool:
    async with db.begin() as conn:
        return (await conn.execute(text("SELECT state FROM job WHERE kind = :kind"),
                                   {"kind": SEND_JOB})).scalar_one() == "done"


async def test_a_worker_that_can_send_starting_republishes_home(app: Harness) -> None:
    await _live_with_due_invites(app, "Spring")
    assert _campaign_text(await _open_home(app, LEAD), "Spring").endswith(f"\n{WAITING}")
    published = len(app.slack.calls_to("views.publish"))

    async with _running(app, _sender(app)):
        await wait_for(lambda: _sent(app.db), BOUND, "the invites to be sent")
        await _republished(app)  # the refresh its start queued
        assert _home(app).endswith("Targets: VIP · 2 advocates · 2 invites sent"), _home(app)
        assert len(app.slack.calls_to("views.publish")) == published + 1
        assert await _refreshes(app.db) == [(TEAM, "done")]
    # it stopped with nothing left to send: nothing waits, and Home already says so
    assert await _refreshes(app.db) == [(TEAM, "done")]


async def test_the_last_worker_that_can_send_stopping_republishes_home(app: Harness) -> None:
    await _live_with_due_invites(app, "Spring")
    await _send_later(app.db)
    async with _running(app, _sender(app)):
        await _republished(app)  # its start's refresh
        assert NO_SENDER not in _campaign_text(await _open_home(app, LEAD), "Spring")
        assert (TEAM, "queued") not in await _refreshes(app.db)

    await _republished(app)  # the refresh its stop queued
    assert _home(app).endswith(f"0 invites sent\n{WAITING}"), _home(app)
    assert (TEAM, "queued") not in await _refreshes(app.db)


async def test_only_the_first_and_the_last_worker_that_can_send_republish_home(
    app: Harness,
) -> None:
    await _live_with_due_invites(app, "Spring")
    await _send_later(app.db)
    assert _campaign_text(await _open_home(app, LEAD), "Spring").endswith(f"\n{WAITING}")

    async with _running(app, _not_a_sender(app)):  # changes nothing Home says
        assert await _refreshes(app.db) == []
    assert await _refreshes(app.db) == []

    async with _running(app, _sender(app)):
        await _republished(app)
        assert NO_SENDER not in _home(app), _home(app)
        async with _running(app, _sender(app)):  # another could send before it started
            assert await _refreshes(app.db) == [(TEAM, "done")]
        assert await _refreshes(app.db) == [(TEAM, "done")]  # one still can
    assert await _refreshes(app.db) == [(TEAM, "done"), (TEAM, "queued")]
    await _republished(app)
    assert _home(app).endswith(f"\n{WAITING}"), _home(app)


async def test_only_workspaces_with_home_viewers_and_waiting_invites_are_refreshed(
    app: Harness,
) -> None:
    """A worker serves every workspace: its start queues a refresh only where Home has
    viewers and invites wait, not one per workspace."""
    await _live_with_due_invites(app, "Spring")
    await _send_later(app.db)
    await _open_home(app, LEAD)
    await ensure_workspace(app.db, "T0002")
    async with app.db.begin() as conn:  # another workspace's viewer, with nothing to send
        await conn.execute(HomeViewer.__table__.insert().values(  # type: ignore[attr-defined]
            team_id="T0002", user_id="U0009", opened_at=utcnow()))
    async with _running(app, _sender(app)):
        assert await _refreshes(app.db) == [(TEAM, "queued")]

    async with app.db.begin() as conn:  # nobody looked at TEAM's Home for 31 days
        await conn.execute(text("UPDATE home_viewer SET opened_at = :old WHERE team_id = :t")
                           .bindparams(bindparam("old", type_=UTCDateTime())),
                           {"old": utcnow() - timedelta(days=31), "t": TEAM})  # fmt: skip
        await conn.execute(text("DELETE FROM job WHERE kind = :kind"), {"kind": HOME_REFRESH_JOB})
    async with _running(app, _sender(app)):
        assert await _refreshes(app.db) == []
    assert await _refreshes(app.db) == []


async def test_invites_waiting_for_their_campaign_queue_no_refresh(app: Harness) -> None:
    """Home says nothing of a paused campaign's due invites (they wait for it to go live,
    not for a worker): a sender's start and stop change nothing Home says of them."""
    (spring,) = await _live_with_due_invites(app, "Spring")
    await _send_later(app.db)
    await service.set_state(app.db, TEAM, spring, CampaignState.PAUSED, requested_by=LEAD)
    assert _campaign_text(await _open_home(app, LEAD), "Spring").endswith("0 invites sent")
    async with _running(app, _sender(app)):
        assert await _refreshes(app.db) == []
    assert await _refreshes(app.db) == []


async def test_a_dead_senders_row_forgotten_at_another_workers_start_republishes_home(
    app: Harness,
) -> None:
    """A worker killed says nothing: its row stops being refreshed, and it stops counting as
    a sender once stale. The next worker's start forgets it: Home is refreshed then."""
    await _live_with_due_invites(app, "Spring")
    await _send_later(app.db)
    await queue.register_worker(app.db, "gone:1:w", {"enroll", SEND_JOB}, pid=1, host="gone")
    assert NO_SENDER not in _campaign_text(await _open_home(app, LEAD), "Spring")
    async with app.db.begin() as conn:  # killed: not seen for an hour
        await conn.execute(text("UPDATE worker_process SET seen_at = :old WHERE owner = :o")
                           .bindparams(bindparam("old", type_=UTCDateTime())),
                           {"old": utcnow() - timedelta(hours=1), "o": "gone:1:w"})  # fmt: skip

    async with _running(app, _not_a_sender(app)):
        await _republished(app)
        assert _home(app).endswith(f"\n{WAITING}"), _home(app)
        assert await _refreshes(app.db) == [(TEAM, "done")]


async def _blocked_by(db: Database, holder: int) -> int:
    """How many backends wait for `holder`, or for one that waits for it (PostgreSQL), but a
    worker's routine refresh of its row."""
    async with db.begin() as conn:
        return int((await conn.execute(text("""
            WITH first AS (SELECT pid FROM pg_stat_activity
                           WHERE :h = ANY(pg_blocking_pids(pid)))
            SELECT count(*) FROM pg_stat_activity
            WHERE (:h = ANY(pg_blocking_pids(pid))
                   OR pg_blocking_pids(pid) && ARRAY(SELECT pid FROM first))
              AND query NOT LIKE '%INSERT INTO worker_process%'
        """), {"h": holder})).scalar_one())  # fmt: skip


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite has one writer: stops never overlap")
async def test_two_workers_that_can_send_stopping_at_once_republish_home(app: Harness) -> None:
    """serve's worker processes stop together on SIGTERM. Each deleted its row, then looked
    for another worker able to send, and saw the other's row, not yet deleted: neither said
    that nothing can send any more. Here both stops wait at their rows (held by another
    connection) and then go on together."""
    await _live_with_due_invites(app, "Spring")
    await _send_later(app.db)
    first, second = _sender(app), _sender(app)
    tasks = [asyncio.create_task(w.run()) for w in (first, second)]
    for worker in (first, second):
        await wait_for(lambda w=worker: _registered(app.db, w), BOUND, "the worker to register")
    await _republished(app)  # the first one's start
    assert NO_SENDER not in _campaign_text(await _open_home(app, LEAD), "Spring")

    holder = await app.db.engine.connect()
    transaction = await holder.begin()
    await holder.execute(text("SELECT 1 FROM worker_process WHERE owner IN (:a, :b) FOR UPDATE"),
                         {"a": first.owner, "b": second.owner})  # fmt: skip
    first.stop()
    second.stop()
    deadline = time.monotonic() + BOUND
    while await _blocked_by(app.db, await backend_pid(holder)) < 2:
        assert time.monotonic() < deadline, "the stops never reached the worker list"
        await asyncio.sleep(0.01)
    await transaction.commit()
    await holder.close()
    await asyncio.wait_for(asyncio.gather(*tasks), BOUND)

    await _republished(app)
    assert _home(app).endswith(f"\n{WAITING}"), _home(app)
