"""*Undo import*: the button (in the import's thread, or on App Home) and its confirmation.

Two clicks, both by a team lead: the button opens a modal that counts what the undo will take
out (opened first with "Counting…", since a trigger id lives 3 s), and its submission asks for
the undo (`bot.imports.undo.request_undo`: one transaction, one job whatever the clicks). The
job reports the result in the import's thread. Refusals (not a lead, already undone, too old,
another workspace's import) are shown in the modal, so a click from Home needs no channel:
read before the ack where they can be (the ack can say them), and the request itself, a
write that on SQLite may wait for an import's write lock, is made after the ack, the modal
then saying what came of it (a second submission that got past the read is told there).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.imports.batches import ReviewError, get_batch
from bot.imports.undo import (
    WAITING,
    request_undo,
    resume_undo,
    stalled_undo,
    unattended_undo,
    undo_plan,
)
from bot.imports.undo import refusal as undo_refusal
from handlers.context import Deps, deps, form_meta, id_in, is_lead, not_a_lead, team_of
from handlers.ids import Action, Callback
from handlers.later import message_for, or_log, who_and_what
from handlers.messages import metadata, undo_window
from handlers.placeholder import open_modal
from handlers.respond import dm, fill_modal, update_modal
from handlers.routes import Routes
from handlers.undo_messages import (
    asking_modal,
    checking_modal,
    confirm_modal,
    not_asked_modal,
    not_asked_text,
    refused_modal,
    remove_advocates,
    resume_modal,
    started_modal,
    waiting_modal,
)

log = logging.getLogger(__name__)
WHAT = "undo imports"


async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """Undo is offered in an import's thread and on Home, not as a subcommand: say where."""
    days = undo_window(deps(context).settings.undo_window_days)
    await ack(text=f"Undo an import with *Undo import* in its thread, or *Undo* on the Home "
                   f"tab, within {days} of it finishing (team leads).")  # fmt: skip


def _batch_id(value: object) -> int:
    return id_in(value, "an import")


async def _why_not_lead(d: Deps, client: AsyncWebClient, team_id: str, user_id: str) -> str:
    if await is_lead(d, client, team_id, user_id):
        return ""
    return str(await not_a_lead(d, client, team_id, user_id, WHAT))


