"""`referral-bot contacts search` and `contacts delete`, run in-process (`main([...])` in a
thread of its own, as a shell would run it) against this test's database."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import cli_contacts
from bot.cli import main
from bot.contact_admin import delete_contact
from bot.imports.importer import import_files
from bot.workspaces import ensure_workspace
from models import Database
from tests.conftest import BACKEND
from tests.shell import run, run_process

TEAM = "T0001"
OTHER = "T0002"


@pytest.fixture
async def shell(db: Database, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> Database:  # fmt: skip
    """The CLI's environment pointed at `db`, with a workspace of three contacts."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("DATABASE_SCHEMA", raising=False)
    for name, value in db_env.items():
        monkeypatch.setenv(name, value)
    await ensure_workspace(db, TEAM)
    await _import(db, TEAM, "VIP", "Ada@example.com,Ada,Lovelace,yes\n"
                  "bob@example.com,Bob,Adams,no\n")  # fmt: skip
    await _import(db, TEAM, "Newsletter", "ada@example.com,Ada,Lovelace,yes\n")
    return db


async def _import(db: Database, team: str, segment: str, rows: str) -> None:
    csv = "email,first_name,last_name,accepts_marketing\n" + rows
    await import_files(db, team, [("people.csv", io.BytesIO(csv.encode()))], segment=segment,
                       create_segment=True)  # fmt: skip


async def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_search_prints_the_matches(shell: Database,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code, out, _ = await _cli(capsys, "contacts", "search", "ADA", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"email": "Ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
         "segments": ["Newsletter", "VIP"], "subscribed": True, "unsubscribed": False},
        {"email": "bob@example.com", "first_name": "Bob", "last_name": "Adams",
         "segments": ["VIP"], "subscribed": False, "unsubscribed": False},
    ]  # fmt: skip
    code, out, _ = await _cli(capsys, "contacts", "search", "bob")  # imported saying no
    assert code == 0 and "not subscribed" in out
    code, out, _ = await _cli(capsys, "contacts", "search", "love")
    assert code == 0 and "Ada@example.com" in out and "Newsletter, VIP" in out
    assert "bob" not in out
    code, out, _ = await _cli(capsys, "contacts", "search", "zed", "--json")
    assert (code, json.loads(out)) == (0, [])


