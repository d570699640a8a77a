"""`referral-bot audit` and `referral-bot leads` as a shell user runs them (in-process `main`,
against this test's database): JSON and text, --since and --limit, another workspace's entries
left out, and leads added and removed as "cli" (TEAM_LEADS seeding once)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from bot.cli import main
from bot.workspaces import ensure_workspace
from models import AuditEntry, Database

TEAM = "T0001"
OTHER = "T0002"


@pytest.fixture
def env(db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI's settings point at this test's database; no `.env` of the project is read."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "DATABASE_SCHEMA", "TEAM_LEADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in db_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TEAM_LEADS", "U0002")


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `referral-bot ARGS` in-process (main runs its own event loop, so in a thread)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = await cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


async def _entry(db: Database, team: str, at: datetime, actor: str, action: str,
                 subject: str = "", detail: str = "") -> None:  # fmt: skip
    async with db.begin() as conn:
        await conn.execute(insert(AuditEntry).values(team_id=team, at=at, actor=actor,
                                                     action=action, subject=subject,
                                                     detail=detail))  # fmt: skip


@pytest.fixture
async def history(db: Database, env: None) -> None:
    for team in (TEAM, OTHER):
        await ensure_workspace(db, team)
    await _entry(db, TEAM, datetime(2025, 1, 1, 9, tzinfo=UTC), "U0001", "import.requested",
                 "import #12", "into VIP")  # fmt: skip
    await _entry(db, TEAM, datetime(2025, 3, 1, 0, 0, tzinfo=UTC), "U0002", "import.approved",
                 "import #12", "1204 contacts to import")  # fmt: skip
    await _entry(db, OTHER, datetime(2025, 3, 2, tzinfo=UTC), "U0009", "import.approved",
                 "import #13", "theirs")  # fmt: skip
    await _entry(db, TEAM, datetime(2025, 3, 5, 10, 30, tzinfo=UTC), "cli",
                 "mailchimp.disconnected", "Mailchimp")  # fmt: skip


async def test_audit_json_newest_first_for_one_workspace(
    history: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = await cli_json(capsys, "audit", "--team", TEAM)
    assert [r["action"] for r in rows] == ["mailchimp.disconnected", "import.approved",
                                           "import.requested"]  # fmt: skip
    assert rows[1] == {"at": "2025-03-01T00:00:00+00:00", "actor": "U0002",
                       "action": "import.approved", "subject": "import #12",
                       "detail": "1204 contacts to import"}  # fmt: skip
    theirs = await cli_json(capsys, "audit", "--team", OTHER)
    assert [r["detail"] for r in theirs] == ["theirs"]
    assert len(await cli_json(capsys, "audit", "--team", TEAM, "--limit", "1")) == 1


async def test_audit_since_a_date_or_a_datetime(
    history: None, capsys: pytest.CaptureFixture[str]
) -> None:
    since_day = await cli_json(capsys, "audit", "--team", TEAM, "--since", "2025-03-01")
    assert [r["subject"] for r in since_day] == ["Mailchimp", "import #12"]  # midnight counts
    since_time = await cli_json(capsys, "audit", "--team", TEAM, "--since", "2025-03-05T10:00")
    assert [r["actor"] for r in since_time] == ["cli"]
    zoned = await cli_json(capsys, "audit", "--team", TEAM, "--since",
                           "2025-03-05T12:00:00+02:00")  # 10:00 UTC  # fmt: skip
    assert len(zoned) == 1
    assert await cli_json(capsys, "audit", "--team", TEAM, "--since", "2030-01-01") == []
    code, out, err = await cli(capsys, "audit", "--team", TEAM, "--since", "last week", "--json")
    assert code == 1 and "YYYY-MM-DD" in json.loads(out)["error"] and "YYYY-MM-DD" in err


async def test_audit_text_reads_as_sentences(
    history: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await cli(capsys, "audit", "--team", TEAM)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].startswith("2025-03-05 10:30 UTC  command line")
    assert lines[0].endswith("disconnected Mailchimp")
    assert lines[1].endswith("U0002         approved import #12 (1,204 contacts to import)")
    assert lines[2].endswith("asked for import #12 (into VIP)")


async def test_audit_cut_at_its_limit_says_how_to_see_older_entries(
    history: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`audit` stopped at its 50th entry (or --limit's) without a word that there were more."""
    code, out, err = await cli(capsys, "audit", "--team", TEAM, "--limit", "2")
    lines = out.splitlines()
    assert (code, err, len(lines)) == (0, "", 3)
    assert lines[1].endswith("approved import #12 (1,204 contacts to import)")
    assert lines[2] == ("Showing the newest 2 entries. There are older ones: add --limit 10 to "
                        "see up to 10.")  # fmt: skip
    code, out, err = await cli(capsys, "audit", "--team", TEAM, "--limit", "1", "--since",
                               "2025-02-01")  # fmt: skip
    assert code == 0
    assert out.splitlines()[-1] == (
        "Showing the newest entry. There are older ones: add --limit 5 to see up to 5."
    )
    # --json: stdout stays the list scripts read; the note goes to stderr
    code, out, err = await cli(capsys, "audit", "--team", TEAM, "--limit", "2", "--json")
    assert (code, len(json.loads(out))) == (0, 2)
    assert err == ("Showing the newest 2 entries. There are older ones: add --limit 10 to see "
                   "up to 10.\n")  # fmt: skip
    # every entry shown: no note
    for args, shown in ((("--limit", "3"), 3), (("--since", "2025-03-01"), 2), ((), 3)):
        code, out, err = await cli(capsys, "audit", "--team", TEAM, *args)
        assert (code, err, len(out.splitlines())) == (0, "", shown), (args, out)


