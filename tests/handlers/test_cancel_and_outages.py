"""Stopping an import that runs, Slack going away mid-import, and reports that must arrive."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns import invites, service
from bot.imports.batches import fail_batch
from bot.imports.cancel import cancel_job
from bot.imports.engine import Progress, apply_batch
from bot.imports.undo import request_undo
from bot.jobs.queue import claim, list_jobs
from bot.jobs.worker import Worker, WorkerConfig
from bot.notify import (
    BATCH_CHANGED,
    ENROLLMENT_CHANGED,
    REPORT_ATTEMPTS,
    SOURCE_READ,
    enqueue_report_job_in,
)
from bot.workspaces import ensure_workspace, import_target
from handlers.ids import Action, BlockId
from handlers.respond import UPLOAD_FAILED
from models import BatchStatus, CampaignState
from models.clock import utcnow
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP, Harness, csv_offers
from tests.handlers.test_import_flow import _contacts_modal, _count, _form, _open_modal, _review
from tests.handlers.test_targeting import _hold_is_over, _report, _targeted

ROWS = 500


def _csv(n: int = ROWS) -> bytes:
    return ("email,first_name\n" + "".join(f"c{i}@example.com,C{i}\n" for i in range(n))).encode()


async def _approved(app: Harness) -> tuple[dict, str]:
    """A review of ROWS contacts, approved by the lead; the import job is queued, not run.

    The harness applies imports in chunks of 100 rows, so this one takes five."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "big.csv", _csv())
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    batch = message["blocks"][-1]["elements"][2]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.later.drain()
    return message, batch


async def _wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_cancel_stops_a_running_import_and_tells_the_truth(app: Harness) -> None:
    message, batch = await _approved(app)
    running = app.slack.messages_in("C0001", message["ts"])
    # the import reports progress after its first chunk: hold Slack there, mid-import
    gate = app.slack.hold("chat.update")
    worker = asyncio.create_task(app.worker.run_until_idle())

    async def first_chunk_done() -> bool:
        return await _count(app, "SELECT COUNT(*) FROM segment_member") > 0

    await _wait_until(first_chunk_done)
    record = app.slack.message("C0001", message["ts"])
    cancel = app.slack.find_action(Action.CANCEL, "C0001")
    assert cancel is not None and cancel["ts"] == message["ts"] and record
    await app.requests.block_action(Action.CANCEL, batch, user_id=REP, message_ts=message["ts"])

    async def cancelled() -> bool:  # the click's own refresh waits on the held chat.update too
        return await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = "
                                 "'cancelled'") == 1  # fmt: skip

    await _wait_until(cancelled)
    gate.set()
    await worker
    await app.settle()

    imported = await _count(app, "SELECT COUNT(*) FROM segment_member")
    assert 0 < imported < ROWS
    status = await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch} "
                               "AND status = 'cancelled'")  # fmt: skip
    assert status == 1
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    note = f"{imported:,} of {ROWS:,} contacts imported before it was cancelled"
    assert any(note in t and f"<@{REP}>" in t for t in thread), (thread, running)
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'import' "
                             "AND state = 'cancelled'") == 1  # fmt: skip
    assert app.slack.find_action(Action.CANCEL, "C0001") is None  # read-only again
    assert app.slack.block_errors == []


async def test_jobs_cancel_on_an_import_ends_its_batch_with_the_partial_result(
    app: Harness,
) -> None:
    message, batch = await _approved(app)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")
    cancelled = await cancel_job(app.db, "T0001", job.id or 0)
    assert cancelled is not None and cancelled.state == "cancelled"
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 0
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any(f"0 of {ROWS:,} contacts imported before it was cancelled" in t for t in thread)
    # the shell cancelled it: said in words, not as a mention of nobody (`<@cli>`)
    assert any("was cancelled from the command line:" in t for t in thread), thread
    review = json.dumps(next(m["blocks"] for m in app.slack.messages_in("C0001")
                             if m["ts"] == message["ts"]))  # fmt: skip
    assert "cancelled from the command line" in review and "<@cli>" not in review
    async with app.db.begin() as conn:
        status = (await conn.execute(text(f"SELECT status FROM import_batch WHERE id = {batch}"))
                  ).scalar_one()  # fmt: skip
    assert status == BatchStatus.CANCELLED


