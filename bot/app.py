"""The app factory: bolt app, aiohttp server (Slack requests, health) and in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

# Mailchimp's client is loaded lazily by bot.mailchimp.api (the command line rarely needs it);
# serve and its workers load it here, at start, not on the event loop during a request.
import mailchimp_marketing  # noqa: F401
from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.middleware import RequestVerification
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import configure_mappers
from yarl import URL

from bot.db_health import DatabaseHealth
from bot.home_refresh import workers_changed_in
from bot.imports.upload_offers import UPLOAD_OFFER_JOB, upload_offer_handler
from bot.jobs.child import CHILD_STOP_SECONDS, ChildWorker, settings_env
from bot.jobs.kinds import handlers as job_handlers
from bot.jobs.supervisor import WorkerSupervisor, combined_health, without_worker
from bot.jobs.worker import Worker, WorkerConfig
from bot.settings import Settings
from bot.slack_connection import (
    LISTENERS_GRACE_SECONDS,
    PING_SECONDS,
    SocketModeHealth,
    listeners_finished,
    one_line,
    socket_mode_logger,
    track_listeners,
)
from bot.slack_requests import form_fields, to_bolt_request
from bot.web import (
    REDACTED,
    REFERRAL_PATH,
    SECRET_PATH,
    SECRET_QUERY,
    logged_path,
    own_error_pages,
    public_head,
    public_routes,
    requested_path,
    under_public_path,
)
from handlers import register_listeners
from handlers.context import Deps
from handlers.home_publish import home_refresher
from handlers.later import Later
from handlers.messages import esc
from handlers.notify import SlackNotifier, is_outage
from handlers.slack_errors import TOKEN_REFUSALS, slack_error
from handlers.slack_files import slack_fetcher
from handlers.uploads import upload_offerer
from models import Database

log = logging.getLogger(__name__)
# What serve's stop gives the work under way after acks and sign-ins (Slack calls): as long
# as its worker children get to finish their chunk, so a stop takes no longer for it.
WORK_GRACE_SECONDS = CHILD_STOP_SECONDS
Health = Callable[[], dict[str, Any]]


def slack_client(settings: Settings, session: ClientSession | None = None) -> AsyncWebClient:
    """The Web API client; bolt copies its base_url, session and retry handlers per request.

    Pass a long-lived `session` so calls reuse connections instead of opening one each.
    """
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        session=session,
        # slack_sdk's default (a connection dropped, e.g. a stale keep-alive on the long-lived
        # session) kept beside the rate-limit one; passing a list replaces the defaults
        retry_handlers=[AsyncConnectionErrorRetryHandler(),
                        AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
    )


# An app-level token without connections:write can't open Socket Mode either: refused at
# start as a wrong one is (it looped a traceback every 10 s)
_APP_TOKEN_REFUSALS = {**TOKEN_REFUSALS,
                       "missing_scope": "the token lacks the connections:write scope"}
# The bot token's scopes manifest.yml asks for (tests/test_manifest.py keeps them equal).
# auth.test takes a token whatever its scopes: an app made by hand, or installed before a
# scope was added and not reinstalled, started without a word, and every approval then failed
# on users.info as "Something went wrong". Slack lists a token's scopes in the
# `x-oauth-scopes` header of each answer, which the start's check reads.
BOT_SCOPES = ("commands", "chat:write", "files:read", "files:write", "im:write", "users:read")
# Slack answers auth.test in well under a second: one that can't be reached (a firewall that
# drops packets) shouldn't hold the start for the client's default 30 s.
TOKEN_CHECK_SECONDS = 5
# The long-lived session's timeouts for serve's Slack calls. slack_sdk applies its client's
# `timeout` (30 s) only to sessions it makes itself: a session passed in is used as it is,
# and aiohttp's default is 5 minutes in all, so a Slack that took a call and never answered
# held it for 5 minutes (the token's check at start too: TOKEN_CHECK_SECONDS did nothing).
# No limit in all: a segment's export is uploaded through this session (tens of MB); a
# connection not made in 10 s, or an answer silent for SLACK_TIMEOUT_SECONDS, is given up.
SLACK_CONNECT_SECONDS = 10


def slack_timeout(settings: Settings) -> ClientTimeout:
    """The timeouts of serve's Slack session (see SLACK_CONNECT_SECONDS)."""
    return ClientTimeout(total=None, sock_connect=SLACK_CONNECT_SECONDS,
                         sock_read=settings.slack_timeout_seconds)  # fmt: skip


