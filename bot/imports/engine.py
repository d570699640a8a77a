"""Applies an approved batch: staged rows -> contacts -> segment membership, in set-based SQL.

The batch is applied in chunks of staged-row ids. Each chunk commits together with the
batch's cursor and counters, so a crash at any point resumes where it stopped and a second
run of a finished batch changes nothing: exactly once in effect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports.staging import take_staging
from bot.imports.undo_window import close_undo_before
from models import BatchStatus, Database, ImportBatch
from models.clock import utcnow
from models.locks import lock_contacts

APPLY_CHUNK = 1_000_000
_EVER = datetime(1970, 1, 1, tzinfo=UTC)  # a cutoff no import finished before

# Rows skipped because their source says the person wants no marketing email (a Mailchimp
# audience's unsubscribed members: bot/mailchimp/importing.py), or that their address bounced
# (Mailchimp's cleaned members, rows.Classifier._skip_all), keep their address key: they
# create no contact, but their no is heeded as a valid row's is (UNSUBSCRIBING_REPEATS,
# _WITHDRAW_CONSENT). Every other skipped row has no key. `{t}` is the staged row's alias.
OPTED_OUT = "({t}.outcome = 'rejected' AND {t}.email_key <> '' AND {t}.subscribed = :no)"
_ROWS_WHERE = """
    s.team_id = :team AND s.batch_id = :batch AND s.id >= :lo AND s.id < :hi
      AND {outcome} AND s.removed = :no
      AND s.source_id IN (
          SELECT id FROM import_source
          WHERE team_id = :team AND batch_id = :batch AND removed = :no AND status = 'parsed')
"""
# Rows of the batch that become contacts: valid, not removed, from a source still in the batch.
_LIVE = _ROWS_WHERE.format(outcome="s.outcome = 'valid'")
_LIVE_ROWS = f"FROM staged_row s WHERE {_LIVE}"
# The same, and the rows that only say no: what is heard of consent.
_HEARD_ROWS = "FROM staged_row s WHERE " + _ROWS_WHERE.format(
    outcome=f"(s.outcome = 'valid' OR {OPTED_OUT.format(t='s')})")
# The same, with each row's source joined for its kind: a subquery per row cost SQLite about
# a second per million rows.
_LIVE_ROWS_AND_SOURCE = (
    f"FROM staged_row s JOIN import_source src ON src.id = s.source_id WHERE {_LIVE}"
)
_SUPPRESSION_FROM = ("FROM suppressed_address x "
                     "WHERE x.team_id = s.team_id AND x.email_key = s.email_key")  # fmt: skip
_SUPPRESSION = f"SELECT 1 {_SUPPRESSION_FROM}"

_CONTACTS_INSERT = f"""
    INSERT INTO contact (team_id, email, email_key, first_name, last_name, locale, subscribed,
                         source, batch_id, created_at, updated_at{{unsubscribed}})
    SELECT s.team_id, s.email, s.email_key, s.first_name, s.last_name, s.locale,
           {{subscribed}},
           src.kind, :batch, :now, :now{{suppressed_at}}
    {_LIVE_ROWS_AND_SOURCE} {{only_new}}
    ORDER BY s.email_key
    {{on_conflict}}
