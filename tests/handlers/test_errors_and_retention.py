"""Failures reach the person (by DM when there is no channel); old staged rows go away."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.workspaces import ensure_workspace, find_segment
from handlers.ids import Action, BlockId
from models import Database
from models.clock import utcnow
from models.contacts import ALL_CUSTOMERS
from tests.conftest import BACKEND
from tests.fakes.slack_requests import file_shared_event
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_decisions import _start
from tests.handlers.test_import_flow import CSV, _count, _form, _open_modal


def _dms(app: Harness, user: str) -> list[str]:
    channel = app.slack.dm_channels.get(user)
    return [m["text"] for m in app.slack.messages if channel and m["channel"] == channel]


async def test_all_customers_is_never_an_import_target(app: Harness) -> None:
    await ensure_workspace(app.db, "T0001")
    everyone = await find_segment(app.db, "T0001", ALL_CUSTOMERS)
    assert everyone is not None
    view_id = await _open_modal(app)
    reply = await app.requests.block_suggestion(Action.SEGMENT, "", block_id=BlockId.SEGMENT,
                                                user_id=REP, view_id=view_id)  # fmt: skip
    assert ALL_CUSTOMERS not in json.dumps(reply.body)
    form = _form(email="a@example.com")
    form[BlockId.SEGMENT][Action.SEGMENT]["selected_option"] = {  # a forged choice
        "text": {"type": "plain_text", "text": ALL_CUSTOMERS}, "value": str(everyone.id)}
    reply = await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    assert "already holds every contact" in reply.body["errors"][BlockId.SEGMENT]  # on the field
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


async def test_a_failed_form_submission_is_explained_by_direct_message(app: Harness) -> None:
    """Refused after the form closed (here *Add more* naming a file someone else uploaded:
    files.info says whose it is only then), the person is told by direct message. An import
    approved while the form was open is said on the form itself (test_decisions.py)."""
    message, batch = await _start(app)
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP, message_ts=message["ts"])
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    theirs = app.slack.add_file("F0077", "late.csv", b"email\nlate@example.com\n", user=LEAD)
    reply = await app.requests.view_submission(state_values=_form(files=[theirs]),
                                               view_id=modal["id"], user_id=REP)  # fmt: skip
    assert reply.status == 200 and not reply.body  # accepted: the form closed
    await app.settle()
    told = _dms(app, REP)
    assert told and "late.csv isn't a file you uploaded" in told[-1], told
    assert await _count(app, "SELECT COUNT(*) FROM staged_row WHERE email = "
                             "'late@example.com'") == 0  # fmt: skip


async def test_a_slack_5xx_that_isnt_json_is_still_explained_to_whoever_clicked(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Slack answered a click's call 503 with a plain-text body: reading its error code raised
    inside the failure handler, so the person who clicked Review import was told nothing and
    the log said only "could not tell the user about a failure"."""
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    offer = app.slack.find_action(Action.UPLOAD_REVIEW, "C0001")
    assert offer is not None
    app.slack.outage("users.info", status=503)  # the body is "upstream unavailable"
    with caplog.at_level(logging.INFO):
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                        message_ts=offer["ts"])  # fmt: skip
        await app.settle()
    told = [e["text"] for e in app.slack.ephemerals if e["user"] == REP]
    assert told and "reference" in told[-1], told
    assert not [r for r in caplog.records if "could not tell" in r.getMessage()]


def test_a_slack_error_code_is_read_only_from_a_json_answer() -> None:
    from slack_sdk.errors import SlackApiError

    from handlers.slack_errors import slack_error

    assert slack_error(SlackApiError("x", {"ok": False, "error": "not_found"})) == "not_found"
    assert slack_error(SlackApiError("x", "upstream unavailable")) == ""
    assert slack_error(SlackApiError("x", None)) == ""


