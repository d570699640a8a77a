"""0027 tidies the spacing of the names contacts were imported with before imports did:
"Mary  Ann" and "van der\u00a0Berg" are found by their words again; other names stay as
they were."""

from __future__ import annotations

from sqlalchemy import text

from bot.contact_admin import search
from models.migrate import upgrade
from tests.test_settings_and_schema import _at_revision

CONTACTS = [  # id, email, first, last: as imports before 0027 stored them
    (1, "mary@example.com", "Mary  Ann", "Smith"),
    (2, "berg@example.com", "Hans", "van der\u00a0Berg"),
    (3, "tab@example.com", "Jo\tAnn", "Lee   Park"),
    (4, "ok@example.com", "Ada", "Lovelace"),
    (5, "none@example.com", "", ""),
]


async def test_0027_tidies_the_spacing_of_names_and_only_that(db_env: dict[str, str]) -> None:
    async with _at_revision(db_env, "0026") as db:
        async with db.begin() as conn:
            for contact_id, email, first, last in CONTACTS:
                await conn.execute(text(
                    "INSERT INTO contact (id, team_id, email, email_key, first_name, last_name, "
                    "subscribed, source, created_at, updated_at) VALUES (:id, 'T1', :e, :e, "
                    ":f, :l, true, 'import', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"),
                    {"id": contact_id, "e": email, "f": first, "l": last})  # fmt: skip
        await upgrade(db)
        async with db.begin() as conn:
            names = (await conn.execute(text(
                "SELECT id, first_name, last_name FROM contact ORDER BY id"))).all()
        assert [tuple(n) for n in names] == [
            (1, "Mary Ann", "Smith"), (2, "Hans", "van der Berg"), (3, "Jo Ann", "Lee Park"),
            (4, "Ada", "Lovelace"), (5, "", "")]  # fmt: skip
        found = await search(db, "T1", "mary ann")
        assert [h.email for h in found.hits] == ["mary@example.com"], found