"""
# A workspace with suppressed addresses (contacts deleted after they unsubscribed: see
# models.SuppressedAddress) creates them again unsubscribed: a lookup per row by the table's
# key, made only by the chunks of a workspace that has any (_HAS_SUPPRESSED).
_PLAIN = {"unsubscribed": "", "subscribed": "COALESCE(s.subscribed, :yes)", "suppressed_at": ""}
_SUPPRESSED = {
    "unsubscribed": ", unsubscribed_at",
    "subscribed": f"CASE WHEN EXISTS ({_SUPPRESSION}) THEN :no ELSE COALESCE(s.subscribed, :yes) "
                  "END",
    "suppressed_at": f", (SELECT x.suppressed_at {_SUPPRESSION_FROM})",
}
_HAS_SUPPRESSED = text("SELECT 1 FROM suppressed_address WHERE team_id = :team LIMIT 1")
_ON_CONFLICT = "ON CONFLICT (team_id, email_key) DO NOTHING"


def _contacts_insert(suppressed: bool, **parts: str) -> str:
    return _CONTACTS_INSERT.format(**(_SUPPRESSED if suppressed else _PLAIN), **parts)


_INSERT_CONTACTS = {suppressed: text(_contacts_insert(
    suppressed, only_new="", on_conflict=_ON_CONFLICT,
)).bindparams(bindparam("now", type_=UTCDateTime())) for suppressed in (False, True)}

# The contacts this chunk creates are new to the segment too: their memberships need neither
# a lookup by email nor a conflict check. SQLite reads them back (above the maximum id read
# when the chunk started, with the batch's id) by id, NOT INDEXED: its planner would rather
# walk a name index for `team_id = ?`, which reads the rows in name order and inserts the
# memberships out of order, twice as slow. PostgreSQL takes them from the insert's RETURNING
# in the same statement, which saves reading a million rows back.
_SQLITE_INSERT_NEW_MEMBERS = text("""
    INSERT INTO segment_member (segment_id, contact_id, team_id, batch_id, added_at)
    SELECT :segment, id, team_id, :batch, :now FROM contact NOT INDEXED
    WHERE id > :below AND team_id = :team AND batch_id = :batch
    ORDER BY id
""").bindparams(bindparam("now", type_=UTCDateTime()))

_WITH_MEMBERS = """
    WITH new AS ({insert} RETURNING id, team_id)
    INSERT INTO segment_member (segment_id, contact_id, team_id, batch_id, added_at)
    SELECT :segment, id, team_id, :batch, :now FROM new
"""
# PostgreSQL: addresses not yet known are inserted without ON CONFLICT, whose speculative
# insertion doubles the cost of every row; a concurrent import that adds one of them first
# makes it fail, and the chunk then falls back to the conflict-safe insert in a savepoint.
_PG_INSERT_NEW = {suppressed: text(_WITH_MEMBERS.format(insert=_contacts_insert(
    suppressed, on_conflict="",
    only_new="AND NOT EXISTS (SELECT 1 FROM contact c "
             "WHERE c.team_id = :team AND c.email_key = s.email_key)",
))).bindparams(bindparam("now", type_=UTCDateTime())) for suppressed in (False, True)}
_PG_INSERT_NEW_SAFE = {suppressed: text(_WITH_MEMBERS.format(insert=_contacts_insert(
    suppressed, only_new="", on_conflict=_ON_CONFLICT,
))).bindparams(bindparam("now", type_=UTCDateTime())) for suppressed in (False, True)}
# A sort of a million staged rows by address spills to disk in runs of work_mem (4 MB by
# default); bigger runs take a second or two less. For this transaction only.
_PG_SORT_MEMORY = text("SET LOCAL work_mem = '64MB'")

# --update-existing: what the file says of a known contact replaces what was known; what it
# doesn't say keeps it. A row without a first name holds the address's local part (the
# name an invite greets a new contact by, rows.first_name_of): compared with that, it counts
# as no name, or a consent-only export (to re-subscribe people) renamed them all "jane.doe".
def _update_contacts(find: str) -> TextClause:
    """The statement for a dialect: `find` is its function for a character's position
    (SQLite's instr, PostgreSQL's strpos)."""
    local = f"substr(s.email, 1, {find}(s.email, '@') - 1)"
    fallback = (f"CASE WHEN {local} LIKE '%+%' AND {local} NOT LIKE '+%' "
                f"THEN substr({local}, 1, {find}({local}, '+') - 1) ELSE {local} END")
    return text(f"""
        UPDATE contact SET
            first_name = CASE WHEN s.first_name = '' OR s.first_name = {fallback}
                              THEN contact.first_name ELSE s.first_name END,
            last_name = CASE WHEN s.last_name = '' THEN contact.last_name ELSE s.last_name END,
            locale = COALESCE(s.locale, contact.locale), updated_at = :now
        FROM (SELECT s.email, s.email_key, s.first_name, s.last_name, s.locale
              {_LIVE_ROWS}) AS s
        WHERE contact.team_id = :team AND contact.email_key = s.email_key
    """).bindparams(bindparam("now", type_=UTCDateTime()))


_UPDATE_CONTACTS = {"sqlite": _update_contacts("instr"),
                    "postgresql": _update_contacts("strpos")}  # fmt: skip

# PostgreSQL: the known contacts an --update-existing chunk updates, locked first in one
# order (by id). The UPDATE locks them in the order its plan meets them, which follows each
# file's order: two imports of the same customers at once (lists in other orders, into other
# segments) each held rows the other wanted, and one failed with a deadlock, every time at
# 30,000 shared contacts.
_LOCK_KNOWN = text(f"""
    SELECT c.id FROM contact c
    WHERE c.team_id = :team AND c.email_key IN (SELECT s.email_key {_LIVE_ROWS})
    ORDER BY c.id FOR UPDATE OF c
