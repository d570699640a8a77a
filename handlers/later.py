"""Work a listener does after ack(): the response leaves at once, the work is tracked.

Slack only needs the acknowledgement; the rest of a click (database, Web API calls) runs as
a task this object keeps, so shutdown can wait for it, and a failure still reaches the
person who clicked. Work that must survive a crash is a job instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.imports.review import ReviewError
from bot.workspaces import WorkspaceError
from handlers.context import Refusal

log = logging.getLogger(__name__)
SORRY = "Something went wrong on our side; nothing was changed. Try again shortly."


def message_for(error: BaseException) -> str:
    if isinstance(error, Refusal | ReviewError | WorkspaceError):
        return str(error)
    log.error("listener failed", exc_info=error)
    return SORRY


async def tell(client: AsyncWebClient, body: dict[str, Any], error: BaseException) -> None:
    """An ephemeral note to whoever acted, where they acted."""
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if user and channel:
        await client.chat_postEphemeral(channel=channel, user=user, text=message_for(error))


class Later:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, work: Coroutine[Any, Any, None], client: AsyncWebClient,
            body: dict[str, Any]) -> None:  # fmt: skip
        task = asyncio.create_task(self._guarded(work, client, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None], client: AsyncWebClient,
                       body: dict[str, Any]) -> None:  # fmt: skip
        try:
            await work
        except Exception as exc:
            try:
                await tell(client, body, exc)
            except Exception:
                log.exception("could not tell the user about a failure")

    async def drain(self) -> None:
        """Wait for the work in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
