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
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable

from bot.imports.job_kinds import IMPORT_JOB, UNDO_JOB
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
                       lease_seconds: float, *, stopped: Callable[[], str] | None = None,
                       undo: int | None = None) -> AsyncIterator[Job]:  # fmt: skip
    """Renew the lease of the job (queued by `queue.enqueue_running_in` for `owner`) while the
    block runs; then finish it, or, if the block fails or is interrupted, hand it back so a
    worker runs it again at once (its work resumes where this run stopped).

    Handed back, it is said on stderr, for the person at the shell: `stopped()` says what
    stopped and how far it got ("Import #32 stopped part way (2,000 of 9,000 rows
    applied)"), and `undo`, the import that `referral-bot undo` takes back either way."""
    reading = asyncio.ensure_future(queue.get_job(db, team_id, job_id))
    try:
        job = await asyncio.shield(reading)
    except BaseException as exc:  # Ctrl-C while the job was read: it was left running under
        # this lease until it lapsed, and nothing said; the read ends, and the job goes back
        read = None
        try:
            read = await reading
        except Exception:  # the read failing too: the lease lapses, a worker takes it over
            log.warning("job %s of team %s: interrupted while it was read, and the read "
                        "failed: it stays running under %s until its lease lapses", job_id,
                        team_id, owner, exc_info=True)  # fmt: skip
        if read is not None:
            let_go_of_interrupted(exc)
            await _hand_back(db, read, owner, _Said(read, stopped, undo))
        raise
    assert job is not None
    said = _Said(job, stopped, undo)
    beat = asyncio.create_task(_renew(db, job, owner, lease_seconds))
    try:
        yield job
        await _stop(beat)
        await queue.finish(db, job, owner)
    except BaseException as exc:  # failed or interrupted, or Ctrl-C while the end was recorded
        await _stop(beat)  # cancelled while it was stopped: it still must end first
        let_go_of_interrupted(exc)
        await _hand_back(db, job, owner, said)
        raise


class _Said:
    """What the shell is told of a job it handed back to the workers, in a user's words: it
    printed the log's "job 44 (import, team local, {"batch_id": 32}) stopped part way"."""

    def __init__(self, job: Job, stopped: Callable[[], str] | None, undo: int | None) -> None:
        self.job, self.stopped, self.undo = job, stopped, undo

    def what(self) -> str:
        """"Import #32 stopped part way (...)", or as the job's kind says it."""
        if self.stopped is not None:
            return self.stopped()
        try:
            batch = json.loads(self.job.payload or "{}").get("batch_id")
        except (ValueError, AttributeError):
            batch = None
        if self.job.kind == IMPORT_JOB and isinstance(batch, int):
            return f"Import #{batch} stopped part way"
        if self.job.kind == UNDO_JOB and isinstance(batch, int):
            return f"The undo of import #{batch} stopped part way"
        return f"Job {self.job.id} ({self.job.kind}) stopped part way"

    def handed_back(self) -> str:
        undo = (f"; either way, `referral-bot undo {self.undo}` then takes out what it added"
                if self.undo is not None else "")  # fmt: skip
        return (f"{self.what()}: the next worker to run finishes it (`referral-bot worker`, or "
                f"`referral-bot serve`'s), or `referral-bot jobs cancel {self.job.id}` stops "
                f"it where it is{undo}.")

    def not_handed_back(self, exc: BaseException) -> str:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return (f"{self.what()}, and couldn't be handed to the workers now ({reason}): a "
                "worker takes it over once its lease lapses (JOB_LEASE_SECONDS), or "
                f"`referral-bot jobs cancel {self.job.id}` stops it where it is.")


async def _stop(beat: asyncio.Task[None]) -> None:
    """Cancel the lease's renewal and wait until it has stopped (a heartbeat cancelled part
    way holds SQLite's write lock until it has, see `let_go_of_interrupted`)."""
    if not beat.cancelling():  # once: cancelled again, its connection's close was cut off
        beat.cancel()
    # not `await beat` under suppress(CancelledError): a Ctrl-C meanwhile, the caller's own
    # cancellation, was passed on to the heartbeat, then swallowed as the heartbeat's
    await asyncio.wait([beat])


async def _hand_back(db: Database, job: Job, owner: str, said: _Said) -> None:
    """Queue the job again at once for the workers (its work resumes where this run left
    it), instead of leaving it running under a lease nobody renews."""
    try:
        if await asyncio.shield(queue.release(db, job, owner)):
            log.info("%s handed back to the workers", about(job))
            _tell(said.handed_back())
    except Exception as exc:
        log.info("%s could not be handed back", about(job), exc_info=True)
        _tell(said.not_handed_back(exc))


def _tell(line: str) -> None:
    """One line on stderr for the person at the shell (before main's "interrupted")."""
    with contextlib.suppress(OSError, ValueError):  # a closed or full stderr: nothing to do
        print(line, file=sys.stderr, flush=True)


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
