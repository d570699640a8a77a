"""`/referral leads`: who the team leads are; leads and admins add and remove them.

Any member of the workspace may look (not a guest, nor a member of another organisation, whom a
shared channel brought: `is_member`). Adding is a people picker and *Add as team leads* on the
(ephemeral) list; each person picked is checked with `users.info` first: someone of another
workspace (a shared channel's guest), a guest, a bot or a deactivated account is refused, and
the others are added in one transaction (`bot.leads.add_leads`, with their audit entries).
*Remove* (with a confirm dialog) is a conditional delete: of two clicks one removes and the
other is told it was done. Removing the last listed lead is allowed (workspace admins and owners
still count) and said. Slack's `user_change` saying a listed lead was deactivated, made a guest
or moved to another workspace takes them off the list (`user_changed`): a listed lead isn't
asked about again. Anyone else made a guest or moved out has their open Home published again,
without the workspace.

The list is ephemeral, so it is answered and refreshed through the `response_url` of the
command or click; a refusal is added below it and the list stays.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.leads import (
    MAX_ADDED_AT_ONCE,
    LeadsError,
    Role,
    add_leads,
    drop_demoted,
    is_user_id,
    leads,
    remove_lead,
)
from handlers.context import (
    DEACTIVATED,
    Deps,
    Refusal,
    demoted,
    deps,
    event_team,
    is_guest,
    is_lead,
    not_a_lead,
    role_in,
    team_of,
    told_outsider,
)
from handlers.home_publish import is_home_viewer, publish_for, refresh_for
from handlers.ids import Action, BlockId
from handlers.later import DeliverAgain
from handlers.leads_messages import leads_message
from handlers.messages import esc
from handlers.respond import explained as refusals_answered
from handlers.respond import redraw_or_dm
from handlers.respond import respond as answer
from handlers.routes import Routes
from handlers.slack_errors import slack_error

log = logging.getLogger(__name__)
CHANGE = "change the team leads"


@dataclass(frozen=True, slots=True)
class Asker:
    """Who typed the command or clicked, and where to answer them."""

    team_id: str
    user_id: str
    response_url: str

    @classmethod
    def of_click(cls, body: dict[str, Any]) -> Asker:
        return cls(team_of(body), body["user"]["id"], str(body.get("response_url") or ""))

    @classmethod
    def of_command(cls, command: dict[str, Any]) -> Asker:
        return cls(command["team_id"], command["user_id"], str(command.get("response_url") or ""))


async def respond(client: AsyncWebClient, url: str, text: str, *, replace: bool,
                  blocks: list[Any] | None = None) -> None:  # fmt: skip
    """Replace the ephemeral message, or add an ephemeral note below it. Without a URL the
    person is told through the global path instead (a Refusal)."""
    if not url:
        raise Refusal(text)
    await answer(client, url, text, replace=replace, blocks=blocks)


def explained(work: Coroutine[Any, Any, None], client: AsyncWebClient,
              url: str) -> Coroutine[Any, Any, None]:  # fmt: skip
    """Run the work; a refusal is answered where they acted, and the message stays."""
    return refusals_answered(work, client, url, refused=(LeadsError,), what="team leads")


async def show(d: Deps, client: AsyncWebClient, asker: Asker, *, replace: bool,
               note: str = "", changed: bool = False) -> None:  # fmt: skip
    """The list (`changed`: after a click's change, said in `note`, redrawn or the note
    sent by DM: redraw_or_dm)."""
    role = await role_in(d.db, d.settings.team_leads, client, asker.team_id, asker.user_id)
    if role is Role.OUTSIDER:  # a guest, or a shared channel's member of another organisation
        refused = told_outsider(asker.team_id, asker.user_id, what="see its team leads")
        await respond(client, asker.response_url, refused, replace=replace)
        return
    listed = await leads(d.db, asker.team_id, d.settings.team_leads)
    text, blocks = leads_message(listed, can_edit=role is Role.LEAD, note=note)
    if changed and note:
        await redraw_or_dm(client, asker.response_url, text, blocks, note=note,
                           user_id=asker.user_id, command="/referral leads")  # fmt: skip
        return
    await respond(client, asker.response_url, text, replace=replace, blocks=blocks)


async def _answered_then_republished(d: Deps, client: AsyncWebClient, asker: Asker, note: str,
                                     *, changed: bool) -> None:  # fmt: skip
    """The list with what happened first, then, after a change, the open Homes republished
    (their buttons follow the role): a views.publish each, up to 50, and the person who
    clicked waited for all of them. As the segment list and a contact's card do. Home is
    republished even when the answer fails: the change is made."""
    try:
        await show(d, client, asker, replace=True, note=note, changed=True)
    finally:
        if changed:
            await refresh_for(d, client, asker.team_id)


async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """`/referral leads`: ack at once, then the list through response_url."""
    await ack()
    d = deps(context)
    d.later.run(show(d, client, Asker.of_command(command), replace=False), client, command)


# ---- Add --------------------------------------------------------------------------------------


def picked(body: dict[str, Any]) -> list[str]:
    """The people chosen in the picker, from the state of the message the button is in."""
    values = ((body.get("state") or {}).get("values") or {})
    state = (values.get(BlockId.LEADS_USERS) or {}).get(Action.LEADS_USERS) or {}
    chosen = state.get("selected_users")
    if not isinstance(chosen, list):
        chosen = [state.get("selected_user")]
    return [str(u) for u in chosen if isinstance(u, str)]


async def why_not(client: AsyncWebClient, team_id: str, user_id: str) -> str:
    """Why this person can't be a lead here (mrkdwn), or "" when they can."""
    who = f"<@{user_id}>"
    try:
        user = (await client.users_info(user=user_id)).get("user") or {}
    except SlackApiError as exc:
        if slack_error(exc) in ("user_not_found", "users_not_found"):
            return f"{esc(user_id)} isn't a user Slack knows."
        raise
    if user.get("team_id") != team_id:
        return f"{who} belongs to another workspace: only people of this one can be team leads."
    if user.get("deleted"):
        return f"{who} has been deactivated."
    if user.get("is_bot") or user.get("is_app_user") or user_id == "USLACKBOT":
        return f"{who} is a bot."
    if is_guest(user):
        return f"{who} is a guest of this workspace: guests can't be team leads."
    return ""


