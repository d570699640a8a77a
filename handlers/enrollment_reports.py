"""An enrollment's report in its Slack thread: posted once, then updated in place."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.campaigns.reports import claim_report, enrollment_summary, forget_report
from bot.imports.undo import LEASE_SECONDS
from bot.once import post_once, posting_stale
from handlers.enrollment_messages import enrollment_report
from handlers.private_csv_messages import undelivered_offer
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
        """Offer the CSV of the invites that failed, once per count of them (a retried
        report, a worker killed while offering it: offered once). The offer, not the CSV:
        a file in the thread is anyone's in the channel (a guest's, another organisation's);
        *Send me the CSV* sends it to a member's DM (handlers/private_csvs.py)."""

        async def share() -> None:
            text, blocks = undelivered_offer(campaign, count, e.id or 0)
            await self.client.chat_postMessage(channel=e.channel_id, thread_ts=e.thread_ts,
                                               text=text, blocks=blocks)  # fmt: skip

        await post_once(self.db, team_id, f"invite-failures:{e.id}:{count}", share,
                        stale_after=posting_stale(self.lease_seconds))  # fmt: skip