""")

# How many rows of the chunk become contacts, and how many of them say something of consent:
# one read of the chunk for both.
_LIVE_SUMMARY = text("SELECT COUNT(CASE WHEN s.outcome = 'valid' THEN 1 END), "
                     f"COUNT(s.subscribed) {_HEARD_ROWS}")

# A file that says a known contact no longer wants marketing email is always heeded; one that
# says it does re-subscribes it only with --update-existing, and never after it unsubscribed
# through our link (`unsubscribed_at`). Each row finds its contact through the unique index.
# A skipped row that says no (OPTED_OUT) withdraws consent too.
_SET_CONSENT = """
    UPDATE contact SET subscribed = :to, updated_at = :now
    WHERE subscribed = :fro AND id IN (
        SELECT (SELECT c.id FROM contact c WHERE c.team_id = :team AND c.email_key = s.email_key)
        {rows} AND s.subscribed = :to)
"""
_WITHDRAW_CONSENT = text(_SET_CONSENT.format(rows=_HEARD_ROWS)
                         ).bindparams(bindparam("now", type_=UTCDateTime()))  # fmt: skip
_GIVE = _SET_CONSENT.format(rows=_LIVE_ROWS).replace(
    "WHERE subscribed = :fro AND", "WHERE subscribed = :fro AND unsubscribed_at IS NULL AND")
# The contacts it re-subscribes are recorded (models.ResubscribedContact), in the same
# transaction, so that undoing the import unsubscribes them again: from the update's RETURNING,
# which is empty (and nothing more runs) when no contact changes. An earlier import's record
# of the same contact goes: their yes was withdrawn since, and this import's is the latest.
# PostgreSQL does it all in one statement; SQLite (no data-modifying WITH) writes the ids it
# read back (_give_consent).
_GIVE_RECORDED = f"""
    WITH given AS ({_GIVE} RETURNING id, team_id),
    superseded AS (
        DELETE FROM resubscribed_contact r USING given g
        WHERE r.team_id = :team AND r.contact_id = g.id AND r.batch_id <> :batch)
    INSERT INTO resubscribed_contact (team_id, batch_id, contact_id)
    SELECT team_id, :batch, id FROM given
    ON CONFLICT DO NOTHING
"""
_GIVE_CONSENT = {dialect: text(sql).bindparams(bindparam("now", type_=UTCDateTime()))
                 for dialect, sql in (("sqlite", f"{_GIVE} RETURNING id"),
                                      ("postgresql", _GIVE_RECORDED))}  # fmt: skip
_SUPERSEDE_RESUBSCRIBED = text("DELETE FROM resubscribed_contact WHERE contact_id = :c "
                               "AND team_id = :team AND batch_id <> :batch")  # fmt: skip
_RECORD_RESUBSCRIBED = text("INSERT INTO resubscribed_contact (team_id, batch_id, contact_id) "
                            "VALUES (:team, :batch, :c) ON CONFLICT DO NOTHING")  # fmt: skip

# Memberships of the contacts that already existed: each staged row finds its contact through
# the unique (team_id, email_key) index, a plan that stays right however big the import is
# (PostgreSQL needs contact's statistics to know the table isn't empty for it: see
# refresh_contact_statistics). The chunk's new contacts (above `below`, made by this
# batch) got theirs already; a contact another transaction committed meanwhile may have an id
# above `below` too (PostgreSQL), so the id alone doesn't tell.
_INSERT_MEMBERS = text(f"""
    INSERT INTO segment_member (segment_id, contact_id, team_id, batch_id, added_at)
    SELECT :segment, m.id, :team, :batch, :now
    FROM (SELECT (SELECT c.id FROM contact c
                  WHERE c.team_id = :team AND c.email_key = s.email_key
                    AND (c.id <= :below OR COALESCE(c.batch_id, 0) <> :batch)) AS id
          {_LIVE_ROWS}) AS m
    WHERE m.id IS NOT NULL
    ORDER BY m.id
    ON CONFLICT (segment_id, contact_id) DO NOTHING
