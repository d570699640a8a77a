"""The page Mailchimp's sign-in ends on, from `serve` itself, while Slack is slow or gone.

The callback told the person in Slack (a DM) before it answered the browser: a Slack that
held the DM held the page with it (5 minutes for one that never answered: serve's Slack
session's timeout), and `serve` stopping meanwhile dropped the page for good, though the
connection was saved. Then it sent the page first and the DM after it, in the same handler:
the connection the page went on answered nothing more until the DM was done (a proxy that
keeps its connections to serve alive sends other requests down it), and with `Connection:
close` a stop neither waited for the DM nor said it was lost. The DM is work `serve` keeps
beside the listeners' (Later.background): the page doesn't wait for it, and a stop does.
The browser, `serve`, the fake Slack and the fake Mailchimp talk HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.app import WORK_GRACE_SECONDS, serve
from bot.mailchimp import accounts
from bot.mailchimp.oauth import CALLBACK_PATH, make_state
from bot.settings import load_settings
from bot.workspaces import ensure_workspace
from models import Database
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.slack_api import FakeSlack
from tests.mailchimp.test_mailchimp import _back_from_mailchimp, _browser, _continue
from tests.test_serve import free_port

TEAM = "T0001"
LEAD = "U0002"
SECRET = "test-secret-" * 3  # serve wants 32 characters or more
CONNECTED_PAGE = "Northwind Coffee is connected. You can close this tab and go back to Slack."
CONNECTED_DM = (":white_check_mark: Mailchimp is connected: *Northwind Coffee*. Its audiences "
                "can now be added to imports.")  # fmt: skip


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test", team_id=TEAM) as fake:
        yield fake


@pytest.fixture
async def mc(db: Database) -> AsyncIterator[FakeMailchimp]:
    """Mailchimp with one account and the code its sign-in hands back."""
    await ensure_workspace(db, TEAM)
    async with FakeMailchimp(client_id="cid", client_secret="csecret") as fake:
        fake.add_account(token="oauth-token", dc="us7", name="Northwind Coffee")
        fake.issue_code("code-1", "oauth-token", "oauth-token")
        yield fake


@dataclass
class Serving:
    site: str
    stop: asyncio.Event
    task: asyncio.Task[None]


@asynccontextmanager
async def _serving(db: Database, slack: FakeSlack, mc: FakeMailchimp, *,
                   grace: float = WORK_GRACE_SECONDS, **more: Any) -> AsyncIterator[Serving]:
    """`serve` in this process (Slack over HTTP, no worker), listening on a free port; `grace`:
    what its stop gives work under way; `more`: other settings."""
    port = free_port()
    settings = load_settings(database_url=db.url, database_schema=db.schema,
                             slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                             slack_app_token="", slack_api_url=slack.api_url,
                             host="127.0.0.1", port=port, secret_key=SECRET,
                             public_url="https://bot.example", mailchimp_client_id="cid",
                             mailchimp_client_secret="csecret",
                             mailchimp_login_url=mc.login_url,
                             mailchimp_api_url=mc.base_url, **more)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, db, run_worker=False, stop=stop,
                                     work_grace_seconds=grace))  # fmt: skip
    site = f"http://127.0.0.1:{port}"
    try:
        await _until_listening(site, task)
        yield Serving(site, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def _until_listening(site: str, task: asyncio.Task[None]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            if task.done():
                task.result()  # serve's own error, if it failed to start
            try:
                async with http.get(f"{site}/healthz") as response:
                    await response.read()
                    return
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
    raise AssertionError("serve did not start")


async def _until(found: Callable[[], Any], what: str, *, seconds: float = 60) -> Any:
    """`found()` once it is truthy (bounded by a minute: a loaded machine is slow)."""
    deadline = time.monotonic() + seconds
    while not (value := found()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)
    return value


def _bot_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The bot's own errors (the fake Slack's dropped connections log theirs too)."""
    return [r for r in caplog.records
            if r.name.startswith(("bot", "handlers")) and r.levelno >= logging.ERROR]  # fmt: skip


def _waiting(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What serve stopping said it waits for (Later.drain)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "handlers.later" and "waiting for" in r.getMessage()]  # fmt: skip


def _dm(slack: FakeSlack) -> list[dict[str, Any]]:
    channel = slack.dm_channels.get(LEAD)
    return slack.messages_in(channel) if channel else []


async def _sign_in(browser: aiohttp.ClientSession, site: str,
                   mc: FakeMailchimp) -> dict[str, str]:  # fmt: skip
    """Connect in Slack's link, Continue, Mailchimp's login: what Mailchimp sends back."""
    return await _continue(browser, site, mc, make_state(SECRET, TEAM, LEAD, person="Dana"))


