"""Every kind of job the workers know, wired to its handler."""

from __future__ import annotations

from bot.imports.background import (
    IMPORT_JOB,
    SLACK_FILE_JOB,
    FileLookup,
    import_handler,
    slack_file_handler,
)
from bot.jobs.worker import Handler
from bot.notify import ImportNotifier, Silent
from bot.settings import Settings


def handlers(
    settings: Settings, notifier: ImportNotifier | None = None, lookup: FileLookup | None = None
) -> dict[str, Handler]:
    """Job kind -> handler. Reading Slack files needs `lookup` (files.info) and the token."""
    notifier = notifier or Silent()
    kinds = {IMPORT_JOB: import_handler(settings.import_chunk_rows, notifier)}
    if lookup is not None:
        kinds[SLACK_FILE_JOB] = slack_file_handler(
            lookup, token=settings.slack_bot_token, hosts=settings.slack_file_hosts,
            max_bytes=int(settings.max_upload_mb * 1e6), notifier=notifier,
        )  # fmt: skip
    return kinds