async def _open(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id = team_of(body), body["user"]["id"]
    batch_id = _batch_id(body["actions"][0].get("value"))
    opened = await open_modal(client, body["trigger_id"], checking_modal())
    refusal = await _why_not_lead(d, client, team_id, user_id)
    if refusal:
        await fill_modal(client, opened, refused_modal(refusal))
        return
    stopped = await stalled_undo(d.db, team_id, batch_id)
    if stopped is not None:  # its job failed or was cancelled: offer to finish it
        await fill_modal(client, opened, resume_modal(batch_id, stopped,
                                                      metadata=metadata(batch=batch_id,
                                                                        resume=True)))  # fmt: skip
        return
    if await unattended_undo(d.db, team_id, batch_id,
                             lease_seconds=d.settings.job_lease_seconds) == WAITING:
        await fill_modal(client, opened, waiting_modal(batch_id))  # Home offers it: say why
        return
    try:
        plan = await undo_plan(d.db, team_id, batch_id, window_days=d.settings.undo_window_days)
    except ReviewError as exc:
        await fill_modal(client, opened, refused_modal(str(exc)))
        return
    batch = await get_batch(d.db, team_id, batch_id)
    in_thread = bool(batch and batch.channel_id and batch.message_ts)
    await fill_modal(client, opened, confirm_modal(plan, in_thread=in_thread,
                                                   metadata=metadata(batch=batch_id)))


async def on_click(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    d.later.run(_open(d, client, body), client, body, prompt=True)


async def _after(d: Deps, client: AsyncWebClient, team_id: str, batch_id: int,
                 where: dict[str, str]) -> None:  # fmt: skip
    """The review message and Home say "being undone" until the job reports (the report
    of BATCH_CHANGED republishes Home too). The undo is asked for by now, and its job reports
    its result whatever happens here: a failure is logged, never told (it went to a direct
    message saying the undo "may not have gone through" under a modal saying it was under
    way)."""
    await or_log(d.notifier.batch_changed(team_id, batch_id),
                 "undo asked for, not redrawn as being undone", where, log)  # fmt: skip


async def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any],
                    client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Check who, then ask for the undo; the modal says what happened either way."""
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    meta = await form_meta(ack, view, "Undo import", required=("batch",))
    if meta is None:
        return
    batch_id, resume = meta["batch"], bool(meta.get("resume"))
    refusal = await _why_not_lead(d, client, team_id, user_id)
    if not refusal and not resume:  # a resumed undo is checked by its own conditional write
        refusal = undo_refusal(await get_batch(d.db, team_id, batch_id), batch_id,
                               d.settings.undo_window_days)  # fmt: skip
    if refusal:
        await ack(response_action="update", view=refused_modal(refusal).to_dict())
        return
    await ack(response_action="update", view=asking_modal(batch_id).to_dict())
    where = {**who_and_what(body), "batch": str(batch_id)}  # for the log, should it fail
    d.later.run(_ask(d, client, str(view.get("id") or ""), team_id, user_id, batch_id,
                     remove_advocates(view["state"]["values"]), resume, where),
                client, body)  # fmt: skip


async def _ask(d: Deps, client: AsyncWebClient, view_id: str, team_id: str, user_id: str,
               batch_id: int, advocates: bool, resume: bool,
               where: dict[str, str]) -> None:  # fmt: skip
    """The undo's request (or its resumption), after the ack; the modal says what came of it.

    A failure (the database down or busy) is said in the modal, which the ack left saying
    "Asking for the undo…": `Later` only knows the modals its work opened, so the modal
    said that for good while the failure went to a direct message."""
    try:
        if resume:
            batch = await resume_undo(d.db, team_id, batch_id, user_id)
        else:
            batch = await request_undo(d.db, team_id, batch_id, user_id,
                                       remove_advocates=advocates,
                                       window_days=d.settings.undo_window_days,
                                       max_attempts=d.settings.job_max_attempts)  # fmt: skip
    except ReviewError as exc:
        await _refused(client, view_id, user_id, batch_id, str(exc))
        return
    except Exception as exc:
        await _not_asked(client, view_id, user_id, batch_id, message_for(exc, where))
        return
    in_thread = bool(batch.channel_id and batch.message_ts)
    # Slack failing here leaves the modal saying "Asking for the undo…", but the undo is
    # under way and its result comes where the modal would have said
    await or_log(update_modal(client, view_id, started_modal(batch_id, in_thread=in_thread)),
                 "undo asked for, its modal not told so", where, log)  # fmt: skip
    await _after(d, client, team_id, batch_id, where)


async def _not_asked(client: AsyncWebClient, view_id: str, user_id: str, batch_id: int,
                     why: str) -> None:  # fmt: skip
    """Say in the modal that the undo couldn't be asked for (`why`: `message_for`'s words,
    the failure logged with its context and reference); by direct message if the modal was
    closed meanwhile or Slack refuses."""
    text = not_asked_text(batch_id, why)
    try:
        await client.views_update(view_id=view_id, view=not_asked_modal(text))
    except Exception as exc:
        log.info("undo of import %s not asked for; the modal couldn't say so (%r): by DM",
                 batch_id, exc)  # fmt: skip
        await dm(client, user_id, text)


async def _refused(client: AsyncWebClient, view_id: str, user_id: str, batch_id: int,
                   why: str) -> None:  # fmt: skip
    """Say in the modal why the undo was refused; by direct message if it was closed while it
    said "Asking for the undo…" (the refusal was lost with it) or Slack refuses."""
    try:
        await client.views_update(view_id=view_id, view=refused_modal(why))
    except Exception as exc:
        log.info("undo of import %s refused; the modal couldn't say so (%r): by DM", batch_id,
                 exc)  # fmt: skip
        await dm(client, user_id, why)


def register(app: Routes) -> None:
    app.action(Action.UNDO)(on_click)
    app.view(Callback.UNDO)(on_submit)
