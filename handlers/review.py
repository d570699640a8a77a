"""Buttons on the review message: remove a source, add more, preview, confirm consent,
approve, reject, cancel."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import digits
from bot.imports import review
from bot.imports.batches import ChangedSinceSeen, ReviewError, confirm_consent, get_batch
from bot.imports.dry_run import dry_run
from bot.workspaces import get_segment
from handlers.context import (
    Deps,
    Refusal,
    deps,
    id_in,
    is_lead,
    lead_refusal,
    may_change,
    require_member,
    team_of,
)
from handlers.ids import Action, BlockId
from handlers.import_modal import open_import_modal, review_posted
from handlers.later import thread_of
from handlers.messages import dry_run_text
from handlers.routes import Routes
from models import BatchStatus

log = logging.getLogger(__name__)


async def remove_source(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                        value: str, *,
                        removed: Callable[[], Awaitable[None]] | None = None) -> None:  # fmt: skip
    """*Remove* on the review message, or in *All sources* (`removed` redraws that modal once
    the message is: before the skipped-rows CSVs, whose uploads take longest)."""
    batch_part, _, source_part = value.partition(":")
    batch_id, source_id = _id(batch_part), _id(source_part)
    await may_change(d, client, team_id, user_id, batch_id)
    promoted = await review.remove_source(d.db, team_id, batch_id, source_id, actor=user_id)
    try:
        await d.notifier.batch_changed(team_id, batch_id)
        if removed is not None:
            await removed()
    finally:  # committed already: a redraw Slack refused mustn't keep these stale
        for other in promoted:  # its skipped-rows CSV in the thread lists rows imported now
            await d.notifier.rejects_changed(team_id, batch_id, other)


async def _add_more(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, batch_id: int,
                    trigger_id: str) -> None:  # fmt: skip
    batch = await may_change(d, client, team_id, user_id, batch_id)
    if batch.status != BatchStatus.DRAFT:
        raise Refusal(f"This import is already {review.describe_status(batch)}.")
    segment = await get_segment(d.db, team_id, batch.segment_id)
    await open_import_modal(d, client, trigger_id, team_id, user_id,
                            channel_id=batch.channel_id or "",
                            batch_id=batch.id, segment=segment.name,
                            ask_consent=batch.consent_by is None)  # fmt: skip


async def _in_review(d: Deps, team_id: str, batch_id: int) -> None:
    """Refuse a stale click (a batch that is gone, or already decided) from a read.

    Approving and rejecting start with a conditional UPDATE, which on SQLite waits for the
    one write lock (held for seconds by an import's chunk) even when it changes nothing. The
    UPDATE still decides between two clicks on a batch in review; the sentence is the one it
    would give.
    """
    batch = await review.batch_of(d.db, team_id, batch_id)
    if batch.status != BatchStatus.DRAFT:
        raise ReviewError(f"This import is already {review.describe_status(batch)}.")


async def _approve(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                   batch_id: int, seen: int | None) -> None:  # fmt: skip
    if not await is_lead(d, client, team_id, user_id):
        raise await lead_refusal(d, client, team_id, user_id, "approve")
    await _in_review(d, team_id, batch_id)
    try:
        totals = await review.approve(d.db, team_id, batch_id, user_id, seen=seen,
                                      max_attempts=d.settings.job_max_attempts)  # fmt: skip
    except ChangedSinceSeen:
        await d.notifier.batch_changed(team_id, batch_id)  # the message as it is now
        raise
    await d.notifier.batch_changed(team_id, batch_id)
    await d.notifier.import_progress(team_id, batch_id, 0, totals.valid)


async def _reject(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                  batch_id: int) -> None:  # fmt: skip
    if not await is_lead(d, client, team_id, user_id):
        raise await lead_refusal(d, client, team_id, user_id, "reject")
    await _in_review(d, team_id, batch_id)
    await review.reject(d.db, team_id, batch_id, user_id)
    await d.notifier.batch_changed(team_id, batch_id)


async def _cancel(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                  batch_id: int, *, draft_only: bool = False) -> None:  # fmt: skip
    """*Cancel import* stops an approved import; the review's own Cancel (`draft_only`)
    withdraws a review only: confirmed after a lead approved it, it stopped the import."""
    lead = await is_lead(d, client, team_id, user_id)
    await review.cancel(d.db, team_id, batch_id, user_id, is_lead=lead, draft_only=draft_only)
    await d.notifier.batch_changed(team_id, batch_id)


async def _preview_only(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                        batch_id: int, channel_id: str) -> None:  # fmt: skip
    """Every count of approving now, to the person who asked only; nothing is written. Only
    while it is in review: on an import approved or rejected meanwhile it counted what
    approving would do again ("0 would be added, 2 are already in it")."""
    await require_member(client, team_id, user_id)
    batch = await review.batch_of(d.db, team_id, batch_id)
    if batch.status != BatchStatus.DRAFT:
        raise ReviewError(f"This import is already {review.describe_status(batch)}.")
    segment = await get_segment(d.db, team_id, batch.segment_id)
    result = await dry_run(d.db, team_id, batch_id, segment.id)
    await client.chat_postEphemeral(channel=batch.channel_id or channel_id, user=user_id,
                                    text=dry_run_text(result, segment.name))  # fmt: skip


async def _confirm_consent(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                           batch_id: int) -> None:  # fmt: skip
    await may_change(d, client, team_id, user_id, batch_id)
    await confirm_consent(d.db, team_id, batch_id, user_id)
    await d.notifier.batch_changed(team_id, batch_id)


async def on_click(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    """Ack at once; the work runs after the response (tracked, failures told to the user)."""
    await ack()
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    action = body["actions"][0]
    value = str(action.get("value") or "")
    work = {
        Action.REMOVE_SOURCE: lambda: remove_source(d, client, team_id, user_id, value),
        Action.ADD_MORE: lambda: _add_more(d, client, team_id, user_id, _id(value),
                                           body["trigger_id"]),
        Action.APPROVE: lambda: _approve(d, client, team_id, user_id, _id(value),
                                         _seen(action)),
        Action.REJECT: lambda: _reject(d, client, team_id, user_id, _id(value)),
        Action.CANCEL: lambda: _cancel(d, client, team_id, user_id, _id(value)),
        Action.WITHDRAW: lambda: _cancel(d, client, team_id, user_id, _id(value),
                                         draft_only=True),
        Action.PREVIEW_ONLY: lambda: _preview_only(d, client, team_id, user_id, _id(value),
                                                   str((body.get("channel") or {}).get("id"))),
        Action.CONFIRM_CONSENT: lambda: _confirm_consent(d, client, team_id, user_id,
                                                         _id(value)),
    }[Action(action["action_id"])]  # fmt: skip
    # Add more opens the import form: trigger ids live 3 s, so it doesn't wait its turn, nor
    # for the write that records a review never recorded (made once the form is open)
    opens_modal = action["action_id"] == Action.ADD_MORE
    d.later.run(on_review_message(d, client, body, work, opens_modal=opens_modal), client,
                body, prompt=opens_modal)  # fmt: skip


async def on_review_message(d: Deps, client: AsyncWebClient, body: dict[str, Any],
                            work: Callable[[], Awaitable[None]], *,
                            opens_modal: bool = False) -> None:  # fmt: skip
    """A click's `work`, the review message it was made on recorded first if its import has
    none (see _recorded_here); then brought up to date, as a review just posted is. Every
    button of the review message goes through here (*Review contacts*, handlers/contacts.py,
    *Map columns*, handlers/mapping.py, and *All sources*, handlers/sources.py, too):
    whichever is the first click on a review never recorded records it. `opens_modal`: the
    work opens a modal (*Add more* and those three), whose trigger id lives 3 s, so the
    message is recorded after it (a write, which on SQLite may wait seconds for an import
    holding the write lock), also when the work was refused."""
    team_id = team_of(body)
    batch_id = None if opens_modal else await _recorded_here(d, body, team_id)
    try:
        await work()
    finally:
        if opens_modal:
            batch_id = await _recorded_here(d, body, team_id)
        if batch_id is not None:
            await review_posted(client, d, team_id, batch_id, None)


async def _recorded_here(d: Deps, body: dict[str, Any], team_id: str) -> int | None:
    """The import whose review message this click was made on, if the click recorded it.

    A review is recorded as soon as it is posted, but the database may be away then for
    longer than the tries to record it last (import_modal.record_review): the review is live,
    its buttons work, but it was never redrawn and its thread got nothing. The click says
    where it is: a message (not a reply in a thread, not an ephemeral one) showing the
    clicked button with the import's id. Read first, so a click on a recorded review (all
    but these) writes nothing. A failure is logged: the click's work still runs."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    action = (body.get("actions") or [{}])[0]
    value = str(action.get("value") or "")
    batch_id = digits(value.partition(":")[0])
    channel, ts = str(container.get("channel_id") or ""), str(container.get("message_ts") or "")
    if (batch_id is None or container.get("type") != "message" or container.get("is_ephemeral")
            or not (channel and ts) or thread_of(body) is not None
            or not _shows(message.get("blocks") or [], str(action.get("action_id")), value)):
        return None  # fmt: skip
    try:
        batch = await get_batch(d.db, team_id, batch_id)
        if batch is None or batch.message_ts:
            return None
        if not await review.adopt_message(d.db, team_id, batch_id, channel, ts):
            return None
    except Exception as exc:
        log.warning("review message %s in %s of import %s not recorded by a click on it: %r",
                    ts, channel, batch_id, exc)  # fmt: skip
        return None
    log.info("review message %s in %s of import %s recorded by a click on it", ts, channel,
             batch_id)  # fmt: skip
    return batch_id


