"""A job the command line runs in its own process, under a lease like a worker's.

The shell's import used to run its apply with no job at all: killed part way (kill -9, a
dropped SSH session) it left the import "importing" for ever, its segment undeletable and
nothing in `referral-bot jobs`. Queued as a running job whose lease this process renews, it
is taken over by a worker once the lease lapses, and resumes at the import's cursor; an
interruption the process sees (Ctrl-C) hands it back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator

from bot.jobs import queue
from bot.jobs.worker import about
from models import Database, Job
from models.db import let_go_of_interrupted

log = logging.getLogger(__name__)


def shell_owner() -> str:
    """The lease owner's name for this process, as `referral-bot jobs` shows it."""
    return f"shell:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def running_here(db: Database, team_id: str, job_id: int, owner: str,
                       lease_seconds: float) -> AsyncIterator[Job]:  # fmt: skip
    """Renew the lease of the job (queued by `queue.enqueue_running_in` for `owner`) while the
    block runs; then finish it, or, if the block fails or is interrupted, hand it back so a
    worker runs it again at once (its work resumes where this run stopped)."""
    job = await queue.get_job(db, team_id, job_id)
    assert job is not None
    beat = asyncio.create_task(_renew(db, job, owner, lease_seconds))
    try:
        yield job
    except BaseException as exc:
        await _stop(beat)
        let_go_of_interrupted(exc)
        await _hand_back(db, job, owner)
        raise
    await _stop(beat)
    try:
        await queue.finish(db, job, owner)
    except BaseException as exc:  # Ctrl-C while the end was recorded: a worker finds it done
        let_go_of_interrupted(exc)
        await _hand_back(db, job, owner)
        raise


async def _stop(beat: asyncio.Task[None]) -> None:
    """Cancel the lease's renewal and wait until it has stopped (a heartbeat cancelled part
    way holds SQLite's write lock until it has, see `let_go_of_interrupted`)."""
    beat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await beat


async def _hand_back(db: Database, job: Job, owner: str) -> None:
    """Queue the job again at once for the workers (its work resumes where this run left
    it), instead of leaving it running under a lease nobody renews."""
    try:
        if await asyncio.shield(queue.release(db, job, owner)):
            log.warning("%s stopped part way: a worker finishes it (`referral-bot worker`), "
                        "or `referral-bot jobs cancel %s` ends it with what it did",
                        about(job), job.id)  # fmt: skip
    except Exception:
        log.exception("%s could not be handed back: a worker takes it over once its lease "
                      "lapses", about(job))  # fmt: skip


async def _renew(db: Database, job: Job, owner: str, lease_seconds: float) -> None:
    """Every third of the lease, as a worker does; an error is logged and retried sooner."""
    interval = lease_seconds / 3
    wait = interval
    while True:
        await asyncio.sleep(wait)
        try:
            if not await queue.heartbeat(db, job, owner, lease_seconds):
                return  # cancelled (`jobs cancel`): the import sees its batch stopped
            wait = interval
        except Exception as exc:  # SQLite: a long chunk of this very process holds the lock
            wait = min(1.0, interval)
            log.warning("%s: renewing its lease failed (%s); retrying in %.1f s", about(job),
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__, wait)