async def test_staged_rows_are_deleted_after_their_retention(app: Harness) -> None:
    message, batch = await _start(app)
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    before = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 4
    async with app.db.begin() as conn:  # the import ended 31 days ago; its purge is due
        await conn.execute(text("UPDATE import_batch SET finished_at = :old").bindparams(
            bindparam("old", type_=UTCDateTime())), {"old": utcnow() - timedelta(days=31)})
        await conn.execute(text("UPDATE job SET run_after = :now WHERE kind = 'purge_staged'")
                           .bindparams(bindparam("now", type_=UTCDateTime())), {"now": utcnow()})
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2
    from bot.imports.review import load
    from handlers.messages import review_message

    _, blocks = review_message(await load(app.db, "T0001", int(batch)))
    after = json.dumps([b.to_dict() for b in blocks])
    for figure in ("2 valid", "1 duplicate ", "1 rejected", "2 to import"):
        assert figure in before and figure in after


async def _purge_due(app: Harness, finished_days_ago: float | None = None) -> None:
    now = bindparam("now", type_=UTCDateTime())
    async with app.db.begin() as conn:
        if finished_days_ago is not None:
            await conn.execute(text("UPDATE import_batch SET finished_at = :now").bindparams(now),
                               {"now": utcnow() - timedelta(days=finished_days_ago)})  # fmt: skip
        await conn.execute(text("UPDATE job SET run_after = :now WHERE kind = 'purge_staged' "
                                "AND state = 'queued'").bindparams(now), {"now": utcnow()})
    await app.settle()


async def test_rows_of_an_import_reviewed_for_more_than_an_hour_are_purged_too(
    app: Harness,
) -> None:  # fmt: skip
    message, batch = await _start(app)
    await _purge_due(app)  # an hour later the purge runs: the import is still in review
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 4
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    await _purge_due(app, finished_days_ago=31)  # the next day's run, a month on
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0


async def test_a_recent_import_keeps_its_staged_rows(app: Harness) -> None:
    message, batch = await _start(app)
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = :now WHERE kind = 'purge_staged'")
                           .bindparams(bindparam("now", type_=UTCDateTime())), {"now": utcnow()})
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 4
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'purge_staged' "
                             "AND state = 'queued'") == 1  # fmt: skip  # tomorrow's


async def test_staged_rows_are_found_by_batch_never_by_scanning(app: Harness) -> None:
    if BACKEND != "sqlite":
        return  # the plan check reads SQLite's EXPLAIN QUERY PLAN
    from bot.imports.batches import _COUNT_ROWS

    async with app.db.begin() as conn:
        plan = " ".join(str(row[-1]) for row in await conn.execute(
            text("EXPLAIN QUERY PLAN " + str(_COUNT_ROWS)), {"t": "T1", "b": 1, "no": False}))
    assert "ix_staged_row_batch" in plan and "SCAN staged_row" not in plan, plan
    # grouped as the index yields the rows, not sorted again (a million rows: half a second)
    assert "TEMP B-TREE" not in plan, plan


def test_a_busy_sqlite_is_told_as_busy_not_as_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A worker staging a big file holds SQLite's one write lock; a click that waited longer
    than the busy timeout changed nothing, and the person is told to try again."""
    import sqlite3
    from contextlib import closing

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from handlers.later import BUSY, message_for

    path = tmp_path / "busy.db"
    with closing(sqlite3.connect(path)) as holder:
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.commit()
        holder.execute("BEGIN IMMEDIATE")  # the writer
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        with pytest.raises(OperationalError) as caught, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        engine.dispose()
    assert message_for(caught.value, {"team": "T1", "action": "review_approve"}) == BUSY
    # the log names SQLite's kind of busy (a stale snapshot no wait could help shows apart)
    assert "database busy (team=T1 action=review_approve, SQLITE_BUSY)" in caplog.text
    assert "Something went wrong" in message_for(RuntimeError("boom"), {"team": "T1"})


_WHO = {"user": {"id": LEAD, "team_id": "T0001"}, "team": {"id": "T0001"}}


@pytest.mark.parametrize("payload", [
    {"type": "block_actions", "actions": [], **_WHO},
    {"type": "block_actions", "actions": ["review_approve"], **_WHO},
    {"type": "block_actions", "actions": "review_approve", **_WHO},
    {"type": "block_actions", "actions": [{"action_id": "review_approve", "value": "1"}],
     "user": LEAD, "team": {"id": "T0001"}},
    {"type": "view_submission", "view": None, **_WHO},
    {"type": "view_submission", "view": {"id": "V1", "callback_id": "referral_import"}, **_WHO},
])  # fmt: skip
async def test_a_signed_payload_of_a_shape_bolt_cant_read_is_refused_not_a_500(
    app: Harness, caplog: pytest.LogCaptureFixture, payload: dict
) -> None:
    """Signed payloads bolt crashes on before any listener ("actions": [], a view without a
    type) were a bare 500 with aiohttp's traceback and no word of who or what."""
    with caplog.at_level(logging.INFO):
        reply = await app.requests.send_interactive(payload)
        await app.settle()

    assert reply.status == 400, reply
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("refused a request of a shape bolt can't handle" in r.getMessage()
               for r in caplog.records)  # fmt: skip


