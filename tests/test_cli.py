"""`referral-bot` as a shell user runs it, against a real database.

Commands run through the real entry point in this process (tests/shell.py: the same `main`,
environment and output as a subprocess, without a Python start-up each); what is about the
process itself (its exit status and stderr when a file is unreadable or the settings are bad,
a fresh directory) runs in a real one.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text

from bot.imports.parallel import PARALLEL_MIN_BYTES
from bot.workspaces import ensure_workspace
from models import Database
from tests.imports import exports
from tests.shell import CLI, environment, run, run_process

# a server whose locale isn't UTF-8: its terminal takes ASCII only
C_LOCALE = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(
        "first_name,last_name,email,locale\n"
        "François,Dupont,francois@example.org,fr\n"
        "悠斗,田中,yuto@example.jp,ja\n"
        '=HYPERLINK("x"),Evil,evil@example.com,\n'
        "Jane,Doe,JANE@example.com,\n"
        "Jane,Again,jane@example.com,\n"
        "Bad,Row,bad@@example.com,\n",
        encoding="utf-8",
    )
    return path


async def test_import_json_export_round_trip(
    db: Database, db_env: dict[str, str], sample: Path, tmp_path: Path
) -> None:
    rejects = tmp_path / "rejects.csv"
    result = run(db_env, "import", str(sample), "--segment", "Launch", "--create-segment",
                 "--rejects", str(rejects), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert isinstance(summary.pop("import_id"), int)
    assert summary == {
        "rows": 6, "valid": 4, "duplicates": 1, "rejected": 1, "new_contacts": 4,
        "existing_contacts": 0, "added_to_segment": 4, "already_in_segment": 0, "warnings": 0,
        "segment": "Launch", "enrolled": 0, "invites_queued": 0, "not_emailed": {},
        "notes": [],
    }  # fmt: skip
    with rejects.open(newline="") as f:
        lines = list(csv.reader(f))
    assert [(r[1], r[7]) for r in lines[1:]] == [("6", "duplicate"), ("7", "rejected")]

    exported = run(db_env, "export", "--segment", "launch")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    by_email = {r["email"]: r for r in rows}
    assert by_email["francois@example.org"]["first_name"] == "François"
    assert by_email["yuto@example.jp"]["last_name"] == "田中"
    assert by_email["yuto@example.jp"]["locale"] == "ja"
    assert by_email["JANE@example.com"]["locale"] == ""  # none of her own: the default's
    assert by_email["evil@example.com"]["first_name"] == '\'=HYPERLINK("x")'

    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert segments == [
        {"name": "All Customers", "kind": "all", "contacts": 4},
        {"name": "Launch", "kind": "static", "contacts": 4},
    ]


async def test_an_export_imported_again_leaves_a_contact_on_the_workspace_default(
    db: Database, db_env: dict[str, str], sample: Path, tmp_path: Path
) -> None:
    """Jane has no locale: her invites follow the workspace's default (DEFAULT_LOCALE). The
    export wrote that default into her locale cell, so its names fixed in a spreadsheet and
    imported again with --update-existing pinned her to "en": after DEFAULT_LOCALE=de she was
    still invited in English."""
    assert run(db_env, "import", str(sample), "--segment", "Launch",
               "--create-segment").returncode == 0  # fmt: skip
    exported = tmp_path / "launch.csv"
    exported.write_text(run(db_env, "export", "--segment", "Launch").stdout, encoding="utf-8")
    again = run(db_env, "import", str(exported), "--segment", "Launch", "--update-existing")
    assert again.returncode == 0, again.stderr
    async with db.begin() as conn:
        locale = (await conn.execute(text(
            "SELECT locale FROM contact WHERE email_key = 'jane@example.com'"))).scalar_one()
    assert locale is None


async def test_readable_summary_and_second_run_finds_everyone(
    db: Database, db_env: dict[str, str], sample: Path
) -> None:
    first = run(db_env, "import", str(sample), "--segment", "Launch", "--create-segment")
    assert first.returncode == 0, first.stderr
    # the import's number, which `undo` and `audit` take: only --json and --background said it
    said = re.search(r"Imported into segment 'Launch' \(import #(\d+)\):", first.stdout)
    async with db.begin() as conn:
        made = (await conn.execute(text("SELECT id FROM import_batch"))).scalar_one()
    assert said is not None and int(said[1]) == made, first.stdout
    assert "--rejects" in first.stdout  # tells the user how to see what was skipped
    again = json.loads(run(db_env, "import", str(sample), "--segment", "Launch", "--json").stdout)
    assert (again["new_contacts"], again["existing_contacts"]) == (0, 4)
    assert (again["added_to_segment"], again["already_in_segment"]) == (0, 4)


def test_a_dry_run_prints_the_notes_the_import_would(db_env: dict[str, str],
                                                    tmp_path: Path) -> None:  # fmt: skip
    """A dry run gave "every count of importing now" but none of the notes an import prints
    (a consent value not recognised, a locale unknown): `warnings: 2` and nothing to say
    which rows, with --rejects refused beside --dry-run."""
    people = tmp_path / "c.csv"
    people.write_text("email,subscribed,locale\na@example.com,maybe,en\n"
                      "b@example.com,yes,xx\n")  # fmt: skip
    args = ("import", str(people), "--segment", "S", "--create-segment", "--dry-run")
    shown = run(db_env, *args)
    assert shown.returncode == 0, shown.stderr
    assert "2 would be imported with a warning" in shown.stdout, shown.stdout
    assert f"Note on {people}: 1 row has a consent value we don't recognise" in shown.stdout
    assert "“xx”" in shown.stdout, shown.stdout
    told = json.loads(run(db_env, *args, "--json").stdout)["notes"]
    assert [note["file"] for note in told] == [str(people), str(people)], told
    real = json.loads(run(db_env, *args[:-1], "--json").stdout)["notes"]
    assert told == real  # the same notes as the import itself


def test_cells_past_the_header_are_said_not_dropped_unseen(db_env: dict[str, str],
                                                          tmp_path: Path) -> None:  # fmt: skip
    """A row with more cells than the header was imported from its first cells, and what was
    past the header's last column went without a word (a form's second address, split off by
    the comma in it, landed in first_name and its question's answer was dropped); blank cells
    past it ("a,b,,", how many exports end their rows) are nothing to say."""
    people = tmp_path / "forms.csv"
    people.write_text("email,first_name\nAda <ada@example.org>, Bob <bob@example.org>,Q10\n"
                      "cy@example.com,Cy,,\ndee@example.com,Dee\n"
                      "eve@example.com,Eve,extra\n", encoding="utf-8")  # fmt: skip
    shown = run(db_env, "import", str(people), "--segment", "S", "--create-segment", "--json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert (summary["rows"], summary["valid"]) == (4, 4)  # imported, as before
    assert summary["notes"] == [{"file": str(people), "note": (
        "2 rows have more cells than the header has columns (lines 2 and 5): nothing past its "
        "last column is imported. A comma in a cell that isn't quoted splits it in two; check "
        "the columns line up.")}], summary["notes"]  # fmt: skip


def test_a_file_with_a_header_and_no_rows_among_others_is_said(db_env: dict[str, str],
                                                              tmp_path: Path) -> None:  # fmt: skip
    """Imported beside a good file, it added nobody without a word (an empty file is refused,
    and one alone fails the import)."""
    good, bare = tmp_path / "good.csv", tmp_path / "bare.csv"
    good.write_text("email\nana@example.com\n", encoding="utf-8")
    bare.write_text("email,first_name\n", encoding="utf-8")
    shown = run(db_env, "import", str(good), str(bare), "--segment", "S", "--create-segment",
                "--json")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert (summary["rows"], summary["valid"]) == (1, 1)
    assert summary["notes"] == [{"file": str(bare), "note": "No rows below the header: nobody "
                                 "was imported from this file."}], summary["notes"]  # fmt: skip


async def test_the_summary_says_what_the_review_message_says_of_each_file(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """A consent value nobody could read (imported as not subscribed) was reported as an
    "unknown locale", and the files' notes (sheets not read, formulas without results) the
    review message shows were never printed: rows vanished from the shell unexplained."""
    people = tmp_path / "c.csv"
    people.write_text("email,subscribed\na@example.com,maybe\nb@example.com,yes\n")
    shown = run(db_env, "import", str(people), "--segment", "S", "--create-segment")
    assert shown.returncode == 0, shown.stderr
    assert "unknown locale: workspace default used" not in shown.stdout
    assert (f"Note on {people}: 1 row has a consent value we don't recognise: “maybe” (1). "
            "It is imported as not subscribed") in shown.stdout  # not "They are" for one row
    again = run(db_env, "import", str(people), "--segment", "S", "--json")
    (note,) = json.loads(again.stdout)["notes"]
    assert note["file"] == str(people) and "“maybe” (1)" in note["note"]


async def test_the_warning_line_points_at_the_unknown_locales_below_it(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """"1 imported with a warning (...: see below)", and below it nothing named the row or
    its value (valid rows aren't in --rejects either). A note names each unknown value with
    its count, as the consent note does; none when every locale is known."""
    f = tmp_path / "loc.csv"
    f.write_text("email,first_name,locale\nana@example.com,Ana,klingon\n"
                 "bo@example.com,Bo,en\ncy@example.com,Cy,Klingon\ndi@example.com,Di,xx\n"
                 'ed@example.com,Ed,"e\'n""x"\n')  # fmt: skip
    result = run(db_env, "import", str(f), "--segment", "S", "--create-segment")
    assert result.returncode == 0, result.stderr
    assert "4 imported with a warning" in result.stdout and "see below" in result.stdout
    # a value holding both kinds of quote is named as the file has it
    assert (f"Note on {f}: 4 rows have a locale we don't recognise: “Klingon” (1), "
            "“e'n\"x” (1), “klingon” (1), “xx” (1).") in result.stdout, result.stdout
    known = tmp_path / "known.csv"
    known.write_text("email,locale\nel@example.com,fr\n")
    quiet = run(db_env, "import", str(known), "--segment", "S", "--json")
    assert json.loads(quiet.stdout)["notes"] == []


async def test_counts_of_one_read_as_one(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """"1 rows read", "1 duplicates skipped", "Wrote 1 rejected and duplicate rows", and in
    the audit log "(1 contacts to import)", "(1 contacts)"."""
    one = tmp_path / "one.csv"
    one.write_text("email,locale\nana@example.com,klingon\n")
    dry = run(db_env, "import", "--dry-run", str(one), "--segment", "S", "--create-segment")
    assert dry.returncode == 0, dry.stderr
    assert "\n           1 row read\n" in dry.stdout, dry.stdout
    shown = run(db_env, "import", str(one), "--segment", "S", "--create-segment")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1:6] == ["           1 row read",
                          "           1 valid (1 new contact, 0 already known)",
                          "           1 added to the segment (0 were already in it)",
                          "           0 duplicates skipped",
                          "           0 rejected"], shown.stdout  # fmt: skip
    assert (f"Note on {one}: 1 row has a locale we don't recognise: “klingon” (1). It is "
            "imported with the workspace's default language") in shown.stdout, shown.stdout
    twice = tmp_path / "twice.csv"
    twice.write_text("email\nbo@example.com\nBO@example.com\n")
    rejects = tmp_path / "out.csv"
    done = run(db_env, "import", str(twice), "--segment", "S", "--rejects", str(rejects))
    assert done.returncode == 0, done.stderr
    assert "           1 duplicate skipped\n" in done.stdout, done.stdout
    assert f"Wrote 1 rejected or duplicate row to {rejects}" in done.stdout, done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnot-an-address\n")
    refused = run(db_env, "import", str(bad), "--segment", "S")
    assert "(1 row: 1 rejected, 0 duplicates)" in refused.stderr, refused.stderr

    solo = tmp_path / "solo.csv"
    solo.write_text("email\ncy@example.com\n")
    assert run(db_env, "import", str(solo), "--segment", "Solo", "--create-segment").returncode == 0
    assert run(db_env, "export", "--segment", "Solo").returncode == 0
    audit = run(db_env, "audit").stdout
    assert "exported the segment Solo (1 contact)" in audit, audit
    assert "(1 contact to import)" in audit and "contacts to import" not in audit, audit


async def test_dry_run_reports_every_count_and_writes_nothing(
    db: Database, db_env: dict[str, str], sample: Path, tmp_path: Path
) -> None:
    first = run(db_env, "import", "--dry-run", str(sample), "--segment", "Launch")
    assert first.returncode == 1 and "--create-segment" in first.stderr
    # a rejects file it doesn't write is refused, as --background's (it was ignored: no file,
    # not a word)
    rejects = tmp_path / "rejects.csv"
    ignored = run(db_env, "import", "--dry-run", str(sample), "--segment", "Launch",
                  "--create-segment", "--rejects", str(rejects))  # fmt: skip
    assert ignored.returncode == 1 and "--dry-run writes nothing" in ignored.stderr, ignored
    assert not rejects.exists()
    preview = run(db_env, "import", "--dry-run", str(sample), "--segment", "Launch",
                  "--create-segment", "--json")  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    summary = json.loads(preview.stdout)
    assert (summary["dry_run"], summary["segment_exists"]) == (True, False)
    assert (summary["rows"], summary["valid"], summary["duplicates"], summary["rejected"]) == (
        6, 4, 1, 1)  # fmt: skip
    assert (summary["new_contacts"], summary["added_to_segment"]) == (4, 4)
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert segments == [{"name": "All Customers", "kind": "all", "contacts": 0}]

    real = run(db_env, "import", str(sample), "--segment", "Launch", "--create-segment")
    assert real.returncode == 0, real.stderr
    more = tmp_path / "more.csv"
    more.write_text("email\njane@example.com\nnew@example.com\n", encoding="utf-8")
    again = run(db_env, "import", "--dry-run", str(more), "--segment", "Launch")
    assert again.returncode == 0, again.stderr
    assert "Dry run: nothing was written" in again.stdout
    assert "1 new contact, 1 already known" in again.stdout
    assert "1 would be added to the segment (1 is already in it)" in again.stdout
    async with db.begin() as conn:
        from sqlalchemy import text

        counts = [(await conn.execute(text(f"SELECT COUNT(*) FROM {t}"))).scalar_one()
                  for t in ("contact", "import_batch", "staged_row",
                            "audit_entry WHERE action LIKE 'import.%'")]  # fmt: skip
    assert counts == [4, 1, 6, 2]  # the real import's: contacts, batch, rows, its request and
    # its approval (the dry runs audit nothing)


async def test_dry_run_refuses_the_segment_names_the_import_refuses(
    db: Database, db_env: dict[str, str], sample: Path
) -> None:
    """`import --dry-run --create-segment` counted rows into a segment named '', '   ' or 300
    characters, which the import itself refuses to create."""
    for name in ("", "   ", "x" * 300):
        real = run(db_env, "import", str(sample), "--segment", name, "--create-segment")
        assert real.returncode == 1 and real.stderr.startswith("referral-bot: "), real.stderr
        dry = run(db_env, "import", "--dry-run", str(sample), "--segment", name,
                  "--create-segment")  # fmt: skip
        assert (dry.returncode, dry.stderr) == (1, real.stderr), (name, dry.stdout, dry.stderr)
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert [s["name"] for s in segments] == ["All Customers"]


async def test_unreadable_file_exits_non_zero_and_imports_nothing(
    db: Database, db_env: dict[str, str], sample: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "export.xlsx"
    junk.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    result = run_process(db_env, "import", str(sample), str(junk), "--segment", "Launch",
                         "--create-segment", "--json")  # fmt: skip
    assert result.returncode == 1
    assert "export.xlsx" in json.loads(result.stdout)["error"]
    assert "This Excel file is damaged" in result.stderr
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert segments == [{"name": "All Customers", "kind": "all", "contacts": 0}]


async def test_a_file_with_nothing_valid_says_so_and_lists_every_row(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("email,first_name\nnot-an-email,A\n,B\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    result = run(db_env, "import", str(bad), "--segment", "Launch", "--create-segment",
                 "--json", "--rejects", str(rejects))  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["error"] == (
        "Nothing to import: no row has a valid new address (2 rows: 2 rejected, 0 duplicates). "
        "Each is in the rejects file with its reason. Nothing was imported.")  # fmt: skip
    listed = list(csv.reader(rejects.open(encoding="utf-8")))
    assert [row[1] for row in listed[1:]] == ["2", "3"]  # every row, by its line
    header_only = tmp_path / "empty.csv"
    header_only.write_text("email,first_name\n", encoding="utf-8")
    result = run(db_env, "import", str(header_only), "--segment", "Launch", "--create-segment")
    assert result.returncode == 1
    assert result.stderr == (f"referral-bot: Nothing to import: {header_only} has a header but "
                             "no rows. Nothing was imported. The segment 'Launch', created for "
                             "this import, was removed again.\n")  # fmt: skip
    # the segment each of them made for nothing is gone again (see test_cli_import_shell.py)
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert {s["name"]: s["contacts"] for s in segments} == {"All Customers": 0}


async def test_an_import_with_nothing_valid_is_audited_as_such(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """An import that found no valid row was audited "withdrawn before approval", as if
    someone had withdrawn it."""
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnot-an-address\n")
    refused = run(db_env, "import", str(bad), "--segment", "Launch", "--create-segment")
    assert refused.returncode == 1, refused.stderr
    (entry,) = [e for e in json.loads(run(db_env, "audit", "--json").stdout)
                if e["action"] == "import.cancelled"]  # fmt: skip
    assert entry["detail"] == "nothing valid to import", entry
    assert "(nothing valid to import)" in run(db_env, "audit").stdout
    assert "withdrawn" not in run(db_env, "audit").stdout


async def test_the_rejects_file_opens_in_excel_with_its_accents_and_imports_again(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Excel opens a CSV without a byte order mark in the ANSI code page ("José" read
    "JosÃ©"); on a server whose locale isn't UTF-8 (LANG=C) writing "José" to it failed with
    a traceback after the import was applied. The file is UTF-8 with a BOM whatever the
    locale, and a row fixed in it imports again."""
    clients = tmp_path / "clients.csv"
    clients.write_text("email,first_name\njose@@example.com,José\nana@example.com,Ana\n",
                       encoding="utf-8")  # fmt: skip
    rejects = tmp_path / "rejects.csv"
    c_locale = {**db_env, **C_LOCALE}
    result = run_process(c_locale, "import", str(clients), "--segment", "Launch",
                         "--create-segment", "--rejects", str(rejects))  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = rejects.read_bytes()
    assert written.startswith(codecs.BOM_UTF8) and b"Jos\xc3\xa9" in written, written[:80]

    rejects.write_bytes(written.replace(b"jose@@", b"jose@"))
    again = run(db_env, "import", str(rejects), "--segment", "Launch", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["new_contacts"] == 1
    exported = run(db_env, "export", "--segment", "launch").stdout
    assert "José,,jose@example.com" in exported, exported


async def test_import_on_a_non_utf8_terminal_reports_what_it_did(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Under LANG=C an all-ASCII import whose summary has a note (its curly quotes) printed a
    UnicodeEncodeError traceback and exit status 1 after the import was saved."""
    f = tmp_path / "consent.csv"
    f.write_text("email,first_name,subscribed\nana@x.com,Ana,si\nbo@x.com,Bo,yes\n")
    result = run_process({**db_env, **C_LOCALE}, "import", str(f), "--segment", "Launch",
                         "--create-segment")  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-400:]
    assert result.returncode == 0
    assert f"Note on {f}:" in result.stdout, result.stdout
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert {s["name"]: s["contacts"] for s in segments}["Launch"] == 2


async def test_listing_commands_on_a_non_utf8_terminal(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Under LANG=C, segments, contacts search (also --json), audit and export failed with a
    traceback on the first name that isn't ASCII. Text shows it as escapes, JSON as \\u
    escapes, and export writes UTF-8 whatever the locale, so its CSV imports again."""
    f = tmp_path / "jp.csv"
    f.write_text("email,first_name,last_name\nyuto@example.jp,悠斗,田中\n", encoding="utf-8")
    assert run(db_env, "import", str(f), "--segment", "顧客", "--create-segment").returncode == 0
    outputs, failures = {}, {}
    for args in (["segments"], ["contacts", "search", "yuto"],
                 ["contacts", "search", "yuto", "--json"], ["audit"],
                 ["export", "--segment", "All Customers"]):  # fmt: skip
        result = run_process({**db_env, **C_LOCALE}, *args)
        outputs[args[-1]] = result.stdout
        if result.returncode != 0 or "Traceback" in result.stderr:
            failures[" ".join(args)] = result.stderr.strip().splitlines()[-1]
    assert failures == {}
    assert "\\u9867\\u5ba2" in outputs["segments"], outputs["segments"]  # 顧客, escaped
    assert json.loads(outputs["--json"])[0]["first_name"] == "悠斗"
    assert "悠斗,田中,yuto@example.jp" in outputs["All Customers"], outputs["All Customers"]


@pytest.mark.parametrize("parsing", [0.5, 0.0], ids=["while-parsing", "as-the-parser-starts"])
async def test_ctrl_c_during_a_big_import_stops_its_parser_without_a_traceback(
    db: Database, db_env: dict[str, str], tmp_path: Path, parsing: float
) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group: the child parsing a
    file of 16 MB or more printed a KeyboardInterrupt traceback. It ignores Ctrl-C, and the
    import stopping it is all that is seen; from its start too: a Ctrl-C while it was still
    loading its modules (half a second of CPU, more on a busy machine) printed the traceback
    of an import."""
    # Just past the parser child's threshold, in fewer rows than 700,000 short ones (a column
    # nobody imports makes up the size): the child still parses for a second or more after it
    # starts, so `while-parsing` still signals it part way.
    big = tmp_path / "big.csv"
    note = "x" * 20
    with big.open("w") as f:
        f.write("email,first_name,last_name,note\n")
        f.writelines(f"user{i}@example{i % 50}.com,F{i},L{i},{note}\n" for i in range(300_000))
    assert big.stat().st_size >= PARALLEL_MIN_BYTES  # read by the parser child

    def own_group() -> None:  # as a shell starts a foreground job
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen([*CLI, "import", str(big), "--segment", "S", "--create-segment"],
                            env=environment(db_env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=own_group)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not psutil.Process(proc.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert psutil.Process(proc.pid).children(), "no parser child started"
        time.sleep(parsing)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    with pytest.raises(ProcessLookupError):  # the parser was stopped with it
        os.killpg(proc.pid, 0)


def _big_csv(tmp_path: Path) -> Path:
    """A file just big enough to be read by the parser child (a second or two of staging)."""
    big = tmp_path / "big.csv"
    note = "x" * 60  # a column nobody imports: fewer rows to stage for the size
    with big.open("w") as f:
        f.write("email,first_name,note\n")
        f.writelines(f"user{i}@example{i % 50}.com,F{i},{note}\n" for i in range(200_000))
    assert big.stat().st_size >= PARALLEL_MIN_BYTES
    return big


def _staging(db_env: dict[str, str], big: Path, *how: str) -> subprocess.Popen[str]:
    """`import big.csv --segment S ...` in a session of its own (as over SSH), returned once
    its parser child is reading the file: its draft batch exists and its rows are staging."""
    proc = subprocess.Popen([*CLI, "import", str(big), "--segment", "S", *how],
                            env=environment(db_env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not psutil.Process(proc.pid).children() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert psutil.Process(proc.pid).children(), "no parser child started"
    return proc


async def _batches(db: Database) -> list[tuple[int, str, str | None]]:
    """(id, status, cancelled_by) of every import batch."""
    from sqlalchemy import text

    async with db.begin() as conn:
        rows = await conn.execute(
            text("SELECT id, status, cancelled_by FROM import_batch ORDER BY id"))
        return [(r[0], r[1], r[2]) for r in rows]


@pytest.mark.parametrize("how", [["--create-segment"], ["--dry-run"]])
async def test_an_import_killed_while_staging_leaves_its_segment_deletable(
    db: Database, db_env: dict[str, str], sample: Path, tmp_path: Path, how: list[str]
) -> None:
    """An SSH session dropped during an import (or a dry run) left its draft: no review
    message, no job, so nothing could finish or cancel it, and `segments delete S` was refused
    for good ("Import #2 into it is waiting for review"). Deleting S now withdraws it."""
    assert run(db_env, "import", str(sample), "--segment", "S", "--create-segment").returncode == 0
    proc = _staging(db_env, _big_csv(tmp_path), *how)
    try:
        os.killpg(proc.pid, signal.SIGHUP)  # the SSH session dropped
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGHUP
    assert (await _batches(db))[1][1] == "draft"  # what the killed import left
    assert run(db_env, "undo", "2").returncode == 1  # not finished: nothing takes it back
    deleted = run(db_env, "segments", "delete", "S", "--yes")  # it holds contacts
    assert deleted.returncode == 0, deleted.stderr
    assert await _batches(db) == [(1, "done", None), (2, "cancelled", "cli")]
    audit = run(db_env, "audit", "--json")
    cancelled = [e for e in json.loads(audit.stdout) if e["action"] == "import.cancelled"]
    # the import asked for is told as withdrawn; a dry run, never audited, isn't
    assert [e["detail"] for e in cancelled] == (
        [] if "--dry-run" in how else ["withdrawn: its segment was deleted"])


@pytest.mark.parametrize("how", [[], ["--dry-run"]])
async def test_an_import_whose_segment_is_deleted_while_it_reads_stops_saying_so(
    db: Database, db_env: dict[str, str], sample: Path, tmp_path: Path, how: list[str]
) -> None:
    """The segment of an import being read from the shell is deleted (which its draft no
    longer prevents): the import stops with one line saying so, and imports nothing."""
    from bot.segments import delete_segment
    from bot.workspaces import LOCAL_TEAM, find_segment

    assert run(db_env, "import", str(sample), "--segment", "S", "--create-segment").returncode == 0
    segment = await find_segment(db, LOCAL_TEAM, "S")
    assert segment is not None and segment.id is not None
    proc = _staging(db_env, _big_csv(tmp_path), *how)
    try:
        # deleted from this process: `referral-bot segments delete`'s start (a second or more
        # on a busy machine) sometimes came after the import had finished
        await delete_segment(db, LOCAL_TEAM, segment.id)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (1, ""), err
    what = "the dry run has nothing to count" if how else "nothing was imported"
    said = f"The segment 'S' was deleted while the files were being read; {what}."
    assert err == f"referral-bot: {said}\n"
    from sqlalchemy import text

    async with db.begin() as conn:
        contacts = (await conn.execute(text("SELECT COUNT(*) FROM contact"))).scalar_one()
    assert contacts == 4  # the first import's only
    withdrawn = [] if how else [(2, "cancelled", "cli")]  # a dry run's batch is dropped
    assert await _batches(db) == [(1, "done", None), *withdrawn]


async def test_missing_segment_and_missing_file_are_explained(
    db: Database, db_env: dict[str, str], sample: Path
) -> None:
    result = run(db_env, "import", str(sample), "--segment", "Nope")
    assert result.returncode == 1
    assert "No segment named 'Nope'" in result.stderr and "--create-segment" in result.stderr
    result = run(db_env, "import", "/no/such.csv", "--segment", "Nope")
    assert result.returncode == 1 and "no such file" in result.stderr


async def test_several_workspaces_need_team(
    db: Database, db_env: dict[str, str], sample: Path
) -> None:
    await ensure_workspace(db, "T1")
    await ensure_workspace(db, "T2")
    result = run(db_env, "segments")
    assert result.returncode == 1 and "--team" in result.stderr
    ok = run(db_env, "import", str(sample), "--segment", "A", "--create-segment", "--team", "T2")
    assert ok.returncode == 0, ok.stderr
    t1 = json.loads(run(db_env, "segments", "--team", "T1", "--json").stdout)
    assert t1 == [{"name": "All Customers", "kind": "all", "contacts": 0}]


async def test_an_unknown_team_lists_every_workspace(
    db: Database, db_env: dict[str, str]
) -> None:
    """`--team T9` among T1, T2 and T3 said "Known: T1, T2." (the lookup stopped at two): the
    one meant may be the one not listed. All are listed; a very long list ends "and N more"."""
    for team in ("T3", "T1", "T2"):
        await ensure_workspace(db, team)
    result = run(db_env, "segments", "--team", "T9")
    assert result.returncode == 1
    assert "No workspace 'T9'. Known: T1, T2, T3." in result.stderr, result.stderr
    for i in range(20):  # 23 in all: the first 20 are listed
        await ensure_workspace(db, f"U{i:02}")
    many = run(db_env, "segments", "--team", "T9").stderr
    assert "Known: T1, T2, T3, U00, " in many and ", U16 and 3 more." in many, many


def test_no_command_prints_the_help_and_fails(tmp_path: Path) -> None:
    """A bare `referral-bot` printed its help and exit status 0, as if it had done something."""
    result = run_process({}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: referral-bot") and "import" in result.stderr
    assert result.stdout == ""


def test_bad_settings_give_one_clear_message(tmp_path: Path) -> None:
    result = run_process({"DATABASE_URL": "mysql://nope", "DEFAULT_LOCALE": "klingon"},
                         "segments", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert "DATABASE_URL" in result.stderr and "DEFAULT_LOCALE" in result.stderr
    assert "Traceback" not in result.stderr
    # each variable's line says what is wrong in our words, without pydantic's "Value error, "
    assert "  DATABASE_URL: must start with sqlite:/// or postgresql://\n" in result.stderr
    assert "  DEFAULT_LOCALE: 'klingon' is not a language code" in result.stderr, result.stderr


def test_a_bad_smtp_url_is_refused_at_start_naming_it_and_never_its_password(
    tmp_path: Path,
) -> None:  # fmt: skip
    for url in ("smtp://u:hunter2@mail.example.com:58x7", "mail.example.com"):
        result = run({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "SMTP_URL": url}, "worker")
        assert result.returncode == 1 and "SMTP_URL" in result.stderr, result.stderr
        assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_db_upgrade_on_a_fresh_directory(tmp_path: Path) -> None:
    result = run_process({}, "db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "referral-bot.db").exists()


async def test_a_command_with_stdin_or_stdout_closed_exits_0(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`referral-bot segments <&-` printed its answer, then aborted (exit 134): uvloop's loop
    took the free fd 0 and asserts when it closes it."""
    await ensure_workspace(db, "T1")
    for closed in ("<&-", ">&-"):
        done = subprocess.run(["sh", "-c", f'"$@" {closed}', "sh", *CLI, "segments"],
                              env=environment(db_env), capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, (closed, done.returncode, done.stderr)
        assert ("All Customers" in done.stdout) == (closed == "<&-")


async def test_json_to_a_full_disk_says_why_without_a_traceback(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`segments --json >/dev/full`: the {"error"} JSON went to the stdout that had just failed,
    and a traceback came out instead of the reason (then "[Errno 28] No space left on
    device")."""
    await ensure_workspace(db, "T1")
    with open("/dev/full", "w") as full:
        done = subprocess.run([*CLI, "segments", "--json"], env=environment(db_env), stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("referral-bot: "), done.stderr
    assert "Traceback" not in done.stderr and "Errno" not in done.stderr, done.stderr
    assert done.stderr.endswith("No space left on the device: free some space, then run it "
                                "again.\n"), done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr


def test_options_before_and_after_a_jobs_action_both_count() -> None:
    from bot.cli import build_parser

    before = build_parser().parse_args(["jobs", "--team", "T1", "--json", "cancel", "5"])
    after = build_parser().parse_args(["jobs", "cancel", "5", "--team", "T2"])
    assert (before.team, before.json, before.job_id) == ("T1", True, 5)
    assert (after.team, after.json) == ("T2", False)
    # `campaign list --team T` and `mailchimp status --team T` exited 2 ("unrecognized")
    for argv in (["campaign", "list", "--team", "T3"], ["campaign", "--team", "T3", "list"],
                 ["mailchimp", "status", "--team", "T3"], ["mailchimp", "--team", "T3", "lists"]):
        assert build_parser().parse_args(argv).team == "T3", argv


async def test_mailchimp_zip_and_xlsx_from_the_shell(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.imports import exports

    archive = tmp_path / "export.zip"
    archive.write_bytes(exports.mailchimp_zip())
    result = run(db_env, "import", str(archive), "--segment", "Newsletter", "--create-segment",
                 "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["valid"], summary["rejected"], summary["new_contacts"]) == (
        5, 3, 2, 3)  # fmt: skip
    exported = run(db_env, "export", "--segment", "Newsletter")
    by_email = {r["email"]: r for r in csv.DictReader(io.StringIO(exported.stdout))}
    assert {e: r["subscribed"] for e, r in by_email.items()} == {
        "ada@example.com": "yes", "li@example.cn": "yes", "gone@example.com": "no"}

    workbook = tmp_path / "Kunden.xlsx"
    workbook.write_bytes(exports.xlsx_workbook())
    preview = run(db_env, "import", "--dry-run", str(workbook), "--segment", "Newsletter",
                  "--json")  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    assert (json.loads(preview.stdout)["valid"], json.loads(preview.stdout)["rejected"]) == (2, 1)

    bomb = tmp_path / "bomb.zip"
    from tests.imports.test_archives import bomb as deflate_bomb

    bomb.write_bytes(deflate_bomb(2 * 1024 * 1024))
    refused = run({**db_env, "MAX_UNZIPPED_MB": "1"}, "import", str(bomb), "--segment",
                  "Newsletter", "--json")  # fmt: skip
    assert refused.returncode == 1
    assert "more than the 1 MB limit" in json.loads(refused.stdout)["error"]


async def test_map_names_the_columns_and_is_remembered(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work.csv"
    work.write_text("Work Contact,Given,Preferred language\nada@example.com,Ada,fr\n"
                    "bob@example.org,Bob,\n", encoding="utf-8")  # fmt: skip
    plain = run(db_env, "import", str(work), "--segment", "Work", "--create-segment")
    assert plain.returncode == 1 and "No email column found" in plain.stderr
    # and what fixes it: the message never named --map
    assert 'Name the email column with --map email="COLUMN"' in plain.stderr, plain.stderr
    bad = run(db_env, "import", str(work), "--segment", "Work", "--map", "phone=Mobile")
    assert bad.returncode == 1 and "phone is not a field" in bad.stderr

    maps = ["--map", "email=Work Contact", "--map", "locale=Preferred language"]
    preview = run(db_env, "import", str(work), "--segment", "Work", "--create-segment",
                  "--dry-run", "--json", *maps)  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    assert json.loads(preview.stdout)["valid"] == 2
    done = run(db_env, "import", str(work), "--segment", "Work", "--create-segment", "--json",
               *maps)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] == 2
    # remembered for these headers: the same export imports without --map next time
    again = run(db_env, "import", str(work), "--segment", "Work", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["existing_contacts"] == 2


async def test_map_naming_a_column_of_another_sheet_reads_that_sheet(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A staff list first (its "Email" recognised), the customers on the next sheet under
    "Work Mail": `--map email="Work Mail"` failed "The column 'Work Mail' chosen for Email
    isn't in this file. Columns found: 'Name', 'Email'", though the workbook has it."""
    from tests.imports.test_excel import STAFF_THEN_CUSTOMERS, workbook

    book = tmp_path / "two.xlsx"
    book.write_bytes(workbook(*STAFF_THEN_CUSTOMERS))
    done = run(db_env, "import", str(book), "--segment", "Customers", "--create-segment",
               "--json", "--map", "email=Work Mail")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["valid"] == 2
    exported = run(db_env, "export", "--segment", "Customers").stdout
    assert "w1@example.com" in exported and "me@shop.example" not in exported
    # remembered for the customers' headers: the same workbook imports them without --map
    again = run(db_env, "import", str(book), "--segment", "Customers", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["existing_contacts"] == 2

    wrong = run(db_env, "import", str(book), "--segment", "Customers", "--json",
                "--map", "email=Mail")  # fmt: skip
    assert ("The column 'Mail' chosen for Email isn't in any sheet of this workbook. Columns "
            "found in “Staff”: 'Name', 'Email'; in “Customers”: 'Work Mail', 'Name'."
            ) in json.loads(wrong.stdout)["error"]  # fmt: skip


async def test_a_map_that_imported_nothing_is_not_remembered(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`--map` naming the wrong column: "Nothing was imported", yet the mapping was kept for
    those headers, and every later import of that export (shell or Slack) was read with it
    and failed the same way."""
    f = tmp_path / "customers.csv"
    f.write_text("email,first_name\nana@example.com,Ana\nbo@example.com,Bo\n")
    wrong = run(db_env, "import", str(f), "--segment", "S", "--create-segment",
                "--map", "email=first_name")  # fmt: skip
    assert wrong.returncode == 1 and "Nothing was imported" in wrong.stderr, wrong.stderr
    plain = run(db_env, "import", str(f), "--segment", "S", "--create-segment", "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["new_contacts"] == 2


async def test_a_map_giving_one_column_two_fields_or_a_field_twice_is_refused(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`--map email=contact --map first_name=Contact` imported the address as the first name
    and remembered that; `--map email=Work --map email=Home` kept the last silently."""
    f = tmp_path / "c1.csv"
    f.write_text("Contact,Who\na@x.com,Ada\n")
    both = run(db_env, "import", str(f), "--segment", "S", "--create-segment",
               "--map", "email=contact", "--map", "first_name=Contact")  # fmt: skip
    assert both.returncode == 1, both.stdout + both.stderr
    assert ("c1.csv: The column 'Contact' is chosen for both Email and First name"
            ) in both.stderr and "Nothing was imported" in both.stderr  # fmt: skip
    twice = run(db_env, "import", str(f), "--segment", "S", "--create-segment",
                "--map", "email=Work", "--map", "email=Home")  # fmt: skip
    assert twice.returncode == 1 and "email is given twice" in twice.stderr, twice.stderr
    # nothing imported, nothing remembered: without --map its email column is still unknown
    plain = run(db_env, "import", str(f), "--segment", "S", "--create-segment")
    assert plain.returncode == 1 and "No email column found" in plain.stderr, plain.stderr
    assert run(db_env, "export", "--segment", "All Customers").stdout.count("@") == 0


async def test_a_map_is_not_remembered_for_a_file_it_found_no_valid_row_in(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """a.csv's "Contact" holds the address, b.csv's a phone: `import a.csv b.csv --map
    email=Contact` remembered the mapping for b.csv's headers too, and b.csv alone then had
    "Nothing to import: no row has a valid new address"."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("Contact,Name\na@x.com,Ada\n")
    b.write_text("Email,Contact,Name\nz@x.com,555-1234,Zed\ny@x.com,555-9999,Yan\n")
    both = run(db_env, "import", str(a), str(b), "--segment", "S", "--create-segment",
               "--json", "--map", "email=Contact")  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert (json.loads(both.stdout)["valid"], json.loads(both.stdout)["rejected"]) == (1, 2)
    alone = run(db_env, "import", str(b), "--segment", "S", "--json")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert json.loads(alone.stdout)["valid"] == 2
    # a.csv's headers keep it
    again = run(db_env, "import", str(a), "--segment", "S", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["existing_contacts"] == 1


def test_rejects_never_overwrites_an_input_nor_empties_an_old_file_on_failure(
    db_env: dict[str, str], sample: Path, tmp_path: Path
) -> None:
    original = sample.read_bytes()
    same = run(db_env, "import", str(sample), "--segment", "S", "--create-segment",
               "--rejects", str(sample))  # fmt: skip
    assert same.returncode == 1 and "would destroy that file" in same.stderr
    assert sample.read_bytes() == original
    old = tmp_path / "rejects.csv"
    old.write_text("kept\n")
    typo = run(db_env, "import", str(sample), "--segment", "Nope", "--rejects", str(old))
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    assert old.read_text() == "kept\n" and [p.name for p in tmp_path.glob(".rejects*")] == []
    folder = run(db_env, "import", str(sample), "--segment", "S", "--create-segment",
                 "--rejects", str(tmp_path))  # fmt: skip
    assert folder.returncode == 1 and "is a folder" in folder.stderr


def test_background_refuses_what_it_cant_do_and_folders_are_told_apart(
    db_env: dict[str, str], sample: Path, tmp_path: Path
) -> None:
    for extra in ([], ["--mailchimp-list", "Foo"], [str(sample), "--rejects", "r.csv"]):
        result = run(db_env, "import", "--segment", "S", "--create-segment", "--background",
                     *extra)  # fmt: skip
        assert result.returncode == 1 and "--background" in result.stderr, result.stderr
    folder = run(db_env, "import", str(tmp_path), "--segment", "S", "--create-segment")
    assert folder.returncode == 1 and "is a folder, not a file" in folder.stderr
    jobs = run(db_env, "jobs", "--json")
    assert jobs.returncode == 0 and json.loads(jobs.stdout) == []


def test_paths_are_named_as_typed(db_env: dict[str, str], tmp_path: Path) -> None:
    """Messages named a path by its last part: `import .` said ": is a folder", two files of
    one name in two folders couldn't be told apart, and a --rejects that can't be created
    named the hidden temporary file beside it."""
    folder = run_process(db_env, "import", ".", "--segment", "S", "--create-segment",
                         cwd=tmp_path)  # fmt: skip
    assert folder.returncode == 1
    assert folder.stderr == "referral-bot: .: is a folder, not a file\n", folder.stderr

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "x.csv").write_text("email\nana@example.com\n")
    (tmp_path / "b" / "x.csv").write_text("name\nBo\n")  # no email column
    missing = run(db_env, "import", str(tmp_path / "a" / "x.csv"), str(tmp_path / "b" / "y.csv"),
                  "--segment", "S", "--create-segment")  # fmt: skip
    assert f"{tmp_path / 'b' / 'y.csv'}: no such file" in missing.stderr, missing.stderr
    which = run(db_env, "import", str(tmp_path / "a" / "x.csv"), str(tmp_path / "b" / "x.csv"),
                "--segment", "S", "--create-segment")  # fmt: skip
    assert which.returncode == 1
    assert which.stderr.startswith(f"referral-bot: {tmp_path / 'b' / 'x.csv'}: "), which.stderr

    # a name the folder takes, whose temporary file's longer name it doesn't
    rejects = tmp_path / ("r" * 246 + ".csv")  # 250 bytes of the 255 a name may have
    unwritable = run(db_env, "import", str(tmp_path / "a" / "x.csv"), "--segment", "S",
                     "--create-segment", "--rejects", str(rejects))  # fmt: skip
    assert unwritable.returncode == 1
    assert unwritable.stderr == (f"referral-bot: --rejects {rejects} can't be written: "
                                 "File name too long\n"), unwritable.stderr


def test_a_file_name_that_isnt_utf8_imports_under_a_readable_label(
    db_env: dict[str, str], sample: Path, tmp_path: Path
) -> None:
    latin = tmp_path / b"caf\xe9.csv".decode("utf-8", "surrogateescape")  # as os.listdir has it
    latin.write_bytes(sample.read_bytes())
    result = run(db_env, "import", str(latin), "--segment", "S", "--create-segment", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["new_contacts"] == 4


def test_a_database_that_cant_be_opened_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = run({"DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/x.db"}, "segments",
                 "--json")  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = json.loads(result.stdout)["error"]  # SQLite says only "unable to open database file"
    assert f"the folder {tmp_path}/missing/dir doesn't exist" in error, error


def test_a_dotenv_that_isnt_utf8_and_a_huge_number_are_one_line_each(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"DEFAULT_LOCALE=caf\xe9\n")
    bad_env = run_process({}, "segments", cwd=tmp_path)
    assert bad_env.returncode == 1 and ".env file isn't UTF-8" in bad_env.stderr
    assert "Traceback" not in bad_env.stderr
    (tmp_path / ".env").unlink()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    for args in (("audit", "--limit", "99999999999999999999"), ("undo", "99999999999999999999")):
        result = run(env, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_an_id_or_limit_no_database_takes_is_a_usage_error(db_env: dict[str, str]) -> None:
    """On PostgreSQL `undo 3000000000` (past its INTEGER ids), `jobs cancel 3000000000` and
    `audit --limit 9300000000000000000` printed asyncpg's DataError ("value out of int32
    range"). Ids and limits are whole numbers from 1 to 2,147,483,647: a usage error."""
    for args in (["undo", "3000000000"], ["jobs", "cancel", "3000000000"],
                 ["audit", "--limit", "9300000000000000000"],
                 ["contacts", "search", "a", "--limit", "9300000000000000000"],
                 ["undo", "0"], ["audit", "--limit", "0"],
                 ["worker", "--concurrency", "0"], ["worker", "--concurrency", "-3"]):  # fmt: skip
        result = run(db_env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "isn't between 1 and 2,147,483,647" in result.stderr, result.stderr
        assert "sqlalchemy" not in result.stderr and "asyncpg" not in result.stderr
    largest = run(db_env, "undo", "2147483647")  # the database's to answer
    assert largest.returncode == 1 and "#2147483647 doesn't exist" in largest.stderr


def test_an_argument_that_isnt_utf8_is_one_line(db_env: dict[str, str]) -> None:
    """`contacts search $'\\xc3'` (the first byte of "é"): argv holds a lone surrogate."""
    for args in (("contacts", "search", "\udcc3"), ("export", "--segment", "Caf\udcc3")):
        result = run(db_env, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-300:]
        assert "isn't valid UTF-8 text" in result.stderr


async def test_utf8_arguments_under_a_non_utf8_locale_are_taken_as_typed(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Under LANG=C, `export --segment Café` typed in a UTF-8 terminal was refused as "isn't
    valid UTF-8 text" (argv holds its bytes as surrogates). It is UTF-8: taken as such."""
    f = tmp_path / "a.csv"
    f.write_text("email\na@example.com\n")
    assert run(db_env, "import", str(f), "--segment", "Café", "--create-segment").returncode == 0
    result = run_process({**db_env, **C_LOCALE}, "export", "--segment", "Café")
    assert result.returncode == 0, result.stderr
    assert "a@example.com" in result.stdout


async def test_a_database_migrated_by_a_newer_version_is_explained_and_left_alone(
    db: Database, db_env: dict[str, str]
) -> None:
    """A rollback to older code, or an old worker left running beside a new `serve`: Alembic
    said "Can't locate revision '0017'" in a traceback, and `--json` printed nothing."""
    from sqlalchemy import text

    async with db.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    serving = {**db_env, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
               "SECRET_KEY": "k" * 32, "PORT": "1"}  # fmt: skip
    for env, args in ((db_env, ("jobs", "--json")), (db_env, ("db", "upgrade")),
                      (serving, ("serve",))):  # fmt: skip
        result = run(env, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-500:]
        assert "revision 9999, newer than this referral-bot knows" in result.stderr
    listed = json.loads(run(db_env, "jobs", "--json").stdout)
    assert "a newer version migrated it" in listed["error"]
    async with db.begin() as conn:
        version = await conn.execute(text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == "9999"


async def test_two_revisions_in_alembic_version_are_explained_not_a_traceback(
    db: Database, db_env: dict[str, str]
) -> None:
    """alembic_version with two rows (a botched fix by hand, another tool's merge): every
    command died with Alembic's "more than one head present" in a traceback."""
    from sqlalchemy import text

    from models.migrate import HEAD

    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO alembic_version VALUES ('0021')"))
    for args in (("jobs",), ("db", "upgrade"), ("worker",)):
        result = run(db_env, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-500:]
        assert result.stderr.startswith("referral-bot: the database's alembic_version table "
                                        f"holds 2 revisions (0021, {HEAD})"), result.stderr
        assert "Delete every row but" in result.stderr
    async with db.begin() as conn:
        versions = await conn.execute(text("SELECT version_num FROM alembic_version"))
        assert sorted(versions.scalars()) == ["0021", HEAD]



async def test_processes_started_together_on_a_new_database_migrate_it_once(
    db_env: dict[str, str],
) -> None:
    """`serve` and workers started together after a deploy each migrate on start: they ran the
    same DDL side by side and all but one died ("table staged_row already exists" on SQLite,
    a duplicate key in pg_type on PostgreSQL). Here three engines, as three processes would,
    upgrade one new database at once (each statement awaits its driver: they interleave)."""
    import asyncio

    from models.migrate import current_revision, head_revision, upgrade

    url, schema = db_env["DATABASE_URL"], db_env.get("DATABASE_SCHEMA")
    engines = [Database(url, schema=schema) for _ in range(3)]
    try:
        outcomes = await asyncio.gather(*(upgrade(e) for e in engines), return_exceptions=True)
        assert outcomes == [None] * 3, outcomes
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            await engine.dispose()
    result = run(db_env, "jobs", "--json")
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr


async def test_a_current_schema_is_checked_without_waiting_for_the_write_lock(
    db_env: dict[str, str],
) -> None:
    """Every command checks the schema on start: with the migrations' write lock taken even
    when there was nothing to migrate, `referral-bot jobs` waited for a running import's
    chunk to commit (seconds, up to the busy timeout) on SQLite."""
    import asyncio

    from sqlalchemy import text

    from models.migrate import _lock_key, upgrade

    url, schema = db_env["DATABASE_URL"], db_env.get("DATABASE_SCHEMA")
    migrated, other = Database(url, schema=schema), Database(url, schema=schema)
    try:
        await upgrade(migrated)
        async with other.engine.connect() as holder:  # an import's chunk, mid-transaction
            if other.is_sqlite:
                await holder.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await holder.execute(text("SELECT pg_advisory_lock(:k)"),  # a deploy's migration
                                     {"k": _lock_key(schema)})  # fmt: skip
            await asyncio.wait_for(upgrade(migrated), timeout=3)
            await holder.rollback()
    finally:
        await migrated.dispose()
        await other.dispose()


def test_a_database_url_with_libpqs_sslmode_works(db_env: dict[str, str]) -> None:
    """Hosts hand out `postgresql://...?sslmode=require`: asyncpg refused the keyword with
    a traceback (`connect() got an unexpected keyword argument 'sslmode'`)."""
    from sqlalchemy.engine import make_url

    from models.db import async_url

    assert async_url("postgresql://u@db.example/shop?sslmode=require") == (
        "postgresql+asyncpg://u@db.example/shop?ssl=require")  # fmt: skip
    if "DATABASE_SCHEMA" not in db_env:
        return  # the rest needs a PostgreSQL server (TEST_POSTGRES_URL)
    url = make_url(db_env["DATABASE_URL"]).update_query_dict({"sslmode": "disable"})
    result = run({**db_env, "DATABASE_URL": url.render_as_string(hide_password=False)},
                 "jobs", "--json")  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr[-400:]


def test_a_database_url_that_is_wrong_or_unreachable_is_named_in_one_line(
    tmp_path: Path,
) -> None:
    """DATABASE_URL typos and a database that isn't there: each was a SQLAlchemy or asyncpg
    traceback (a wrong database name, user or password too), or a bare "[Errno 111]
    Connection refused" that named no database. Never the password."""
    import socket

    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_URL

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cases = {
        "postgresq://bot:hunter2@db.example/bot": "postgresq:// is no database referral-bot knows",
        "sqlite://bot.db": "a SQLite URL is sqlite:/// and then the file",
        "sqlite:/bot.db": "isn't a database URL",
        # no file (forgotten, or in memory): every command said it had done its work and
        # kept nothing, and each of serve's worker children had a database of its own
        "sqlite:///": "a SQLite URL is sqlite:/// and then the file",
        "sqlite://": "a SQLite URL is sqlite:/// and then the file",
        "sqlite:///:memory:": "':memory:' is a database kept in memory: lost when the process "
                              "exits",
        f"postgresql://bot:hunter2@127.0.0.1:{port}/bot":
            f"can't use the database postgresql://bot:***@127.0.0.1:{port}/bot (DATABASE_URL): ",
    }  # fmt: skip
    if POSTGRES_URL:
        wrong = make_url(POSTGRES_URL).set(database="no_such_db_here", password="hunter2")
        cases[wrong.render_as_string(hide_password=False)] = (
            "(DATABASE_URL): database \"no_such_db_here\" does not exist")  # fmt: skip
    serving = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SECRET_KEY": "k" * 32}
    for url, said in cases.items():
        for env, args in (({}, ("jobs", "--json")), (serving, ("serve",)), ({}, ("db", "upgrade"))):
            result = run({"DATABASE_URL": url, **env}, *args)
            assert result.returncode == 1, (url, args, result.stderr)
            assert "Traceback" not in result.stderr and said in result.stderr, result.stderr[-400:]
            assert "hunter2" not in result.stderr + result.stdout
        assert said in json.loads(run({"DATABASE_URL": url}, "jobs", "--json").stdout)["error"]
    # a worker that can't reach it (serve's restarted child, during an outage) exits with
    # EX_TEMPFAIL: serve starts it again until it can, not counting it as a crash
    refused = f"postgresql://bot:hunter2@127.0.0.1:{port}/bot"
    worker = run({"DATABASE_URL": refused}, "worker")
    assert worker.returncode == 75 and cases[refused] in worker.stderr, worker.stderr[-400:]
    assert worker.stderr.count("\n") == 1 and "Traceback" not in worker.stderr
    # what no wait mends (a database, a user the server doesn't know) fails as a crash:
    # serve stops restarting it after a few, instead of "waiting" for ever
    lasting: dict[str, str] = {}
    if POSTGRES_URL:
        lasting[POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_db_here"] = "does not exist"
        lasting[make_url(POSTGRES_URL).set(username="no_such_role_here")
                .render_as_string(hide_password=False)] = "does not exist"  # fmt: skip
    for url, said in lasting.items():
        worker = run({"DATABASE_URL": url}, "worker")
        assert worker.returncode == 1 and said in worker.stderr, (url, worker.stderr[-400:])


def test_run_from_another_folder_reads_the_files_named_there(tmp_path: Path) -> None:
    """`../repo/run import mine.csv` said "mine.csv: no such file": ./run changed to its own
    folder before running the command, so relative paths, .env and the default database
    were the checkout's, not the working directory's the README names."""
    (tmp_path / "mine.csv").write_text("email\nana@example.com\n", encoding="utf-8")
    script = Path(__file__).resolve().parents[1] / "run"

    done = subprocess.run([str(script), "import", "mine.csv", "--segment", "X",
                           "--create-segment", "--json"], cwd=tmp_path, env=environment({}),
                          capture_output=True, text=True, timeout=120)  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new_contacts"] == 1
    assert (tmp_path / "referral-bot.db").exists()


async def test_jobs_lists_an_error_written_for_slack_without_its_markup(
    db: Database, db_env: dict[str, str]
) -> None:
    """A job's error may be a message written for Slack ("cancelled by <@U0123>"): the shell's
    list printed the mention's markup; it names the user id as `audit` does."""
    from bot.jobs import queue

    await ensure_workspace(db, "T1")
    await queue.enqueue(db, "T1", "import", {"batch_id": 1}, max_attempts=1)
    job = await queue.claim(db, "w", 60)
    assert job is not None
    await queue.fail(db, job, "w", "Import #1 was cancelled by <@U0123>.", retry_base=1,
                     permanent=True)  # fmt: skip
    listed = run(db_env, "jobs", "--team", "T1")
    assert listed.returncode == 0, listed.stderr
    assert "cancelled by U0123." in listed.stdout and "<@" not in listed.stdout, listed.stdout


def test_one_file_given_twice_is_imported_once_and_said_so(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`import bad.csv bad.csv --dry-run` counted 18 rows of a file of 9: every row twice,
    the second time as duplicates (of itself), with the second file's notes and rejects.
    As Slack leaves out a file already in the import, the shell reads it once and says so;
    another path to the same file (a link, `./x.csv` beside `x.csv`) is the same file."""
    path = tmp_path / exports.SUBSCRIBED_CSV  # each file's note: Mailchimp's export
    path.write_bytes(exports.mailchimp_members([], ("ana@example.com", "Ana", "Ng"),
                                               ("bad@@x", "Bo", "Li")))  # fmt: skip
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    dry = run(db_env, "import", str(path), str(path), "--segment", "S", "--create-segment",
              "--dry-run", "--json")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert (json.loads(dry.stdout)["rows"], json.loads(dry.stdout)["duplicates"]) == (2, 0)
    assert dry.stderr == f"{path} is given twice: imported once.\n"
    rejects = tmp_path / "out.csv"
    result = run(db_env, "import", str(path), str(link), "--segment", "S", "--create-segment",
                 "--rejects", str(rejects), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"{path} and {link} are the same file: imported once.\n"
    assert json.loads(result.stdout)["rows"] == 2
    rows = list(csv.reader(io.StringIO(rejects.read_text(encoding="utf-8-sig"))))
    assert [(row[0], row[2], row[7]) for row in rows[1:]] == [(str(path), "bad@@x", "rejected")]
    notes = [(note["file"], note["note"]) for note in json.loads(result.stdout)["notes"]]
    assert notes == [(str(path), "Recognised as Mailchimp's subscribed members export.")]