def slack_session(settings: Settings) -> ClientSession:
    """The connection pool a process's Slack client keeps (serve's, a worker's): made in the
    running event loop, closed by whoever made it."""
    return ClientSession(trust_env=False, timeout=slack_timeout(settings))


async def refused_bot_token(settings: Settings) -> str | None:
    """Ask Slack (auth.test, at SLACK_API_URL) whether it takes SLACK_BOT_TOKEN, and in
    Socket Mode (apps.connections.open) SLACK_APP_TOKEN, as `serve` starts: a mistyped or
    revoked bot token showed only at the first slash command, as a failure in Slack and a
    line in the log; a refused app token, as a 40-line traceback every 10 s for as long as
    serve ran, /healthz saying "not connected yet". Returns why Slack refused one, for
    `serve` to stop with; None when Slack took them, or couldn't be asked (said in one
    warning line: Slack may be reachable later)."""
    async with ClientSession(trust_env=False,
                             timeout=ClientTimeout(total=TOKEN_CHECK_SECONDS)) as session:
        client = slack_client(settings, session)
        refused = await _refused(settings, "SLACK_BOT_TOKEN", "auth.test", client.auth_test,
                                 "Copy the Bot User OAuth Token (it starts with xoxb-) from "
                                 "your app's page at https://api.slack.com/apps > OAuth & "
                                 "Permissions (install the app to your workspace first if it "
                                 "isn't there)")  # fmt: skip
        if refused is not None or not settings.slack_app_token:
            return refused
        app_client = AsyncWebClient(base_url=settings.slack_api_url, session=session)
        return await _refused(settings, "SLACK_APP_TOKEN", "apps.connections.open",
                              lambda: app_client.apps_connections_open(
                                  app_token=settings.slack_app_token),
                              "Make an app-level token with the connections:write scope (it "
                              "starts with xapp-) on your app's page at "
                              "https://api.slack.com/apps > Basic Information > App-Level "
                              "Tokens")  # fmt: skip


async def _refused(settings: Settings, name: str, method: str,
                   call: Callable[[], Awaitable[Any]], advice: str) -> str | None:  # fmt: skip
    """Why Slack refused the token `name` at `method` (`call`), with `advice` on where to get
    the right one; None when it took it or couldn't be asked."""
    try:
        found = await call()
    except Exception as exc:
        error = slack_error(exc) if isinstance(exc, SlackApiError) else ""
        refusals = _APP_TOKEN_REFUSALS if name == "SLACK_APP_TOKEN" else TOKEN_REFUSALS
        if error in refusals:
            return (f"Slack refused {name} ({error}): {refusals[error]}. {advice}, set "
                    f"{name} to it and start again.")  # fmt: skip
        if is_outage(exc):
            log.warning("couldn't check %s with Slack (%s at %s): %s; starting anyway (Slack "
                        "may be reachable later)", name, method, settings.slack_api_url,
                        one_line(exc))  # fmt: skip
            return None
        if not error:  # no answer of Slack's, nor an outage: not ours to judge here
            raise
        log.warning("Slack answered the check of %s (%s) with %s; starting anyway", name,
                    method, error)  # fmt: skip
        return None
    if method == "auth.test":
        log.info("Slack takes SLACK_BOT_TOKEN: the bot user %s of workspace %s (%s)",
                 found.get("user"), found.get("team"), found.get("team_id"))  # fmt: skip
        if missing := missing_scopes(getattr(found, "headers", None) or {}):
            log.warning("SLACK_BOT_TOKEN lacks the scopes %s that manifest.yml asks for: what "
                        "needs them will fail. Add them on your app's page at "
                        "https://api.slack.com/apps > OAuth & Permissions (or update the app "
                        "from manifest.yml) and reinstall the app to the workspace",
                        ", ".join(missing))  # fmt: skip
    return None


def missing_scopes(headers: Mapping[str, str]) -> list[str]:
    """BOT_SCOPES the token's answer doesn't list in `x-oauth-scopes`; none when Slack sent
    no such header (nothing to judge by)."""
    granted = next((v for k, v in headers.items() if k.lower() == "x-oauth-scopes"), None)
    if granted is None:
        return []
    have = {scope.strip() for scope in granted.split(",")}
    return [scope for scope in BOT_SCOPES if scope not in have]


