"""Background work reports to Slack: the review message, progress and result in its thread.

Reports never fail the work they report on. A report that can't reach Slack because of an
outage (network error, timeout, 5xx, rate limit) is queued as a `slack_report` job and
retried with backoff; a report Slack refuses for good (the message was deleted, the bot left
the channel, the app was uninstalled) is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.campaigns.preview import preview_batch
from bot.campaigns.service import campaigns_by_name, enrollments_in_thread
from bot.imports.batches import get_source
from bot.imports.review import BatchView, batch_of, claim_progress, forget_progress, load
from bot.imports.source_names import told_apart
from bot.imports.undo import LEASE_SECONDS, kept_unsubscribed, undo_key, undoable
from bot.jobs.queue import find_by_key
from bot.leads import is_user_id
from bot.notify import (
    BATCH_CHANGED,
    ENROLLMENT_CHANGED,
    IMPORT_FINISHED,
    REJECTS_CHANGED,
    SOURCE_READ,
    UNDO_FINISHED,
    UNDO_STOPPED,
    earlier_rejects_key,
    enqueue_report_job_in,
    rejects_key,
    take_earlier_rejects,
)
from bot.once import PostUnderWay, first_time, forget, keys_under, post_once, posting_stale
from handlers.enrollment_messages import target_offer
from handlers.enrollment_reports import EnrollmentReports
from handlers.home_publish import refresh_homes
from handlers.mapping_messages import none_skipped_now
from handlers.messages import (
    CHANNEL_REFUSALS,
    esc,
    progress_text,
    result_text,
    review_message,
    source_offset,
    sources_modal,
)
from handlers.modals import update_modal
from handlers.private_csv_messages import skipped_rows_offer
from handlers.slack_errors import say_token_refused, slack_error, token_refused
from handlers.slack_retries import api_method, with_rate_limits
from handlers.thread_reply import message_gone, show_reply
from handlers.undo_messages import result_blocks, undone_result_blocks, undone_text
from models import BatchStatus, Database, JobState, SourceStatus

log = logging.getLogger(__name__)
# what changes Home's figures
REDRAWS = 3  # draws of the review message per refresh, if it keeps changing meanwhile


def _state(view: BatchView) -> tuple[object, ...]:
    """What a review message shows that a click changes: the import's state, its files and
    their counts (a contact removed changes only the counts)."""
    b = view.batch
    return (b.status, b.updated_at, b.consent_by, b.approved_by, b.cancelled_by,
            [(s.id, s.status, s.removed, s.label) for s in view.sources], view.counts,
            view.totals)  # fmt: skip


def _not_there(refused: str) -> str:
    """Why a result is told by DM: Slack's `refused` error posting it in the thread."""
    return ("Its review message was deleted" if refused == THREAD_GONE
            else "I can't post in the import's channel any more")  # fmt: skip


UNDER_WAY = frozenset({BatchStatus.QUEUED, BatchStatus.IMPORTING})  # progress, not a result
HOME_EVENTS = frozenset({BATCH_CHANGED, IMPORT_FINISHED, ENROLLMENT_CHANGED, UNDO_FINISHED,
                         UNDO_STOPPED})
LIST_KEY = "sources-list:"  # an All sources list to redraw when a file is read: source, view
# chat.postMessage's answer for a reply to a review message someone deleted with no replies
# (one with replies stays as "This message was deleted.", its thread still there)
THREAD_GONE = "thread_not_found"
# Slack refused the result for good where it goes: whoever asked gets it by DM instead
RESULT_NOT_POSTED = CHANNEL_REFUSALS | {THREAD_GONE}
_TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                        "request_timeout"})  # fmt: skip


def is_outage(exc: BaseException) -> bool:
    """Slack (or the way to it) is down for now: worth trying again later."""
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, SlackRequestError):  # files_upload_v2's upload step: no 200 from it
        return True
    if isinstance(exc, SlackApiError):
        if getattr(exc.response, "status_code", 200) >= 500:
            return True
        data = getattr(exc.response, "data", None)  # a body that wasn't JSON: not a dict
        return isinstance(data, dict) and data.get("error") in _TRANSIENT
    return False


# What an import's progress sends: a rate-limited one is skipped, its Retry-After not slept
# through (see _ProgressRateLimits)
PROGRESS_METHODS = frozenset({"chat.update", "chat.postMessage"})


