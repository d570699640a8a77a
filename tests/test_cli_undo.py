"""`referral-bot undo` in-process: the undo at once, its counts, and why it refuses."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.cli import main
from bot.contact_admin import find_by_email, unsubscribe
from bot.imports.undo import request_undo
from models import Database
from models.clock import utcnow


@pytest.fixture
def shell(db: Database, db_env: dict[str, str], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Path:  # fmt: skip
    """The environment a shell user has: this test's database, no .env, no Slack."""
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "TEAM_LEADS", "UNDO_WINDOW_DAYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in db_env.items():
        monkeypatch.setenv(name, value)
    return tmp_path


async def _main(*args: str) -> int:
    """`referral-bot ARGS` in this process (its own event loop, in a thread)."""
    return await asyncio.to_thread(main, list(args))


async def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = await _main(*args, "--json")
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


async def _import(shell: Path, capsys: pytest.CaptureFixture[str], segment: str,
                  *emails: str) -> int:  # fmt: skip
    csv = shell / f"{segment}.csv"
    csv.write_text("email\n" + "".join(f"{e}\n" for e in emails), encoding="utf-8")
    code, summary = await _json(capsys, "import", str(csv), "--segment", segment,
                                "--create-segment")  # fmt: skip
    assert code == 0
    return int(summary["import_id"])


async def _sql(db: Database, sql: str, **params: object) -> object:
    stmt = text(sql)
    if "when" in params:
        stmt = stmt.bindparams(bindparam("when", type_=UTCDateTime()))
    async with db.begin() as conn:
        result = await conn.execute(stmt, params)
        return result.scalar() if result.returns_rows else None


