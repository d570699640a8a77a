"""The thread's one progress reply and one enrollment report, when two posters race: the
approving click and the worker (or a report job) may each post before either has recorded
its reply. Slack's chat.postMessage is held until both have posted, so the race happens."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from bot.app import slack_client
from bot.imports import review
from bot.jobs.worker import Worker, WorkerConfig
from bot.notify import REPORT_JOB
from handlers.ids import Action
from handlers.notify import SlackNotifier
from models import BatchStatus
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_cancel_and_outages import ROWS, _approved
from tests.handlers.test_import_flow import _count, _form, _open_modal, _review
from tests.handlers.test_targeting import _campaign, _imported, _report, _target

TEAM = "T0001"


async def _both_post(app: Harness, first: asyncio.Task, second_of: object) -> None:
    """Run `first` until it posts, then the second until it posts too, then let Slack answer."""
    gate = app.slack.hold("chat.postMessage")
    await app.slack.wait_for("chat.postMessage", count=len(app.slack.calls_to(
        "chat.postMessage")) + 1)  # fmt: skip
    second = asyncio.create_task(second_of)  # type: ignore[arg-type]
    await app.slack.wait_for("chat.postMessage", count=len(app.slack.calls_to(
        "chat.postMessage")) + 1)  # fmt: skip
    gate.set()
    await asyncio.gather(first, second)


async def unrecorded_progress(app: Harness) -> tuple[dict[str, Any], int, SlackNotifier]:
    """An import still importing whose progress reply isn't recorded (nor in the thread): the
    review message, the batch's id and a notifier to post it with, as two posters racing."""
    message = await _imported(app)
    async with app.db.begin() as conn:
        batch = (await conn.execute(text("SELECT id, progress_ts FROM import_batch"))).one()
        await conn.execute(text("UPDATE import_batch SET progress_ts = NULL, "
                                "status = 'importing'"))  # fmt: skip
    client = slack_client(app.settings)
    await client.chat_delete(channel="C0001", ts=batch.progress_ts)
    return message, batch.id, SlackNotifier(client, app.db, team_leads=app.settings.team_leads)


async def test_a_result_and_a_progress_posted_at_once_leave_one_reply_saying_the_result(
    app: Harness,
) -> None:
    message, batch_id, notifier = await unrecorded_progress(app)
    progress = asyncio.create_task(notifier.import_progress(TEAM, batch_id, 1, 2))
    await _both_post(app, progress, notifier._progress(TEAM, batch_id, "the result",
                                                       final=True))  # fmt: skip
    replies = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])
               if "Importing into" in m["text"] or m["text"] == "the result"]  # fmt: skip
    assert replies == ["the result"]


async def test_two_enrollment_reports_posted_at_once_leave_one(app: Harness) -> None:
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _target(app, message, spring.id or 0)
    report = _report(app, message)
    async with app.db.begin() as conn:  # as if the report weren't recorded yet
        enrollment = (await conn.execute(text("SELECT id FROM enrollment"))).scalar_one()
        await conn.execute(text("UPDATE enrollment SET report_ts = NULL"))
    client = slack_client(app.settings)
    await client.chat_delete(channel="C0001", ts=report["ts"])
    reports = SlackNotifier(client, app.db, team_leads=app.settings.team_leads).enrollments
    first = asyncio.create_task(reports.report(TEAM, enrollment))
    await _both_post(app, first, reports.report(TEAM, enrollment))
    thread = app.slack.messages_in("C0001", message["ts"])
    assert sum("new advocate" in str(m.get("blocks")) for m in thread) == 1


