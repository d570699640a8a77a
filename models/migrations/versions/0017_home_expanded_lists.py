"""home viewer's expanded lists: what *Show more* opened on someone's App Home

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04

Home is republished for its viewers after every change (an import finishing, a segment
created, an undo), and each republish showed the first page of every list: someone who had
pressed *Show more* saw it fold back. The viewer's row now keeps how many segments and
imports they chose to see (NULL: the first page).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("home_viewer", sa.Column("segments_shown", sa.Integer(), nullable=True))
    op.add_column("home_viewer", sa.Column("imports_shown", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("home_viewer", schema=None) as batch_op:
        batch_op.drop_column("imports_shown")
        batch_op.drop_column("segments_shown")
