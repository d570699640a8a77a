"""`referral-bot serve` as deployed: a real process, real HTTP, the fake Slack behind it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from models import Database
from tests.children import lent_cpu
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackRequests

CLI = [sys.executable, "-m", "bot.launch"]


@pytest.fixture(autouse=True)
async def _worker_children_get_cpu() -> AsyncIterator[None]:
    """serve's worker child runs idle-class: on a machine other work keeps busy it got no
    CPU and never registered within the test's minute (see tests/children.py)."""
    async with lent_cpu():
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_without_credentials_it_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    result = subprocess.run([*CLI, "serve"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    for needed in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "manifest.yml"):
        assert needed in result.stderr
    assert "Traceback" not in result.stderr


async def test_serve_answers_health_and_signed_commands_then_stops_cleanly(
    db: Database, db_env: dict[str, str], slack: FakeSlack
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env.update(db_env)
    env.update({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret",
                "SECRET_KEY": "test-secret" * 3,
                "SLACK_API_URL": slack.api_url, "SLACK_FILE_HOSTS": slack.files_host,
                "PORT": str(port)})  # fmt: skip
    server = subprocess.Popen([*CLI, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        health = await response.json()
                        assert health["ok"] is True and health["worker"]["state"] == "running"
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("serve did not start: " + server.stderr.read())
        requests = SlackRequests(f"http://127.0.0.1:{port}", "s3cret", slack=slack)
        reply = await requests.slash_command(text="import")
        assert reply.status == 200
        await slack.wait_for("views.open", timeout=10)
        assert (await requests.slash_command(text="import", bad_signature=True)).status == 401
    finally:
        server.send_signal(signal.SIGTERM)
        # in a thread: the fake Slack runs on this loop, and serve's last calls still need it
        _, err = await asyncio.to_thread(server.communicate, timeout=30)
    assert server.returncode == 0, err


async def test_a_worker_child_stops_when_serve_is_killed_outright(
    db: Database, db_env: dict[str, str], slack: FakeSlack, tmp_path: Path
) -> None:
    """kill -9 (or the OOM killer) gives serve no chance to stop its worker: the worker sees
    its stdin close and stops by itself, so a restarted serve never shares SQLite with it.
    serve runs as `./run` runs it (the referral-bot script) in a folder holding a folder
    named `models`: the child, started as `python -m bot.cli`, imported that one (`-m` puts
    the working directory first on the import path) and never started."""
    from sqlalchemy import text

    shop = tmp_path / "shop"
    (shop / "models").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env.update(db_env)
    env.update({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret",
                "SECRET_KEY": "test-secret" * 3, "SLACK_API_URL": slack.api_url,
                "PORT": str(free_port())})  # fmt: skip
    script = Path(sys.executable).parent / "referral-bot"  # what ./run execs
    server = subprocess.Popen([str(script), "serve"], env=env, cwd=shop,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        child = 0
        for _ in range(1200):  # up to a minute: serve's start on a busy machine
            async with db.begin() as conn:
                child = (await conn.execute(text("SELECT MAX(pid) FROM worker_process"))
                         ).scalar() or 0  # fmt: skip
            if child:
                break
            await asyncio.sleep(0.05)
        assert child and child != server.pid
        server.kill()
        server.wait(timeout=10)
        for _ in range(1200):  # it finishes its loop and exits, on its own (a minute at most)
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError(f"worker {child} outlived its serve")
    finally:
        if server.poll() is None:
            server.kill()


async def test_several_worker_processes_on_sqlite_start_one_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """WORKER_PROCESSES=4 on SQLite started four writers of one file: they only queued on its
    lock and stretched clicks toward the busy timeout, with nothing said (`worker
    --concurrency 4` already ran one job at a time, saying why)."""
    from bot.app import _supervisors
    from bot.settings import load_settings

    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", worker_processes=4)
    db = Database(settings.database_url)
    try:
        with caplog.at_level("WARNING"):
            assert len(_supervisors(settings, None, db)) == 1  # type: ignore[arg-type]
    finally:
        await db.dispose()
    assert "SQLite has one writer at a time: starting one worker process, not 4" in caplog.text


@pytest.mark.parametrize("where", [{"HOST": "no.such.host.invalid"}, {"PORT": "busy"}])
def test_an_address_serve_cant_listen_on_is_named_with_its_settings(
    db: Database, db_env: dict[str, str], where: dict[str, str]
) -> None:
    """HOST=no.such.host.invalid printed only "[Errno -2] Name or service not known", naming
    no setting; a port in use is told with HOST and PORT too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env.update(db_env)
    env.update({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret",
                "SECRET_KEY": "test-secret" * 3, "HOST": "127.0.0.1",
                # serve checks the token first: no Slack answers here (not slack.com's)
                "SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/"})  # fmt: skip
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env["PORT"] = str(busy.getsockname()[1])
        env.update({k: v for k, v in where.items() if v != "busy"})
        result = subprocess.run([*CLI, "serve"], env=env, capture_output=True, text=True,
                                timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-500:]
    said = result.stderr.strip().splitlines()[-1]
    assert said.startswith(f"referral-bot: can't listen on HOST={env['HOST']} "
                           f"PORT={env['PORT']}: "), said


async def test_the_bot_token_in_the_environment_draws_no_warning_at_start(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With SLACK_BOT_TOKEN in the environment (as the README's step 2 says), every start
    logged bolt's "As you gave `client` as well, `token` will be unused.": bolt reads the
    variable itself although it is given the client the token belongs to."""
    import logging

    from slack_sdk.web.async_client import AsyncWebClient

    from bot.app import build_app
    from bot.settings import load_settings

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    settings = load_settings(slack_signing_secret="s")
    with caplog.at_level(logging.INFO):
        build_app(settings, AsyncWebClient(token="xoxb-1"), db)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_the_access_log_keeps_no_link_secrets(
    db: Database, db_env: dict[str, str], slack: FakeSlack
) -> None:
    """The access log wrote every unsubscribe link whole (its token never expires: whoever
    reads the log could unsubscribe anyone) and the Mailchimp callback's code and state; and
    a referral link's query, which the redirect passes on to the store: a visitor's own
    parameters (an address in `utm_content`, a Mailchimp `mc_eid`)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env.update(db_env)
    env.update({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret",
                "SECRET_KEY": "test-secret" * 3, "SLACK_API_URL": slack.api_url,
                "PORT": str(port)})  # fmt: skip
    server = subprocess.Popen([*CLI, "serve", "--no-worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"{base}/healthz") as response:
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("serve did not start: " + server.stderr.read())
            for url in (f"{base}/u/TOKENSECRET1", f"{base}/u/TOKENSECRET2%2F",
                        f"{base}/mailchimp/oauth/callback?code=CODESECRET&state=STATESECRET",
                        f"{base}/r/NOPE2345?utm_content=ada%40SECRET.example&mc_eid=SECRET"):
                async with session.get(url, allow_redirects=False) as response:
                    await response.read()
            async with session.post(f"{base}/u/TOKENSECRET3") as response:
                await response.read()
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(server.communicate, timeout=30)
    assert "SECRET" not in err, err
    assert '"GET /u/redacted HTTP/1.1"' in err and '"POST /u/redacted HTTP/1.1"' in err, err
    assert "/mailchimp/oauth/callback?code=redacted&state=redacted" in err, err
    assert '"GET /r/NOPE2345 HTTP/1.1" 404' in err, err
