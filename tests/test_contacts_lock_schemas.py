"""The workspace's contacts lock (models/locks.py) is a schema's, not the server's.

PostgreSQL's advisory locks belong to the server: keyed by the workspace alone, a deletion of
a workspace's contacts in one schema held up imports of the same workspace in every other
schema of the server (staging beside production; each test's schema, where an impatient
test's import gave up after 100 ms while another test deleted a contact)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from models import Database
from models.locks import lock_contacts
from tests.conftest import BACKEND, POSTGRES_URL, _asyncpg_url

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's advisory locks")


async def test_a_deletion_in_one_schema_holds_up_no_import_of_another(db: Database) -> None:
    other_schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_url())
    await admin.execute(f'CREATE SCHEMA "{other_schema}"')
    other = Database(POSTGRES_URL, schema=other_schema)
    try:
        async with db.engine.connect() as deleting:
            await deleting.begin()
            await lock_contacts(deleting, "T0001", exclusive=True)  # a deletion under way
            async with other.begin() as importing:  # the same workspace, another schema
                await asyncio.wait_for(lock_contacts(importing, "T0001", exclusive=False), 5)
            async with db.engine.connect() as same:  # in its own schema, it waits
                await same.begin()
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(lock_contacts(same, "T0001", exclusive=False), 0.5)
            await deleting.rollback()
    finally:
        await other.dispose()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{other_schema}" CASCADE')
        await admin.close()
