"""An enrollment's report in its Slack thread: posted once, then updated in place."""

from __future__ import annotations

import csv
import io

from slack_sdk.web.async_client import AsyncWebClient

from bot.campaigns.reports import (
    claim_report,
    enrollment_summary,
    failed_invites,
    forget_report,
)
from bot.imports.batches import neutralise
from bot.once import first_time, forget
from handlers.enrollment_messages import enrollment_report
from handlers.messages import esc, file_stem, plural
from handlers.thread_reply import show_reply
from models import Database, Enrollment


class EnrollmentReports:
    def __init__(self, client: AsyncWebClient, db: Database) -> None:
        self.client = client
        self.db = db

    async def report(self, team_id: str, enrollment_id: int) -> None:
        """Refresh the report; the CSV of failed invites follows once sending is over."""
        summary = await enrollment_summary(self.db, team_id, enrollment_id)
        e = summary.enrollment
        if not e.channel_id or not e.thread_ts:
            return
        text, blocks = enrollment_report(summary)

        async def keep(ts: str) -> str:
            return await claim_report(self.db, team_id, enrollment_id, ts)

        async def drop(ts: str) -> None:
            await forget_report(self.db, team_id, enrollment_id, ts)

        # every report is the enrollment's state now: a losing one may replace the kept one
        await show_reply(self.client, channel=e.channel_id, thread_ts=e.thread_ts,
                         shown=e.report_ts, text=text, blocks=blocks, keep=keep, drop=drop,
                         replace_kept=True)  # fmt: skip
        unsettled = sum(summary.count(s) for s in ("queued", "held", "sending"))
        troubled = summary.count("failed") + summary.count("uncertain")
        if troubled and not unsettled:
            await self._share_failures(team_id, e, summary.campaign.name, troubled)

    async def _share_failures(self, team_id: str, e: Enrollment, campaign: str,
                              count: int) -> None:  # fmt: skip
        key = f"invite-failures:{e.id}:{count}"
        if not await first_time(self.db, team_id, key):
            return
        try:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["email", "what happened"])
            for email, why in await failed_invites(self.db, team_id, e.id or 0):
                writer.writerow(neutralise([email, why]))
            await self.client.files_upload_v2(
                channel=e.channel_id, thread_ts=e.thread_ts, content=out.getvalue(),
                filename=f"{file_stem(campaign)}-invites-not-delivered.csv",
                title=f"{campaign}: invites that failed or may not have arrived",
                initial_comment=f"{plural(count, 'invite')} of *{esc(campaign)}* failed or may "
                                "not have arrived; this CSV says why.",
            )  # fmt: skip
        except BaseException:
            await forget(self.db, team_id, key)
            raise