async def test_jobs_cancel_after_the_import_finished_doesnt_claim_it_was_cancelled(
    app: Harness,
) -> None:  # fmt: skip
    """The worker finished the import but hasn't marked its job done yet: the job isn't
    called cancelled (the person would think nothing was imported, nor invited)."""
    _, batch = await _approved(app)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")
    assert await claim(app.db, "w1", lease_seconds=30) is not None  # a worker runs it
    assert (await apply_batch(app.db, "T0001", int(batch), chunk_size=100)).status == "done"
    told = await cancel_job(app.db, "T0001", job.id or 0)
    assert told is not None and told.state == "running"
    assert await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch} "
                             "AND status = 'done'") == 1  # fmt: skip


async def _file_being_read(app: Harness, name: str) -> None:
    """A rep submits the import form with a 10-row file; its reading job is queued, not run."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", name, _csv(10))
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.later.drain()


async def test_cancelling_a_file_that_is_being_read_marks_it_failed(app: Harness) -> None:
    await _file_being_read(app, "slow.csv")
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "stage_slack_file")
    await cancel_job(app.db, "T0001", job.id or 0)
    await app.settle()
    message = await _review(app)
    rendered = json.dumps(message["blocks"])
    assert "Reading this file was cancelled" in rendered and "Reading…" not in rendered
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0


def invites_take_three_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The send run's clock reads 3 s more at each look: it reports its progress (every 2 s)
    after every invite."""

    class Clock:
        ticks = itertools.count(0, 3)

        @staticmethod
        def monotonic() -> float:
            return float(next(Clock.ticks))

    monkeypatch.setattr(invites, "time", Clock)


async def test_a_slack_outage_mid_import_neither_fails_it_nor_loses_the_result(
    app: Harness,
) -> None:
    message, _ = await _approved(app)
    app.slack.outage("chat.update", times=3)  # progress, review refresh, result: all dropped
    app.slack.outage("chat.postMessage", times=2, status=503)
    await app.worker.run_until_idle()
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == ROWS
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'import' "
                             "AND state = 'done'") == 1  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report'") >= 1
    await app.settle()  # Slack is back: the held-back reports go out
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any(f"Imported into *VIP*: {ROWS} rows read" in t for t in thread), thread
    assert sum("Next step" in t for t in thread) == 1
    record = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "This import is imported" in record


