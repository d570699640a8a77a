"""The App Home tab: what the workspace has (segments, campaigns, recent imports, Mailchimp)
and buttons for the common actions.

Opening the tab only reads: nothing is created for a workspace that has nothing yet. The
buttons reuse the other listeners: *New campaign* is the campaign list's own button
(`campaigns.py` opens the modal and, with no list to refresh, sends the result by direct
message), *Connect Mailchimp* is `/referral mailchimp`'s (`mailchimp.py` opens the sign-in or
key modal). *New import* is handled here: Home has no channel, so the import form asks which
channel to post the review in; only a team lead may leave it empty for their DM with the bot
(a review nobody else sees is one no lead could approve).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.mailchimp.accounts import check_credentials
from handlers.context import Deps, deps, team_of
from handlers.home_messages import read_more_value
from handlers.home_publish import Lists, publish_home, refresh_for
from handlers.ids import Action
from handlers.import_modal import open_import_modal
from handlers.routes import Routes

log = logging.getLogger(__name__)


async def home_opened(ack: Any, event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    if event.get("tab") != "home":
        return  # the Messages tab
    d = deps(context)
    team_id = str(body.get("team_id") or context.get("team_id") or "")
    user_id = str(event.get("user") or "")
    if not team_id or not user_id:
        return
    # a failure is logged with team and event; no direct message each time Home is opened
    where = {"team_id": team_id, "event": {"type": "app_home_opened"}}
    d.later.run(publish_home(d.db, client, team_id, user_id, team_leads=d.settings.team_leads,
                             undo_days=undo_days(d),
                             lease_seconds=d.settings.job_lease_seconds),
                client, where)  # fmt: skip
    if _time_to_look(d, team_id):
        d.later.run(_look_at_mailchimp(d, client, team_id), client, where)


# Home says what the last look at Mailchimp saw (accounts.note_refusal): a key revoked since
# showed as "Connected" until someone ran /referral mailchimp or imported from Mailchimp.
# Opening Home asks Mailchimp too, at most once in this long per workspace (and process),
# beside the publish, so Home never waits for it; a change republishes Home.
MAILCHIMP_LOOK_SECONDS = 600.0


def _time_to_look(d: Deps, team_id: str) -> bool:
    now = time.monotonic()
    if now - d.mailchimp_looked.get(team_id, -MAILCHIMP_LOOK_SECONDS) < MAILCHIMP_LOOK_SECONDS:
        return False
    d.mailchimp_looked[team_id] = now
    return True


async def _look_at_mailchimp(d: Deps, client: AsyncWebClient, team_id: str) -> None:
    checked = await check_credentials(d.db, team_id, d.settings.secret_key)
    if checked.changed:
        await refresh_for(d, client, team_id)


def undo_days(d: Deps) -> int:
    return d.settings.undo_window_days


async def on_show_more(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                       context: dict[str, Any]) -> None:  # fmt: skip
    """*Show more* or *Show less* segments or imports: the same Home with a longer or shorter
    list (for this person), kept for the republishes after changes."""
    await ack()
    d = deps(context)
    lists = Lists.chosen(*read_more_value(str(body["actions"][0].get("value") or "")))
    d.later.run(publish_home(d.db, client, team_of(body), body["user"]["id"],
                             team_leads=d.settings.team_leads, undo_days=undo_days(d),
                             lease_seconds=d.settings.job_lease_seconds, lists=lists),
                client, body)  # fmt: skip


async def _open_import(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    """Home has no channel: the form asks where to post the review (a lead may leave it
    empty, for their DM with the bot)."""
    user_id = body["user"]["id"]
    dm = await client.conversations_open(users=user_id)  # fast; the trigger lives 3 s
    await open_import_modal(d, client, body["trigger_id"], team_of(body), user_id,
                            channel_id=dm["channel"]["id"], choose_channel=True)  # fmt: skip


async def on_new_import(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                        context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    d.later.run(_open_import(d, client, body), client, body, prompt=True)


def register(app: Routes) -> None:
    app.event("app_home_opened")(home_opened)
    app.action(Action.HOME_NEW_IMPORT)(on_new_import)
    app.action(Action.HOME_MORE_SEGMENTS)(on_show_more)
    app.action(Action.HOME_MORE_IMPORTS)(on_show_more)
    app.action(Action.HOME_LESS_SEGMENTS)(on_show_more)
    app.action(Action.HOME_LESS_IMPORTS)(on_show_more)