SLACK_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
# How long a stop waits for HTTP requests still in progress (see serve).
REQUESTS_GRACE_SECONDS = 3.0


class SlackQuietAccessLogger(AccessLogger):
    """aiohttp's access log, less the Slack requests that were answered (< 400).

    Those are most of the traffic, and formatting and writing a line for each cost 10-15% of
    a slash command's CPU on the one event loop; the listeners log what they did anyway.
    Refused Slack requests and every other route (referral and unsubscribe links, OAuth)
    are still logged.
    """

    # PUBLIC_URL's path as request.path reads it: serve answers under it too (quiet_access_log)
    prefix = ""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if response.status < 400 and request.path in (SLACK_PATH, self.prefix + SLACK_PATH):
            return
        super().log(_without_secrets(request, self.prefix), response, time)


def quiet_access_log(public_path: str) -> type[SlackQuietAccessLogger]:
    """SlackQuietAccessLogger for a serve answering under PUBLIC_URL's path (`public_path`,
    Settings.public_path) too: aiohttp takes the class and makes the logger itself."""
    return type(SlackQuietAccessLogger.__name__, (SlackQuietAccessLogger,),
                {"prefix": requested_path(public_path)})  # fmt: skip


def _without_secrets(request: BaseRequest, prefix: str = "") -> BaseRequest:
    """The request as the access log may show it: with its secrets replaced by "redacted",
    at the root or under PUBLIC_URL's path (`prefix`, decoded as request.path is). Only the
    public pages' requests are cloned: the rest are logged as they came."""
    path = request.path
    if public_head(path, SECRET_PATH, prefix) is not None:  # its query goes too
        return request.clone(rel_url=URL.build(path=logged_path(path, prefix)))
    if not request.query_string:
        return request
    if public_head(path, REFERRAL_PATH, prefix) is not None:  # the visitor's (logged_path)
        return request.clone(rel_url=request.rel_url.with_query(None))
    if public_head(path, SECRET_QUERY, prefix) is not None:
        return request.clone(rel_url=URL.build(path=path, query={
            key: REDACTED for key in request.query}))  # fmt: skip
    return request


async def is_ssl_check(request: web.Request) -> bool:
    """Slack's check of our certificate (when the Request URL is saved, and now and then): a
    form post of `ssl_check=1` with no signature headers. Bolt answers it 200 before verifying
    anything; refused here as unsigned, it made Slack report the URL as failing."""
    if request.content_type != "application/x-www-form-urlencoded":
        return False
    try:
        return form_fields((await request.read()).decode("utf-8")).get("ssl_check") == "1"
    except ValueError:  # not UTF-8: not Slack's
        return False


_STAMP_DIGITS = 12  # seconds since 1970: 10 digits until the year 2286


def slack_events_route(bolt: AsyncApp) -> Callable[[web.Request], Any]:
    async def slack_events(request: web.Request) -> web.Response:
        # bolt raises (instead of refusing) on a timestamp that isn't a number: refuse it here,
        # and one of more digits than a time has (its float() overflowed, logged as an error
        # of its own with all 400 digits), or digits of another script
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _STAMP_DIGITS):
            if await is_ssl_check(request):  # nothing to do, nothing run: bolt's own answer
                return web.Response(status=200, text="")
            log.warning("refused a request without a valid Slack timestamp from %s",
                        request.remote)  # fmt: skip
            return web.Response(status=401, text="")
        try:
            parsed = await to_bolt_request(request)
        except ValueError as exc:  # before bolt checks the signature: anyone can send this
            log.warning("refused a malformed request from %s: %s", request.remote, exc)
            return web.Response(status=400, text="")
        try:
            answer = await bolt.async_dispatch(parsed)
        except Exception as exc:  # bolt's own reading of the payload, before any listener:
            # a signed payload of a shape it can't handle ("actions": [], a view without a
            # type) was a bare 500 with aiohttp's traceback and no word of who or what
            log.warning("refused a request of a shape bolt can't handle from %s (%s): %s: %s",
                        request.remote, parsed.body.get("type") or "?", type(exc).__name__,
                        exc)  # fmt: skip
            return web.Response(status=400, text="")
        if answer.status == 401:  # bolt's own line (the body) is dropped: _BodyNotLogged
            log.warning("refused a request with a bad or stale Slack signature from %s "
                        "(%d bytes, timestamp %r)", request.remote, len(parsed.raw_body),
                        request.headers.get("X-Slack-Request-Timestamp"))  # fmt: skip
        return await to_aiohttp_response(answer)

    return slack_events


