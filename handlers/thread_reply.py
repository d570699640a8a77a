"""One reply in a thread, posted once and then updated in place, whoever posts it.

The import's progress reply and the enrollment's report both work this way: two posters may
each post before either has recorded its reply (the approving click and the worker, two
report runs), and a person may delete the reply. The reply's ts is recorded only if none was
(`keep`), so the loser of a race deletes its own; one someone deleted is forgotten (`drop`)
and posted again, instead of every later update failing on it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack_errors import slack_error

log = logging.getLogger(__name__)

# chat.update's answers for a message someone deleted (or that can no longer be edited)
GONE_MESSAGE = frozenset({"message_not_found", "cant_update_message"})


def message_gone(exc: SlackApiError) -> bool:
    return slack_error(exc) in GONE_MESSAGE


async def show_reply(client: AsyncWebClient, *, channel: str, thread_ts: str, shown: str | None,
                     text: str, blocks: Any = None, keep: Callable[[str], Awaitable[str]],
                     drop: Callable[[str], Awaitable[None]],
                     replace_kept: bool) -> None:  # fmt: skip
    """Show `text` (and `blocks`) as the thread's one reply; `shown` is the recorded reply.

    `keep(ts)` records ts unless another reply was recorded first and returns the one kept;
    `drop(ts)` forgets a deleted reply. `replace_kept`: a reply that loses the race still
    puts its content in the kept one (a result over a progress; not a stale progress)."""
    extra = {"blocks": blocks} if blocks is not None else {}
    if shown:
        try:
            await client.chat_update(channel=channel, ts=shown, text=text, **extra)
            return
        except SlackApiError as exc:
            if not message_gone(exc):
                raise
            log.info("the reply %s in %s was deleted: posting it again", shown, channel)
            await drop(shown)
    posted = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text,
                                           **extra)  # fmt: skip
    kept = await keep(str(posted["ts"]))
    if kept != posted["ts"]:  # another poster's reply was kept first: one reply stays
        await client.chat_delete(channel=channel, ts=posted["ts"])
        if replace_kept:
            await client.chat_update(channel=channel, ts=kept, text=text, **extra)