def added_note(actor: str, added: list[str], already: list[str], refused: list[str]) -> str:
    lines = []
    if added:
        names = ", ".join(f"<@{u}>" for u in added)
        lines.append(f":white_check_mark: <@{actor}> added {names} to the team leads.")
    if already:
        names = ", ".join(f"<@{u}>" for u in already)
        lines.append(f"{names} {'was' if len(already) == 1 else 'were'} a team lead already.")
    lines += [f":no_entry_sign: {why}" for why in refused]
    return "\n".join(lines)


async def add(d: Deps, client: AsyncWebClient, asker: Asker, chosen: list[str]) -> None:
    if not await is_lead(d, client, asker.team_id, asker.user_id):
        raise await not_a_lead(d, client, asker.team_id, asker.user_id, CHANGE)
    if not chosen:
        raise Refusal("Choose people in the list first, then *Add as team leads*.")
    if len(chosen) > MAX_ADDED_AT_ONCE:
        raise Refusal(f"Add at most {MAX_ADDED_AT_ONCE} team leads at a time.")
    refused, fine = [], []
    for user_id in dict.fromkeys(chosen):
        why = (await why_not(client, asker.team_id, user_id) if is_user_id(user_id)
               else f"{esc(user_id[:40])} isn't a Slack user.")  # fmt: skip
        (refused if why else fine).append(why or user_id)
    result = await add_leads(d.db, asker.team_id, fine, by=asker.user_id,
                             seed=d.settings.team_leads)  # fmt: skip
    log.info("team leads added: team=%s by=%s added=%s", asker.team_id, asker.user_id,
             result.added)  # fmt: skip
    note = added_note(asker.user_id, result.added, result.already, refused)
    # Home's buttons follow the role: a new lead's open Home lacked them
    await _answered_then_republished(d, client, asker, note, changed=bool(result.added))


