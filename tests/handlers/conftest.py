"""The real app over HTTP on loopback, talking to the fake Slack Web API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from bot.app import build_app, build_web_app, build_worker, slack_client
from bot.jobs.worker import Worker
from bot.settings import Settings, load_settings
from handlers.later import Later
from models import Database
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackRequests

SECRET = "test-signing-secret"
LEAD = "U0002"
REP = "U0001"


@dataclass
class Harness:
    slack: FakeSlack
    requests: SlackRequests
    worker: Worker
    db: Database
    settings: Settings
    later: Later

    async def settle(self) -> None:
        """Let listeners finish their work after the ack, then run every job that is due."""
        for _ in range(3):
            await self.later.drain()
            await self.worker.run_until_idle()
            await asyncio.sleep(0.05)


@pytest.fixture
async def app(db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
              ) -> AsyncIterator[Harness]:  # fmt: skip
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with FakeSlack(bot_token="xoxb-test", team_id="T0001") as slack:
        settings = load_settings(
            database_url=db.url, slack_bot_token="xoxb-test", slack_signing_secret=SECRET,
            slack_api_url=slack.api_url, slack_file_hosts=[slack.files_host], team_leads=[LEAD],
            job_lease_seconds=10, worker_poll_seconds=0.05, job_retry_base_seconds=0,
            import_chunk_rows=100, secret_key="test-secret", outbox_dir=tmp_path / "outbox",
            public_url="https://bot.example",
        )  # fmt: skip
        session = ClientSession()
        client = slack_client(settings, session)
        later = Later()
        runner = web.AppRunner(build_web_app(build_app(settings, client, db, later)))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        requests = SlackRequests(f"http://127.0.0.1:{port}", SECRET, slack=slack)
        try:
            yield Harness(slack, requests, build_worker(settings, client, db), db, settings, later)
        finally:
            await later.drain()
            await runner.cleanup()
            await session.close()
