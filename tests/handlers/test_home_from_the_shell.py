"""Changes made with `referral-bot` (no Slack connection) reach the Home tabs open in Slack:
the command queues one `home_refresh` job per workspace, which serve's worker runs with its
Slack client (here: the harness's worker, against the fake Slack)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.workspaces import ensure_workspace
from models import Database
from tests import shell
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_home import _open_home

TEAM = "T0001"
HOME_REFRESH_JOB = "home_refresh"  # the kind `referral-bot jobs` lists


async def _cli(env: dict[str, str], *args: str) -> str:
    done = await asyncio.to_thread(shell.run, env, *args)  # the only workspace: TEAM
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _refresh_jobs(db: Database) -> list[tuple[str, str]]:
    async with db.begin() as conn:
        rows = (await conn.execute(
            text("SELECT team_id, state FROM job WHERE kind = :kind ORDER BY id"),
            {"kind": HOME_REFRESH_JOB})).all()  # fmt: skip
    return [(team, state) for team, state in rows]


async def _run_due_jobs(app: Harness) -> None:
    """Run the refresh now: it waits a moment (REFRESH_DELAY) to gather changes."""
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = CURRENT_TIMESTAMP "
                                "WHERE kind = :kind AND state = 'queued'"),
                           {"kind": HOME_REFRESH_JOB})  # fmt: skip
    await app.settle()


async def test_command_line_changes_republish_open_home_tabs_once(
    app: Harness, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(app.db, TEAM)
    await _open_home(app, REP)
    await _open_home(app, LEAD)
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\nbo@example.com\n", encoding="utf-8")
    published = len(app.slack.calls_to("views.publish"))

    imported = json.loads(await _cli(db_env, "import", str(people), "--segment", "VIP",
                                     "--create-segment", "--json"))  # fmt: skip
    await _cli(db_env, "segments", "rename", "VIP", "Very important")
    await _cli(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example")
    # the shell talks to no Slack: three changes, one refresh waiting for a worker
    assert await _refresh_jobs(app.db) == [(TEAM, "queued")]
    assert len(app.slack.calls_to("views.publish")) == published

    await _run_due_jobs(app)
    assert await _refresh_jobs(app.db) == [(TEAM, "done")]
    assert len(app.slack.calls_to("views.publish")) == published + 2  # one per viewer
    for user in (REP, LEAD):
        rendered = json.dumps(app.slack.home_views[user]["blocks"], ensure_ascii=False)
        assert "*Very important* · 2 contacts" in rendered and "*VIP*" not in rendered
        assert "*Spring*" in rendered and "Requested from the command line" in rendered

    # a later change queues a new refresh (the one before is done)
    await _cli(db_env, "undo", str(imported["import_id"]))
    assert await _refresh_jobs(app.db) == [(TEAM, "done"), (TEAM, "queued")]
    await _run_due_jobs(app)
    rendered = json.dumps(app.slack.home_views[REP]["blocks"])
    assert "then undone from the command line" in rendered


async def test_a_workspace_nobody_looks_at_in_slack_gets_no_refresh_job(
    app: Harness, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(app.db, TEAM)
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    await _cli(db_env, "import", str(people), "--segment", "VIP", "--create-segment")
    assert await _refresh_jobs(app.db) == []
    # nor does a look that changes nothing
    await _open_home(app, REP)
    await _cli(db_env, "segments")
    await _cli(db_env, "import", str(people), "--segment", "VIP", "--dry-run")
    assert await _refresh_jobs(app.db) == []


async def test_a_shell_import_still_reading_its_files_is_not_waiting_for_review(
    app: Harness, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`import --background` is a draft until its job has read the files, and Home called it
    "waiting for review": nobody reviews a shell's import, and people looked for the message."""
    await ensure_workspace(app.db, TEAM)
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    await _cli(db_env, "import", str(people), "--segment", "VIP", "--create-segment",
               "--background")  # fmt: skip
    async with app.db.begin() as conn:  # its job not run yet: still reading, as far as Home sees
        await conn.execute(text("UPDATE job SET run_after = :later WHERE kind = 'import'")
                           .bindparams(bindparam("later", type_=UTCDateTime())),
                           {"later": datetime(2100, 1, 1, tzinfo=UTC)})  # fmt: skip
    rendered = json.dumps((await _open_home(app, REP))["blocks"], ensure_ascii=False)
    assert "*VIP* · reading its files (an import from the command line: no review)" in rendered
    assert "waiting for review" not in rendered
