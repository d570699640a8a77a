"""Only a worker that can send invites as the deployment intends takes their send jobs.

A worker started without SMTP_URL (a second shell's `referral-bot worker`, while `serve`'s
worker sends by SMTP) took a campaign's send job, wrote its invites into ./outbox and marked
them sent: those customers were never emailed. One without SECRET_KEY took it and stopped the
campaign's sending for good at its first attempt. Writing invites as files is a choice now
(OUTBOX_DIR); a worker that lacks a setting leaves the jobs queued for one that has it, as a
worker without SLACK_BOT_TOKEN leaves Slack's.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.campaigns.enroll import SEND_JOB
from bot.campaigns.invites import waiting_for_a_sender
from bot.campaigns.jobs import cannot_send, send_handler, send_handlers
from bot.jobs import queue
from bot.jobs.worker import Handler, Worker, WorkerConfig
from bot.notify import Silent
from bot.settings import Settings
from tests.campaigns.conftest import SECRET, TEAM, World
from tests.campaigns.test_send import _enrolled, _states
from tests.email.smtp_server import smtp_server

PUBLIC = "https://bot.example"


def _settings(**given: Any) -> Settings:
    """A worker's settings as given, nothing read from a .env file or this environment's."""
    return Settings(_env_file=None, **given)  # type: ignore[call-arg]


def _worker(world: World, handlers: dict[str, Handler]) -> Worker:
    """A worker whose failed job is retried a minute later (run_until_idle runs it once)."""
    return Worker(world.db, handlers, WorkerConfig(retry_base_seconds=60, poll_seconds=0.05))


async def _send_job(world: World) -> tuple[str, int, str | None]:
    (row,) = await world.rows("SELECT state, attempts, last_error FROM job WHERE kind = :k",
                              k=SEND_JOB)  # fmt: skip
    return str(row[0]), int(row[1]), row[2]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker's working directory, where OUTBOX_DIR's default (./outbox) would be."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OUTBOX_DIR", raising=False)
    monkeypatch.delenv("SMTP_URL", raising=False)
    return tmp_path


# What each worker lacks, and its settings (a worker that runs `serve`'s way sends by SMTP).
LACKING = {
    "SMTP_URL": {"secret_key": SECRET, "public_url": PUBLIC},
    "SECRET_KEY": {"smtp_url": "smtp://127.0.0.1:25", "public_url": PUBLIC},
    "PUBLIC_URL": {"smtp_url": "smtp://127.0.0.1:25", "secret_key": SECRET},
    "SECRET_KEY, writing files": {"outbox_dir": "outbox"},
}


@pytest.mark.parametrize("lacking", LACKING)
async def test_a_worker_that_cant_send_leaves_the_send_jobs_queued(
    world: World, here: Path, lacking: str
) -> None:
    await _enrolled(world, "a@example.com,A,en", "b@example.com,B,en")
    settings = _settings(**LACKING[lacking])
    assert lacking.split(",")[0] in (cannot_send(settings) or "")
    worker = _worker(world, send_handlers(settings, Silent()))
    assert SEND_JOB not in worker.kinds
    assert await worker.run_until_idle() == 0
    assert await _send_job(world) == ("queued", 0, None)  # no attempt spent, no error
    assert await _states(world) == {"a@example.com": "queued", "b@example.com": "queued"}
    assert not (here / "outbox").exists()


async def test_the_outbox_is_written_only_when_outbox_dir_is_set(world: World,
                                                                 here: Path) -> None:  # fmt: skip
    await _enrolled(world, "a@example.com,A,en")
    settings = _settings(secret_key=SECRET, outbox_dir=str(here / "files"))
    assert cannot_send(settings) is None
    assert await _worker(world, send_handlers(settings, Silent())).run_until_idle() == 1
    assert await _states(world) == {"a@example.com": "sent"}
    assert len(list((here / "files").glob("*.eml"))) == 1


async def test_a_worker_sending_by_smtp_takes_them(world: World, here: Path) -> None:
    await _enrolled(world, "a@example.com,A,en")
    async with smtp_server() as server:
        settings = _settings(smtp_url=server.url, secret_key=SECRET, public_url=PUBLIC)
        assert await _worker(world, send_handlers(settings, Silent())).run_until_idle() == 1
    assert [m.rcpt_tos for m in server.handler.messages] == [["a@example.com"]]
    assert not (here / "outbox").exists()


async def test_a_send_job_given_to_a_worker_without_smtp_url_writes_no_file(
    world: World, here: Path
) -> None:
    """The handler given all the same (a registry that doesn't ask send_handlers): never
    ./outbox for want of SMTP_URL. The run fails and is retried with backoff, as README says,
    so that a worker that can send takes it; its invites stay queued."""
    await _enrolled(world, "a@example.com,A,en")
    settings = _settings(secret_key=SECRET, public_url=PUBLIC)
    await _worker(world, {SEND_JOB: send_handler(settings, Silent())}).run_until_idle()
    state, attempts, error = await _send_job(world)
    assert (state, attempts) == ("queued", 1), error
    assert (error or "").startswith("SMTP_URL is not set where this worker runs")
    assert await _states(world) == {"a@example.com": "queued"}
    assert not (here / "outbox").exists()
    assert await world.scalar("SELECT send_error FROM enrollment") is None


async def test_a_send_job_given_to_a_worker_without_secret_key_is_retried_not_failed(
    world: World, here: Path
) -> None:
    """It failed for good at its first attempt (attempts 1/5, "sending stopped"), though
    another worker with SECRET_KEY could have sent the invites."""
    await _enrolled(world, "a@example.com,A,en")
    settings = _settings(outbox_dir=str(here / "files"))
    await _worker(world, {SEND_JOB: send_handler(settings, Silent())}).run_until_idle()
    state, attempts, error = await _send_job(world)
    assert (state, attempts) == ("queued", 1), error
    assert await world.scalar("SELECT send_error FROM enrollment") is None
    async with world.db.begin() as conn:  # its last attempt: sending stops, and says why
        await conn.execute(text("UPDATE job SET max_attempts = 2, run_after = created_at"))
    await _worker(world, {SEND_JOB: send_handler(settings, Silent())}).run_until_idle()
    assert (await _send_job(world))[:2] == ("failed", 2)
    assert await world.scalar("SELECT send_error FROM enrollment") == (
        "SECRET_KEY is not set: invites need it to sign unsubscribe links. Set it where the "
        "worker runs, then Retry sending.")
    assert not (here / "files").exists()


async def test_invites_waiting_for_a_worker_that_can_send_are_counted_by_campaign(
    world: World, here: Path
) -> None:
    """What `campaign list` says while no running worker can send them."""
    await _enrolled(world, "a@example.com,A,en", "b@example.com,B,en")
    spring = int(str(await world.scalar("SELECT id FROM campaign")))
    assert await waiting_for_a_sender(world.db, TEAM, 30) == {spring: 2}
    await queue.register_worker(world.db, "no-smtp", {"enroll", "import"}, pid=1, host="a")
    assert await waiting_for_a_sender(world.db, TEAM, 30) == {spring: 2}
    await queue.register_worker(world.db, "serve", {"enroll", SEND_JOB}, pid=2, host="b")
    assert await waiting_for_a_sender(world.db, TEAM, 30) == {}


def _free_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_mail_server_that_refuses_the_connection_is_said_in_words(
    world: World, here: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`campaign list` and `jobs` said "could not connect to smtp://127.0.0.1:8026: Error
    connecting to 127.0.0.1 on port 8026: [Errno 111] Connection refused"."""
    await _enrolled(world, "a@example.com,A,en")
    port = _free_port()
    settings = _settings(smtp_url=f"smtp://127.0.0.1:{port}?timeout=2", secret_key=SECRET,
                         public_url=PUBLIC)  # fmt: skip
    async with world.db.begin() as conn:  # its last attempt
        await conn.execute(text("UPDATE job SET max_attempts = 1"))
    with caplog.at_level(logging.WARNING):
        await _worker(world, send_handlers(settings, Silent())).run_until_idle()
    words = (f"could not connect to the mail server at 127.0.0.1:{port}: it refused the "
             "connection. Is it running, and is the port in SMTP_URL right?")
    assert await world.scalar("SELECT send_error FROM enrollment") == words
    assert await _send_job(world) == ("failed", 1, words)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"could not connect to smtp://127.0.0.1:{port}: " in logged and "Errno 111" in logged
    assert await _states(world) == {"a@example.com": "queued"}
