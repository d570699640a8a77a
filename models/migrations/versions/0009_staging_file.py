"""staging file

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

Staged rows keep one index, (batch_id, source_id), written in order as rows are staged; the
address index cost a big import a third of its time. On SQLite they move to a staging file of
their own (models/staging.py, attached to every connection as `staging`): the rows waiting for
review are carried over and the main file's table is dropped. Also on SQLite, segment_member
becomes a WITHOUT ROWID table: its key is the row, so it is stored once instead of as a table
plus a unique index. On PostgreSQL the table is
UNLOGGED, its counterpart: no WAL for rows that can be read again from their sources (a crash
of the server empties it; the engine then says so instead of importing nothing).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("id, team_id, batch_id, source_id, line, email, email_key, first_name, last_name, "
            "locale, outcome, reason, removed, subscribed")  # fmt: skip


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute(f"INSERT INTO staging.staged_row ({_COLUMNS}) "
                   f"SELECT {_COLUMNS} FROM main.staged_row")  # fmt: skip
        op.execute("DROP TABLE main.staged_row")
        _rebuild_segment_member(without_rowid=True)
        return
    op.drop_index("ix_staged_row_batch_key", table_name="staged_row")
    op.drop_index("ix_staged_row_source", table_name="staged_row")
    op.create_index("ix_staged_row_batch", "staged_row", ["batch_id", "source_id"])
    op.execute("ALTER TABLE staged_row SET UNLOGGED")


def _rebuild_segment_member(*, without_rowid: bool) -> None:
    op.execute(f"""
        CREATE TABLE segment_member_new (
            segment_id INTEGER NOT NULL,
            contact_id INTEGER NOT NULL,
            team_id VARCHAR(32) NOT NULL,
            batch_id INTEGER,
            added_at DATETIME NOT NULL,
            PRIMARY KEY (segment_id, contact_id)
        ){" WITHOUT ROWID" if without_rowid else ""}""")
    op.execute("INSERT INTO segment_member_new (segment_id, contact_id, team_id, batch_id, "
               "added_at) SELECT segment_id, contact_id, team_id, batch_id, added_at "
               "FROM segment_member")  # fmt: skip
    op.execute("DROP TABLE segment_member")
    op.execute("ALTER TABLE segment_member_new RENAME TO segment_member")
    op.create_index("ix_segment_member_contact", "segment_member", ["contact_id"])


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _rebuild_segment_member(without_rowid=False)
        op.execute("CREATE TABLE main.staged_row AS SELECT * FROM staging.staged_row WHERE 0")
        op.execute(f"INSERT INTO main.staged_row ({_COLUMNS}) "
                   f"SELECT {_COLUMNS} FROM staging.staged_row")  # fmt: skip
        op.execute("DELETE FROM staging.staged_row")
        op.create_index("ix_staged_row_source", "staged_row", ["source_id"])
    else:
        op.execute("ALTER TABLE staged_row SET LOGGED")
        op.drop_index("ix_staged_row_batch", table_name="staged_row")
        op.create_index("ix_staged_row_source", "staged_row", ["source_id"])
    op.create_index("ix_staged_row_batch_key", "staged_row", ["team_id", "batch_id", "email_key"])
