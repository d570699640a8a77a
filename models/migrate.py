"""Schema changes go through Alembic; this runs them on our own engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from models.db import Database, driver_error, prepare_file, sqlite_file
from models.private_file import create_private

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only to migrate (or to check a schema that isn't at HEAD): loading it and
# reading the migration scripts took ~0.3 s of every command's start (alembic's plugin lookup
# alone scans every installed package's entry points), a third of `referral-bot jobs`.
MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration's revision, so that a start finds its schema current without Alembic:
# tests/test_settings_and_schema.py checks it is Alembic's head.
HEAD = "0030"
# How often a process waiting for another's SQLite migration lock tries it again (never a
# blocking wait: on a thread, it held Ctrl-C until the other let go)
MIGRATION_LOCK_POLL_SECONDS = 0.1


# Indexes on expressions, written by hand in the migrations: the models can't declare them
# portably (PostgreSQL's takes COLLATE "C", SQLite has no such collation), so comparing the
# models with the database leaves them out.
EXPRESSION_INDEXES = frozenset({"ix_contact_first_name_prefix", "ix_contact_last_name_prefix"})
# On SQLite these live in the staging file (models/staging.py), not in the migrated one.
SQLITE_STAGING = frozenset({"staged_row", "ix_staged_row_batch"})


def compared(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object,
    *, dialect: str = "postgresql",
) -> bool:  # fmt: skip
    """Alembic's include_object: everything but the hand-written expression indexes (and, on
    SQLite, the staged rows kept in their own file)."""
    if dialect == "sqlite" and name in SQLITE_STAGING:
        return False
    return not (type_ == "index" and name in EXPRESSION_INDEXES)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


class SchemaTooNew(Exception):
    """The database was migrated by a newer referral-bot than this one: its revision is none
    of ours, so this code can neither use nor upgrade it."""


class SchemaUnusable(Exception):
    """The database was reached but its schema can't be used as it stands (a grant missing,
    alembic_version holding more than one revision): nothing to migrate, someone must fix it
    first. Said in one line, naming what to do."""


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _refuse_unknown_revision(connection: Connection) -> None:
    """Raise SchemaTooNew, naming the revisions, when the database is at one we don't have
    (Alembic would otherwise fail with "Can't locate revision" and a traceback)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(connection).get_current_heads()
    script = ScriptDirectory.from_config(alembic_config())
    if len(current) > 1:
        # Alembic's own "more than one head present" came as a traceback out of every command
        raise SchemaUnusable(
            f"the database's alembic_version table holds {len(current)} revisions "
            f"({', '.join(sorted(current))}) where referral-bot keeps one: a hand-made change "
            "or another tool added rows. Delete every row but that of the revision the schema "
            f"is really at (this referral-bot's newest is {script.get_current_head()}), then "
            "run `referral-bot db upgrade`; nothing was changed."
        )  # fmt: skip
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        raise SchemaTooNew(
            f"the database's schema is at revision {', '.join(unknown)}, newer than this "
            f"referral-bot knows (its newest is {script.get_current_head()}): a newer version "
            "migrated it. Run that version (or a newer one) against it; nothing was changed."
        )


async def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def _at_head(db: Database) -> bool:
    """Whether the schema is at HEAD, read the way Alembic records it (one row of
    `alembic_version`, in the schema's search path) without loading Alembic."""
    exists = ("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
              if db.is_sqlite else "SELECT to_regclass('alembic_version') IS NOT NULL")
    async with db.engine.connect() as conn:
        if not (await conn.execute(text(exists))).scalar():
            return False
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    return [row[0] for row in versions] == [HEAD]