class _TokenIsTheClients(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from the environment even when it is given the client the
    token belongs to, and then warns at every start that it "will be unused"."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


logging.getLogger(f"slack_bolt.{AsyncApp.__name__}").addFilter(_TokenIsTheClients())


class _MalformedRequestsBriefly(logging.Filter):
    """aiohttp logs a request it can't parse (a line over 8,190 bytes, a method it doesn't
    know) as an ERROR with a traceback quoting the raw line: an unsubscribe token, or the
    Mailchimp callback's code and state, landed in the log that the access log keeps them out
    of (`_without_secrets`), and anyone could fill it with such errors. Said instead as one
    warning of what kind of request it was, without what was sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and str(record.msg).startswith(
                "Error handling request"):  # fmt: skip
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a request that isn't well-formed HTTP from %s (%s, %s)"
            record.args = (remote, type(exc).__name__, exc.code)
            record.exc_info = record.exc_text = None
            if record.levelno > logging.WARNING:  # aiohttp's DEBUG for a first line that
                # isn't HTTP at all (TLS, a port scanner) stays DEBUG
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


logging.getLogger("aiohttp.server").addFilter(_MalformedRequestsBriefly())


class _BodyNotLogged(logging.Filter):
    """bolt logs a request whose signature fails at INFO, `serve`'s level, with its whole body:
    anyone could write lines of their own into the log (a newline and a made-up record) or a
    megabyte per request, and a genuine request refused for a skewed clock or a rotated
    signing secret left its response_url (which can post to the channel) in it.
    slack_events_route logs its own line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_BOLTS_REFUSAL)


# bolt's message (tests/handlers/test_hostile.py sees it go if an upgrade rewords it); its
# async verifier logs as the sync one (RequestVerification.__init__ names that class)
_BOLTS_REFUSAL = "Invalid request signature detected"
logging.getLogger(f"slack_bolt.{RequestVerification.__name__}").addFilter(_BodyNotLogged())


def build_app(
    settings: Settings, client: AsyncWebClient, db: Database, later: Later | None = None
) -> AsyncApp:
    # Listeners finish before the response goes out: no 10 ms ack polling, no untracked task
    # to lose on shutdown. They only do short work after ack(); long work is a job.
    # named: without a name bolt takes its caller's file name from inspect.stack(), which
    # reads the source of every frame on the stack (~30 ms an app; the tests build hundreds)
    app = AsyncApp(
        name="referral-bot",
        client=client,
        signing_secret=settings.slack_signing_secret or None,
        process_before_response=True,
    )
    deps = Deps(
        db=db, settings=settings, notifier=slack_notifier(settings, client, db),
        later=later or Later(), jobs_here=jobs_here(settings, client, db),
    )
    register_listeners(app, deps)
    return app


def slack_notifier(settings: Settings, client: AsyncWebClient, db: Database) -> SlackNotifier:
    return SlackNotifier(client, db, team_leads=settings.team_leads,
                         undo_days=settings.undo_window_days,
                         lease_seconds=settings.job_lease_seconds,
                         secret_key=settings.secret_key)  # fmt: skip


def jobs_here(settings: Settings, client: AsyncWebClient, db: Database) -> Worker:
    """The jobs a listener queues and then runs at once in this process (upload offers): a
    worker of its own that never polls, so they don't wait behind an import in the workers
    (bot/imports/upload_offers.py)."""
    offers = upload_offer_handler(upload_offerer(db, client, settings))
    config = WorkerConfig(lease_seconds=settings.job_lease_seconds,
                          retry_base_seconds=settings.job_retry_base_seconds)  # fmt: skip
    return Worker(db, {UPLOAD_OFFER_JOB: offers}, config)


