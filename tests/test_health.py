"""`serve` supervises its worker: a crashed worker restarts, and /healthz says how it is doing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from bot.app import build_web_app, serve
from bot.jobs.supervisor import WorkerSupervisor
from bot.settings import load_settings
from models import Database
from tests.children import lent_cpu
from tests.fakes.slack_api import serve as serve_app

T = TypeVar("T")
# How long a worker child may take to start, register or stop: a hang guard, not a measure
# (a Python process importing the bot on a machine whose cores other work keeps busy)
CHILD_SECONDS = 120.0


class CrashingWorker:
    """Raises from run() `crashes` times (None: always), then runs until stopped."""

    def __init__(self, crashes: int | None) -> None:
        self.crashes = crashes
        self.runs = 0
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.crashes is None or self.runs <= self.crashes:
            await asyncio.sleep(0.01)
            raise RuntimeError(f"database exploded (run {self.runs})")
        await self.stopping.wait()

    def stop(self) -> None:
        self.stopping.set()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@asynccontextmanager
async def health_server(health: Callable[[], dict[str, Any]]) -> AsyncIterator[str]:
    """build_web_app's routes on a real loopback port; yields the /healthz URL."""
    async with serve_app(build_web_app(None, health=health)) as url:
        yield f"{url}/healthz"


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def until_value(check: Callable[[], Awaitable[T]], seconds: float, what: str) -> T:
    """What `check` answers once it is true, asked every 50 ms for `seconds` at most."""
    deadline = time.monotonic() + seconds
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def test_a_crashed_worker_is_restarted_and_healthz_counts_the_restarts() -> None:
    worker = CrashingWorker(crashes=2)
    supervisor = WorkerSupervisor(worker, backoff_seconds=0.05, max_backoff_seconds=1)
    async with health_server(supervisor.health) as url:
        assert await get(url) == (200, {"ok": True, "worker": {
            "state": "off", "restarts": 0, "last_error": None}})  # fmt: skip
        supervisor.start()
        await until(lambda: worker.runs == 3 and supervisor.state == "running", 10, "restarts")
        status, report = await get(url)
        assert status == 200 and report["ok"] is True
        assert report["worker"] == {
            "state": "running", "restarts": 2,
            "last_error": "RuntimeError: database exploded (run 2)",
        }  # fmt: skip
        await supervisor.stop()
        assert await get(url) == (200, {"ok": True, "worker": {
            "state": "off", "restarts": 2,
            "last_error": "RuntimeError: database exploded (run 2)"}})  # fmt: skip
    assert worker.runs == 3


async def test_healthz_says_a_database_crash_in_words_never_its_sql() -> None:
    """/healthz answers anyone: an in-process worker (WORKER_PROCESSES=0) that crashed on a
    statement the database refused showed SQLAlchemy's text, the SQL and its parameters (an
    address among them) included."""
    from sqlalchemy.exc import IntegrityError

    from bot.jobs.worker import DATABASE_REFUSED

    class RefusedWorker(CrashingWorker):
        async def run(self) -> None:
            self.runs += 1
            raise IntegrityError("INSERT INTO contact (email) VALUES (?)",
                                 ("ada@example.com",), Exception("UNIQUE constraint failed"))

    worker = RefusedWorker(crashes=None)
    supervisor = WorkerSupervisor(worker, backoff_seconds=30, max_backoff_seconds=60)
    async with health_server(supervisor.health) as url:
        supervisor.start()
        await until(lambda: supervisor.state == "restarting", 10, "the first crash")
        status, report = await get(url)
        await supervisor.stop()
    assert status == 200 and report["worker"]["last_error"] == DATABASE_REFUSED


async def test_healthz_reports_restarting_while_it_waits_and_stop_ends_the_wait() -> None:
    worker = CrashingWorker(crashes=None)
    supervisor = WorkerSupervisor(worker, backoff_seconds=30, max_backoff_seconds=60)
    async with health_server(supervisor.health) as url:
        supervisor.start()
        await until(lambda: supervisor.state == "restarting", 10, "the first crash")
        status, report = await get(url)
        assert status == 200 and report["ok"] is True
        assert report["worker"]["state"] == "restarting"
        assert report["worker"]["last_error"] == "RuntimeError: database exploded (run 1)"
        started = time.monotonic()
        await supervisor.stop()  # no 30 s wait for the next start
        assert time.monotonic() - started < 5
        assert supervisor.state == "off" and worker.runs == 1


