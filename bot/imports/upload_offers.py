"""Offers to import a CSV uploaded to a channel, made by a job.

Slack sends `file_shared` once and never again after it is answered, and it is answered
before the offer is made: a Slack outage, a busy database or a restart in between lost the
offer for good while it was tried again in the web process's memory. The event now queues
this job, which the web process then takes and runs at once (a worker busy with an import
would make the offer wait for it); Slack's side of it is in handlers/uploads. A failure that
waiting can fix is retried by the workers with the jobs' backoff, and a web process that dies
part way leaves the job to a worker once its lease lapses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.jobs.queue import enqueue
from bot.jobs.worker import Handler, JobContext
from models import Database

UPLOAD_OFFER_JOB = "upload_offer"
# team id, channel id, file id -> the offer made, or why not said (Slack's side)
UploadOfferer = Callable[[str, str, str], Awaitable[None]]


def upload_offer_key(file_id: str, channel_id: str) -> str:
    """The offer's job key: one job per file and channel."""
    return f"upload_offer:{file_id}:{channel_id}"


async def queue_upload_offer(db: Database, team_id: str, channel_id: str, file_id: str) -> str:
    """Queue the offer of a file shared in a channel; its job's key (see upload_offer_key).

    Slack's retries of the event find the first job. The offer itself is made once per
    file: shared again in another channel, it isn't offered again."""
    key = upload_offer_key(file_id, channel_id)
    await enqueue(db, team_id, UPLOAD_OFFER_JOB, {"channel_id": channel_id, "file_id": file_id},
                  dedupe_key=key)  # fmt: skip
    return key


def upload_offer_handler(offer: UploadOfferer) -> Handler:
    """Make a queued offer with the worker's Slack side."""

    async def run(ctx: JobContext) -> None:
        await offer(ctx.team_id, str(ctx.payload["channel_id"]), str(ctx.payload["file_id"]))

    return run