async def test_a_slack_outage_while_invites_go_out_holds_back_one_report_not_one_per_tick(
    app: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run reports its progress every 2 s: with Slack unreachable each report queued a
    retry job of its own, and once Slack was back every one of them redrew the same report
    and republished Home (rate limits). One job waits, and it shows the final count."""
    _, message = await _targeted(app)  # two contacts enrolled, held

    invites_take_three_seconds(monkeypatch)
    monkeypatch.setattr(app.worker.config, "retry_base_seconds", 60.0)  # as in production
    app.slack.outage("chat.update", times=1000)  # Slack is unreachable while they go out
    await _hold_is_over(app)
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report' "
                             "AND state = 'queued'") == 1  # fmt: skip
    app.slack.outage("chat.update", times=0)  # Slack is back
    await _due_now(app)
    updates = len(app.slack.calls_to("chat.update"))
    await app.settle()
    report = _report(app, message)
    assert "2 invites sent" in json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert len(app.slack.calls_to("chat.update")) - updates == 1


async def _due_now(app: Harness) -> None:
    """The queued jobs are due now (their retry delay is over)."""
    now = bindparam("now", type_=UTCDateTime())
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = :now WHERE state = 'queued'")
                           .bindparams(now), {"now": utcnow()})  # fmt: skip


async def _report_job_in(app: Harness, event: str, **ids: int) -> int:
    async with app.db.begin() as conn:
        return await enqueue_report_job_in(conn, "T0001", event, ids)


async def test_a_held_back_report_joins_the_same_one_waiting_but_not_another(
    app: Harness,
) -> None:
    """Reports of other events or ids get jobs of their own; one made once the waiting job
    started queues the next (that run may have read the data before); and the report that
    joins a job that failed before keeps its attempts and backoff (Slack is likely still
    down: retrying at every report would use its attempts up at once, and resetting them kept
    a report that fails for good alive as long as reports came)."""
    await ensure_workspace(app.db, "T0001")
    first = await _report_job_in(app, ENROLLMENT_CHANGED, enrollment_id=1)
    assert await _report_job_in(app, ENROLLMENT_CHANGED, enrollment_id=1) == first
    others = {await _report_job_in(app, ENROLLMENT_CHANGED, enrollment_id=2),
              await _report_job_in(app, BATCH_CHANGED, batch_id=1),
              await _report_job_in(app, SOURCE_READ, batch_id=1, source_id=1),
              await _report_job_in(app, SOURCE_READ, batch_id=1, source_id=2)}  # fmt: skip
    assert len(others) == 4 and first not in others

    async with app.db.begin() as conn:  # failed 9 times, the next try an hour away
        await conn.execute(text("UPDATE job SET attempts = 9, run_after = :later WHERE id = :j")
                           .bindparams(bindparam("later", type_=UTCDateTime())),
                           {"later": utcnow() + timedelta(hours=1), "j": first})  # fmt: skip
    assert await _report_job_in(app, ENROLLMENT_CHANGED, enrollment_id=1) == first
    (job,) = [j for j in await list_jobs(app.db, "T0001") if j.id == first]
    assert job.attempts == 9 and job.run_after > utcnow() + timedelta(minutes=59)
    await _due_now(app)

    running = await claim(app.db, "w1", lease_seconds=30)
    assert running is not None and running.id == first
    after = await _report_job_in(app, ENROLLMENT_CHANGED, enrollment_id=1)
    assert after not in {first, *others}
    assert await _report_job_in(app, ENROLLMENT_CHANGED, enrollment_id=1) == after


async def _draft_review(app: Harness) -> tuple[dict, int]:
    """A rep's review of a 10-row file, not approved: the message and its import's id."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "small.csv", _csv(10))
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    return message, int(message["blocks"][-1]["elements"][2]["value"])


def _redraws(app: Harness, ts: str) -> int:
    return sum(1 for c in app.slack.calls_to("chat.update") if c.args.get("ts") == ts)


async def test_reports_made_while_slack_is_down_and_their_retry_runs_leave_one_job(
    app: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack answers "service unavailable" while a report's retry runs, and the import changes
    meanwhile (a newer report of the same message). The run that fails used to go back to
    the queue beside the newer report's job, so every such retry left one more copy, each
    redrawing the review message once Slack was back. The newer one does its work: one job
    waits, and the message is redrawn once."""
    message, batch = await _draft_review(app)
    monkeypatch.setattr(app.worker.config, "retry_base_seconds", 60.0)  # as in production
    app.slack.fail("chat.update", "service_unavailable", times=1000)
    await _report_job_in(app, BATCH_CHANGED, batch_id=batch)
    newer_reports = 3
    gate = app.slack.hold("chat.update")
    worker = asyncio.create_task(app.worker.run_until_idle())
    for _ in range(newer_reports):  # each run of the report sees a newer one made meanwhile
        await _called(app, "chat.update", after=len(app.slack.calls_to("chat.update")))
        await _report_job_in(app, BATCH_CHANGED, batch_id=batch)
        gate, held = app.slack.hold("chat.update"), gate
        held.set()  # Slack answers the running report: service unavailable
    gate.set()
    await worker
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report' "
                             "AND state = 'queued'") == 1  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report' "
                             "AND state = 'done'") == newer_reports  # fmt: skip

    app.slack.fail("chat.update", "service_unavailable", times=0)  # Slack is back
    await _due_now(app)
    before = _redraws(app, message["ts"])
    await app.settle()
    assert _redraws(app, message["ts"]) - before == 1
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report' "
                             "AND state NOT IN ('done')") == 0  # fmt: skip


async def _called(app: Harness, method: str, *, after: int) -> None:
    """Wait until `method` was called more than `after` times."""

    async def called() -> bool:
        return len(app.slack.calls_to(method)) > after

    await _wait_until(called)


async def test_a_report_that_fails_for_good_ends_failed_though_reports_keep_joining_it(
    app: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack refuses the report every time: each new report joining its job gave the job its
    attempts back, so it was retried for as long as reports came. It ends failed after its
    attempts, and the next report queues a fresh one."""
    _, batch = await _draft_review(app)
    monkeypatch.setattr(app.worker.config, "retry_base_seconds", 60.0)  # as in production
    app.slack.fail("chat.update", "service_unavailable", times=1000)
    first = await _report_job_in(app, BATCH_CHANGED, batch_id=batch)
    for _ in range(REPORT_ATTEMPTS):
        await _due_now(app)
        await app.worker.run_until_idle()
        await _report_job_in(app, BATCH_CHANGED, batch_id=batch)  # another change meanwhile
    (job,) = [j for j in await list_jobs(app.db, "T0001") if j.id == first]
    assert job.state == "failed" and job.attempts == REPORT_ATTEMPTS, job
    assert "service_unavailable" in (job.last_error or "")
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report' "
                             "AND state = 'queued'") == 1  # fmt: skip


async def test_review_import_on_an_upload_can_be_retried_and_the_skipped_rows_follow(
    app: Harness,
) -> None:
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\nnot-an-email\n",
                       channels=["C0001"])  # fmt: skip
    chosen = _chosen(segment.id or 0)
    offer_msg = await _offer(app)
    # the review can't be posted the first time (the client's one retry included)
    app.slack.outage("chat.postMessage", times=2)
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer_msg["ts"], state_values=chosen)  # fmt: skip
    await app.settle()  # meanwhile the file is read: before any review message exists
    assert app.slack.find_action(Action.APPROVE, "C0001") is None
    assert "reference" in app.slack.ephemerals[-1]["text"]
    assert app.slack.uploads == []

    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer_msg["ts"], state_values=chosen)  # fmt: skip
    await app.settle()
    review = await _review(app)
    assert "1 valid" in json.dumps(review["blocks"])
    assert len(csv_offers(app.slack, review["ts"])) == 1
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 1

    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer_msg["ts"], state_values=chosen)  # fmt: skip
    await app.settle()
    assert "already has a review" in app.slack.ephemerals[-1]["text"]
    assert len(csv_offers(app.slack, review["ts"])) == 1
    (shared,) = await app.csvs_sent(review["ts"])
    assert "not-an-email" in shared.text


