"""What a new shell user meets in `--help` and in refusals, for the commands of
bot/cli_contacts.py, bot/cli_segments.py, bot/cli_audit.py, bot/cli_undo.py,
bot/cli_mailchimp.py, bot/cli_mappings.py and `jobs`, and file refusals told in the shell
(run in-process, as tests/shell.py does)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.imports.exports import mailchimp_zip
from tests.shell import run

COMMANDS = [
    ("contacts",), ("contacts", "search"), ("contacts", "delete"),
    ("segments",), ("segments", "rename"), ("segments", "delete"), ("export",),
    ("audit",), ("leads",), ("leads", "add"), ("leads", "remove"), ("undo",),
    ("mailchimp",), ("mailchimp", "connect"), ("mailchimp", "status"), ("mailchimp", "lists"),
    ("mailchimp", "disconnect"), ("jobs",), ("jobs", "cancel"), ("mappings",),
    ("mappings", "forget"),
]  # fmt: skip


def _bare(help_text: str) -> list[str]:
    """The options and arguments `--help` lists with nothing said of them."""
    lines = help_text.splitlines()
    bare, listed = [], False
    for i, line in enumerate(lines):
        if line and not line.startswith(" "):  # a section's title
            listed = line in ("options:", "positional arguments:")
            continue
        if not listed or not re.match(r"^  \S", line):
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        # its words on the same line, or (a long invocation) on the next, further in
        if not re.match(r"^  \S.*?\S {2,}\S", line) and not following.startswith("   "):
            bare.append(line.strip())
    return bare


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_says_what_every_option_and_argument_is(command: tuple[str, ...]) -> None:
    """`contacts search --help` listed `Q`, `--team TEAM` and `--json` with nothing beside
    them (and `--limit LIMIT  at most this many`), as did every command here but `undo`."""
    shown = run({}, *command, "--help")
    assert shown.returncode == 0, shown.stderr
    assert _bare(shown.stdout) == [], shown.stdout


def test_help_says_what_a_group_without_an_action_does() -> None:
    """`segments` and `leads` list something without an ACTION; their help didn't say so."""
    assert "Without an ACTION: the segments" in run({}, "segments", "--help").stdout
    assert "Without an ACTION: the workspace's team leads" in run({}, "leads", "--help").stdout
    limit = run({}, "contacts", "search", "--help").stdout
    assert "--limit N" in limit and "at most N contacts (default 50)" in limit


def test_a_damaged_zip_is_refused_in_words_that_fit_a_shell(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The shell was told to "zip the CSV files again, then upload it"."""
    broken = tmp_path / "export.zip"
    broken.write_bytes(mailchimp_zip()[:200])
    refused = run(db_env, "import", str(broken), "--segment", "VIP", "--create-segment")
    assert refused.returncode == 1
    assert refused.stderr == (
        f"referral-bot: {broken}: This ZIP file is damaged or incomplete: download the export "
        "again or zip the CSV files again, then import the new ZIP. Nothing was imported.\n"
    )


def test_a_file_in_an_unknown_encoding_is_refused_in_words_that_fit_a_shell(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The shell was told to save it as CSV UTF-8 "and upload that"."""
    unreadable = tmp_path / "customers.csv"
    unreadable.write_bytes(
        "email,first_name,last_name\r\nahmed@example.ae,أحمد,سعيد\r\n".encode("cp1256"))
    refused = run(db_env, "import", str(unreadable), "--segment", "VIP", "--create-segment")
    assert refused.returncode == 1
    assert "CSV UTF-8) and import that." in refused.stderr, refused.stderr
    assert "upload" not in refused.stderr


def test_a_damaged_workbook_is_refused_in_words_that_fit_a_shell(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The shell was told to open it in Excel, "save it again and upload it"."""
    from tests.imports.test_excel import workbook

    broken = tmp_path / "customers.xlsx"
    broken.write_bytes(workbook(("Customers", [["Email"], ["ada@example.com"]]))[:400])
    refused = run(db_env, "import", str(broken), "--segment", "VIP", "--create-segment")
    assert refused.returncode == 1
    assert "save it again and import it" in refused.stderr, refused.stderr
    assert "upload" not in refused.stderr


def test_a_name_with_both_kinds_of_quote_is_shown_as_typed(db_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    """repr showed 'Bob\\'s "Big" Sale': the shell's quotes are Python's, its escapes needn't be."""
    name = 'Bob\'s "Big" Sale'
    made = run(db_env, "campaign", "create", name, "--store-url", "https://shop.example")
    assert made.returncode == 0 and made.stdout == f"Campaign '{name}' created (draft).\n", made
    again = run(db_env, "campaign", "create", name, "--store-url", "https://shop.example")
    assert again.returncode == 1 and f"A campaign named '{name}' already exists." in again.stderr
    missing = run(db_env, "segments", "rename", name, "New")
    assert missing.returncode == 1 and f"No segment named '{name}' in this" in missing.stderr
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    into = run(db_env, "import", str(people), "--segment", name)  # no --create-segment
    assert into.returncode == 1 and f"No segment named '{name}'. Create it" in into.stderr, into
    # a line break in a name is still shown escaped: it can't break the output's lines
    odd = run(db_env, "segments", "rename", "two\nlines", "New")
    assert "No segment named 'two\\nlines'" in odd.stderr, odd


def test_a_binary_file_is_refused_in_words_that_fit_a_shell(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """It said "Upload a CSV file", which the shell can't."""
    binary = tmp_path / "dump.csv"
    binary.write_bytes(b"email\n" + bytes(range(256)) * 64)
    refused = run(db_env, "import", str(binary), "--segment", "VIP", "--create-segment")
    assert refused.returncode == 1, refused
    assert "This file is not text (it contains binary data): import a CSV file" in refused.stderr
    assert "Upload" not in refused.stderr, refused.stderr


def test_a_cell_too_long_above_the_header_is_not_called_a_quote_that_never_closes(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """A 70 KB title line above the header, in a file without a quote, was refused as "The
    header row has a quote (") that never closes"."""
    long = tmp_path / "long.csv"
    long.write_text("x" * 70_000 + "\nemail\nlh@example.com\n", encoding="utf-8")
    refused = run(db_env, "import", str(long), "--segment", "VIP", "--create-segment")
    assert refused.returncode == 1, refused
    assert "has a cell longer than 65,536 characters, so the header can't be read" in (
        refused.stderr), refused.stderr
    assert "quote" not in refused.stderr, refused.stderr
