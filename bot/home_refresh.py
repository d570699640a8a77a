"""Refreshing the App Home tabs open in Slack after changes made without Slack.

A change made in Slack republishes Home at once (handlers/home_publish.refresh_homes). The
command line has no Slack connection, so its changes queue a `home_refresh` job instead,
which only a worker with a Slack client runs (serve's): the job calls that same refresh.

One pending job per workspace: changes made while one waits join it, and it waits
REFRESH_DELAY before running, so a script of many commands publishes once. A change made
while one runs queues the next, since the running one may have read the data before it.
Nothing is queued for a workspace nobody opened Home in lately: one used only from the shell
would keep a job that no worker of its can run.

Home also says which invites are due with no running worker able to send them
(bot.campaigns.invites.waiting_for_a_sender), which no change to the data tells: a worker
that can send starting, or the last one stopping. So a worker's start and its clean stop
queue the refresh too, in the transaction that records it (`workers_changed_in`, the
`kinds_changed` bot.app gives its workers), in the workspaces with Home viewers and such
invites only. A worker that dies says nothing: its row goes stale, and the next worker's
start, which forgets it, is the first moment anything notices (nothing polls meanwhile).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from bot.campaigns.enroll import SEND_JOB
from bot.campaigns.invites import with_invites_due_in
from bot.jobs.queue import database_now_in, enqueue_pending_in
from bot.jobs.worker import Handler, JobContext
from models import Database, HomeViewer
from models.clock import utcnow

HOME_REFRESH_JOB = "home_refresh"
VIEWERS_KEPT = timedelta(days=30)  # whose Home is republished after a change
REFRESH_DELAY = timedelta(seconds=2)  # changes made meanwhile are published together
_PENDING = "home_refresh"  # the dedupe key of the workspace's pending refresh

HomeRefresher = Callable[[str], Awaitable[None]]  # team id -> Home republished (Slack's side)


async def queue_home_refresh(db: Database, team_id: str) -> int | None:
    """Queue the refresh of the workspace's Home tabs, or join the one already waiting;
    its job id, or None when nobody in the workspace has opened Home lately.

    One transaction: see `enqueue_pending_in`."""
    async with db.begin() as conn:
        if not await has_recent_viewer_in(conn, team_id):
            return None
        return await _queue_in(conn, team_id)


async def _queue_in(conn: AsyncConnection, team_id: str) -> int:
    """Queue the workspace's refresh, or join the one waiting, in the caller's transaction."""
    # due by the clock it is claimed by (the database's: bot.jobs.queue): stamped with this
    # process's, a host behind by more than REFRESH_DELAY queued a refresh due at once (the
    # changes of a script's next commands made a refresh each), and one ahead left Home
    # unrefreshed for as long as its clock was ahead
    due = await database_now_in(conn) + REFRESH_DELAY
    return await enqueue_pending_in(conn, team_id, HOME_REFRESH_JOB, {}, dedupe_key=_PENDING,
                                    run_after=due)  # fmt: skip


async def workers_changed_in(conn: AsyncConnection, kinds: Collection[str]) -> list[str]:
    """Some live worker can now run `kinds`, or none can any more (a worker started or
    stopped, or a dead one was forgotten: bot.jobs.queue.worker_started_in), in the caller's
    transaction, the one that records it. When sending is among them, Home's "no running
    worker can send" lines appear or go: queue the refresh of each workspace whose Home has
    viewers and that has invites due (`with_invites_due_in`: one probe a workspace, however
    many are due). The workspaces queued for."""
    if SEND_JOB not in kinds:
        return []
    waiting = await with_invites_due_in(conn, await _viewed_in(conn))
    for team_id in waiting:
        await _queue_in(conn, team_id)
    return waiting


async def _viewed_in(conn: AsyncConnection) -> list[str]:
    """The workspaces where someone opened Home in the last VIEWERS_KEPT (every workspace's:
    a worker serves them all), each once."""
    rows = await conn.execute(
        select(HomeViewer.team_id).where(col(HomeViewer.opened_at) >= utcnow() - VIEWERS_KEPT)
        .distinct().order_by(col(HomeViewer.team_id)))  # fmt: skip
    return [str(team_id) for (team_id,) in rows]


async def has_recent_viewer_in(conn: AsyncConnection, team_id: str) -> bool:
    """Whether someone in the workspace opened Home in the last VIEWERS_KEPT: only then is
    there a Home tab to republish (and a report for it to show)."""
    viewer = (await conn.execute(
        select(HomeViewer.user_id).where(
            col(HomeViewer.team_id) == team_id,
            col(HomeViewer.opened_at) >= utcnow() - VIEWERS_KEPT).limit(1)
    )).first()  # fmt: skip
    return viewer is not None


def home_refresh_handler(refresh: HomeRefresher) -> Handler:
    """Run a queued refresh with the worker's Slack side."""

    async def run(ctx: JobContext) -> None:
        await refresh(ctx.team_id)

    return run
