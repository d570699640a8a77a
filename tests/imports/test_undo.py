"""Undoing an import: exactly what it added goes, nothing else, once, whatever crashes."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.app import build_web_app
from bot.audit import Act
from bot.campaigns import service
from bot.campaigns.enroll import run_enrollment
from bot.contact_admin import (
    delete_contact,
    find_by_email,
    remove_from_segment,
    resubscribe,
    unsubscribe,
)
from bot.imports.background import enqueue_file_import
from bot.imports.batches import add_source, create_batch, queue_batch, stage_csv
from bot.imports.engine import apply_batch
from bot.imports.importer import import_files
from bot.imports.job_kinds import IMPORT_JOB, PURGE_JOB, UNDO_JOB
from bot.imports.retention import purge_staged
from bot.imports.review import cancel
from bot.imports.undo import UndoError, request_undo, run_undo, undo_now, undo_plan
from bot.jobs.kinds import handlers
from bot.jobs.worker import Worker, WorkerConfig
from bot.segments import delete_segment
from bot.settings import load_settings
from bot.web import public_routes
from bot.workspaces import ensure_workspace, find_segment, import_target
from handlers.home_publish import recent_imports
from models import CampaignState, Database, SourceKind
from models.clock import utcnow
from models.contacts import ALL_CUSTOMERS
from tests.conftest import BACKEND
from tests.fakes.slack_api import serve

TEAM, OTHER_TEAM = "T0001", "T0002"
LEAD = "U0002"
WEEK = 7


async def _import(db: Database, segment: str, *emails: str, team: str = TEAM,
                  window: int | None = None) -> int:  # fmt: skip
    csv = "email,first_name\n" + "".join(f"{e},{e.split('@')[0]}\n" for e in emails)
    result = await import_files(db, team, [("people.csv", io.BytesIO(csv.encode()))],
                                segment=segment, create_segment=True,
                                undo_window_days=window)  # fmt: skip
    return result.batch.id or 0


async def _rows(db: Database, sql: str, **params: object) -> list[tuple]:
    async with db.begin() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def _one(db: Database, sql: str, **params: object) -> object:
    async with db.begin() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def _segment(db: Database, name: str, team: str = TEAM) -> int:
    segment = await find_segment(db, team, name)
    assert segment is not None
    return segment.id or 0


async def _live_campaign(db: Database, name: str, *targets: str) -> int:
    """A live campaign targeting these segments, their current members enrolled."""
    campaign = await service.create_campaign(db, TEAM, name, store_url="https://shop.example/")
    await service.set_state(db, TEAM, campaign.id or 0, CampaignState.LIVE, requested_by=LEAD,
                            queue_job=False)  # fmt: skip
    for target in targets:
        enrollment = await service.target(db, TEAM, campaign.id or 0, await _segment(db, target),
                                          requested_by=LEAD, queue_job=False)  # fmt: skip
        if enrollment is not None:
            await run_enrollment(db, TEAM, enrollment, hold_seconds=0)
    return campaign.id or 0


async def _invite(db: Database, email: str, state: str) -> None:
    async with db.begin() as conn:
        await conn.execute(text(
            "UPDATE invite SET state = :state WHERE contact_id = "
            "(SELECT id FROM contact WHERE email = :e AND team_id = :t)"),
            {"state": state, "e": email, "t": TEAM})  # fmt: skip


async def _members(db: Database, segment: str, team: str = TEAM) -> list[str]:
    rows = await _rows(db, "SELECT c.email FROM segment_member m JOIN contact c "
                       "ON c.id = m.contact_id WHERE m.segment_id = :s ORDER BY c.email",
                       s=await _segment(db, segment, team))  # fmt: skip
    return [r[0] for r in rows]


async def _contacts(db: Database, team: str = TEAM) -> list[str]:
    rows = await _rows(db, "SELECT email FROM contact WHERE team_id = :t ORDER BY email", t=team)
    return [r[0] for r in rows]


async def _states(db: Database) -> dict[str, str]:
    rows = await _rows(db, "SELECT c.email, i.state FROM invite i JOIN contact c "
                       "ON c.id = i.contact_id WHERE i.team_id = :t", t=TEAM)  # fmt: skip
    return dict(rows)  # type: ignore[arg-type]


async def _advocates(db: Database) -> dict[str, str]:
    rows = await _rows(db, "SELECT c.email, a.code FROM advocate a JOIN contact c "
                       "ON c.id = a.contact_id WHERE a.team_id = :t", t=TEAM)  # fmt: skip
    return dict(rows)  # type: ignore[arg-type]


@pytest.fixture
async def world(db: Database) -> dict[str, object]:
    """Before the import: old@ in VIP, other@ in Other, a live campaign on VIP. The import
    (into VIP) brings old@ (already there), other@ (known) and new1-4@ (created); then new3@ is
    also imported into Later, and new4@ is taken out of VIP by hand. Invites: new1@ queued,
    new2@ held, new3@ queued, other@ sent."""
    await ensure_workspace(db, TEAM)
    await _import(db, "VIP", "old@example.com")
    await _import(db, "Other", "other@example.com")
    spring = await _live_campaign(db, "Spring", "VIP")
    batch = await _import(db, "VIP", "old@example.com", "other@example.com", "new1@example.com",
                          "new2@example.com", "new3@example.com", "new4@example.com")
    await _import(db, "Later", "new3@example.com")
    async with db.begin() as conn:
        await conn.execute(text(
            "DELETE FROM segment_member WHERE contact_id = "
            "(SELECT id FROM contact WHERE email = 'new4@example.com')"))  # fmt: skip
    await _invite(db, "new2@example.com", "held")
    await _invite(db, "other@example.com", "sent")
    return {"batch": batch, "spring": spring, "codes": await _advocates(db)}


async def _undo(db: Database, batch: int, *, advocates: bool = False, **kwargs: object) -> None:
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=advocates, window_days=WEEK)
    await run_undo(db, TEAM, batch, **kwargs)  # type: ignore[arg-type]


async def _counts(db: Database, batch: int) -> tuple:
    return (await _rows(db, "SELECT status, undone_by, undo_removed, undo_deleted, "
                        "undo_invites_cancelled, undo_advocates_removed FROM import_batch "
                        "WHERE id = :b", b=batch))[0]  # fmt: skip


async def test_undo_takes_out_only_what_the_import_added(db: Database, world: dict) -> None:
    batch = world["batch"]
    plan = await undo_plan(db, TEAM, batch, window_days=WEEK)
    assert (plan.segment, plan.removes, plan.deletes, plan.invites, plan.advocates,
            plan.invites_with_advocates) == ("VIP", 4, 3, 4, 4, 4)  # fmt: skip

    await _undo(db, batch)

    assert await _members(db, "VIP") == ["old@example.com"]  # it was there before
    assert await _members(db, "Other") == ["other@example.com"]
    assert await _members(db, "Later") == ["new3@example.com"]
    # created by the import and in no segment now: gone (new4@ had left VIP by hand)
    assert await _contacts(db) == ["new3@example.com", "old@example.com", "other@example.com"]
    # invites still waiting were cancelled; the sent one is history
    assert await _states(db) == {"old@example.com": "queued", "other@example.com": "sent",
                                 "new3@example.com": "cancelled"}  # fmt: skip
    # advocates of contacts that stay stay; the deleted contacts' codes are retired
    codes = world["codes"]
    assert set(await _advocates(db)) == {"old@example.com", "other@example.com",
                                         "new3@example.com"}  # fmt: skip
    retired = {r[0] for r in await _rows(db, "SELECT code FROM retired_code")}
    assert retired == {codes["new1@example.com"], codes["new2@example.com"],
                       codes["new4@example.com"]}  # fmt: skip
    # counted from the rows: 4 memberships, 3 contacts, new1-3@'s waiting invites + new4@'s
    assert await _counts(db, batch) == ("undone", LEAD, 4, 3, 4, 3)
    audit = await _rows(db, "SELECT actor, action, subject, detail FROM audit_entry "
                        "WHERE action = :a ORDER BY id", a=Act.IMPORT_UNDONE.value)  # fmt: skip
    assert [a[:3] for a in audit] == [(LEAD, "import.undone", f"import #{batch}")] * 2
    assert "what it added to VIP" in audit[0][3]
    assert audit[1][3] == ("done: 4 removed from VIP, 3 contacts deleted, 4 invites cancelled, "
                           "3 advocates removed")  # fmt: skip


async def test_removing_the_advocates_too_retires_their_links(db: Database, world: dict) -> None:
    batch = world["batch"]
    await _undo(db, batch, advocates=True)
    codes = world["codes"]
    assert set(await _advocates(db)) == {"old@example.com"}  # enrolled before the import
    assert await _states(db) == {"old@example.com": "queued", "other@example.com": "sent"}
    assert await _counts(db, batch) == ("undone", LEAD, 4, 3, 4, 5)
    settings = load_settings(database_url=db.url, secret_key="s")
    async with serve(build_web_app(None, routes=public_routes(db, settings))) as site, \
            aiohttp.ClientSession() as http:  # fmt: skip
        for email, status in (("other@example.com", 410), ("new1@example.com", 410),
                              ("old@example.com", 302)):  # fmt: skip
            async with http.get(f"{site}/r/{codes[email]}", allow_redirects=False) as response:
                assert response.status == status, email


async def test_an_invite_stays_when_its_campaign_still_reaches_the_contact(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    await _import(db, "Later", "b@example.com")
    batch = await _import(db, "VIP", "a@example.com", "b@example.com")
    await _live_campaign(db, "Autumn", "VIP", "Later")  # targeted after the import
    assert await _states(db) == {"a@example.com": "queued", "b@example.com": "queued"}
    await _undo(db, batch)
    assert await _contacts(db) == ["b@example.com"]
    assert await _states(db) == {"b@example.com": "queued"}  # still in Later, a target
    assert await _counts(db, batch) == ("undone", LEAD, 2, 1, 1, 1)


async def test_an_invite_that_never_went_out_leaves_with_its_advocate(db: Database) -> None:
    """A failed invite (refused, or out of retries: never delivered) stayed when the undo
    removed its advocate, pointing at an advocate that was gone; the contact imported again
    was enrolled anew and its invite never written (the campaign had one for it already)."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Other", "x@example.com")
    await import_target(db, TEAM, "VIP", create=True)
    await _live_campaign(db, "Spring", "VIP")
    a = await _import(db, "VIP", "x@example.com")
    await _invite(db, "x@example.com", "failed")
    await _undo(db, a, advocates=True)
    assert await _advocates(db) == {}
    assert await _rows(db, "SELECT i.state FROM invite i WHERE NOT EXISTS "
                       "(SELECT 1 FROM advocate a WHERE a.id = i.advocate_id)") == []


