"""/healthz's view of the database.

A process whose database is down acks no slash command and runs no job, yet its port still
answers: /healthz said 200 "ok" all along. So it runs one cheap query under a short timeout
and answers 503 when that fails. Orchestrators probe every few seconds, often from several
places at once: a result is kept for a moment, and probes that arrive while a query is under
way wait for that one instead of each opening a connection (a database that hangs would
otherwise collect one stuck query per probe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from models import Database
from models.db import driver_error, sqlite_file

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
CACHE_SECONDS = 1.5
# Reads the database itself (a bare SELECT 1 never touches a SQLite file) and no workspace data
_PROBE = text("SELECT 1 FROM alembic_version")


class DatabaseHealth:
    """Whether one cheap query gets an answer within `timeout_seconds`, checked at most once
    per `cache_seconds`."""

    def __init__(self, db: Database, *, timeout_seconds: float = TIMEOUT_SECONDS,
                 cache_seconds: float = CACHE_SECONDS) -> None:  # fmt: skip
        self.db = db
        self.timeout_seconds = timeout_seconds
        self.cache_seconds = cache_seconds
        self._last: dict[str, Any] | None = None
        self._checked_at = 0.0
        self._running: asyncio.Task[dict[str, Any]] | None = None
        self._path = sqlite_file(db.url) if db.is_sqlite else None
        # the SQLite file's (device, inode): the one there at the start (serve has opened and
        # migrated it by then), else at the first answered probe
        self._identity: tuple[int, int] | None = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                found = os.stat(self._path)
                self._identity = (found.st_dev, found.st_ino)

    async def report(self) -> dict[str, Any]:
        """{"ok": True}, or {"ok": False, "error": "unreachable" or "no answer within 2 s"}.

        /healthz is on the public port: the driver's own error (a host, a user name, "password
        authentication failed") goes to the log only, never to whoever asks."""
        if self._last is not None and time.monotonic() - self._checked_at < self.cache_seconds:
            return self._last
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._check(), name="database-health")
        return await asyncio.shield(self._running)  # a probe that gives up leaves it to others

    async def _check(self) -> dict[str, Any]:
        detail = ""
        try:
            await asyncio.wait_for(self._query(), self.timeout_seconds)
            report: dict[str, Any] = {"ok": True}
            if (lost := self._file_lost()) is not None:
                report, detail = {"ok": False, "error": lost}, f"{lost}: restart this process"
        except TimeoutError:
            report = {"ok": False, "error": f"no answer within {self.timeout_seconds:g} s"}
        except Exception as exc:  # whatever the driver raises: the probe must answer
            report = {"ok": False, "error": "unreachable"}
            detail = self._one_line(exc)
        self._log_change(report, detail)
        self._last, self._checked_at = report, time.monotonic()
        return report

    def _file_lost(self) -> str | None:
        """What became of the SQLite file this process opened, if it isn't at its path any
        more: removed, or replaced (a backup copied back). Its connections go on reading and
        writing the file they opened, which nothing else will see again: clicks and
        unsubscribes were recorded into a deleted file while /healthz said "ok"."""
        if self._path is None:
            return None
        try:
            found = os.stat(self._path)
        except FileNotFoundError:
            return "the database file was removed"
        except OSError:
            return None  # unreadable here: the query above says what matters
        identity = (found.st_dev, found.st_ino)
        if self._identity is None:
            self._identity = identity  # the file the first answered probe read
        return None if identity == self._identity else "the database file was replaced"

    async def _query(self) -> None:
        async with self.db.engine.connect() as conn:
            await conn.execute(_PROBE)

    def _one_line(self, exc: BaseException) -> str:
        """The driver's own error, first line, with the URL's password masked if it shows."""
        line = driver_error(exc)
        password = make_url(self.db.url).password
        return line.replace(str(password), "***") if password else line

    def _log_change(self, report: dict[str, Any], detail: str) -> None:
        """Log when the database stops or starts answering (with the driver's error), not at
        every probe."""
        was_ok = self._last is None or self._last["ok"]
        where = make_url(self.db.url).render_as_string(hide_password=True)
        if was_ok and not report["ok"]:
            log.warning("health check: the database %s doesn't answer (/healthz now answers "
                        "503): %s", where, detail or report["error"])  # fmt: skip
        elif not was_ok and report["ok"]:
            log.info("health check: the database %s answers again", where)
