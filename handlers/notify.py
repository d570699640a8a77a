"""Background work reports to Slack: the review message, progress and result in its thread."""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.imports.batches import write_rejects
from bot.imports.review import load, set_message
from handlers.messages import next_step_text, progress_text, result_text, review_message
from models import BatchStatus, Database

log = logging.getLogger(__name__)


class SlackNotifier:
    """Implements bot.notify.ImportNotifier with chat.update / postMessage / files_upload_v2."""

    def __init__(self, client: AsyncWebClient, db: Database) -> None:
        self.client = client
        self.db = db

    async def batch_changed(self, team_id: str, batch_id: int) -> None:
        view = await load(self.db, team_id, batch_id)
        if view.batch.channel_id and view.batch.message_ts:
            text, blocks = review_message(view)
            await self._safely(self.client.chat_update(
                channel=view.batch.channel_id, ts=view.batch.message_ts, text=text, blocks=blocks
            ))  # fmt: skip

    async def source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        await self.batch_changed(team_id, batch_id)
        view = await load(self.db, team_id, batch_id)
        source = next((s for s in view.sources if s.id == source_id), None)
        batch = view.batch
        if source is None or not (source.rejected or source.duplicates):
            return
        if not batch.channel_id or not batch.message_ts:
            return
        out = io.StringIO()
        await write_rejects(self.db, team_id, batch_id, out, source_id=source_id)
        await self._safely(self.client.files_upload_v2(
            channel=batch.channel_id, thread_ts=batch.message_ts, content=out.getvalue(),
            filename=f"{source.label.rsplit('.', 1)[0]}-skipped-rows.csv",
            title=f"{source.label}: rows that won't be imported, and why",
            initial_comment=f"{source.rejected:,} rejected and {source.duplicates:,} duplicate "
            f"rows in *{source.label}* won't be imported; this CSV says why.",
        ))  # fmt: skip

    async def import_progress(self, team_id: str, batch_id: int, done: int, total: int) -> None:
        view = await load(self.db, team_id, batch_id)
        text = progress_text(view.segment.name, done, total)
        await self._progress(team_id, batch_id, view.batch.channel_id, view.batch.message_ts,
                             view.batch.progress_ts, text)  # fmt: skip

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        view = await load(self.db, team_id, batch_id)
        batch = view.batch
        await self.batch_changed(team_id, batch_id)
        await self._progress(team_id, batch_id, batch.channel_id, batch.message_ts,
                             batch.progress_ts, result_text(batch, view.segment.name))  # fmt: skip
        if not batch.channel_id or not batch.message_ts or batch.status != BatchStatus.DONE:
            return
        await self._safely(self.client.chat_postMessage(
            channel=batch.channel_id, thread_ts=batch.message_ts,
            text=next_step_text(view.segment.name),
        ))  # fmt: skip

    async def _progress(
        self, team_id: str, batch_id: int, channel: str | None, thread: str | None,
        progress_ts: str | None, text: str,
    ) -> None:  # fmt: skip
        """One reply in the thread, posted once and then updated in place."""
        if not channel or not thread:
            return
        if progress_ts:
            await self._safely(self.client.chat_update(channel=channel, ts=progress_ts, text=text))
            return
        posted = await self._safely(
            self.client.chat_postMessage(channel=channel, thread_ts=thread, text=text)
        )
        if posted is not None:
            await set_message(self.db, team_id, batch_id, progress_ts=posted["ts"])

    async def _safely(self, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse | None:
        """A message that can't be posted must not fail the import that it reports on."""
        try:
            return await call
        except SlackApiError as exc:
            log.warning("Slack refused an update: %s", exc.response.get("error"))
            return None
