"""`referral-bot import FILE... --background` names each file as it was typed, as the
foreground import does (bot.cli._labels): in the job's error (`referral-bot jobs`), the
import's error (App Home, in Slack) and its sources' names.

The job's files were named by their last part: two customers.csv in two folders were
"customers.csv" and "customers (2).csv", and a file gone since it was queued was named by the
absolute path the worker reads, which nobody had typed. The imports are queued through the
real entry point, from the folder the paths are typed in; a real `referral-bot worker`
process, started in another folder, runs them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import text

from handlers.home_messages import import_line
from handlers.home_publish import recent_imports
from models import Database
from tests.imports import exports
from tests.shell import CLI, environment, run

TEAM = "local"  # the workspace the shell makes on first use


def env_for(db_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The test's database, and a worker that polls often and retries at once."""
    return {**db_env, "JOB_LEASE_SECONDS": "2", "WORKER_POLL_SECONDS": "0.1",
            "JOB_RETRY_BASE_SECONDS": "0", **extra}  # fmt: skip


def queue_import(env: dict[str, str], cwd: Path, *args: str) -> int:
    """`referral-bot import ARGS --background --json`, typed in `cwd`: the job's id."""
    queued = run(env, "import", *args, "--background", "--json", cwd=cwd)
    assert queued.returncode == 0, queued.stderr
    return int(json.loads(queued.stdout)["job"])


async def job_state(db: Database, job_id: int) -> str:
    async with db.begin() as conn:
        return str((await conn.execute(text("SELECT state FROM job WHERE id = :j"),
                                       {"j": job_id})).scalar_one())  # fmt: skip


