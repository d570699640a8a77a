"""The note `referral-bot import` prints on unknown locales: which values, in how many rows.

The summary counts rows "imported with a warning (...: see below)"; the consent values a
file's warning names are printed below it, and these are the rest of what it counts (the
rows themselves are valid, so the rejects file doesn't list them).
"""

from __future__ import annotations

import ast

from sqlalchemy import func
from sqlmodel import col, select

from models import Database, ImportSource, Outcome, StagedRow

# A valid row's reason when its locale wasn't recognised (bot/imports/rows.py), maybe followed
# by "; " and a consent value's
_PREFIX = "Unknown locale "
_SUFFIX = ": the workspace default is used"
SHOWN = 5  # values named per file; the others are counted


async def unknown_locale_notes(db: Database, team_id: str, batch_id: int
                               ) -> list[tuple[str, str]]:  # fmt: skip
    """(file, sentence) for each file of the import with rows whose locale is unknown."""
    async with db.session() as session:
        labels = dict((await session.exec(select(ImportSource.id, ImportSource.label).where(
            ImportSource.team_id == team_id, ImportSource.batch_id == batch_id,
        ).order_by(col(ImportSource.id)))).all())  # fmt: skip
        groups = (await session.exec(
            select(StagedRow.source_id, StagedRow.reason, func.count())
            .where(StagedRow.team_id == team_id, StagedRow.batch_id == batch_id,
                   StagedRow.outcome == Outcome.VALID, col(StagedRow.removed).is_(False),
                   col(StagedRow.reason).startswith(_PREFIX))
            .group_by(col(StagedRow.source_id), col(StagedRow.reason))
        )).all()  # fmt: skip
    by_source: dict[int, dict[str, int]] = {}
    for source_id, reason, count in groups:
        values = by_source.setdefault(source_id, {})
        value = _value(reason or "")
        values[value] = values.get(value, 0) + count
    return [(label, _sentence(by_source[source_id])) for source_id, label in labels.items()
            if source_id in by_source]  # fmt: skip


def _value(reason: str) -> str:
    """The locale as the file had it (its first 35 characters), from the row's reason."""
    quoted = reason[len(_PREFIX):].split(_SUFFIX, 1)[0]
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        return quoted
    return value if isinstance(value, str) else quoted


def _sentence(values: dict[str, int]) -> str:
    ranked = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"“{value}” ({count:,})" for value, count in ranked[:SHOWN])
    if len(ranked) > SHOWN:
        shown += f" and {len(ranked) - SHOWN:,} more"
    total = sum(values.values())
    rows, they = ("1 row has", "It is") if total == 1 else (f"{total:,} rows have", "They are")
    return (f"{rows} a locale we don't recognise: {shown}. {they} imported with the "
            "workspace's default language; use a code like en, fr or pt-BR, or a language "
            "name.")
