"""Small hot reads (is this person a lead, one batch by id) for a fraction of the ORM's cost.

Why: through SQLAlchemy's async layer a one-row read on SQLite costs about 1 ms of CPU: six
hand-offs to aiosqlite's thread (cursor, execute, fetch, close, commit, the pool's reset),
a pool checkout and the ORM's bookkeeping, most of it on the event loop that acks Slack. A
click on a review button made two such reads after its ack, so a burst of clicks took the
loop from the acks behind it (bench/ack_latency.py). Here a read is one hand-off to one
long-lived aiosqlite connection (about 60 us) that can't write (`query_only`), with the
columns' own result processors turning the row into the model, so callers get exactly what
`session.get` gave them. On PostgreSQL, and for an in-memory SQLite database (which another
connection can't see), the same reads run through the engine.

Only committed data is read (a separate connection), so these are for reads outside a
caller's transaction: a button's first look at what it acts on, never a check inside one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from threading import Thread
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

M = TypeVar("M", bound=SQLModel)
Processor = Callable[[Any], Any] | None


class _Shape:
    """How one model is read by its primary key and team: the SQL and each column's processor."""

    def __init__(self, model: type[SQLModel], dialect: Dialect) -> None:
        table: Table = model.__table__  # type: ignore[attr-defined]
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or "team_id" not in table.c:
            raise TypeError(f"{table.name}: reads by one key column and team_id only")
        self.names = [c.name for c in table.c]
        self.processors: list[Processor] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in table.c
        ]
        columns = ", ".join(self.names)
        self.sql = f"SELECT {columns} FROM {table.name} WHERE {keys[0].name} = :k AND team_id = :t"
        self.statement = select(*table.c).where(keys[0] == bindparam("k"),
                                                table.c.team_id == bindparam("t"))

    def values(self, row: tuple[Any, ...]) -> dict[str, Any]:
        return {name: (p(v) if p is not None else v)
                for name, p, v in zip(self.names, self.processors, row, strict=True)}  # fmt: skip


class Reader:
    """Read-only lookups; `path` is the SQLite file, or None to read through `engine`."""

    def __init__(self, engine: AsyncEngine, path: str | None) -> None:
        self._engine = engine
        self._path = path
        self._conn: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()
        self._shapes: dict[type[SQLModel], _Shape] = {}

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of `sql` (named `:params`, the same text on either database), raw values:
        a boolean is 0/1 on SQLite; convert in the caller."""
        if self._path is None:
            async with self._engine.connect() as conn:
                return [tuple(r) for r in await conn.execute(text(sql), dict(params))]
        conn = await self._connection()
        return [tuple(r) for r in await conn.execute_fetchall(sql, dict(params))]

    async def get(self, model: type[M], key: Any, team_id: str) -> M | None:
        """The row of `model` with this primary key in this workspace, else None."""
        shape = self._shape(model)
        params = {"k": key, "t": team_id}
        if self._path is None:
            async with self._engine.connect() as conn:
                found = (await conn.execute(shape.statement, params)).first()
            return None if found is None else model(**found._asdict())
        conn = await self._connection()
        rows = await conn.execute_fetchall(shape.sql, params)
        return model(**shape.values(tuple(rows[0]))) if rows else None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    def _shape(self, model: type[SQLModel]) -> _Shape:
        shape = self._shapes.get(model)
        if shape is None:
            shape = self._shapes[model] = _Shape(model, self._engine.dialect)
        return shape

    async def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            async with self._opening:
                if self._conn is None:
                    assert self._path is not None
                    conn = aiosqlite.connect(self._path)
                    # a daemon, as the engine's connections are (models.sqlite_driver): a
                    # process that never disposed of the database hung at exit on it
                    thread = conn if isinstance(conn, Thread) else conn._thread
                    thread.daemon = True
                    await conn
                    await conn.execute("PRAGMA busy_timeout=30000")
                    await conn.execute("PRAGMA query_only=1")
                    self._conn = conn
        return self._conn
