"""CSVs uploaded to a channel the bot is in: offer, once per file, to import them.

`file_shared` (ids only) plus `files.info` (where it was shared, and the message's ts) is all
this needs, so the app asks for no channel history scopes and no `message.*` events.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import digits
from bot.imports import review
from bot.imports.background import FileRejected
from bot.imports.batches import create_upload_batch, review_post_key
from bot.imports.upload_offers import UploadOfferer, queue_upload_offer
from bot.jobs.worker import PermanentJobError
from bot.once import first_time, forget_in, hold, post_once, posting_stale, taken
from bot.segments import withdraw_segment
from bot.settings import Settings
from bot.workspaces import WorkspaceError, create_segment, ensure_workspace, find_segment
from handlers.context import Deps, Refusal, deps, is_lead, require_member, team_of
from handlers.ids import Action, BlockId
from handlers.import_modal import import_segment, post_review
from handlers.messages import NEW_SEGMENT_VALUE, esc, plain, upload_offer
from handlers.notify import is_outage
from handlers.people import is_direct_message
from handlers.routes import Routes
from handlers.slack_errors import slack_error
from handlers.slack_files import SlackFile, check_csv, describe, upload_limit
from handlers.thread_reply import message_gone
from models import BatchStatus, Database, ImportBatch, Segment

log = logging.getLogger(__name__)
# A review is posted within seconds of its click; one still unposted this long after belongs
# to a process that died posting it (or whose database went away before it was sent), and
# the next click posts it: unless it was sent to Slack (review_sent_key), and is only
# unrecorded (the database away when it was posted).
POSTING_GIVEN_UP = timedelta(minutes=2)


async def _offer(client: AsyncWebClient, db: Database, team_id: str, channel: str,
                 thread_ts: str, file: SlackFile, settings: Settings) -> None:  # fmt: skip
    """Offer the file once (shared again in another channel, it isn't offered again): a job
    retried after its post went out must not post it again, and one whose worker died while
    posting it (run again once its lease lapsed) posts it."""
    if not file.looks_like_csv:
        return
    try:
        check_csv(file, upload_limit(settings))
    except FileRejected as exc:  # the import would refuse it: say why now, not after a review
        text = esc(str(exc))
        blocks = plain(f":warning: I can't import this file: {text}")
    else:
        text, blocks = upload_offer(file_id=file.id, file_name=file.name)
    await post_once(db, team_id, f"offer:{file.id}", lambda: client.chat_postMessage(
        channel=channel, thread_ts=thread_ts, text=text, blocks=blocks),
        stale_after=posting_stale(settings.job_lease_seconds))  # fmt: skip


async def file_shared(ack: Any, event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Queue the offer (bot/imports/upload_offers.py) before the answer goes out (listeners
    finish first): Slack never sends an answered event again, so work left to after it would
    be lost to a restart. After the answer this process runs the job itself. On SQLite the
    write may wait seconds for an import's apply, past Slack's 3 s: Slack then sends the
    event again, whose job is the same one."""
    await ack()
    d = deps(context)
    team_id = team_of(body)
    channel = str(event.get("channel_id") or "")
    file_id = str(event.get("file_id") or "")
    if not file_id:  # no file to look at: a KeyError logged as a listener failure before
        log.info("a file_shared event without a file_id (team=%s channel=%s): ignored",
                 team_id, channel)  # fmt: skip
        return
    # the job's row names its workspace, which a first event may be the first to see
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    key = await queue_upload_offer(d.db, team_id, channel, file_id)
    # made at once here, not after an import a worker may be running; nothing to run when a
    # worker took it first, or when it was made already (an event Slack sent again)
    d.later.run(_offer_now(d, team_id, key), client, _context(team_id, event))


async def _offer_now(d: Deps, team_id: str, key: str) -> None:
    await d.jobs_here.run_by_key(team_id, key)


def _context(team_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """The offer's workspace, channel and file, for a failure's log line: there is no one to
    tell (nobody clicked), and without them it said only "listener failed ( ref=…)"."""
    return {"team_id": team_id, "channel_id": str(event.get("channel_id") or ""),
            "event": {"type": "file_shared", "file_id": str(event.get("file_id") or "")}}


def upload_offerer(db: Database, client: AsyncWebClient, settings: Settings) -> UploadOfferer:
    """The offers' Slack side, for a worker's `upload_offer` jobs. Slack refusing for good
    (the bot not in the channel) would refuse again: the job fails at once, its log line
    naming the workspace, channel and file. Any other failure (Slack unreachable or 5xx, the
    database down or busy, another process making the offer now: PostUnderWay) is the job's
    to retry, logged with its traceback."""

    async def offer(team_id: str, channel: str, file_id: str) -> None:
        try:
            await _offer_shared(client, db, team_id, channel, file_id, settings)
        except SlackApiError as exc:
            if is_outage(exc):
                raise
            raise PermanentJobError(f"upload offer not made (team={team_id} channel={channel} "
                                    f"file={file_id}): {exc!r}") from exc  # fmt: skip

    return offer


def _shared_in(info: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    """The file's posts in `channel` (files.info's `shares`); none: not shared there."""
    shares = info.get("shares") or {}
    if not channel:
        return []
    return list((shares.get("public") or {}).get(channel)
                or (shares.get("private") or {}).get(channel) or [])  # fmt: skip


async def _offer_shared(client: AsyncWebClient, db: Database, team_id: str, channel: str,
                        file_id: str, settings: Settings) -> None:  # fmt: skip
    try:
        info = (await client.files_info(file=file_id))["file"]
    except SlackApiError as exc:
        if slack_error(exc) not in ("file_not_found", "file_deleted"):
            raise
        log.info("file gone before the offer (team=%s channel=%s file=%s): not offered",
                 team_id, channel, file_id)  # fmt: skip
        return
    posts = _shared_in(info, channel)
    if not posts:
        return  # shared somewhere the bot can't reply (or a modal upload)
    # a share inside a thread carries the thread's ts: the offer goes there, not under the
    # reply itself (Slack asks for a parent's ts as thread_ts)
    thread_ts = posts[0].get("thread_ts") or posts[0]["ts"]
    await _offer(client, db, team_id, channel, thread_ts, describe(info), settings)


async def review_upload(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                        context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    d.later.run(_review_upload(d, client, body), client, body)


async def _review_upload(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id = team_of(body), body["user"]["id"]
    await require_member(client, team_id, user_id)
    state = (body.get("state") or {}).get("values") or {}
    selected = ((state.get(BlockId.UPLOAD) or {}).get(Action.UPLOAD_SEGMENT) or {}).get(
        "selected_option"
    )
    value = str((selected or {}).get("value") or "")
    segment_id = digits(value)
    if segment_id is None and not value.startswith(NEW_SEGMENT_VALUE):
        raise Refusal("Choose a segment first (or type a new one's name), then press Review "
                      "import.")  # fmt: skip
    file_id = str(body["actions"][0].get("value") or "")
    where = body.get("channel") or {}
    channel = str(where.get("id") or "")
    if (is_direct_message(channel, str(where.get("name") or ""))
            and not await is_lead(d, client, team_id, user_id)):  # fmt: skip
        # its review would be posted in this conversation (a group DM too), which no lead sees
        raise Refusal("Only team leads approve imports, and none sees this conversation: "
                      "share the file in a channel where one will, and review it there.")
    info = await _importable(client, d, file_id, channel)  # before any segment is made
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    segment, made = await _chosen_segment(d, team_id, user_id, value, segment_id)
    try:
        batch_id = await _claim_review(d, team_id, user_id, segment.id or 0, file_id, info)
    except Exception:
        if made:  # made for this review, which was refused: not left empty in every menu
            await withdraw_segment(d.db, team_id, segment.id or 0, user_id)
        raise
    sending = _Sending(d.db, team_id, batch_id)
    try:
        await post_review(client, d, team_id, batch_id, channel, user_id,
                          before_post=sending.take_sent_key)  # fmt: skip
    except BaseException:
        if not sending.refused:
            await _not_posted(d.db, team_id, batch_id, sent=sending.took)  # the next posts
        elif made:  # refused, as by _claim_review: the keys are the click's that posts it
            await withdraw_segment(d.db, team_id, segment.id or 0, user_id)
        raise
    try:  # the offer says the review is under way: a courtesy, the review is posted
        await client.chat_update(channel=channel, ts=body["container"]["message_ts"],
                                 text="Review posted", blocks=plain(
                                     f":white_check_mark: <@{user_id}> started a review for "
                                     f"*{esc(segment.name)}*."))  # fmt: skip
    except SlackApiError as exc:
        # the offer deleted, the bot removed from the channel (its review went to the DM):
        # "Something went wrong" over a review that was posted only misled
        why = "was deleted" if message_gone(exc) else f"refused ({slack_error(exc)})"
        log.info("the upload offer of import %s %s: not updated", batch_id, why)


async def _chosen_segment(d: Deps, team_id: str, user_id: str, value: str,
                          segment_id: int | None) -> tuple[Segment, bool]:  # fmt: skip
    """The offer's segment to import into, and whether this click made it: "New segment “…”"
    is made now, or is the one made meanwhile (by another click, which may still need it)."""
    made = False
    if segment_id is None:
        name = value.removeprefix(NEW_SEGMENT_VALUE)
        try:
            found = await find_segment(d.db, team_id, name)
            if found is None:
                found, made = await create_segment(d.db, team_id, name, actor=user_id), True
        except WorkspaceError as exc:  # it may quote the name as typed: mrkdwn-escaped
            raise Refusal(esc(str(exc))) from None
        segment_id = found.id or 0
    return await import_segment(d.db, team_id, segment_id), made


def review_sent_key(batch_id: int) -> str:
    """Taken just before an upload's review is sent to Slack (publish_review's before_post:
    the review drawn, its import read), and let go only with the key of posting it
    (review_post_key) when the post failed: a review sent stays known as sent when the
    database, away as it was posted, couldn't record where it went. Taken before reading
    the import, a database away from those reads (and so from letting the keys go) left a
    review never sent known as sent: every click was told it was posted, and none posted
    it."""
    return f"review-sent:{batch_id}"


class _Sending:
    """One click's review on its way: the sent key taken just before its post (once: the
    DM's post, after the channel refused, is the same review's)."""

    def __init__(self, db: Database, team_id: str, batch_id: int) -> None:
        self.db, self.team_id, self.batch_id = db, team_id, batch_id
        self.took = False  # the sent key is this click's: taken
        self.refused = False  # another click's review took it: posted, or being posted

    async def take_sent_key(self) -> None:
        """Take the sent key, or refuse: another click's review has it. Only a key this
        click took is its to let go (`took`): its write failing (the database away) may
        have met another click's key, taken by a click that took this one's review for dead
        and sent it, whose keys are not this click's to delete (the next click would post a
        second review). A write whose error hid its commit leaves the key taken, as if the
        review were sent: the next click is refused with _unrecorded's words."""
        if await first_time(self.db, self.team_id, review_sent_key(self.batch_id)):
            self.took = True
            return
        self.refused = True
        earlier = await review.batch_of(self.db, self.team_id, self.batch_id)
        raise Refusal(f"This file already has a review, started by <@{earlier.requested_by}>: "
                      f"import #{self.batch_id} (being posted).")  # fmt: skip


async def _not_posted(db: Database, team_id: str, batch_id: int, *, sent: bool) -> None:
    """The review wasn't posted: its posting key goes, and its sent key if the click took it
    (`sent`), in one transaction, so the next click posts it. A sent key the click never
    took stays (nor did it take it when its write of the key failed): a click taken for dead
    (POSTING_GIVEN_UP) that was only slow may meet its failure after the click that took
    over sent its review."""
    async with db.begin() as conn:
        await forget_in(conn, team_id, review_post_key(batch_id))
        if sent:
            await forget_in(conn, team_id, review_sent_key(batch_id))


async def _claim_review(d: Deps, team_id: str, user_id: str, segment_id: int, file_id: str,
                        info: SlackFile) -> int:  # fmt: skip
    """The file's import, whose review this click posts; refused when another click's review
    of it is posted or being posted. One review message per batch: a double click (or two
    people) would post two, and the second click's segment must not replace the first's
    while its review is being posted.

    A review still unposted long after its click (POSTING_GIVEN_UP) is posted by this one:
    that process died before sending it (a restart), or the database went away before it
    was sent (and so couldn't let the posting key go), and the file said "being posted" for
    good. Not one that was sent (review_sent_key) whose record failed (the database away a
    while, record_review): unrecorded, it looked the same, and a click posted a second live
    review of the import. Its first click records it (handlers/review.py); this one is
    told so and posts nothing. The sent key is taken last, just before the post
    (publish_review's before_post, _Sending), by the click that posts: of a click taken for
    dead that was only slow and the one that took over, the first to get there sends its
    review and the other then refuses; exactly one of them posts."""
    batch_id, posting_here = await create_upload_batch(
        d.db, team_id, segment_id, user_id, file_id=file_id, label=info.name
    )
    sent = review_sent_key(batch_id)
    if not posting_here:
        earlier = await review.batch_of(d.db, team_id, batch_id)
        posting = review_post_key(batch_id)
        if not earlier.message_ts and await taken(d.db, team_id, sent):
            if not await taken(d.db, team_id, posting, within=POSTING_GIVEN_UP):
                raise Refusal(_unrecorded(earlier, batch_id))
        elif not earlier.message_ts and await hold(d.db, team_id, posting,
                                                   stale_after=POSTING_GIVEN_UP):  # fmt: skip
            posting_here = True
        if not posting_here:
            where = f" in <#{earlier.channel_id}>" if earlier.message_ts else " (being posted)"
            raise Refusal(f"This file already has a review, started by "
                          f"<@{earlier.requested_by}>: import #{batch_id}{where}.")  # fmt: skip
    return batch_id


def _unrecorded(earlier: ImportBatch, batch_id: int) -> str:
    """A review sent to Slack long ago whose message the import has no record of: posted
    while the database was away, or (rarely) its process died while Slack took it, or Slack
    failed it while the database was away, or the write of its sent key failed after it
    committed (not posted: "if it isn't there")."""
    state = ("" if earlier.status == BatchStatus.DRAFT
             else f" The import is {review.describe_status(earlier)}.")  # fmt: skip
    return (f"This file already has a review, started by <@{earlier.requested_by}>: import "
            f"#{batch_id}, posted here (or in their DM with me, if I couldn't post here) "
            "while the bot's database was unavailable, so where it is wasn't recorded. Its "
            "buttons work, and the first click on one records it. If it isn't there, upload "
            f"the file again to import it.{state}")


async def _importable(client: AsyncWebClient, d: Deps, file_id: str, channel: str
                      ) -> SlackFile:  # fmt: skip
    """The file to review, refused as the import would refuse it (gone, not shared here, too
    big, stored outside Slack) before a segment or a batch is made: found after them, it left
    a new segment and a review that could never be imported."""
    try:
        raw = (await client.files_info(file=file_id))["file"]
    except SlackApiError as exc:
        if slack_error(exc) not in ("file_not_found", "file_deleted", "access_denied"):
            raise
        raise Refusal("That file was deleted, or I can't see it any more.") from None
    if not _shared_in(raw, channel):  # the bot sees more files than this channel does
        raise Refusal("That file isn't shared in this channel: share it here to import it.")
    info = describe(raw)
    try:
        check_csv(info, upload_limit(d.settings))
    except FileRejected as exc:
        raise Refusal(esc(str(exc))) from None
    return info


def register(app: Routes) -> None:
    app.event("file_shared")(file_shared)
    app.event("message")(_noop)  # apps installed from an older manifest still get these
    app.action(Action.UPLOAD_REVIEW)(review_upload)
    app.action(Action.UPLOAD_SEGMENT)(_noop)


async def _noop(ack: Any) -> None:
    await ack()  # choosing a segment in the offer does nothing until Review import
