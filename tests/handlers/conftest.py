"""The real app over HTTP on loopback, talking to the fake Slack Web API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot.app import build_app, build_web_app, build_worker, slack_client
from bot.jobs.worker import Worker
from bot.settings import Settings, load_settings
from handlers import import_modal
from handlers import mailchimp as mailchimp_handlers
from handlers.ids import Action
from handlers.later import Later
from models import Database
from tests.fakes.slack_api import FakeSlack, Upload, find_element, serve
from tests.fakes.slack_requests import Reply, SlackRequests

SECRET = "test-signing-secret"
LEAD = "U0002"
REP = "U0001"

# What serve waits for before answering a form (Slack wants the answer within 3 s), after which
# it answers without it: who submits the import form (else "Slack couldn't tell me who you
# are", the form kept), a person's name in a form's error (else "someone"), a Mailchimp key's
# check (else "Checking…", the outcome shown later).
# A loaded machine (CI's 2 cores, 3 test processes and PostgreSQL) took longer than 2 s to
# say who submits, so a test that submits the form and expects its review got the refusal
# and no review ("AssertionError: []"). The harness gives them time; a test of what serve
# says when one runs out sets it itself (SERVE_DEADLINES holds serve's own).
_DEADLINES = ((import_modal, "WHO_SECONDS"), (import_modal, "NAME_SECONDS"),
              (mailchimp_handlers, "INLINE_WAIT"))  # fmt: skip
SERVE_DEADLINES = {name: getattr(module, name) for module, name in _DEADLINES}
GENEROUS_SECONDS = 30.0


@pytest.fixture(autouse=True)
def generous_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve's waits before a form's answer (see _DEADLINES) long enough for a loaded
    machine, for every test here, the ones that start `running_app` themselves included; set
    before the test and its own fixtures run, so a test's own setting wins."""
    for module, name in _DEADLINES:
        monkeypatch.setattr(module, name, GENEROUS_SECONDS)


@dataclass
class Harness:
    slack: FakeSlack
    requests: SlackRequests
    worker: Worker
    db: Database
    settings: Settings
    later: Later

    async def done(self) -> None:
        """Let the listeners finish their post-ack work (no jobs: quicker than `settle`)."""
        for _ in range(2):
            await self.later.drain()
            await asyncio.sleep(0.01)

    async def listing(self, text: str, user: str = LEAD) -> dict[str, Any]:
        """Type `/referral <text>`; what the bot answered through the response_url."""
        url = self.slack.new_response_url("C0001", user_id=user)
        reply = await self.requests.slash_command(text=text, user_id=user, response_url=url)
        assert reply.status == 200 and not reply.body  # acked at once, answered after
        await self.done()
        answer: dict[str, Any] = self.slack.responses[url][-1]
        assert answer["response_type"] == "ephemeral"
        return answer

    async def click_in(self, listing: dict[str, Any], action: str, value: str,
                       user: str = LEAD) -> list[dict[str, Any]]:  # fmt: skip
        """Click a button of an ephemeral answer; what was posted to that click's URL."""
        url = self.slack.new_response_url("C0001", user_id=user)
        await self.requests.block_action(action, value, user_id=user, response_url=url,
                                         message={"blocks": listing["blocks"]})  # fmt: skip
        await self.done()
        responses: list[dict[str, Any]] = self.slack.responses[url]  # grows as answers come
        return responses

    async def forms_opened_by(self, command: str, action: str, value: str, count: int,
                              user: str = LEAD) -> list[dict[str, Any]]:  # fmt: skip
        """`count` modals, each opened by clicking `action` in a new `/referral <command>`
        list: the views as a submission carries them."""
        views = []
        for _ in range(count):
            await self.click_in(await self.listing(command, user), action, value, user)
            modal = self.slack.open_views(user)[-1]
            views.append({k: v for k, v in self.slack.views[modal["id"]].items()
                          if not k.startswith("_")})  # fmt: skip
        return views

    async def each_submitted_twice_at_once(self, forms: list[tuple[dict[str, Any],
                                                                   dict[str, Any]]],
                                           user: str = LEAD) -> list[Reply]:  # fmt: skip
        """Every (state values, view) submitted twice in a row (Submit pressed again while
        Slack was slow to hear the first answer), all the forms at once; every reply."""

        async def twice(values: dict[str, Any], view: dict[str, Any]) -> list[Reply]:
            submit = self.requests.view_submission
            return [await submit(state_values=values, view=view, user_id=user)
                    for _ in range(2)]  # fmt: skip

        pairs = await asyncio.gather(*(twice(values, view) for values, view in forms))
        return [reply for pair in pairs for reply in pair]

    async def csvs_sent(self, thread_ts: str, action: str = Action.SEND_SKIPPED_ROWS, *,
                        user: str = LEAD, channel: str = "C0001") -> list[Upload]:  # fmt: skip
        """Click *Send me the CSV* on each offer in the thread, oldest first, as `user`: the
        CSVs the clicks brought to their direct messages with the bot, in that order (each
        asserted to land there, never in the thread)."""
        sent: list[Upload] = []
        for offer in csv_offers(self.slack, thread_ts, action, channel):
            found = find_element(offer["blocks"], action)
            assert found is not None
            before = len(self.slack.uploads)
            url = self.slack.new_response_url(channel, offer["ts"], user_id=user)
            reply = await self.requests.block_action(action, found[1]["value"], user_id=user,
                                                     channel_id=channel, message_ts=offer["ts"],
                                                     response_url=url)  # fmt: skip
            assert reply.status == 200
            await self.done()
            brought = [u for u in self.slack.uploads[before:] if u.completed]
            dm = self.slack.dm_channels.get(user)
            assert all(u.thread_ts is None and u.channel_id == dm for u in brought), brought
            sent += brought
        return sent

    async def settle(self) -> None:
        """Let listeners finish their work after the ack, then run every job that is due; again
        while either still finds work (a job's report starts listener work and vice versa)."""
        for _ in range(3):
            await self.later.drain()
            await self.worker.run_until_idle()
            await asyncio.sleep(0.01)  # what the app's threads and Slack's fake still finish
            if not self.later.busy and not await self.worker.run_until_idle():
                return