@pytest.mark.skipif(BACKEND != "postgres", reason="one host shares SQLite's file and clock")
async def test_an_undo_a_live_worker_runs_is_not_called_waiting_on_a_host_ahead(
    db: Database, world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether an undo waits for a worker (App Home's *Undo* and the Undo form offer to
    finish it) compared its job's lease, stamped with PostgreSQL's clock, with this host's:
    45 s ahead, a worker renewing a 30 s lease looked gone, and the undo it runs "waiting"."""
    from bot.imports.undo import WAITING, unattended_undo
    from bot.jobs.queue import claim

    batch = world["batch"]
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=WEEK)
    assert await claim(db, "host-a", 30.0, {UNDO_JOB}) is not None  # alive, renewing
    monkeypatch.setattr("bot.imports.undo.utcnow", lambda: utcnow() + timedelta(seconds=45))
    assert await unattended_undo(db, TEAM, batch, lease_seconds=30.0) is None
    async with db.begin() as conn:  # then host a died: its lease lapses
        await conn.execute(text("UPDATE job SET lease_expires_at = statement_timestamp() "
                                "- interval '1 second' WHERE kind = :k"), {"k": UNDO_JOB})
    assert await unattended_undo(db, TEAM, batch, lease_seconds=30.0) == WAITING


async def test_an_undo_queued_again_is_not_called_waiting_while_its_last_worker_lives(
    db: Database, world: dict
) -> None:
    """An undo job queued again (its attempt failed and is retried) still names the worker
    that ran it last. The undo's own check of whether a worker would take it set that worker
    aside as dead, alive or not, and called the undo "waiting" (App Home offered to finish
    it) although the only worker, alive, would run it at its retry. One rule now says which
    workers are alive (queue.runnable_kinds): those whose lease on a running job lapsed."""
    from bot.imports.undo import WAITING, unattended_undo
    from bot.jobs import queue

    batch = world["batch"]
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=WEEK)
    await queue.register_worker(db, "host-a:1:abc", {UNDO_JOB}, pid=1, host="host-a")
    async with db.begin() as conn:  # queued again after an attempt "host-a:1:abc#0" ran
        await conn.execute(text("UPDATE job SET lease_owner = 'host-a:1:abc#0', attempts = 1 "
                                "WHERE kind = :k AND state = 'queued'"), {"k": UNDO_JOB})
    assert await unattended_undo(db, TEAM, batch, lease_seconds=30.0) is None
    async with db.begin() as conn:  # that worker gone for good: nothing would run it
        await conn.execute(text("DELETE FROM worker_process"))
    assert await unattended_undo(db, TEAM, batch, lease_seconds=30.0) == WAITING


async def test_second_undo_is_refused_and_a_double_click_queues_one_job(
    db: Database, world: dict
) -> None:
    batch = world["batch"]
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=WEEK)
    with pytest.raises(UndoError, match=rf"Import #{batch} is already being undone \(asked by "
                                        rf"<@{LEAD}> on \d{{4}}-"):  # fmt: skip
        await request_undo(db, TEAM, batch, "U0009", remove_advocates=True, window_days=WEEK)
    assert await _one(db, "SELECT COUNT(*) FROM job WHERE kind = :k", k=UNDO_JOB) == 1
    assert await _one(db, "SELECT undo_advocates FROM import_batch WHERE id = :b",
                      b=batch) in (False, 0)  # the first request's choice  # fmt: skip
    await run_undo(db, TEAM, batch)
    with pytest.raises(UndoError, match=rf"Import #{batch} was already undone by <@{LEAD}> on"):
        await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=WEEK)
    with pytest.raises(UndoError, match="already undone"):
        await undo_plan(db, TEAM, batch, window_days=WEEK)
    before = await _counts(db, batch)
    await run_undo(db, TEAM, batch)  # a retried job: nothing more happens
    assert await _counts(db, batch) == before


async def test_too_old_not_finished_and_another_workspaces_imports_are_refused(
    db: Database, world: dict
) -> None:
    batch = world["batch"]
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :f WHERE id = :b")
                           .bindparams(bindparam("f", type_=UTCDateTime())),
                           {"f": utcnow() - timedelta(days=WEEK, hours=1), "b": batch})  # fmt: skip
    with pytest.raises(UndoError, match=r"Imports can be undone for 7 days; this one finished "
                                        r"on \d{4}-\d\d-\d\d"):  # fmt: skip
        await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=WEEK)
    # UNDO_WINDOW_DAYS=0 said "can be undone for 0 days"
    with pytest.raises(UndoError, match=r"can't be undone here \(UNDO_WINDOW_DAYS is 0\)"):
        await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=0)
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=WEEK + 1)

    await ensure_workspace(db, OTHER_TEAM)
    theirs = await _import(db, "VIP", "new1@example.com", "x@example.com", team=OTHER_TEAM)
    for ask in (lambda: request_undo(db, TEAM, theirs, LEAD, remove_advocates=True,
                                     window_days=WEEK),
                lambda: undo_plan(db, TEAM, theirs, window_days=WEEK),
                lambda: run_undo(db, TEAM, theirs)):  # fmt: skip
        with pytest.raises(UndoError, match=f"Import #{theirs} doesn't exist in this workspace"):
            await ask()
    await run_undo(db, TEAM, batch)  # ours: their same-address contacts are not touched
    assert await _members(db, "VIP", OTHER_TEAM) == ["new1@example.com", "x@example.com"]
    assert await _one(db, "SELECT status FROM import_batch WHERE id = :b", b=theirs) == "done"

    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET status = 'importing' WHERE id = :b"),
                           {"b": theirs})  # fmt: skip
    with pytest.raises(UndoError, match="and importing: only a finished import can be undone"):
        await request_undo(db, OTHER_TEAM, theirs, LEAD, remove_advocates=False,
                           window_days=WEEK)  # fmt: skip


class Killed(Exception):
    """The process died between two chunks."""


async def test_a_crash_between_chunks_resumes_to_the_same_result(
    db: Database, world: dict
) -> None:
    batch = world["batch"]
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=True, window_days=WEEK)
    chunks = 0

    async def die_after_two(done: int, total: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise Killed

    with pytest.raises(Killed):
        await run_undo(db, TEAM, batch, chunk_size=1, progress=die_after_two)
    half = await _counts(db, batch)
    assert half[0] == "undoing" and half[2] == 2  # two chunks committed, counted
    assert len(await _members(db, "VIP")) == 3

    # the job picks it up again: a worker runs the undo job to the end
    kinds = handlers(load_settings(database_url=db.url, import_chunk_rows=1))
    worker = Worker(db, {UNDO_JOB: kinds[UNDO_JOB]}, WorkerConfig())
    await worker.run_until_idle()
    assert await _one(db, "SELECT state FROM job WHERE kind = :k", k=UNDO_JOB) == "done"
    assert await _counts(db, batch) == ("undone", LEAD, 4, 3, 4, 5)  # as if run in one go
    assert await _members(db, "VIP") == ["old@example.com"]
    assert await _contacts(db) == ["new3@example.com", "old@example.com", "other@example.com"]
    assert set(await _advocates(db)) == {"old@example.com"}


_REFUSE_REPORTS = {  # the database failing as the report to the import's thread is queued
    "sqlite": ["CREATE TRIGGER refuse_report BEFORE INSERT ON job WHEN NEW.kind = 'slack_report' "
               "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"],
    "postgresql": ["CREATE FUNCTION refuse_report() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN IF NEW.kind = 'slack_report' THEN RAISE EXCEPTION 'disk I/O error'; "
                   "END IF; RETURN NEW; END $$",
                   "CREATE TRIGGER refuse_report BEFORE INSERT ON job "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_report()"],
}  # fmt: skip


async def test_a_shell_undo_that_could_not_queue_its_report_leaves_it_to_a_worker(
    db: Database,
) -> None:
    """`undo` from the shell marked its job done, then queued the report to the import's
    Slack thread: failing (or killed) in between, it left the thread silent for good (the job
    done, and `undo` again says "already undone"). The report is queued before the job ends
    now: failing there, the job goes back to the workers, which report it."""
    await ensure_workspace(db, TEAM)
    batch = await _import(db, "VIP", "a@example.com", "b@example.com")
    async with db.begin() as conn:  # imported from Slack: it has a thread to tell
        await conn.execute(text("UPDATE import_batch SET channel_id = 'C0001', "
                                "message_ts = '1700000000.000100' WHERE id = :b"), {"b": batch})
        for statement in _REFUSE_REPORTS[db.dialect]:
            await conn.execute(text(statement))
    with pytest.raises(Exception, match="disk I/O error"):
        await undo_now(db, TEAM, batch, "cli", remove_advocates=False, window_days=WEEK)
    assert await _members(db, "VIP") == []  # the undo itself is done
    async with db.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse_report" + (
            " ON job" if db.dialect == "postgresql" else "")))
    kinds = handlers(load_settings(database_url=db.url))  # a worker without Slack
    await Worker(db, {UNDO_JOB: kinds[UNDO_JOB]}, WorkerConfig()).run_until_idle()
    reports = await _rows(db, "SELECT payload FROM job WHERE kind = 'slack_report'")
    assert [json.loads(r[0])["event"] for r in reports] == ["undo_finished"]


# `jobs cancel` of the undo's job, committed with the first chunk (as if made just after it)
_CANCEL_WITH_FIRST_CHUNK = {
    "sqlite": ["CREATE TRIGGER cancel_undo AFTER DELETE ON segment_member BEGIN "
               "UPDATE job SET state = 'cancelled' WHERE kind = 'undo_import' "
               "AND state = 'running'; END"],
    "postgresql": ["CREATE FUNCTION cancel_undo() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN UPDATE job SET state = 'cancelled' WHERE kind = 'undo_import' "
                   "AND state = 'running'; RETURN NULL; END $$",
                   "CREATE TRIGGER cancel_undo AFTER DELETE ON segment_member "
                   "FOR EACH ROW EXECUTE FUNCTION cancel_undo()"],
}  # fmt: skip


async def test_a_shell_undo_whose_job_is_cancelled_stops_at_its_next_chunk(
    db: Database,
) -> None:
    """`jobs cancel` of the job of `referral-bot undo N` said "cancelled", and the undo went
    on to the end ("undone", everyone out of the segment): only the batch's state stopped a
    chunk, and the shell's run has no progress report to stop at. It stops at its next chunk
    now, says so, and `undo N` again finishes it."""
    await ensure_workspace(db, TEAM)
    batch = await _import(db, "VIP", "a@example.com", "b@example.com", "c@example.com")
    async with db.begin() as conn:
        for statement in _CANCEL_WITH_FIRST_CHUNK[db.dialect]:
            await conn.execute(text(statement))
    with pytest.raises(UndoError, match="was cancelled part way: `referral-bot undo"):
        await undo_now(db, TEAM, batch, "cli", remove_advocates=False, window_days=WEEK,
                       chunk_size=1)  # fmt: skip
    assert await _one(db, "SELECT status FROM import_batch WHERE id = :b", b=batch) == "undoing"
    assert len(await _members(db, "VIP")) == 2  # the first chunk's one only
    async with db.begin() as conn:
        await conn.execute(text("DROP TRIGGER cancel_undo" + (
            " ON segment_member" if db.dialect == "postgresql" else "")))
    done = await undo_now(db, TEAM, batch, "cli", remove_advocates=False, window_days=WEEK)
    assert done.status == "undone" and await _members(db, "VIP") == []


async def _purge_a_month_on(db: Database, batch: int) -> None:
    """The import finished 31 days ago and the workspace's purge is due: a worker runs it."""
    now = bindparam("now", type_=UTCDateTime())
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :now WHERE id = :b")
                           .bindparams(now), {"now": utcnow() - timedelta(days=31), "b": batch})
        await conn.execute(text("UPDATE job SET run_after = :now WHERE kind = :k "
                                "AND state = 'queued'").bindparams(now),
                           {"now": utcnow(), "k": PURGE_JOB})  # fmt: skip
    kinds = handlers(load_settings(database_url=db.url, staged_retention_days=30))
    await Worker(db, {PURGE_JOB: kinds[PURGE_JOB]}, WorkerConfig()).run_until_idle()