async def on_add(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                 context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d, asker = deps(context), Asker.of_click(body)
    d.later.run(explained(add(d, client, asker, picked(body)), client, asker.response_url),
                client, body)  # fmt: skip


async def on_pick(ack: Any) -> None:
    """Choosing people only fills the picker; *Add as team leads* does the work."""
    await ack()


# ---- Remove -----------------------------------------------------------------------------------


async def remove(d: Deps, client: AsyncWebClient, asker: Asker, user_id: str) -> None:
    if not await is_lead(d, client, asker.team_id, asker.user_id):
        raise await not_a_lead(d, client, asker.team_id, asker.user_id, CHANGE)
    if not is_user_id(user_id):
        raise Refusal("That button doesn't name a person: it may come from an old message.")
    removed = await remove_lead(d.db, asker.team_id, user_id, by=asker.user_id,
                                seed=d.settings.team_leads)  # fmt: skip
    if not removed:
        note = f"<@{user_id}> wasn't a team lead any more: someone removed them already."
    else:
        log.info("team lead removed: team=%s by=%s user=%s", asker.team_id, asker.user_id,
                 user_id)  # fmt: skip
        note = f":white_check_mark: <@{asker.user_id}> removed <@{user_id}> from the team leads."
        if user_id == asker.user_id:
            note += " You are no longer a listed team lead."
        if not await leads(d.db, asker.team_id, d.settings.team_leads):
            note += (" No one is listed now: workspace admins and owners still count as team "
                     "leads, and can add people here.")  # fmt: skip
    # the removed lead's open Home kept offering what they may no longer do
    await _answered_then_republished(d, client, asker, note, changed=removed)


async def on_remove(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                    context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d, asker = deps(context), Asker.of_click(body)
    user_id = str(body["actions"][0].get("value") or "")
    d.later.run(explained(remove(d, client, asker, user_id), client, asker.response_url),
                client, body)  # fmt: skip


# ---- Slack says someone changed ----------------------------------------------------------------


async def user_changed(ack: Any, event: dict[str, Any], body: dict[str, Any],
                       client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Slack's word that someone's account changed. A listed lead is a lead without asking
    Slack again (`role_in`), so one deactivated, made a guest or moved out stayed a lead for
    good, approving imports and exporting the customers. Big workspaces send this for every
    profile and status edit: anyone who may still be a lead is let go here, with no write and
    no call.

    A demoted lead is taken off the list before the ack: done after it, a database that
    failed at that moment lost Slack's word for good (the event answered, never sent again),
    and the lead kept approving. A failure now answers 503 (`DeliverAgain`) and Slack sends
    the event again; the open Homes are republished after the ack."""
    user = event.get("user")
    user = user if isinstance(user, dict) else {}
    team_id = event_team(body, context)
    user_id = str(user.get("id") or "")
    why = demoted(user, team_id) if team_id and is_user_id(user_id) else ""
    if not why:
        await ack()
        return
    d = deps(context)
    try:
        dropped = await drop_demoted(d.db, team_id, user_id, why)
    except Exception as exc:
        raise DeliverAgain(f"{user_id} of {team_id} {why}, not yet taken off the team "
                           f"leads: {exc!r}") from exc  # fmt: skip
    if dropped:
        log.info("%s of %s taken off the team leads, %s (Slack's user_change)", user_id,
                 team_id, why)  # fmt: skip
    await ack()
    d.later.run(_republish(d, client, team_id, user_id, why, dropped), client, body)


async def _republish(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, why: str,
                     dropped: bool) -> None:  # fmt: skip
    """The open Homes published again once a lead is off the list (they offered the lead's
    buttons); a retry of the same event finds them gone already: nothing twice.

    Someone listed nowhere whose Home is open (a member made a guest, moved out) has it
    published again, Slack asked afresh: it kept listing the workspace's segments, campaigns
    and imports until some change republished it, and then from users.info's answer kept a
    minute. A deactivated account can't open it: nothing is asked."""
    if dropped:
        await refresh_for(d, client, team_id)
    elif why != DEACTIVATED and await is_home_viewer(d.db, team_id, user_id):
        log.info("%s of %s %s: their open Home published again (Slack's user_change)",
                 user_id, team_id, why)  # fmt: skip
        try:
            await publish_for(d, client, team_id, user_id)
        except SlackApiError as exc:  # moved out, Slack may not publish to them here at all
            log.warning("Home of team=%s user=%s not published again: %s", team_id, user_id,
                        slack_error(exc))  # fmt: skip


def register(app: Routes) -> None:
    app.action(Action.LEADS_ADD)(on_add)
    app.action(Action.LEADS_USERS)(on_pick)
    app.action(Action.LEADS_REMOVE)(on_remove)
    app.event("user_change")(user_changed)
