"""Reports within chat.update's budget (Tier 3, about 50 a minute per channel): a ZIP's many
CSVs redraw the review message once, and a progress update Slack rate-limits is skipped
instead of holding the import for its Retry-After."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile

from handlers.ids import Action
from models import BatchStatus
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_import_flow import _count, _form, _open_modal, _review
from tests.handlers.test_notify import _both_post, unrecorded_progress

CSVS = 50  # the most a ZIP may hold
PROGRESS = ":arrows_counterclockwise: Importing into"


def _zip_of_csvs(n: int) -> bytes:
    """`n` CSVs, each with one valid row and one duplicate of it (a skipped-rows CSV each)."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        for i in range(n):
            archive.writestr(f"shop{i}.csv", f"email\nc{i}@example.com\nc{i}@example.com\n")
    return packed.getvalue()


def _csv(rows: int) -> bytes:
    return ("email\n" + "".join(f"c{i}@example.com\n" for i in range(rows))).encode()


async def _submitted(app: Harness, name: str, content: bytes, **kinds: str) -> dict:
    """A rep imports one file into VIP through the form, read: its review message."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", name, content, **kinds)
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    return await _review(app)


async def _approved(app: Harness, rows: int) -> tuple[dict, int]:
    """A review of `rows` contacts, approved by the lead: the import job queued, not run
    (the harness imports 100 rows a chunk, reporting progress after each)."""
    message = await _submitted(app, "big.csv", _csv(rows))
    batch = message["blocks"][-1]["elements"][2]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.later.drain()
    return message, int(batch)


def _progress_updates(app: Harness) -> list[str]:
    """The progress texts sent to the thread's reply (rate-limited ones too)."""
    return [c.args["text"] for c in app.slack.calls_to("chat.update")
            if str(c.args.get("text", "")).startswith(PROGRESS)]  # fmt: skip


async def test_a_zip_of_fifty_csvs_redraws_its_review_message_once(app: Harness) -> None:
    """Each CSV read redrew the review message with the same content: 50 chat.updates of
    one message within seconds, past Slack's budget, so the review lagged by minutes while
    the rate-limit retries slept in the reading job. Each CSV's skipped rows are still shared."""
    message = await _submitted(app, "shops.zip", _zip_of_csvs(CSVS), filetype="zip",
                               mimetype="application/zip")  # fmt: skip
    redraws = [c for c in app.slack.calls_to("chat.update") if c.args.get("ts") == message["ts"]]
    assert len(redraws) == 1, len(redraws)
    shown = json.dumps(message["blocks"], ensure_ascii=False)
    assert "Reading" not in shown, shown
    assert "*Total:* 100 rows · *50 to import* · 50 duplicates · 0 rejected" in shown, shown
    skipped = sorted(u.title or "" for u in await app.csvs_sent(message["ts"]))
    assert skipped == sorted(f"shops.zip › shop{i}.csv: rows that won't be imported, and why"
                             for i in range(CSVS)), skipped  # fmt: skip


async def test_a_rate_limited_progress_update_is_skipped_not_waited_for(app: Harness) -> None:
    """A 429 on the import's progress update was retried inline, after sleeping its
    Retry-After each time (three times): the import stood still meanwhile (30 s a try in
    production). Progress is skipped instead; the result, which must arrive, still does."""
    message, batch = await _approved(app, 350)
    assert not _progress_updates(app)  # the approving click posted the reply: no update yet
    app.slack.rate_limit("chat.update", times=1, retry_after=5)
    started = time.monotonic()
    worker = asyncio.create_task(app.worker.run_until_idle())
    while await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch} "
                            "AND status = 'done'") == 0:  # fmt: skip
        assert time.monotonic() - started < 30, "the import never finished"
        await asyncio.sleep(0.01)
    took = time.monotonic() - started
    await worker
    assert took < 2.5, f"the import took {took:.2f} s: it waited for the Retry-After"
    tried = [c.rate_limited for c in app.slack.calls_to("chat.update")
             if str(c.args.get("text", "")).startswith(PROGRESS)]  # fmt: skip
    assert tried == [True], tried  # skipped, not tried again
    await app.settle()
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("Imported into *VIP*" in t and "350 new contacts" in t for t in thread), thread
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 350
    assert (await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch} "
                              f"AND status = '{BatchStatus.DONE}'")) == 1  # fmt: skip


async def test_progress_is_sent_at_most_every_few_seconds(app: Harness) -> None:
    """A progress tick every second, each a chat.update of the same reply, is at or above
    chat.update's budget (about 50 a minute for all of the bot's updates in a workspace).
    With Slack taking 1.2 s to answer each update, every chunk of this import
    came a second after the last progress and sent another."""
    message, _ = await _approved(app, 350)
    before = len(_progress_updates(app))

    async def slow_updates() -> None:
        while True:
            gate = app.slack.hold("chat.update")
            await app.slack.wait_for("chat.update", count=len(app.slack.calls_to(
                "chat.update")) + 1, timeout=60)  # fmt: skip
            await asyncio.sleep(1.2)
            gate.set()  # and the next update is held by the next gate

    slow = asyncio.create_task(slow_updates())
    try:
        await app.worker.run_until_idle()
    finally:
        slow.cancel()
        app.slack.unhold("chat.update")
    sent = _progress_updates(app)[before:]
    assert len(sent) == 1, sent
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("Imported into *VIP*" in t for t in thread), thread


async def test_a_duplicate_progress_reply_is_still_deleted_when_rate_limited(
    app: Harness,
) -> None:
    """Two progress updates raced to post the thread's reply: the loser deletes its own. Its
    chat.delete is not progress: a rate limit on it is waited for, or the duplicate reply
    would stay in the thread for good."""
    message, batch_id, notifier = await unrecorded_progress(app)
    app.slack.rate_limit("chat.delete", times=1, retry_after=0)
    first = asyncio.create_task(notifier.import_progress("T0001", batch_id, 1, 2))
    await _both_post(app, first, notifier.import_progress("T0001", batch_id, 1, 2))
    replies = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])
               if m["text"].startswith(PROGRESS)]  # fmt: skip
    assert len(replies) == 1, replies
    assert [c.rate_limited for c in app.slack.calls_to("chat.delete")][-2:] == [True, False]
