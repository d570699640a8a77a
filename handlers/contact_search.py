"""`/referral contacts [query]` and Home's *Search contacts*: find a contact, show its card,
and (team leads) remove it from a segment, unsubscribe, resubscribe or delete it.

Results and cards live where the person asked: an ephemeral message (answered and replaced
through the click's `response_url`; *Show* adds the card below the results) or the search
modal (updated in place; *Search* and *Back to results* go back). Any member may look; changes
are for team leads, and a non-lead sees the card again with the reason on top (a member of
another organisation, in a channel shared with it, or a guest sees nothing of it). Every button
carries only ids, which the service reads back *with the workspace*: another workspace's id
finds nothing and says so. After a change the card is refreshed from the database (so a
double click or a race shows the real state) and Home is republished.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import contact_admin
from bot.contact_admin import ContactError, ContactRef, parse_ref
from bot.ids import digits
from handlers.contact_search_messages import card, deleted, gone, prompt, results, search_modal
from handlers.context import (
    Deps,
    Refusal,
    deps,
    is_lead,
    not_a_lead,
    outsider_refusal,
    team_of,
)
from handlers.home_publish import refresh_for
from handlers.ids import Action, BlockId, Callback
from handlers.messages import esc
from handlers.routes import Routes
from handlers.slack_errors import slack_error

log = logging.getLogger(__name__)
VERBS = {
    Action.CONTACT_REMOVE_FROM_SEGMENT: "remove contacts from segments",
    Action.CONTACT_REMOVE_FROM_SEGMENT_PICK: "remove contacts from segments",
    Action.CONTACT_UNSUBSCRIBE: "unsubscribe contacts",
    Action.CONTACT_RESUBSCRIBE: "resubscribe contacts",
    Action.CONTACT_DELETE: "delete contacts",
}
MAX_AFTER = 1000  # characters of a More button's address key: more is forged
EMPTY_QUERY = "Type the start of an email address, a first name or a last name."
OUTSIDER = "Only members of this workspace can search its contacts."


@dataclass(frozen=True, slots=True)
class Where:
    """Who acted, and the surface they are looking at: an ephemeral message (its
    `response_url`) or the search modal (`view_id`, and the search it shows)."""

    team_id: str
    user_id: str
    channel_id: str = ""
    response_url: str = ""
    view_id: str = ""
    query: str = ""

    @classmethod
    def of(cls, body: dict[str, Any]) -> Where:
        view = body.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        return cls(team_id=team_of(body), user_id=body["user"]["id"],
                   channel_id=str((body.get("channel") or {}).get("id") or ""),
                   response_url=str(body.get("response_url") or ""),
                   view_id=str(view.get("id") or ""),
                   query=str(meta.get("q") or "") if isinstance(meta, dict) else "")  # fmt: skip


async def _show(client: AsyncWebClient, where: Where, shown: tuple[str, list[Block]], *,
                replace: bool, back: bool = False, query: str | None = None) -> None:  # fmt: skip
    """Put `shown` (text, blocks) where the person looks: the modal, or an ephemeral message
    (a new one, or `replace` the one clicked)."""
    text, blocks = shown
    if where.view_id:
        modal = search_modal(where.query if query is None else query, blocks, back=back)
        try:
            await client.views_update(view_id=where.view_id, view=modal)
        except SlackApiError as exc:
            if slack_error(exc) != "not_found":
                raise
            log.info("the contact search modal was closed before it was updated")
        return
    hook = AsyncWebhookClient(where.response_url, session=client.session)
    response = await hook.send(text=text, blocks=blocks, replace_original=replace,
                               response_type=None if replace else "ephemeral")  # fmt: skip
    if response.status_code == 200:
        return
    # e.g. the message is older than the URL's 30 minutes: say it where they are, text only
    log.info("response_url answered %s; posting the note instead", response.status_code)
    if where.channel_id:
        await client.chat_postEphemeral(channel=where.channel_id, user=where.user_id, text=text)
    else:
        dm = await client.conversations_open(users=where.user_id)
        await client.chat_postMessage(channel=dm["channel"]["id"], text=text)


async def _outsider(client: AsyncWebClient, where: Where, *, replace: bool) -> bool:
    """Refuse (and say so where they look) anyone who isn't a member: a channel shared with
    another organisation (Slack Connect) let its members list this workspace's contacts and
    open their cards (emails, names, consent, referral links), and a channel a guest is in
    let the guest."""
    if await outsider_refusal(client, where.team_id, where.user_id) is None:
        return False
    await _show(client, where, gone(OUTSIDER), replace=replace)
    return True


# ---- search ---------------------------------------------------------------------------------


async def _answer(d: Deps, client: AsyncWebClient, where: Where, query: str) -> None:
    if query and await _outsider(client, where, replace=False):
        return
    if not query:
        await _show(client, where, prompt(), replace=False)
        return
    page = await contact_admin.search(d.db, where.team_id, query)
    await _show(client, where, results(page), replace=False)


async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """`/referral contacts [query]`: ack at once, answer through the response_url."""
    await ack()
    d = deps(context)
    words = (command.get("text") or "").split(None, 1)  # "contacts ada lovelace"
    where = Where(team_id=command["team_id"], user_id=command["user_id"],
                  channel_id=command.get("channel_id") or "",
                  response_url=command.get("response_url") or "")  # fmt: skip
    d.later.run(_answer(d, client, where, words[1].strip() if len(words) > 1 else ""), client,
                command)  # fmt: skip


async def _open_modal(client: AsyncWebClient, trigger_id: str) -> None:
    await client.views_open(trigger_id=trigger_id, view=search_modal())


async def on_open_search(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                         context: dict[str, Any]) -> None:  # fmt: skip
    """Home's *Search contacts* (and the prompt's *Search*): the form, nothing read first."""
    await ack()
    deps(context).later.run(_open_modal(client, body["trigger_id"]), client, body, prompt=True)


async def submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient,
                 context: dict[str, Any]) -> None:  # fmt: skip
    """The modal's *Search*: the results replace the modal in the ack itself.

    The search runs before the ack (a few indexed lookups: milliseconds): a views.update
    after the ack could reach Slack before the ack's own update and be overwritten by it.
    """
    d = deps(context)
    state = (view.get("state") or {}).get("values") or {}
    query = str(((state.get(BlockId.CONTACT_QUERY) or {}).get(Action.CONTACT_QUERY) or {})
                .get("value") or "").strip()  # fmt: skip
    if not query:
        await ack(response_action="errors", errors={BlockId.CONTACT_QUERY: EMPTY_QUERY})
        return
    if await outsider_refusal(client, team_of(body), body["user"]["id"]) is not None:
        await ack(response_action="errors", errors={BlockId.CONTACT_QUERY: OUTSIDER})
        return
    page = await contact_admin.search(d.db, team_of(body), query)
    _, blocks = results(page)
    await ack(response_action="update", view=search_modal(page.query, blocks).to_dict())


async def _more(d: Deps, client: AsyncWebClient, where: Where, value: str) -> None:
    if await _outsider(client, where, replace=True):
        return
    try:
        asked = json.loads(value)
        query, offset = str(asked["q"]), digits(asked["o"])  # not 1e400, -5 or 20 digits
        after = asked.get("a", "")  # none on a button from before pages were keyed
        if offset is None or not isinstance(after, str) or len(after) > MAX_AFTER:
            raise ValueError("not an offset")
    except (ValueError, KeyError, TypeError):
        await _show(client, where, gone("That button is from an old message: search again."),
                    replace=True)  # fmt: skip
        return
    page = await contact_admin.search(d.db, where.team_id, query, offset=offset, after=after)
    await _show(client, where, results(page), replace=True, query=page.query)


async def on_more(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """*More* (the next page) and, on a card in the modal, *Back to results*."""
    await ack()
    d = deps(context)
    value = str(body["actions"][0].get("value") or "")
    d.later.run(_more(d, client, Where.of(body), value), client, body)


# ---- a contact's card -----------------------------------------------------------------------


async def _card(d: Deps, client: AsyncWebClient, where: Where, contact_id: int, *,
                note: str = "", replace: bool, check: str = "") -> None:  # fmt: skip
    """The contact's card as the database has it now, with `note` (mrkdwn) on top (with a
    button's `check`: while the id still names the contact the button was made for)."""
    try:
        contact = await contact_admin.card(d.db, where.team_id, contact_id, check=check)
    except ContactError as exc:
        text = f"{note}\n{esc(str(exc))}" if note else esc(str(exc))
        await _show(client, where, gone(text), replace=replace, back=True)
        return
    await _show(client, where, card(contact, d.settings.public_base, note=note),
                replace=replace, back=True)  # fmt: skip


