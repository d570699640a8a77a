"""Every kind of job the workers know, wired to its handler."""

from __future__ import annotations

from bot.imports.background import IMPORT_JOB, import_handler
from bot.jobs.worker import Handler
from bot.settings import Settings


def handlers(settings: Settings) -> dict[str, Handler]:
    return {IMPORT_JOB: import_handler(settings.import_chunk_rows)}
