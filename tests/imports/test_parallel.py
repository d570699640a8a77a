"""A big file parsed in a child process lands exactly like one parsed in-process."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import text

from bot.imports.batches import add_source, create_batch, stage_csv
from bot.imports.parallel import PARALLEL_MIN_BYTES, file_path
from bot.workspaces import ensure_workspace, import_target
from models import Database, SourceKind


def big_csv(path: Path) -> bytes:
    lines = ["email,first_name,last_name,locale"]
    for i in range(130_000):
        email = f"User{i}@Example.com" if i % 50 else "broken@@example.com"
        lines.append(f'{email},Zoë{i},"O\'Neil, {i}",{"fr_FR" if i % 3 else "xx"}')
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


async def test_child_process_and_in_process_parsing_agree(db: Database, tmp_path: Path) -> None:
    data = big_csv(tmp_path / "big.csv")
    assert len(data) >= PARALLEL_MIN_BYTES
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
