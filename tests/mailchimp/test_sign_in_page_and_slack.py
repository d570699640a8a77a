"""The page Mailchimp's sign-in ends on, from `serve` itself, while Slack is slow or gone.

The callback told the person in Slack (a DM) before it answered the browser: a Slack that
held the DM held the page with it (5 minutes for one that never answered: serve's Slack
session's timeout), and `serve` stopping meanwhile dropped the page for good, though the
connection was saved. The browser, `serve`, the fake Slack and the fake Mailchimp talk HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.app import serve
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
async def _serving(db: Database, slack: FakeSlack, mc: FakeMailchimp) -> AsyncIterator[Serving]:
    """`serve` in this process (Slack over HTTP, no worker), listening on a free port."""
    port = free_port()
    settings = load_settings(database_url=db.url, database_schema=db.schema,
                             slack_bot_token="xoxb-test", slack_signing_secret="s3cret",
                             slack_app_token="", slack_api_url=slack.api_url,
                             host="127.0.0.1", port=port, secret_key=SECRET,
                             public_url="https://bot.example", mailchimp_client_id="cid",
                             mailchimp_client_secret="csecret",
                             mailchimp_login_url=mc.login_url,
                             mailchimp_api_url=mc.base_url)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, db, run_worker=False, stop=stop))
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


async def _until(found: Callable[[], Any], what: str) -> Any:
    """`found()` once it is truthy (bounded by a minute: a loaded machine is slow)."""
    deadline = time.monotonic() + 60
    while not (value := found()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)
    return value


def _bot_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The bot's own errors (the fake Slack's dropped connections log theirs too)."""
    return [r for r in caplog.records if r.name.startswith("bot") and r.levelno >= logging.ERROR]


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
        # sent before the middleware could add it: the page still says it
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
        dm = await _until(lambda: _dm(slack), "the DM in Slack")
        assert [m["text"] for m in dm] == [CONNECTED_DM]
    found = await accounts.connection(db, TEAM)
    assert found is not None and (found.auth, found.connected_by) == ("oauth", LEAD)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_serve_stopping_while_slack_holds_the_dm_still_gave_the_page(
    db: Database, slack: FakeSlack, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve` is stopped (a deploy) while Slack holds the DM: the browser has its page, and
    serve ends after its grace for requests in progress, saying whom it didn't tell in Slack,
    and what. Before, stopping cut the browser off with no page at all, though the account
    was connected."""
    caplog.set_level(logging.INFO, logger="bot")
    gate = slack.hold("chat.postMessage")
    try:
        async with _serving(db, slack, mc) as bot, _browser(bot.site) as browser:
            authorize = await _sign_in(browser, bot.site, mc)
            answer = asyncio.create_task(_back_from_mailchimp(browser, bot.site, "code-1",
                                                              authorize))  # fmt: skip
            await slack.wait_for("chat.postMessage", timeout=60)  # the DM on its way, held
            bot.stop.set()
            await asyncio.wait_for(bot.task, 60)
            status, page = await answer
    finally:
        gate.set()
    assert status == 200 and CONNECTED_PAGE in page, page
    assert await accounts.connection(db, TEAM) is not None
    said = [r.getMessage() for r in caplog.records if "told in Slack" in r.getMessage()]
    assert len(said) == 1 and f"team {TEAM}, user {LEAD}" in said[0], said
    assert "that Mailchimp account 'Northwind Coffee' is connected" in said[0], said
    assert "serve stopped" in said[0], said


async def test_a_dm_slack_cant_take_leaves_the_page_and_the_connection(
    db: Database, slack: FakeSlack, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack down for chat.postMessage (connections dropped, retries too): the page says
    connected, the account is saved, and the DM's failure is logged."""
    slack.outage("chat.postMessage", times=10)
    async with _serving(db, slack, mc) as bot, _browser(bot.site) as browser:
        authorize = await _sign_in(browser, bot.site, mc)
        status, page = await _back_from_mailchimp(browser, bot.site, "code-1", authorize)
        assert status == 200 and CONNECTED_PAGE in page, page
        failed = await _until(lambda: _bot_errors(caplog), "the DM's failure in the log")
    assert await accounts.connection(db, TEAM) is not None
    assert _dm(slack) == []
    said = failed[0].getMessage()  # one line, with the workspace, the person and the account
    assert len(failed) == 1 and all(w in said for w in (TEAM, LEAD, "Northwind Coffee")), said
