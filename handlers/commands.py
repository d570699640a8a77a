"""`/referral` and its subcommands."""

from __future__ import annotations

import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from handlers import audit_log, campaigns, contact_search, leads, mailchimp, segments, undo
from handlers.context import Deps, deps
from handlers.home import open_import_form
from handlers.home_messages import AGAIN_TYPED
from handlers.messages import help_text
from handlers.people import is_direct_message
from handlers.routes import Routes

# `/referral <word> ...` -> its listener; each gets the whole command (text included) to parse
SUBCOMMANDS = {
    "campaign": campaigns.list_command,
    "campaigns": campaigns.list_command,
    "mailchimp": mailchimp.status_command,
    "contacts": contact_search.command,
    "contact": contact_search.command,
    "segments": segments.command,
    "segment": segments.command,
    "leads": leads.command,
    "audit": audit_log.command,
    "undo": undo.command,  # says where undo is (a button, not a subcommand)
}


def typed(text: str) -> str:
    """A slash command's text as typed: Slack sends `&`, `<` and `>` as entities, so
    `/referral contacts AT&T` searched for "AT&amp;T" and found nothing."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def referral(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    started = time.monotonic()  # the trigger id's 3 s run from about now
    command = {**command, "text": typed(command.get("text") or "")}
    words = command["text"].lower().split()
    listener = SUBCOMMANDS.get(words[0] if words else "")
    if listener is not None:
        await listener(ack, command, client, context)
        return
    if words[:1] != ["import"]:
        await ack(text=help_text(deps(context).settings.undo_window_days))
        return
    await ack()
    # trigger ids live 3 seconds: opening the modal is the first thing after the ack
    d = deps(context)
    d.later.run(_open_import_form(d, client, command, started), client, command, prompt=True)


def in_direct_message(command: dict[str, Any]) -> bool:
    """Typed in a direct message (with the bot, between people, or a group DM)."""
    return is_direct_message(str(command.get("channel_id") or ""),
                             str(command.get("channel_name") or ""))  # fmt: skip


async def _open_import_form(d: Deps, client: AsyncWebClient, command: dict[str, Any],
                            started: float) -> None:  # fmt: skip
    """The import form for `/referral import`. Typed in a direct message, the form asks where
    the review goes (as Home's does): one posted in that conversation was one no lead would
    see. Left empty, it goes to the person's DM with the bot, not to the conversation typed
    in: the bot can't post in a DM between people nor be invited into one, so a review sent
    there failed and told the person to /invite the bot where no one can."""
    await open_import_form(d, client, trigger_id=command["trigger_id"],
                           team_id=command["team_id"], user_id=command["user_id"],
                           review_in=None if in_direct_message(command) else command["channel_id"],
                           again=AGAIN_TYPED, started=started)  # fmt: skip


def register(app: Routes) -> None:
    app.command("/referral")(referral)
