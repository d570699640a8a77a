"""Reading a Mailchimp audience into its source, as a job (retried while Mailchimp is busy)."""

from __future__ import annotations

from sqlmodel import col, select

from bot.imports.batches import add_source_once, fail_source
from bot.jobs import queue
from bot.jobs.worker import GivingUp, Handler, JobContext, database_words, surely
from bot.mailchimp.accounts import NotConnected, refused_from_now_on, stamped_credentials
from bot.mailchimp.api import Audience, MailchimpError, NotFound, ReconnectNeeded, Refused
from bot.mailchimp.importing import read_audience
from bot.mailchimp.secrets import CredentialsUnreadable, SecretKeyMissing
from bot.notify import ImportNotifier
from bot.settings import Settings
from models import Database, ImportSource, SourceKind, SourceStatus

MAILCHIMP_JOB = "mailchimp_list"
UNFORESEEN = "something went wrong on our side; the bot's log says what"


async def queue_audiences(db: Database, team_id: str, batch_id: int,
                          audiences: list[Audience]) -> list[int]:  # fmt: skip
    """Each audience the batch doesn't read already becomes a source of it, read by a job;
    returns the ids of the sources added."""
    ids = []
    for audience in audiences:
        source = await add_source_once(db, team_id, batch_id, SourceKind.MAILCHIMP,
                                       audience.name, ref=audience.id,
                                       read_by=MAILCHIMP_JOB)  # fmt: skip
        if source is not None:
            ids.append(source.id or 0)
    return ids


async def queued_audiences(db: Database, team_id: str, batch_id: int) -> set[str]:
    """The ids of the audiences the batch reads or has read (a failed one may be added again)."""
    async with db.session() as session:
        found = await session.exec(select(ImportSource.ref).where(
            col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
            col(ImportSource.kind) == SourceKind.MAILCHIMP, col(ImportSource.removed).is_(False),
            col(ImportSource.status) != SourceStatus.FAILED))  # fmt: skip
        return {str(ref) for ref in found.all() if ref}


def mailchimp_handler(settings: Settings, notifier: ImportNotifier) -> Handler:
    """Read the audience into its source, then redraw the review. A source that can't be read
    for good (refused, gone, out of attempts) fails with why, and that failing and the redraw
    ride out a database outage (`surely`): failing with the database, the job failed and the
    source said "Reading…" for good, nobody able to approve the import, or its skipped rows
    were never shared."""
    async def fail(ctx: JobContext, source: ImportSource, error: str) -> None:
        await surely(ctx, f"audience source {source.id}: recording its failure",
                     lambda: fail_source(ctx.db, ctx.team_id, source.id or 0, error,
                                         only_pending=True))  # fmt: skip

    async def report(ctx: JobContext, source: ImportSource) -> None:
        await surely(ctx, f"audience source {source.id}: reporting its reading",
                     lambda: notifier.source_read(ctx.team_id, source.batch_id,
                                                  source.id or 0))  # fmt: skip

    async def run(ctx: JobContext) -> None:
        source = await _source(ctx)
        if source is None:
            return
        if source.status != SourceStatus.PENDING:
            # read already, perhaps by this job before a retry whose report didn't go out:
            # the report is safe to repeat
            await report(ctx, source)
            return
        stamp = None
        try:
            creds, stamp = await stamped_credentials(ctx.db, ctx.team_id, settings.secret_key)
            await read_audience(ctx.db, ctx.team_id, source, creds, read_from=stamp)
        except ReconnectNeeded as exc:
            await surely(ctx, "marking the Mailchimp connection refused",
                         lambda: refused_from_now_on(ctx.db, ctx.team_id, stamp))  # fmt: skip
            await fail(ctx, source, str(exc))
        except (NotFound, Refused, NotConnected, CredentialsUnreadable,
                SecretKeyMissing) as exc:  # fmt: skip
            await fail(ctx, source, str(exc))
        except MailchimpError as exc:
            if not ctx.last_attempt:
                raise  # busy or down: the job retries with backoff
            await fail(ctx, source, str(exc))
        except Exception as exc:  # a bug, an answer nobody foresaw: not "Reading…" forever
            if ctx.last_attempt:  # what it was goes to the log (the worker's), not to Slack;
                # a database's error in the words every job uses (read-only and where to look,
                # out of disk space, out of reach...), not "unavailable" or "went wrong"
                await give_up(ctx, database_words(exc) or UNFORESEEN)
            raise
        await report(ctx, source)

    async def give_up(ctx: JobContext, error: str) -> None:
        source = await surely(ctx, "reading the audience's source", lambda: _source(ctx))
        if source is None:
            return
        await fail(ctx, source, f"Could not read the audience: {error}")
        await report(ctx, source)

    return GivingUp(run, give_up, done_when=audience_read)


# The audience's source read (or failed with why, or gone), as its run leaves it done
_READ = ("NOT EXISTS (SELECT 1 FROM import_source WHERE import_source.team_id = job.team_id "
         "AND import_source.id = :done_source "
         f"AND import_source.status = '{SourceStatus.PENDING}')")


def audience_read(ctx: JobContext) -> queue.Done:
    """The audience job's work is complete (GivingUp.done_when): its source is no longer
    pending. Its give-up step then fails nothing and reports the reading."""
    return queue.Done(_READ, {"done_source": int(ctx.payload["source_id"])})


async def _source(ctx: JobContext) -> ImportSource | None:
    """The source the job reads, if it is still the workspace's."""
    async with ctx.db.session() as session:
        source = await session.get(ImportSource, int(ctx.payload["source_id"]))
    return source if source is not None and source.team_id == ctx.team_id else None
