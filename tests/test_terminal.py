"""What the shell prints to a terminal can't drive it (bot/terminal.py): names from a CSV
with an escape character or a right-to-left override, listed on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.shell import CLI, environment, run

ESC_NAME = "Es\x1b[2Jc"  # would clear the screen
RTL_NAME = "A\u202eevil"  # would turn the rest of the line around


def _on_a_terminal(env: dict[str, str], *args: str) -> str:
    """What `referral-bot ARGS` writes to stdout when stdout is a (pseudo-)terminal."""
    main, side = pty.openpty()
    try:
        done = subprocess.run([*CLI, *args], env=environment(env), stdout=side,
                              stderr=subprocess.PIPE, timeout=60, check=False)  # fmt: skip
        os.close(side)
        side = -1
        assert done.returncode == 0, done.stderr
        out = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other side is closed, all is read
                break
            if not chunk:
                break
            out += chunk
        return out.decode()
    finally:
        os.close(main)
        if side != -1:
            os.close(side)


def _import_hostile_names(env: dict[str, str], tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text(f'email,first_name\nc1@example.com,"{ESC_NAME}"\n'
                      f"c2@example.com,{RTL_NAME}\n", encoding="utf-8")  # fmt: skip
    assert run(env, "import", str(people), "--segment", f"Red{ESC_NAME}",
               "--create-segment").returncode == 0  # fmt: skip


def test_names_from_a_file_cant_drive_the_terminal_they_are_listed_on(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    _import_hostile_names(db_env, tmp_path)
    for args in (("contacts", "search", "c"), ("segments",), ("audit",),
                 ("export", "--segment", f"Red{ESC_NAME}")):  # fmt: skip
        shown = _on_a_terminal(db_env, *args)
        assert "\x1b" not in shown and "\u202e" not in shown, (args, shown)
    listed = _on_a_terminal(db_env, "contacts", "search", "c")
    assert "Es\\x1b[2Jc" in listed and "A\\u202eevil" in listed, listed
    segments = _on_a_terminal(db_env, "segments")
    assert "RedEs\\x1b[2Jc" in segments
    # measured as shown: the counts still line up
    assert len({len(line) for line in segments.splitlines()}) == 1, segments


def test_a_file_or_a_pipe_gets_the_names_exactly(db_env: dict[str, str], tmp_path: Path) -> None:
    """Only a terminal acts on them: a script reading the output gets what was stored."""
    _import_hostile_names(db_env, tmp_path)
    piped = subprocess.run([*CLI, "contacts", "search", "c"], env=environment(db_env),
                           capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert ESC_NAME in piped.stdout and RTL_NAME in piped.stdout, piped.stdout


# the hostile sheet name is longer than Excel's 31 characters on purpose: openpyxl warns of it
@pytest.mark.filterwarnings("ignore:Title is more than 31 characters:UserWarning")
def test_sheet_names_in_a_refusal_on_stderr_cant_drive_the_terminal(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Staff\rAll 2 rows imported. \u009b2J\u202eok"
    book.active.append(["name", "phone"])
    book.active.append(["Ann", "1"])
    other = book.create_sheet("Totals\nFORGED")
    other.append(["total", "n"])
    other.append(["x", "2"])
    path = tmp_path / "people.xlsx"
    book.save(path)
    done = run(db_env, "import", str(path), "--segment", "V", "--create-segment")
    assert done.returncode == 1
    said = done.stderr.strip()
    assert "sheet" in said, said
    assert not [c for c in said if c in "\r\n\x9b\u202e"], repr(said)