async def test_the_page_is_answered_while_slack_still_holds_the_dm(
    db: Database, slack: FakeSlack, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack takes its time over chat.postMessage: the browser has its page meanwhile, and
    the DM lands once Slack answers. Before, the page waited for Slack: 5 s late for a DM
    5 s late, and for one never answered until serve's Slack session gave up (300 s; this
    browser gives up after 60)."""
    caplog.set_level(logging.INFO, logger="bot")
    gate = slack.hold("chat.postMessage")
    async with _serving(db, slack, mc) as bot, _browser(bot.site) as browser:
        authorize = await _sign_in(browser, bot.site, mc)
        try:
            # a minute, not aiohttp's 5: the page that waits for Slack waits that long
            query = {"code": "code-1", "state": authorize["state"]}
            async with browser.get(f"{bot.site}{CALLBACK_PATH}", params=query,
                                   timeout=aiohttp.ClientTimeout(total=60)) as response:
                status, page, headers = response.status, await response.text(), response.headers
            # nothing gave up on the DM before the page came: it is still on its way
            trouble = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert trouble == [] and _dm(slack) == []
        finally:
            gate.set()
        assert status == 200 and CONNECTED_PAGE in page, page
        assert headers["Referrer-Policy"] == "no-referrer"  # own_error_pages's, as every page's
        assert headers["Cache-Control"] == "no-store"
        dm = await _until(lambda: _dm(slack), "the DM in Slack")
        assert [m["text"] for m in dm] == [CONNECTED_DM]
    found = await accounts.connection(db, TEAM)
    assert found is not None and (found.auth, found.connected_by) == ("oauth", LEAD)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_next_request_on_the_pages_connection_doesnt_wait_for_the_dm(
    db: Database, slack: FakeSlack, mc: FakeMailchimp
) -> None:
    """A reverse proxy keeps one connection to serve alive and sends the next request down
    it (Caddy, Traefik, nginx's upstream keepalive): here /healthz, right after the page,
    while Slack holds the DM. Before, the handler that sent the page went on to the DM, and
    aiohttp read nothing more on that connection until it returned: /healthz (Slack's own
    requests, with their 3 s, alike) waited for Slack."""
    connections: list[str] = []  # how each request got its connection
    trace = aiohttp.TraceConfig()

    async def made(*_: object) -> None:
        connections.append("new")

    async def reused(*_: object) -> None:
        connections.append("reused")

    trace.on_connection_create_end.append(made)
    trace.on_connection_reuseconn.append(reused)
    gate = slack.hold("chat.postMessage")
    async with _serving(db, slack, mc) as bot, aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1), trace_configs=[trace],
        cookie_jar=aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=bot.site),
    ) as proxy:  # fmt: skip
        try:
            authorize = await _sign_in(proxy, bot.site, mc)
            status, page = await _back_from_mailchimp(proxy, bot.site, "code-1", authorize)
            assert status == 200 and CONNECTED_PAGE in page, page
            await slack.wait_for("chat.postMessage", timeout=60)  # the DM on its way, held
            connections.clear()
            # a generous bound: the old handler answered it only once the DM was released
            async with proxy.get(f"{bot.site}/healthz",
                                 timeout=aiohttp.ClientTimeout(total=10)) as response:
                assert response.status == 200 and (await response.json())["ok"]
            assert _dm(slack) == [] and not gate.is_set()  # answered before the DM went
            assert connections == ["reused"]  # /healthz went down the page's connection
        finally:
            gate.set()
        dm = await _until(lambda: _dm(slack), "the DM in Slack")
        assert [m["text"] for m in dm] == [CONNECTED_DM]


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
async def test_serve_stopping_while_slack_holds_the_dm_waits_for_it(
    db: Database, slack: FakeSlack, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture,
    connection: str,
) -> None:
    """`serve` is stopped (a deploy) while Slack holds the DM: the browser has had its page,
    and serve waits for the DM as for listeners' work (Later.drain), saying so; the DM lands
    once Slack answers, then serve ends. Before, stopping cut the browser off with no page
    at all; then, with the page sent first, serve gave the DM its 3 s grace for requests
    and gave it up, and behind a proxy that says `Connection: close` (nginx's default)
    didn't wait for it at all nor say it was lost."""
    caplog.set_level(logging.INFO, logger="bot")
    caplog.set_level(logging.INFO, logger="handlers.later")
    gate = slack.hold("chat.postMessage")
    try:
        async with _serving(db, slack, mc) as bot, _browser(bot.site) as browser:
            authorize = await _sign_in(browser, bot.site, mc)
            query = {"code": "code-1", "state": authorize["state"]}
            async with browser.get(f"{bot.site}{CALLBACK_PATH}", params=query,
                                   headers={"Connection": connection}) as response:
                status, page = response.status, await response.text()
            await slack.wait_for("chat.postMessage", timeout=60)  # the DM on its way, held
            bot.stop.set()
            await _until(lambda: bot.task.done() or _waiting(caplog), "serve stopped or waiting")
            assert not bot.task.done(), "serve ended with the DM still on its way"
            assert _waiting(caplog) == ["waiting for 1 piece(s) of work under way (Slack "
                                        "calls after an ack or a sign-in) before stopping"]
            assert _dm(slack) == []
            gate.set()  # Slack answers
            await asyncio.wait_for(bot.task, 60)
            assert [m["text"] for m in _dm(slack)] == [CONNECTED_DM]  # before serve ended
    finally:
        gate.set()
    assert status == 200 and CONNECTED_PAGE in page, page
    assert await accounts.connection(db, TEAM) is not None
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_serve_stopping_gives_up_a_dm_slack_never_answers_after_its_grace(
    db: Database, slack: FakeSlack, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack takes the DM's request and never answers, and its silence is allowed 10 minutes
    (SLACK_TIMEOUT_SECONDS=600): serve's stop waits its grace for work under way (2 s here,
    1 s of it for the give-up; 25 s in serve, as its worker children get), then gives the DM
    up, saying so with the workspace and the person. Before, the stop waited for Slack's
    timeouts (twice 10 minutes here; up to 80 s with the defaults), and a container was
    killed meanwhile with nothing said of the DM."""
    caplog.set_level(logging.INFO, logger="bot")
    caplog.set_level(logging.INFO, logger="handlers.later")
    gate = slack.hold("chat.postMessage")
    try:
        async with _serving(db, slack, mc, grace=2.0, slack_timeout_seconds=600) as bot, \
                _browser(bot.site) as browser:  # fmt: skip
            authorize = await _sign_in(browser, bot.site, mc)
            status, page = await _back_from_mailchimp(browser, bot.site, "code-1", authorize)
            await slack.wait_for("chat.postMessage", timeout=60)  # the DM on its way, held
            bot.stop.set()
            await asyncio.wait_for(asyncio.shield(bot.task), 20)
    finally:
        gate.set()
    assert status == 200 and CONNECTED_PAGE in page, page
    assert await accounts.connection(db, TEAM) is not None
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    who = f"team {TEAM}, user {LEAD}"
    assert len(warned) == 2 and re.fullmatch(
        r"stopping with 1 piece\(s\) of work still under way after \d+\.\d s, given up: the "
        r"Mailchimp sign-in's DM \(" + who + r"\)", warned[0]), warned  # fmt: skip
    assert warned[1] == (f"Mailchimp connected ({who}), but the person wasn't told in Slack "
                         "that Mailchimp account 'Northwind Coffee' is connected: cut off "
                         "before Slack answered"), warned  # fmt: skip


async def test_a_dm_slack_cant_take_leaves_the_page_and_the_connection(
    db: Database, slack: FakeSlack, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack down for chat.postMessage (connections dropped, retries too): the page says
    connected, the account is saved, and the DM's failure is logged, once."""
    slack.outage("chat.postMessage", times=10)
    async with _serving(db, slack, mc) as bot, _browser(bot.site) as browser:
        authorize = await _sign_in(browser, bot.site, mc)
        status, page = await _back_from_mailchimp(browser, bot.site, "code-1", authorize)
        assert status == 200 and CONNECTED_PAGE in page, page
        await _until(lambda: _bot_errors(caplog), "the DM's failure in the log")
    failed = _bot_errors(caplog)  # serve has stopped: all there will ever be
    assert await accounts.connection(db, TEAM) is not None
    assert _dm(slack) == []
    said = failed[0].getMessage()  # one line, with the workspace, the person and the account
    assert len(failed) == 1 and all(w in said for w in (TEAM, LEAD, "Northwind Coffee")), said


async def test_a_dm_slack_never_answers_is_given_up_after_slack_timeout_seconds(
    db: Database, slack: FakeSlack, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """serve's Slack session gives up a call Slack took and never answers after
    SLACK_TIMEOUT_SECONDS of silence (30 s by default; slack_sdk tries once more). It had
    aiohttp's 5 minutes: slack_sdk applies its own timeout only to sessions it makes."""
    gate = slack.hold("chat.postMessage")
    try:
        async with _serving(db, slack, mc, slack_timeout_seconds=1.0) as bot, \
                _browser(bot.site) as browser:  # fmt: skip
            authorize = await _sign_in(browser, bot.site, mc)
            status, page = await _back_from_mailchimp(browser, bot.site, "code-1", authorize)
            assert status == 200 and CONNECTED_PAGE in page, page
            # 2 tries of 1 s each, given a loaded machine's 20: the default's 2 x 30 s
            # (or aiohttp's 2 x 300 s) would not be
            failed = await _until(lambda: _bot_errors(caplog), "the DM given up", seconds=20)
    finally:
        gate.set()
    said = failed[0].getMessage()
    assert len(failed) == 1 and all(w in said for w in (TEAM, LEAD, "Northwind Coffee")), said
    assert _dm(slack) == []