def _lock_key(schema: str | None) -> int:
    """The PostgreSQL advisory lock migrating `schema` takes: the same in every process."""
    digest = hashlib.blake2b(f"migrations:{schema or ''}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to call on every start (a no-op when current).

    Processes started together (`serve` and `referral-bot worker`s after a deploy) migrate one
    at a time: each first takes a lock (a file lock beside the SQLite file, an advisory lock
    on PostgreSQL), then reads the revision, so the others find the work done. Without it they
    all ran the same DDL and all but one died ("table staged_row already exists"). SQLite's
    own write lock won't do: the staging file attached to every connection is locked with it,
    and connections opening meanwhile (which shape that file) waited on each other.

    A schema already at head (every start but a deploy's) takes no lock.
    """
    if db.is_sqlite and (path := sqlite_file(db.url)) is not None:
        await asyncio.to_thread(prepare_file, path)  # before the first connection
    if revision == "head" and await _at_head(db):
        return
    async with (_migration_lock(db), db.engine.connect() as conn, _without_foreign_keys(conn),
                conn.begin()):  # fmt: skip
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _lock_key(db.schema)})  # fmt: skip
        if db.schema and not db.is_sqlite:
            await _make_or_check_schema(conn, db.schema)
        await conn.run_sync(_refuse_unknown_revision)
        await conn.run_sync(_run_migrations, revision)


async def _make_or_check_schema(conn: AsyncConnection, schema: str) -> None:
    """PostgreSQL: make DATABASE_SCHEMA when it is missing; refuse one this role may not use.

    Made only when missing: PostgreSQL checks the database's CREATE privilege before IF NOT
    EXISTS, so a role given only its own schema by the DBA was refused. One it exists but
    wasn't granted USAGE on looks empty to it (no alembic_version), and migrating it "from
    nothing" failed with "no schema has been selected to create in (it had no schema yet)"."""
    usable = (await conn.execute(
        text("SELECT has_schema_privilege(current_user, oid, 'USAGE'), current_user "
             "FROM pg_namespace WHERE nspname = :s"), {"s": schema},
    )).first()  # fmt: skip
    name = schema.replace('"', '""')
    if usable is None:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
        return
    if not usable[0]:
        role = '"' + str(usable[1]).replace('"', '""') + '"'
        raise SchemaUnusable(
            f"the database role {usable[1]} may not use the schema {schema} (DATABASE_SCHEMA):"
            f" it exists, but was made by another role that granted this one nothing. As its "
            f'owner, run GRANT USAGE, CREATE ON SCHEMA "{name}" TO {role}; GRANT SELECT, '
            f'INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{name}" TO {role}; GRANT USAGE, '
            f'SELECT ON ALL SEQUENCES IN SCHEMA "{name}" TO {role}; (or set DATABASE_URL to '
            "the role that owns it)"
        )  # fmt: skip


@asynccontextmanager
async def _without_foreign_keys(conn: AsyncConnection) -> AsyncIterator[None]:
    """SQLite: foreign keys off while migrating, as Alembic's batch documentation advises.
    Batch mode rebuilds a table to change it (copy, DROP, rename); with them on, dropping
    `workspace` or `import_batch` while rows pointed at them failed, so a database holding
    data never got past revision 0008. The pragma is a no-op inside a transaction, hence
    outside it, and on again before the connection goes back to the pool."""
    if conn.dialect.name != "sqlite":
        yield
        return
    await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    await conn.commit()
    try:
        yield
    finally:
        await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        await conn.commit()


class MigrationFailed(Exception):
    """A migration's statement failed on a database that was reached (a table made by hand,
    data a new constraint refuses): the URL is fine, the schema or its data isn't."""


def _run_migrations(connection: Connection, revision: str) -> None:
    """Alembic's upgrade, naming the revision whose statement failed (MigrationFailed)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    start = MigrationContext.configure(connection).get_current_revision()
    applied: list[str] = []
    cfg = alembic_config(connection)
    cfg.attributes["on_version_apply"] = (
        lambda *, step, **_: applied.append(step.up_revision_id),)  # fmt: skip
    try:
        command.upgrade(cfg, revision)
    except DBAPIError as exc:
        failing = _next_revision(applied[-1] if applied else start)
        target = f" to revision {failing}" if failing else ""
        left = f"its recorded revision is still {start}" if start else "it had no schema yet"
        if connection.dialect.name == "sqlite" and failing:
            # pysqlite runs DDL outside a transaction: nothing of the revision was rolled back
            left += (f"; SQLite applies a migration's statements one at a time, so those of "
                     f"{failing} before the one that failed may be in place")  # fmt: skip
        raise MigrationFailed(f"migrating the database{target} failed: {driver_error(exc)} "
                              f"({left})") from exc  # fmt: skip


def _next_revision(current: str | None) -> str | None:
    """The revision that comes after `current` (the first one after an empty database)."""
    from alembic.script import ScriptDirectory

    for script in ScriptDirectory.from_config(alembic_config()).walk_revisions():
        if script.down_revision == current:
            return script.revision
    return None


@asynccontextmanager
async def _migration_lock(db: Database) -> AsyncIterator[None]:
    """SQLite: an exclusive lock on `<file>.migrating`, released when the file is closed;
    while another process migrates, tried again every 0.1 s. Taken on a thread, the wait
    outlived a Ctrl-C: the command ended only once the other process let go (asyncio's
    shutdown waits for its threads). Nothing on PostgreSQL (the advisory lock is taken in
    the migration's transaction) or for a private in-memory one."""
    path = sqlite_file(db.url) if db.is_sqlite else None
    if path is None:
        yield
        return
    create_private(f"{path}.migrating")  # empty, but beside the files it guards, like them
    with open(f"{path}.migrating", "a+b") as lock:
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(MIGRATION_LOCK_POLL_SECONDS)
        yield


async def ensure_schema(db: Database) -> None:
    await upgrade(db)  # a no-op, without a lock, when the schema is current