async def test_a_retried_review_import_posts_the_segment_and_requester_of_the_retry(
    app: Harness,
) -> None:  # fmt: skip
    """The first click's review couldn't be posted; the second, by someone else choosing
    another segment, posts the review for that segment, as its offer line then says."""
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0001")
    vip = await import_target(app.db, "T0001", "VIP", create=True)
    news = await import_target(app.db, "T0001", "Newsletter", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\n", channels=["C0001"])
    offer_msg = await _offer(app)
    app.slack.outage("chat.postMessage", times=2)
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer_msg["ts"], state_values=_chosen(vip.id or 0))
    await app.settle()
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD,
                                    message_ts=offer_msg["ts"],
                                    state_values=_chosen(news.id or 0))  # fmt: skip
    await app.settle()
    review = json.dumps((await _review(app))["blocks"])
    assert "Newsletter" in review and "VIP" not in review and f"<@{LEAD}>" in review, review
    offer = json.dumps(app.slack.message("C0001", offer_msg["ts"])["blocks"])
    assert f"<@{LEAD}> started a review for *Newsletter*" in offer
    assert await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE segment_id = {news.id} "
                             f"AND requested_by = '{LEAD}'") == 1  # fmt: skip


async def test_a_double_click_on_review_import_posts_one_review(app: Harness) -> None:
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\n", channels=["C0001"])
    chosen = _chosen(segment.id or 0)
    offer_msg = await _offer(app)
    posts = len(app.slack.calls_to("chat.postMessage"))  # the offer's own
    gate = app.slack.hold("chat.postMessage")  # the first click's review is on its way
    for _ in range(2):
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                        message_ts=offer_msg["ts"],
                                        state_values=chosen)  # fmt: skip
    for _ in range(2000):  # until the second click is answered, or posts a second review
        # (a second review posted; the first click's review alone is one post past the offer)
        if app.slack.ephemerals or len(app.slack.calls_to("chat.postMessage")) > posts + 1:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the second click was never answered")
    gate.set()
    await app.settle()
    reviews = [m for m in app.slack.messages if m["channel"] == "C0001"
               and find_element(m.get("blocks") or [], Action.APPROVE)]  # fmt: skip
    assert len(reviews) == 1
    assert ("already has a review, started by <@U0001>: import #1 (being posted)"
            in app.slack.ephemerals[-1]["text"])  # fmt: skip