async def test_a_file_shared_event_without_a_file_id_is_ignored_not_a_failure(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.fakes.slack_requests import event_callback

    with caplog.at_level(logging.INFO):
        reply = await app.requests.send_json(event_callback(
            {"type": "file_shared", "channel_id": "C0001", "user_id": LEAD}))  # fmt: skip
        await app.settle()

    assert reply.status == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("without a file_id" in r.getMessage() for r in caplog.records)


async def test_an_import_left_in_review_for_good_expires_and_its_rows_go(
    app: Harness,
) -> None:  # fmt: skip
    """Nobody approved, rejected or cancelled q3.csv: its customers' names and addresses
    stayed in staged_row for good, the purge queueing itself every day for them. Untouched
    for STAGED_RETENTION_DAYS it is cancelled, its review says so, and its rows go as any
    ended import's."""
    message, batch = await _start(app)
    old = bindparam("old", type_=UTCDateTime())
    async with app.db.begin() as conn:  # asked for 90 days ago, then forgotten
        await conn.execute(text("UPDATE import_batch SET created_at = :old, updated_at = :old")
                           .bindparams(old), {"old": utcnow() - timedelta(days=90)})  # fmt: skip
    await _purge_due(app)
    assert await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = 'cancelled'") == 1
    shown = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "expired (left in review untouched)" in shown, shown
    assert "command line" not in shown and Action.APPROVE not in shown
    from bot.audit import recent

    (expired,) = [e for e in await recent(app.db, "T0001") if e.action == "import.cancelled"]
    assert (expired.actor, expired.detail) == (
        "The purge", "expired: left in review untouched for 30 days")
    await _purge_due(app, finished_days_ago=31)
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0


async def test_a_short_retention_doesnt_expire_a_review_in_progress(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """STAGED_RETENTION_DAYS=0 (rows purged as soon as an import ends) cancelled every import
    in review within the hour, by the purge its creation queued: drafts expire after 30 days
    untouched at the least."""
    from tests.handlers.conftest import running_app

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with running_app(db, tmp_path, staged_retention_days=0) as app:
        await _start(app)
        old = bindparam("old", type_=UTCDateTime())
        async with app.db.begin() as conn:  # touched 29 days ago
            await conn.execute(text("UPDATE import_batch SET updated_at = :old").bindparams(old),
                               {"old": utcnow() - timedelta(days=29)})  # fmt: skip
        await _purge_due(app)
        assert await _count(app, "SELECT COUNT(*) FROM import_batch "
                                 "WHERE status = 'draft'") == 1  # fmt: skip


async def test_a_draft_touched_after_the_purge_picked_it_is_not_expired(
    app: Harness, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The purge picks the drafts untouched for weeks, then ends each: one a person changed
    in between (a customer typed in) was cancelled all the same."""
    import bot.imports.retention as retention
    from bot.imports.batches import stage_contact

    await _start(app)
    old = bindparam("old", type_=UTCDateTime())
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET created_at = :old, updated_at = :old")
                           .bindparams(old), {"old": utcnow() - timedelta(days=90)})  # fmt: skip
    real = retention._expire

    async def touched_first(db: Any, team_id: str, batch_id: int, *args: Any) -> bool:
        await stage_contact(db, team_id, batch_id, email="late@example.com")  # someone's change
        return await real(db, team_id, batch_id, *args)

    monkeypatch.setattr(retention, "_expire", touched_first)
    await _purge_due(app)
    assert await _count(app, "SELECT COUNT(*) FROM staged_row WHERE email = "
                             "'late@example.com'") == 1  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = 'draft'") == 1


async def _import_of_a_csv(db: Database, requested_by: str) -> tuple[int, int]:
    """(batch, source) of an import in review of a.csv (one customer), unread since 90 days
    ago, without a review message."""
    import io

    from bot.imports.batches import add_source, create_batch
    from bot.imports.files import stage_file
    from bot.workspaces import import_target
    from models import SourceKind

    await ensure_workspace(db, "T0001")
    segment = await import_target(db, "T0001", "Spring", create=True)
    batch = (await create_batch(db, "T0001", segment.id or 0, requested_by)).id or 0
    first = (await add_source(db, "T0001", batch, SourceKind.CSV, "a.csv")).id or 0
    await stage_file(db, "T0001", first, io.BytesIO(b"email\nada@example.com\n"), name="a.csv")
    return batch, first


async def _untouched_since_90_days_then_purged(db: Database) -> str:
    """The import's status after the purge, every import left untouched for 90 days."""
    from bot.imports.retention import purge_staged

    old = bindparam("old", type_=UTCDateTime())
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET created_at = :old, updated_at = :old")
                           .bindparams(old), {"old": utcnow() - timedelta(days=90)})  # fmt: skip
    await purge_staged(db, "T0001", 30, 7)
    async with db.begin() as conn:
        return str((await conn.execute(text("SELECT status FROM import_batch"))).scalar())


async def test_a_shell_import_killed_while_reading_a_file_still_expires(db: Database) -> None:
    """A shell import killed while it read its second file: that file stays pending with no
    job to read it, and "a file still being read" kept the draft, and every customer of the
    first file, for good. Only a job queued or running to read a file holds a draft."""
    from bot.imports.batches import add_source
    from models import SourceKind

    batch, _ = await _import_of_a_csv(db, "cli")
    await add_source(db, "T0001", batch, SourceKind.CSV, "b.csv")  # killed reading it
    assert await _untouched_since_90_days_then_purged(db) == "cancelled"


async def test_a_draft_whose_file_a_job_still_reads_doesnt_expire(db: Database) -> None:
    """The same draft, its second file queued to be read by a worker (Slack's file host down
    for days, say): it isn't expired under its reading."""
    from bot.imports.batches import add_source
    from bot.imports.job_kinds import SLACK_FILE_JOB
    from models import SourceKind

    batch, _ = await _import_of_a_csv(db, "U0001")
    await add_source(db, "T0001", batch, SourceKind.CSV, "b.csv", ref="F0002",
                     read_by=SLACK_FILE_JOB)  # fmt: skip
    assert await _untouched_since_90_days_then_purged(db) == "draft"


async def test_a_draft_whose_file_is_put_back_to_be_read_as_it_expires_stays(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A reading of one of its files queued between the purge's pick and its expiring: the
    draft stays, the UPDATE asking again whether anything is at work on it."""
    import bot.imports.retention as retention
    from bot.jobs.queue import enqueue

    _, first = await _import_of_a_csv(db, "cli")
    real = retention._expire

    async def read_again_first(db_: Any, team_id: str, batch_id: int, *args: Any) -> bool:
        await enqueue(db_, team_id, "stage_slack_file", {"source_id": first},
                      dedupe_key=f"remap:{first}:1")  # fmt: skip
        return await real(db_, team_id, batch_id, *args)

    monkeypatch.setattr(retention, "_expire", read_again_first)
    assert await _untouched_since_90_days_then_purged(db) == "draft"