async def test_a_deleted_progress_reply_or_report_is_posted_again(app: Harness) -> None:
    """Someone deleted the thread's progress reply and the enrollment report: the result and
    the next report come back as new replies instead of failing on every update."""
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _target(app, message, spring.id or 0)
    report = _report(app, message)
    client = slack_client(app.settings)
    async with app.db.begin() as conn:
        batch = (await conn.execute(text("SELECT id, progress_ts FROM import_batch"))).one()
        enrollment = (await conn.execute(text("SELECT id FROM enrollment"))).scalar_one()
    await client.chat_delete(channel="C0001", ts=batch.progress_ts)
    await client.chat_delete(channel="C0001", ts=report["ts"])
    notifier = SlackNotifier(client, app.db, team_leads=app.settings.team_leads)
    await notifier.deliver(TEAM, "import_finished", {"batch_id": batch.id})
    await notifier.enrollments.report(TEAM, enrollment)
    thread = app.slack.messages_in("C0001", message["ts"])
    assert sum("Imported into *VIP*" in m["text"] for m in thread) == 1
    assert sum("new advocate" in str(m.get("blocks")) for m in thread) == 1
    async with app.db.begin() as conn:
        kept = (await conn.execute(text("SELECT progress_ts FROM import_batch"))).scalar_one()
    assert kept not in (None, batch.progress_ts)


async def test_a_progress_update_landing_after_the_result_leaves_the_result(
    app: Harness,
) -> None:
    """The approving click checked the import was under way and sent its "0%" to the
    thread's reply; Slack held that update while the worker imported and showed its result
    there; landing last, the "0%" stood for good and *Undo import* was gone."""
    file = app.slack.add_file("F0001", "big.csv", b"email\n" + b"".join(
        f"p{i}@example.com\n".encode() for i in range(250)))  # fmt: skip
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    batch_id = int(find_element(message["blocks"], Action.APPROVE)[1]["value"])
    notifier = SlackNotifier(slack_client(app.settings), app.db,
                             team_leads=app.settings.team_leads)  # fmt: skip
    totals = await review.approve(app.db, TEAM, batch_id, LEAD)
    await notifier.import_progress(TEAM, batch_id, 100, totals.valid)  # the reply, posted
    updates = len(app.slack.calls_to("chat.update"))
    gate = app.slack.hold("chat.update")
    click = asyncio.create_task(notifier.import_progress(TEAM, batch_id, 0, totals.valid))
    (*_, held) = await app.slack.wait_for("chat.update", count=updates + 1, timeout=30)
    assert held.args["text"].startswith(":arrows_counterclockwise: Importing into *VIP*: 0%")
    app.slack.unhold("chat.update")  # the click's update stays held; the worker's go through
    await app.worker.run_until_idle()  # imports, and shows the result in the reply
    batch = await review.batch_of(app.db, TEAM, batch_id)
    assert batch.status == BatchStatus.DONE and batch.progress_ts
    gate.set()
    await click
    await app.settle()
    reply = app.slack.message("C0001", batch.progress_ts)
    assert reply["text"].startswith(":white_check_mark: Imported"), reply["text"]
    assert find_element(reply["blocks"], Action.UNDO) is not None
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert not any("Importing into" in t for t in thread), thread


async def test_the_workers_progress_landing_after_a_cancel_leaves_its_result(
    app: Harness,
) -> None:
    """The worker checked the import was under way and sent its progress; Slack held that
    update while the rep cancelled and another worker reported the cancellation in the same
    reply; landing last, "Importing… 20%" stood for good, the cancellation unsaid."""
    message, batch = await _approved(app)
    updates = len(app.slack.calls_to("chat.update"))
    gate = app.slack.hold("chat.update")
    worker = asyncio.create_task(app.worker.run_until_idle())
    (*_, held) = await app.slack.wait_for("chat.update", count=updates + 1, timeout=30)
    assert held.args["text"].startswith(":arrows_counterclockwise: Importing into *VIP*")
    app.slack.unhold("chat.update")
    await app.requests.block_action(Action.CANCEL, batch, user_id=REP, message_ts=message["ts"])
    await app.later.drain()
    assert await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = 'cancelled'") == 1
    reports = Worker(app.db, {REPORT_JOB: app.worker.handlers[REPORT_JOB]}, WorkerConfig())
    assert await reports.run_until_idle() >= 1  # another worker: the cancellation's result
    gate.set()
    await worker
    await app.settle()
    imported = await _count(app, "SELECT COUNT(*) FROM segment_member")
    progress_ts = (await review.batch_of(app.db, TEAM, int(batch))).progress_ts
    reply = app.slack.message("C0001", progress_ts or "")
    assert f"{imported:,} of {ROWS:,} contacts imported before it was cancelled" in reply["text"]
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert not any("Importing into" in t for t in thread), thread
