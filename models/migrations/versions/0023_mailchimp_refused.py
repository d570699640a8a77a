"""mailchimp refused: when Mailchimp last refused the saved credentials

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05

A revoked token or a deleted key stays saved; /referral mailchimp asks Mailchimp, but App Home
said "Connected" all the same. A check or a use that Mailchimp refuses records when; one it
accepts clears it; a new connection starts without.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailchimp_account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refused_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("mailchimp_account", schema=None) as batch_op:
        batch_op.drop_column("refused_at")
