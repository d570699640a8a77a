"""Every kind of job the workers know, wired to its handler."""

from __future__ import annotations

from bot.campaigns.jobs import enroll_handler, send_handlers
from bot.campaigns.service import ENROLL_JOB
from bot.home_refresh import HOME_REFRESH_JOB, HomeRefresher, home_refresh_handler
from bot.imports.background import FileFetcher, import_handler, slack_file_handler
from bot.imports.job_kinds import IMPORT_JOB, PURGE_JOB, SLACK_FILE_JOB, UNDO_JOB
from bot.imports.retention import purge_handler
from bot.imports.undo import undo_handler
from bot.imports.upload_offers import UPLOAD_OFFER_JOB, UploadOfferer, upload_offer_handler
from bot.jobs.worker import Handler, JobContext
from bot.mailchimp.jobs import MAILCHIMP_JOB, mailchimp_handler
from bot.notify import REPORT_JOB, ImportNotifier, Silent
from bot.settings import Settings


def handlers(
    settings: Settings, notifier: ImportNotifier | None = None, fetch: FileFetcher | None = None,
    homes: HomeRefresher | None = None, offers: UploadOfferer | None = None,
) -> dict[str, Handler]:
    """Job kind -> handler. Reading Slack files needs `fetch` (Slack's side, with the token);
    retrying Slack reports needs a notifier that talks to Slack, refreshing Home tabs
    after the shell's changes needs `homes`, and offering uploaded files `offers`. A worker
    without them leaves those jobs to one that has them."""
    reports = notifier or Silent()
    kinds = {
        IMPORT_JOB: import_handler(settings.import_chunk_rows, reports,
                                   max_unzipped_bytes=settings.max_unzipped_bytes,
                                   undo_window_days=settings.undo_window_days),
        PURGE_JOB: purge_handler(settings.staged_retention_days, settings.undo_window_days),
        ENROLL_JOB: enroll_handler(settings, reports),
        **send_handlers(settings, reports),
        MAILCHIMP_JOB: mailchimp_handler(settings, reports),
        UNDO_JOB: undo_handler(settings.import_chunk_rows, notifier),
    }
    if notifier is not None:
        kinds[REPORT_JOB] = report_handler(notifier)
    if homes is not None:
        kinds[HOME_REFRESH_JOB] = home_refresh_handler(homes)
    if offers is not None:
        kinds[UPLOAD_OFFER_JOB] = upload_offer_handler(offers)
    if fetch is not None:
        kinds[SLACK_FILE_JOB] = slack_file_handler(
            fetch, notifier=notifier or Silent(), max_unzipped_bytes=settings.max_unzipped_bytes
        )
    return kinds


def report_handler(notifier: ImportNotifier) -> Handler:
    """Deliver a report that an outage held back; still failing, it retries with backoff."""

    async def run(ctx: JobContext) -> None:
        ids = {k: int(v) for k, v in (ctx.payload.get("ids") or {}).items() if v is not None}
        await notifier.deliver(ctx.team_id, str(ctx.payload["event"]), ids)

    return run
