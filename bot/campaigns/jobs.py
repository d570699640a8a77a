"""The campaign job kinds: enroll a campaign's targets, then send the invites it queued."""

from __future__ import annotations

import asyncio
import logging

from bot.campaigns.enroll import SEND_JOB, fail_enrollment, run_enrollment
from bot.campaigns.invites import (
    UNCERTAIN_FORGIVEN_AFTER,
    Links,
    send_invites,
    send_later,
    stop_sending,
)
from bot.email.send import SendAbandoned, SmtpServerBusy, SmtpSetupError, sender_for
from bot.jobs import queue
from bot.jobs.worker import (
    GivingUp,
    Handler,
    JobContext,
    JobStopped,
    PermanentJobError,
    ToldJobError,
    about,
    failure_words,
    surely,
)
from bot.notify import ImportNotifier
from bot.settings import Settings

log = logging.getLogger(__name__)

# What a worker needs to take send jobs, as `referral-bot jobs` says it of one that waits for
# such a worker, and `campaign list` of the invites that wait with it.
SEND_NEEDS = ("start one with SMTP_URL and PUBLIC_URL set to send invites, or with OUTBOX_DIR "
              "set to write them as .eml files; SECRET_KEY either way")


def enroll_handler(settings: Settings, notifier: ImportNotifier) -> Handler:
    async def run(ctx: JobContext) -> None:
        enrollment_id = int(ctx.payload["enrollment_id"])
        hold = settings.invite_hold_seconds if ctx.payload.get("hold", True) else 0
        try:
            await run_enrollment(ctx.db, ctx.team_id, enrollment_id, hold_seconds=hold,
                                 job_id=ctx.job.id)  # fmt: skip
        except JobStopped:
            raise
        except Exception as exc:
            if ctx.last_attempt:
                await give_up(ctx, failure_words(exc))
            raise
        await notifier.enrollment_changed(ctx.team_id, enrollment_id)

    async def give_up(ctx: JobContext, error: str) -> None:
        """Fail the enrollment through a database outage (`surely`): failing with the
        database, it stayed queued, its report saying "Enrolling…" for good (nothing runs it
        again once its job failed)."""
        enrollment_id = int(ctx.payload["enrollment_id"])
        await surely(ctx, f"enrollment {enrollment_id}: recording its failure",
                     lambda: fail_enrollment(ctx.db, ctx.team_id, enrollment_id,
                                             f"Enrolling stopped: {error}"))  # fmt: skip
        # failed now, or ended before: the last attempt may have enrolled everyone and died
        # before telling the thread, which then never heard the result
        await notifier.enrollment_changed(ctx.team_id, enrollment_id)

    return GivingUp(run, give_up, done_when=enrollment_done)


# An enrollment is `done` in the transaction that enrolls its targets (enroll._finish)
_ENROLLED = ("EXISTS (SELECT 1 FROM enrollment WHERE enrollment.team_id = job.team_id "
             "AND enrollment.id = :done_enrollment AND enrollment.status = 'done')")


def enrollment_done(ctx: JobContext) -> queue.Done:
    """The enrollment job's work is complete (GivingUp.done_when): its enrollment is done.
    Its give-up step then fails nothing and tells the thread its result."""
    return queue.Done(_ENROLLED, {"done_enrollment": int(ctx.payload["enrollment_id"])})


def outbox_chosen(settings: Settings) -> bool:
    """Whether OUTBOX_DIR was given (the environment, a .env file, or code), not left at its
    default: writing invites as files is a choice someone made, never what a worker falls
    back on for want of SMTP_URL."""
    return "outbox_dir" in settings.model_fields_set


def cannot_send(settings: Settings) -> str | None:
    """Why a worker with these settings can't send invites as the deployment intends (what to
    set, as a sentence), or None when it can.

    Such a worker leaves send jobs to one that can (send_handlers): one started without
    SMTP_URL wrote a campaign's invites into ./outbox and marked them sent while the campaign
    was sending by SMTP through `serve`'s worker (those customers were never emailed), and one
    without SECRET_KEY took them only to stop the campaign's sending for good."""
    if not settings.smtp_url.strip() and not outbox_chosen(settings):
        return ("SMTP_URL is not set where this worker runs (nor OUTBOX_DIR, to write the "
                "invites as .eml files instead).")  # fmt: skip
    if not settings.secret_key:
        return "SECRET_KEY is not set: invites need it to sign unsubscribe links."
    if settings.links_unreachable:
        return ("PUBLIC_URL is not set: the invites' referral and unsubscribe links would lead "
                f"to {settings.public_base}, which nobody else can reach.")  # fmt: skip
    return None


def send_handlers(settings: Settings, notifier: ImportNotifier) -> dict[str, Handler]:
    """The send job's handler, for a worker that can send invites as the deployment intends;
    none for one that can't (cannot_send): it leaves those jobs queued for a worker that
    can, as a worker without SLACK_BOT_TOKEN leaves Slack's (bot/jobs/kinds.py), and
    `referral-bot jobs` says they wait for one (SEND_NEEDS)."""
    if cannot_send(settings) is not None:
        return {}
    return {SEND_JOB: send_handler(settings, notifier)}