async def test_an_undone_imports_staged_rows_are_purged_once_its_undo_finished(
    db: Database,
) -> None:
    """An undone import never counted as ended: its staged rows stayed for good and the purge
    queued itself again every day for them."""
    await ensure_workspace(db, TEAM)
    batch = await _import(db, "VIP", "a@example.com", "b@example.com")
    staged = "SELECT COUNT(*) FROM staged_row WHERE batch_id = :b"
    queued = "SELECT COUNT(*) FROM job WHERE kind = :k AND state = 'queued'"
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=WEEK + 31)
    await _purge_a_month_on(db, batch)
    assert await _one(db, staged, b=batch) == 2  # being undone: kept until it is done
    assert await _one(db, queued, k=PURGE_JOB) == 1  # tomorrow's

    await run_undo(db, TEAM, batch)
    await _purge_a_month_on(db, batch)
    assert await _one(db, staged, b=batch) == 0
    # it goes on for the import's job only, which it forgets a month after it ended
    assert await _one(db, queued, k=PURGE_JOB) == 1
    async with db.begin() as conn:
        await conn.execute(text("UPDATE job SET finished_at = :old WHERE finished_at IS NOT NULL")
                           .bindparams(bindparam("old", type_=UTCDateTime())),
                           {"old": utcnow() - timedelta(days=31)})  # fmt: skip
    await _purge_a_month_on(db, batch)
    assert await _one(db, queued, k=PURGE_JOB) == 0  # nothing left to purge: no more runs