async def test_search_lines_up_its_columns_under_a_header_with_cjk_names(
    shell: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Padded by their length, a name of CJK characters (two columns each in a terminal) ran
    past its column, pushing that row's later columns out of line; nothing said what the
    columns were. Each column is as wide as its widest cell, as a terminal shows it."""
    await _import(shell, TEAM, "Tokyo", "yuto@example.jp,悠斗,田中,yes\n"
                  "yo.ko@example.com,Yo,Ko,no\n")  # fmt: skip
    code, out, _ = await _cli(capsys, "contacts", "search", "y")
    assert code == 0
    assert out.splitlines() == [
        "Email              Name       Subscription    Segments",
        "yo.ko@example.com  Yo Ko      not subscribed  Tokyo",
        "yuto@example.jp    悠斗 田中  subscribed      Tokyo",
    ]
    code, out, _ = await _cli(capsys, "contacts", "search", "y", "--json")
    assert [r["email"] for r in json.loads(out)] == ["yo.ko@example.com", "yuto@example.jp"]
    # a terminal that can't show them (LANG=C) is shown their escapes, six columns each
    c_locale = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    escaped = run_process({**dict(os.environ), **c_locale}, "contacts", "search", "y")
    assert escaped.stdout.splitlines() == [
        "Email              Name                       Subscription    Segments",
        "yo.ko@example.com  Yo Ko                      not subscribed  Tokyo",
        "yuto@example.jp    \\u60a0\\u6597 \\u7530\\u4e2d  subscribed      Tokyo",
    ], escaped


async def test_deleting_a_contact_in_all_customers_alone_names_it(
    shell: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """bob@, whose one segment was deleted, was "Deleted … from 0 segments": he was in All
    Customers, which every contact is in without a membership row."""
    assert (await _cli(capsys, "segments", "delete", "VIP", "--yes"))[0] == 0
    code, out, _ = await _cli(capsys, "contacts", "delete", "bob@example.com")
    assert (code, out.strip()) == (0, "Deleted bob@example.com from All Customers and 0 "
                                      "campaigns (0 referral links retired, 0 invite records "
                                      "deleted).")  # fmt: skip


async def test_delete_by_email_then_again(shell: Database,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code, out, _ = await _cli(capsys, "contacts", "delete", "ADA@EXAMPLE.COM")
    assert code == 0
    assert out.strip() == ("Deleted Ada@example.com from All Customers, 2 segments and 0 "
                           "campaigns (0 referral links retired, 0 invite records "
                           "deleted).")  # fmt: skip
    async with shell.begin() as conn:
        left = (await conn.execute(text("SELECT email FROM contact"))).scalars().all()
        audit = (await conn.execute(text("SELECT actor, action, subject FROM audit_entry "
                                         "WHERE action = 'contact.deleted'"))).all()  # fmt: skip
    assert left == ["bob@example.com"]
    assert [tuple(a) for a in audit] == [("cli", "contact.deleted", "contact Ada@example.com")]
    code, _, err = await _cli(capsys, "contacts", "delete", "ada@example.com")
    assert code == 1 and "No contact with the email 'ada@example.com'" in err


async def test_each_workspace_sees_its_own_contacts(
    shell: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    await ensure_workspace(shell, OTHER)
    await _import(shell, OTHER, "VIP", "zed@example.com,Zed,,yes\n")
    code, out, _ = await _cli(capsys, "contacts", "search", "zed", "--team", TEAM, "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = await _cli(capsys, "contacts", "search", "zed", "--team", OTHER, "--json")
    assert [r["email"] for r in json.loads(out)] == ["zed@example.com"]
    code, out, _ = await _cli(capsys, "contacts", "delete", "zed@example.com", "--team", TEAM,
                                "--json")  # fmt: skip
    assert code == 1 and "No contact" in json.loads(out)["error"]
    code, _, _ = await _cli(capsys, "contacts", "delete", "zed@example.com", "--team", OTHER)
    assert code == 0


async def test_delete_finds_an_address_spelt_in_punycode(
    shell: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`contacts delete ada@xn--bcher-kva.de`, as a bounce report writes ada@bücher.de, said
    there was no such contact."""
    await _import(shell, TEAM, "VIP", "ada@bücher.de,Ada,,yes\n")
    code, out, _ = await _cli(capsys, "contacts", "delete", "ada@xn--bcher-kva.de", "--json")
    assert code == 0 and json.loads(out)["email"] == "ada@bücher.de"


async def test_team_and_json_go_before_or_after_the_action(
    shell: Database, db_env: dict[str, str]
) -> None:
    """`contacts --team T search Q` exited 2 ("unrecognized arguments"), though every other
    command group takes `GROUP --team T ACTION`."""
    await ensure_workspace(shell, OTHER)
    await _import(shell, OTHER, "VIP", "zed@example.com,Zed,,yes\n")
    before = run(db_env, "contacts", "--team", OTHER, "--json", "search", "zed")
    assert before.returncode == 0, before.stderr
    assert [r["email"] for r in json.loads(before.stdout)] == ["zed@example.com"]
    after = run(db_env, "contacts", "search", "zed", "--team", TEAM)
    assert (after.returncode, after.stderr) == (0, ""), after.stderr
    assert "No contact's email" in after.stdout
    deleted = run(db_env, "contacts", "--team", OTHER, "delete", "zed@example.com", "--json")
    assert deleted.returncode == 0 and json.loads(deleted.stdout)["email"] == "zed@example.com"


async def test_a_blank_query_is_refused(shell: Database, db_env: dict[str, str]) -> None:
    """`contacts search ''` said "No contact's email, first name or last name starts with ''."
    in a workspace full of contacts."""
    for query in ("", "   "):
        blank = run(db_env, "contacts", "search", query)
        assert blank.returncode == 1, blank.stdout
        assert blank.stderr.startswith("referral-bot: ") and "search" in blank.stderr, blank.stderr
        assert blank.stdout == ""
    as_json = run(db_env, "contacts", "search", "", "--json")
    assert as_json.returncode == 1 and "error" in json.loads(as_json.stdout)


async def test_a_search_cut_at_its_limit_says_how_to_see_more(
    shell: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "(more match: use --limit to see more than 50)", leaving the number to guess;
    with --json it said nothing at all."""
    await _import(shell, TEAM, "Leads", "".join(f"p{i:03}@example.com,,,yes\n" for i in range(51)))
    code, out, err = await _cli(capsys, "contacts", "search", "p")
    lines = out.splitlines()
    assert (code, err, len(lines)) == (0, "", 52)  # the header, 50 contacts, the note
    assert lines[-1] == ("Showing the first 50 contacts. More match: add --limit 200 to see up "
                         "to 200.")  # fmt: skip
    code, out, err = await _cli(capsys, "contacts", "search", "ADA", "--limit", "1")
    assert code == 0 and out.splitlines()[-1] == (
        "Showing the first contact. More match: add --limit 5 to see up to 5.")  # fmt: skip
    # --json: stdout stays the list scripts read; the note goes to stderr
    code, out, err = await _cli(capsys, "contacts", "search", "ada", "--limit", "1", "--json")
    assert (code, [r["email"] for r in json.loads(out)]) == (0, ["Ada@example.com"])
    assert err == "Showing the first contact. More match: add --limit 5 to see up to 5.\n"
    # all of them shown: no note
    code, out, err = await _cli(capsys, "contacts", "search", "ada", "--limit", "2")
    assert (code, err, len(out.splitlines())) == (0, "", 3)  # the header and both
    code, out, err = await _cli(capsys, "contacts", "search", "p", "--limit", "200", "--json")
    assert (code, err, len(json.loads(out))) == (0, "", 51)


async def test_a_contact_deleted_meanwhile_is_said_gone_and_the_next_one_spared(
    shell: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`contacts delete` found the id in one transaction and deleted by it in another: a
    contact deleted meanwhile, and another imported in its place, which SQLite gives the
    same id, was deleted instead."""
    found_ids: list[int] = []
    find = cli_contacts.find_by_email

    async def found_then_replaced(db: Database, team: str, email: str) -> int:
        found = await find(db, team, email)
        found_ids.append(found)
        await delete_contact(db, team, found, "U0001")  # a lead deletes bob from Slack...
        await _import(db, team, "Leads", "carol@example.com,Carol,,yes\n")  # ...carol comes
        return found

    monkeypatch.setattr(cli_contacts, "find_by_email", found_then_replaced)
    code, out, err = await _cli(capsys, "contacts", "delete", "bob@example.com")
    assert (code, out) == (1, "")
    assert err.endswith("No contact with the email 'bob@example.com' in this workspace any "
                        "more: it was deleted meanwhile. Nothing else was deleted.\n"), err
    async with shell.begin() as conn:
        left = dict((await conn.execute(text("SELECT email, id FROM contact"))).all())
        deleted = (await conn.execute(text("SELECT subject FROM audit_entry WHERE action = "
                                           "'contact.deleted'"))).scalars().all()  # fmt: skip
    assert sorted(left) == ["Ada@example.com", "carol@example.com"]
    assert deleted == ["contact bob@example.com"]  # by the lead alone
    if BACKEND == "sqlite":  # the case that deleted carol
        assert left["carol@example.com"] == found_ids[0]


@pytest.mark.parametrize("query", ["\u200b", " \u200b\u2060 ", "\ufeff\u00ad", "\u200e\u200c"])
async def test_a_query_of_characters_that_show_nothing_is_refused_as_blank(
    shell: Database, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    """A zero-width space (or a word joiner, a BOM, a soft hyphen, a direction mark) alone
    was searched for, not refused as blank: only spaces were left out."""
    code, out, err = await _cli(capsys, "contacts", "search", query)
    assert (code, out) == (1, "")
    assert err.endswith("Name what to search for: the start of an email, a first name or a "
                        "last name (Q is blank).\n"), err


async def test_characters_that_show_nothing_are_left_out_of_a_search(
    shell: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name pasted with a zero-width space or a direction mark finds the contact; the
    joiners Persian names are spelt with are kept between letters."""
    await _import(shell, TEAM, "Leads", "mina@example.com,Mina,Mohammad\u200cpour,yes\n")
    for query, email in [("\u200bbob\u200e", "bob@example.com"),
                         ("lo\u00advelace", "Ada@example.com"),
                         ("\u200cmohammad\u200cpour", "mina@example.com")]:  # fmt: skip
        code, out, _ = await _cli(capsys, "contacts", "search", query, "--json")
        assert (code, [r["email"] for r in json.loads(out)]) == (0, [email]), query
    code, out, _ = await _cli(capsys, "contacts", "search", "mohammadpour", "--json")
    assert (code, json.loads(out)) == (0, [])  # a joiner is a letter of the name
