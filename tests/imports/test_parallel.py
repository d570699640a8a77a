"""A big file parsed in a child process lands exactly like one parsed in-process."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text

from bot.imports import parallel
from bot.imports.batches import add_source, create_batch, stage_csv
from bot.imports.parallel import PARALLEL_MIN_BYTES, copy_csv, file_path
from bot.workspaces import ensure_workspace, import_target
from models import Database, SourceKind


def big_csv(path: Path) -> bytes:
    lines = ["email,first_name,last_name,locale"]
    for i in range(130_000):
        email = f"User{i}@Example.com" if i % 50 else "broken@@example.com"
        # tabs, backslashes and line breaks in names: escaped in COPY's text format
        first = f'"Zo\të\\{i}"' if i % 7 == 0 else f"Zoë{i}"
        last = f'"O\'Neil\n{i}"' if i % 11 == 0 else f'"O\'Neil, {i}"'
        lines.append(f'{email},{first},{last},{"fr_FR" if i % 3 else "xx"}')
    lines.append("user7@example.com,Dup,Row,en")  # a duplicate of line 9, differing in case
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return data


STAGED = text(
    "SELECT line, email, email_key, first_name, last_name, locale, outcome, reason "
    "FROM staged_row WHERE source_id = :s ORDER BY line"
)


async def _staged(db: Database, source_id: int) -> list[tuple]:
    async with db.begin() as conn:
        return [tuple(r) for r in await conn.execute(STAGED, {"s": source_id})]


# Files from this size go to the child here (16 MB in use: test files that big cost too much).
TEST_MIN_BYTES = 4 * 1024 * 1024


def test_files_from_16_mb_on_disk_are_parsed_by_a_child(tmp_path: Path) -> None:
    # below that, a child's start-up (~0.5 s of CPU) costs more than the overlap saves
    path = tmp_path / "sparse.csv"
    with path.open("wb") as f:
        f.truncate(PARALLEL_MIN_BYTES - 1)
    with path.open("rb") as stream:
        assert file_path(stream) is None
    with path.open("ab") as f:
        f.write(b"\n")
    with path.open("rb") as stream:
        assert file_path(stream) == path
        assert file_path(io.BytesIO(stream.read())) is None  # no file behind it


async def test_child_process_and_in_process_parsing_agree(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", TEST_MIN_BYTES)
    data = big_csv(tmp_path / "big.csv")
    assert len(data) >= TEST_MIN_BYTES
    await ensure_workspace(db, "T1")
    segment = await import_target(db, "T1", "Big", create=True)
    results = []
    for label in ("child", "inline"):
        batch = await create_batch(db, "T1", segment.id, "U1")
        source = await add_source(db, "T1", batch.id, SourceKind.CSV, label)
        with (tmp_path / "big.csv").open("rb") as stream:
            stream_or_copy = stream if label == "child" else io.BytesIO(stream.read())
            assert (file_path(stream_or_copy) is not None) == (label == "child")
            staged = await stage_csv(db, "T1", source.id, stream_or_copy)
        results.append(((staged.rows, staged.valid, staged.duplicates, staged.rejected,
                         staged.warnings), await _staged(db, source.id)))  # fmt: skip
    assert results[0] == results[1]
    counts, rows = results[0]
    assert counts == (130_001, 127_400, 1, 2_600, 42_467)
    assert rows[-1][6] == "duplicate"
    # a name's tab and line break are spaces (rows.tidy_name); its backslash stays
    assert rows[0][1:5] == ("broken@@example.com", "", "Zo ë\\0", "O'Neil 0")


def test_copy_csv_puts_the_constants_on_every_row_whatever_the_fields_hold() -> None:
    """PostgreSQL's COPY CSV from the parser child: one line per row even when a name holds a
    line break (then written row by row), quotes, commas, tabs and empty or missing values."""
    rows = [
        (2, "a@x.com", "a@x.com", 'Ann "A", Jr.', "", None, "valid", None, None),
        (3, "b@x.com", "b@x.com", "Bo\r\nB", "Tab\there", "fr", "valid", None, True),
        (4, "", "", "", "", None, "rejected", "No email address", False),
    ]
    for chunk in (rows[:1] + rows[2:], rows):  # without and with a CRLF inside a field
        data = copy_csv(("T1", 7, 9, False), chunk).decode()
        parsed = list(csv.reader(io.StringIO(data, newline="")))
        assert parsed == [
            ["" if v is None else str(v) for v in (*row, "T1", 7, 9, False)] for row in chunk
        ]


def test_a_child_that_dies_part_way_is_an_error_not_a_short_file(tmp_path: Path) -> None:
    """Rows stop mid-stream when the child is killed: the reader says so rather than ending
    as if the file were shorter (and staging, in its transaction, keeps nothing)."""
    big_csv(tmp_path / "big.csv")
    rows = parallel.ParallelRows(tmp_path / "big.csv", [])
    read = iter(rows)
    assert next(read)[1] == "broken@@example.com"
    rows._process.kill()
    with pytest.raises(RuntimeError, match="stopped unexpectedly"):
        for _ in read:
            pass


def _parser_children() -> list[psutil.Process]:
    return [child for child in psutil.Process().children()
            if "bot.imports.parallel" in " ".join(child.cmdline())]  # fmt: skip


async def test_staging_interrupted_stops_its_parser_child_at_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (a cancelled task) while a big file was staged on SQLite waited for the child to
    parse the rest of it: the driver's thread went on reading the child's rows, and the
    rollback queued behind it (7.5 s for 28 MB). Compared with the child's own time for the
    whole file, measured here first (a ratio of the same run, not a fixed time): the cancel
    now takes a small part of it."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", TEST_MIN_BYTES)
    big_csv(tmp_path / "big.csv")
    started = time.monotonic()
    assert sum(1 for _ in parallel.ParallelRows(tmp_path / "big.csv", [])) == 130_001
    whole = time.monotonic() - started  # the child's start-up and parse of the whole file
    await ensure_workspace(db, "T1")
    segment = await import_target(db, "T1", "Big", create=True)
    batch = await create_batch(db, "T1", segment.id, "U1")
    source = await add_source(db, "T1", batch.id, SourceKind.CSV, "big.csv")
    with (tmp_path / "big.csv").open("rb") as stream:
        staging = asyncio.create_task(stage_csv(db, "T1", source.id, stream))
        while not _parser_children():
            await asyncio.sleep(0.01)
        child = _parser_children()[0]
        cancelled = time.monotonic()
        staging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await staging
        took = time.monotonic() - cancelled
    assert took < whole / 3, (took, whole)
    with contextlib.suppress(psutil.NoSuchProcess):
        child.wait(timeout=5)  # killed
    assert not child.is_running()
    assert await _staged(db, source.id) == []
