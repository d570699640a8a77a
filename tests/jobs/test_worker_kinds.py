"""Workers claim only the kinds they can run; `jobs` says which queued jobs no live worker runs."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.app import build_worker
from bot.imports.background import enqueue_file_import
from bot.jobs import queue
from bot.settings import load_settings
from bot.workspaces import ensure_workspace
from models import Database
from models.clock import utcnow
from tests import shell
from tests.conftest import BACKEND
from tests.jobs.test_worker_processes import env_for, wait_for, write_csv

SLACK_FILE_JOB = "stage_slack_file"
MINUTE = timedelta(minutes=1)


async def jobs_cli(env: dict[str, str], *args: str) -> str:
    """`referral-bot jobs ...` (through bot.cli.main), without blocking this event loop."""
    done = await asyncio.to_thread(shell.run, env, "jobs", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_worker_without_slack_runs_imports_and_leaves_slack_files_waiting(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(db, "local")
    file_job = await queue.enqueue(db, "local", SLACK_FILE_JOB, {"source_id": 1})
    import_job = await enqueue_file_import(
        db, "local", [write_csv(tmp_path / "a.csv", 20)], segment="S", create_segment=True
    )
    env = env_for(db_env)
    before = {j["id"]: j["waiting_for_worker"] for j in json.loads(await jobs_cli(env, "--json"))}
    assert before[file_job.id] and before[import_job.id]  # no worker is running at all

    settings = load_settings(job_lease_seconds=2, worker_poll_seconds=0.05,
                             job_retry_base_seconds=0, import_chunk_rows=5)  # fmt: skip
    worker = build_worker(settings, None, db)  # no Slack client: no handler for Slack files
    running = asyncio.create_task(worker.run())
    try:

        async def imported() -> bool:
            found = await queue.get_job(db, "local", import_job.id)
            return found is not None and found.state == "done"

        await wait_for(imported, 30, "the import to finish")
        await asyncio.sleep(0.3)  # several more polls: the file job is still not taken
        left = await queue.get_job(db, "local", file_job.id)
        assert left is not None
        assert (left.state, left.attempts, left.last_error) == ("queued", 0, None)

        listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
        assert listed[file_job.id]["waiting_for_worker"] is True
        assert listed[import_job.id]["waiting_for_worker"] is False
        assert listed[import_job.id]["state"] == "done"
        lines = {int(line.split()[0]): line for line in (await jobs_cli(env)).splitlines()}
        assert "waiting for a worker that can run it" in lines[file_job.id]
        assert "SLACK_BOT_TOKEN" in lines[file_job.id]
        assert "waiting" not in lines[import_job.id]

        assert SLACK_FILE_JOB not in worker.kinds and "import" in worker.kinds
        (row,) = await queue.live_workers(db, MINUTE)
        assert row.owner == worker.owner and row.kind_set == worker.kinds
        assert not running.done()
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert await queue.live_workers(db, MINUTE) == []  # a clean stop removes its row
    left = await queue.get_job(db, "local", file_job.id)
    assert left is not None and (left.state, left.attempts) == ("queued", 0)


async def test_a_queued_kind_is_waiting_only_while_no_fresh_worker_runs_it(
    db: Database, db_env: dict[str, str]
) -> None:
    await ensure_workspace(db, "local")
    file_job = await queue.enqueue(db, "local", SLACK_FILE_JOB, {"source_id": 1})
    await queue.register_worker(db, "plain", {"import"}, pid=1, host="a")
    await queue.register_worker(db, "slacky", {"import", SLACK_FILE_JOB}, pid=2, host="b")
    assert await queue.live_kinds(db, MINUTE) == {"import", SLACK_FILE_JOB}
    env = env_for(db_env)
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
    assert listed[file_job.id]["waiting_for_worker"] is False
    lines = {int(line.split()[0]): line for line in (await jobs_cli(env)).splitlines()}
    assert "waiting" not in lines[file_job.id]

    async with db.begin() as conn:  # the Slack-capable worker stopped refreshing: it died
        update = text("UPDATE worker_process SET seen_at = :old WHERE owner = 'slacky'")
        old = bindparam("old", type_=UTCDateTime())
        await conn.execute(update.bindparams(old), {"old": utcnow() - timedelta(minutes=5)})
    assert await queue.live_kinds(db, MINUTE) == {"import"}
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
    assert listed[file_job.id]["waiting_for_worker"] is True

    await queue.register_worker(db, "slacky", {"import", SLACK_FILE_JOB}, pid=2, host="b")
    assert await queue.live_kinds(db, MINUTE) == {"import", SLACK_FILE_JOB}  # fresh again
    assert await queue.forget_stale_workers(db, MINUTE) == 0
    await queue.unregister_worker(db, "plain")
    await queue.unregister_worker(db, "slacky")
    assert await queue.live_kinds(db, MINUTE) == frozenset()


async def test_a_running_job_whose_worker_died_says_so_and_waits_for_one(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A worker killed mid-import (kill -9, out of memory) leaves its job `running` with a
    lease that expires. `jobs` said "running 173,800/200,000" for as long as no worker came
    back, with nothing running it; the queued job beside it said it was waiting."""
    await ensure_workspace(db, "local")
    job = await enqueue_file_import(
        db, "local", [write_csv(tmp_path / "a.csv", 20)], segment="S", create_segment=True
    )
    claimed = await queue.claim(db, "gone-host:4242:dead", 30.0, {"import"})  # as the worker did
    assert claimed is not None and claimed.id == job.id
    await queue.report_progress(db, claimed, "gone-host:4242:dead", 8, 20)
    env = env_for(db_env)
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
    assert (listed[job.id]["state"], listed[job.id]["worker_stopped"]) == ("running", False)
    lines = {int(line.split()[0]): line for line in (await jobs_cli(env)).splitlines()}
    batch = json.loads(job.payload)["batch_id"]
    # the import's number beside the job's: `undo 3` of a job's number undid another import
    assert lines[job.id].endswith(f"8/20  attempts 1/5  import #{batch}")

    async with db.begin() as conn:  # then it was killed: nothing renews its lease
        update = text("UPDATE job SET lease_expires_at = :old WHERE id = :id")
        old = bindparam("old", type_=UTCDateTime())
        await conn.execute(update.bindparams(old), {"old": utcnow() - MINUTE, "id": job.id})
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
    assert (listed[job.id]["state"], listed[job.id]["worker_stopped"],
            listed[job.id]["waiting_for_worker"]) == ("running", True, True)  # fmt: skip
    lines = {int(line.split()[0]): line for line in (await jobs_cli(env)).splitlines()}
    assert lines[job.id].endswith(f"8/20  attempts 1/5  import #{batch}  its worker stopped  "
                                  "waiting for a worker that can run it")  # fmt: skip

    # the dead worker's own row is still fresh (seen within stale_after): it resumes nothing
    await queue.register_worker(db, "gone-host:4242:dead", {"import"}, pid=4242, host="gone")
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
    assert (listed[job.id]["worker_stopped"], listed[job.id]["waiting_for_worker"]) == (True, True)
    await queue.unregister_worker(db, "gone-host:4242:dead")

    await queue.register_worker(db, "alive", {"import"}, pid=2, host="b")  # one is back
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
    assert (listed[job.id]["worker_stopped"], listed[job.id]["waiting_for_worker"],
            listed[job.id]["out_of_attempts"]) == (True, False, False)  # fmt: skip
    lines = {int(line.split()[0]): line for line in (await jobs_cli(env)).splitlines()}
    assert lines[job.id].endswith("its worker stopped; another worker resumes it")
    await queue.unregister_worker(db, "alive")


