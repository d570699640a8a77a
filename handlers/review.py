"""Buttons on the review message: remove a source, add more, approve, reject, cancel."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.imports import review
from bot.imports.background import IMPORT_JOB
from bot.jobs.queue import enqueue
from handlers.context import Refusal, deps, is_lead, lead_refusal
from handlers.ids import Action
from handlers.messages import import_modal
from models import BatchStatus


def _ids(body: dict[str, Any]) -> tuple[str, str, str]:
    return body["team"]["id"], body["user"]["id"], body["actions"][0]["value"]


async def remove_source(ack: Any, body: dict[str, Any], context: dict[str, Any]) -> None:
    await ack()
    d = deps(context)
    team_id, _, value = _ids(body)
    batch_id, source_id = (int(part) for part in value.split(":"))
    await review.remove_source(d.db, team_id, batch_id, source_id)
    await d.notifier.batch_changed(team_id, batch_id)


async def add_more(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    team_id, _, value = _ids(body)
    view = await review.load(d.db, team_id, int(value))
    if view.batch.status != BatchStatus.DRAFT:
        raise Refusal(f"This import is already {review.describe_status(view.batch)}.")
    await client.views_open(trigger_id=body["trigger_id"], view=import_modal(
        channel_id=view.batch.channel_id or "", batch_id=view.batch.id, segment=view.segment.name
    ))  # fmt: skip


async def approve(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    team_id, user_id, value = _ids(body)
    if not await is_lead(client, d.settings, user_id):
        raise lead_refusal(d.settings, "approve")
    batch = await review.approve(d.db, team_id, int(value), user_id)
    await enqueue(
        d.db, team_id, IMPORT_JOB, {"batch_id": batch.id},
        dedupe_key=f"import:{batch.id}", max_attempts=d.settings.job_max_attempts,
    )  # fmt: skip
    await d.notifier.batch_changed(team_id, int(value))
    await d.notifier.import_progress(team_id, int(value), 0, batch.valid)


async def reject(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                 context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    team_id, user_id, value = _ids(body)
    if not await is_lead(client, d.settings, user_id):
        raise lead_refusal(d.settings, "reject")
    await review.close(d.db, team_id, int(value), user_id, BatchStatus.REJECTED)
    await d.notifier.batch_changed(team_id, int(value))


async def cancel(ack: Any, body: dict[str, Any], context: dict[str, Any]) -> None:
    await ack()
    d = deps(context)
    team_id, user_id, value = _ids(body)
    await review.close(d.db, team_id, int(value), user_id, BatchStatus.CANCELLED)
    await d.notifier.batch_changed(team_id, int(value))


def register(app: AsyncApp) -> None:
    app.action(Action.REMOVE_SOURCE)(remove_source)
    app.action(Action.ADD_MORE)(add_more)
    app.action(Action.APPROVE)(approve)
    app.action(Action.REJECT)(reject)
    app.action(Action.CANCEL)(cancel)
