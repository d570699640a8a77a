"""/healthz's view of the Socket Mode connection.

Over HTTP, Slack reaches the bot whenever its port answers, so /healthz answering is enough.
In Socket Mode the bot reaches out instead, and the SDK retries a failed connection forever
(a revoked or mistyped app token, Slack down): the process looks alive while it receives
nothing. So /healthz asks the client whether its websocket is open and answers 503 when it
isn't, after a grace period for the reconnections Slack asks for every few hours.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from handlers.notify import is_outage

# A reconnection Slack asks for (or a dropped connection) takes a second or two; whatever
# watches /healthz shouldn't restart the process for that.
RECONNECT_GRACE_SECONDS = 30.0


class _Client(Protocol):
    async def is_connected(self) -> bool: ...


class SocketModeHealth:
    """Connected, reconnecting (lost within the grace period) or not connected."""

    def __init__(self, grace_seconds: float = RECONNECT_GRACE_SECONDS) -> None:
        self.client: _Client | None = None  # set once serve has started connecting
        self.grace_seconds = grace_seconds
        self._ever_connected = False
        self._lost_at: float | None = None  # the first check that found it gone, since

    async def report(self) -> dict[str, Any]:
        if self.client is not None and await self.client.is_connected():
            self._ever_connected, self._lost_at = True, None
            return {"ok": True, "state": "connected"}
        if not self._ever_connected:
            return {"ok": False, "state": "not connected yet (the log says why)"}
        now = time.monotonic()
        if self._lost_at is None:
            self._lost_at = now
        away = now - self._lost_at
        return {"ok": away < self.grace_seconds, "state": "reconnecting",
                "seconds": round(away, 1)}  # fmt: skip


# How long `serve`, told to stop, waits for Socket Mode listeners running before it closes
# the websocket: a listener's ack goes over it (process_before_response).
LISTENERS_GRACE_SECONDS = 10.0
log = logging.getLogger(__name__)


def track_listeners(client: Any) -> dict[asyncio.Task[Any], str]:
    """The tasks of the Socket Mode request listeners running now (the SDK keeps none), each
    with what it handles ("interactive from team=T1 user=U2", for the log).

    Closed while a form submission's listener still ran, the websocket took its ack with it:
    Slack showed the person an error although the listener went on and made the import, so
    a resubmit made a second. `serve` waits for these before it closes the connection."""
    running: dict[asyncio.Task[Any], str] = {}

    def tracked(listener: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def listen(socket_client: Any, request: Any) -> None:
            task = asyncio.current_task()
            if task is not None:
                running[task] = _about(request)
            try:
                await listener(socket_client, request)
            finally:
                if task is not None:
                    running.pop(task, None)

        return listen

    listeners = client.socket_mode_request_listeners
    listeners[:] = [tracked(listener) for listener in listeners]
    return running


def _about(request: Any) -> str:
    """A Socket Mode request in a log's words: its type and whose it is (ids only)."""
    payload = getattr(request, "payload", None)
    payload = payload if isinstance(payload, dict) else {}
    team, user = payload.get("team"), payload.get("user")
    team = team.get("id") if isinstance(team, dict) else payload.get("team_id")
    user = user.get("id") if isinstance(user, dict) else payload.get("user_id")
    whose = " ".join(f"{k}={v}" for k, v in (("team", team), ("user", user)) if v)
    return f"{getattr(request, 'type', None) or 'request'} from {whose or 'unknown'}"


async def listeners_finished(listening: dict[asyncio.Task[Any], str], seconds: float) -> None:
    """Wait up to `seconds` for the listeners running and for those that start meanwhile:
    Slack goes on sending over the websocket kept open for them, and one that came during
    the wait lost its ack when the socket closed as the first ones ended, its work done all
    the same (a resubmit made a second import). Those still running then are logged by
    name: their acks go with the socket."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while listening and (left := end - loop.time()) > 0:
        await asyncio.wait(set(listening), timeout=left)
    if listening:
        log.warning("closing Socket Mode's connection with %d request(s) still being handled "
                    "after %.1f s (Slack gets no answer to them): %s", len(listening), seconds,
                    "; ".join(sorted(listening.values())))  # fmt: skip


# The pause between Socket Mode's attempts to connect: the SDK waits its ping interval after a
# failed one (10 s, its default, given to it explicitly so that the log can say so).
PING_SECONDS = 10


def one_line(exc: BaseException) -> str:
    """An exception as one short log line: a 5xx's body (an HTML error page) comes with it."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OutageInOneLine(logging.Filter):
    """The Socket Mode client's log, one warning line per failed attempt to connect while
    Slack can't be reached.

    The SDK logs each failed attempt with `logger.exception` ("Failed to connect (error: ...);
    Retrying..."): forty lines of traceback every 10 s for as long as an outage lasted,
    burying everything else. An attempt that failed because Slack couldn't be reached (a
    network error, a timeout, a 5xx: handlers.notify.is_outage) becomes one warning saying
    what failed and when it tries again; any other error (a refused app token, a bug) keeps
    its traceback. The line the SDK logs just before about the same 5xx ("Failed to retrieve
    WSS URL: ...") is dropped: the warning says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Failed to connect"):
            outage = _outage(record.exc_info[1] if record.exc_info else None)
            if outage is not None:
                record.msg = "Socket Mode: couldn't connect to Slack (%s); trying again in %d s"
                record.args = (one_line(outage), PING_SECONDS)
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.exc_info, record.exc_text, record.stack_info = None, None, None
        elif message.startswith("Failed to retrieve WSS URL"):
            # logged inside the SDK's `except` for the exception it is about (it names it only
            # as text), which it raises again to the "Failed to connect" above
            return _outage(sys.exc_info()[1]) is None
        return True


def _outage(exc: BaseException | None) -> BaseException | None:
    """The failure to reach Slack behind `exc`: itself, or the one it was raised while
    handling. A 5xx whose body isn't JSON (a text or HTML error page, as Slack's edge and
    proxies answer) fails the SDK's own handling of it (`e.response["error"]` on a str): an
    AttributeError, raised during the SlackApiError that tells what happened."""
    for candidate in (exc, exc.__context__ if exc is not None else None):
        if candidate is not None and is_outage(candidate):
            return candidate
    return None


class ConnectRetryNote(logging.Filter):
    """The Web API client's note of each retry of apps.connections.open ("A retry handler
    found: ..."), which Socket Mode's connection attempts make once each during an outage:
    OutageInOneLine's warning says that attempt failed. Other calls' retries are still noted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("A retry handler found")
                    and "/apps.connections.open" in message)  # fmt: skip


def socket_mode_logger() -> logging.Logger:
    """The logger to give the Socket Mode client (the SDK's own, not bolt's app logger it
    would take), with an outage's failed attempts in one line each (see OutageInOneLine)."""
    logger = logging.getLogger("slack_sdk.socket_mode.aiohttp")
    if not any(isinstance(f, OutageInOneLine) for f in logger.filters):
        logger.addFilter(OutageInOneLine())
    web = logging.getLogger("slack_sdk.web.async_base_client")
    if not any(isinstance(f, ConnectRetryNote) for f in web.filters):
        web.addFilter(ConnectRetryNote())
    return logger
