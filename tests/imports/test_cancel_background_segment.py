"""`referral-bot jobs cancel ID` of a queued `import --background --create-segment` job
withdraws the segment the import made, as the job's failure does (bot.segments.withdraw_segment:
only while nothing is in it and nothing else uses it), and says so.

The cancel stopped the import and left its new segment behind, empty: in every segment menu
and in `segments`, its name taken when the person tried again. A segment the import didn't
make, one that holds contacts by the time of the cancel, or one another import is queued into,
stays. Everything goes through the real entry point; no worker runs, so the jobs are queued.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.workspaces import create_segment, ensure_workspace
from models import Database
from tests.imports.test_background_labels import TEAM, env_for
from tests.imports.test_background_segment import queue_import, removed
from tests.shell import run


def _segments(env: dict[str, str]) -> dict[str, int]:
    listed = run(env, "segments", "--json")
    assert listed.returncode == 0, listed.stderr
    return {s["name"]: s["contacts"] for s in json.loads(listed.stdout)}


async def test_cancelling_a_queued_import_withdraws_the_segment_made_for_it(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(db, TEAM)
    await create_segment(db, TEAM, "Kept")
    env = env_for(db_env)
    people = tmp_path / "people.csv"
    people.write_text("email,first_name\nana@example.com,Ana\n")
    jobs = {name: queue_import(env, str(people), "--segment", name, "--create-segment")
            for name in ("Fresh", "Scripted", "Kept", "Filled", "Shared")}  # fmt: skip
    # a second import queued into "Shared" (made by the first): it uses the segment
    again = queue_import(env, str(people), "--segment", "Shared", "--create-segment")
    # a contact put into "Filled" meanwhile, by a foreground import
    bo = tmp_path / "bo.csv"
    bo.write_text("email\nbo@example.com\n")
    filled = run(env, "import", str(bo), "--segment", "Filled")
    assert filled.returncode == 0, filled.stderr

    cancelled = run(env, "jobs", "cancel", str(jobs["Fresh"]))
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"Job {jobs['Fresh']} is cancelled.\n{removed('Fresh')}\n"
    # --json: the job, as scripts read it; the sentence on stderr
    scripted = run(env, "jobs", "cancel", str(jobs["Scripted"]), "--json")
    assert scripted.returncode == 0, scripted.stderr
    assert json.loads(scripted.stdout)["state"] == "cancelled"
    assert scripted.stderr.strip() == removed("Scripted")
    for name in ("Kept", "Filled", "Shared"):  # each stays, and nothing says it went
        stays = run(env, "jobs", "cancel", str(jobs[name]))
        assert stays.returncode == 0, stays.stderr
        assert stays.stdout == f"Job {jobs[name]} is cancelled.\n", (name, stays.stdout)

    assert _segments(env) == {"All Customers": 1, "Kept": 0, "Filled": 1, "Shared": 0}
    # the audit log says who deleted them, as the job's failure's does
    audit = json.loads(run(env, "audit", "--json").stdout)
    deleted = sorted((e["subject"], e["actor"], e["detail"]) for e in audit
                     if e["action"] == "segment.deleted")  # fmt: skip
    withdrawn = "created for an import that imported nothing, removed again with it"
    assert deleted == [("Fresh", "cli", withdrawn), ("Scripted", "cli", withdrawn)], deleted

    # cancelled again: said as such, nothing more withdrawn
    twice = run(env, "jobs", "cancel", str(jobs["Fresh"]))
    assert twice.returncode == 0, twice.stderr
    assert twice.stdout == f"Job {jobs['Fresh']} was cancelled already.\n"
    # the import queued second into "Shared" made nothing: its cancel withdraws nothing
    second = run(env, "jobs", "cancel", str(again))
    assert second.returncode == 0 and second.stdout == f"Job {again} is cancelled.\n"
    assert "Shared" in _segments(env)

    # and the name is free again
    retried = run(env, "import", str(people), "--segment", "Fresh", "--create-segment",
                  "--json")  # fmt: skip
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["added_to_segment"] == 1


async def test_cancelling_an_import_still_reading_its_file_says_nothing_of_contacts_kept(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A running import job reads its files first (its batch a draft): cancelled then, it was
    said to leave "the contacts it imported before then" with an undo to take them out, of an
    import that had imported nothing (and whose undo is refused)."""
    from sqlalchemy import text

    env = env_for(db_env)
    people = tmp_path / "people.csv"
    people.write_text("email,first_name\nana@example.com,Ana\n")
    job = queue_import(env, str(people), "--segment", "Reading", "--create-segment")
    async with db.begin() as conn:  # a worker took it and is reading the file
        await conn.execute(text("UPDATE job SET state = 'running', lease_owner = 'w', "
                                "attempts = 1 WHERE id = :j"), {"j": job})  # fmt: skip
    cancelled = run(env, "jobs", "cancel", str(job))
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"Job {job} is cancelled.\n{removed('Reading')}\n", (
        cancelled.stdout)
