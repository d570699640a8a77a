"""advocate batch: the import whose membership of its segment enrolled an advocate

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04

An advocate was tied to the import that enrolled it only through its enrollment (an import's
enrollment has that import's batch_id). Undoing an import hands a membership another import
listed on to that import, but the advocate stayed its enrollment's: undoing the later import
with *Also remove advocates* then took the contact out of the segment and left its advocate.
The advocate now names its import itself, and an undo hands it on with the membership. Rows
made before this revision take their enrollment's import (one handed on already stays with
the import that enrolled it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("advocate", sa.Column("batch_id", sa.Integer(), nullable=True))
    op.execute("UPDATE advocate SET batch_id = (SELECT e.batch_id FROM enrollment e "
               "WHERE e.id = advocate.enrollment_id) "
               "WHERE enrollment_id IN (SELECT id FROM enrollment WHERE batch_id IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table("advocate", schema=None) as batch_op:
        batch_op.drop_column("batch_id")
