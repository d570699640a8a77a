"""/healthz's view of the Socket Mode connection.

Over HTTP, Slack reaches the bot whenever its port answers, so /healthz answering is enough.
In Socket Mode the bot reaches out instead, and the SDK retries a failed connection forever
(a revoked or mistyped app token, Slack down): the process looks alive while it receives
nothing. So /healthz asks the client whether its websocket is open and answers 503 when it
isn't, after a grace period for the reconnections Slack asks for every few hours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

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


# How long `serve`, told to stop, waits for Socket Mode listeners already running before it
# closes the websocket: a listener's ack goes over it (process_before_response).
LISTENERS_GRACE_SECONDS = 10.0


def track_listeners(client: Any) -> set[asyncio.Task[Any]]:
    """The tasks of the Socket Mode request listeners running now (the SDK keeps none).

    Closed while a form submission's listener still ran, the websocket took its ack with it:
    Slack showed the person an error although the listener went on and made the import, so
    a resubmit made a second. `serve` waits for these before it closes the connection."""
    running: set[asyncio.Task[Any]] = set()

    def tracked(listener: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def listen(socket_client: Any, request: Any) -> None:
            task = asyncio.current_task()
            if task is not None:
                running.add(task)
            try:
                await listener(socket_client, request)
            finally:
                if task is not None:
                    running.discard(task)

        return listen

    listeners = client.socket_mode_request_listeners
    listeners[:] = [tracked(listener) for listener in listeners]
    return running
