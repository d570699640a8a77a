"""`referral-bot export` then `referral-bot import` of that file gives back the same contacts.

Export prefixes cells a spreadsheet would run as a formula with `'` (CSV injection); the
importer takes that `'` off again, so names like `=SUM(A1)` and addresses like
`-dash@example.com` survive the trip (issue 7). The commands run through the real entry point
in this process (tests/shell.py).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

from sqlalchemy import text

from models import Database
from tests import shell

# (first_name, last_name, email, locale) as the user typed them, every one a valid contact.
PEOPLE = [
    ("=SUM(A1)", "Formula", "sum@example.com", "en"),
    ("+Plus", "-Dash", "plus@example.com", "fr"),
    ("-Dash", "@At", "-dash@example.com", "de"),
    ("@At", "=1+2", "at@example.com", "en"),
    ("Eq", "Uals", "=eq@example.com", "es"),
    ("Plus", "Local", "+plus@example.com", "en"),
    ("'Tis", "O'Neil", "tis@example.com", "en"),  # a quote before a letter is the name's own
    ("Zoë", "Brontë", "zoe@example.com", "fr"),
]

MEMBERS = text(
    "SELECT s.name, c.email, c.first_name, c.last_name, c.locale "
    "FROM segment_member m JOIN contact c ON c.id = m.contact_id "
    "JOIN segment s ON s.id = m.segment_id ORDER BY s.name, c.email"
)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = shell.run(env, *args)
    assert result.returncode == 0, result.stderr
    return result


async def test_export_then_import_gives_back_the_same_contacts(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    original = tmp_path / "original.csv"
    with original.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["first_name", "last_name", "email", "locale"])
        writer.writerows(PEOPLE)

    first = json.loads(
        run(db_env, "import", str(original), "--segment", "First", "--create-segment",
            "--json").stdout
    )  # fmt: skip
    assert (first["valid"], first["rejected"], first["new_contacts"]) == (len(PEOPLE), 0, 8)

    exported = run(db_env, "export", "--segment", "First").stdout
    assert "'=SUM(A1)" in exported and "'-dash@example.com" in exported  # really neutralised
    exported_file = tmp_path / "exported.csv"
    exported_file.write_text(exported, encoding="utf-8")

    # --update-existing: names read back from the export overwrite the stored ones, so a `'`
    # left on them would show in the database.
    second = json.loads(
        run(db_env, "import", str(exported_file), "--segment", "Second", "--create-segment",
            "--update-existing", "--json").stdout
    )  # fmt: skip
    assert (second["rows"], second["valid"], second["rejected"]) == (len(PEOPLE), len(PEOPLE), 0)
    assert (second["new_contacts"], second["existing_contacts"]) == (0, len(PEOPLE))

    async with db.begin() as conn:
        members = [tuple(row) for row in await conn.execute(MEMBERS)]
    expected = sorted((email, f, la, loc) for f, la, email, loc in PEOPLE)
    assert [m[1:] for m in members if m[0] == "First"] == expected
    assert [m[1:] for m in members if m[0] == "Second"] == expected

    assert run(db_env, "export", "--segment", "Second").stdout == exported
    assert json.loads(run(db_env, "segments", "--json").stdout) == [
        {"name": "All Customers", "kind": "all", "contacts": len(PEOPLE)},
        {"name": "First", "kind": "static", "contacts": len(PEOPLE)},
        {"name": "Second", "kind": "static", "contacts": len(PEOPLE)},
    ]
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {r["email"] for r in rows} == {
        "'" + e if e[0] in "=+-@" else e for _f, _l, e, _loc in PEOPLE
    }