def _shows(blocks: list[Any], action_id: str, value: str) -> bool:
    """Whether the message's blocks hold the button clicked, with the id clicked: a click
    made on a review message of that import."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        for element in [*(block.get("elements") or []), block.get("accessory")]:
            if (isinstance(element, dict) and element.get("action_id") == action_id
                    and str(element.get("value") or "") == value):  # fmt: skip
                return True
    return False


def _id(value: str) -> int:
    return id_in(value, "an import")


def _seen(action: dict[str, Any]) -> int | None:
    """The revision of the import the clicked review showed, from its buttons' block id
    ("review_actions:3"). None for a message drawn before revisions were (it checks none);
    -1, matching none, for one of the review's whose revision isn't a number (forged)."""
    prefix, _, seen = str(action.get("block_id") or "").partition(":")
    if prefix != BlockId.REVIEW_ACTIONS:
        return None
    revision = digits(seen)
    return -1 if revision is None else revision


def register(app: Routes) -> None:
    for action in (Action.REMOVE_SOURCE, Action.ADD_MORE, Action.APPROVE, Action.REJECT,
                   Action.CANCEL, Action.WITHDRAW, Action.PREVIEW_ONLY,
                   Action.CONFIRM_CONSENT):  # fmt: skip
        app.action(action)(on_click)