""").bindparams(bindparam("now", type_=UTCDateTime()))

# Contacts of the chunk that were in the segment already through another import's membership
# (the insert above conflicted): this import listed them too, and undoing that one hands them
# on to this one (bot/imports/undo.py). Run only when the insert above missed some of the
# known contacts, so an import of new contacts, or of known ones new to the segment, never
# pays for it; a membership of no import (`batch_id` NULL) is never undone and needs none,
# nor one of an import past its undo window (`:cutoff`, the purge's own test: see
# retention.py, which deletes such listings daily). Each staged row finds its contact through
# the unique index, then its membership by key (one lookup by address per row, as the insert
# above; the membership's own columns are written: PostgreSQL types a parameter in the select
# list apart from one in a comparison).
_PAST_UNDO = "b.status IN ('done', 'failed', 'cancelled') AND b.finished_at < :cutoff"
_INSERT_LISTINGS = text(f"""
    INSERT INTO segment_member_listing (segment_id, contact_id, batch_id, team_id)
    SELECT m.segment_id, m.contact_id, :batch, m.team_id
    FROM (SELECT (SELECT c.id FROM contact c
                  WHERE c.team_id = :team AND c.email_key = s.email_key) AS id
          {_LIVE_ROWS}) AS k
    JOIN segment_member m ON m.segment_id = :segment AND m.contact_id = k.id
    JOIN import_batch b ON b.id = m.batch_id
    WHERE m.team_id = :team AND m.batch_id <> :batch AND b.team_id = :team
      AND NOT ({_PAST_UNDO})
    ORDER BY m.contact_id
    ON CONFLICT DO NOTHING
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))
# Whether any other import into the segment could still be undone: when none can (a list
# imported again into the same segment every month), no listing can ever be handed on, and
# the chunk skips the lookup of every row above. Imports not applied yet hold no membership.
_UNDOABLE_HOLDER = text(f"""
    SELECT 1 FROM import_batch b
    WHERE b.team_id = :team AND b.segment_id = :segment AND b.id <> :batch
      AND b.status NOT IN ('draft', 'rejected', 'undone') AND NOT ({_PAST_UNDO})
    LIMIT 1
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))

# Table-wide on purpose: a watermark of ids (no row data), above which the chunk's new
# contacts are found again (with the batch's id and team).
_MAX_CONTACT_ID = text("SELECT COALESCE(MAX(id), 0) FROM contact")

# PostgreSQL plans the probes by address above (known contacts' memberships, consent) from
# contact's statistics. While they say the table is (nearly) empty, every index that starts
# with team_id looks as good as the unique one, and the planner probed through a name index:
# each staged row read all of the workspace's contacts (1,500 rows against 10,000 contacts:
# seconds; against a million: hours). Autovacuum refreshes them a while after a big change, if
# it runs at all (CI's server runs without it); so an apply first refreshes them itself when
# the table has grown by a tenth (autovacuum's own measure) since they were taken, and by at
# least this many pages (~1,000 contacts). The size is read from the file, so it is exact
# at once, unlike the statistics collector's change counts, which lag by up to 10 s.
STALE_CONTACT_PAGES = 16
_CONTACT_PAGES = text("""
    SELECT pg_relation_size(oid) / current_setting('block_size')::int, relpages
    FROM pg_class WHERE oid = 'contact'::regclass
""")
# The columns the probes filter on (and the table's size): half the time of the whole table's
# statistics (1M contacts: 0.2 s against 0.36-0.5 s); the names' are left to autovacuum.
_ANALYZE_CONTACT = text("ANALYZE contact (team_id, email_key)")


# A later row of an address that says it doesn't want marketing email (the Mailchimp export's
# unsubscribed file after a shop's customer list, or "yes" then "no" in one file) is a
# duplicate, never applied: its word goes to the row that is, or that person was imported
# subscribed and emailed. So does a skipped row's no (OPTED_OUT: an audience's unsubscribed
# member), wherever it stands. A removed row or file says nothing. Shared with the campaigns'
# preview, which must promise what the apply will do.
UNSUBSCRIBING_REPEATS = f"""
    SELECT d.email_key FROM staged_row d
    WHERE d.team_id = :t AND d.batch_id = :b AND d.removed = :no
      AND ((d.outcome = 'duplicate' AND d.subscribed = :no) OR {OPTED_OUT.format(t="d")})
      AND d.source_id IN (SELECT id FROM import_source WHERE team_id = :t AND batch_id = :b
                          AND removed = :no AND status = 'parsed')
"""
_ANY_UNSUBSCRIBING_REPEAT = text(UNSUBSCRIBING_REPEATS + " LIMIT 1")
_HEED_REPEATS = text(f"""
    UPDATE staged_row SET subscribed = :no
    WHERE team_id = :t AND batch_id = :b AND outcome = 'valid' AND removed = :no
      AND (subscribed IS NULL OR subscribed <> :no)
      AND email_key IN ({UNSUBSCRIBING_REPEATS})
""")


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int


class BatchStateError(Exception):
    """The batch is not in a state that allows this; the message says which state it is in."""


async def apply_batch(
    db: Database,
    team_id: str,
    batch_id: int,
    *,
    on_progress: Callable[[Progress], Awaitable[None]] | None = None,
    chunk_size: int = APPLY_CHUNK,
    undo_window_days: int | None = None,
) -> ImportBatch:
    """Import a queued (or interrupted) batch and return it with its final counts.

    `undo_window_days` (UNDO_WINDOW_DAYS): memberships of imports that finished longer ago
    can't be undone any more, so the contacts this import lists again aren't recorded for
    them; None records them all."""
    async with db.session() as session:
        batch = await session.get(ImportBatch, batch_id)
        if batch is None or batch.team_id != team_id:
            raise BatchStateError(f"No import #{batch_id} in this workspace.")
        if batch.status == BatchStatus.DONE:
            return batch
        if batch.status not in (BatchStatus.QUEUED, BatchStatus.IMPORTING):
            raise BatchStateError(f"Import #{batch_id} is {batch.status}; it can't be imported.")
    bounds = await _bounds(db, team_id, batch_id)
    if bounds == (0, -1) and batch.valid:
        # PostgreSQL empties staged rows (an UNLOGGED table) when it recovers from a crash
        raise BatchStateError(f"The rows of import #{batch_id} are gone (the database was "
                              "restarted after a crash): import the files again.")  # fmt: skip
    await refresh_contact_statistics(db)
    await _heed_unsubscribing_repeats(db, team_id, batch_id)
    cutoff = _EVER if undo_window_days is None else utcnow() - timedelta(days=undo_window_days)
    async with db.begin() as conn:
        if not await _start(conn, team_id, batch_id):
            raise BatchStateError(f"Import #{batch_id} was cancelled before it started.")
        if undo_window_days is not None:  # the listings below skip imports past it
            await close_undo_before(conn, team_id, cutoff)
    lo, hi = bounds
    # Chunks are ranges of staged-row ids, which other imports' rows (and this one's skipped
    # rows) share: progress is that fraction of the rows this import applies.
    span, rows = hi + 1 - lo, batch.valid or hi + 1 - lo
    seen = batch.apply_cursor  # the cursor as stored: a chunk is claimed from exactly there
    while (start := max(seen, lo)) <= hi:
        upper = start + chunk_size
        async with db.begin() as conn:
            claimed = await _apply_chunk(conn, batch, seen, start, upper, cutoff)
        if claimed:
            seen = upper
        else:  # another runner moved the cursor (its chunks may be another size), or it stopped
            cursor, status = await _cursor(db, team_id, batch_id)
            if status != BatchStatus.IMPORTING or cursor == seen:
                break
            seen = cursor
        if on_progress is not None:
            passed = min(max(seen, lo), hi + 1) - lo
            await on_progress(Progress(rows * passed // span, rows))
    async with db.begin() as conn:
        await conn.execute(
            text("""
                UPDATE import_batch SET status = :done, finished_at = :now, updated_at = :now,
                    existing_contacts = valid - new_contacts,
                    already_in_segment = valid - added_to_segment
                WHERE team_id = :team AND id = :batch AND status = :importing
            """).bindparams(bindparam("now", type_=UTCDateTime())),
            {"done": BatchStatus.DONE, "importing": BatchStatus.IMPORTING, "now": utcnow(),
             "team": team_id, "batch": batch_id},
        )  # fmt: skip
    async with db.session() as session:
        done = await session.get(ImportBatch, batch_id)
        assert done is not None
        return done


async def refresh_contact_statistics(db: Database) -> bool:
    """PostgreSQL: ANALYZE contact when its statistics lag (STALE_CONTACT_PAGES); True if it
    did. In a transaction of its own: two imports' ANALYZEs wait for each other, and neither
    may hold a chunk's locks meanwhile. A sample of the table: about 0.2 s at a million."""
    if db.is_sqlite:
        return False
    async with db.begin() as conn:
        pages, counted = (await conn.execute(_CONTACT_PAGES)).one()
    if pages < counted * 1.1 + STALE_CONTACT_PAGES:
        return False
    async with db.begin() as conn:
        await conn.execute(_ANALYZE_CONTACT)
    return True


async def _bounds(db: Database, team_id: str, batch_id: int) -> tuple[int, int]:
    """First and last staged-row id of the batch (one index probe per source)."""
    lows, highs = [], []
    async with db.begin() as conn:
        sources = (
            await conn.execute(
                text("SELECT id FROM import_source WHERE team_id = :t AND batch_id = :b"),
                {"t": team_id, "b": batch_id},
            )
        ).scalars()
        for source_id in list(sources):
            params = {"t": team_id, "b": batch_id, "s": source_id}
            lows.append((await conn.execute(_SOURCE_MIN, params)).scalar())
            highs.append((await conn.execute(_SOURCE_MAX, params)).scalar())
    lows = [v for v in lows if v is not None]
    highs = [v for v in highs if v is not None]
    return (min(lows), max(highs)) if lows else (0, -1)


_SOURCE_MIN = text("SELECT MIN(id) FROM staged_row WHERE batch_id = :b AND source_id = :s "
                   "AND team_id = :t")  # fmt: skip
_SOURCE_MAX = text("SELECT MAX(id) FROM staged_row WHERE batch_id = :b AND source_id = :s "
                   "AND team_id = :t")  # fmt: skip


async def _heed_unsubscribing_repeats(db: Database, team_id: str, batch_id: int) -> None:
    """UNSUBSCRIBING_REPEATS: looked for first (one read of the batch's rows), written only
    when there are some, after taking the staging file's write lock (see take_staging)."""
    params = {"t": team_id, "b": batch_id, "no": False}
    async with db.begin() as conn:
        if (await conn.execute(_ANY_UNSUBSCRIBING_REPEAT, params)).first() is None:
            return
    async with db.begin() as conn:
        await take_staging(conn)
        await conn.execute(_HEED_REPEATS, params)


async def _start(conn: AsyncConnection, team_id: str, batch_id: int) -> bool:
    """queued -> importing (or still importing, resumed); False once it was cancelled."""
    result = await conn.execute(
        text("UPDATE import_batch SET status = 'importing' WHERE team_id = :t AND id = :b "
             "AND status IN ('queued', 'importing')"),
        {"t": team_id, "b": batch_id},
    )
    return result.rowcount == 1


async def _insert_new(conn: AsyncConnection, params: dict[str, object]) -> tuple[int, int]:
    """Insert the chunk's addresses that aren't contacts yet, with their memberships; returns
    (contacts, memberships) added."""
    suppressed = (await conn.execute(_HAS_SUPPRESSED, params)).first() is not None
    if conn.dialect.name == "sqlite":  # one writer: no race, and ON CONFLICT costs nothing
        new = (await conn.execute(_INSERT_CONTACTS[suppressed], params)).rowcount
        return new, (await conn.execute(_SQLITE_INSERT_NEW_MEMBERS, params)).rowcount
    await conn.execute(_PG_SORT_MEMORY)
    try:
        async with conn.begin_nested():
            new = (await conn.execute(_PG_INSERT_NEW[suppressed], params)).rowcount
    except IntegrityError:  # another import added some of them since this chunk began
        new = (await conn.execute(_PG_INSERT_NEW_SAFE[suppressed], params)).rowcount
    return new, new  # one membership per new contact, in the same statement


async def _give_consent(conn: AsyncConnection, params: dict[str, object]) -> None:
    """Re-subscribe the chunk's known contacts whose row says yes (--update-existing), and
    record which (_GIVE_CONSENT) for the import's undo."""
    given = await conn.execute(_GIVE_CONSENT[conn.dialect.name], params)
    if conn.dialect.name != "sqlite":
        return
    ids = [{"team": params["team"], "batch": params["batch"], "c": int(row[0])} for row in given]
    if ids:  # one writer: nothing changes these contacts before the chunk commits
        await conn.execute(_SUPERSEDE_RESUBSCRIBED, ids)
        await conn.execute(_RECORD_RESUBSCRIBED, ids)


async def _cursor(db: Database, team_id: str, batch_id: int) -> tuple[int, str]:
    async with db.begin() as conn:
        row = (await conn.execute(
            text("SELECT apply_cursor, status FROM import_batch WHERE team_id = :t AND id = :b"),
            {"t": team_id, "b": batch_id})).one()  # fmt: skip
    return int(row[0]), str(row[1])


async def _apply_chunk(conn: AsyncConnection, batch: ImportBatch, seen: int, lo: int,
                       hi: int, cutoff: datetime) -> bool:  # fmt: skip
    """One chunk in one transaction: contacts, membership, counters and cursor together.
    False if it wasn't this runner's to apply (the cursor isn't `seen` any more, or the
    import stopped)."""
    # No contact this chunk finds may be deleted before it commits (models/locks.py).
    await lock_contacts(conn, batch.team_id, exclusive=False)
    # Claim the chunk first, from exactly where the cursor was seen: if another process moved
    # it (by chunks of another size, perhaps), nothing is claimed and this one catches up from
    # there instead of leaving a gap; if the import was cancelled, nothing is claimed any more.
    claimed = await conn.execute(
        text("UPDATE import_batch SET apply_cursor = :hi WHERE team_id = :t AND id = :b "
             "AND apply_cursor = :seen AND status = 'importing'"),
        {"hi": hi, "seen": seen, "t": batch.team_id, "b": batch.id},
    )  # fmt: skip
    if claimed.rowcount == 0:
        return False
    now = utcnow()
    params = {"team": batch.team_id, "batch": batch.id, "lo": lo, "hi": hi, "no": False,
              "yes": True, "now": now, "segment": batch.segment_id, "cutoff": cutoff,
              "below": (await conn.execute(_MAX_CONTACT_ID)).scalar_one()}  # fmt: skip
    live, with_consent = (await conn.execute(_LIVE_SUMMARY, params)).one()
    new, added = await _insert_new(conn, params)
    if batch.update_existing:
        if conn.dialect.name == "postgresql" and new < live:
            await conn.execute(_LOCK_KNOWN, params)
        await conn.execute(_UPDATE_CONTACTS[conn.dialect.name], params)
    if with_consent:
        await conn.execute(_WITHDRAW_CONSENT, {**params, "to": False, "fro": True})
        if batch.update_existing:
            await _give_consent(conn, {**params, "to": True, "fro": False})
    if new < live:
        # some contacts already existed: find them by email (the new ones just conflict)
        joined = (await conn.execute(_INSERT_MEMBERS, params)).rowcount
        added += joined
        if joined < live - new and (await conn.execute(_UNDOABLE_HOLDER, params)).first():
            await conn.execute(_INSERT_LISTINGS, params)  # some were in the segment already
    await conn.execute(
        text("UPDATE import_batch SET new_contacts = new_contacts + :n, "
             "added_to_segment = added_to_segment + :a, updated_at = :now "
             "WHERE team_id = :t AND id = :b").bindparams(bindparam("now", type_=UTCDateTime())),
        {"n": new, "a": added, "now": now, "t": batch.team_id, "b": batch.id},
    )  # fmt: skip
    return True
