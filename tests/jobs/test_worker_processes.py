"""Real `referral-bot worker` processes: killed, stopped politely, and two sharing one queue.

The jobs are queued with `referral-bot import --background` through the real entry point in
this process (tests/shell.py); the workers are real processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.imports.background import enqueue_file_import
from bot.jobs import queue
from bot.workspaces import ensure_workspace
from models import Database, Job
from tests import shell
from tests.conftest import BACKEND, requires_postgres
from tests.shell import CLI


def env_for(db_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.update(db_env)
    env.update({"JOB_LEASE_SECONDS": "2", "WORKER_POLL_SECONDS": "0.1",
                "JOB_RETRY_BASE_SECONDS": "0", **extra})  # fmt: skip
    return env


def write_csv(path: Path, rows: int, start: int = 0) -> Path:
    with path.open("w") as f:
        f.write("email,first_name,last_name\n")
        f.writelines(f"user{i}@example.com,First{i},Last{i}\n" for i in range(start, start + rows))
    return path


def enqueue(env: dict[str, str], path: Path, segment: str) -> int:
    out = shell.run(env, "import", str(path), "--segment", segment, "--create-segment",
                    "--background", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)["job"])


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "worker", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def job(db: Database, job_id: int) -> Job:
    found = await queue.get_job(db, "local", job_id)
    assert found is not None
    return found


async def scalar(db: Database, sql: str) -> int:
    async with db.begin() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


# Chunks of 1,000 (2,000 once): every row is parsed, staged and applied, so half the CPU.
CHUNK = 1000
ROWS = 50_000  # the killed worker's import: 50,000 rows
# The process a test stops part way (a signal, a kill, `jobs cancel`) applies chunks of 100:
# with 1,000 a shell's 75 chunks were all in ~1.3 s after its third (a worker's 50, ~0.9 s),
# and in a loaded full run (3 test processes on 2 cores, a slow hour) the signal came after
# two shell imports had ended. With 100 the margin is ~4.4 s; whatever finishes the import
# uses CHUNK again.
STOPPED_CHUNK = 100


async def test_killed_worker_job_finishes_exactly_once_elsewhere(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(db, "local")
    env = env_for(db_env, IMPORT_CHUNK_ROWS=str(CHUNK))
    job_id = enqueue(env, write_csv(tmp_path / "big.csv", ROWS), "Big")
    first = start_worker({**env, "IMPORT_CHUNK_ROWS": str(STOPPED_CHUNK)})
    try:

        async def applying() -> bool:
            return (await job(db, job_id)).progress_done >= 3 * STOPPED_CHUNK

        await wait_for(applying, 120, "the first worker to apply some chunks")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    interrupted = await job(db, job_id)
    assert interrupted.state == "running" and interrupted.progress_done < ROWS
    applied = await scalar(db, "SELECT COUNT(*) FROM contact")
    assert 0 < applied < ROWS

    second = start_worker(env)
    try:

        async def finished() -> bool:
            return (await job(db, job_id)).state == "done"

        await wait_for(finished, 180, "the second worker to finish the job")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    done = await job(db, job_id)
    assert (done.attempts, done.progress_done, done.progress_total) == (2, ROWS, ROWS)
    assert await scalar(db, "SELECT COUNT(*) FROM contact") == ROWS
    assert await scalar(db, "SELECT COUNT(DISTINCT email_key) FROM contact") == ROWS
    assert await scalar(db, "SELECT COUNT(*) FROM segment_member") == ROWS
    assert await scalar(db, "SELECT new_contacts FROM import_batch") == ROWS
    assert await scalar(db, "SELECT added_to_segment FROM import_batch") == ROWS


async def test_sigterm_releases_the_job_at_a_chunk_boundary(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(db, "local")
    env = env_for(db_env, IMPORT_CHUNK_ROWS=str(CHUNK))
    job_id = enqueue(env, write_csv(tmp_path / "mid.csv", 30 * CHUNK), "Mid")
    worker = start_worker({**env, "IMPORT_CHUNK_ROWS": str(STOPPED_CHUNK)})
    try:

        async def applying() -> bool:
            return (await job(db, job_id)).progress_done >= 2 * STOPPED_CHUNK

        await wait_for(applying, 120, "the worker to apply some chunks")
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "Worker stopped: 0 jobs done." in err
    released = await job(db, job_id)
    assert (released.state, released.attempts, released.lease_owner) == ("queued", 0, None)
    contacts = await scalar(db, "SELECT COUNT(*) FROM contact")
    assert 0 < contacts < 30 * CHUNK and contacts % STOPPED_CHUNK == 0  # whole chunks only
    cursor = await scalar(db, "SELECT apply_cursor - (SELECT MIN(id) FROM staged_row) "
                              "FROM import_batch")  # fmt: skip
    assert cursor == contacts

    finisher = start_worker(env)
    try:

        async def finished() -> bool:
            return (await job(db, job_id)).state == "done"

        await wait_for(finished, 120, "another worker to finish")
    finally:
        finisher.send_signal(signal.SIGTERM)
        finisher.wait(30)
    assert await scalar(db, "SELECT COUNT(*) FROM contact") == 30 * CHUNK
    assert (await job(db, job_id)).attempts == 1


SHELL_ROWS = 75_000  # a shell import stopped part way


def start_import(env: dict[str, str], path: Path, segment: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "import", str(path), "--segment", segment,
                             "--create-segment", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


async def _import_job(db: Database) -> Job:
    async with db.begin() as conn:
        job_id = (await conn.execute(
            text("SELECT MAX(id) FROM job WHERE kind = 'import'"))).scalar()  # fmt: skip
    assert job_id is not None, "the shell's import queued no job"
    return await job(db, int(job_id))


async def _stop_shell_import(db: Database, env: dict[str, str], path: Path,
                             sig: signal.Signals) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Start `referral-bot import` of `path` into Big and send it `sig` once some of its
    chunks are in."""
    shell_import = start_import({**env, "IMPORT_CHUNK_ROWS": str(STOPPED_CHUNK)}, path, "Big")
    try:

        async def applying() -> bool:
            return await scalar(db, "SELECT COUNT(*) FROM contact") >= 3 * STOPPED_CHUNK

        await wait_for(applying, 120, "the shell's import to apply some chunks")
        shell_import.send_signal(sig)
        out, err = shell_import.communicate(timeout=60)
    finally:
        shell_import.kill()
    return subprocess.CompletedProcess(shell_import.args, shell_import.returncode, out, err)