async def run_worker(db: Database, env: dict[str, str], cwd: Path, *job_ids: int) -> None:
    """A real `referral-bot worker` in `cwd` until the jobs are done or failed, then stopped."""
    cwd.mkdir(exist_ok=True)
    with (cwd / "worker.log").open("w") as log:
        worker = subprocess.Popen([*CLI, "worker"], env=environment(env), cwd=cwd,
                                  stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while not all([await job_state(db, j) in ("done", "failed") for j in job_ids]):
                assert worker.poll() is None, (cwd / "worker.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (cwd / "worker.log").read_text()[-3000:]
                await asyncio.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def listed_job(env: dict[str, str], job_id: int) -> dict[str, object]:
    """The job as `referral-bot jobs --json` lists it."""
    jobs = run(env, "jobs", "--json")
    assert jobs.returncode == 0, jobs.stderr
    return next(j for j in json.loads(jobs.stdout) if j["id"] == job_id)


async def labels_and_notes(db: Database, segment: str) -> list[tuple[str, str | None]]:
    """The sources of the import into `segment`: (name, note), in order."""
    async with db.begin() as conn:
        rows = (await conn.execute(text(
            "SELECT s.label, s.note FROM import_source s JOIN import_batch b ON b.id = s.batch_id "
            "JOIN segment g ON g.id = b.segment_id WHERE g.name = :n ORDER BY s.id"),
            {"n": segment})).all()  # fmt: skip
    return [(label, note) for label, note in rows]


async def home_lines(db: Database) -> list[str]:
    """What App Home says of each recent import (handlers.home_messages), newest first."""
    rows, _ = await recent_imports(db, TEAM)
    return [import_line(row) for row in rows]


async def test_a_jobs_errors_name_the_files_as_typed(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Two imports, queued from the folder their paths are typed in, fail in a worker that
    runs elsewhere: `a/customers.csv b/customers.csv`, b's changed to a file without an email
    column since, said "customers (2).csv: No email column", a name nobody typed, or has; and
    `exports/gone.csv`, moved away since, said "FileNotFoundError: [Errno 2] No such file or
    directory: '/home/ana/exports/gone.csv'", the path the worker reads, on Home in Slack
    too. The foreground import says "b/customers.csv: …" and names what was typed."""
    env = env_for(db_env)
    for folder, address in (("a", "ana"), ("b", "bo")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "customers.csv").write_text(f"email\n{address}@example.com\n")
    (tmp_path / "exports").mkdir()
    gone = tmp_path / "exports" / "gone.csv"
    gone.write_text("email\ncy@example.com\n")
    twins = queue_import(env, tmp_path, "a/customers.csv", "b/customers.csv",
                         "--segment", "Twins", "--create-segment")  # fmt: skip
    moved = queue_import({**env, "JOB_MAX_ATTEMPTS": "2"}, tmp_path, "exports/gone.csv",
                         "--segment", "Gone", "--create-segment")  # fmt: skip
    (tmp_path / "b" / "customers.csv").write_text("name\nBo\n")
    gone.unlink()

    await run_worker(db, env, tmp_path / "elsewhere", twins, moved)

    told_apart, vanished = listed_job(env, twins), listed_job(env, moved)
    assert told_apart["state"] == "failed", told_apart
    assert str(told_apart["error"]).startswith("b/customers.csv: No email column found."), (
        told_apart)
    assert (vanished["state"], vanished["attempts"]) == ("failed", 2), vanished
    assert str(vanished["error"]).startswith("exports/gone.csv: no such file (moved or deleted "
                                             "since the import was queued?)."), vanished
    assert str(tmp_path) not in json.dumps([told_apart, vanished])  # their payloads neither
    # a file gone is said in a line an attempt, its last one too: no traceback of it
    logged = (tmp_path / "elsewhere" / "worker.log").read_text()
    assert "exports/gone.csv: no such file" in logged and "Traceback" not in logged, logged
    shown = run(env, "jobs").stdout
    assert "b/customers.csv: No email column found." in shown, shown
    assert "customers (2).csv" not in shown and str(tmp_path) not in shown, shown
    async with db.begin() as conn:
        errors = dict((await conn.execute(text(
            "SELECT g.name, b.error FROM import_batch b JOIN segment g ON g.id = b.segment_id "
            "WHERE b.status = 'failed'"))).all())  # fmt: skip
    assert errors["Twins"].startswith("b/customers.csv: No email column found."), errors
    assert errors["Gone"].startswith("exports/gone.csv: no such file (moved"), errors
    assert str(tmp_path) not in json.dumps(errors), errors
    assert [label for label, _ in await labels_and_notes(db, "Twins")] == [
        "a/customers.csv", "b/customers.csv"]
    assert [label for label, _ in await labels_and_notes(db, "Gone")] == ["exports/gone.csv"]
    # App Home, in Slack, shows each import's error: as the shell typed the paths
    home = "\n".join(await home_lines(db))
    assert "b/customers.csv: No email column found." in home, home
    assert "exports/gone.csv" in home and "customers (2).csv" not in home, home
    assert str(tmp_path) not in home, home


async def test_a_zip_and_a_workbook_get_the_names_the_foreground_import_gives_them(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`import sub/export.zip sub/Kunden.xlsx`: the foreground import's sources are
    "sub/export.zip › members.csv", "sub/Kunden.xlsx"... and the notes name "sub/export.zip";
    in the background they were "export.zip › members.csv", "Kunden.xlsx"."""
    env = env_for(db_env)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "export.zip").write_bytes(exports.mailchimp_zip())
    (tmp_path / "sub" / "Kunden.xlsx").write_bytes(exports.xlsx_workbook())
    files = ["sub/export.zip", "sub/Kunden.xlsx"]
    here = run(env, "import", *files, "--segment", "Here", "--create-segment", "--json",
               cwd=tmp_path)  # fmt: skip
    assert here.returncode == 0, here.stderr
    job_id = queue_import(env, tmp_path, *files, "--segment", "There", "--create-segment")

    await run_worker(db, env, tmp_path / "elsewhere", job_id)

    listed = listed_job(env, job_id)
    assert listed["state"] == "done", listed
    foreground = await labels_and_notes(db, "Here")
    background = await labels_and_notes(db, "There")
    # in another order: the job made both files' sources before it read the ZIP's CSVs
    assert sorted(background, key=str) == sorted(foreground, key=str)
    labels = [label for label, _ in background]
    assert len(labels) == 4 and labels[1] == "sub/Kunden.xlsx", labels
    assert all(label.startswith("sub/export.zip › ") for label in labels[:1] + labels[2:]), labels
    assert any(note and "sub/export.zip" in note for _, note in background), background
    assert not any(str(tmp_path) in (note or "") for _, note in background), background


def test_a_file_in_a_folder_whose_name_isnt_utf8_is_refused_in_one_line(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The job reads the file by its full path, which the database keeps as text: a folder
    named in Latin-1 (`café/a.csv`) was refused only for a file's own name, and a folder's
    ended in a traceback ("UnicodeEncodeError: 'utf-8' codec can't encode character
    '\\udce9'"). The foreground import reads it, under a readable label."""
    folder = tmp_path / b"caf\xe9".decode("utf-8", "surrogateescape")  # as os.listdir has it
    folder.mkdir()
    (folder / "a.csv").write_text("email\nana@example.com\n")
    refused = run(db_env, "import", str(folder / "a.csv"), "--segment", "S", "--create-segment",
                  "--background")  # fmt: skip
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr == (f"referral-bot: {tmp_path}/caf\ufffd/a.csv: the name of a folder "
                              "it is in isn't UTF-8; move it, or import it without "
                              "--background.\n"), refused.stderr  # fmt: skip
    assert json.loads(run(db_env, "jobs", "--json").stdout) == []
    here = run(db_env, "import", str(folder / "a.csv"), "--segment", "S", "--create-segment",
               "--json")  # fmt: skip
    assert here.returncode == 0 and json.loads(here.stdout)["new_contacts"] == 1, here.stderr
