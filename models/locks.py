"""A workspace's contacts lock: what deletes contacts waits for what attaches rows to them.

Contacts have no foreign keys pointing at them (a million-row import would pay for checking
each), so on PostgreSQL, under READ COMMITTED, a transaction that attaches rows to contacts it
read (an import's memberships of known addresses, an enrollment's advocates and invites) and
one that deletes contacts (deleting a contact, undoing an import) could each miss the other's
uncommitted rows: the deletion removes the contact and what it saw hanging on it, the other
commits a membership or an advocate of a contact that is gone. So each takes this transaction
lock first: shared to attach (imports and enrollments still run side by side), exclusive to
delete (rare and short: it waits for the chunks under way, which then see the contact gone).
Taking a contact out of a segment by hand takes it exclusive too: an import's chunk records
which contacts it found in its segment already (segment_member_listing) from memberships it
read, and would otherwise record one for a membership the removal deletes meanwhile.

On SQLite there is nothing to do: one writer at a time, so these never interleave. Note that
the driver (pysqlite, under aiosqlite) opens the transaction at its first write, not at
`db.begin()`: reads before that write see other transactions' commits. So each of these
transactions writes first (the import chunk's claim, the enrollment's campaign row) or makes
its write conditional on what it read (a deletion matches the address it read), and reads
what it attaches or deletes inside its write, never from an earlier read.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# Advisory locks are the server's, not a schema's: keyed by the workspace alone, two
# deployments sharing a server through DATABASE_SCHEMA (staging beside production, the tests'
# schema per test) waited for each other's deletions of the same workspace's contacts. So the
# key is two numbers: the schema's (hashed by the server) and the workspace's.
_SHARED = text("SELECT pg_advisory_xact_lock_shared("
               "hashtext(coalesce(current_schema(), '')), :key)")
_EXCLUSIVE = text("SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '')), :key)")


def contacts_key(team_id: str) -> int:
    """The workspace's half of the lock's key (32 bits): a hash of its id, the same in every
    process."""
    digest = hashlib.blake2b(f"contacts:{team_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_contacts(conn: AsyncConnection, team_id: str, *, exclusive: bool) -> None:
    """Hold the workspace's contacts lock until this transaction ends (PostgreSQL). Take it
    before any row lock of the transaction, so that waiting for it never closes a cycle."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_EXCLUSIVE if exclusive else _SHARED, {"key": contacts_key(team_id)})
