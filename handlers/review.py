"""Buttons on the review message: remove a source, add more, approve, reject, cancel."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.imports import review
from bot.imports.background import IMPORT_JOB
from bot.jobs.queue import enqueue
from handlers.context import Deps, Refusal, deps, is_lead, lead_refusal
from handlers.ids import Action
from handlers.messages import import_modal
from models import BatchStatus


async def _remove_source(d: Deps, team_id: str, value: str) -> None:
    batch_id, source_id = (int(part) for part in value.split(":"))
    await review.remove_source(d.db, team_id, batch_id, source_id)
    await d.notifier.batch_changed(team_id, batch_id)


async def _add_more(d: Deps, client: AsyncWebClient, team_id: str, batch_id: int,
                    trigger_id: str) -> None:  # fmt: skip
    view = await review.load(d.db, team_id, batch_id)
    if view.batch.status != BatchStatus.DRAFT:
        raise Refusal(f"This import is already {review.describe_status(view.batch)}.")
    await client.views_open(trigger_id=trigger_id, view=import_modal(
        channel_id=view.batch.channel_id or "", batch_id=view.batch.id, segment=view.segment.name
    ))  # fmt: skip


async def _approve(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                   batch_id: int) -> None:  # fmt: skip
    if not await is_lead(client, d.settings, user_id):
        raise lead_refusal(d.settings, "approve")
    batch = await review.approve(d.db, team_id, batch_id, user_id)
    await enqueue(
        d.db, team_id, IMPORT_JOB, {"batch_id": batch.id},
        dedupe_key=f"import:{batch.id}", max_attempts=d.settings.job_max_attempts,
    )  # fmt: skip
    await d.notifier.batch_changed(team_id, batch_id)
    await d.notifier.import_progress(team_id, batch_id, 0, batch.valid)


async def _close(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, batch_id: int,
                 status: BatchStatus) -> None:  # fmt: skip
    if status == BatchStatus.REJECTED and not await is_lead(client, d.settings, user_id):
        raise lead_refusal(d.settings, "reject")
    await review.close(d.db, team_id, batch_id, user_id, status)
    await d.notifier.batch_changed(team_id, batch_id)


async def on_click(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    """Ack at once; the work runs after the response (tracked, failures told to the user)."""
    await ack()
    d = deps(context)
    team_id, user_id = body["team"]["id"], body["user"]["id"]
    action = body["actions"][0]
    value = action["value"]
    work = {
        Action.REMOVE_SOURCE: lambda: _remove_source(d, team_id, value),
        Action.ADD_MORE: lambda: _add_more(d, client, team_id, int(value), body["trigger_id"]),
        Action.APPROVE: lambda: _approve(d, client, team_id, user_id, int(value)),
        Action.REJECT: lambda: _close(d, client, team_id, user_id, int(value),
                                      BatchStatus.REJECTED),
        Action.CANCEL: lambda: _close(d, client, team_id, user_id, int(value),
                                      BatchStatus.CANCELLED),
    }[Action(action["action_id"])]  # fmt: skip
    d.later.run(work(), client, body)


def register(app: AsyncApp) -> None:
    for action in (Action.REMOVE_SOURCE, Action.ADD_MORE, Action.APPROVE, Action.REJECT,
                   Action.CANCEL):  # fmt: skip
        app.action(action)(on_click)