async def test_a_review_whose_poster_died_is_posted_by_the_next_click(app: Harness) -> None:
    """The process posting an upload's review died (a restart) after its batch was made and
    before the review was posted: every later *Review import* said "This file already has a
    review … (being posted)" for good, and the import could never be reviewed. A click long
    after posts it."""
    from bot.imports.batches import create_upload_batch
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\n", channels=["C0001"])
    offer_msg = await _offer(app)
    # the dead click's committed work: the batch and the key of its review being posted
    await create_upload_batch(app.db, "T0001", segment.id or 0, REP, file_id="F0002",
                              label="upload.csv")  # fmt: skip
    click = {"user_id": REP, "message_ts": offer_msg["ts"],
             "state_values": _chosen(segment.id or 0)}  # fmt: skip
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", **click)
    await app.settle()  # within its time, it may still be on its way: said so
    assert "(being posted)" in app.slack.ephemerals[-1]["text"]
    async with app.db.begin() as conn:  # two minutes on
        await conn.execute(text("UPDATE seen_key SET created_at = :then WHERE key LIKE "
                                "'review-post:%'").bindparams(bindparam("then",
                                                                        type_=UTCDateTime())),
                           {"then": utcnow() - timedelta(minutes=3)})  # fmt: skip
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", **click)
    await app.settle()
    reviews = [m for m in app.slack.messages if m["channel"] == "C0001"
               and find_element(m.get("blocks") or [], Action.APPROVE)]  # fmt: skip
    assert len(reviews) == 1, app.slack.ephemerals[-1]["text"]


async def test_a_reading_job_run_again_after_the_file_was_read_still_reports(
    app: Harness,
) -> None:
    """The job read the file, then died (or its report raised) before the review said so:
    its next run finds nothing to read and must still refresh the review."""
    from bot.imports.batches import stage_csv

    review = await _posted_unread(app, b"email\na@example.com\nb@example.com\n")
    assert "Reading" in json.dumps(review["blocks"]) or "still being read" in json.dumps(
        review["blocks"])  # fmt: skip
    async with app.db.begin() as conn:
        source = (await conn.execute(text("SELECT id FROM import_source"))).scalar_one()
    await stage_csv(app.db, "T0001", source, io.BytesIO(file_bytes(app, "F0001")))
    await app.settle()  # the job runs now: nothing left to read
    rendered = json.dumps(app.slack.message("C0001", review["ts"])["blocks"])
    assert "2 to import" in rendered and "still being read" not in rendered


async def test_a_skipped_rows_offer_slack_refuses_is_posted_later(app: Harness) -> None:
    """chat.postMessage failing for the offer is an outage like any other: the report is
    retried by its own job, and the file-reading job (whose work is done) isn't failed for
    it."""
    review = await _posted_unread(app, b"email\nok@example.com\nnot-an-email\n")
    app.slack.outage("chat.postMessage", times=2)  # the client's one retry included
    await app.settle()  # the report's retry is due at once here (JOB_RETRY_BASE_SECONDS=0)
    assert len(csv_offers(app.slack, review["ts"])) == 1
    (shared,) = await app.csvs_sent(review["ts"])
    assert "not-an-email" in shared.text
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'stage_slack_file' "
                             "AND state = 'done' AND attempts = 1") == 1  # fmt: skip
    assert app.slack._outages["chat.postMessage"][0] == 0  # the offer met the outage


async def test_a_skipped_rows_csv_the_upload_host_refuses_comes_with_the_next_click(
    app: Harness,
) -> None:
    """The DM's upload answering 500: the click is told it failed, and the next click
    brings the CSV (the first click's hold on it let go)."""
    await _import_then_retry(app, b"email\nok@example.com\nnot-an-email\n")
    review = await _review(app)
    app.slack.failing_uploads = 1
    assert await app.csvs_sent(review["ts"]) == []
    told = [r["text"] for url in app.slack.responses for r in app.slack.responses[url]]
    assert told == [UPLOAD_FAILED]
    (shared,) = await app.csvs_sent(review["ts"])
    assert "not-an-email" in shared.text


async def test_a_busy_file_host_is_tried_again_not_taken_for_a_bad_file(app: Harness) -> None:
    app.slack.failing_downloads = 1
    await _import_then_retry(app, b"email\nok@example.com\n")
    review = await _review(app)
    assert "1 to import" in json.dumps(review["blocks"])
    assert await _count(app, "SELECT COUNT(*) FROM import_source WHERE status = 'parsed'") == 1


async def _posted_unread(app: Harness, data: bytes) -> dict:
    """A rep imports q3.csv (`data`) from the modal: its review message, posted before its
    reading job has run."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q3.csv", data)
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.done()
    return await _review(app)


async def _import_then_retry(app: Harness, data: bytes) -> None:
    """Import a file from the modal, then run the jobs waiting to retry (due now)."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q3.csv", data)
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = CURRENT_TIMESTAMP "
                                "WHERE state = 'queued'"))  # fmt: skip
    await app.settle()


def file_bytes(app: Harness, file_id: str) -> bytes:
    return app.slack.file_contents[file_id]