async def test_an_invite_of_a_campaign_that_never_targeted_the_segment_stays(
    db: Database,
) -> None:
    """y is Autumn's (Autumn targets Newsletter; invite held), then a lead takes y out of
    Newsletter ("it stays in its campaigns"). An import adds y to VIP, which no campaign
    targets: undoing it cancelled Autumn's invite."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Newsletter", "y@example.com")
    await _live_campaign(db, "Autumn", "Newsletter")
    await _invite(db, "y@example.com", "held")
    y = await find_by_email(db, TEAM, "y@example.com")
    await remove_from_segment(db, TEAM, y, await _segment(db, "Newsletter"), LEAD)
    batch = await _import(db, "VIP", "y@example.com")
    plan = await undo_plan(db, TEAM, batch, window_days=WEEK)
    assert (plan.removes, plan.deletes, plan.invites) == (1, 0, 0)
    await _undo(db, batch)
    assert await _states(db) == {"y@example.com": "held"}
    assert await _counts(db, batch) == ("undone", LEAD, 1, 0, 0, 0)


async def test_memberships_handed_to_an_import_then_cancelled_can_still_be_undone(
    db: Database,
) -> None:
    """The first import is undone while a second of the same list runs: x, which the second
    listed, is handed on to it. The second is then cancelled having added nothing itself,
    so nothing could ever undo it, and x stayed in the segment for good."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com", "y@example.com")
    segment = await import_target(db, TEAM, "VIP", create=False)
    later = await create_batch(db, TEAM, segment.id or 0, LEAD)
    source = await add_source(db, TEAM, later.id or 0, SourceKind.CSV, "again.csv")
    await stage_csv(db, TEAM, source.id or 0, io.BytesIO(b"email\nx@example.com\nz@example.com\n"))
    await queue_batch(db, TEAM, later.id or 0, LEAD)
    done: list[bool] = []

    async def undo_then_cancel(_progress: object) -> None:
        if not done:  # after its first chunk (x, listed): undo the first, cancel this one
            done.append(True)
            await _undo(db, first)
            await cancel(db, TEAM, later.id or 0, LEAD, is_lead=True)

    stopped = await apply_batch(db, TEAM, later.id or 0, chunk_size=1,
                                on_progress=undo_then_cancel)  # fmt: skip
    assert stopped.status == "cancelled" and await _members(db, "VIP") == ["x@example.com"]
    await _undo(db, later.id or 0)  # refused before: "cancelled and added nothing"
    assert await _members(db, "VIP") == []


async def test_undo_keeps_a_contact_already_emailed_so_a_new_import_doesnt_email_it_again(
    db: Database,
) -> None:
    """Imported into the wrong segment, ann was invited by a campaign targeting All
    Customers; the lead undoes the import and imports the file into the right segment. The
    undo deleted ann with her sent invite, and the new import invited her a second time."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Right", "old@example.com")
    await _live_campaign(db, "Spring", ALL_CUSTOMERS)
    wrong = await _import(db, "Wrong", "ann@example.com", "bob@example.com")
    await _invite(db, "ann@example.com", "sent")
    plan = await undo_plan(db, TEAM, wrong, window_days=WEEK)
    assert (plan.deletes, plan.keeps) == (1, 1)

    await _undo(db, wrong)
    assert await _contacts(db) == ["ann@example.com", "old@example.com"]  # bob@ went
    await _import(db, "Right", "ann@example.com")
    assert (await _states(db))["ann@example.com"] == "sent"  # not queued a second time


async def test_undo_keeps_a_contact_who_unsubscribed_so_no_later_import_emails_it(
    db: Database,
) -> None:
    """Imported into the wrong segment; ann unsubscribes; the lead undoes the import and
    imports the same file into the right one, which a live campaign targets. The undo deleted
    ann with her unsubscribe, and the new import had her invite queued."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Right", "old@example.com")
    await _live_campaign(db, "Spring", "Right")
    wrong = await _import(db, "Wrong", "ann@example.com", "bob@example.com")
    await unsubscribe(db, TEAM, await find_by_email(db, TEAM, "ann@example.com"), LEAD)
    plan = await undo_plan(db, TEAM, wrong, window_days=WEEK)
    assert (plan.removes, plan.deletes, plan.keeps) == (2, 1, 1)

    await _undo(db, wrong)
    assert await _contacts(db) == ["ann@example.com", "old@example.com"]  # bob@ went
    assert await _counts(db, wrong) == ("undone", LEAD, 2, 1, 0, 0)
    assert await _one(db, "SELECT detail FROM audit_entry WHERE action = :a ORDER BY id DESC",
                      a=Act.IMPORT_UNDONE.value) == (
        "done: 2 removed from Wrong, 1 contact deleted (1 kept: they unsubscribed or were "
        "emailed), "
        "0 invites cancelled, 0 advocates removed")  # fmt: skip

    await _import(db, "Right", "ann@example.com", "bob@example.com")  # Spring enrolls them
    assert await _states(db) == {"old@example.com": "queued", "ann@example.com": "not_emailed",
                                 "bob@example.com": "queued"}  # fmt: skip
    assert await _rows(db, "SELECT subscribed, unsubscribed_at IS NOT NULL FROM contact "
                       "WHERE email = 'ann@example.com'") in ([(False, True)], [(0, 1)])


async def _say(db: Database, segment: str, rows: str, *, update_existing: bool = False) -> int:
    """Import `rows` (a CSV with its header) into the segment; returns the import's id."""
    result = await import_files(db, TEAM, [("people.csv", io.BytesIO(rows.encode()))],
                                segment=segment, create_segment=True,
                                update_existing=update_existing)  # fmt: skip
    return result.batch.id or 0


async def _subscribed(db: Database) -> dict[str, tuple[bool, bool]]:
    """Each contact's (subscribed, unsubscribed through our link or by a lead)."""
    rows = await _rows(db, "SELECT email, subscribed, unsubscribed_at IS NOT NULL FROM contact "
                       "WHERE team_id = :t", t=TEAM)  # fmt: skip
    return {email: (bool(on), bool(off)) for email, on, off in rows}


async def _resubscribed(db: Database) -> list[tuple]:
    """Whom imports re-subscribed: (email, import), in order."""
    return await _rows(db, "SELECT c.email, r.batch_id FROM resubscribed_contact r "
                       "JOIN contact c ON c.id = r.contact_id WHERE r.team_id = :t "
                       "ORDER BY c.email, r.batch_id", t=TEAM)  # fmt: skip


async def test_undo_unsubscribes_again_whom_an_update_existing_import_re_subscribed(
    db: Database,
) -> None:
    """x@ and y@ had said no (earlier files; y@ into VIP already). An --update-existing import
    into VIP said yes and re-subscribed them. Undoing it left them subscribed, and the next
    campaign emailed two people who had opted out, though an undo leaves things as if the
    import had never happened."""
    await ensure_workspace(db, TEAM)
    await _say(db, "Old", "email,subscribed\nx@example.com,no\n")
    await _say(db, "VIP", "email,subscribed\ny@example.com,no\n")
    batch = await _say(db, "VIP", "email,subscribed\nx@example.com,yes\ny@example.com,yes\n"
                       "z@example.com,yes\n", update_existing=True)  # fmt: skip
    assert await _subscribed(db) == {"x@example.com": (True, False),
                                     "y@example.com": (True, False),
                                     "z@example.com": (True, False)}  # fmt: skip
    await _undo(db, batch)
    assert await _members(db, "VIP") == ["y@example.com"]  # there before it: stays
    assert await _subscribed(db) == {"x@example.com": (False, False),
                                     "y@example.com": (False, False)}  # fmt: skip
    assert await _resubscribed(db) == []


async def test_an_update_existing_import_that_failed_having_only_re_subscribed_can_be_undone(
    db: Database,
) -> None:
    """It stopped for good after its first chunk, which re-subscribed three people who had
    said no and were in the segment already: no contact new, none added, so its undo was
    refused ("failed and added nothing: there is nothing to undo") and the three stayed
    subscribed, for the next campaign to email."""
    from bot.imports.batches import fail_batch

    await ensure_workspace(db, TEAM)
    people = [f"p{i}@example.com" for i in range(6)]
    await _say(db, "VIP", "email,subscribed\n" + "".join(f"{p},no\n" for p in people))
    segment = await import_target(db, TEAM, "VIP", create=False)
    again = await create_batch(db, TEAM, segment.id or 0, LEAD, update_existing=True)
    source = await add_source(db, TEAM, again.id or 0, SourceKind.CSV, "yes.csv")
    await stage_csv(db, TEAM, source.id or 0, io.BytesIO(
        ("email,subscribed\n" + "".join(f"{p},yes\n" for p in people)).encode()))
    await queue_batch(db, TEAM, again.id or 0, LEAD)

    async def stopped(_progress: object) -> None:
        raise RuntimeError("the worker died")

    with pytest.raises(RuntimeError):
        await apply_batch(db, TEAM, again.id or 0, chunk_size=3, on_progress=stopped)
    await fail_batch(db, TEAM, again.id or 0, "out of attempts")
    assert [on for on, _ in (await _subscribed(db)).values()] == [True] * 3 + [False] * 3

    await _undo(db, again.id or 0)
    assert (await _counts(db, again.id or 0))[0] == "undone"
    assert [on for on, _ in (await _subscribed(db)).values()] == [False] * 6
    assert await _members(db, "VIP") == people  # theirs before it: they stay


