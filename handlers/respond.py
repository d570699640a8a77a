"""Answering a slash command or a button in place, through its `response_url`.

The lists (`/referral campaign`, `segments`, `mailchimp`, `leads`, `audit`) are ephemeral
messages: only their response_url can replace them, and a click on them carries one.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackRequestError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.imports.batches import ReviewError
from handlers.context import Refusal, team_of
from handlers.messages import esc
from handlers.modals import update_modal

log = logging.getLogger(__name__)


UPLOAD_FAILED = ("Slack didn't take the file, so the CSV isn't in your direct messages. Try again "
                 "in a moment.")  # fmt: skip


class ResponseUrlFailed(Exception):
    """Slack refused what we posted to a response_url (expired, used up, or invalid)."""


@dataclass(frozen=True, slots=True)
class Click:
    """Who clicked which button, and where to answer them."""

    team_id: str
    user_id: str
    value: str
    response_url: str
    trigger_id: str = ""

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        action = (body.get("actions") or [{}])[0]
        return cls(team_of(body), body["user"]["id"], str(action.get("value") or ""),
                   str(body.get("response_url") or ""),
                   str(body.get("trigger_id") or ""))  # fmt: skip


async def respond(client: AsyncWebClient, url: str, text: str, *, replace: bool,
                  blocks: list[Any] | None = None) -> None:  # fmt: skip
    """Replace the ephemeral message, or add an ephemeral note below it."""
    if not url:
        raise ResponseUrlFailed("no response_url to answer through")
    hook = AsyncWebhookClient(url, session=client.session)
    response = await hook.send(text=text, blocks=blocks, replace_original=replace,
                               response_type=None if replace else "ephemeral")  # fmt: skip
    if response.status_code != 200:
        raise ResponseUrlFailed(f"response_url answered {response.status_code}: "
                                f"{response.body[:200]}")  # fmt: skip


async def redraw_or_dm(client: AsyncWebClient, url: str, text: str, blocks: list[Any], *,
                       note: str, user_id: str, command: str) -> None:  # fmt: skip
    """A list redrawn in place of the one clicked, with what the click did (`note`) on top;
    if Slack won't take it (a list's response_url lasts 30 minutes and 5 uses), `note` goes
    by DM with the `command` that shows the list as it is now: the change was made, and
    "may not have gone through, try again" misled."""
    try:
        await respond(client, url, text, replace=True, blocks=blocks)
    except ResponseUrlFailed as exc:
        log.info("could not redraw the list of %s (%s); what was done goes by DM", command, exc)
        await dm(client, user_id, f"{note}\n(The list you clicked can't be redrawn any more: "
                                  f"`{command}` shows it as it is now.)")


async def fill_modal(client: AsyncWebClient, opened: Any, modal: View) -> None:
    """Fill or replace the placeholder modal just opened (trigger ids live 3 s, so modals
    open first and are filled after a database read)."""
    view = opened["view"]
    await update_modal(client, view["id"], modal, hash=view.get("hash"))


async def dm(client: AsyncWebClient, user_id: str, text: str) -> None:
    """A direct message from the bot (where a response_url can't answer any more)."""
    opened = await client.conversations_open(users=user_id)
    await client.chat_postMessage(channel=opened["channel"]["id"], text=text)


async def dm_file(client: AsyncWebClient, click: Click, **upload: Any) -> None:
    """A file (files_upload_v2's `file` or `content`, `filename`, `title`, `initial_comment`)
    in the clicker's DM with the bot: a CSV of customers' details goes to whoever asked, never
    into a channel. Slack's upload host refusing it is a Refusal (UPLOAD_FAILED) the click is
    told: the file isn't there, and the next click tries again."""
    opened = await client.conversations_open(users=click.user_id)
    try:
        await client.files_upload_v2(channel=opened["channel"]["id"], **upload)
    except SlackRequestError as exc:  # the upload step's host: no 200 from it
        log.warning("file %r not sent to %s's DM in %s: %s", upload.get("filename"),
                    click.user_id, click.team_id, exc)  # fmt: skip
        raise Refusal(UPLOAD_FAILED) from exc


def for_people(error: BaseException) -> str:
    """Our refusals are mrkdwn written for Slack (they mention leads); a service's message may
    quote names people typed, so it is escaped."""
    return str(error) if isinstance(error, Refusal | ReviewError) else esc(str(error))


async def explained(work: Coroutine[Any, Any, None], client: AsyncWebClient, url: str, *,
                    refused: tuple[type[Exception], ...], what: str,
                    user_id: str = "") -> None:  # fmt: skip
    """Run a click's work; a refusal (`Refusal` or one of `refused`) is answered as a note
    where they clicked and the message stays. When the response_url can't take it, the note
    goes by direct message (with `user_id`), or through the global error handler."""
    try:
        await work
    except (Refusal, *refused) as exc:
        text = for_people(exc)
        log.info("%s refused: %s", what, exc)
        try:
            await respond(client, url, text, replace=False)
        except ResponseUrlFailed:
            if not user_id:
                raise Refusal(text) from exc
            await dm(client, user_id, text)