class _ProgressRateLimits(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retries, less those of the progress itself: each sleeps its
    Retry-After (30 s or more, up to three times) inside the caller, which for progress is
    the import, standing still meanwhile. A duplicate progress reply's chat.delete (two
    posters raced) is still retried: skipped, the duplicate stayed in the thread for good."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:  # fmt: skip
        return api_method(request.url) not in PROGRESS_METHODS and await super()._can_retry_async(
            state=state, request=request, response=response, error=error)  # fmt: skip


def for_progress(client: AsyncWebClient) -> AsyncWebClient:
    """`client` (its session, token, URL and connection retries) for an import's progress:
    a rate limit on the progress's own calls is answered at once, not waited for."""
    return with_rate_limits(client, lambda handler: _ProgressRateLimits(
        handler.max_retry_count, handler.interval_calculator))


class SlackNotifier:
    """Implements bot.notify.ImportNotifier with chat.update and chat.postMessage."""

    def __init__(self, client: AsyncWebClient, db: Database, *, team_leads: Sequence[str],
                 undo_days: int = 7, lease_seconds: float = LEASE_SECONDS,
                 secret_key: str | None = None) -> None:  # fmt: skip
        self.client = client
        # progress only: a rate-limited update is skipped at once, not waited for (it is
        # only worth showing now, and the import waits while it is being sent)
        self.progress_client = for_progress(client)
        self.db = db
        self.team_leads = team_leads  # TEAM_LEADS: whose Home offers the lead-only buttons
        self.undo_days = undo_days  # UNDO_WINDOW_DAYS: whether Home offers *Undo*
        self.lease_seconds = lease_seconds  # JOB_LEASE_SECONDS: is an undo's runner alive?
        self.secret_key = secret_key  # SECRET_KEY: can Home read Mailchimp's credentials?
        self.enrollments = EnrollmentReports(client, db, lease_seconds=lease_seconds)

    # -- the ImportNotifier protocol: never raises for Slack's sake ----------------------------

    async def batch_changed(self, team_id: str, batch_id: int) -> None:
        await self._or_later(team_id, BATCH_CHANGED, batch_id=batch_id)

    async def source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        await self._or_later(team_id, SOURCE_READ, batch_id=batch_id, source_id=source_id)

    async def rejects_changed(self, team_id: str, batch_id: int, source_id: int) -> None:
        await self._or_later(team_id, REJECTS_CHANGED, batch_id=batch_id, source_id=source_id)

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        await self._or_later(team_id, IMPORT_FINISHED, batch_id=batch_id)

    async def import_progress(self, team_id: str, batch_id: int, done: int, total: int) -> None:
        """Progress is only worth showing now: during an outage it is skipped, not retried,
        and so is an update Slack rate-limits (no sleeping through its Retry-After while the
        import waits; the next tick shows newer progress anyway).

        The status is checked before the update is sent, and the import may end (done,
        failed, cancelled) while it is on its way: its result, shown meanwhile in the same
        reply, would be overwritten by this progress for good (*Undo import* gone). So once
        the update landed the import is read again and, if it ended, its result shown again
        (skipped in an outage, as progress is: the update it follows got through a moment
        before); a result shown after that read lands after this update anyway."""
        try:
            view = await load(self.db, team_id, batch_id, by_status=False)
            if view.batch.status not in UNDER_WAY:
                return  # finished meanwhile: its result is (being) shown, not this
            await self._progress(team_id, batch_id, progress_text(view.segment.name, done, total))
            if (await batch_of(self.db, team_id, batch_id)).status not in UNDER_WAY:
                # only the reply this update overwrote: the review message and Home were
                # redrawn by the result's own report
                await self._show_result(await load(self.db, team_id, batch_id, by_status=False))
        except Exception as exc:
            if refused := token_refused(exc):  # until the app is reinstalled: no news
                say_token_refused(log, self.client, refused,
                                  f"the progress of import {batch_id} (team={team_id})",
                                  again=logging.DEBUG)  # fmt: skip
                return
            if not (is_outage(exc) or isinstance(exc, SlackApiError)):
                raise
            log.warning("progress of import %s not shown: %s", batch_id, exc)

    async def enrollment_changed(self, team_id: str, enrollment_id: int) -> None:
        await self._or_later(team_id, ENROLLMENT_CHANGED, enrollment_id=enrollment_id)

    async def undo_finished(self, team_id: str, batch_id: int) -> None:
        await self._or_later(team_id, UNDO_FINISHED, batch_id=batch_id)

    async def undo_stopped(self, team_id: str, batch_id: int) -> None:
        await self._or_later(team_id, UNDO_STOPPED, batch_id=batch_id)

    async def deliver(self, team_id: str, event: str, ids: dict[str, int]) -> None:
        """Send one report now; an outage raises, so the report job tries again later."""
        batch_id = ids.get("batch_id", 0)
        steps: dict[str, Callable[[], Awaitable[None]]] = {
            BATCH_CHANGED: lambda: self._refresh(team_id, batch_id),
            SOURCE_READ: lambda: self._source_read(team_id, batch_id, ids.get("source_id", 0)),
            REJECTS_CHANGED: lambda: self._share_rejects(team_id, batch_id,
                                                         ids.get("source_id", 0)),
            IMPORT_FINISHED: lambda: self._finished(team_id, batch_id),
            ENROLLMENT_CHANGED: lambda: self.enrollments.report(team_id,
                                                                ids.get("enrollment_id", 0)),
            UNDO_FINISHED: lambda: self._undone(team_id, batch_id),
            UNDO_STOPPED: lambda: self._undo_stopped(team_id, batch_id),
        }  # fmt: skip
        try:
            await steps[event]()
        except SlackApiError as exc:
            if is_outage(exc):
                raise
            if refused := token_refused(exc):  # for good: no retry, no DM, and no Home either
                say_token_refused(log, self.client, refused,
                                  f"the {event} report {ids} (team={team_id})")  # fmt: skip
                return
            log.warning("Slack refused the %s report (%s): %s", event, ids,
                        slack_error(exc))  # fmt: skip
            if event in (IMPORT_FINISHED, UNDO_FINISHED) and (
                    slack_error(exc) in RESULT_NOT_POSTED):  # fmt: skip
                await self._result_by_dm(team_id, batch_id, event, slack_error(exc))
        if event in HOME_EVENTS:
            await refresh_homes(self.db, self.client, team_id, team_leads=self.team_leads,
                                undo_days=self.undo_days, lease_seconds=self.lease_seconds,
                                secret_key=self.secret_key)  # fmt: skip

    async def redraw_since(self, team_id: str, batch_id: int, drawn: BatchView) -> None:
        """The review message, just posted from `drawn`, redrawn if the import changed since:
        a file whose reading ended (read, or failed with why) while the message was on its
        way found no message to redraw, and it would say "Reading…" for good."""
        if _state(await load(self.db, team_id, batch_id)) != _state(drawn):
            await self.batch_changed(team_id, batch_id)

    async def share_pending_rejects(self, team_id: str, batch_id: int) -> None:
        """The skipped-rows CSV of every file read before the review message existed."""
        view = await load(self.db, team_id, batch_id)
        for source in view.sources:
            if source.status == SourceStatus.PARSED:
                await self._or_later(team_id, SOURCE_READ, batch_id=batch_id,
                                     source_id=source.id or 0)  # fmt: skip

    async def show_list_when_read(self, team_id: str, batch_id: int, source_id: int,
                                  view_id: str) -> None:  # fmt: skip
        """The *All sources* list `view_id`, under the Map columns that put the file back to
        be read: redrawn now (the file being read) and again when its reading ends, in
        whichever process reads it (_source_read), so it never shows the counts of before.
        Noted first: a reading that ended meanwhile is in this redraw, and not waited for."""
        key = f"{LIST_KEY}{source_id}:{view_id}"
        await first_time(self.db, team_id, key)
        try:
            being_read = await self._show_list(team_id, batch_id, source_id, view_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("All sources list %s of import %s not redrawn: %r", view_id, batch_id,
                        exc)  # fmt: skip
            return  # the redraw when the file is read still comes
        if not being_read:
            await forget(self.db, team_id, key)

    # -- the reports themselves ----------------------------------------------------------------

    async def _or_later(self, team_id: str, event: str, **ids: int) -> None:
        try:
            await self.deliver(team_id, event, ids)
        except Exception as exc:
            # PostUnderWay: another process is making one of the report's posts; if it
            # fails (or dies), the post is this report's to make
            if not (is_outage(exc) or isinstance(exc, PostUnderWay)):
                raise
            log.warning("the %s report (%s) can't be made now (%r): retrying later", event,
                        ids, exc)  # fmt: skip
            async with self.db.begin() as conn:
                await enqueue_report_job_in(conn, team_id, event, ids)

    async def _refresh(self, team_id: str, batch_id: int) -> None:
        """Redraw the review message; one someone deleted stays deleted (the thread's replies
        and files still follow).

        Two redraws (a file removed, a rejection) each read the import, then update the
        message; the one read first could land last and show a draft's buttons over the
        rejection for good. So after its update a redraw reads the import again, and draws
        again when it changed meanwhile (a few times at most)."""
        view = await load(self.db, team_id, batch_id)
        for _ in range(REDRAWS):
            if not (view.batch.channel_id and view.batch.message_ts):
                return
            previews = (await preview_batch(self.db, team_id, batch_id, view.segment.id or 0)
                        if view.batch.status == BatchStatus.DRAFT else [])  # fmt: skip
            text, blocks = review_message(view, previews, undo_days=self.undo_days)
            try:
                await self.client.chat_update(channel=view.batch.channel_id,
                                              ts=view.batch.message_ts, text=text,
                                              blocks=blocks)  # fmt: skip
            except SlackApiError as exc:
                if not message_gone(exc):
                    raise
                log.info("review message of import %s was deleted: not redrawn", batch_id)
                return
            drawn, view = _state(view), await load(self.db, team_id, batch_id)
            if _state(view) == drawn:
                return

    async def _source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        """Refresh, and share the skipped rows of the file's reading in the thread."""
        await self._refresh(team_id, batch_id)
        await self._lists_read(team_id, batch_id, source_id)
        await self._share_rejects(team_id, batch_id, source_id)

    async def _lists_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        """Redraw the *All sources* lists waiting for this file's reading (a list closed
        meanwhile: so be it); each is forgotten once redrawn, so a retried report redraws
        only those an outage missed."""
        for key in await keys_under(self.db, team_id, f"{LIST_KEY}{source_id}:"):
            await self._show_list(team_id, batch_id, source_id, key.rpartition(":")[2])
            await forget(self.db, team_id, key)

    async def _show_list(self, team_id: str, batch_id: int, source_id: int,
                         view_id: str) -> bool:  # fmt: skip
        """The *All sources* list at the page holding the file; True while it is being read."""
        view = await load(self.db, team_id, batch_id)
        await update_modal(self.client, view_id,
                           sources_modal(view, source_offset(view, source_id)))  # fmt: skip
        return any(s.id == source_id and s.status == SourceStatus.PENDING for s in view.sources)

    async def _share_rejects(self, team_id: str, batch_id: int, source_id: int) -> None:
        """Offer the skipped rows of the file's reading in the thread, once per reading (a
        retried report, a reading job run again: offered already). A file read again whose
        rows are all fine now says its earlier CSV no longer applies."""
        view = await load(self.db, team_id, batch_id)
        batch = view.batch
        source = next((s for s in view.sources if s.id == source_id), None)
        if source is None or source.status != SourceStatus.PARSED or not batch.message_ts:
            return  # without a review message yet, posting it shares what is pending
        counts = view.counts_of(source)
        if not (counts.rejected or counts.duplicates):
            await self._none_skipped(team_id, batch.channel_id or "", batch.message_ts,
                                     source_id, told_apart(source, view.sources))  # fmt: skip
            return

        async def still_read() -> bool:
            # put back to be read since it was loaded: that reading shares its own CSV
            return (await get_source(self.db, team_id, source_id)).status == SourceStatus.PARSED

        async def share() -> None:
            # the offer, not the CSV: a file in the thread is anyone's in the channel (a
            # guest's, another organisation's); *Send me the CSV* sends it to a member's DM
            text, blocks = skipped_rows_offer(told_apart(source, view.sources), counts,
                                              batch_id, source_id)  # fmt: skip
            await self.client.chat_postMessage(channel=batch.channel_id,
                                               thread_ts=batch.message_ts, text=text,
                                               blocks=blocks)  # fmt: skip

        await self._post_once(team_id, rejects_key(source_id), share, due=still_read)

    async def _none_skipped(self, team_id: str, channel: str, thread_ts: str, source_id: int,
                            label: str) -> None:  # fmt: skip
        """The thread's skipped-rows CSV of the file came from an earlier reading: say, once,
        that it no longer applies."""
        if not await take_earlier_rejects(self.db, team_id, source_id):
            return
        try:
            await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                               text=none_skipped_now(label))  # fmt: skip
        except BaseException:
            await first_time(self.db, team_id, earlier_rejects_key(source_id))  # told next time
            raise

    async def _show_result(self, view: BatchView) -> None:
        """The import's result in its thread's reply, in place of its progress."""
        batch = view.batch
        result = result_text(batch, view.segment.name)
        # no Undo button where imports can't be undone (UNDO_WINDOW_DAYS=0): it only ever
        # opened "Imports can't be undone here"
        blocks = (result_blocks(result, batch.id or 0) if undoable(batch) and self.undo_days > 0
                  else undone_result_blocks(result, batch)
                  if batch.status == BatchStatus.UNDONE else None)  # fmt: skip
        await self._progress(batch.team_id, batch.id or 0, result, blocks=blocks, final=True)

    async def _finished(self, team_id: str, batch_id: int) -> None:
        view = await load(self.db, team_id, batch_id)
        batch = view.batch
        await self._refresh(team_id, batch_id)
        await self._show_result(view)
        if not batch.channel_id or not batch.message_ts or batch.status != BatchStatus.DONE:
            return

        async def offer() -> None:
            campaigns = await campaigns_by_name(self.db, team_id)
            text, blocks = target_offer(view.segment.name, batch_id, campaigns)
            await self.client.chat_postMessage(
                channel=batch.channel_id, thread_ts=batch.message_ts, text=text, blocks=blocks
            )

        await self._post_once(team_id, f"next-step:{batch_id}", offer)

    async def _undone(self, team_id: str, batch_id: int) -> None:
        """The undo's result in the import's thread (once), its result reply without the
        Undo button, the review message refreshed; with no thread, a DM to who asked."""
        view = await load(self.db, team_id, batch_id)
        batch = view.batch
        await self._refresh(team_id, batch_id)
        if batch.status != BatchStatus.UNDONE:
            return
        if batch.channel_id and batch.message_ts:
            # the thread's enrollment reports: the undo cancelled their invites or removed
            # their advocates, and they still offered Cancel invites on invites held no more
            for enrollment in await enrollments_in_thread(self.db, team_id, batch.channel_id,
                                                          batch.message_ts):  # fmt: skip
                await self.enrollments.report(team_id, enrollment)
        text = undone_text(batch, view.segment.name,
                           kept=await kept_unsubscribed(self.db, team_id, batch_id))
        if batch.channel_id and batch.message_ts:
            if batch.progress_ts:  # the result reply, without its Undo button
                result = result_text(batch, view.segment.name)
                await self._progress(team_id, batch_id, result,
                                     blocks=undone_result_blocks(result, batch), final=True)
            channel, thread = batch.channel_id, batch.message_ts
        elif batch.undone_by and batch.undone_by != "cli":  # an import from the shell
            channel, thread = "", None
        else:
            return

        async def tell() -> None:
            if channel:
                await self.client.chat_postMessage(channel=channel, thread_ts=thread, text=text)
            else:
                await self._dm(batch.undone_by or "", text)

        await self._post_once(team_id, f"undo-result:{batch_id}", tell)

    async def _undo_stopped(self, team_id: str, batch_id: int) -> None:
        """The undo's job gave up with the import half undone: in the import's thread (or a
        DM to who asked, for an import from the shell), once, with how to finish it."""
        view = await load(self.db, team_id, batch_id)
        batch = view.batch
        await self._refresh(team_id, batch_id)
        if batch.status != BatchStatus.UNDOING:
            return  # finished since, or never started
        job = await find_by_key(self.db, team_id, undo_key(batch_id))  # why it stopped
        why = ("its job was cancelled: `referral-bot jobs cancel`"
               if job is not None and job.state == JobState.CANCELLED
               else "its job ran out of attempts: `referral-bot jobs` says why")  # fmt: skip
        in_thread = bool(batch.channel_id and batch.message_ts)

        def text(where: str) -> str:
            return (f":warning: Undoing import #{batch_id} into *{esc(view.segment.name)}* "
                    f"stopped part way ({why}). What it took out so far stays out. {where} to "
                    f"finish it, or run `referral-bot undo {batch_id}`.")  # fmt: skip

        # an import from the shell has no result reply in a thread: its row on Home has *Undo*
        on_home = "Click *Undo* on its row in my Home tab"
        asker = batch.undone_by if batch.undone_by and is_user_id(batch.undone_by) else None

        async def tell() -> None:
            if in_thread:
                try:
                    await self.client.chat_postMessage(
                        channel=batch.channel_id, thread_ts=batch.message_ts,
                        text=text("Click *Undo import* on its result again"))  # fmt: skip
                    return
                except SlackApiError as exc:  # told by DM, as an undo's result is then
                    if slack_error(exc) not in RESULT_NOT_POSTED or asker is None:
                        raise
                    log.warning("undo of import %s stopped, not said in its thread (%s): by DM",
                                batch_id, slack_error(exc))  # fmt: skip
                    await self._dm(asker, f"{text(on_home)}\n({_not_there(slack_error(exc))}, "
                                          "so I'm telling you here.)")  # fmt: skip
                    return
            if asker is not None:
                await self._dm(asker, text(on_home))

        await self._post_once(team_id, f"undo-stopped:{batch_id}", tell)

    async def _post_once(self, team_id: str, key: str, post: Callable[[], Awaitable[object]],
                         due: Callable[[], Awaitable[bool]] | None = None) -> None:  # fmt: skip
        """bot.once.post_once, a dead poster's key taken over by the run of its job after
        the job's lease lapsed (see posting_stale)."""
        await post_once(self.db, team_id, key, post, due=due,
                        stale_after=posting_stale(self.lease_seconds))  # fmt: skip

    async def _dm(self, user_id: str, text: str) -> None:
        """A direct message (handlers.respond.dm; notify can't import it: respond imports the
        context, which imports this)."""
        opened = await self.client.conversations_open(users=user_id)
        await self.client.chat_postMessage(channel=opened["channel"]["id"], text=text)

    async def _result_by_dm(self, team_id: str, batch_id: int, event: str,
                            refused: str) -> None:  # fmt: skip
        """The import's channel is archived, the bot left it, or its review message was
        deleted (`refused`: Slack's error): whoever asked (for the import, or for its undo)
        gets the result by direct message, once. Dropped, the result was lost, though the
        thread had promised it."""
        view = await load(self.db, team_id, batch_id)
        batch = view.batch
        undone = event == UNDO_FINISHED
        who = batch.undone_by if undone else batch.requested_by
        if not who or not is_user_id(who):  # the command line: it printed the result
            return
        text = (undone_text(batch, view.segment.name,
                            kept=await kept_unsubscribed(self.db, team_id, batch_id))
                if undone else result_text(batch, view.segment.name))  # fmt: skip
        await self._post_once(team_id, f"result-dm:{event}:{batch_id}", lambda: self._dm(
            who, f"{text}\n({_not_there(refused)}, so I'm telling you here.)"))  # fmt: skip

    async def _progress(self, team_id: str, batch_id: int, text: str,
                        blocks: list[Block] | None = None,
                        final: bool = False) -> None:  # fmt: skip
        """One reply in the thread, posted once and then updated in place. `final`: the
        result, which replaces whatever progress another poster's reply shows, and must get
        through (rate limits are waited for); progress is skipped when rate-limited. The
        batch alone is read (where to post): this runs every tick of a long import."""
        batch = await batch_of(self.db, team_id, batch_id)
        if not batch.channel_id or not batch.message_ts:
            return

        async def keep(ts: str) -> str:
            return await claim_progress(self.db, team_id, batch_id, ts)

        async def drop(ts: str) -> None:
            await forget_progress(self.db, team_id, batch_id, ts)

        client = self.client if final else self.progress_client
        await show_reply(client, channel=batch.channel_id, thread_ts=batch.message_ts,
                         shown=batch.progress_ts, text=text, blocks=blocks, keep=keep,
                         drop=drop, replace_kept=final)  # fmt: skip