async def test_undo_leaves_consent_that_changed_after_the_import_re_subscribed(
    db: Database,
) -> None:
    """Import A (--update-existing) re-subscribed a@, b@, c@ and d@, who had said no. Since:
    a file said no for a@ and another import (C) yes again; a file said no for b@ and a lead
    resubscribed her; c@ unsubscribed through our link. Undoing A unsubscribes d@ only: the
    later word of each of the others stands. Undoing C then unsubscribes a@ (as before C)."""
    await ensure_workspace(db, TEAM)
    emails = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    await _say(db, "Old", "email,subscribed\n" + "".join(f"{e},no\n" for e in emails))
    first = await _say(db, "VIP", "email,subscribed\n" + "".join(f"{e},yes\n" for e in emails),
                       update_existing=True)  # fmt: skip
    await _say(db, "Old", "email,subscribed\na@example.com,no\nb@example.com,no\n")
    later = await _say(db, "Later", "email,subscribed\na@example.com,yes\n",
                       update_existing=True)  # fmt: skip
    await resubscribe(db, TEAM, await find_by_email(db, TEAM, "b@example.com"), LEAD)
    await unsubscribe(db, TEAM, await find_by_email(db, TEAM, "c@example.com"), LEAD)
    assert await _resubscribed(db) == [("a@example.com", later), ("c@example.com", first),
                                       ("d@example.com", first)]  # fmt: skip
    assert (await undo_plan(db, TEAM, first, window_days=WEEK)).unsubscribes == 1

    await _undo(db, first)
    assert await _subscribed(db) == {"a@example.com": (True, False),
                                     "b@example.com": (True, False),
                                     "c@example.com": (False, True),
                                     "d@example.com": (False, False)}  # fmt: skip
    await _undo(db, later)
    assert (await _subscribed(db))["a@example.com"] == (False, False)
    assert await _resubscribed(db) == []


async def test_whom_an_import_re_subscribed_is_forgotten_with_the_contact_or_past_undo(
    db: Database,
) -> None:
    """The record of a re-subscription never outlives its contact (SQLite gives a deleted
    contact's id to the next one, which the undo would then unsubscribe): deleted by a lead,
    or by the undo of the import that created it. The daily purge forgets it once its import
    can't be undone any more."""
    await ensure_workspace(db, TEAM)
    created = await _say(db, "Old", "email,subscribed\nx@example.com,no\ny@example.com,no\n")
    await _say(db, "Past", "email,subscribed\nold@example.com,no\n")
    batch = await _say(db, "VIP", "email,subscribed\nx@example.com,yes\ny@example.com,yes\n",
                       update_existing=True)  # fmt: skip
    past = await _say(db, "Past", "email,subscribed\nold@example.com,yes\n",
                      update_existing=True)  # fmt: skip
    assert len(await _resubscribed(db)) == 3
    await delete_contact(db, TEAM, await find_by_email(db, TEAM, "y@example.com"), LEAD)
    x = await find_by_email(db, TEAM, "x@example.com")
    await remove_from_segment(db, TEAM, x, await _segment(db, "VIP"), LEAD)
    await _undo(db, created)  # x@ is in no segment now: it goes
    assert await _contacts(db) == ["old@example.com"]
    assert await _resubscribed(db) == [("old@example.com", past)]

    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :f WHERE id IN (:a, :b)")
                           .bindparams(bindparam("f", type_=UTCDateTime())),
                           {"f": utcnow() - timedelta(days=WEEK, hours=1), "a": batch,
                            "b": past})  # fmt: skip
    await purge_staged(db, TEAM, 30, WEEK)
    assert await _one(db, "SELECT COUNT(*) FROM resubscribed_contact") == 0

async def test_the_plan_doesnt_count_as_unsubscribed_a_contact_the_undo_deletes(
    db: Database,
) -> None:
    """The confirmation counted a contact the import re-subscribed and the undo deletes (it
    created it: handed on by the undo of the import that had) both as deleted and as
    unsubscribed again."""
    await ensure_workspace(db, TEAM)
    c = await _say(db, "Old", "email,subscribed\nx@example.com,no\n")
    a = await _say(db, "VIP", "email,subscribed\nx@example.com,yes\n", update_existing=True)
    await _undo(db, c)
    plan = await undo_plan(db, TEAM, a, window_days=WEEK)
    await _undo(db, a)
    assert await _contacts(db) == []
    assert (plan.deletes, plan.unsubscribes) == (1, 0)



async def test_the_audit_entry_of_a_big_undo_counts_with_thousands_separators(
    db: Database,
) -> None:
    """As the thread and the command line do: "2,500 removed", not "2500 removed"."""
    await ensure_workspace(db, TEAM)
    batch = await _import(db, "Big", *(f"p{i}@example.com" for i in range(2_500)))
    async with db.begin() as conn:
        await conn.execute(text("UPDATE contact SET unsubscribed_at = :now, subscribed = :no "
                                "WHERE email LIKE 'p1%'").bindparams(
                                    bindparam("now", type_=UTCDateTime())),
                           {"now": utcnow(), "no": False})  # fmt: skip
    await _undo(db, batch)
    assert await _one(db, "SELECT detail FROM audit_entry WHERE action = :a ORDER BY id DESC",
                      a=Act.IMPORT_UNDONE.value) == (
        "done: 2,500 removed from Big, 1,389 contacts deleted (1,111 kept: they unsubscribed "
        "or were emailed), "
        "0 invites cancelled, 0 advocates removed")  # fmt: skip


@pytest.mark.parametrize("order", ["first import first", "later import first"])
async def test_undoing_both_imports_of_a_contact_deletes_it_in_either_order(
    db: Database, order: str
) -> None:
    """x came with import A (into VIP), then import B put it in Newsletter too. Undoing A
    keeps x (B holds it); undoing B then left it in All Customers for good, though neither
    import stands any more (the other order deleted it)."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com", "a@example.com")
    second = await _import(db, "Newsletter", "x@example.com")
    batches = [first, second] if order == "first import first" else [second, first]
    await _undo(db, batches[0])
    assert await _one(db, "SELECT COUNT(*) FROM contact WHERE email = 'x@example.com'") == 1
    await _undo(db, batches[1])
    assert await _rows(db, "SELECT email FROM contact") == []


# ---- a later import into the same segment listed the contact too ----------------------------


async def _listings(db: Database) -> list[tuple]:
    """Every later import's listing: (segment, email, import), in order."""
    return await _rows(db, "SELECT s.name, c.email, l.batch_id FROM segment_member_listing l "
                       "JOIN segment s ON s.id = l.segment_id "
                       "JOIN contact c ON c.id = l.contact_id WHERE l.team_id = :t "
                       "ORDER BY s.name, c.email, l.batch_id", t=TEAM)  # fmt: skip


async def _owners(db: Database, segment: str) -> dict[str, tuple]:
    """email -> (the import its membership of the segment is, the import that created it)."""
    rows = await _rows(db, "SELECT c.email, m.batch_id, c.batch_id FROM segment_member m "
                       "JOIN contact c ON c.id = m.contact_id WHERE m.segment_id = :s",
                       s=await _segment(db, segment))  # fmt: skip
    return {r[0]: (r[1], r[2]) for r in rows}


async def _handed_on(db: Database, batch: int) -> int:
    return int(await _one(db, "SELECT undo_handed_on FROM import_batch WHERE id = :b",
                          b=batch) or 0)  # fmt: skip