def build_worker(settings: Settings, client: AsyncWebClient | None, db: Database) -> Worker:
    """A worker for every job kind; Slack-backed kinds and reports only when a client exists."""
    notifier = slack_notifier(settings, client, db) if client is not None else None
    fetch = slack_fetcher(settings, client) if client is not None else None
    homes = (home_refresher(db, client, team_leads=settings.team_leads,
                            undo_days=settings.undo_window_days,
                            lease_seconds=settings.job_lease_seconds,
                            secret_key=settings.secret_key)
             if client is not None else None)  # fmt: skip
    offers = upload_offerer(db, client, settings) if client is not None else None
    config = WorkerConfig(lease_seconds=settings.job_lease_seconds,
                          poll_seconds=settings.worker_poll_seconds,
                          retry_base_seconds=settings.job_retry_base_seconds)  # fmt: skip
    return Worker(db, job_handlers(settings, notifier, fetch, homes, offers), config,
                  kinds_changed=workers_changed_in)  # fmt: skip


def tell_connected(client: AsyncWebClient) -> Callable[[str, str, str], Any]:
    """After a Mailchimp sign-in, tell the person who started it, in Slack. A failure is the
    caller's to log (bot.web: with the workspace, the person and the account)."""

    async def tell(team_id: str, user_id: str, account: str) -> None:
        dm = await client.conversations_open(users=user_id)
        name = f"*{esc(account)}*" if account else "Your account"
        text = (f":white_check_mark: Mailchimp is connected: {name}. Its audiences can now "
                "be added to imports.")  # fmt: skip
        await client.chat_postMessage(channel=dm["channel"]["id"], text=text)

    return tell


def build_web_app(
    bolt: AsyncApp | None, *, health: Health | None = None,
    routes: Sequence[web.RouteDef] = (), socket_mode: SocketModeHealth | None = None,
    database: DatabaseHealth | None = None, public_path: str = "",
) -> web.Application:  # fmt: skip
    """The routes `serve` answers on HOST:PORT: health, the public pages (referral and
    unsubscribe links) and, when Slack talks HTTP, `/slack/events`.

    `/healthz` and `/slack/events` are answered under PUBLIC_URL's path (`public_path`) too,
    as the pages are (public_routes): where a proxy forwards only that path to serve, as it
    came, a Slack Request URL and a health check through it can name it as the links do."""

    async def health_route(_: web.Request) -> web.Response:
        report = health() if health is not None else {"ok": True}
        for name, part in (("database", database), ("slack", socket_mode)):
            if part is not None:
                found = report[name] = await part.report()
                report["ok"] = bool(report.get("ok")) and found["ok"]
        return web.json_response(report, status=200 if report.get("ok") else 503)

    prefix = requested_path(public_path)
    # Slack's endpoint and /healthz answer machines: aiohttp's own 404/405 there, as ever
    untouched = {head + path for head in {"", prefix} for path in (SLACK_PATH, HEALTH_PATH)}
    web_app = web.Application(middlewares=[own_error_pages(untouched, prefix)])
    machines = [web.get(HEALTH_PATH, health_route)]
    if bolt is not None:
        machines.insert(0, web.post(SLACK_PATH, slack_events_route(bolt)))
    web_app.add_routes([*machines, *under_public_path(public_path, machines)])
    web_app.add_routes(routes)
    return web_app


def _supervisors(settings: Settings, client: AsyncWebClient, db: Database
                 ) -> list[WorkerSupervisor]:  # fmt: skip
    """WORKER_PROCESSES child `referral-bot worker`s (jobs never share the process that acks
    Slack), or with 0 one worker in this process."""
    if settings.worker_processes == 0:
        return [WorkerSupervisor(build_worker(settings, client, db))]
    env = settings_env(settings)
    children = settings.worker_processes
    if db.is_sqlite and children > 1:  # as `worker --concurrency` says it: several only queue
        log.warning("SQLite has one writer at a time: starting one worker process, not %d "
                    "(WORKER_PROCESSES)", children)  # fmt: skip
        children = 1
    return [WorkerSupervisor(ChildWorker(env, name=f"worker {n + 1}"))
            for n in range(children)]  # fmt: skip


