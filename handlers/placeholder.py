"""The modal a piece of work opened, so that when the work fails after opening it, the person
is told there.

Modals open first, with a placeholder ("Loading…", "Counting…", "Reading…"), because a trigger
id lives 3 s; the work then fills them from the database or a file. A failure after the
opening used to leave the placeholder up for good, the reason arriving elsewhere (an ephemeral
note or a DM): `Later` now shows it in the modal, and elsewhere only if Slack refuses that.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack_text import cut_mrkdwn

log = logging.getLogger(__name__)
_opened: ContextVar[list[dict[str, Any]] | None] = ContextVar("opened_modals", default=None)


def track() -> list[dict[str, Any]]:
    """Start keeping the modals this task opens (by `open_modal`); the list fills as it does."""
    opened: list[dict[str, Any]] = []
    _opened.set(opened)
    return opened


async def open_modal(client: AsyncWebClient, trigger_id: str, view: View, *,
                     push: bool = False) -> Any:  # fmt: skip
    """views.open, remembered for the running piece of work (see the module docstring).

    `push`: the click came from a modal (*Map columns* in *All sources*): the new one goes
    on top of it (views.push), so closing it goes back there rather than closing both."""
    if push:
        opened = await client.views_push(trigger_id=trigger_id, view=view)
    else:
        opened = await client.views_open(trigger_id=trigger_id, view=view)
    kept = _opened.get()
    if kept is not None:
        kept.append(opened["view"])
    return opened


async def show_failure(client: AsyncWebClient, view: dict[str, Any], text: str) -> bool:
    """Replace the modal's content with `text`; False if Slack won't (closed, or down)."""
    title = str((view.get("title") or {}).get("text") or "Referral bot")[:24]
    section = SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text)))
    notice = View(type="modal", title=title, close="Close", blocks=[section])
    try:
        await client.views_update(view_id=view["id"], view=notice)
    except Exception as exc:
        log.warning("could not show a failure in modal %s: %s", view.get("id"), exc)
        return False
    return True
