"""The app factory: bolt app, aiohttp server (Slack requests, health) and in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import ClientSession, web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.imports.slack_files import FileRejected
from bot.jobs.kinds import handlers as job_handlers
from bot.jobs.worker import Worker, WorkerConfig
from bot.settings import Settings
from handlers import register_listeners
from handlers.context import Deps
from handlers.later import Later
from handlers.notify import SlackNotifier
from models import Database

log = logging.getLogger(__name__)
GONE = frozenset({"file_not_found", "file_deleted", "access_denied"})


def slack_client(settings: Settings, session: ClientSession | None = None) -> AsyncWebClient:
    """The Web API client; bolt copies its base_url, session and retry handlers per request.

    Pass a long-lived `session` so calls reuse connections instead of opening one each.
    """
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
    )


def build_app(
    settings: Settings, client: AsyncWebClient, db: Database, later: Later | None = None
) -> AsyncApp:
    # Listeners finish before the response goes out: no 10 ms ack polling, no untracked task
    # to lose on shutdown. They only do short work after ack(); long work is a job.
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or None,
        process_before_response=True,
    )
    deps = Deps(
        db=db, settings=settings, notifier=SlackNotifier(client, db), later=later or Later()
    )
    register_listeners(app, deps)
    return app


def build_worker(settings: Settings, client: AsyncWebClient | None, db: Database) -> Worker:
    """A worker for every job kind; Slack-backed kinds and reports only when a client exists."""
    notifier = SlackNotifier(client, db) if client is not None else None
    lookup = None
    if client is not None:
        bound = client

        async def lookup(file_id: str) -> dict[str, Any]:
            try:
                return (await bound.files_info(file=file_id))["file"]  # type: ignore[no-any-return]
            except SlackApiError as exc:
                if exc.response.get("error") in GONE:
                    raise FileRejected("The file was deleted, or the bot can't see it.") from None
                raise

    config = WorkerConfig(lease_seconds=settings.job_lease_seconds,
                          poll_seconds=settings.worker_poll_seconds,
                          retry_base_seconds=settings.job_retry_base_seconds)  # fmt: skip
    return Worker(db, job_handlers(settings, notifier, lookup), config)


def build_web_app(bolt: AsyncApp) -> web.Application:
    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    web_app = web.Application()
    web_app.router.add_post("/slack/events", slack_events)
    web_app.router.add_get("/healthz", health)
    return web_app


async def serve(settings: Settings, db: Database, *, run_worker: bool = True) -> None:
    """HTTP mode (or Socket Mode with SLACK_APP_TOKEN) plus the in-process worker."""
    session = ClientSession(trust_env=False)
    client = slack_client(settings, session)
    later = Later()
    bolt = build_app(settings, client, db, later)
    worker = build_worker(settings, client, db) if run_worker else None
    worker_task = asyncio.create_task(worker.run()) if worker else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.slack_app_token:
            from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

            handler = AsyncSocketModeHandler(bolt, settings.slack_app_token)
            await handler.connect_async()
            log.info("connected to Slack in Socket Mode")
            await stop.wait()
            await handler.close_async()
        else:
            runner = web.AppRunner(build_web_app(bolt))
            await runner.setup()
            await web.TCPSite(runner, "0.0.0.0", settings.port).start()
            log.info("listening on :%s (Slack requests at /slack/events)", settings.port)
            await stop.wait()
            await runner.cleanup()
    finally:
        await later.drain()
        if worker and worker_task:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        await session.close()