async def test_undoing_an_import_keeps_a_contact_a_later_import_into_the_segment_listed(
    db: Database,
) -> None:
    """A creates x and a in VIP; B, a later import into VIP, lists x (already there: its
    insert conflicted) and b. Undoing A took x out of VIP and deleted it, though B stands and
    its requester expects x there. Now x stays, as B's, and undoing B then takes it."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com", "a@example.com")
    second = await _import(db, "VIP", "x@example.com", "b@example.com")
    assert (await _rows(db, "SELECT added_to_segment, already_in_segment FROM import_batch "
                        "WHERE id = :b", b=second)) == [(1, 1)]  # its summary: unchanged

    plan = await undo_plan(db, TEAM, first, window_days=WEEK)
    assert (plan.removes, plan.deletes, plan.keeps) == (1, 1, 0)
    assert plan.hands_on == 1
    await _undo(db, first)
    assert await _owners(db, "VIP") == {"x@example.com": (second, second),
                                        "b@example.com": (second, second)}  # fmt: skip
    assert await _contacts(db) == ["b@example.com", "x@example.com"]  # a@ went
    assert await _counts(db, first) == ("undone", LEAD, 1, 1, 0, 0)
    assert await _listings(db) == []  # B's listing became its membership
    assert await _handed_on(db, first) == 1
    assert await _one(db, "SELECT detail FROM audit_entry WHERE action = :a ORDER BY id DESC",
                      a=Act.IMPORT_UNDONE.value) == (
        "done: 1 removed from VIP (1 kept: a later import listed them too), 1 contact deleted, "
        "0 invites cancelled, 0 advocates removed")  # fmt: skip

    # as if A had never happened: B added (and created) x, so undoing B takes x too
    plan = await undo_plan(db, TEAM, second, window_days=WEEK)
    assert (plan.removes, plan.hands_on, plan.deletes) == (2, 0, 2)
    await _undo(db, second)
    assert await _members(db, "VIP") == []
    assert await _contacts(db) == []
    assert await _counts(db, second) == ("undone", LEAD, 2, 2, 0, 0)


@pytest.mark.parametrize("cleared_by", ["a later import", "the purge"])
async def test_an_import_past_the_undo_window_stays_past_it_when_the_window_grows(
    db: Database, cleared_by: str,
) -> None:  # fmt: skip
    """UNDO_WINDOW_DAYS raised after an import passed the old window gave it back its Undo,
    though what undoing it needs was gone: the later import into its segment hadn't listed
    the contact they share (nor kept its listing past the purge), so undoing the first took
    the contact out of the segment the later import had put it in."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com", "a@example.com", window=WEEK)
    if cleared_by == "a later import":
        await _finished_days_ago(db, WEEK + 1, first)
        second = await _import(db, "VIP", "x@example.com", "b@example.com", window=WEEK)
    else:
        second = await _import(db, "VIP", "x@example.com", "b@example.com", window=WEEK)
        assert len(await _listings(db)) == 1
        await _finished_days_ago(db, WEEK + 1, first)
        await purge_staged(db, TEAM, 30, WEEK)
    assert await _listings(db) == []

    longer = WEEK * 5  # UNDO_WINDOW_DAYS raised since
    refused = (rf"Import #{first} can't be undone any more: it finished on \d{{4}}-\d\d-\d\d "
               r"[^,]+, and what undoing it needs was cleared when it passed the undo window")
    with pytest.raises(UndoError, match=refused):
        await undo_plan(db, TEAM, first, window_days=longer)
    with pytest.raises(UndoError, match=refused):
        await request_undo(db, TEAM, first, LEAD, remove_advocates=False, window_days=longer)
    assert await _members(db, "VIP") == ["a@example.com", "b@example.com", "x@example.com"]
    assert await _one(db, "SELECT status FROM import_batch WHERE id = :b", b=first) == "done"
    shown, _ = await recent_imports(db, TEAM, undo_days=longer)  # App Home's *Undo* buttons
    assert {row.batch_id: row.can_undo for row in shown} == {first: False, second: True}
    # the later import, inside both windows, is undone as ever (x@ stays: the first's)
    await request_undo(db, TEAM, second, LEAD, remove_advocates=False, window_days=longer)
    await run_undo(db, TEAM, second)
    assert await _members(db, "VIP") == ["a@example.com", "x@example.com"]


async def test_undoing_the_later_import_first_leaves_the_contact_to_the_first(
    db: Database,
) -> None:
    """x was in VIP already when B ran: undoing B takes nothing of x and forgets its listing,
    so undoing A then takes x out and deletes it, as before."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com", "a@example.com")
    second = await _import(db, "VIP", "x@example.com", "b@example.com")
    plan = await undo_plan(db, TEAM, second, window_days=WEEK)
    assert (plan.removes, plan.hands_on, plan.deletes) == (1, 0, 1)
    await _undo(db, second)
    assert await _owners(db, "VIP") == {"x@example.com": (first, first),
                                        "a@example.com": (first, first)}  # fmt: skip
    assert await _listings(db) == []
    assert await _counts(db, second) == ("undone", LEAD, 1, 1, 0, 0)

    plan = await undo_plan(db, TEAM, first, window_days=WEEK)
    assert (plan.removes, plan.hands_on, plan.deletes) == (2, 0, 2)
    await _undo(db, first)
    assert await _contacts(db) == []
    assert await _handed_on(db, first) == 0


async def test_the_earliest_import_still_standing_takes_it_and_hands_it_on_again(
    db: Database,
) -> None:
    """A, then B, C and D into VIP all list x (created by A). B is being undone when A's undo
    runs: C, the earliest still standing, takes x; D's listing stays with the membership, so
    undoing C hands x on to D, and undoing D takes it out for good."""
    await ensure_workspace(db, TEAM)
    a = await _import(db, "VIP", "x@example.com")
    b, c, d = [await _import(db, "VIP", "x@example.com") for _ in range(3)]
    await request_undo(db, TEAM, b, LEAD, remove_advocates=False, window_days=WEEK)
    await _undo(db, a)
    assert await _owners(db, "VIP") == {"x@example.com": (c, c)}
    assert await _listings(db) == [("VIP", "x@example.com", n) for n in (b, d)]
    await run_undo(db, TEAM, b)  # it listed x only: nothing of x goes, and its listing does
    assert await _owners(db, "VIP") == {"x@example.com": (c, c)}
    assert await _listings(db) == [("VIP", "x@example.com", d)]
    assert await _counts(db, b) == ("undone", LEAD, 0, 0, 0, 0)

    await _undo(db, c)
    assert await _owners(db, "VIP") == {"x@example.com": (d, d)}
    assert await _listings(db) == []
    assert (await _counts(db, c), await _handed_on(db, c)) == (("undone", LEAD, 0, 0, 0, 0), 1)
    await _undo(db, d)
    assert await _contacts(db) == []


async def test_nothing_is_handed_on_to_a_cancelled_import_that_added_nothing(
    db: Database,
) -> None:
    """A creates x and y in VIP; B lists x (already there), then is cancelled before its
    next chunk: it added nothing, so it can't be undone. Undoing A handed x on to B anyway
    (the confirmation said "undoing it takes them out") and x stayed in VIP for good, B's
    undo refused. Now only an import that can be undone takes a membership on."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com", "y@example.com")
    segment = await import_target(db, TEAM, "VIP", create=False)
    later = await create_batch(db, TEAM, segment.id or 0, LEAD)
    source = await add_source(db, TEAM, later.id or 0, SourceKind.CSV, "again.csv")
    await stage_csv(db, TEAM, source.id or 0,
                    io.BytesIO(b"email\nx@example.com\nz@example.com\n"))  # fmt: skip
    await queue_batch(db, TEAM, later.id or 0, LEAD)

    async def cancel_after_one_row(progress: object) -> None:
        await cancel(db, TEAM, later.id or 0, LEAD, is_lead=True)

    stopped = await apply_batch(db, TEAM, later.id or 0, chunk_size=1,
                                on_progress=cancel_after_one_row)  # fmt: skip
    assert (stopped.status, stopped.new_contacts, stopped.added_to_segment) == ("cancelled", 0, 0)
    assert await _listings(db) == [("VIP", "x@example.com", later.id)]
    with pytest.raises(UndoError, match="added nothing"):
        await request_undo(db, TEAM, later.id or 0, LEAD, remove_advocates=False,
                           window_days=WEEK)  # fmt: skip

    plan = await undo_plan(db, TEAM, first, window_days=WEEK)
    assert (plan.removes, plan.hands_on, plan.deletes) == (2, 0, 2)
    await _undo(db, first)
    assert await _members(db, "VIP") == []
    assert await _contacts(db) == []
    assert await _listings(db) == []
    assert (await _counts(db, first), await _handed_on(db, first)) == (
        ("undone", LEAD, 2, 2, 0, 0), 0)


async def test_a_handed_on_contact_keeps_its_waiting_invite_and_its_advocate(
    db: Database,
) -> None:
    """Spring targets VIP: A's import enrolled x and a (invites queued). B lists x. Undoing A
    with its advocates cancels a's invite and retires a's link only: x is still in Spring's
    audience through B. The confirmation counted exactly that."""
    await ensure_workspace(db, TEAM)
    await _import(db, "VIP", "old@example.com")
    await _live_campaign(db, "Spring", "VIP")
    first = await _import(db, "VIP", "x@example.com", "a@example.com")
    await _import(db, "VIP", "x@example.com")
    await _invite(db, "x@example.com", "held")
    codes = await _advocates(db)
    assert await _states(db) == {"old@example.com": "queued", "x@example.com": "held",
                                 "a@example.com": "queued"}  # fmt: skip

    plan = await undo_plan(db, TEAM, first, window_days=WEEK)
    assert (plan.removes, plan.deletes, plan.invites, plan.advocates,
            plan.invites_with_advocates) == (1, 1, 1, 1, 1)  # fmt: skip
    assert plan.hands_on == 1
    await _undo(db, first, advocates=True)
    assert await _states(db) == {"old@example.com": "queued", "x@example.com": "held"}
    assert await _advocates(db) == {"old@example.com": codes["old@example.com"],
                                    "x@example.com": codes["x@example.com"]}  # fmt: skip
    assert await _members(db, "VIP") == ["old@example.com", "x@example.com"]
    assert await _counts(db, first) == ("undone", LEAD, 1, 1, 1, 1)