async def test_undo_prints_its_counts_and_refuses_a_second_time(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    await _import(shell, capsys, "VIP", "old@example.com")
    await _import(shell, capsys, "Other", "kept@example.com")
    batch = await _import(shell, capsys, "VIP", "old@example.com", "kept@example.com",
                          "new@example.com")  # fmt: skip

    code, result = await _json(capsys, "undo", str(batch), "--advocates")
    assert code == 0
    assert result == {"import": batch, "segment": "VIP", "status": "undone", "removed": 2,
                      "kept_in_segment": 0, "deleted": 1, "kept_unsubscribed_or_emailed": 0,
                      "invites_cancelled": 0, "advocates_removed": 0,
                      "unsubscribed_again": 0}  # fmt: skip
    assert await _sql(db, "SELECT COUNT(*) FROM contact") == 2
    assert await _sql(db, "SELECT state FROM job WHERE kind = 'undo_import'") == "done"
    assert await _sql(db, "SELECT actor FROM audit_entry WHERE action = 'import.undone'") == "cli"

    assert await _main("undo", str(batch)) == 1
    err = capsys.readouterr().err
    assert f"Import #{batch} was already undone from the command line on" in err


async def test_undo_with_advocates_says_which_advocates_it_takes(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undo N --advocates` printed "0 advocates removed." of contacts whose advocates
    `campaign live` had made: read as --advocates ignored."""
    await _import(shell, capsys, "Other", "kept@example.com")
    batch = await _import(shell, capsys, "VIP", "kept@example.com", "new@example.com")
    assert await _main("campaign", "create", "Spring", "--store-url", "https://shop.example",
                       "--no-invite-email") == 0  # fmt: skip
    assert await _main("campaign", "target", "Spring", "--segment", "VIP") == 0
    assert await _main("campaign", "live", "Spring") == 0
    capsys.readouterr()
    assert await _main("undo", str(batch), "--advocates") == 0
    out = capsys.readouterr().out
    assert "1 deleted, 2 invites cancelled, 1 advocate removed." in out, out  # the deleted one
    assert ("--advocates takes only the advocates this import's own enrollment made; those "
            "`campaign target` or `live` made of the contacts it keeps stay.") in out, out


async def test_undo_with_advocates_and_no_campaign_says_nothing_of_advocates_staying(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    await _import(shell, capsys, "Other", "kept@example.com")
    batch = await _import(shell, capsys, "VIP", "kept@example.com", "new@example.com")
    assert await _main("undo", str(batch), "--advocates") == 0
    assert "--advocates takes" not in capsys.readouterr().out


async def test_undo_refuses_what_it_cannot_undo(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = await _import(shell, capsys, "VIP", "a@example.com", "b@example.com")
    assert await _main("undo", "999") == 1
    assert "Import #999 doesn't exist in this workspace" in capsys.readouterr().err

    await _sql(db, "UPDATE import_batch SET finished_at = :when WHERE id = :b",
               when=utcnow() - timedelta(days=8), b=batch)  # fmt: skip
    # as its apply, 8 days ago, left the limit of undo (bot/imports/undo_window.py)
    await _sql(db, "UPDATE workspace SET undo_closed_before = :when",
               when=utcnow() - timedelta(days=8 + 7))  # fmt: skip
    code, result = await _json(capsys, "undo", str(batch))
    assert code == 1 and result["error"].startswith("Imports can be undone for 7 days; this "
                                                    "one finished on ")  # fmt: skip

    await _sql(db, "UPDATE import_batch SET status = 'importing' WHERE id = :b", b=batch)
    assert await _main("undo", str(batch)) == 1
    assert "only a finished import can be undone" in capsys.readouterr().err

    assert await _sql(db, "SELECT COUNT(*) FROM contact") == 2

    # a longer window (UNDO_WINDOW_DAYS) lets the old one go
    await _sql(db, "UPDATE import_batch SET status = 'done' WHERE id = :b", b=batch)
    shell.joinpath(".env").write_text("UNDO_WINDOW_DAYS=30\n", encoding="utf-8")
    assert await _main("undo", str(batch)) == 0
    assert "2 contacts removed from 'VIP', 2 deleted" in capsys.readouterr().out
    assert await _sql(db, "SELECT COUNT(*) FROM contact") == 0

    other = await _import(shell, capsys, "Other", "c@example.com")
    await _sql(db, "UPDATE import_batch SET status = 'cancelled', cancelled_by = 'cli', "
                   "new_contacts = 0, added_to_segment = 0 WHERE id = :b", b=other)  # fmt: skip
    assert await _main("undo", str(other)) == 1  # over: "was", not "is cancelled"
    assert f"Import #{other} was cancelled" in capsys.readouterr().err
    await _sql(db, "UPDATE import_batch SET status = 'failed' WHERE id = :b", b=other)
    assert await _main("undo", str(other)) == 1
    assert f"Import #{other} failed and added nothing" in capsys.readouterr().err


async def test_undo_finishes_an_undo_whose_job_failed(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = await _import(shell, capsys, "VIP", "a@example.com")
    await request_undo(db, "local", batch, "U0002", remove_advocates=False, window_days=7)
    await _sql(db, "UPDATE job SET state = 'failed' WHERE kind = 'undo_import'")
    code, result = await _json(capsys, "undo", str(batch))
    assert code == 0 and (result["status"], result["deleted"]) == ("undone", 1)
    assert await _sql(db, "SELECT state FROM job WHERE kind = 'undo_import'") == "done"
    async with db.begin() as conn:  # finished from the shell: the log says so, like Slack's
        log = [tuple(r) for r in await conn.execute(text(
            "SELECT actor, detail FROM audit_entry WHERE action = 'import.undone' ORDER BY id"))]
    assert [(actor, detail.split(":")[0]) for actor, detail in log] == [
        ("U0002", "started"), ("cli", "resumed"), ("U0002", "done")]  # fmt: skip


async def test_undo_finishes_an_undo_left_waiting_for_a_worker(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """An undo interrupted in the shell (Ctrl-C hands its job back) or asked in Slack with no
    worker running: `undo` again was refused ("already being undone") and the import stayed
    half undone, its segment undeletable, until a worker ran."""
    batch = await _import(shell, capsys, "VIP", "a@example.com", "b@example.com")
    await request_undo(db, "local", batch, "U0002", remove_advocates=False, window_days=7)
    code, result = await _json(capsys, "undo", str(batch))
    assert code == 0 and (result["status"], result["deleted"]) == ("undone", 2)
    assert await _sql(db, "SELECT state FROM job WHERE kind = 'undo_import'") == "done"
    assert await _main("undo", str(batch)) == 1
    assert "already undone" in capsys.readouterr().err


async def test_undo_says_it_kept_the_contacts_who_unsubscribed(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shell has no confirmation: the result line says who stayed and why."""
    batch = await _import(shell, capsys, "Wrong", "ann@example.com", "bob@example.com")
    await unsubscribe(db, "local", await find_by_email(db, "local", "ann@example.com"), "cli")
    assert await _main("undo", str(batch)) == 0
    assert ("2 contacts removed from 'Wrong', 1 deleted (1 kept: they unsubscribed or were "
            "emailed), "
            "0 invites cancelled") in capsys.readouterr().out  # fmt: skip
    assert await _sql(db, "SELECT email FROM contact") == "ann@example.com"


async def test_undo_says_it_kept_the_contacts_a_later_import_listed(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """x came with this import and with a later one into the same segment: it stays there,
    and the result (line and JSON) says how many stayed so."""
    batch = await _import(shell, capsys, "VIP", "x@example.com", "a@example.com")
    later = await _import(shell, capsys, "VIP", "x@example.com", "b@example.com")
    assert await _main("undo", str(batch)) == 0
    assert ("1 contact removed from 'VIP' (1 kept: a later import listed them too), "
            "1 deleted, 0 invites cancelled") in capsys.readouterr().out  # fmt: skip
    code, result = await _json(capsys, "undo", str(later))
    assert code == 0 and (result["removed"], result["kept_in_segment"], result["deleted"]) == (
        2, 0, 2)  # fmt: skip
    assert await _sql(db, "SELECT COUNT(*) FROM contact") == 0


async def test_undo_with_advocates_of_an_undo_asked_without_them_is_refused_in_words(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lead asked the undo in Slack without its advocates; `undo N --advocates` then
    finished it, said "undone", and kept the import's advocates and their links."""
    batch = await _import(shell, capsys, "VIP", "a@example.com", "b@example.com")
    await request_undo(db, "local", batch, "U0002", remove_advocates=False, window_days=7)

    assert await _main("undo", str(batch), "--advocates") == 1
    said = capsys.readouterr().err
    assert "being undone without removing its advocates" in said, said
    assert await _sql(db, "SELECT status FROM import_batch WHERE id = :b", b=batch) == "undoing"
    code, result = await _json(capsys, "undo", str(batch))
    assert code == 0 and result["status"] == "undone"


async def test_undo_of_a_background_import_not_run_yet_says_it_is_queued(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`import --background` queues a job (no worker runs here): its undo said "Import #N
    is waiting for review", and a shell import has no review to look for."""
    csv = shell / "w.csv"
    csv.write_text("email\na@example.com\n", encoding="utf-8")
    code, queued = await _json(capsys, "import", str(csv), "--segment", "BG",
                               "--create-segment", "--background")  # fmt: skip
    assert code == 0, queued

    assert await _main("undo", str(queued["batch"])) == 1
    said = capsys.readouterr().err
    assert "waiting for review" not in said, said
    assert (f"Import #{queued['batch']} hasn't run yet (a shell import, queued or being "
            "read: `referral-bot jobs` shows it): only a finished import can be undone.") in said


async def _enrolled(shell: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """A live campaign, Spring, enrolled VIP's two contacts (their invites wait for a worker):
    the import's number."""
    assert await _main("campaign", "create", "Spring", "--store-url",
                       "https://shop.example.com", "--live") == 0  # fmt: skip
    batch = await _import(shell, capsys, "VIP", "a@example.com", "b@example.com")
    assert await _main("campaign", "target", "Spring", "--segment", "VIP") == 0
    capsys.readouterr()
    return batch


_REPORTS = "SELECT COUNT(*) FROM job WHERE kind = 'slack_report'"


async def test_a_shell_undo_queues_no_slack_report_in_a_workspace_without_slack(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The undo cancelled the enrollment's invites and queued a `slack_report` job to redraw
    its report, which has no thread: in a workspace used only from the shell, `jobs` showed it
    "waiting for a worker that can run it (start one with SLACK_BOT_TOKEN set)" for good."""
    batch = await _enrolled(shell, capsys)

    assert await _main("undo", str(batch)) == 0
    assert "2 invites cancelled" in capsys.readouterr().out
    assert await _main("campaign", "edit", "Spring", "--offer", "Give 15%") == 0

    assert await _sql(db, _REPORTS) == 0
    assert await _main("jobs") == 0
    assert "slack_report" not in capsys.readouterr().out


@pytest.mark.parametrize("slack", ["thread", "home"])
async def test_a_shell_undo_still_reports_an_enrollment_slack_shows(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str], slack: str
) -> None:
    """An enrollment targeted in an import's Slack thread has a report there to redraw, and a
    workspace whose Home someone opened has a Home tab to republish: those are still told."""
    batch = await _enrolled(shell, capsys)
    if slack == "thread":
        await _sql(db, "UPDATE enrollment SET channel_id = 'C0001', "
                       "thread_ts = '1700000000.000100'")  # fmt: skip
    else:
        await _sql(db, "INSERT INTO home_viewer (team_id, user_id, opened_at) "
                       "VALUES ('local', 'U0002', :when)", when=utcnow())  # fmt: skip

    assert await _main("undo", str(batch)) == 0

    assert await _sql(db, _REPORTS + " AND payload LIKE '%enrollment_changed%'") == 1


async def test_undo_json_names_the_contacts_kept_because_they_were_emailed(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contacts kept because an invite went out to them were counted as
    `"kept_unsubscribed"`, though they are still subscribed; the key says both reasons, as
    the line does ("2 kept: they unsubscribed or were emailed")."""
    batch = await _enrolled(shell, capsys)
    await _sql(db, "UPDATE invite SET state = 'sent'")

    code, result = await _json(capsys, "undo", str(batch))

    assert code == 0 and result["kept_unsubscribed_or_emailed"] == 2, result
    assert "kept_unsubscribed" not in result
    assert await _sql(db, "SELECT COUNT(*) FROM contact") == 2


async def test_undo_says_and_logs_whom_it_unsubscribed_again(
    shell: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """x@ had said no; an --update-existing import said yes and re-subscribed her. Its undo
    unsubscribes her again (the confirmation counts it), but the result line, the JSON and the
    audit log said nothing of it: a consent changed with no trace of who changed it."""
    first = shell / "no.csv"
    first.write_text("email,subscribed\nx@example.com,no\n", encoding="utf-8")
    assert (await _json(capsys, "import", str(first), "--segment", "Old",
                        "--create-segment"))[0] == 0  # fmt: skip
    again = shell / "yes.csv"
    again.write_text("email,subscribed\nx@example.com,yes\n", encoding="utf-8")
    code, summary = await _json(capsys, "import", str(again), "--segment", "VIP",
                                "--create-segment", "--update-existing")  # fmt: skip
    assert code == 0 and await _sql(db, "SELECT subscribed FROM contact") in (True, 1)
    assert await _main("undo", str(summary["import_id"])) == 0
    out = capsys.readouterr().out
    assert await _sql(db, "SELECT subscribed FROM contact") in (False, 0)
    assert out.rstrip().endswith(", 1 unsubscribed again."), out
    detail = await _sql(db, "SELECT detail FROM audit_entry WHERE action = 'import.undone' "
                            "AND detail LIKE 'done:%'")  # fmt: skip
    assert str(detail).endswith(", 1 unsubscribed again"), detail
