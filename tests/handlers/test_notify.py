"""The thread's one progress reply and one enrollment report, when two posters race: the
approving click and the worker (or a report job) may each post before either has recorded
its reply. Slack's chat.postMessage is held until both have posted, so the race happens."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from bot.app import slack_client
from handlers.notify import SlackNotifier
from tests.handlers.conftest import Harness
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


async def test_a_result_and_a_progress_posted_at_once_leave_one_reply_saying_the_result(
    app: Harness,
) -> None:
    message = await _imported(app)
    async with app.db.begin() as conn:  # as if no reply were recorded yet, still importing
        batch = (await conn.execute(text("SELECT id, progress_ts FROM import_batch"))).one()
        await conn.execute(text("UPDATE import_batch SET progress_ts = NULL, "
                                "status = 'importing'"))  # fmt: skip
    client = slack_client(app.settings)
    await client.chat_delete(channel="C0001", ts=batch.progress_ts)
    notifier = SlackNotifier(client, app.db, team_leads=app.settings.team_leads)
    progress = asyncio.create_task(notifier.import_progress(TEAM, batch.id, 1, 2))
    await _both_post(app, progress, notifier._progress(TEAM, batch.id, "the result",
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
    assert sum("new advocates" in str(m.get("blocks")) for m in thread) == 1


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
    assert sum("new advocates" in str(m.get("blocks")) for m in thread) == 1
    async with app.db.begin() as conn:
        kept = (await conn.execute(text("SELECT progress_ts FROM import_batch"))).scalar_one()
    assert kept not in (None, batch.progress_ts)
