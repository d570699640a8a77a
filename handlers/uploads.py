"""CSVs uploaded to a channel the bot is in: offer, once per file, to import them."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.imports.background import SLACK_FILE_JOB
from bot.imports.batches import add_source, create_batch
from bot.imports.slack_files import SlackFile, describe
from bot.jobs.queue import enqueue
from bot.once import first_time
from bot.workspaces import ensure_workspace, get_segment
from handlers.context import Deps, Refusal, deps
from handlers.ids import Action, BlockId
from handlers.import_modal import post_review
from handlers.messages import plain, upload_offer
from models import SourceKind


async def _offer(client: AsyncWebClient, d: Deps, team_id: str, channel: str, thread_ts: str,
                 file: SlackFile) -> None:  # fmt: skip
    # file_shared and message/file_share both announce one upload; Slack also retries events
    if not file.looks_like_csv or not await first_time(d.db, team_id, f"offer:{file.id}"):
        return
    text, blocks = upload_offer(file_id=file.id, file_name=file.name)
    await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, blocks=blocks)


async def file_shared(ack: Any, event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    d.later.run(_offer_shared(client, d, body["team_id"], event), client, {})


async def _offer_shared(client: AsyncWebClient, d: Deps, team_id: str,
                        event: dict[str, Any]) -> None:  # fmt: skip
    info = (await client.files_info(file=event["file_id"]))["file"]
    channel = event.get("channel_id") or ""
    shares = info.get("shares") or {}
    posts = (shares.get("public") or {}).get(channel) or (shares.get("private") or {}).get(channel)
    if not channel or not posts:
        return  # shared somewhere the bot can't reply (or a modal upload)
    await _offer(client, d, team_id, channel, posts[0]["ts"], describe(info))


async def message(ack: Any, event: dict[str, Any], body: dict[str, Any],
                  client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """The only message listener (bolt runs the first match): file shares fan out from here."""
    await ack()
    if event.get("subtype") != "file_share":
        return
    d = deps(context)

    async def work() -> None:
        for file in event.get("files") or []:
            await _offer(client, d, body["team_id"], event["channel"], event["ts"],
                         describe(file))  # fmt: skip

    d.later.run(work(), client, {})


async def review_upload(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                        context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    d.later.run(_review_upload(d, client, body), client, body)


async def _review_upload(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id = body["team"]["id"], body["user"]["id"]
    state = (body.get("state") or {}).get("values") or {}
    selected = ((state.get(BlockId.UPLOAD) or {}).get(Action.UPLOAD_SEGMENT) or {}).get(
        "selected_option"
    )
    if not selected:
        raise Refusal("Choose a segment first, then press Review import.")
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    segment = await get_segment(d.db, team_id, int(selected["value"]))
    file_id = body["actions"][0]["value"]
    if not await first_time(d.db, team_id, f"review:{file_id}"):
        raise Refusal("This file already has a review: see the import message in this channel.")
    batch = await create_batch(d.db, team_id, segment.id or 0, user_id)
    source = await add_source(d.db, team_id, batch.id or 0, SourceKind.CSV, "uploaded CSV",
                              ref=file_id)  # fmt: skip
    await enqueue(d.db, team_id, SLACK_FILE_JOB, {"source_id": source.id},
                  dedupe_key=f"stage:{source.id}")  # fmt: skip
    channel = body["channel"]["id"]
    await post_review(client, d, team_id, batch.id or 0, channel, user_id)
    await client.chat_update(channel=channel, ts=body["container"]["message_ts"],
                             text="Review posted", blocks=plain(
                                 f":white_check_mark: <@{user_id}> started a review for "
                                 f"*{segment.name}*."))  # fmt: skip


def register(app: AsyncApp) -> None:
    app.event("file_shared")(file_shared)
    app.event("message")(message)
    app.action(Action.UPLOAD_REVIEW)(review_upload)
    app.action(Action.UPLOAD_SEGMENT)(_noop)


async def _noop(ack: Any) -> None:
    await ack()  # choosing a segment in the offer does nothing until Review import