def _chosen(segment_id: int) -> dict:
    """The upload offer's state with the VIP segment chosen."""
    return {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
        "type": "external_select", "selected_option": {
            "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment_id)}}}}


async def _offer(app: Harness) -> dict:
    from tests.fakes.slack_requests import file_shared_event

    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="EvU")
    await app.settle()
    offer = app.slack.find_action(Action.UPLOAD_REVIEW, "C0001")
    assert offer is not None
    return offer


async def test_review_import_on_an_offer_deleted_meanwhile_just_works(app: Harness) -> None:
    from bot.app import slack_client
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\n", channels=["C0001"])
    offer = await _offer(app)
    await slack_client(app.settings).chat_delete(channel="C0001", ts=offer["ts"])
    chosen = _chosen(segment.id or 0)
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer["ts"], state_values=chosen)  # fmt: skip
    await app.settle()
    assert app.slack.find_action(Action.APPROVE, "C0001") is not None
    assert app.slack.ephemerals == []  # no "something went wrong" for a review that's there


async def test_removing_a_contact_updates_the_review_even_if_the_list_changed(
    app: Harness,
) -> None:
    """A quicker second click redrew the list (hash_conflict): the removal still shows in
    the review's counts, and nobody is told something went wrong."""
    review, modal = await _contacts_modal(app, _form(email="solo@example.com", segment="V"))
    solo = next(b for b in modal["blocks"] if "solo@example.com" in json.dumps(b))
    app.slack.fail("views.update", "hash_conflict")
    await app.requests.block_action(Action.REMOVE_CONTACT, solo["accessory"]["value"],
                                    user_id=REP, view=modal["id"])  # fmt: skip
    await app.settle()
    assert "0 to import" in json.dumps(app.slack.message("C0001", review["ts"])["blocks"])
    assert app.slack.ephemerals == [] and not [
        m for m in app.slack.messages if "went wrong" in m.get("text", "")]  # fmt: skip


async def test_review_of_an_upload_deleted_meanwhile_says_so(app: Harness) -> None:
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\n", channels=["C0001"])
    offer = await _offer(app)
    del app.slack.files["F0002"]
    chosen = _chosen(segment.id or 0)
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer["ts"], state_values=chosen)  # fmt: skip
    await app.settle()
    assert "deleted, or I can't see it" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


async def _die_every_attempt(app: Harness, kind: str) -> None:
    """Leave the `kind` job as workers that die running it leave it, every attempt used up:
    each claims it, and its lease runs out with nobody to renew it."""
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == kind)
    for attempt in range(job.max_attempts):
        claimed = await claim(app.db, f"killed-{attempt}", lease_seconds=-1)
        assert claimed is not None and claimed.id == job.id


async def test_an_import_that_kills_every_worker_fails_and_the_thread_says_so(
    app: Harness,
) -> None:
    message, batch = await _approved(app)
    await _die_every_attempt(app, "import")
    await app.settle()
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")
    assert job.state == "failed" and job.attempts == job.max_attempts + 1
    assert "stopped during each of its 5 attempts" in (job.last_error or "")
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 0
    assert await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch} "
                             "AND status = 'failed'") == 1  # fmt: skip
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("The import into *VIP* failed: gave up: the worker running it stopped" in t
               for t in thread), thread  # fmt: skip


async def test_a_file_that_kills_every_worker_reading_it_shows_as_unread(app: Harness) -> None:
    await _file_being_read(app, "poison.csv")
    await _die_every_attempt(app, "stage_slack_file")
    await app.settle()
    rendered = json.dumps((await _review(app))["blocks"])
    assert "Could not read the file: gave up: the worker running it stopped" in rendered
    assert "Reading…" not in rendered
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0


async def _live_campaign_on_vip(app: Harness) -> None:
    """A live campaign targeting VIP, enrolled while VIP is still empty."""
    segment = await import_target(app.db, "T0001", "VIP", create=False)
    spring = await service.create_campaign(app.db, "T0001", "Spring",
                                           store_url="https://shop.example")  # fmt: skip
    await service.target(app.db, "T0001", spring.id or 0, segment.id or 0, requested_by=LEAD)
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=LEAD)  # fmt: skip
    enroll_only = Worker(app.db, {"enroll": app.worker.handlers["enroll"]}, WorkerConfig())
    assert await enroll_only.run_until_idle() == 1


