"""Workers: claim a job, run its handler under a heartbeat, then finish, retry or release it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.jobs import queue
from models import Database, Job

log = logging.getLogger(__name__)


class JobStopped(Exception):
    """Raised at a checkpoint when the worker is shutting down or the job was cancelled."""


class PermanentJobError(Exception):
    """A failure that retrying cannot fix (bad file, missing batch): fail the job at once."""


@dataclass
class JobContext:
    """What a handler gets: the job's plain payload and ways to report and to stop cleanly."""

    db: Database
    job: Job
    owner: str
    payload: dict[str, Any]
    stopping: asyncio.Event
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def team_id(self) -> str:
        return self.job.team_id

    def checkpoint(self) -> None:
        """Call between units of work: stops here if shutting down or cancelled."""
        if self.stopping.is_set() or self.lost.is_set():
            raise JobStopped

    async def progress(self, done: int, total: int) -> None:
        if not await queue.report_progress(self.db, self.job, self.owner, done, total):
            self.lost.set()
        self.checkpoint()


Handler = Callable[[JobContext], Awaitable[None]]


@dataclass
class WorkerConfig:
    concurrency: int = 1
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    retry_base_seconds: float = 5.0


class Worker:
    """Runs jobs until stop(); safe to run several in several processes on one database."""

    def __init__(self, db: Database, handlers: dict[str, Handler], config: WorkerConfig) -> None:
        self.db = db
        self.handlers = handlers
        self.config = config
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = asyncio.Event()
        self.completed = 0

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._loop() for _ in range(max(1, self.config.concurrency))))

    async def run_until_idle(self) -> None:
        """Drain the queue once and return (tests, one-shot commands)."""
        while (
            job := await queue.claim(self.db, self.owner, self.config.lease_seconds)
        ) is not None:
            await self._run(job)

    async def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                job = await queue.claim(self.db, self.owner, self.config.lease_seconds)
            except Exception:  # the database may be restarting: wait and try again
                log.exception("claiming a job failed")
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.config.poll_seconds)
                continue
            await self._run(job)

    async def _run(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        ctx = JobContext(self.db, job, self.owner, json.loads(job.payload or "{}"), self.stopping)
        beat = asyncio.create_task(self._heartbeat(ctx))
        try:
            if handler is None:
                raise PermanentJobError(f"no handler for job kind {job.kind!r}")
            await handler(ctx)
        except JobStopped:
            if not ctx.lost.is_set():
                await queue.release(self.db, job, self.owner)
                log.info("job %s released for another worker", job.id)
        except PermanentJobError as exc:
            await queue.fail(self.db, job, self.owner, str(exc), retry_base=0, permanent=True)
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            await queue.fail(self.db, job, self.owner, f"{type(exc).__name__}: {exc}",
                             retry_base=self.config.retry_base_seconds)  # fmt: skip
        else:
            if await queue.finish(self.db, job, self.owner):
                self.completed += 1
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _heartbeat(self, ctx: JobContext) -> None:
        while True:
            await asyncio.sleep(self.config.lease_seconds / 3)
            if not await queue.heartbeat(self.db, ctx.job, self.owner, self.config.lease_seconds):
                ctx.lost.set()  # cancelled, or our lease expired and someone else has it
                return
