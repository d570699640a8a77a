"""tidy name spaces: contacts' names with their words one plain space apart

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07

Imports kept a name's inner spacing as the file had it ("Mary  Ann" typed with two spaces,
"van der Berg" with a no-break space pasted from a web page), while the contact search takes
a query's words one space apart: neither was found by its full first or last name, however
it was typed. Imports now tidy it (bot.imports.rows.tidy_name); this does it to the contacts
imported before, a page of ids at a time (Python's idea of a space: SQLite has no regexp).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 20_000


def _tidy(name: str | None) -> str | None:
    return None if name is None else " ".join(name.split())


def upgrade() -> None:
    if op.get_context().as_sql:  # offline (--sql): DDL only, there are no rows to tidy
        return
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, first_name, last_name FROM contact WHERE id > :after ORDER BY id "
            "LIMIT :page"), {"after": after, "page": PAGE}).all()  # fmt: skip
        if not rows:
            return
        after = rows[-1][0]
        changed = [{"id": i, "f": _tidy(first), "l": _tidy(last)} for i, first, last in rows
                   if (_tidy(first), _tidy(last)) != (first, last)]  # fmt: skip
        if changed:
            conn.execute(sa.text("UPDATE contact SET first_name = :f, last_name = :l "
                                 "WHERE id = :id"), changed)  # fmt: skip


def downgrade() -> None:
    pass  # the spacing isn't kept: tidied names stay tidy