async def test_a_worker_that_keeps_crashing_makes_healthz_answer_503() -> None:
    worker = CrashingWorker(crashes=None)
    supervisor = WorkerSupervisor(worker, backoff_seconds=0.01, max_backoff_seconds=1,
                                  max_failures=3)  # fmt: skip
    async with health_server(supervisor.health) as url:
        supervisor.start()
        await until(lambda: supervisor.state == "failed", 10, "the supervisor to give up")
        status, report = await get(url)
        assert status == 503
        assert report == {"ok": False, "worker": {
            "state": "failed", "restarts": 2,
            "last_error": "RuntimeError: database exploded (run 3)"}}  # fmt: skip
        await supervisor.stop()
    assert worker.runs == 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("run_worker", [True, False])
async def test_serve_reports_its_worker_on_healthz(db: Database, run_worker: bool) -> None:
    port = free_port()
    settings = load_settings(database_url=db.url, database_schema=db.schema,
                             slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                             slack_app_token="", slack_api_url="http://127.0.0.1:9/api/",
                             host="127.0.0.1", port=port, worker_poll_seconds=0.05)  # fmt: skip
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, db, run_worker=run_worker, stop=stop))
    try:
        for _ in range(200):
            try:
                status, report = await get(f"http://127.0.0.1:{port}/healthz")
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("serve did not start")
        assert status == 200
        state = "running" if run_worker else "off"
        worker = {"state": state, "restarts": 0, "last_error": None}
        expected = {"ok": True, "worker": worker, "database": {"ok": True}}
        if run_worker:
            expected["workers"] = [worker]
        assert report == expected
    finally:
        stop.set()
        await asyncio.wait_for(serving, 30)


async def test_serve_runs_jobs_in_a_child_process_it_restarts(db: Database) -> None:
    """Jobs never run in the process that acks Slack; a killed worker process is replaced."""
    import os
    import signal

    from sqlalchemy import text

    from bot.imports.job_kinds import PURGE_JOB
    from bot.jobs.queue import enqueue
    from bot.workspaces import ensure_workspace

    port = free_port()
    settings = load_settings(database_url=db.url, database_schema=db.schema,
                             slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                             slack_app_token="", slack_api_url="http://127.0.0.1:9/api/",
                             host="127.0.0.1", port=port, worker_poll_seconds=0.05)  # fmt: skip
    await ensure_workspace(db, "T1")

    async def workers() -> list[int]:
        async with db.begin() as conn:
            return [int(pid) for (pid,) in await conn.execute(
                text("SELECT pid FROM worker_process"))]  # fmt: skip

    async def done(kind: str) -> int:
        async with db.begin() as conn:
            return int((await conn.execute(text(
                "SELECT COUNT(*) FROM job WHERE kind = :k AND state = 'done'"), {"k": kind}
            )).scalar_one())  # fmt: skip

    async def wait_for(what: str, check: Any) -> Any:
        return await until_value(check, CHILD_SECONDS, what)

    stop = asyncio.Event()
    async with lent_cpu() as lent:
        serving = asyncio.create_task(serve(settings, db, stop=stop))
        try:
            first = await wait_for("a worker process", workers)
            assert first and os.getpid() not in first
            # at a lower CPU priority than serve, which must ack Slack within 3 s (as it was
            # started: lent_cpu gives it CPU back, a loaded machine starving it otherwise)
            own = os.getpriority(os.PRIO_PROCESS, 0)
            if hasattr(os, "SCHED_IDLE"):  # Linux: and it gives way to serve at once
                assert (await lent.of(first[0])).idle
                assert os.sched_getscheduler(0) != os.SCHED_IDLE
                given = lent.given[first[0]].niceness
            else:
                given = os.getpriority(os.PRIO_PROCESS, first[0])
            assert given == min(own + 10, 19)
            await enqueue(db, "T1", PURGE_JOB, {})
            await wait_for("the job", lambda: done(PURGE_JOB))

            os.kill(first[0], signal.SIGKILL)  # its row stays (a dead worker's) until it expires

            async def replaced() -> list[int]:
                return [pid for pid in await workers() if pid not in first]

            second = await wait_for("a new worker process", replaced)
            if hasattr(os, "SCHED_IDLE"):
                assert (await lent.of(second[0])).idle
            await enqueue(db, "T1", PURGE_JOB, {}, dedupe_key="again")
            await wait_for("the second job", lambda: _at_least(done(PURGE_JOB), 2))
            status, report = await get(f"http://127.0.0.1:{port}/healthz")
            assert status == 200 and report["worker"]["restarts"] == 1
            assert report["worker"]["last_error"] == (
                f"WorkerExited: the worker 1 process {first[0]} was killed by SIGKILL (status -9: "
                "out of memory, or killed by hand)")  # fmt: skip
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)
    for pid in second:  # stopped with serve
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_worker_child_stopped_by_the_same_signal_as_serve_is_no_crash(
    db: Database, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """systemd's stop and Ctrl-C signal the whole process group: the child may end before
    serve stops it. That was logged as a crash ("the background worker crashed", a traceback)
    and a new child started during the shutdown."""
    import logging
    import os
    import signal

    from sqlalchemy import text

    from bot.jobs.child import STOP_GRACE_SECONDS

    caplog.set_level(logging.INFO, logger="bot")
    port = free_port()
    settings = load_settings(database_url=db.url, database_schema=db.schema,
                             slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                             slack_app_token="", slack_api_url="http://127.0.0.1:9/api/",
                             host="127.0.0.1", port=port, worker_poll_seconds=0.05)  # fmt: skip

    async def workers() -> list[int]:
        async with db.begin() as conn:
            return [int(pid) for (pid,) in await conn.execute(
                text("SELECT pid FROM worker_process"))]  # fmt: skip

    def ended(pid: int) -> bool:
        try:
            os.kill(pid, 0)  # a child that exited and was reaped is gone
        except ProcessLookupError:
            return True
        return False

    stop = asyncio.Event()
    async with lent_cpu():
        serving = asyncio.create_task(serve(settings, db, stop=stop))
        try:
            first = await until_value(workers, CHILD_SECONDS, "a worker process")
            os.kill(first[0], signal.SIGTERM)  # the group's signal reaches the child first ...
            # ... and it has stopped (however long a loaded machine takes it) when serve gets
            # to its own: within the grace a child so ended is given, but after serve noticed
            await until(lambda: ended(first[0]), CHILD_SECONDS, "the worker process to stop")
            await asyncio.sleep(STOP_GRACE_SECONDS / 2)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)
    said = [r.getMessage() for r in caplog.records]
    assert not any("crashed" in m or "restarting" in m for m in said), said
    assert any("stopped (status" in m for m in said), said


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count >= n)