async def test_a_job_whose_worker_died_in_its_last_attempt_is_not_promised_a_resume(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """An import whose worker died during its last attempt: `jobs` said "another worker
    resumes it", but the next worker gave it up (failed the import) instead of resuming."""
    await ensure_workspace(db, "local")
    job = await enqueue_file_import(db, "local", [write_csv(tmp_path / "a.csv", 20)],
                                    segment="S", create_segment=True, max_attempts=2)  # fmt: skip
    for attempt in range(2):  # both attempts' workers were killed (out of memory, say)
        assert await queue.claim(db, f"dead-{attempt}", lease_seconds=-1) is not None
    await queue.register_worker(db, "alive", {"import"}, pid=2, host="b")  # one is running
    env = env_for(db_env)
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env, "--json"))}
    assert (listed[job.id]["worker_stopped"], listed[job.id]["out_of_attempts"],
            listed[job.id]["waiting_for_worker"]) == (True, True, False)  # fmt: skip
    lines = {int(line.split()[0]): line for line in (await jobs_cli(env)).splitlines()}
    assert lines[job.id].endswith(
        f"attempts 2/2  import #{json.loads(job.payload)['batch_id']}  its worker stopped; out "
        "of attempts: the next worker ends it, done if its work was finished, else "
        "failed")  # fmt: skip
    await queue.unregister_worker(db, "alive")
    await build_worker(load_settings(), None, db).run_until_idle()  # what the next worker does
    after = await queue.get_job(db, "local", job.id or 0)
    assert after is not None and after.state == "failed"