async def _link_statuses(db: Database, codes: dict[str, str]) -> dict[str, int]:
    """email -> what its referral link answers (302: it leads to the store, 410: retired)."""
    settings = load_settings(database_url=db.url, secret_key="s")
    answers = {}
    async with serve(build_web_app(None, routes=public_routes(db, settings))) as site, \
            aiohttp.ClientSession() as http:  # fmt: skip
        for email, code in codes.items():
            async with http.get(f"{site}/r/{code}", allow_redirects=False) as response:
                answers[email] = response.status
    return answers


@pytest.mark.parametrize("first_with_advocates", [False, True])
async def test_an_advocate_goes_with_the_membership_undo_handed_on(
    db: Database, first_with_advocates: bool
) -> None:
    """Spring targets VIP; x is in Other already. A adds x to VIP and enrolls it (its invite
    held); B lists x. Undoing A hands x's membership on to B, and x's advocate stays (x is
    still in VIP). Undoing B then with *Also remove advocates* took x out of VIP but left its
    advocate, link and invite: the advocate was A's enrollment's, and only B's counted. Now the
    advocate goes with the membership, as if A had never happened."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Other", "x@example.com")
    await _import(db, "VIP", "old@example.com")
    await _live_campaign(db, "Spring", "VIP")
    first = await _import(db, "VIP", "x@example.com", "a@example.com")
    second = await _import(db, "VIP", "x@example.com")
    await _invite(db, "x@example.com", "held")
    codes = await _advocates(db)
    await _undo(db, first, advocates=first_with_advocates)
    assert await _members(db, "VIP") == ["old@example.com", "x@example.com"]
    assert await _states(db) == {"old@example.com": "queued", "x@example.com": "held"}

    plan = await undo_plan(db, TEAM, second, window_days=WEEK)
    assert (plan.removes, plan.deletes, plan.invites, plan.advocates,
            plan.invites_with_advocates) == (1, 0, 1, 1, 1)  # fmt: skip
    await _undo(db, second, advocates=True)
    assert await _members(db, "VIP") == ["old@example.com"]
    assert await _members(db, "Other") == ["x@example.com"]
    assert await _advocates(db) == {"old@example.com": codes["old@example.com"]}
    assert await _states(db) == {"old@example.com": "queued"}  # x's held invite went with it
    assert await _counts(db, second) == ("undone", LEAD, 1, 0, 1, 1)
    assert await _link_statuses(db, {e: codes[e] for e in ("old@example.com", "x@example.com")}
                                ) == {"old@example.com": 302, "x@example.com": 410}  # fmt: skip


async def test_an_advocate_stays_while_another_import_keeps_its_contact_in_the_segment(
    db: Database,
) -> None:
    """A adds x to VIP (Spring enrolls it); B and C list x. Undoing A, then B, each with
    their advocates, hands x on (to B, then to C): x stays in VIP and keeps its advocate and
    link. Undoing C with its advocates takes both out."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Other", "x@example.com")
    await import_target(db, TEAM, "VIP", create=True)
    await _live_campaign(db, "Spring", "VIP")
    a = await _import(db, "VIP", "x@example.com")
    b, c = [await _import(db, "VIP", "x@example.com") for _ in range(2)]
    codes = await _advocates(db)
    assert list(codes) == ["x@example.com"]
    for batch in (a, b):
        plan = await undo_plan(db, TEAM, batch, window_days=WEEK)
        assert (plan.removes, plan.hands_on, plan.advocates, plan.invites_with_advocates) == (
            0, 1, 0, 0)  # fmt: skip
        await _undo(db, batch, advocates=True)
        assert await _members(db, "VIP") == ["x@example.com"]
        assert await _advocates(db) == codes
        assert await _states(db) == {"x@example.com": "queued"}
        assert await _counts(db, batch) == ("undone", LEAD, 0, 0, 0, 0)
    assert await _link_statuses(db, codes) == {"x@example.com": 302}

    plan = await undo_plan(db, TEAM, c, window_days=WEEK)
    assert (plan.removes, plan.advocates, plan.invites_with_advocates) == (1, 1, 1)
    await _undo(db, c, advocates=True)
    assert await _members(db, "VIP") == []
    assert await _advocates(db) == {}
    assert await _counts(db, c) == ("undone", LEAD, 1, 0, 1, 1)
    assert await _link_statuses(db, codes) == {"x@example.com": 410}

@pytest.mark.parametrize("order", ["A then B", "B then A"])
async def test_undoing_both_imports_with_their_advocates_removes_the_advocate_in_either_order(
    db: Database, order: str,
) -> None:
    """Spring targets VIP and Other; A adds z to VIP (Spring enrolls it), B adds z to Other.
    Undone A then B, each with its advocates, the advocate stayed: A's undo kept it (Other
    still reached z) but it stayed A's, so B's undo didn't take it. B then A removed it. The
    undo that keeps it hands it on to the import whose membership still reaches z."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Z", "z@example.com")
    await import_target(db, TEAM, "VIP", create=True)
    await import_target(db, TEAM, "Other", create=True)
    await _live_campaign(db, "Spring", "VIP", "Other")
    a = await _import(db, "VIP", "z@example.com")
    b = await _import(db, "Other", "z@example.com")
    assert await _rows(db, "SELECT batch_id FROM advocate") == [(a,)]
    for batch in (a, b) if order == "A then B" else (b, a):
        await _undo(db, batch, advocates=True)
    assert await _advocates(db) == {}
    assert await _members(db, "Z") == ["z@example.com"]
    assert await _members(db, "VIP") == await _members(db, "Other") == []



async def test_an_advocate_a_later_import_found_enrolled_already_is_not_its_own(
    db: Database,
) -> None:
    """A adds y to VIP (Spring enrolls it); a lead takes y out of VIP, and B adds it again
    (a membership of its own, not handed on: y was an advocate already when B's enrollment
    ran). Undoing A with its advocates, then B with its own, takes y out of VIP but leaves its
    advocate: neither enrolled it through the membership that goes."""
    await ensure_workspace(db, TEAM)
    await _import(db, "Other", "y@example.com")
    await import_target(db, TEAM, "VIP", create=True)
    await _live_campaign(db, "Spring", "VIP")
    a = await _import(db, "VIP", "y@example.com")
    codes = await _advocates(db)
    y = await find_by_email(db, TEAM, "y@example.com")
    await remove_from_segment(db, TEAM, y, await _segment(db, "VIP"), LEAD)
    b = await _import(db, "VIP", "y@example.com")
    assert await _listings(db) == []
    for batch in (a, b):
        await _undo(db, batch, advocates=True)
    assert await _members(db, "VIP") == []
    assert await _advocates(db) == codes
    assert await _counts(db, b) == ("undone", LEAD, 1, 0, 1, 0)  # its invite: cancelled


async def test_the_plan_counts_what_goes_when_the_later_import_is_being_undone(
    db: Database,
) -> None:
    """A listing counts only while its import stands: B being undone hands nothing on."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com")
    second = await _import(db, "VIP", "x@example.com")
    plan = await undo_plan(db, TEAM, first, window_days=WEEK)
    assert (plan.removes, plan.deletes) == (0, 0)
    assert plan.hands_on == 1
    await request_undo(db, TEAM, second, LEAD, remove_advocates=False, window_days=WEEK)
    plan = await undo_plan(db, TEAM, first, window_days=WEEK)
    assert (plan.removes, plan.hands_on, plan.deletes) == (1, 0, 1)
    await _undo(db, first)
    assert await _contacts(db) == []
    await run_undo(db, TEAM, second)
    assert await _listings(db) == [] and await _counts(db, second) == ("undone", LEAD, 0, 0, 0, 0)