async def test_leads_list_add_and_remove_from_the_shell(
    db: Database, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    await ensure_workspace(db, TEAM)
    listed = await cli_json(capsys, "leads")
    assert [(r["user_id"], r["added_by"]) for r in listed] == [("U0002", "seed")]

    code, out, _ = await cli(capsys, "leads", "add", "u0005")
    assert code == 0 and out.startswith("U0005 is now a team lead. Slack is asked whether they "
                                        "are a member of this workspace"), out
    code, out, _ = await cli(capsys, "leads", "add", "U0005")
    assert (code, out.strip()) == (0, "U0005 was a team lead already.")
    assert await cli_json(capsys, "leads", "--team", TEAM, "add", "U0006") == {
        "user_id": "U0006", "changed": True}  # fmt: skip
    assert await cli_json(capsys, "leads", "remove", "U0002", "--team", TEAM) == {
        "user_id": "U0002", "changed": True}  # fmt: skip

    code, _, err = await cli(capsys, "leads", "remove", "U0002")
    assert code == 1 and "U0002 isn't a team lead" in err
    code, _, err = await cli(capsys, "leads", "add", "<!channel>")
    assert code == 1 and "isn't a Slack user id" in err
    code, _, err = await cli(capsys, "leads", "--team", "T0NOPE", "add", "U0007")
    assert code == 1 and "No workspace" in err

    # TEAM_LEADS still names U0002, but the workspace was seeded: the removal sticks
    assert [r["user_id"] for r in await cli_json(capsys, "leads")] == ["U0005", "U0006"]
    code, out, _ = await cli(capsys, "leads")  # as the audit log names the shell
    assert code == 0 and "U0005  added by command line on " in out, out
    code, out, _ = await cli(capsys, "audit", "--limit", "1")
    assert code == 0 and out.splitlines()[0].endswith(
        "command line  removed U0002 from the team leads")  # fmt: skip
    log = await cli_json(capsys, "audit")
    assert [(r["actor"], r["action"], r["subject"]) for r in log] == [
        ("cli", "lead.removed", "<@U0002>"), ("cli", "lead.added", "<@U0006>"),
        ("cli", "lead.added", "<@U0005>")]  # fmt: skip


async def test_leads_take_a_pasted_mention_as_team_leads_does(
    db: Database, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`leads add '<@U123ABC>'` said it isn't a Slack user id, though TEAM_LEADS takes one."""
    await ensure_workspace(db, TEAM)
    code, out, err = await cli(capsys, "leads", "add", "<@U123ABC>")
    assert code == 0 and out.startswith("U123ABC is now a team lead."), err
    assert await cli_json(capsys, "leads", "add", " <@u0007|ada> ") == {
        "user_id": "U0007", "changed": True}  # fmt: skip
    code, out, err = await cli(capsys, "leads", "remove", "<@U123ABC|Someone Else>")
    assert (code, out.strip()) == (0, "U123ABC is no longer a team lead."), err
    code, _, err = await cli(capsys, "leads", "add", "<@>")
    assert code == 1 and "isn't a Slack user id" in err
