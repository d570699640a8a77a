"""Keep the in-process worker of `serve` alive, and say how it is doing for /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal, Protocol

from bot.jobs.worker import Backoff, failure_words

log = logging.getLogger(__name__)
# /healthz's state of a worker that couldn't reach the database as it started
WAITING_FOR_DATABASE = "waiting for the database"
Ended = Literal["stopped", "waiting", "crashed"]  # how a run of the worker ended


class WaitingForDatabase(Exception):
    """The worker ended because it couldn't reach the database as it started: not a crash.

    A child restarted during a database outage exits at once; counted as crashes, a few
    restarts over an outage of ~2.5 minutes made the supervisor give up for good, and no
    worker ran once the database was back. These are retried, with the same capped pause,
    for as long as it takes."""


class Runnable(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


def without_worker() -> dict[str, Any]:
    """Health when this process runs no worker (`serve --no-worker`, RUN_WORKER=false)."""
    return {"ok": True, "worker": {"state": "off", "restarts": 0, "last_error": None}}


def combined_health(supervisors: list[WorkerSupervisor]) -> dict[str, Any]:
    """/healthz for several supervised workers: ok while none has failed for good."""
    reports = [s.health() for s in supervisors]
    return {"ok": all(r["ok"] for r in reports), "worker": reports[0]["worker"],
            "workers": [r["worker"] for r in reports]}  # fmt: skip


# How long a cancelled worker run gets to unwind (its finally blocks) before serve goes on.
CANCEL_SECONDS = 2.0


class WorkerSupervisor:
    """Runs a worker and restarts it, after a growing pause, whenever it ends with an exception.

    States: "off" (not started, or stopped), "running", "restarting" (waiting to start it
    again), "waiting for the database" (it couldn't reach the database as it started: it is
    started again, after the same pause, until it can; never counted as a crash) and
    "failed": it crashed `max_failures` times in a row without ever running for
    `max_backoff_seconds`, or the supervisor itself died. Only "failed" makes /healthz 503,
    so whatever runs the process can restart all of it.
    """

    def __init__(
        self,
        worker: Runnable,
        *,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        max_failures: int | None = 10,
        settle_seconds: float = 5.0,
    ) -> None:
        self.worker = worker
        self.settle_seconds = settle_seconds
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_failures = max_failures
        self.state = "off"
        self.restarts = 0
        self.last_error: str | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.state = "running"  # from now on, not from the task's first step
            self._task = asyncio.create_task(self._supervise(), name="worker-supervisor")

    async def stop(self, within: float | None = None) -> None:
        """Ask the worker to stop (it hands back its job at the next checkpoint) and wait:
        `within` seconds at most, then its run is cancelled (a worker in this process, whose
        job waited on a Slack, Mailchimp or mail server call held serve's stop for as long as
        that call's own timeouts, past any orchestrator's grace). The job's lease lapses and
        a worker resumes it, as after a child killed for not stopping."""
        self._stopping.set()
        self.worker.stop()
        if self._task is None:
            return
        done, _ = await asyncio.wait([self._task], timeout=within)
        if not done:
            log.warning("the background worker didn't stop within %.0f s: its job is given up "
                        "here (its lease lapses, and a worker resumes it)", within)  # fmt: skip
            self._task.cancel()
            await asyncio.wait([self._task], timeout=CANCEL_SECONDS)

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.state != "failed",
            "worker": {"state": self.state, "restarts": self.restarts,
                       "last_error": self.last_error},
        }  # fmt: skip

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.backoff_seconds, self.max_backoff_seconds)
        failures = 0
        outcome: Ended = "crashed"  # how the last run ended: none yet
        try:
            while not self._stopping.is_set():
                started = loop.time()
                outcome = await self._run_once(waiting=outcome == "waiting")
                if outcome == "stopped":
                    break  # as asked
                if loop.time() - started >= self.max_backoff_seconds:
                    backoff.reset()  # it ran fine for a while: this is a new problem
                    failures = 0
                if outcome == "crashed":
                    failures += 1
                if self.max_failures is not None and failures >= self.max_failures:
                    self.state = "failed"
                    log.error("the background worker crashed %d times in a row; not restarting "
                              "it again (/healthz now answers 503)", failures)  # fmt: skip
                    return
                self.state = WAITING_FOR_DATABASE if outcome == "waiting" else "restarting"
                delay = backoff.next()
                log.warning("restarting the background worker in %.1f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if not self._stopping.is_set():
                    self.restarts += 1
        except BaseException:
            self.state = "failed"  # cancelled or worse: nothing will restart the worker now
            raise
        self.state = "off"

    async def _run_once(self, *, waiting: bool) -> Ended:
        """Run the worker until it ends: "waiting" when it couldn't reach the database,
        "crashed" (or returned unasked), or "stopped" as asked.

        After a run that couldn't reach the database the state stays "waiting for the
        database" until this one has lasted `settle_seconds`: a child that reaches it runs on,
        one that doesn't exits within a second or two, and /healthz said "running" meanwhile."""
        settled = None
        if waiting:
            settled = asyncio.get_running_loop().call_later(self.settle_seconds, self._settled)
        else:
            self.state = "running"
        try:
            await self.worker.run()
        except WaitingForDatabase as exc:
            self.last_error = str(exc)
            log.warning("the background worker can't reach the database yet: %s", exc)
            return "waiting"
        except Exception as exc:
            # /healthz is public: a database error in words, never its SQL and parameters
            self.last_error = failure_words(exc)
            log.exception("the background worker crashed")
            return "crashed"
        finally:
            if settled is not None:
                settled.cancel()
        if self._stopping.is_set():
            return "stopped"
        self.last_error = "it returned without being asked to stop"
        log.error("the background worker returned without being asked to stop")
        return "crashed"

    def _settled(self) -> None:
        if self.state == WAITING_FOR_DATABASE:
            self.state = "running"