def settle_heap() -> None:
    """Move everything built at start (modules, app, schema) out of the garbage collector's way.

    A full collection walks every tracked object: with the libraries and migrations loaded
    that is ~150k of them, 60-220 ms during which the event loop acks nothing (one such pause
    was the whole p99 of bench/ack_latency.py). Frozen objects are never scanned again, so a
    full collection only walks what requests created since. The ORM's mappers are set up
    first (SQLAlchemy does it on first use otherwise, i.e. during a request).
    """
    configure_mappers()
    gc.collect()
    gc.freeze()


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    """Listen on HOST:PORT, or fail naming them: a HOST that resolves to nothing said only
    "[Errno -2] Name or service not known", with no word of which setting to fix."""
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise OSError(f"can't listen on HOST={settings.host} PORT={settings.port}: "
                      f"{reason}") from exc  # fmt: skip


async def serve(
    settings: Settings, db: Database, *, run_worker: bool = True,
    stop: asyncio.Event | None = None, work_grace_seconds: float = WORK_GRACE_SECONDS,
) -> None:
    """HTTP routes on HOST:PORT always; Slack over HTTP, or Socket Mode with SLACK_APP_TOKEN.

    `stop` ends it (SIGTERM and SIGINT set it too); tests pass their own, and a shorter
    `work_grace_seconds`.
    """
    stop = stop or asyncio.Event()
    session = slack_session(settings)
    client = slack_client(settings, session)
    later = Later()
    bolt = build_app(settings, client, db, later)
    # Workers restart if they ever crash; /healthz says how they are doing.
    supervisors = _supervisors(settings, client, db) if run_worker else []
    for supervisor in supervisors:
        supervisor.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    socket_mode = bool(settings.slack_app_token)
    log.info("%s", settings.invite_delivery())
    health = (lambda: combined_health(supervisors)) if supervisors else without_worker
    connection = SocketModeHealth() if socket_mode else None
    web_app = build_web_app(None if socket_mode else bolt, health=health, socket_mode=connection,
                            database=DatabaseHealth(db), public_path=settings.public_path,
                            routes=public_routes(db, settings,
                                                 on_connected=tell_connected(client),
                                                 in_background=later.background))  # fmt: skip
    # requests still in progress at a stop get REQUESTS_GRACE_SECONDS (Slack's own are acked
    # within 3 s); aiohttp's 60 let anyone hold every shutdown for a minute with a slow body
    runner = web.AppRunner(web_app, access_log_class=quiet_access_log(settings.public_path),
                           shutdown_timeout=REQUESTS_GRACE_SECONDS)  # fmt: skip
    await runner.setup()
    settle_heap()
    handler = None
    listening: dict[asyncio.Task[Any], str] = {}
    try:
        await _listen(runner, settings)
        log.info("listening on %s:%s%s%s", settings.host, settings.port,
                 "" if socket_mode else f" (Slack requests at {SLACK_PATH})",
                 f", and under PUBLIC_URL's path {settings.public_path}"
                 if settings.public_path else "")  # fmt: skip
        if socket_mode:
            from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

            handler = AsyncSocketModeHandler(bolt, settings.slack_app_token,
                                             logger=socket_mode_logger(),
                                             ping_interval=PING_SECONDS)  # fmt: skip
            assert connection is not None
            connection.client = handler.client
            listening = track_listeners(handler.client)
            # the SDK retries a failed connection forever: `stop` must still end serve
            connecting = asyncio.create_task(handler.connect_async())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if connecting.done():
                connecting.result()
                log.info("connected to Slack in Socket Mode")
            else:
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
        await stop.wait()
    finally:
        # what's under way gets work_grace_seconds from now in all, as the worker children
        # do: listeners, requests, then the work after their acks and a sign-in's Slack DM
        # (counted from each step's end, Socket Mode's stop took 10 + 25 s, past
        # Kubernetes' 30)
        deadline = loop.time() + work_grace_seconds
        # the workers are told first: waiting for requests in progress (runner.cleanup) gave a
        # child stopped by the same signal time to be counted a crash and started again
        # a worker child is killed 25 s after its SIGTERM; one in this process is cancelled
        within = work_grace_seconds if settings.worker_processes == 0 else None
        stopping = [asyncio.create_task(supervisor.stop(within)) for supervisor in supervisors]
        if handler is not None:
            # their acks go over the websocket: it stays open until they end
            await listeners_finished(listening, min(LISTENERS_GRACE_SECONDS, work_grace_seconds))
            await handler.close_async()
        await runner.cleanup()
        # what's left then is given up, and logged
        await later.stop(deadline - loop.time())
        await asyncio.gather(*stopping)
        await session.close()