async def test_an_import_given_up_part_way_says_what_it_imported_and_enrolls_it(
    app: Harness,
) -> None:  # fmt: skip
    message, batch = await _approved(app)  # chunks of 100
    await _live_campaign_on_vip(app)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")

    async def killed(progress: Progress) -> None:
        raise RuntimeError("killed")  # the worker dies (out of memory) after a chunk

    for attempt in range(job.max_attempts):
        assert await claim(app.db, f"killed-{attempt}", lease_seconds=-1) is not None
        if attempt < 3:
            with pytest.raises(RuntimeError):
                await apply_batch(app.db, "T0001", int(batch), chunk_size=100,
                                  on_progress=killed)  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 300
    thread = [m.get("text", "") for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("failed" in t and "300 new contacts were imported and 300 added" in t
               for t in thread), thread  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 300
    result = next(m for m in app.slack.messages_in("C0001", message["ts"])
                  if "failed" in m.get("text", ""))  # fmt: skip
    assert find_element(result.get("blocks") or [], Action.UNDO) is not None  # what it added
    await request_undo(app.db, "T0001", int(batch), LEAD, remove_advocates=True, window_days=7)
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 0
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0


async def test_an_import_cancelled_part_way_enrolls_what_it_imported(app: Harness) -> None:
    """A campaign targets the segment: the contacts the cancelled import already added stay,
    so they become advocates as a failed import's do (nothing later would enrol them)."""
    message, batch = await _approved(app)  # chunks of 100
    await _live_campaign_on_vip(app)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")

    async def stopped(progress: Progress) -> None:
        raise RuntimeError("interrupted")  # after its first chunk, before the next

    with pytest.raises(RuntimeError):
        await apply_batch(app.db, "T0001", int(batch), chunk_size=100, on_progress=stopped)
    await cancel_job(app.db, "T0001", job.id or 0)
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == 100
    assert await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch} "
                             "AND status = 'cancelled'") == 1  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 100
    thread = [m.get("text", "") for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("Enrollment in Spring" in t for t in thread), thread  # its report, in the thread


async def test_an_import_given_up_after_its_apply_finished_reports_and_enrolls(
    app: Harness,
) -> None:  # fmt: skip
    message, batch = await _approved(app)
    await _live_campaign_on_vip(app)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")
    for attempt in range(job.max_attempts):  # every worker dies; the last after the apply
        assert await claim(app.db, f"killed-{attempt}", lease_seconds=-1) is not None
    assert (await apply_batch(app.db, "T0001", int(batch), chunk_size=100)).status == "done"
    await app.settle()
    thread = [m.get("text", "") for m in app.slack.messages_in("C0001", message["ts"])]
    assert not any("Importing into" in t for t in thread[-1:]), thread
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == ROWS


async def test_a_second_review_click_while_the_first_is_posted_changes_nothing(
    app: Harness,
) -> None:
    """REP chose VIP and the review was being posted when LEAD chose Other: the import was
    moved to Other, requested by LEAD (who lost nothing, but REP lost the right to change
    it), while the offer said REP started a review for VIP, and LEAD was told nothing
    happened."""
    await ensure_workspace(app.db, "T0001")
    vip = await import_target(app.db, "T0001", "VIP", create=True)
    other = await import_target(app.db, "T0001", "Other", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\n", channels=["C0001"])
    offer = await _offer(app)
    posted = len(app.slack.calls_to("chat.postMessage"))  # the offer itself
    gate = app.slack.hold("chat.postMessage")  # REP's review is on its way
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer["ts"], state_values=_chosen(vip.id or 0))
    for _ in range(3000):  # REP's review is being posted (held) before LEAD clicks
        if len(app.slack.calls_to("chat.postMessage")) > posted:
            break
        await asyncio.sleep(0.01)
    assert len(app.slack.calls_to("chat.postMessage")) > posted, "REP's review wasn't posted"
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD,
                                    message_ts=offer["ts"], state_values=_chosen(other.id or 0))
    for _ in range(500):
        if app.slack.ephemerals:
            break
        await asyncio.sleep(0.01)
    gate.set()
    await app.settle()
    async with app.db.begin() as conn:
        chosen = (await conn.execute(text(
            "SELECT s.name, b.requested_by FROM import_batch b JOIN segment s "
            "ON s.id = b.segment_id"))).one()  # fmt: skip
    assert tuple(chosen) == ("VIP", REP)
    assert f"started by <@{REP}>" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 1