async def _finish_with_a_worker(db: Database, env: dict[str, str]) -> None:
    """Until the import and the enrollment jobs it queued are done: stopped as soon as the
    import was, the worker sometimes never got to the enrollment (CI saw 1 advocate)."""
    worker = start_worker(env)
    try:

        async def finished() -> bool:
            if (await _import_job(db)).state != "done":
                return False
            return await scalar(db, "SELECT COUNT(*) FROM job WHERE kind = 'enroll' "
                                    "AND state <> 'done'") == 0  # fmt: skip

        await wait_for(finished, 180, "a worker to finish the shell's import")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


async def test_a_shell_import_killed_part_way_is_finished_by_a_worker_with_its_enrollment(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """It ran with no job: killed, its import stayed "importing" for ever (the segment
    undeletable, nothing in `jobs`) and a live campaign never enrolled what it added."""
    env = env_for(db_env, IMPORT_CHUNK_ROWS=str(CHUNK))
    first = shell.run(env, "import", str(write_csv(tmp_path / "one.csv", 1)), "--segment",
                      "Big", "--create-segment")  # fmt: skip
    assert first.returncode == 0, first.stderr
    for argv in (("campaign", "create", "Spring", "--store-url", "https://shop.example",
                  "--no-invite-email", "--live"),
                 ("campaign", "target", "Spring", "--segment", "Big")):  # fmt: skip
        done = shell.run(env, *argv)
        assert done.returncode == 0, done.stderr
    await _stop_shell_import(db, env, write_csv(tmp_path / "big.csv", SHELL_ROWS, start=1),
                             signal.SIGKILL)  # fmt: skip
    interrupted = await _import_job(db)
    assert (interrupted.state, interrupted.attempts) == ("running", 1)
    assert interrupted.progress_total == SHELL_ROWS and interrupted.progress_done > 0  # `jobs`
    assert interrupted.lease_owner is not None and interrupted.lease_owner.startswith("shell:")
    assert 0 < await scalar(db, "SELECT COUNT(*) FROM contact") < SHELL_ROWS + 1

    await _finish_with_a_worker(db, env)
    assert await scalar(db, "SELECT COUNT(*) FROM contact") == SHELL_ROWS + 1
    assert await scalar(db, "SELECT COUNT(*) FROM segment_member") == SHELL_ROWS + 1
    assert await scalar(db, "SELECT COUNT(*) FROM import_batch WHERE status = 'done'") == 2
    assert await scalar(db, "SELECT COUNT(*) FROM advocate") == SHELL_ROWS + 1


async def test_ctrl_c_hands_a_shell_import_to_the_workers_at_once(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    env = env_for(db_env, IMPORT_CHUNK_ROWS=str(CHUNK), JOB_LEASE_SECONDS="600")
    stopped = await _stop_shell_import(db, env, write_csv(tmp_path / "big.csv", SHELL_ROWS),
                                       signal.SIGINT)  # fmt: skip
    assert stopped.returncode == 130, stopped.stderr
    handed = await _import_job(db)
    assert (handed.state, handed.attempts, handed.lease_owner) == ("queued", 0, None), \
        stopped.stderr
    await _finish_with_a_worker(db, env)  # at once: not after the 10-minute lease
    assert await scalar(db, "SELECT COUNT(*) FROM contact") == SHELL_ROWS
    assert await scalar(db, "SELECT new_contacts FROM import_batch") == SHELL_ROWS


async def test_a_shell_import_cancelled_from_another_shell_says_so(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """It printed "Imported into segment 'Big'" with counts that didn't add up, exit 0."""
    env = env_for(db_env, IMPORT_CHUNK_ROWS=str(STOPPED_CHUNK))  # cancelled well before the end
    shell_import = start_import(env, write_csv(tmp_path / "big.csv", SHELL_ROWS), "Big")
    try:

        async def applying() -> bool:
            return await scalar(db, "SELECT COUNT(*) FROM contact") >= 3 * STOPPED_CHUNK

        await wait_for(applying, 120, "the shell's import to apply some chunks")
        job = await _import_job(db)
        cancelled = shell.run(env, "jobs", "cancel", str(job.id))
        assert cancelled.returncode == 0, cancelled.stderr
        # what it leaves, and how to take it out (it said "Job 2 is cancelled." alone)
        number = json.loads(job.payload or "{}")["batch_id"]
        assert cancelled.stdout == (
            f"Job {job.id} is cancelled. It stops at its next chunk; the contacts it imported "
            f"before then stay (`referral-bot undo {number}` takes them out).\n")  # fmt: skip
        out, err = shell_import.communicate(timeout=60)
    finally:
        shell_import.kill()
    assert shell_import.returncode == 1, out
    assert "Traceback" not in err, err
    added = await scalar(db, "SELECT COUNT(*) FROM contact")
    assert f"was cancelled part way: {added:,} new contacts" in err
    assert await scalar(db, "SELECT COUNT(*) FROM import_batch WHERE status = 'cancelled'") == 1


@requires_postgres
@pytest.mark.skipif(BACKEND != "postgres", reason="two workers share a queue on PostgreSQL only")
async def test_two_workers_share_ten_jobs_without_double_work(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(db, "local")
    env = env_for(db_env, IMPORT_CHUNK_ROWS="500")
    workers = [start_worker(env), start_worker(env)]
    try:
        # both ready before any job exists, or a fast one could run all ten alone
        async def both_ready() -> bool:
            return await scalar(db, "SELECT COUNT(*) FROM worker_process") == 2

        await wait_for(both_ready, 120, "both workers to start")
        # queued in this process (the CLI's --background path, tested elsewhere, costs a
        # process start each): files overlap, so later ones find known contacts
        ids = [
            (await enqueue_file_import(db, "local", [write_csv(tmp_path / f"f{n}.csv", 1500,
                                                               start=n * 1000)],
                                       segment=f"S{n}", create_segment=True)).id
            for n in range(10)
        ]  # fmt: skip

        async def all_done() -> bool:
            return [(await job(db, i)).state for i in ids] == ["done"] * len(ids)

        await wait_for(all_done, 240, "ten jobs to finish")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
    finished = [w.communicate(timeout=60)[1] for w in workers]
    counts = [int(e.rsplit("Worker stopped: ", 1)[1].split(" ")[0].replace(",", ""))
              for e in finished]  # fmt: skip
    assert sum(counts) == 10 and all(counts), finished
    assert [(await job(db, i)).attempts for i in ids] == [1] * len(ids)
    assert await scalar(db, "SELECT COUNT(*) FROM contact") == 9 * 1000 + 1500
    assert await scalar(db, "SELECT COUNT(*) FROM segment_member") == 10 * 1500
    assert await scalar(db, "SELECT SUM(new_contacts) FROM import_batch") == 9 * 1000 + 1500
