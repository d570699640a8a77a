"""What `serve` and `worker` tell the person setting them up, as they start: a bot token Slack
refuses, a value that isn't a token at all, a SECRET_KEY too short, and Slack out of reach
(the token's check, Socket Mode's connection attempts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.app import serve
from bot.settings import Settings, load_settings
from models import Database
from tests import shell
from tests.fakes.slack_api import FakeSlack

GOOD_KEY = "k" * 32  # the shortest SECRET_KEY serve and worker take
CHECK_LINE = "couldn't check SLACK_BOT_TOKEN with Slack"


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Slack setting but the test's own; no proxy (slack_sdk reads HTTP(S)_PROXY itself,
    and the fakes are on loopback)."""
    for name in list(os.environ):
        if name.startswith("SLACK_") or name.lower() in ("http_proxy", "https_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test") as fake:
        yield fake


def serving(db_env: dict[str, str], api_url: str, **extra: str) -> dict[str, str]:
    """A complete HTTP-mode setup (but for what a test changes), Slack's Web API at api_url."""
    env = {**db_env, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret",
           "SECRET_KEY": GOOD_KEY, "SLACK_API_URL": api_url, "HOST": "127.0.0.1",
           "PORT": str(closed_port()), "RUN_WORKER": "false"}  # fmt: skip
    env.update(extra)
    return env


# --- a bot token Slack refuses -----------------------------------------------------------------


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "account_inactive",
                                   "not_authed"])  # fmt: skip
async def test_a_bot_token_slack_refuses_stops_serve_saying_where_to_copy_the_right_one(
    db_env: dict[str, str], slack: FakeSlack, error: str
) -> None:
    """A mistyped or revoked SLACK_BOT_TOKEN started serve without a word: it showed only at
    the first slash command, as a failure in Slack and a line in the log."""
    token = "xoxb-test"
    if error == "invalid_auth":
        token = "xoxb-1-not-this-apps"  # a token Slack doesn't know: its own answer
    else:
        slack.fail("auth.test", error)
    env = serving(db_env, slack.api_url, SLACK_BOT_TOKEN=token)
    result = await asyncio.to_thread(shell.run, env, "serve")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-800:]
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("referral-bot:")]
    assert said.startswith(f"referral-bot: Slack refused SLACK_BOT_TOKEN ({error}): "), said
    for words in ("Bot User OAuth Token (it starts with xoxb-)", "https://api.slack.com/apps",
                  "OAuth & Permissions"):  # fmt: skip
        assert words in said, said
    assert token not in result.stderr  # a token is never printed
    (check,) = slack.calls_to("auth.test")
    assert check.headers["Authorization"] == f"Bearer {token}"


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "missing_scope"])
async def test_an_app_token_slack_refuses_stops_serve_saying_where_to_make_the_right_one(
    db_env: dict[str, str], slack: FakeSlack, error: str
) -> None:
    """A mistyped or revoked SLACK_APP_TOKEN (Socket Mode) started serve all the same: it
    listened, /healthz said "not connected yet", and the log had a 40-line traceback of
    apps.connections.open's refusal every 10 s for as long as it ran."""
    slack.fail("apps.connections.open", error, times=1000)
    token = "xapp-1-A1-1-not-this-apps"
    env = serving(db_env, slack.api_url, SLACK_APP_TOKEN=token, SLACK_SIGNING_SECRET="")
    result = await asyncio.to_thread(shell.run, env, "serve")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-800:]
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("referral-bot:")]
    assert said.startswith(f"referral-bot: Slack refused SLACK_APP_TOKEN ({error}): "), said
    assert "Basic Information > App-Level Tokens" in said and "connections:write" in said, said
    assert token not in result.stderr  # a token is never printed
    (check,) = slack.calls_to("apps.connections.open")
    assert check.headers["Authorization"] == f"Bearer {token}"


async def test_a_bot_token_slack_takes_starts_serve_and_says_whose_it_is(
    db_env: dict[str, str], slack: FakeSlack
) -> None:
    err = await _serve_until_healthy(serving(db_env, slack.api_url))
    assert "Slack takes SLACK_BOT_TOKEN: the bot user referral-bot of workspace Acme (T0001)" \
        in err, err  # fmt: skip
    assert len(slack.calls_to("auth.test")) == 1
    assert CHECK_LINE not in err and "Traceback" not in err, err


