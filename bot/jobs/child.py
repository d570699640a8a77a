"""`serve`'s background jobs in child processes: `referral-bot worker`, supervised.

An import parses and writes for seconds at a time; in the web process it would share the
event loop and the GIL with Slack's requests, which must be acked within 3 seconds (and are
measured by bench/ack_latency.py). A child process shares neither. `WorkerSupervisor` restarts
a child that dies; `stop()` sends it SIGTERM, on which it hands back or finishes its current
chunk and exits (the same as a `referral-bot worker` run by hand).

Children run at a lower CPU priority (`WORKER_NICENESS`): on a small machine an import can
keep every core busy, and acks that wait for a core were half of p99 under a 1M-row import in
bench/ack_latency.py. The web process keeps its priority; jobs take whatever it leaves (on
Linux, as SCHED_IDLE, only what no other process wants: a machine whose cores other work keeps
busy starves them, and on SQLite the chunk a starved child is writing holds the write lock that
serve's own writes wait for; README says to run `referral-bot worker` by hand there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from bot.jobs.supervisor import WaitingForDatabase
from bot.settings import Settings

log = logging.getLogger(__name__)


WORKER_NICENESS = 10  # added to serve's own; a job's parser child inherits it
# A child that ended as a stop signal ends it (0: it stopped after SIGTERM or SIGINT, or the
# signal's own status) waits this long for serve's stop() before it counts as a crash.
STOP_GRACE_SECONDS = 2.0
# A child still running this long after its SIGTERM is killed: one stuck in a chunk (a hung
# read) kept serve from ever exiting, and a second SIGTERM did nothing. Its job's lease then
# lapses and a worker resumes it. Below Kubernetes' default grace of 30 s.
CHILD_STOP_SECONDS = 25.0
_STOPPED_BY_SIGNAL = frozenset({0, -signal.SIGTERM, -signal.SIGINT})
# `referral-bot worker` exits with os.EX_TEMPFAIL (sysexits' "try again later") when it couldn't
# reach the database as it started: started again until it can, never counted as a crash.


def _lower_priority(pid: int) -> None:
    """Make the started child nicer than serve, from here: a `preexec_fn` would run Python
    between fork and exec, which isn't safe in a process with threads (aiosqlite's, the
    executor's). Never fatal: the worker then merely competes with the acks.

    On Linux the child also runs as SCHED_IDLE: a niced process keeps its core until the
    scheduler's wakeup granularity says otherwise, so an ack arriving while both cores import
    could wait for it; an idle-class process gives way at once to any normal one."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid,
                       min(os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS, 19))
    except OSError as exc:
        log.warning("could not lower the priority of worker process %s: %s", pid, exc)
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:
            log.warning("could not make worker process %s idle-class: %s", pid, exc)


class WorkerExited(Exception):
    """The worker process ended without being asked to (the supervisor starts another)."""


class WorkerWaitsForDatabase(WorkerExited, WaitingForDatabase):
    """The worker process couldn't reach the database as it started (EX_TEMPFAIL)."""


# Settings whose being given at all means something (bot.cli._apply_default_locale): passed
# on only when they were.
_ONLY_WHEN_GIVEN = frozenset({"default_locale", "outbox_dir"})


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that gives a child process these very settings (they may have come
    from a `.env` file or, in tests, from code rather than from this process's environment)."""
    env = dict(os.environ if base is None else base)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None or (name in _ONLY_WHEN_GIVEN and name not in settings.model_fields_set):
            env.pop(name.upper(), None)
            if name == "outbox_dir":  # blank is unset (Settings): a `.env` the child reads
                env["OUTBOX_DIR"] = ""  # mustn't give it the outbox this process hadn't
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, Path):
            text = str(value.absolute())
        else:
            text = str(value)
        env[name.upper()] = text
    return env


# What most often sends these signals to a worker that nobody asked to stop
_SIGNAL_CAUSES = {signal.SIGKILL: "out of memory, or killed by hand",
                  signal.SIGSEGV: "a crash in a native library",
                  signal.SIGABRT: "a crash in a native library"}  # fmt: skip


def ended_how(code: int) -> str:
    """How a child ended, for /healthz and the log: "exited with status -9" was all /healthz
    said of a child the kernel killed for want of memory. A signal is named with what sends it
    most often; an exit with a status points to the traceback, which the child wrote to the
    stderr it shares with serve."""
    if code >= 0:
        return f"exited with status {code} (its error is in serve's log)"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    why = _SIGNAL_CAUSES.get(-code, "")
    return f"was killed by {name} (status {code}{': ' + why if why else ''})"


class ChildWorker:
    """One `referral-bot worker` process; a Runnable for `WorkerSupervisor`."""

    def __init__(self, env: Mapping[str, str], *, name: str = "worker",
                 stop_seconds: float = CHILD_STOP_SECONDS) -> None:  # fmt: skip
        self.env = dict(env)
        self.name = name
        self.stop_seconds = stop_seconds
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def run(self) -> None:
        if self._stopping:
            return
        # its stdin is a pipe this process never writes to: when this process ends, however
        # it ends, the pipe closes and the worker stops (`--stop-with-stdin`). -P: `-m` put
        # the working directory first on the import path, and a folder `models` (or `bot`)
        # where serve was typed was imported instead of ours: no child ever started
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "bot.launch", "worker", "--stop-with-stdin", env=self.env,
            stdin=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _lower_priority(self._process.pid)
        log.info("%s process %s started", self.name, self._process.pid)
        if self._stopping:  # asked to stop while it was starting
            self._terminate()
        code = await self._process.wait()
        if not self._stopping and code in _STOPPED_BY_SIGNAL:
            # stopped, not crashed: systemd's stop and Ctrl-C signal the whole process group,
            # and the child may finish before serve, signalled too, gets to stop() it; a
            # crash alert and a restart during every shutdown were false
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), STOP_GRACE_SECONDS)
        if self._stopping:
            log.info("%s process %s stopped (status %s)", self.name, self._process.pid, code)
            return
        if code == os.EX_TEMPFAIL:
            raise WorkerWaitsForDatabase(f"the {self.name} process {self._process.pid} couldn't "
                                         "reach the database as it started")  # fmt: skip
        raise WorkerExited(f"the {self.name} process {self._process.pid} {ended_how(code)}")

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._terminate()

    def _terminate(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            asyncio.get_running_loop().call_later(self.stop_seconds, self._kill, process)

    def _kill(self, process: asyncio.subprocess.Process) -> None:
        """SIGKILL for a child that didn't stop within stop_seconds of its SIGTERM."""
        if process.returncode is None:
            log.warning("%s process %s didn't stop %.0f s after SIGTERM: killed (its job's "
                        "lease lapses, and a worker resumes it)", self.name, process.pid,
                        self.stop_seconds)  # fmt: skip
            process.kill()