async def test_cancelling_an_import_from_the_command_line_is_audited(app: Harness) -> None:
    """`referral-bot jobs cancel` of an import's job cancelled it ("cancelled from the
    command line" in its thread) with nothing in the audit log; Slack's Cancel records it."""
    from bot.audit import recent

    _, batch = await _approved(app)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")

    assert await cancel_job(app.db, "T0001", job.id or 0) is not None
    await app.settle()

    assert await _count(app, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch} "
                             "AND status = 'cancelled' AND cancelled_by = 'cli'") == 1
    entries = [(e.actor, e.action, e.subject, e.detail) for e in await recent(app.db, "T0001")]
    assert ("cli", "import.cancelled", f"import #{batch}", "stopped while queued") in entries, \
        entries


async def test_undoing_a_cancelled_import_keeps_its_result_saying_it_was_cancelled(
    app: Harness,
) -> None:
    """Undone, an import cancelled after 100 of its 500 contacts had its result rewritten to
    ":white_check_mark: Imported into VIP: 500 rows read, 500 valid", and its status said
    "imported (approved by …), then undone"."""
    message, batch = await _approved(app)  # 500 rows
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "import")

    async def stopped(progress: Progress) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        await apply_batch(app.db, "T0001", int(batch), chunk_size=100, on_progress=stopped)
    await cancel_job(app.db, "T0001", job.id or 0)
    await app.settle()
    result = next(m for m in app.slack.messages_in("C0001", message["ts"])
                  if find_element(m.get("blocks") or [], Action.UNDO) is not None)  # fmt: skip
    assert "100 of 500 contacts imported" in result["text"]

    await request_undo(app.db, "T0001", int(batch), LEAD, remove_advocates=False, window_days=7)
    await app.settle()

    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
    after = app.slack.message("C0001", result["ts"])
    shown = after["text"] + json.dumps(after.get("blocks"))
    assert "Imported into" not in shown and "was cancelled from the command line" in shown, shown
    assert "Undone by" in shown
    review = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "cancelled from the command line part way" in review and "then undone" in review, \
        review


async def test_undoing_a_failed_import_says_it_failed_part_way_not_imported(
    app: Harness,
) -> None:
    """An import that failed after 100 of its 500 contacts, then undone: the thread's result
    said it failed, but the review message (and a stale button's answer, and App Home) said
    "imported (approved by …), then undone"."""
    message, batch = await _approved(app)  # 500 rows

    async def stopped(progress: Progress) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        await apply_batch(app.db, "T0001", int(batch), chunk_size=100, on_progress=stopped)
    await fail_batch(app.db, "T0001", int(batch), "the disk is full")  # out of retries
    await request_undo(app.db, "T0001", int(batch), LEAD, remove_advocates=False, window_days=7)
    await app.settle()

    review = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert f"failed part way (approved by <@{LEAD}>), then undone" in review, review
    assert "imported (approved" not in review
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.later.drain()
    told = app.slack.ephemerals[-1]["text"]
    assert "failed part way" in told and "imported (approved" not in told, told


async def test_a_non_lead_reviewing_an_upload_in_a_direct_message_is_sent_to_a_channel(
    app: Harness,
) -> None:  # fmt: skip
    """A rep's upload in their direct messages with the bot got a review posted there, which
    no lead sees or can approve: it sat in draft until the rep cancelled it. A lead's may."""
    from tests.fakes.slack_requests import file_shared_event

    await ensure_workspace(app.db, "T0001")
    vip = await import_target(app.db, "T0001", "VIP", create=True)
    for user, file_id in ((REP, "F0002"), (LEAD, "F0003")):
        dm, _ = app.slack._dm_for(user)
        app.slack.add_file(file_id, "upload.csv", b"email\nok@example.com\n", channels=[dm])
        await app.requests.event(file_shared_event(file_id, channel_id=dm), event_id=f"E{file_id}")
        await app.settle()
        offer = app.slack.find_action(Action.UPLOAD_REVIEW, dm)
        assert offer is not None
        await app.requests.block_action(Action.UPLOAD_REVIEW, file_id, user_id=user, channel_id=dm,
                                        message_ts=offer["ts"],
                                        state_values=_chosen(vip.id or 0))  # fmt: skip
        await app.settle()
    said = [e["text"] for e in app.slack.ephemerals]
    assert any("Only team leads approve imports, and none sees this conversation" in t
               for t in said), said  # fmt: skip
    reviews = [m for m in app.slack.messages if find_element(m.get("blocks") or [],
                                                             Action.APPROVE)]  # fmt: skip
    assert [r["channel"] for r in reviews] == [app.slack._dm_for(LEAD)[0]]
