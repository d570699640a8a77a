"""`referral-bot import FILE... --background --create-segment` withdraws the segment it made
when its job comes to nothing, as the foreground import does (bot.segments.withdraw_segment),
and says so where the import's result is told: `referral-bot jobs`, App Home, the audit log.

The job failed its import and left the new segment behind, empty: in every segment menu and
in `segments`, its name taken when the person tried again. A segment the import didn't make,
or one that holds contacts by the time the job fails, stays. The imports are queued through
the real entry point; a real `referral-bot worker` process runs them.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from bot.imports.background import NOTHING_VALID
from bot.jobs import queue
from bot.workspaces import create_segment, ensure_workspace
from models import Database
from tests.imports.test_background_labels import (
    TEAM,
    env_for,
    home_lines,
    listed_job,
    run_worker,
)
from tests.shell import run


def queue_import(env: dict[str, str], *args: str) -> int:
    """`referral-bot import ARGS --background --json`: the job's id."""
    queued = run(env, "import", *args, "--background", "--json")
    assert queued.returncode == 0, queued.stderr
    return int(json.loads(queued.stdout)["job"])


def removed(name: str) -> str:
    return f"The segment {name!r}, created for this import, was removed again."


async def test_a_segment_made_for_an_import_that_comes_to_nothing_is_withdrawn(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Five imports fail in the worker: "Fresh" (made by its import, which finds no valid
    address), "Moved" (made by its import, whose file is gone) and "Lost" (made by its
    import, whose every attempt ended with its worker killed) are withdrawn; "Kept" (there
    before: --create-segment made nothing) and "Filled" (made by its import, but a
    foreground import put a contact in it meanwhile) stay."""
    await ensure_workspace(db, TEAM)
    await create_segment(db, TEAM, "Kept")
    env = env_for(db_env)
    invalid = tmp_path / "invalid.csv"
    invalid.write_text("email,first_name\nnot-an-email,A\n")
    gone = tmp_path / "gone.csv"
    gone.write_text("email\nana@example.com\n")
    lost = queue_import({**env, "JOB_MAX_ATTEMPTS": "1"}, str(gone), "--segment", "Lost",
                        "--create-segment")  # fmt: skip
    # its one attempt's worker dies: out of attempts, the next worker gives up on it
    assert (await queue.claim(db, "killed", lease_seconds=-1, kinds={"import"})).id == lost
    jobs = {
        "Fresh": queue_import(env, str(invalid), "--segment", "Fresh", "--create-segment"),
        "Moved": queue_import({**env, "JOB_MAX_ATTEMPTS": "2"}, str(gone), "--segment",
                              "Moved", "--create-segment"),
        "Kept": queue_import(env, str(invalid), "--segment", "Kept", "--create-segment"),
        "Filled": queue_import(env, str(invalid), "--segment", "Filled", "--create-segment"),
    }  # fmt: skip
    gone.unlink()
    jobs["Lost"] = lost
    bo = tmp_path / "bo.csv"
    bo.write_text("email\nbo@example.com\n")
    filled = run(env, "import", str(bo), "--segment", "Filled")
    assert filled.returncode == 0, filled.stderr

    await run_worker(db, env, tmp_path / "worker", *jobs.values())

    # `referral-bot jobs` says why each failed, and which segment went with it
    errors = {name: listed_job(env, job_id) for name, job_id in jobs.items()}
    assert {name: job["state"] for name, job in errors.items()} == dict.fromkeys(jobs, "failed")
    assert errors["Fresh"]["error"] == f"{NOTHING_VALID} {removed('Fresh')}", errors["Fresh"]
    moved = str(errors["Moved"]["error"])
    # (the file named as typed: tests/imports/test_background_labels.py)
    assert moved == (f"{gone}: no such file (moved or deleted since the import was queued?). "
                     f"{removed('Moved')}"), moved
    assert errors["Kept"]["error"] == NOTHING_VALID, errors["Kept"]
    assert errors["Filled"]["error"] == NOTHING_VALID, errors["Filled"]
    # the worker's own words, "gave up: ...", then the segment's going, as the import's error
    lost = str(errors["Lost"]["error"])
    assert lost.startswith("gave up: ") and lost.endswith(f"?). {removed('Lost')}"), lost
    shown = run(env, "jobs").stdout
    assert all(removed(name) in shown for name in ("Fresh", "Moved", "Lost")), shown

    segments = json.loads(run(env, "segments", "--json").stdout)
    assert {s["name"]: s["contacts"] for s in segments} == {
        "All Customers": 1, "Filled": 1, "Kept": 0}
    async with db.begin() as conn:
        rows = (await conn.execute(text(
            "SELECT g.name, g.kind, b.status, b.error FROM import_batch b "
            "JOIN segment g ON g.id = b.segment_id WHERE b.status = 'failed'"))).all()  # fmt: skip
    batches = {name: (kind, status, error) for name, kind, status, error in rows}
    assert batches == {
        "Fresh": ("deleted", "failed", f"{NOTHING_VALID} {removed('Fresh')}"),
        "Moved": ("deleted", "failed", moved),
        "Kept": ("static", "failed", NOTHING_VALID),
        "Filled": ("static", "failed", NOTHING_VALID),
        "Lost": ("deleted", "failed", lost),
    }, batches

    # the audit log says it, as the foreground import's does
    audit = json.loads(run(env, "audit", "--json").stdout)
    deleted = sorted((e["subject"], e["actor"], e["detail"]) for e in audit
                     if e["action"] == "segment.deleted")  # fmt: skip
    withdrawn = "created for an import that imported nothing, removed again with it"
    assert deleted == [("Fresh", "cli", withdrawn), ("Lost", "cli", withdrawn),
                       ("Moved", "cli", withdrawn)], deleted
    # App Home, in Slack, shows each failed import's error: with the segment's going
    home = await home_lines(db)
    assert sum(removed("Fresh") in line for line in home) == 1, home
    assert sum(removed("Moved") in line for line in home) == 1, home
    assert sum(removed("Lost") in line for line in home) == 1, home

    # and the name is free again
    again = run(env, "import", str(bo), "--segment", "Fresh", "--create-segment", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added_to_segment"] == 1