async def test_a_bot_token_missing_the_manifests_scopes_is_told_at_start(
    db_env: dict[str, str], slack: FakeSlack
) -> None:
    """auth.test takes a token whatever its scopes (Slack lists them in the x-oauth-scopes
    header). An app made by hand, or installed before a scope was added to manifest.yml and
    not reinstalled, started without a word; every approval then failed on users.info
    (missing_scope) as "Something went wrong"."""
    slack.scopes = "commands,chat:write"  # what the token was granted
    err = await _serve_until_healthy(serving(db_env, slack.api_url))
    said = [line for line in err.splitlines() if "lacks the scopes" in line]
    assert len(said) == 1, err
    assert "files:read, files:write, im:write, users:read" in said[0], said
    assert "reinstall" in said[0], said


@pytest.mark.parametrize("how", ["connection refused", "503", "no answer"])
async def test_serve_starts_when_slack_cant_be_reached_to_check_the_token(
    db_env: dict[str, str], slack: FakeSlack, how: str
) -> None:
    """Slack down (or the network to it) must not keep the bot down: one warning, then serve
    runs (bolt checks the token again at the first request). "no answer": a connection taken
    and never answered (a proxy, a firewall) held the start for aiohttp's default 5 minutes,
    since slack_sdk applies its timeout only to sessions it makes, not to serve's."""
    with contextlib.ExitStack() as stack:
        if how == "503":
            slack.outage("auth.test", times=5, status=503)
            api_url = slack.api_url
        elif how == "no answer":
            silent = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            api_url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/"  # never accepted
        else:
            api_url = f"http://127.0.0.1:{closed_port()}/api/"
        err = await _serve_until_healthy(serving(db_env, api_url))
    warnings = [line for line in err.splitlines() if CHECK_LINE in line]
    assert len(warnings) == 1, err
    assert " WARNING " in warnings[0] and warnings[0].endswith(
        "starting anyway (Slack may be reachable later)"), warnings[0]  # fmt: skip
    said = {"503": "503", "connection refused": "ClientConnectorError", "no answer": "Timeout"}
    assert said[how] in warnings[0], warnings[0]
    assert "Traceback" not in err, err


async def _serve_until_healthy(env: dict[str, str]) -> str:
    """Run `serve` as a process until /healthz answers, then stop it: what it said on stderr.
    A process, not this one's thread: only a signal stops serve."""
    server = subprocess.Popen([*shell.CLI, "serve"], env=shell.environment(env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if server.poll() is not None:
                    break
                try:
                    url = f"http://127.0.0.1:{env['PORT']}/healthz"
                    async with session.get(url) as response:
                        await response.read()
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        # in a thread: the fake Slack runs on this loop
        _, err = await asyncio.to_thread(server.communicate, timeout=30)
    assert server.returncode == 0, err[-1500:]
    return err


# --- a value that isn't a token ----------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("SLACK_BOT_TOKEN", "notatoken", "isn't a bot token (it doesn't start with xoxb-)"),
    ("SLACK_BOT_TOKEN", "xapp-1-A1-2-abc", "isn't a bot token (it is an app-level token, "
                                           "xapp-..., which goes in SLACK_APP_TOKEN)"),
    ("SLACK_BOT_TOKEN", "xoxp-1-2-3", "isn't a bot token (it is a user token, xoxp-...)"),
    ("SLACK_APP_TOKEN", "notatoken", "isn't an app-level token (it doesn't start with xapp-)"),
    ("SLACK_APP_TOKEN", "xoxb-1-2-abc", "isn't an app-level token (it is a bot token, "
                                        "xoxb-..., which goes in SLACK_BOT_TOKEN)"),
])  # fmt: skip
def test_a_token_of_the_wrong_shape_is_told_so_not_that_slack_isnt_configured(
    db_env: dict[str, str], variable: str, value: str, why: str
) -> None:
    """SLACK_BOT_TOKEN=notatoken was told "Slack isn't configured yet. Create the app from
    manifest.yml ...": it sent someone who had pasted the wrong thing to make the app again."""
    env = serving(db_env, f"http://127.0.0.1:{closed_port()}/api/", **{variable: value})
    result = shell.run(env, "serve")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "isn't configured yet" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "referral-bot: Fix this setting before serving:", result.stderr
    (line,) = [line for line in lines if line.startswith(f"  {variable}: ")]
    assert line.startswith(f"  {variable}: is set, but {why}. "), line
    if variable == "SLACK_BOT_TOKEN":
        where = ("Copy the Bot User OAuth Token (it starts with xoxb-) from your app's page at "
                 "https://api.slack.com/apps > OAuth & Permissions")  # fmt: skip
    else:
        where = ("Copy an app-level token (it starts with xapp-) from your app's page at "
                 "https://api.slack.com/apps > Basic Information > App-Level Tokens")
    assert where in line, line
    assert value not in result.stderr  # a token pasted in the wrong place is never printed


