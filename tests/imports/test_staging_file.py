"""Staged rows on SQLite: a file of their own, and staging never blocks the main database."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.imports.batches import add_source, create_batch, stage_csv
from bot.workspaces import ensure_workspace, import_target
from models import Database, SourceKind, StagedRow
from models.staging import staging_path

TEAM = "T0STAGING"


def _main_file(db: Database) -> Path:
    return Path(make_url(db.url).database or "")


class PausingStream(io.BytesIO):
    """A CSV that stops half way through being read for staging until `go` is set.

    CsvReader reads the file once to decide its encoding and seeks back; the pause comes on
    the second pass, while the rows are being inserted."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.half = len(data) // 2
        self.rewound = 0
        self.paused = threading.Event()
        self.go = threading.Event()

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:
            self.rewound += 1
        return super().seek(offset, whence)

    def _pause(self) -> None:
        if self.rewound and self.tell() >= self.half and not self.go.is_set():
            self.paused.set()
            self.go.wait(30)

    def read(self, size: int | None = -1) -> bytes:
        self._pause()
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        self._pause()
        return super().read1(size)


def _csv(rows: int) -> bytes:
    lines = ["email,first_name"] + [f"person{i}@example.com,P{i}" for i in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def sqlite_only(db: Database) -> Database:
    if not db.is_sqlite:
        pytest.skip("the staging file is SQLite's")
    return db


async def test_staging_table_has_the_models_columns(sqlite_only: Database) -> None:
    async with sqlite_only.begin() as conn:
        await conn.execute(text("SELECT 1"))  # connects, so the file is attached and shaped
    path = staging_path(str(_main_file(sqlite_only)))
    with closing(sqlite3.connect(path)) as conn:
        info = conn.execute("PRAGMA table_info(staged_row)").fetchall()
        main_tables = {r[0] for r in sqlite3.connect(_main_file(sqlite_only)).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
    model = StagedRow.__table__.columns  # type: ignore[attr-defined]
    assert [(r[1], bool(r[3])) for r in info] == [(c.name, not c.nullable) for c in model]
    assert "staged_row" not in main_tables


async def test_staging_a_file_leaves_the_main_database_writable(sqlite_only: Database) -> None:
    """Before: staging took the batch's row first, so the main file's write lock was held
    until the whole file was in; another process's write waited (and failed after 30 s)."""
    db = sqlite_only
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "Staged", create=True)
    assert segment.id is not None
    batch = await create_batch(db, TEAM, segment.id, "U1")
    assert batch.id is not None
    source = await add_source(db, TEAM, batch.id, SourceKind.CSV, "big.csv")
    assert source.id is not None
    stream = PausingStream(_csv(20_000))
    staging = asyncio.create_task(stage_csv(db, TEAM, source.id, stream))
    try:
        assert await asyncio.to_thread(stream.paused.wait, 30), "staging never started"

        def write_elsewhere() -> None:
            with closing(sqlite3.connect(_main_file(db), timeout=0.5)) as other:
                other.execute("UPDATE workspace SET default_locale = 'fr' WHERE team_id = ?",
                              (TEAM,))  # fmt: skip
                other.commit()

        await asyncio.to_thread(write_elsewhere)  # raises "database is locked" if it waits
    finally:
        stream.go.set()
        staged = await staging
    assert (staged.status, staged.rows, staged.valid) == ("parsed", 20_000, 20_000)


@pytest.mark.parametrize("change", ["typed-in contact", "contact removed"])
async def test_a_review_change_waits_for_a_file_being_staged_instead_of_failing(
    sqlite_only: Database, change: str,
) -> None:  # fmt: skip
    """Another import's file is being staged (the staging file's write lock is taken): a
    contact typed in, or a contact removed, read staged rows and then wrote them, and SQLite
    refused the write at once (a deadlock's way out), busy timeout or not. The typed-in
    contact's source then stayed "being read" and blocked approval for good."""
    from bot.imports.batches import stage_contact
    from bot.imports.review import contacts_page, load, remove_contact

    db = sqlite_only
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "Staged", create=True)
    mine = await create_batch(db, TEAM, segment.id or 0, "U1")
    small = await add_source(db, TEAM, mine.id or 0, SourceKind.CSV, "small.csv")
    await stage_csv(db, TEAM, small.id or 0, io.BytesIO(_csv(3)))
    other = await create_batch(db, TEAM, segment.id or 0, "U2")
    big = await add_source(db, TEAM, other.id or 0, SourceKind.CSV, "big.csv")
    stream = PausingStream(_csv(20_000))
    staging = asyncio.create_task(stage_csv(db, TEAM, big.id or 0, stream))
    try:
        assert await asyncio.to_thread(stream.paused.wait, 30), "staging never started"
        if change == "typed-in contact":
            doing = asyncio.create_task(stage_contact(db, TEAM, mine.id or 0,
                                                      email="new@example.com"))  # fmt: skip
        else:
            rows, _ = await contacts_page(db, TEAM, mine.id or 0)
            doing = asyncio.create_task(remove_contact(db, TEAM, mine.id or 0, rows[0].id))
        await asyncio.sleep(0.3)
        assert not doing.done() or doing.exception() is None  # waiting, not refused
    finally:
        stream.go.set()
        await staging
    await doing
    view = await load(db, TEAM, mine.id or 0)
    assert all(s.status == "parsed" for s in view.sources), view.sources
    assert view.totals.valid == (4 if change == "typed-in contact" else 2)


async def test_a_new_database_and_its_staging_file_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:  # fmt: skip
    """Every customer's address and name live in these files (and, staged, every row of the
    files imported): created under the usual umask 022 they were world-readable (0644), so
    any account on the host could copy them; so were their -wal files."""
    import os

    from models.migrate import upgrade

    main = tmp_path / "referral-bot.db"
    old = os.umask(0o022)
    try:
        db = Database(f"sqlite:///{main}")
        try:
            await upgrade(db)
            await ensure_workspace(db, "T1")
            async with db.begin() as conn:
                await conn.execute(text("SELECT COUNT(*) FROM staged_row"))
            modes = {path.name: oct(path.stat().st_mode & 0o777)
                     for path in tmp_path.iterdir() if "referral-bot" in path.name}  # fmt: skip
        finally:
            await db.dispose()
    finally:
        os.umask(old)
    assert {"referral-bot.db", "referral-bot.staging.db", "referral-bot.db-wal"} <= set(modes)
    assert set(modes.values()) == {"0o600"}, modes


async def test_a_database_named_by_a_symlink_is_created_for_its_owner_only(
    tmp_path: Path,
) -> None:  # fmt: skip
    """DATABASE_URL naming a symlink to a data volume whose file doesn't exist yet: the file
    was made under the umask (0644), the link refusing the owner-only creation."""
    import os

    from models.migrate import upgrade

    data = tmp_path / "volume"
    data.mkdir()
    link = tmp_path / "referral-bot.db"
    link.symlink_to(data / "referral-bot.db")
    old = os.umask(0o022)
    try:
        db = Database(f"sqlite:///{link}")
        try:
            await upgrade(db)
            await ensure_workspace(db, "T1")
        finally:
            await db.dispose()
    finally:
        os.umask(old)
    assert oct((data / "referral-bot.db").stat().st_mode & 0o777) == "0o600"
    # its staging file beside the file SQLite opens: one was also made beside the link
    assert (data / "referral-bot.staging.db").exists()
    assert not (tmp_path / "referral-bot.staging.db").exists()
