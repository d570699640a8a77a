"""blank letters in name keys: names compared without the letters that draw nothing

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07

Name keys now also leave out the letters that draw nothing: the Hangul fillers (U+115F,
U+1160, U+3164, U+FFA0), Khmer's inherent vowels (U+17B4, U+17B5) and the blank Braille cell
(U+2800). "All Customers" + U+3164 was a second All Customers, "VIP" + U+3164 a second "VIP",
the same in every menu. The stored names keep them. As 0022, a row made before keeps its key
when the new one would equal another row's, so both stay reachable.
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"))
_SEEN_FORMAT = frozenset("\u200c\u200d\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f"
                         "\u0890\u0891\u08e2\U000110bd\U000110cd") | frozenset(
    map(chr, range(0xE0020, 0xE0080)))  # fmt: skip
_BLANK_AS_SPACE = dict.fromkeys(map(ord, "\u115f\u1160\u3164\uffa0\u17b4\u17b5\u2800"), " ")
_DELETED_KEY = re.compile(r"deleted:\d+")  # a deleted segment's key: never a live one's


def _unseen(char: str) -> bool:
    return (char == "\u034f" or "\ufe00" <= char <= "\ufe0f"
            or (unicodedata.category(char) == "Cf" and char not in _SEEN_FORMAT))  # fmt: skip


def _key(name: str) -> str:
    """bot.workspaces.segment_key as of this revision (a migration keeps its own copy)."""
    composed = unicodedata.normalize("NFC", name).translate(_INVISIBLE).translate(_BLANK_AS_SPACE)
    kept = "".join(c for c in composed if not _unseen(c))
    return " ".join(kept.split()).casefold()


def _rekey(table: str, live: str) -> None:
    conn = op.get_bind()
    rows = list(conn.execute(sa.text(f"SELECT id, team_id, name, name_key FROM {table} "
                                     f"WHERE {live}")))  # fmt: skip
    # every row's key, deleted ones' too: the unique index holds them all
    taken = {(team, key) for team, key in conn.execute(sa.text(
        f"SELECT team_id, name_key FROM {table}"))}  # fmt: skip
    for row_id, team, name, key in rows:
        if (name.isascii() or (new := _key(name)) == key or (team, new) in taken
                or _DELETED_KEY.fullmatch(new)):  # fmt: skip
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
