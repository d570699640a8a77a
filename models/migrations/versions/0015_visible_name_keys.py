"""visible name keys: segment and campaign names compared as people see them

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

Names are now compared composed (NFC: a macOS paste writes "é" as "e" + U+0301) and without
invisible format characters (a pasted zero-width space), so "Café" and "Cafe" + U+0301 are one
name. A row made before keeps the key it was given until this recomputes it; a key that would
then equal another row's (two such lookalikes already exist) stays as it was, so both rows
stay reachable by their old spelling. Only names that aren't ASCII can change.
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# zero-width space, word joiner, BOM, soft hyphen (not the joiners of emoji and Persian)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"))


def _key(name: str) -> str:
    """bot.workspaces.segment_key as of this revision (a migration keeps its own copy)."""
    composed = unicodedata.normalize("NFC", name).translate(_INVISIBLE)
    return " ".join(composed.split()).casefold()


def _rekey(table: str, live: str) -> None:
    conn = op.get_bind()
    rows = list(conn.execute(sa.text(f"SELECT id, team_id, name, name_key FROM {table} "
                                     f"WHERE {live}")))  # fmt: skip
    taken = {(team, key) for _, team, _, key in rows}
    for row_id, team, name, key in rows:
        if name.isascii() or (new := _key(name)) == key or (team, new) in taken:
            continue
        conn.execute(sa.text(f"UPDATE {table} SET name_key = :k WHERE id = :i"),
                     {"k": new, "i": row_id})  # fmt: skip
        taken.discard((team, key))
        taken.add((team, new))


def upgrade() -> None:
    if op.get_context().as_sql:  # offline (--sql): DDL only, there are no rows to rekey
        return
    _rekey("segment", "kind <> 'deleted'")  # a deleted segment's key is deleted:<id>
    _rekey("campaign", "1 = 1")


def downgrade() -> None:
    pass  # the old keys compared spellings people can't tell apart; nothing to restore
