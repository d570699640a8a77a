"""What an import would do, counted without doing it: *Preview only* and `import --dry-run`.

Counted from the batch's staged rows against the contacts and memberships the database holds
now; nothing is written. An import applied later may differ by whatever changes in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlmodel import col, select

from bot.campaigns.preview import CampaignPreview, preview_batch
from bot.imports.batches import Totals, add_up, count_rows
from models import Database, ImportSource, SourceStatus

_LIVE = """
    FROM staged_row s
    WHERE s.team_id = :t AND s.batch_id = :b AND s.outcome = 'valid' AND s.removed = :no
      AND s.source_id IN (SELECT id FROM import_source WHERE team_id = :t AND batch_id = :b
                          AND removed = :no AND status = 'parsed')
"""
# valid rows are unique by address within a batch, so these count contacts
_EXISTING = text(f"""
    SELECT COUNT(*) {_LIVE} AND EXISTS (
        SELECT 1 FROM contact c WHERE c.team_id = :t AND c.email_key = s.email_key)
""")
_IN_SEGMENT = text(f"""
    SELECT COUNT(*) {_LIVE} AND EXISTS (
        SELECT 1 FROM contact c JOIN segment_member m
             ON m.contact_id = c.id AND m.segment_id = :s AND m.team_id = :t
        WHERE c.team_id = :t AND c.email_key = s.email_key)
""")


@dataclass(frozen=True, slots=True)
class DryRun:
    totals: Totals  # rows, valid, duplicates, rejected, warnings of the sources read
    new_contacts: int
    existing_contacts: int
    added_to_segment: int
    already_in_segment: int
    pending_sources: int = 0  # files still being read: not counted yet
    campaigns: list[CampaignPreview] = field(default_factory=list)
    # (file, note) as an import prints them (the shell's dry run: its files' notes)
    notes: list[tuple[str, str]] = field(default_factory=list)
    # Mailchimp members skipped, by status (batches.skipped_by_status_of_all), as imports say
    skipped_by_status: dict[str, int] = field(default_factory=dict)


async def drop_batch(db: Database, team_id: str, batch_id: int) -> None:
    """Forget a batch staged only to be counted (its rows, sources and itself)."""
    async with db.begin() as conn:
        for table, column in (("staged_row", "batch_id"), ("import_source", "batch_id"),
                              ("import_batch", "id")):  # fmt: skip
            await conn.execute(text(f"DELETE FROM {table} WHERE team_id = :t AND {column} = :b"),
                               {"t": team_id, "b": batch_id})  # fmt: skip


async def dry_run(db: Database, team_id: str, batch_id: int, segment_id: int | None) -> DryRun:
    """The counts of importing the batch into the segment now (None: a segment that doesn't
    exist yet, so nobody is in it and only campaigns targeting All Customers reach them)."""
    params = {"t": team_id, "b": batch_id, "no": False, "s": segment_id or 0}
    async with db.begin() as conn:
        statuses = (await conn.execute(
            select(ImportSource.id, ImportSource.status).where(
                col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
                col(ImportSource.removed).is_(False))
        )).all()  # fmt: skip
        counts = await count_rows(conn, team_id, batch_id)
        existing = (await conn.execute(_EXISTING, params)).scalar_one()
        in_segment = (await conn.execute(_IN_SEGMENT, params)).scalar_one() if segment_id else 0
    parsed = [counts.get(i, Totals()) for i, status in statuses if status == SourceStatus.PARSED]
    totals = add_up(parsed)
    pending = sum(1 for _, status in statuses if status == SourceStatus.PENDING)
    # a new segment too: a campaign targeting All Customers enrolls whom the import adds
    campaigns = await preview_batch(db, team_id, batch_id, segment_id)
    return DryRun(totals, totals.valid - existing, existing, totals.valid - in_segment,
                  in_segment, pending, campaigns)  # fmt: skip
