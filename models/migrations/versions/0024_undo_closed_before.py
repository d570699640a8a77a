"""undo closed before: imports past the undo window stay past it when the window grows

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05

An apply skips listing contacts for imports past UNDO_WINDOW_DAYS, and the daily purge clears
their listings and re-subscriptions: raising the window afterwards gave those imports their
Undo back without what undoing them needs, and their undo took contacts out of a segment a
later import had put them in. Both now record, per workspace, the finish time before which
nothing can be undone any more. Purges and applies before this revision recorded nothing:
their imports keep the window of the moment, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases: batch mode would copy `workspace` on SQLite, and
# dropping the old copy fails while other tables' rows refer to it.
def upgrade() -> None:
    op.add_column("workspace", sa.Column("undo_closed_before",
                                         sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("workspace", "undo_closed_before")