def test_a_missing_token_still_walks_through_making_the_app(db_env: dict[str, str]) -> None:
    env = serving(db_env, "http://127.0.0.1:1/api/", SLACK_BOT_TOKEN="",
                  SLACK_APP_TOKEN="notatoken")  # fmt: skip
    result = shell.run(env, "serve")
    assert result.returncode == 1
    assert result.stderr.startswith("referral-bot: Slack isn't configured yet. Create the app "
                                    "from manifest.yml"), result.stderr  # fmt: skip
    assert "  SLACK_BOT_TOKEN: the bot token (xoxb-...)" in result.stderr
    assert "  SLACK_APP_TOKEN: is set, but isn't an app-level token" in result.stderr


async def test_a_worker_given_something_that_isnt_a_bot_token_refuses_to_start(
    db: Database, db_env: dict[str, str]
) -> None:
    """It started, claimed Slack's jobs (files, reports) and failed each with invalid_auth."""
    result = _worker({**db_env, "SLACK_BOT_TOKEN": "notatoken"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(
        "referral-bot: Fix this setting before starting the worker:\n  SLACK_BOT_TOKEN: is set, "
        "but isn't a bot token (it doesn't start with xoxb-). Copy the Bot User OAuth Token"
    ), result.stderr  # fmt: skip


def _worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`referral-bot worker` as a process: one that starts runs until stopped, so the time
    limit ends it (and fails the test) instead of a thread of this process running on."""
    try:
        return subprocess.run([*shell.CLI, "worker"], env=shell.environment(env),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the worker started: {exc.stderr!r}") from None


# --- SECRET_KEY too short ----------------------------------------------------------------------


def test_a_short_secret_key_stops_serve_with_the_reason_and_one_to_use(
    db_env: dict[str, str]
) -> None:
    """SECRET_KEY=short was accepted: it signs every unsubscribe link and encrypts Mailchimp's
    credentials."""
    env = serving(db_env, "http://127.0.0.1:1/api/", SECRET_KEY="hunter2")
    result = shell.run(env, "serve")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("referral-bot: Fix this setting before serving:\n"
                                    "  SECRET_KEY: is 7 characters long; it needs at least 32"
                                    ), result.stderr  # fmt: skip
    _assert_a_usable_example(result.stderr)
    assert "hunter2" not in result.stderr  # the key given is never printed back


def test_a_short_secret_key_stops_the_worker_too(db_env: dict[str, str]) -> None:
    result = _worker({**db_env, "SECRET_KEY": "k" * 31})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("referral-bot: Fix this setting before starting the worker:"
                                    "\n  SECRET_KEY: is 31 characters long; it needs at least 32"
                                    ), result.stderr  # fmt: skip
    _assert_a_usable_example(result.stderr)
    assert "k" * 31 not in result.stderr


def _assert_a_usable_example(said: str) -> None:
    example = re.search(r"e\.g\. (\S+) ", said)
    assert example is not None, said
    assert load_settings(secret_key=example.group(1)).secret_key_problem() is None


def test_thirty_two_characters_are_enough() -> None:
    assert load_settings(secret_key="k" * 32).secret_key_problem() is None
    assert load_settings(secret_key="").secret_key_problem() is None  # unset: said elsewhere
    assert load_settings(secret_key="k" * 31).secret_key_problem() is not None


# --- Socket Mode with Slack out of reach -------------------------------------------------------


def _socket_settings(db: Database, api_url: str, port: int) -> Settings:
    return load_settings(
        database_url=db.url, database_schema=db.schema, slack_bot_token="xoxb-test",
        slack_signing_secret="", slack_app_token="xapp-test", slack_api_url=api_url,
        host="127.0.0.1", port=port, run_worker=False,
    )  # fmt: skip


async def _attempts(caplog: pytest.LogCaptureFixture, settings: Settings, until: str,
                    db: Database) -> list[logging.LogRecord]:
    """Run serve in Socket Mode until a log line holding `until` appears; the records of the
    Socket Mode client and of its Web API client meanwhile."""
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(serve(settings, db, run_worker=False, stop=stop))
        try:
            for _ in range(300):
                if any(until in r.getMessage() for r in caplog.records) or task.done():
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    return [r for r in caplog.records if r.name.startswith(("slack_sdk", "slack_bolt"))]


@pytest.mark.parametrize("how", ["connection refused", "503"])
async def test_socket_mode_with_slack_out_of_reach_logs_one_line_per_attempt(
    db: Database, caplog: pytest.LogCaptureFixture, slack: FakeSlack, how: str
) -> None:
    """Slack out of reach in Socket Mode: the SDK logged a 40-line traceback every 10 s (and,
    for a 5xx, an error line before it, and a retry note of the Web API client), burying
    everything else in the log."""
    if how == "503":
        slack.outage("apps.connections.open", times=1000, status=503)
        api_url, where = slack.api_url, "status: 503"
    else:
        port = closed_port()
        api_url, where = f"http://127.0.0.1:{port}/api/", f"Cannot connect to host 127.0.0.1:{port}"
    settings = _socket_settings(db, api_url, closed_port())
    records = await _attempts(caplog, settings, "trying again", db)
    attempt = [r for r in records if r.levelno >= logging.INFO
               and "has been abandoned by disconnect()" not in r.getMessage()]  # fmt: skip
    assert [r.levelname for r in attempt] == ["WARNING"], [r.getMessage() for r in attempt]
    (line,) = attempt
    said = line.getMessage()
    assert said.startswith("Socket Mode: couldn't connect to Slack ("), said
    assert said.endswith("; trying again in 10 s") and where in said and "\n" not in said, said
    assert line.exc_info is None and "Traceback" not in caplog.text


async def test_socket_mode_keeps_the_traceback_of_an_error_other_than_an_outage(
    db: Database, caplog: pytest.LogCaptureFixture, slack: FakeSlack
) -> None:
    """A refused app token isn't Slack out of reach: its attempts are logged as before."""
    slack.fail("apps.connections.open", "invalid_auth", times=1000)
    settings = _socket_settings(db, slack.api_url, closed_port())
    records = await _attempts(caplog, settings, "Failed to connect", db)
    (failed,) = [r for r in records if r.getMessage().startswith("Failed to connect")]
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    assert "invalid_auth" in failed.getMessage()


# --- links over plain http ---------------------------------------------------------------------


@pytest.mark.parametrize("public_url", ["http://bot.example", "https://bot.example"])
def test_a_worker_sending_invites_with_http_links_warns_of_it(
    db: Database, db_env: dict[str, str], public_url: str
) -> None:
    """PUBLIC_URL=http://... with SMTP_URL started without a word: every invite's unsubscribe
    link (a token that never expires) went over plain http, and mail providers ignore one-click
    unsubscribe (RFC 8058) unless its link is https."""
    env = {**db_env, "SECRET_KEY": GOOD_KEY, "PUBLIC_URL": public_url,
           "SMTP_URL": f"smtp://127.0.0.1:{closed_port()}"}  # fmt: skip
    worker = subprocess.Popen([*shell.CLI, "worker"], env=shell.environment(env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        said = []
        assert worker.stderr is not None
        for line in worker.stderr:
            said.append(line)
            if "waiting for jobs" in line:
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        rest = worker.communicate(timeout=30)[1]
    err = "".join(said) + rest
    assert worker.returncode == 0, err
    warning = ("PUBLIC_URL starts with http://: invites' referral and unsubscribe links travel "
               "unencrypted, and mail providers offer no one-click unsubscribe without https")
    assert (warning in err) == public_url.startswith("http:"), err