def send_handler(settings: Settings, notifier: ImportNotifier) -> Handler:
    """One SMTP connection (or the outbox directory) per run, reused for every invite.

    A run that fails is retried by the worker; when it fails for good (or its worker died
    every time) sending stops with the reason in the thread's report, whose Retry sending
    queues a new run: nothing is lost and nothing is sent twice. A server that turns the
    run away for now gets later runs instead, for about two hours (send_later)."""

    async def run(ctx: JobContext) -> None:
        if why := cannot_send(settings):
            # taken all the same (given to a worker without asking send_handlers): never the
            # outbox for want of SMTP_URL; retried with backoff as any failure is, so that a
            # worker that can send may take it, and sending stops only on its last attempt
            if ctx.last_attempt:
                await give_up(ctx, f"{why} Set it where the worker runs, then Retry sending.")
            raise ToldJobError(why)
        try:
            await _send(ctx)
        except (JobStopped, PermanentJobError):
            raise
        except Exception as exc:
            setup = isinstance(exc, SmtpSetupError)  # says what is wrong in words
            if isinstance(exc, SmtpSetupError):
                _log_detail(ctx, exc)
            if ctx.last_attempt:  # a database outage in words too, not its SQL
                await give_up(ctx, str(exc) if setup else failure_words(exc))
            if setup:  # one line in the log: three chained tracebacks told no more than it
                raise ToldJobError(str(exc)) from None
            raise

    async def _send(ctx: JobContext) -> None:
        enrollment_id = int(ctx.payload["enrollment_id"])

        async def progress() -> None:
            await notifier.enrollment_changed(ctx.team_id, enrollment_id)

        # the worker stopping, or the job cancelled or taken over (its heartbeat found it so):
        # either way the invite in hand is abandoned or given its grace (SmtpSender)
        stop = asyncio.Event()
        watching = asyncio.create_task(_set_on_either(stop, ctx.stopping, ctx.lost))
        try:
            await send_invites(
                ctx.db, ctx.team_id, enrollment_id,
                sender=sender_for(settings.smtp_url or None, settings.outbox_dir, stop=stop),
                links=Links(settings.public_base, settings.secret_key),
                on_progress=progress, checkpoint=ctx.checkpoint, job_id=ctx.job.id,
                lease_owner=ctx.owner,
            )  # fmt: skip
        except SendAbandoned:  # the invite in hand went back queued
            raise JobStopped from None
        except SmtpServerBusy as exc:  # turned away for now: a later run, not a quick retry
            if stop.is_set():  # a reply cut short by the stop says nothing of the
                if exc.uncertain:  # server: the next worker goes on at once; the invite
                    await progress()  # left uncertain shows (with Resend uncertain) now
                raise JobStopped from exc
            _log_detail(ctx, exc)
            # waits in a row that sent nothing (or too little before an uncertain invite):
            # a server that loses one reply in a hundred stops each run once, and counted
            # across runs that sent, it was "turned away for two hours" and sending stopped
            enough = UNCERTAIN_FORGIVEN_AFTER if exc.uncertain else 1
            waited = (0 if exc.sent_before >= enough
                      else int(ctx.payload.get("server_waits", 0)))  # fmt: skip
            why = await send_later(ctx.db, ctx.team_id, enrollment_id, waited, ctx.job.id,
                                   str(exc))  # fmt: skip
            if why is not None:
                await give_up(ctx, why)
                raise PermanentJobError(why) from exc
            # what the run sent, and an invite it left uncertain (with *Resend uncertain*):
            # a run that ended here never drew its thread's report again
            await progress()
        finally:
            watching.cancel()

    async def give_up(ctx: JobContext, error: str) -> None:
        """Stop sending through a database outage (`surely`): failing with the database, the
        job was recorded failed once it was back, and the enrollment's invites stayed queued
        with no job to send them and no *Retry sending* to offer, its report never told."""
        enrollment_id = int(ctx.payload["enrollment_id"])
        if await surely(ctx, f"enrollment {enrollment_id}: stopping its sending",
                        lambda: stop_sending(ctx.db, ctx.team_id, enrollment_id, error,
                                             ctx.job.id)):  # fmt: skip
            await notifier.enrollment_changed(ctx.team_id, enrollment_id)

    return GivingUp(run, give_up)


async def _set_on_either(stop: asyncio.Event, *events: asyncio.Event) -> None:
    """Set `stop` once any of `events` is."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
    finally:
        for wait in waits:
            wait.cancel()


def _log_detail(ctx: JobContext, exc: SmtpSetupError) -> None:
    """The library's own account of a mail server failure, which its message (for the
    merchant) says in words: the errno, the TLS library's reason, for whoever reads the log."""
    if exc.detail != str(exc):
        log.warning("%s: %s", about(ctx.job), exc.detail)
