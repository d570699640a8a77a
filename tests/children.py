"""Worker children that a loaded machine doesn't starve, for tests that start them.

serve's worker children run niced and, on Linux, as SCHED_IDLE (bot/jobs/child.py): they get
only the CPU no other process wants. On CI's two cores kept busy by the suite's other workers
(and by other work), an idle-class child got next to nothing: importing its modules and
registering took longer than the tests waited (a minute and more), and they failed for a
reason that had nothing to do with what they check. `lent_cpu` watches this process's
children: each one seen niced and idle-class (what serve gave it) is recorded, then given the
normal class and this process's niceness back (where the system lets a process raise another's
priority; otherwise only the normal class), so the rest of the test runs at the pace of the
test's own process. Tests assert the priority a child was given on what was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Given:
    """The CPU priority serve gave a worker child, as first seen."""

    niceness: int
    idle: bool  # SCHED_IDLE


class LentCpu:
    """The priorities this process's children were given (`given`, by pid)."""

    def __init__(self) -> None:
        self.given: dict[int, Given] = {}
        self._own = os.getpriority(os.PRIO_PROCESS, 0)

    async def of(self, pid: int, seconds: float = 60.0) -> Given:
        """What child `pid` was given, once it was seen idle-class (or `seconds` passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while pid not in self.given:
            if loop.time() > deadline:
                raise AssertionError(f"worker process {pid} was never seen idle-class")
            await asyncio.sleep(0.01)
        return self.given[pid]

    def _lend(self) -> None:
        for pid in _children(os.getpid()):
            if pid in self.given:
                continue
            try:
                if os.sched_getscheduler(pid) != os.SCHED_IDLE:
                    continue  # not lowered yet (serve lowers it just after it started)
                self.given[pid] = Given(os.getpriority(os.PRIO_PROCESS, pid), idle=True)
                os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
                with contextlib.suppress(PermissionError):  # unprivileged: it stays niced
                    os.setpriority(os.PRIO_PROCESS, pid, self._own)
            except (ProcessLookupError, PermissionError):
                continue  # gone already, or not ours to change: it keeps its priority

    async def _watch(self) -> None:
        while True:
            self._lend()
            await asyncio.sleep(0.02)


def _children(pid: int) -> list[int]:
    """`pid`'s children and theirs, from /proc (Linux): a tenth of a millisecond a look, where
    psutil's walk through every process took 10 ms on a loaded machine, every 20 ms."""
    found: list[int] = []
    for listing in glob.glob(f"/proc/{pid}/task/*/children"):
        with contextlib.suppress(OSError), open(listing) as pids:
            found += [int(child) for child in pids.read().split()]
    return found + [grandchild for child in found for grandchild in _children(child)]


@contextlib.asynccontextmanager
async def lent_cpu() -> AsyncIterator[LentCpu]:
    """Within it, this process's idle-class children are given CPU as they appear (Linux;
    elsewhere nothing is idle-class, and nothing changes)."""
    lent = LentCpu()
    if not hasattr(os, "SCHED_IDLE"):
        yield lent
        return
    watching = asyncio.create_task(lent._watch())
    try:
        yield lent
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


@contextlib.contextmanager
def lent_cpu_in_thread() -> Iterator[LentCpu]:
    """`lent_cpu` for a test that waits on a subprocess without an event loop: a thread
    watches meanwhile. serve's start-up lines, read until its idle-class child said "waiting
    for jobs", took 20-30 s on a loaded machine (the child's modules loading on CPU nobody
    else wanted)."""
    lent = LentCpu()
    if not hasattr(os, "SCHED_IDLE"):
        yield lent
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            lent._lend()

    watching = threading.Thread(target=watch, daemon=True)
    watching.start()
    try:
        yield lent
    finally:
        stop.set()
        watching.join()