class TcpProxy:
    """A loopback TCP proxy to `target`: `down()` closes its port and every connection through
    it (the database is unreachable, as when its host goes away); `up()` opens the same port
    again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_healthz_answers_503_while_the_database_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The process's port answered 200 "ok" while PostgreSQL was down: nothing acked or ran,
    and nothing told the orchestrator. A real server behind a proxy the test takes down."""
    import uuid

    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_URL, _drop_schema

    if not POSTGRES_URL:
        pytest.skip("needs a PostgreSQL server (TEST_POSTGRES_URL)")
    server = make_url(POSTGRES_URL)
    proxy = TcpProxy(server.host or "127.0.0.1", server.port or 5432)
    await proxy.up()
    url = server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    database = Database(url, schema=schema)
    try:
        async with _healthy(database, url, cache_seconds=0.2) as base:
            await proxy.down()
            status, report = await _until_status(f"{base}/healthz", 503)
            assert status == 503 and report["ok"] is False and report["database"]["ok"] is False
            # the driver's error (host, user) is the log's, not the public port's
            assert report["database"] == {"ok": False, "error": "unreachable"}, report
            assert any("refused" in r.getMessage().lower() for r in caplog.records
                       if r.name == "bot.db_health"), caplog.text  # fmt: skip
            await proxy.up()
            assert await _until_status(f"{base}/healthz", 200) == (
                200, {"ok": True, "database": {"ok": True}})  # fmt: skip
    finally:
        await database.dispose()
        await proxy.down()
        await _drop_schema(schema)  # straight to the server, whatever state the proxy is in


@asynccontextmanager
async def _healthy(database: Database, url: str, *, cache_seconds: float) -> AsyncIterator[str]:
    """A web app whose /healthz asks `database` (migrated first), served; its base URL once
    /healthz says the database is fine."""
    from bot.db_health import DatabaseHealth
    from tests.conftest import migrated

    await migrated(database, url)
    app = build_web_app(None, health=lambda: {"ok": True},
                        database=DatabaseHealth(database, cache_seconds=cache_seconds))
    async with serve_app(app) as base:
        assert await get(f"{base}/healthz") == (200, {"ok": True, "database": {"ok": True}})
        yield base


async def _until_status(url: str, status: int) -> tuple[int, dict[str, Any]]:
    """/healthz once it answers `status` (a result is kept for a moment)."""
    deadline = time.monotonic() + 15
    while True:
        got = await get(url)
        if got[0] == status or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


