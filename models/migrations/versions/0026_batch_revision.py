"""batch revision: what a review showed, so that Approve imports only that

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06

Approve imported whatever the draft held when the click landed: contacts added (Add more, a
file finishing being read, Map columns) after the lead looked were imported without their
seeing them. Every change to a draft counts up `revision` (bot.imports.batches.lock_batch);
the review's Approve button carries the revision it was drawn with, and an approval of
another is refused. Existing drafts start at 0.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, as 0025 adds its column (batch mode would copy the table).
def upgrade() -> None:
    op.add_column("import_batch", sa.Column("revision", sa.Integer(), nullable=False,
                                            server_default="0"))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.drop_column("revision")
