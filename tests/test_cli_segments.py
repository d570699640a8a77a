"""`referral-bot segments [rename OLD NEW | delete NAME]` and `export`, run in-process."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.audit import recent
from bot.campaigns.service import create_campaign, target
from bot.cli import main
from bot.cli_contacts import display_width
from bot.workspaces import ensure_workspace, find_segment, import_target
from models import Database, ImportBatch
from tests.shell import CLI, environment

TEAM = "local"


Cli = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def cli(db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Cli:  # fmt: skip
    """Run `referral-bot ARGS` in this process (in a thread: it runs its own event loop);
    returns (exit status, stdout, stderr)."""
    for name in list(os.environ):
        if name.startswith(("DATABASE_", "DEFAULT_")):
            monkeypatch.delenv(name)
    for name, value in db_env.items():
        monkeypatch.setenv(name, value)

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text("email,first_name\nana@example.com,Ana\nbo@example.com,Bo\n", encoding="utf-8")
    return path


async def test_rename_then_delete_from_the_shell(db: Database, cli: Cli, people: Path) -> None:
    assert (await cli("import", str(people), "--segment", "VIP", "--create-segment"))[0] == 0
    assert (await cli("import", str(people), "--segment", "Newsletter"))[0] == 1  # not created

    code, out, _ = await cli("segments", "rename", "vip", "  Best   customers ")
    assert code == 0 and out == "Renamed segment 'VIP' to 'Best customers'.\n"
    code, out, _ = await cli("segments", "--json")
    assert json.loads(out) == [{"name": "All Customers", "kind": "all", "contacts": 2},
                               {"name": "Best customers", "kind": "static", "contacts": 2}]

    spring = await create_campaign(db, TEAM, "Referral spring", store_url="https://s.example",
                                   created_by="cli")  # fmt: skip
    best = await find_segment(db, TEAM, "best customers")
    assert best is not None
    await target(db, TEAM, spring.id or 0, best.id or 0, requested_by="cli")
    code, out, _ = await cli("segments", "delete", "BEST CUSTOMERS", "--yes")
    assert code == 0
    assert out.splitlines() == [
        "Deleted segment 'Best customers': 2 contacts taken out of it (they stay in All "
        "Customers).",
        "  Referral spring targets it: its advocates stay advocates, but contacts added later "
        "won't be enrolled through this segment.",
    ]
    code, out, _ = await cli("segments", "--json")
    assert json.loads(out) == [{"name": "All Customers", "kind": "all", "contacts": 2}]
    code, _, err = await cli("export", "--segment", "Best customers")
    assert code == 1 and "No segment named 'Best customers'" in err
    # the name is free again
    assert (await cli("import", str(people), "--segment", "best customers",
                      "--create-segment"))[0] == 0  # fmt: skip
    actions = [(e.actor, e.action, e.subject) for e in await recent(db, TEAM)]
    assert ("cli", "segment.renamed", "Best customers") in actions
    assert ("cli", "segment.deleted", "Best customers") in actions


async def test_refusals_exit_non_zero_with_the_reason(db: Database, cli: Cli, people: Path) -> None:
    await cli("import", str(people), "--segment", "VIP", "--create-segment")
    await cli("import", str(people), "--segment", "Staff", "--create-segment")
    cases = [
        (("segments", "rename", "VIP", "staff"), "A segment named 'Staff' already exists."),
        (("segments", "rename", "All Customers", "Everyone"), "can't be renamed"),
        (("segments", "rename", "VIP", "all customers"), "its name can't be another "
                                                          "segment's"),
        (("segments", "rename", "Nope", "Other"), "No segment named 'Nope' in this workspace "
                                                  "(`referral-bot segments` lists them)."),
        (("segments", "delete", "all customers"), "can't be deleted"),
        (("segments", "delete", "Nope"), "No segment named 'Nope' in this workspace "
                                         "(`referral-bot segments` lists them)."),
    ]  # fmt: skip
    for args, reason in cases:
        code, _, err = await cli(*args)
        assert code == 1 and reason in err, (args, err)
    vip = await find_segment(db, TEAM, "VIP")
    assert vip is not None
    async with db.session() as session:
        batch = ImportBatch(team_id=TEAM, segment_id=vip.id or 0, requested_by="U0001")
        session.add(batch)
        await session.commit()
        batch_id = batch.id
    code, out, err = await cli("segments", "delete", "VIP", "--json")
    assert code == 1
    reason = f"Import #{batch_id} into it is waiting for review: finish or cancel it first."
    assert json.loads(out) == {"error": reason} and reason in err
    assert await find_segment(db, TEAM, "VIP") is not None


async def test_export_still_works_and_is_audited(db: Database, cli: Cli, people: Path) -> None:
    await cli("import", str(people), "--segment", "VIP", "--create-segment")
    await ensure_workspace(db, "T2")
    code, out, _ = await cli("export", "--segment", "vip", "--team", TEAM)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["email"], r["first_name"], r["subscribed"]) for r in rows] == [
        ("ana@example.com", "Ana", "yes"), ("bo@example.com", "Bo", "yes")]
    (entry, *_) = await recent(db, TEAM)
    assert (entry.actor, entry.action, entry.subject, entry.detail) == (
        "cli", "segment.exported", "VIP", "2 contacts")
    code, out, _ = await cli("segments", "--team", "T2", "rename", "VIP", "Mine", "--json")
    assert code == 1 and "No segment named 'VIP'" in json.loads(out)["error"]
    code, out, _ = await cli("segments", "rename", "VIP", "Gold", "--team", TEAM, "--json")
    assert code == 0 and json.loads(out) == {"renamed": "VIP", "to": "Gold"}


async def test_an_import_into_a_segment_being_deleted_imports_nothing(
    db: Database, cli: Cli, people: Path
) -> None:
    """PostgreSQL, a real race: `segments delete`'s transaction has marked VIP deleted (paused
    here, at the campaign links, by a table lock) when `import --segment VIP` runs. The import
    chose VIP (not deleted yet for it), waited for the deletion, then imported into the
    deleted segment: exit 0, and its contacts in a segment nobody sees. Now it is refused."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite's one writer can't interleave the two")
    from sqlalchemy import text

    from tests.waiting import pause_segment_deletion, until_waiting_or_done

    await ensure_workspace(db, TEAM)
    vip = await import_target(db, TEAM, "VIP", create=True)
    deletion = await pause_segment_deletion(db, TEAM, vip.id or 0)
    importing = asyncio.create_task(cli("import", str(people), "--segment", "VIP"))
    assert await until_waiting_or_done(db, deletion.pid, importing) is not None
    await deletion.let_go()
    code, out, err = await importing
    assert (code, out) == (1, "")
    assert "The segment 'VIP' was deleted; nothing was imported." in err
    async with db.begin() as conn:
        written = (await conn.execute(text(
            "SELECT (SELECT COUNT(*) FROM import_batch), (SELECT COUNT(*) FROM contact)"
        ))).one()  # fmt: skip
    assert tuple(written) == (0, 0)