async def test_jobs_lists_every_failed_job_and_says_how_many_it_leaves_out(
    db: Database, db_env: dict[str, str]
) -> None:
    """`jobs` listed the newest 50 jobs and stopped, without a word: an import that failed an
    hour ago, behind 50 home refreshes since, was simply not there."""
    await ensure_workspace(db, "local")
    failed = await queue.enqueue(db, "local", "import", {"batch_id": 1})
    for n in range(55):
        await queue.enqueue(db, "local", "home_refresh", {"n": n})
    async with db.begin() as conn:
        await conn.execute(text("UPDATE job SET state = CASE WHEN id = :j THEN 'failed' "
                                "ELSE 'done' END"), {"j": failed.id})  # fmt: skip
    waiting = await queue.enqueue(db, "local", "home_refresh", {"n": 55})
    env = env_for(db_env)

    def listed(out: str) -> list[int]:
        return [int(line.split()[0]) for line in out.splitlines() if line.strip()[:1].isdigit()]

    out = await jobs_cli(env)
    shown = listed(out)
    assert shown[0] == waiting.id and shown[-1] == failed.id and len(shown) == 52
    assert out.rstrip().endswith("… and 5 older done or cancelled jobs not shown (--all lists "
                                 "them)")  # fmt: skip
    everything = await jobs_cli(env, "--all")
    assert len(listed(everything)) == 57 and "not shown" not in everything
    done = await asyncio.to_thread(shell.run, env, "jobs", "--json")
    assert done.returncode == 0 and len(json.loads(done.stdout)) == 52
    assert "5 older done or cancelled jobs not shown" in done.stderr


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite's processes share one host's clock")
async def test_jobs_on_a_host_whose_clock_runs_ahead_sees_a_live_worker_alive(
    db: Database, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jobs` compared leases with its own host's clock: run on a host 45 s ahead, it said of
    a job whose worker renewed its 30 s lease a moment ago "its worker stopped"."""
    await ensure_workspace(db, "local")
    job = await queue.enqueue(db, "local", "import", {"batch_id": 1})
    assert await queue.claim(db, "host-a", 30.0, {"import"}) is not None
    await queue.register_worker(db, "host-a", {"import"}, pid=1, host="a")
    ahead = lambda: utcnow() + timedelta(seconds=45)  # noqa: E731
    for module in ("bot.cli", "bot.jobs.queue"):  # this host's clock, wherever it is read
        monkeypatch.setattr(f"{module}.utcnow", ahead, raising=False)
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env_for(db_env), "--json"))}
    assert listed[job.id]["worker_stopped"] is False


@pytest.mark.skipif(BACKEND != "postgres", reason="several hosts' clocks: PostgreSQL")
async def test_a_live_worker_on_a_host_whose_clock_lags_is_seen_alive(
    db: Database, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker rows were stamped and compared by each host's own clock (leases by the
    server's): with the worker's host two minutes behind, `jobs` said a queued import was
    "waiting for a worker that can run it" while that worker was running one. The host's
    clock is set back by replacing the clock the queue reads."""
    await ensure_workspace(db, "local")
    async with db.begin() as conn:  # due by either clock
        running = await queue.enqueue_in(conn, "local", "import", {"batch_id": 1},
                                         run_after=utcnow() - timedelta(minutes=5))  # fmt: skip
    queued = await queue.enqueue(db, "local", "import", {"batch_id": 2})
    monkeypatch.setattr(queue, "utcnow", lambda: utcnow() - timedelta(minutes=2))
    claimed = await queue.claim(db, "host-b", 30.0, {"import"})
    assert claimed is not None and claimed.id == running
    await queue.register_worker(db, "host-b", {"import"}, pid=1, host="b")
    monkeypatch.undo()
    listed = {j["id"]: j for j in json.loads(
        await jobs_cli(env_for(db_env, JOB_LEASE_SECONDS="30"), "--json"))}  # fmt: skip
    assert listed[running]["worker_stopped"] is False
    assert listed[queued.id]["waiting_for_worker"] is False


async def test_a_worker_dead_on_another_workspaces_job_is_dead_for_every_workspace(
    db: Database, db_env: dict[str, str]
) -> None:
    """Workers are shared by every workspace. One killed while running T2's job (its lease
    lapsed, its row not yet stale) runs nothing, this workspace's queued job included; it was
    judged dead only for the workspace whose job it held, so this one's `jobs` (and Home's
    "waiting for a sender", the undo check) said nothing was wrong."""
    for team in ("local", "T2"):
        await ensure_workspace(db, team)
    await queue.register_worker(db, "host-a:1:abc", {SLACK_FILE_JOB}, pid=1, host="host-a")
    theirs = await queue.enqueue(db, "T2", SLACK_FILE_JOB, {"source_id": 1})
    taken = await queue.claim(db, "host-a:1:abc#0", 30, {SLACK_FILE_JOB})
    assert taken is not None and taken.id == theirs.id
    async with db.begin() as conn:  # the worker was killed: its lease on T2's job lapsed
        await conn.execute(text("UPDATE job SET lease_expires_at = :past WHERE id = :j")
                           .bindparams(bindparam("past", type_=UTCDateTime)),
                           {"past": utcnow() - MINUTE, "j": theirs.id})  # fmt: skip
    ours = await queue.enqueue(db, "local", SLACK_FILE_JOB, {"source_id": 2})
    listed = {j["id"]: j for j in json.loads(await jobs_cli(env_for(db_env), "--json",
                                                               "--team", "local"))}  # fmt: skip
    assert listed[ours.id]["waiting_for_worker"] is True
