"""segment member listing: which later imports listed a contact already in their segment

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

Import A adds x to a segment; a later import B into the same segment lists x too, and its
insert of the membership conflicts with A's, so B left no trace of x. Undoing A then took x
out of the segment (and deleted x if A had created it), though B still stands. B's listing
is now kept (only where the membership was another import's: a fresh import writes none),
and undoing A hands the membership, and x if A created it, on to B. The import also counts
how many memberships its undo handed on. Imports applied before this revision left no such
rows: undoing an earlier import still takes out what they listed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_member_listing",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "contact_id", "batch_id"),
        sqlite_with_rowid=False,
    )
    op.add_column("import_batch", sa.Column("undo_handed_on", sa.Integer(), nullable=False,
                                            server_default="0"))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.drop_column("undo_handed_on")
    op.drop_table("segment_member_listing")
