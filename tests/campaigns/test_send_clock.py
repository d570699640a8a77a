"""Invites are due by the database server's clock: a sender on a host whose clock is off sends
no held invite early, nor retries a greylisted one early, by its skew."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import text

from bot.jobs.queue import database_now
from tests.campaigns.conftest import World, people
from tests.campaigns.test_send import _enrolled, _received, _send, _send_worker, _states
from tests.conftest import BACKEND
from tests.email.smtp_server import Handler, smtp_server
from tests.jobs.clock import skew_clock

pytestmark = pytest.mark.skipif(BACKEND != "postgres",
                                reason="one host shares SQLite's file and clock")  # fmt: skip


async def test_a_worker_whose_clock_is_ahead_takes_no_held_invites_send_job_early(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invites held for a minute (the hold's Cancel invites) have a send job due then: a
    worker on a host 90 s ahead claimed it at once and sent them, Cancel still offered."""
    await _enrolled(world, "a@example.com,A,en", hold=60)
    async with smtp_server() as server:
        with monkeypatch.context() as m:
            skew_clock(m, 90)
            assert await _send_worker(world, server).run_until_idle() == 0
    assert server.handler.messages == []
    assert await _states(world) == {"a@example.com": "held"}


async def test_a_run_on_a_host_whose_clock_is_ahead_sends_no_held_invite_early(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run compared the invites' due times with its own host's clock: a run on a host 90 s
    ahead (another send job of the enrollment: a Resend's, say) sent invites still held for
    a minute. Its next run is due when they are, not at that host's now."""
    enrollment = await _enrolled(world, "a@example.com,A,en", hold=60)
    async with smtp_server() as server:
        with monkeypatch.context() as m:
            skew_clock(m, 90)
            await _send(world, server, enrollment)
    assert server.handler.messages == []
    assert await _states(world) == {"a@example.com": "held"}
    due = await world.scalar("SELECT send_after FROM invite")
    later = await world.rows("SELECT run_after FROM job WHERE kind = 'send_invites' "
                             "AND state = 'queued' ORDER BY run_after")  # fmt: skip
    assert later == [(due,)] * len(later) and later  # the enrollment's, and the run's next


async def test_a_greylisted_invite_on_a_host_whose_clock_is_behind_waits_its_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4xx makes the invite due again a minute later, by the sender's clock: sent from a
    host 90 s behind, it was due half a minute before it was refused, and the next run (the
    enrollment's other jobs, a Resend's) tried it again at once, against the greylist."""
    enrollment = await _enrolled(world, "a@example.com,A,en")
    async with world.db.begin() as conn:  # due for a while, whichever clock looks
        await conn.execute(text("UPDATE invite SET send_after = send_after - INTERVAL '1 hour'"))
    greylist = Handler(rcpt_replies={"a@example.com": ["451 4.7.1 Greylisted, try later"]})
    async with smtp_server(greylist) as server:
        with monkeypatch.context() as m:
            skew_clock(m, -90)
            await _send(world, server, enrollment)
        assert await _states(world) == {"a@example.com": "queued"}
        assert greylist.seen["RCPT"] == 1  # tried, and greylisted
        await _send(world, server, enrollment)  # a run on a host whose clock is right
    assert greylist.seen["RCPT"] == 1 and _received(server) == Counter()  # not tried again
    due = await world.scalar("SELECT send_after FROM invite")
    assert 50 < (due - await database_now(world.db)).total_seconds() <= 60  # type: ignore[operator]


@pytest.mark.parametrize("skew", [-90, 90], ids=["behind", "ahead"])
async def test_an_enrollment_on_a_host_whose_clock_is_off_holds_by_the_database_clock(
    world: World, monkeypatch: pytest.MonkeyPatch, skew: int
) -> None:
    """Enrolling stamped the hold's end (its invites' due time, its send job's) by its own
    host's clock: enrolled with a minute's hold on a host 90 s behind, the invites were due
    half a minute before they were enrolled, and a worker sent them at once, *Cancel
    invites* still offered; on a host 90 s ahead they waited two and a half minutes."""
    await world.import_csv("VIP", people("a@example.com,A,en"))
    spring = await world.campaign()
    with monkeypatch.context() as m:
        skew_clock(m, skew)
        await world.target(spring, "VIP", hold=60)
    now = await database_now(world.db)
    (due, run_after, held_until), = await world.rows(
        "SELECT i.send_after, j.run_after, e.hold_until FROM invite i JOIN enrollment e "
        "ON e.id = i.enrollment_id JOIN job j ON j.kind = 'send_invites'")  # fmt: skip
    for when in (due, run_after, held_until):
        assert 50 < (when - now).total_seconds() <= 60, (when, now)
    async with smtp_server() as server:
        assert await _send_worker(world, server).run_until_idle() == 0
    assert server.handler.messages == []
    assert await _states(world) == {"a@example.com": "held"}