async def _show_card(d: Deps, client: AsyncWebClient, where: Where, value: str) -> None:
    if await _outsider(client, where, replace=False):
        return
    try:
        ref = parse_ref(value)  # a bare id from results shown before there were checks
    except ContactError as exc:
        await _show(client, where, gone(esc(str(exc))), replace=False)
        return
    # below the results in a message (they stay); in place of them in the modal
    await _card(d, client, where, ref.id, replace=False, check=ref.check)


async def on_show(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    value = str(body["actions"][0].get("value") or "")
    d.later.run(_show_card(d, client, Where.of(body), value), client, body)


# ---- changes (team leads) -------------------------------------------------------------------


_FROM_SEGMENT = frozenset({Action.CONTACT_REMOVE_FROM_SEGMENT,
                           Action.CONTACT_REMOVE_FROM_SEGMENT_PICK})


def _ids(action: str, value: str) -> tuple[ContactRef, int | None]:
    """(contact, segment) from a button value: "contact" or "contact:segment", the contact
    as contact_admin.contact_ref names it (each change checks it in its own transaction)."""
    if action not in _FROM_SEGMENT:
        return parse_ref(value), None
    contact, _, segment = value.partition(":")
    segment_id = digits(segment)
    if segment_id is None:
        raise ContactError("That button doesn't name a segment: it may come from an old message.")
    return parse_ref(contact), segment_id


async def _apply(d: Deps, where: Where, action: str, ref: ContactRef,
                 segment_id: int | None) -> str:  # fmt: skip
    """Make the change; returns what happened, in mrkdwn."""
    db, team, actor, check = d.db, where.team_id, where.user_id, ref.check
    if action in _FROM_SEGMENT:
        assert segment_id is not None
        removed = await contact_admin.remove_from_segment(db, team, ref.id, segment_id, actor,
                                                          check=check)  # fmt: skip
        extra = (" A live campaign excluded it: if they are in a segment it targets, they are "
                 "enrolled now (and invited, if it sends invites)." if removed.enrolling else "")
        return (f":white_check_mark: Removed from *{esc(removed.segment)}* (still in All "
                f"Customers).{extra}")  # fmt: skip
    if action == Action.CONTACT_UNSUBSCRIBE:
        stopped = await contact_admin.unsubscribe(db, team, ref.id, actor, check=check)
        many = contact_admin.plural(stopped, "invite")
        extra = f" {many} not yet sent won't be." if stopped else ""
        return f":white_check_mark: Unsubscribed: no more invite emails.{extra}"
    await contact_admin.resubscribe(db, team, ref.id, actor, check=check)
    return ":white_check_mark: Resubscribed: invites of later enrollments will be emailed."


async def _change(d: Deps, client: AsyncWebClient, where: Where, action: str,
                  value: str) -> None:  # fmt: skip
    """Make a lead's change and show the card as it is now. Anyone who isn't a member (a guest, or
    of another organisation: `is_member`) is refused first, with no card: "Only team leads can …"
    came with the card below it (email, names, segments, referral links), of any contact a forged id
    named. A member of this workspace who isn't a lead sees the card with the refusal on top, as
    *Show* does."""
    if await _outsider(client, where, replace=True):
        return
    try:
        ref, segment_id = _ids(action, value)
    except ContactError as exc:
        await _show(client, where, gone(esc(str(exc))), replace=True)  # a forged button
        return
    changed = False
    try:
        if not await is_lead(d, client, where.team_id, where.user_id):
            raise await not_a_lead(d, client, where.team_id, where.user_id,
                                       VERBS[Action(action)])
        if action == Action.CONTACT_DELETE:
            result = await contact_admin.delete_contact(d.db, where.team_id, ref.id,
                                                        where.user_id, check=ref.check)  # fmt: skip
            await _show(client, where, deleted(result), replace=True, back=True)
            await refresh_for(d, client, where.team_id)
            return
        note = await _apply(d, where, action, ref, segment_id)
        changed = True
    except Refusal as exc:  # our own mrkdwn (it mentions the leads)
        log.info("contact change refused (%s, team %s, contact %s)", action, where.team_id,
                 ref.id)  # fmt: skip
        note = f":no_entry: {exc}"
    except ContactError as exc:  # the real state differs (double click, race, gone)
        # the contact by id, never its words: they quote its address, and a log is beyond
        # every deletion (`contacts delete` takes the contact out everywhere but there)
        log.info("contact change not made (%s, team %s, contact %s): %s", action,
                 where.team_id, ref.id, type(exc).__name__)  # fmt: skip
        if isinstance(exc, contact_admin.ContactGone):
            await _show(client, where, gone(esc(str(exc))), replace=True, back=True)
            return
        note = f":information_source: {esc(str(exc))}"
    await _card(d, client, where, ref.id, note=note, replace=True, check=ref.check)
    if changed:
        await refresh_for(d, client, where.team_id)


async def on_change(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                    context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    action = body["actions"][0]
    value = action.get("value") or (action.get("selected_option") or {}).get("value")  # a menu
    d.later.run(_change(d, client, Where.of(body), str(action["action_id"]), str(value or "")),
                client, body)  # fmt: skip


def register(app: Routes) -> None:
    app.action(Action.HOME_SEARCH_CONTACTS)(on_open_search)
    app.view(Callback.CONTACT_SEARCH)(submit)
    app.action(Action.CONTACT_SHOW)(on_show)
    app.action(Action.CONTACT_MORE)(on_more)
    for action in VERBS:
        app.action(action)(on_change)