@asynccontextmanager
async def forwarding(port: int, to: tuple[str, int]) -> AsyncIterator[None]:
    """A TCP port that passes connections on to `to`: the database coming back."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    open_writers: set[asyncio.StreamWriter] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*to)
        open_writers.update((writer, up_writer))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(connected, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for writer in open_writers:
            writer.close()


async def test_a_worker_child_restarted_during_a_database_outage_runs_once_it_is_back(
    db_env: dict[str, str], tmp_path: Any
) -> None:
    """A child restarted while the database is down exits at once (it can't reach it as it
    starts); counted as crashes, max_failures such restarts (~2.5 min with serve's defaults)
    made the supervisor give up for good, and no worker ran once the database was back.
    Meanwhile /healthz now says the worker waits for the database, and the child runs as
    soon as it answers (SQLite: its folder appears; PostgreSQL: its port answers)."""
    from sqlalchemy import make_url, text

    from bot.jobs.child import ChildWorker
    from tests import shell

    url = db_env["DATABASE_URL"]
    if url.startswith("sqlite"):
        later = tmp_path / "not yet"
        env = {"DATABASE_URL": f"sqlite:///{later / 'test.db'}"}
        back: Any = None
    else:
        real = make_url(url)
        port = free_port()  # nothing listens there until the database "comes back"
        env = {**db_env, "DATABASE_URL": real.set(host="127.0.0.1", port=port)
               .render_as_string(hide_password=False)}  # fmt: skip
        back = forwarding(port, (real.host or "127.0.0.1", real.port or 5432))
    # settled after 1 s of a run, not serve's 5: a child that reaches the database runs on
    supervisor = WorkerSupervisor(ChildWorker(shell.environment(env)), backoff_seconds=0.05,
                                  max_backoff_seconds=30, max_failures=3,
                                  settle_seconds=1.0)  # fmt: skip
    async with health_server(supervisor.health) as health, lent_cpu():
        supervisor.start()
        try:
            await until(lambda: supervisor.restarts >= 4 or supervisor.state == "failed",
                        CHILD_SECONDS, "restarts past max_failures")  # fmt: skip
            assert supervisor.state != "failed", supervisor.health()
            deadline = time.monotonic() + CHILD_SECONDS
            while True:  # between two attempts, or in one that started seconds ago
                status, report = await get(health)
                assert status == 200 and report["ok"] is True, report
                if report["worker"]["state"] == "waiting for the database":
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"/healthz never said it waits: {report}")
                await asyncio.sleep(0.05)
            assert "couldn't reach the database" in report["worker"]["last_error"], report
            if back is None:
                later.mkdir()
            else:
                await back.__aenter__()
            database = Database(env["DATABASE_URL"], schema=env.get("DATABASE_SCHEMA"))
            try:
                for _ in range(1200):  # the child registers once it runs
                    await asyncio.sleep(0.1)
                    try:
                        async with database.begin() as conn:
                            if (await conn.execute(text("SELECT COUNT(*) FROM worker_process"))
                                    ).scalar():  # fmt: skip
                                break
                    except Exception:  # not migrated yet
                        continue
                else:
                    raise AssertionError(f"no worker ran: {supervisor.health()}")
            finally:
                await database.dispose()
            await until(lambda: supervisor.state == "running", 60, "the worker to settle")
            assert await get(health) == (200, {"ok": True, "worker": {
                "state": "running", "restarts": supervisor.restarts,
                "last_error": supervisor.last_error}})  # fmt: skip
        finally:
            await supervisor.stop()
            if back is not None:
                await back.__aexit__(None, None, None)


async def test_a_worker_child_that_ignores_sigterm_is_killed_and_serve_stops(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker child stuck in a chunk (a hung read) that didn't stop on SIGTERM kept serve
    from ever exiting: its stop waited for the child with no limit, and a second SIGTERM did
    nothing. It is killed `stop_seconds` after its SIGTERM now."""
    import os
    import stat
    import sys

    from bot.jobs.child import ChildWorker

    pidfile = tmp_path / "child.pid"
    stuck = tmp_path / "stuck-python"  # a `referral-bot worker` that ignores SIGTERM
    stuck.write_text(f"#!/bin/sh\ntrap '' TERM INT\necho $$ > {pidfile}\n"
                     "while :; do sleep 0.1; done\n")  # fmt: skip
    stuck.chmod(stuck.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sys, "executable", str(stuck))
    supervisor = WorkerSupervisor(ChildWorker({}, stop_seconds=1.0))
    supervisor.start()
    await until(lambda: pidfile.exists() and pidfile.read_text().strip() != "", 20,
                "the child started")  # fmt: skip
    child = int(pidfile.read_text())
    try:
        started = time.monotonic()
        await asyncio.wait_for(supervisor.stop(), 15)
        assert time.monotonic() - started < 10
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 9)


