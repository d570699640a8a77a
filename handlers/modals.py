"""Showing a view in a modal that is already open, for listeners and for background reports.

Apart from handlers.respond, which imports the listeners' context: the notifier (which that
context holds) redraws modals too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack_errors import slack_error

log = logging.getLogger(__name__)


async def update_modal(client: AsyncWebClient, view_id: str, modal: View, *,
                       hash: str | None = None) -> None:  # fmt: skip
    """Show `modal` in the open modal `view_id` (a placeholder, or a form whose submission was
    acked with "Saving…"); if the person closed it, or it changed meanwhile (a newer fill,
    when `hash` is given), so be it."""
    try:
        await client.views_update(view_id=view_id, hash=hash, view=modal)
    except SlackApiError as exc:
        if slack_error(exc) not in ("not_found", "hash_conflict"):
            raise
        log.info("the %s modal was closed before it was filled in", modal.callback_id or "")


async def redraw_after_write(client: AsyncWebClient, view_id: str,
                             render: Callable[[], Awaitable[View]], *,
                             hash: str | None) -> None:  # fmt: skip
    """The modal drawn anew from the database after a click changed it (a Remove). A
    hash_conflict means another click redrew it meanwhile, maybe from the database before
    this click's write committed (two quick Removes: the second row stayed listed, with its
    Remove button, for good): drawn once more, without the hash, from the database as it is
    now that both are in."""
    try:
        await client.views_update(view_id=view_id, hash=hash, view=await render())
    except SlackApiError as exc:
        if slack_error(exc) == "hash_conflict":
            await update_modal(client, view_id, await render())
        elif slack_error(exc) != "not_found":
            raise
