"""enrollment send error: why an enrollment's invites stopped going out

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

A send job that failed for good (the mail server refused the login, say) left its invites
queued with no job to send them and nothing said in the thread. The enrollment now keeps why
sending stopped, for its report, until a team lead clicks Retry sending or a later send run
gets through.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("enrollment", sa.Column("send_error", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_column("send_error")
