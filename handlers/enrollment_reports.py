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
from bot.imports.undo import LEASE_SECONDS
from bot.once import post_once, posting_stale
from handlers.enrollment_messages import enrollment_report
from handlers.messages import esc, file_stem, plural
from handlers.thread_reply import show_reply
from models import Database, Enrollment


class EnrollmentReports:
    def __init__(self, client: AsyncWebClient, db: Database, *,
                 lease_seconds: float = LEASE_SECONDS) -> None:  # fmt: skip
        self.client = client
        self.db = db
        self.lease_seconds = lease_seconds  # JOB_LEASE_SECONDS: when a poster is dead

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
        """The CSV of the invites that failed, once per count of them (a retried report, a
        worker killed while sharing it: shared once)."""

        async def share() -> None:
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

        await post_once(self.db, team_id, f"invite-failures:{e.id}:{count}", share,
                        stale_after=posting_stale(self.lease_seconds))  # fmt: skip