async def test_a_segment_deleted_while_a_background_import_is_queued_keeps_it(
    db: Database, cli: Cli, people: Path
) -> None:
    """PostgreSQL, a real race: `import --background` committed its draft, then its files,
    then its job, one after the other. A segment deleted in between (here: while the shell
    waits to write the files, held by a table lock) found a draft with no job, which it
    withdraws as a shell's left behind, or (its row being written) skips: the segment went,
    and the shell either was told "already cancelled by <@U0123>" (Slack's markup, in a
    terminal) or queued an import into a segment nobody sees. The draft, its files and its job
    now commit together: the deletion waits for them, then is refused, the import queued."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite's one writer can't interleave the two")
    from sqlalchemy import text

    from bot.segments import delete_segment
    from bot.workspaces import WorkspaceError
    from tests.waiting import backend_pid, until_waiting_or_done

    await ensure_workspace(db, TEAM)
    vip = await import_target(db, TEAM, "VIP", create=True)
    holder = await db.engine.connect()
    transaction = await holder.begin()
    await holder.execute(text("LOCK TABLE import_source IN SHARE MODE"))
    queuing = asyncio.create_task(cli("import", str(people), "--segment", "VIP", "--background"))
    shell = await until_waiting_or_done(db, await backend_pid(holder), queuing)
    assert shell is not None, "the shell never came to write its files"
    deleting = asyncio.create_task(delete_segment(db, TEAM, vip.id or 0, actor="U0123"))
    await until_waiting_or_done(db, shell, deleting)  # waits for the shell's transaction now
    await transaction.commit()
    await holder.close()
    code, out, err = await queuing
    assert "<@" not in out + err
    assert code == 0, err
    async with db.begin() as conn:
        batch_id, status = (await conn.execute(text(
            "SELECT id, status FROM import_batch"))).one()  # fmt: skip
        job = (await conn.execute(text("SELECT id, state FROM job WHERE kind = 'import'"))).one()
    assert (status, job.state) == ("draft", "queued")
    assert out == (f"Queued import #{batch_id} as job {job.id}. A worker runs it (`referral-bot "
                   "worker`); follow it with `referral-bot jobs`.\n")  # fmt: skip
    with pytest.raises(WorkspaceError) as refused:
        await deleting
    assert str(refused.value) == (f"Import #{batch_id} into it is queued: finish or cancel it "
                                  "first.")  # fmt: skip
    assert await find_segment(db, TEAM, "VIP") is not None


async def test_deleting_a_segment_says_a_background_import_into_it_is_queued(
    db: Database, cli: Cli, people: Path
) -> None:
    """`segments delete` refused while an `import --background` into the segment was queued
    with "is waiting for review": no review ever comes for it (nor a message to review it in).
    It says the import is queued."""
    await ensure_workspace(db, TEAM)
    await import_target(db, TEAM, "VIP", create=True)
    code, out, _ = await cli("import", str(people), "--segment", "VIP", "--background", "--json")
    assert code == 0
    queued = json.loads(out)
    batch_id = queued["import_id"]  # as every import output names it
    assert queued["batch"] == batch_id  # its first name, kept for scripts that read it
    code, out, err = await cli("segments", "delete", "VIP")
    assert (code, out) == (1, "")
    assert err == (f"referral-bot: Import #{batch_id} into it is queued: finish or cancel it "
                   "first.\n")  # fmt: skip


async def test_an_unknown_or_blank_segment_name_says_where_the_names_are(
    db: Database, cli: Cli, people: Path
) -> None:
    """It said "No segment named 'vip'." and left the reader to guess, in another workspace
    (--team) too, and of a blank name "No segment named ''."."""
    await cli("import", str(people), "--segment", "VIP", "--create-segment")
    await ensure_workspace(db, "T2")
    code, out, err = await cli("export", "--segment", "vip", "--team", "T2")
    assert (code, out) == (1, "")
    assert err == ("referral-bot: No segment named 'vip' in this workspace (`referral-bot "
                   "segments --team T2` lists them).\n")  # fmt: skip
    for args in (("export", "--segment", "  "), ("segments", "delete", "")):
        code, out, err = await cli(*args, "--team", TEAM)
        assert (code, out) == (1, ""), args
        assert err == ("referral-bot: Name a segment: the name given is blank (`referral-bot "
                       "segments --team local` lists them).\n"), args  # fmt: skip


async def test_deleting_an_empty_or_one_contact_segment_reads_right(
    db: Database, cli: Cli, tmp_path: Path
) -> None:
    """It said "0 contacts taken out of it (they stay in All Customers)" of an empty one, and
    "they" of one contact."""
    one = tmp_path / "one.csv"
    one.write_text("email\nana@example.com\n", encoding="utf-8")
    await cli("import", str(one), "--segment", "Solo", "--create-segment")
    code, out, _ = await cli("segments", "delete", "solo", "--yes")
    assert (code, out) == (0, "Deleted segment 'Solo': 1 contact taken out of it (it stays in "
                              "All Customers).\n")  # fmt: skip
    await import_target(db, TEAM, "Empty", create=True)
    code, out, _ = await cli("segments", "delete", "empty")
    assert (code, out) == (0, "Deleted segment 'Empty' (it held no contacts).\n")
    code, out, _ = await cli("segments", "delete", "empty")  # gone: refused as any unknown name
    assert code == 1


async def test_an_export_to_a_full_disk_says_so_in_words_and_records_nothing(
    db: Database, db_env: dict[str, str], cli: Cli, tmp_path: Path
) -> None:
    """`export > /dev/full` said "referral-bot: [Errno 28] No space left on device". Both a
    segment small enough to fail at the last flush and one that fails part way."""
    big = tmp_path / "big.csv"
    big.write_text("email\n" + "".join(f"p{i}@example.com\n" for i in range(3000)),
                   encoding="utf-8")  # fmt: skip
    small = tmp_path / "small.csv"
    small.write_text("email\nana@example.com\n", encoding="utf-8")
    for path, name in ((big, "Big"), (small, "Small")):
        assert (await cli("import", str(path), "--segment", name, "--create-segment"))[0] == 0
    for name in ("Big", "Small"):
        with open("/dev/full", "w") as full:
            done = subprocess.run([*CLI, "export", "--segment", name], env=environment(db_env),
                                  stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                                  cwd=tmp_path)  # fmt: skip
        assert (done.returncode, done.stderr) == (1, (
            "referral-bot: Couldn't write the export: no space left on the device. The output "
            "is incomplete: free some space, then export again.\n")), name  # fmt: skip
    # nobody has the file: no "exported" entry in the audit log
    assert "segment.exported" not in [e.action for e in await recent(db, TEAM)]
    code, out, _ = await cli("export", "--segment", "small")  # stdout that takes it: as ever
    assert (code, out.splitlines()[1:]) == (0, ["ana,,ana@example.com,,yes"])


async def _spring_targets(db: Database, *segments: str) -> None:
    """A live campaign, Spring, targets the segments."""
    from bot.campaigns.service import set_state
    from models import CampaignState

    spring = await create_campaign(db, TEAM, "Spring", store_url="https://s.example",
                                   created_by="cli")  # fmt: skip
    for name in segments:
        found = await find_segment(db, TEAM, name)
        assert found is not None
        await target(db, TEAM, spring.id or 0, found.id or 0, requested_by="cli")
    await set_state(db, TEAM, spring.id or 0, CampaignState.LIVE, requested_by="cli",
                    queue_job=False)  # fmt: skip


async def test_deleting_a_segment_in_use_without_a_terminal_needs_yes(
    db: Database, cli: Cli, people: Path
) -> None:
    """`segments delete` deleted at once, even the segment a live campaign targets (Slack
    asks first). Without a terminal to ask on it deletes nothing, saying to add --yes; an
    empty segment no campaign uses is still deleted at once."""
    assert (await cli("import", str(people), "--segment", "VIP", "--create-segment"))[0] == 0
    await import_target(db, TEAM, "Empty", create=True)
    await _spring_targets(db, "VIP", "Empty")

    code, out, err = await cli("segments", "delete", "VIP")
    assert (code, out) == (1, "")
    assert err == ("referral-bot: Nothing was deleted: 'VIP' holds 2 contacts, and Spring "
                   "targets it. Add --yes to delete it without being asked (there is no "
                   "terminal to ask on).\n")  # fmt: skip
    code, out, _ = await cli("segments", "delete", "empty", "--json")
    assert code == 1 and json.loads(out)["error"].startswith(
        "Nothing was deleted: 'Empty' holds no contacts, but Spring targets it. Add --yes")
    assert await find_segment(db, TEAM, "VIP") is not None
    assert await find_segment(db, TEAM, "Empty") is not None

    code, out, _ = await cli("segments", "delete", "VIP", "--yes", "--json")
    assert code == 0 and json.loads(out) == {
        "deleted": "VIP", "contacts_taken_out": 2,
        "campaigns": [{"name": "Spring", "role": "target"}]}  # fmt: skip
    assert await find_segment(db, TEAM, "VIP") is None


@pytest.mark.parametrize("answer", ["n", "y"])
async def test_deleting_a_segment_in_use_on_a_terminal_asks_first(
    db: Database, db_env: dict[str, str], cli: Cli, people: Path, tmp_path: Path, answer: str
) -> None:
    """On a terminal it asks, naming what the segment holds and which campaigns use it;
    anything but y keeps it."""
    assert (await cli("import", str(people), "--segment", "VIP", "--create-segment"))[0] == 0
    await _spring_targets(db, "VIP")

    terminal, keyboard = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, "segments", "delete", "vip"], env=environment(db_env),
                                stdin=keyboard, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=tmp_path)  # fmt: skip
        os.write(terminal, f"{answer}\n".encode())
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
    finally:
        os.close(terminal)
        os.close(keyboard)

    assert err.startswith(
        "'VIP' holds 2 contacts: they stay in All Customers; only the segment goes.\n"
        "  Spring targets it: its advocates stay advocates, but contacts added later won't be "
        "enrolled through this segment.\n"
        "Delete segment 'VIP'? [y/N] "), err
    if answer == "n":
        assert (proc.returncode, out) == (1, "")
        assert err.endswith("referral-bot: Nothing was deleted: 'VIP' is kept.\n"), err
        assert await find_segment(db, TEAM, "VIP") is not None
    else:
        assert proc.returncode == 0, err
        assert out.startswith("Deleted segment 'VIP': 2 contacts taken out of it")
        assert await find_segment(db, TEAM, "VIP") is None


async def test_the_segment_list_is_aligned_with_wide_names(cli: Cli, people: Path) -> None:
    """A CJK name takes two columns a character: padded by its length, 顧客リスト (5
    characters, 10 columns) pushed its count five columns right of the others'."""
    for name in ("顧客リスト", "VIP"):
        assert (await cli("import", str(people), "--segment", name, "--create-segment"))[0] == 0
    code, out, _ = await cli("segments")
    assert code == 0
    ends = {display_width(line) for line in out.splitlines()}
    assert len(ends) == 1, out  # every count ends in the same column


async def test_deleting_all_customers_a_campaign_targets_is_refused_not_asked(
    db: Database, cli: Cli, people: Path
) -> None:
    """All Customers can't be deleted: said at once, as for All Customers no campaign uses,
    not a question (or an "add --yes") claiming it "holds no contacts"."""
    assert (await cli("import", str(people), "--segment", "VIP", "--create-segment"))[0] == 0
    await _spring_targets(db, "All Customers")

    code, out, err = await cli("segments", "delete", "All Customers")
    assert (code, out) == (1, "")
    assert "can't be deleted" in err and "holds no contacts" not in err, err