async def test_serve_with_its_worker_in_process_stops_within_its_grace(db: Database) -> None:
    """WORKER_PROCESSES=0: a job running in serve's own process when SIGTERM comes (here an
    upload offer whose files.info Slack took and never answered) held serve's stop for as
    long as the call's own timeouts: a child worker is killed 25 s after its SIGTERM, but
    the in-process worker's stop was awaited with no limit, past any orchestrator's grace.
    Its job is given back: a worker resumes it once its lease lapses."""
    from sqlalchemy import text

    from bot.imports.upload_offers import queue_upload_offer
    from bot.workspaces import ensure_workspace

    called = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        called.set()  # a Slack that takes the call and never answers
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    slack_port = server.sockets[0].getsockname()[1]
    settings = load_settings(database_url=db.url, database_schema=db.schema,
                             slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                             slack_app_token="", host="127.0.0.1", port=free_port(),
                             slack_api_url=f"http://127.0.0.1:{slack_port}/api/",
                             slack_timeout_seconds=60, worker_processes=0,
                             worker_poll_seconds=0.05)  # fmt: skip
    await ensure_workspace(db, "T1")
    await queue_upload_offer(db, "T1", "C1", "F1")
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, db, stop=stop, work_grace_seconds=2))
    try:
        await asyncio.wait_for(called.wait(), 30)  # the job is under way
        stop.set()  # SIGTERM
        done, _ = await asyncio.wait({serving}, timeout=15)
        assert done, "serve's stop still waiting for the in-process worker's job"
        serving.result()
    finally:
        stop.set()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 120)
    async with db.begin() as conn:  # not done, nor failed: a worker takes it again
        state = (await conn.execute(text("SELECT state FROM job"))).scalar_one()
    assert state in ("running", "queued"), state


async def test_a_slow_request_body_doesnt_hold_serve_s_stop_for_a_minute(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone could send /slack/events a few bytes of a body it announced longer and keep
    the connection open: serve's stop then waited aiohttp's 60 s for that request (past
    Kubernetes' 30 s grace, so it was killed instead of exiting)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    settings = load_settings(database_url=db.url, database_schema=db.schema,
                             slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                             slack_app_token="", slack_api_url="http://127.0.0.1:9/api/",
                             host="127.0.0.1", port=port)  # fmt: skip
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, db, run_worker=False, stop=stop))
    writer = None
    try:
        for _ in range(200):
            try:
                await get(f"http://127.0.0.1:{port}/healthz")
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100000\r\n\r\nssl_check=")  # fmt: skip
        await writer.drain()
        await asyncio.sleep(0.3)
        stop.set()  # SIGTERM
        done, _ = await asyncio.wait({serving}, timeout=15)  # REQUESTS_GRACE_SECONDS, and more
        assert done, "serve still waiting for the slow request"
    finally:
        if writer is not None:
            writer.close()
        await asyncio.wait_for(serving, 90)


async def test_a_sqlite_file_removed_or_replaced_under_serve_is_unhealthy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its connections go on with the file they opened: with the file deleted, or a backup
    copied over it, clicks and unsubscribes went into a file nobody would read again while
    /healthz said "ok"."""
    import shutil


    path = tmp_path / "bot.db"
    url = f"sqlite:///{path}"
    database = Database(url)
    try:
        async with _healthy(database, url, cache_seconds=0.1) as base:
            shutil.copyfile(path, tmp_path / "backup.db")
            (tmp_path / "backup.db").replace(path)  # a backup put back in its place
            status, report = await _until_status(f"{base}/healthz", 503)
            assert report["database"] == {"ok": False,
                                          "error": "the database file was replaced"}, report
            path.unlink()
            status, report = await _until_status(f"{base}/healthz", 503)
            await asyncio.sleep(0.2)  # past the kept result
            status, report = await get(f"{base}/healthz")
            assert (status, report["database"]) == (
                503, {"ok": False, "error": "the database file was removed"}), report
    finally:
        await database.dispose()
    assert any("restart this process" in r.getMessage() for r in caplog.records
               if r.name == "bot.db_health"), caplog.text  # fmt: skip
