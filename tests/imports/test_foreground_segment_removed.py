"""`referral-bot import FILE --segment S --create-segment` that imports nothing removes the
segment it made (bot.imports.importer._unmake) and its audit log says so, but the shell was
told only "Nothing was imported": it now says the segment was removed, in the words of
import --background's error (bot.segments.segment_withdrawn). With --json the
error is what it was, and "segment_removed" names the segment."""

from __future__ import annotations

import json
from pathlib import Path

from bot.segments import segment_withdrawn
from tests.shell import run

NOTHING_VALID = ("Nothing to import: no row has a valid new address (1 row: 1 rejected, "
                 "0 duplicates). --rejects FILE lists each with its reason. Nothing was "
                 "imported.")  # fmt: skip


def _segments(db_env: dict[str, str]) -> dict[str, int]:
    listed = json.loads(run(db_env, "segments", "--json").stdout)
    return {s["name"]: s["contacts"] for s in listed}


def test_the_shell_is_told_the_segment_made_for_nothing_was_removed(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnot-an-address\n")
    said = f"{NOTHING_VALID} {segment_withdrawn('Fresh')}"
    assert said.endswith("The segment 'Fresh', created for this import, was removed again.")

    plain = run(db_env, "import", str(bad), "--segment", "Fresh", "--create-segment")
    assert (plain.returncode, plain.stdout) == (1, ""), plain
    assert plain.stderr == f"referral-bot: {said}\n", plain.stderr

    as_json = run(db_env, "import", str(bad), "--segment", "Fresh", "--create-segment",
                  "--json")  # fmt: skip
    assert as_json.returncode == 1, as_json
    assert json.loads(as_json.stdout) == {"error": NOTHING_VALID, "segment_removed": "Fresh"}
    assert as_json.stderr == f"referral-bot: {said}\n", as_json.stderr
    assert "Fresh" not in _segments(db_env)  # it was removed, as said


def test_a_header_only_file_and_a_rejects_file_say_it_too(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """A file with no rows; rows all rejected, listed in --rejects: the segment's sentence
    comes after all the failure says."""
    removed = segment_withdrawn("Fresh")
    header_only = tmp_path / "empty.csv"
    header_only.write_text("email,first_name\n")
    result = run(db_env, "import", str(header_only), "--segment", "Fresh", "--create-segment")
    assert result.stderr == (f"referral-bot: Nothing to import: {header_only} has a header but "
                             f"no rows. Nothing was imported. {removed}\n"), result.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnot-an-address\n")
    rejects = tmp_path / "rejects.csv"
    listed = run(db_env, "import", str(bad), "--segment", "Fresh", "--create-segment",
                 "--rejects", str(rejects), "--json")  # fmt: skip
    error = ("Nothing to import: no row has a valid new address (1 row: 1 rejected, 0 "
             "duplicates). Each is in the rejects file with its reason. Nothing was imported.")
    assert json.loads(listed.stdout) == {"error": error, "segment_removed": "Fresh"}
    assert listed.stderr == f"referral-bot: {error} {removed}\n", listed.stderr
    assert rejects.exists()
    assert "Fresh" not in _segments(db_env)


def test_a_segment_that_was_there_before_is_not_said_removed(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """Nothing imported into a segment the import didn't make: it stays, and nothing more is
    said (nor is there a "segment_removed" key)."""
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n")
    assert run(db_env, "import", str(people), "--segment", "Old",
               "--create-segment").returncode == 0  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnot-an-address\n")
    for extra in ((), ("--create-segment",)):
        plain = run(db_env, "import", str(bad), "--segment", "Old", *extra)
        assert plain.stderr == f"referral-bot: {NOTHING_VALID}\n", (extra, plain.stderr)
        as_json = run(db_env, "import", str(bad), "--segment", "Old", *extra, "--json")
        assert json.loads(as_json.stdout) == {"error": NOTHING_VALID}, as_json.stdout
        assert "removed" not in as_json.stderr, as_json.stderr
    assert _segments(db_env)["Old"] == 1
