"""invite sender job: which send job holds an invite it is handing to the mail server

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

A send run starts by calling every invite left `sending` uncertain: the run that was sending
it died. Two runs of one enrollment can overlap (a resend asked for while a long send is under
way), and the second then called the first's invite in flight uncertain and the first's
outcome was lost. The invite now names the job sending it, and only an invite whose job is no
longer running under a live lease is called uncertain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invite", sa.Column("sender_job", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_column("sender_job")
