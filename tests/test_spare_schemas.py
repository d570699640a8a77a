"""The PostgreSQL run hands a used schema to the next test only when it is as good as new
(tests/conftest.py: schema_emptied): these tests change one in the ways tests do and check
it is then dropped, not handed on."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from models import Database
from models.migrate import HEAD
from tests.conftest import BACKEND, schema_emptied

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="spare schemas are PostgreSQL's")

_WORKSPACE = ("INSERT INTO workspace (team_id, name, default_locale, leads_seeded, created_at) "
              "VALUES (:team, '', 'en', false, now())")  # fmt: skip
_SEGMENT = ("INSERT INTO segment (team_id, name, name_key, kind, created_at) "
            "VALUES ('T1', :name, :name, 'static', now()) RETURNING id")  # fmt: skip


async def test_an_emptied_schema_has_no_rows_and_numbers_from_one_again(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text(_WORKSPACE), {"team": "T1"})
        first = (await conn.execute(text(_SEGMENT), {"name": "a"})).scalar_one()
        await conn.execute(text(_SEGMENT), {"name": "b"})

    assert await schema_emptied(db)

    async with db.begin() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM segment"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM workspace"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).all() \
            == [(HEAD,)]
        await conn.execute(text(_WORKSPACE), {"team": "T1"})
        assert (await conn.execute(text(_SEGMENT), {"name": "c"})).scalar_one() == first


@pytest.mark.parametrize("change", [
    "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'no'; END $$;"
    "CREATE TRIGGER no_contacts BEFORE INSERT ON contact FOR EACH ROW EXECUTE FUNCTION fail()",
    "ALTER TABLE contact ADD COLUMN extra integer",
    "ALTER TABLE contact DROP CONSTRAINT uq_contact_team_email",
    "CREATE INDEX extra ON segment (name)",
    "REVOKE ALL ON contact FROM PUBLIC; GRANT SELECT ON contact TO PUBLIC",
    "INSERT INTO alembic_version VALUES ('9999')",
    "ANALYZE segment",
])  # fmt: skip
async def test_a_schema_a_test_changed_is_not_handed_on(db: Database, change: str) -> None:
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute(change)

    assert not await schema_emptied(db)


async def test_a_schema_grown_past_a_few_pages_is_not_handed_on(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text(_WORKSPACE), {"team": "T1"})
        await conn.execute(text(
            "INSERT INTO contact (team_id, email, email_key, first_name, last_name, subscribed, "
            "source, created_at, updated_at) SELECT 'T1', 'c' || i || '@example.com', "
            "'c' || i || '@example.com', 'Ann', 'Lee', true, 'csv', now(), now() "
            "FROM generate_series(1, 20000) i"))  # fmt: skip

    assert not await schema_emptied(db)
