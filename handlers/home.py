"""The App Home tab: what the workspace has (segments, campaigns, recent imports, Mailchimp)
and buttons for the common actions.

Opening the tab only reads: nothing is created for a workspace that has nothing yet. The
buttons reuse the other listeners: *New campaign* is the campaign list's own button
(`campaigns.py` opens the modal and, with no list to refresh, sends the result by direct
message), *Connect Mailchimp* is `/referral mailchimp`'s (`mailchimp.py` opens the sign-in or
key modal). *New import* is handled here: Home has no channel, so the import form asks which
channel to post the review in; only a team lead may leave it empty for their DM with the bot
(a review nobody else sees is one no lead could approve). `/referral import` opens the same
form through `open_import_form`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.mailchimp.accounts import check_credentials
from handlers.context import Deps, Refusal, deps, event_team, team_of
from handlers.home_messages import AGAIN_FROM_HOME, form_not_opened, read_more_value
from handlers.home_publish import Lists, publish_for, refresh_for
from handlers.ids import Action
from handlers.import_modal import open_import_modal
from handlers.routes import Routes
from handlers.slack_retries import api_method, with_rate_limits

log = logging.getLogger(__name__)


async def home_opened(ack: Any, event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    if event.get("tab") != "home":
        return  # the Messages tab
    d = deps(context)
    team_id = event_team(body, context)
    user_id = str(event.get("user") or "")
    if not team_id or not user_id:
        return
    # a failure is logged with team and event; no direct message each time Home is opened
    where = {"team_id": team_id, "event": {"type": "app_home_opened"}}
    d.later.run(publish_for(d, client, team_id, user_id), client, where)
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


async def on_show_more(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                       context: dict[str, Any]) -> None:  # fmt: skip
    """*Show more* or *Show less* segments or imports: the same Home with a longer or shorter
    list (for this person), kept for the republishes after changes."""
    await ack()
    d = deps(context)
    lists = Lists.chosen(*read_more_value(str(body["actions"][0].get("value") or "")))
    d.later.run(publish_for(d, client, team_of(body), body["user"]["id"], lists=lists), client,
                body)  # fmt: skip


# Slack honours a trigger id for 3 s after the click; the click reaches us some time after
# Slack made it, so a form is counted as openable for this long after its listener started.
TRIGGER_SECONDS = 2.5
# the calls that open a form, and the one made just before it (the DM its review may go to)
OPENING_METHODS = frozenset({"conversations.open", "views.open", "views.push"})


def _retry_after(headers: dict[str, Any]) -> int:
    """Slack's Retry-After in whole seconds (1 when it doesn't say, as slack_sdk assumes)."""
    for name, values in headers.items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list) else values
            return int(value) if str(value).isdigit() else 1
    return 1


class _WithinTrigger(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retry, except that a call opening a form is retried only if
    the wait (Retry-After, plus up to a second slack_sdk adds) ends before its trigger id
    expires. Waited out regardless, the retry came after the trigger had expired: Slack said
    expired_trigger_id, after Retry-After seconds (30, say), and the person was told Slack
    had given too little time, when it was busy."""

    def __init__(self, handler: AsyncRateLimitErrorRetryHandler, expires: float) -> None:
        super().__init__(handler.max_retry_count, handler.interval_calculator)
        self.expires = expires

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:  # fmt: skip
        if not await super()._can_retry_async(state=state, request=request, response=response,
                                              error=error):  # fmt: skip
            return False
        if api_method(request.url) not in OPENING_METHODS or response is None:
            return True
        return time.monotonic() + _retry_after(response.headers) + 1 < self.expires


def within_trigger(client: AsyncWebClient, started: float) -> AsyncWebClient:
    """`client` (its session, token and URL) whose form-opening calls wait out a rate limit
    only within the trigger id's life (`started`: time.monotonic() as the listener began)."""
    return with_rate_limits(client,
                            lambda handler: _WithinTrigger(handler, started + TRIGGER_SECONDS))


async def open_import_form(d: Deps, client: AsyncWebClient, *, trigger_id: str, team_id: str,
                           user_id: str, review_in: str | None, again: str,
                           started: float) -> None:  # fmt: skip
    """The import form, for Home's *New import* and `/referral import`.

    `review_in`: the channel the review is posted in; None where there is none a lead would
    see (Home, a direct message): the form then asks for one, and left empty the review goes
    to the person's DM with the bot (a lead may do that; the bot can't post in a DM between
    people). `started`: when the listener began, for the trigger id's 3 s. Slack rate limiting
    the opening beyond them is told to the person (`again`: how to try again) at once."""
    quick = within_trigger(client, started)
    try:
        channel = review_in
        if channel is None:  # fast, before the form: the trigger lives 3 s
            channel = (await quick.conversations_open(users=user_id))["channel"]["id"]
        await open_import_modal(d, quick, trigger_id, team_id, user_id, channel_id=channel,
                                choose_channel=review_in is None)  # fmt: skip
    except SlackApiError as exc:
        method = api_method(str(getattr(exc.response, "api_url", "") or ""))
        if exc.response.status_code != 429 or method not in OPENING_METHODS:
            raise
        wait = _retry_after(dict(exc.response.headers or {}))
        log.warning("import form not opened for team=%s user=%s: Slack rate limited %s "
                    "(Retry-After %s s)", team_id, user_id, method, wait)  # fmt: skip
        raise Refusal(form_not_opened(again, wait)) from exc


async def on_new_import(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                        context: dict[str, Any]) -> None:  # fmt: skip
    """Home has no channel: the form asks where to post the review."""
    started = time.monotonic()
    await ack()
    d = deps(context)
    d.later.run(_open_import(d, client, body, started), client, body, prompt=True)


async def _open_import(d: Deps, client: AsyncWebClient, body: dict[str, Any],
                       started: float) -> None:  # fmt: skip
    await open_import_form(d, client, trigger_id=body["trigger_id"], team_id=team_of(body),
                           user_id=body["user"]["id"], review_in=None, again=AGAIN_FROM_HOME,
                           started=started)  # fmt: skip


def register(app: Routes) -> None:
    app.event("app_home_opened")(home_opened)
    app.action(Action.HOME_NEW_IMPORT)(on_new_import)
    app.action(Action.HOME_MORE_SEGMENTS)(on_show_more)
    app.action(Action.HOME_MORE_IMPORTS)(on_show_more)
    app.action(Action.HOME_LESS_SEGMENTS)(on_show_more)
    app.action(Action.HOME_LESS_IMPORTS)(on_show_more)
