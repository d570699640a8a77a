"""resubscribed contact: the contacts an --update-existing import re-subscribed

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05

A contact that had said no (an earlier file) was re-subscribed by an --update-existing import
whose file said yes; undoing that import left it subscribed, and the next campaign emailed
someone who had opted out. The import now records whom it re-subscribed, and its undo
unsubscribes them again unless their consent changed since. Imports applied before this
revision left no such rows: undoing one still leaves its re-subscriptions.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resubscribed_contact",
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "batch_id", "contact_id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_resubscribed_contact_contact", "resubscribed_contact", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_resubscribed_contact_contact", table_name="resubscribed_contact")
    op.drop_table("resubscribed_contact")