def csv_offers(slack: FakeSlack, thread_ts: str, action: str = Action.SEND_SKIPPED_ROWS,
               channel: str = "C0001") -> list[dict[str, Any]]:  # fmt: skip
    """The thread's offers of a CSV (skipped rows by default), oldest first."""
    replies = sorted(slack.messages_in(channel, thread_ts), key=lambda m: float(m["ts"]))
    return [m for m in replies if find_element(m.get("blocks") or [], action)]


@asynccontextmanager
async def running_app(db: Database, tmp_path: Path, **overrides: Any) -> AsyncIterator[Harness]:
    """The real app over HTTP on loopback against a fresh fake Slack; `overrides` are settings."""
    async with FakeSlack(bot_token="xoxb-test", team_id="T0001") as slack:
        settings = load_settings(**{
            "database_url": db.url, "slack_bot_token": "xoxb-test",
            "slack_signing_secret": SECRET, "slack_api_url": slack.api_url,
            "slack_file_hosts": [slack.files_host], "team_leads": [LEAD],
            "job_lease_seconds": 10, "worker_poll_seconds": 0.05, "job_retry_base_seconds": 0,
            "import_chunk_rows": 100, "secret_key": "test-secret",
            "outbox_dir": tmp_path / "outbox", "public_url": "https://bot.example", **overrides,
        })  # fmt: skip
        session = ClientSession()
        client = slack_client(settings, session)
        # a dropped connection is still retried once, after 0.05 s instead of slack_sdk's
        # 0.5-1.5 s (a test's Slack outage waited that out at each call it failed)
        for handler in client.retry_handlers:
            if isinstance(handler, AsyncConnectionErrorRetryHandler):
                handler.interval_calculator = FixedValueRetryIntervalCalculator(0.05)
        later = Later()
        try:
            async with serve(build_web_app(build_app(settings, client, db, later))) as url:
                requests = SlackRequests(url, SECRET, slack=slack)
                yield Harness(slack, requests, build_worker(settings, client, db), db, settings,
                              later)  # fmt: skip
                await later.drain()
        finally:
            await session.close()


@pytest.fixture
async def app(db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
              ) -> AsyncIterator[Harness]:  # fmt: skip
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with running_app(db, tmp_path) as harness:
        yield harness
