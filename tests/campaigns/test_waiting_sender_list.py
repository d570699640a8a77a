"""`campaign list` says when a campaign's due invites wait for a worker that can send them.

A worker without SMTP_URL and PUBLIC_URL (or OUTBOX_DIR), or without SECRET_KEY, leaves send
jobs queued for one that has them (bot.campaigns.jobs.send_handlers). `referral-bot jobs` said
so of each send job; `campaign list` showed the campaign live, its invites unsent, and not
why: a merchant who ran only `serve --no-worker`, or a worker without SMTP_URL, waited for
invites that no process would ever send. It says so now, as `jobs` decides it, only of
invites that are due (a delayed or held one waits for its time, not for a worker).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns import service
from bot.campaigns.enroll import SEND_JOB
from bot.campaigns.jobs import SEND_NEEDS
from bot.jobs import queue
from models import CampaignState
from tests.campaigns.conftest import TEAM, World
from tests.campaigns.test_send import _enrolled
from tests.shell import run

WAITING = (f"  2 invites are due, but no running worker can send them: {SEND_NEEDS} "
           "(`referral-bot jobs` shows the send jobs waiting)")


async def _cli(db_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`referral-bot campaign ARGS --team T0001`, through its real entry point."""
    done = await asyncio.to_thread(run, db_env, "campaign", *args, "--team", TEAM)
    assert done.returncode == 0, done.stderr
    return done


async def _listed(db_env: dict[str, str]) -> tuple[list[str], dict[str, object]]:
    """`campaign list`'s lines, and its --json row of the one campaign."""
    lines = (await _cli(db_env, "list")).stdout.splitlines()
    (row,) = json.loads((await _cli(db_env, "list", "--json")).stdout)
    return lines, row


async def _workers(world: World, *kinds: set[str]) -> None:
    """Workers running these job kinds, alive (their rows just refreshed)."""
    for n, these in enumerate(kinds):
        await queue.register_worker(world.db, f"host:{n}:w", these, pid=n + 1, host="host")


async def test_due_invites_no_running_worker_can_send_are_said_with_what_it_needs(
    world: World, db_env: dict[str, str]
) -> None:
    await _enrolled(world, "a@example.com,A,en", "b@example.com,B,en")
    await _workers(world, {"enroll", "import"})  # `worker` without SMTP_URL: no send jobs
    lines, row = await _listed(db_env)
    assert lines[0].startswith("Spring  [live]  invite email on  targets: VIP"), lines
    assert lines[1:] == [WAITING], lines
    assert row["invites_waiting_for_worker"] == 2
    # what `jobs` says of their send job, and why: the same decision
    (send,) = [j for j in json.loads(run(db_env, "jobs", "--team", TEAM, "--json").stdout)
               if j["kind"] == SEND_JOB]  # fmt: skip
    assert send["waiting_for_worker"] is True

    await _workers(world, {"enroll", "import"}, {"enroll", SEND_JOB})  # one that can send
    lines, row = await _listed(db_env)
    assert len(lines) == 1 and row["invites_waiting_for_worker"] == 0, lines


async def test_a_worker_that_could_send_but_died_leaves_them_waiting(
    world: World, db_env: dict[str, str]
) -> None:
    """Its row is still fresh (a worker refreshes it every few seconds; it counts as gone only
    after three leases), but its lease on the send job lapsed: `jobs` says that job waits for
    a worker, and so does the list of its invites."""
    await _enrolled(world, "a@example.com,A,en", "b@example.com,B,en")
    await _workers(world, {"enroll", SEND_JOB})
    claimed = await queue.claim(world.db, "host:0:w#1", 0.05, kinds={SEND_JOB})
    assert claimed is not None  # killed mid-run: its invites still queued
    await asyncio.sleep(0.3)  # its lease lapses
    lines, row = await _listed(db_env)
    assert lines[1:] == [WAITING], lines
    assert row["invites_waiting_for_worker"] == 2
    (send,) = [j for j in json.loads(run(db_env, "jobs", "--team", TEAM, "--json").stdout)
               if j["kind"] == SEND_JOB]  # fmt: skip
    assert (send["worker_stopped"], send["waiting_for_worker"]) == (True, True)


async def test_invites_not_due_stopped_or_paused_are_not_said_to_wait(
    world: World, db_env: dict[str, str]
) -> None:
    """The ordinary listing stays one line a campaign: a delayed or held invite waits for its
    time; one whose sending stopped says so on its own line (with what to do); a paused
    campaign's wait for it to go live again."""
    spring = await world.campaign("Spring", invite_delay_days=3)
    summer = await world.campaign("Summer")
    autumn = await world.campaign("Autumn")
    await world.import_csv("VIP", "email\na@example.com\nb@example.com\n")
    await world.target(spring, "VIP")  # due in 3 days
    await world.target(summer, "VIP", hold=600)  # held ten minutes
    await world.target(autumn, "VIP")
    await service.set_state(world.db, TEAM, autumn, CampaignState.PAUSED, requested_by="U1")
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = :k AND state = 'queued'",
                              k=SEND_JOB)  # fmt: skip
    lines = (await _cli(db_env, "list")).stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["Autumn", "Spring", "Summer"], lines
    rows = json.loads((await _cli(db_env, "list", "--json")).stdout)
    assert [r["invites_waiting_for_worker"] for r in rows] == [0, 0, 0]

    # Summer's hold ends: due now, and nobody can send them
    async with world.db.begin() as conn:
        await conn.execute(text("UPDATE invite SET send_after = :past WHERE campaign_id = :c")
                           .bindparams(bindparam("past", type_=UTCDateTime())),
                           {"past": datetime(2020, 1, 1, tzinfo=UTC), "c": summer})
    lines = (await _cli(db_env, "list")).stdout.splitlines()
    assert lines[3:] == [WAITING], lines
    # its sending stopped (a worker's last attempt): the stop is what the list says
    async with world.db.begin() as conn:
        await conn.execute(text("UPDATE enrollment SET send_error = 'its send job was "
                                "cancelled.' WHERE campaign_id = :c"), {"c": summer})
    lines = (await _cli(db_env, "list")).stdout.splitlines()
    assert lines[3].startswith("  sending stopped: its send job was cancelled."), lines
    assert len(lines) == 4, lines