async def test_only_a_membership_another_import_added_is_listed(db: Database) -> None:
    """B (into VIP) brings x (in VIP through A), y (known, new to VIP), n (new) and w (in
    VIP, but not through an import): only x is recorded. An import of new contacts, or of
    known ones new to its segment, writes none."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "x@example.com", "w@example.com")
    other = await _import(db, "Other", "y@example.com")
    async with db.begin() as conn:
        await conn.execute(text("UPDATE segment_member SET batch_id = NULL WHERE contact_id = "
                                "(SELECT id FROM contact WHERE email = 'w@example.com')"))
    assert await _listings(db) == []
    second = await _import(db, "VIP", "x@example.com", "y@example.com", "n@example.com",
                           "w@example.com")  # fmt: skip
    assert await _listings(db) == [("VIP", "x@example.com", second)]
    assert await _owners(db, "VIP") == {
        "x@example.com": (first, first), "w@example.com": (None, first),
        "y@example.com": (second, other), "n@example.com": (second, second)}  # fmt: skip
    assert await _rows(db, "SELECT new_contacts, added_to_segment, already_in_segment "
                       "FROM import_batch WHERE id = :b", b=second) == [(1, 2, 2)]


async def _finished_days_ago(db: Database, days: float, *batches: int) -> None:
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :f WHERE id = :b")
                           .bindparams(bindparam("f", type_=UTCDateTime())),
                           [{"f": utcnow() - timedelta(days=days), "b": b} for b in batches])


async def test_no_listing_is_written_for_an_import_past_its_undo_window(
    db: Database, tmp_path: Path
) -> None:
    """A listing matters only while the import holding the membership can be undone: a list
    imported into the same segment again a month later records none (and skips looking its
    rows up), one within the window or being undone still does."""
    await ensure_workspace(db, TEAM)
    old = await _import(db, "VIP", "x@example.com", "y@example.com")
    recent = await _import(db, "VIP", "z@example.com")
    await _finished_days_ago(db, WEEK + 1, old)
    again = await _import(db, "VIP", "x@example.com", "y@example.com", "z@example.com",
                          window=WEEK)  # fmt: skip
    assert await _listings(db) == [("VIP", "z@example.com", again)]
    await _finished_days_ago(db, 30, recent)
    # a background import, as serve's workers run it, takes the window from the settings
    csv = tmp_path / "people.csv"
    csv.write_text("email\nx@example.com\ny@example.com\nz@example.com\n")
    job = await enqueue_file_import(db, TEAM, [csv], segment="VIP")
    kinds = handlers(load_settings(database_url=db.url, undo_window_days=WEEK))
    await Worker(db, {IMPORT_JOB: kinds[IMPORT_JOB]}, WorkerConfig()).run_until_idle()
    monthly = int(json.loads(job.payload)["batch_id"])
    assert await _listings(db) == [("VIP", "z@example.com", again)]
    assert await _rows(db, "SELECT added_to_segment, already_in_segment FROM import_batch "
                       "WHERE id = :b", b=monthly) == [(0, 3)]
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET status = 'undoing' WHERE id = :b"),
                           {"b": old})
    being_undone = await _import(db, "VIP", "x@example.com", window=WEEK)
    assert ("VIP", "x@example.com", being_undone) in await _listings(db)


async def test_a_crash_while_handing_on_resumes_without_counting_twice(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "a1@example.com", "a2@example.com", "a3@example.com",
                          "a4@example.com")  # fmt: skip
    second = await _import(db, "VIP", "a2@example.com", "a3@example.com")
    await request_undo(db, TEAM, first, LEAD, remove_advocates=False, window_days=WEEK)
    seen: list[tuple[int, int]] = []

    async def die_after_three(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 3:
            raise Killed

    with pytest.raises(Killed):
        await run_undo(db, TEAM, first, chunk_size=1, progress=die_after_three)
    assert seen == [(1, 4), (2, 4), (3, 4)]  # removed or handed on, of the 4 it added
    assert (await _counts(db, first))[2:4] == (1, 1) and await _handed_on(db, first) == 2
    await run_undo(db, TEAM, first, chunk_size=1)
    assert await _counts(db, first) == ("undone", LEAD, 2, 2, 0, 0)
    assert await _handed_on(db, first) == 2
    assert await _owners(db, "VIP") == {"a2@example.com": (second, second),
                                        "a3@example.com": (second, second)}  # fmt: skip


async def test_a_listing_goes_with_its_membership_removed_or_deleted_by_hand(
    db: Database,
) -> None:
    """A creates a, r and x in VIP; B lists all three. A lead takes r out of VIP and deletes
    x; then D imports r again into VIP and creates y, which SQLite gives x's id. Undoing A
    hands a on to B (and r, back in VIP through D, to D); undoing D then takes r and y out
    and deletes them: B's listings of r and x went with their memberships, and one left
    behind would keep r or y in VIP as B's."""
    await ensure_workspace(db, TEAM)
    first = await _import(db, "VIP", "a@example.com", "r@example.com", "x@example.com")
    second = await _import(db, "VIP", "a@example.com", "r@example.com", "x@example.com")
    x = await find_by_email(db, TEAM, "x@example.com")
    r = await find_by_email(db, TEAM, "r@example.com")
    await remove_from_segment(db, TEAM, r, await _segment(db, "VIP"), LEAD)
    await delete_contact(db, TEAM, x, LEAD)
    third = await _import(db, "VIP", "r@example.com", "y@example.com")
    if db.is_sqlite:
        assert await find_by_email(db, TEAM, "y@example.com") == x  # the id is reused

    plan = await undo_plan(db, TEAM, first, window_days=WEEK)
    assert (plan.removes, plan.deletes) == (0, 0)
    assert plan.hands_on == 1
    assert await _listings(db) == [("VIP", "a@example.com", second)]
    await _undo(db, first)
    assert await _owners(db, "VIP") == {"a@example.com": (second, second),
                                        "r@example.com": (third, third),
                                        "y@example.com": (third, third)}  # fmt: skip
    plan = await undo_plan(db, TEAM, third, window_days=WEEK)
    assert (plan.removes, plan.hands_on, plan.deletes) == (2, 0, 2)
    await _undo(db, third)
    assert await _members(db, "VIP") == ["a@example.com"]
    assert await _contacts(db) == ["a@example.com"]
    assert await _counts(db, third) == ("undone", LEAD, 2, 2, 0, 0)


async def test_deleting_the_segment_deletes_its_listings(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    await _import(db, "VIP", "x@example.com")
    await _import(db, "Other", "x@example.com")
    await _import(db, "Other", "x@example.com")
    await _import(db, "VIP", "x@example.com")
    assert [r[0] for r in await _listings(db)] == ["Other", "VIP"]
    await delete_segment(db, TEAM, await _segment(db, "VIP"), actor=LEAD)
    assert [r[0] for r in await _listings(db)] == ["Other"]


async def test_the_purge_forgets_listings_once_no_undo_can_hand_them_on(db: Database) -> None:
    """A listing matters while the import holding its membership can still be undone: the
    daily purge forgets it once that import is past the undo window (a workspace importing
    its whole list into one segment every month kept a row per contact and import for good).
    One whose holder can still be undone, or is being undone, stays."""
    await ensure_workspace(db, TEAM)
    old = await _import(db, "VIP", "x@example.com")
    undoing = await _import(db, "Other", "y@example.com")
    await _import(db, "New", "z@example.com")
    later = [await _import(db, segment, email) for segment, email in (
        ("VIP", "x@example.com"), ("Other", "y@example.com"), ("New", "z@example.com"))]
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :f WHERE id IN (:a, :b)")
                           .bindparams(bindparam("f", type_=UTCDateTime())),
                           {"f": utcnow() - timedelta(days=WEEK, hours=1), "a": old,
                            "b": undoing})  # fmt: skip
        await conn.execute(text("UPDATE import_batch SET status = 'undoing' WHERE id = :b"),
                           {"b": undoing})  # fmt: skip
        await conn.execute(text("UPDATE job SET run_after = :now WHERE kind = :k "
                                "AND state = 'queued'").bindparams(bindparam(
                                    "now", type_=UTCDateTime())),
                           {"now": utcnow(), "k": PURGE_JOB})  # fmt: skip
    kinds = handlers(load_settings(database_url=db.url, undo_window_days=WEEK))
    await Worker(db, {PURGE_JOB: kinds[PURGE_JOB]}, WorkerConfig()).run_until_idle()
    assert await _listings(db) == [("New", "z@example.com", later[2]),
                                   ("Other", "y@example.com", later[1])]  # fmt: skip
