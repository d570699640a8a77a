"""The campaign job kinds: enroll a campaign's targets, then send the invites it queued."""

from __future__ import annotations

from bot.campaigns.enroll import fail_enrollment, run_enrollment
from bot.campaigns.invites import Links, send_invites, send_later, stop_sending
from bot.email.send import SmtpServerBusy, SmtpSetupError, sender_for
from bot.imports.background import failure_words, surely
from bot.jobs.worker import (
    GivingUp,
    Handler,
    JobContext,
    JobStopped,
    PermanentJobError,
    ToldJobError,
)
from bot.notify import ImportNotifier
from bot.settings import Settings


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
        if await surely(ctx, f"enrollment {enrollment_id}: recording its failure",
                        lambda: fail_enrollment(ctx.db, ctx.team_id, enrollment_id,
                                                f"Enrolling stopped: {error}")):  # fmt: skip
            await notifier.enrollment_changed(ctx.team_id, enrollment_id)

    return GivingUp(run, give_up)


def send_handler(settings: Settings, notifier: ImportNotifier) -> Handler:
    """One SMTP connection (or the outbox directory) per run, reused for every invite.

    A run that fails is retried by the worker; when it fails for good (or its worker died
    every time) sending stops with the reason in the thread's report, whose Retry sending
    queues a new run: nothing is lost and nothing is sent twice. A server that turns the
    run away for now gets later runs instead, for about two hours (send_later)."""

    async def run(ctx: JobContext) -> None:
        enrollment_id = int(ctx.payload["enrollment_id"])

        async def progress() -> None:
            await notifier.enrollment_changed(ctx.team_id, enrollment_id)

        if why := _unset(settings):  # before anyone is emailed; no retry mends this worker's
            # settings (five attempts took over a minute, each logged with a traceback)
            await give_up(ctx, why)
            raise PermanentJobError(why)
        try:
            await send_invites(
                ctx.db, ctx.team_id, enrollment_id,
                sender=sender_for(settings.smtp_url or None, settings.outbox_dir),
                links=Links(settings.public_base, settings.secret_key),
                on_progress=progress, checkpoint=ctx.checkpoint, job_id=ctx.job.id,
                lease_owner=ctx.owner,
            )  # fmt: skip
        except JobStopped:
            raise
        except SmtpServerBusy as exc:  # turned away for now: a later run, not a quick retry
            waited = int(ctx.payload.get("server_waits", 0))
            why = await send_later(ctx.db, ctx.team_id, enrollment_id, waited, ctx.job.id,
                                   str(exc))  # fmt: skip
            if why is not None:
                await give_up(ctx, why)
                raise PermanentJobError(why) from exc
        except Exception as exc:
            setup = isinstance(exc, SmtpSetupError)  # says what is wrong in words
            if ctx.last_attempt:
                await give_up(ctx, str(exc) if setup else f"{type(exc).__name__}: {exc}")
            if setup:  # one line in the log: three chained tracebacks told no more than it
                raise ToldJobError(str(exc)) from None
            raise

    async def give_up(ctx: JobContext, error: str) -> None:
        enrollment_id = int(ctx.payload["enrollment_id"])
        if await stop_sending(ctx.db, ctx.team_id, enrollment_id, error, ctx.job.id):
            await notifier.enrollment_changed(ctx.team_id, enrollment_id)

    return GivingUp(run, give_up)


def _unset(settings: Settings) -> str | None:
    """What this worker's settings lack to send invites, as the sentence sending stops with."""
    if not settings.secret_key:
        return ("SECRET_KEY is not set: invites need it to sign unsubscribe links. Set it where "
                "the worker runs, then Retry sending.")  # fmt: skip
    if settings.links_unreachable:
        return ("PUBLIC_URL is not set: the invites' referral and unsubscribe links would lead "
                f"to {settings.public_base}, which nobody else can reach. Set it to the address "
                "people reach the bot at, then Retry sending.")  # fmt: skip
    return None
