"""source facts: file format, failed on columns, warning

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Facts about a file source, recorded as they happen instead of read back from text later:
what the file turned out to be when it was read (CSV, a workbook, a ZIP, a CSV in a ZIP);
whether it failed because its columns don't say where the addresses are (which *Map columns*
can fix); and the warning about consent values nobody could read, apart from the notes (which
quote sheet and file names, so a word in them decided nothing). Sources from before are
classified once here the way they were read until now: failures by the wording of their
error, notes split where a line names an unreadable consent value; they keep no format and
are labelled by their names as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# bot.imports.rows.CONSENT_UNREAD as it reads at this revision
CONSENT_UNREAD = "consent value we don't recognise"


def upgrade() -> None:
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_on_columns", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("file_format", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
        )
        batch_op.add_column(
            sa.Column("warning", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
    op.execute(
        "UPDATE import_source SET failed_on_columns = true WHERE status = 'failed' "
        "AND (error LIKE 'No email column%' OR error LIKE 'The column %')"
    )
    if op.get_context().as_sql:
        return  # DDL written for a new database (`--sql`): it has no notes to split
    conn = op.get_bind()
    noted = conn.execute(
        sa.text("SELECT id, note FROM import_source WHERE note LIKE :p"),
        {"p": f"%{CONSENT_UNREAD}%"},
    ).all()
    for source_id, note in noted:
        lines = note.splitlines()
        warning = [line for line in lines if CONSENT_UNREAD in line]
        rest = [line for line in lines if CONSENT_UNREAD not in line]
        conn.execute(
            sa.text("UPDATE import_source SET note = :n, warning = :w WHERE id = :i"),
            {"n": "\n".join(rest) or None, "w": "\n".join(warning)[:500], "i": source_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.drop_column("warning")
        batch_op.drop_column("file_format")
        batch_op.drop_column("failed_on_columns")
