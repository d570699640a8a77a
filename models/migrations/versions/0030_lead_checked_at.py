"""lead checked at: when Slack last said a team lead may be one

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07

A lead listed by hand is a lead at each click without asking Slack; Slack's `user_change`
takes one deactivated, made a guest or moved out off the list. An event Slack sent while
serve was down never comes again, and that lead kept approving and exporting for good. A
lead's first click a day after Slack last said they may be one asks Slack again (the
handlers' `role_in`); `team_lead.checked_at` is when it last did. Leads listed before this
have none: their `added_at` stands for it, so each is asked about once at their next click.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, as 0029 adds its column (batch mode would copy the table).
def upgrade() -> None:
    op.add_column("team_lead", sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(),
                                         nullable=True))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("team_lead", schema=None) as batch_op:
        batch_op.drop_column("checked_at")
