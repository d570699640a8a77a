"""Case-insensitive matching on both databases: SQLite's lower() and LIKE fold only A-Z, so
its searches look other letters up in each case; here the import review's contact search and
the audit log's filter (contact search has its own tests in test_contact_admin.py)."""

from __future__ import annotations

import unicodedata

from bot.audit import Act, recent, record
from bot.casefold import MAX_SPELLINGS, spellings
from bot.imports.batches import create_batch, stage_contact
from bot.imports.review import contacts_page
from bot.workspaces import ensure_workspace, import_target
from models import Database

TEAM = "T0001"


def test_spellings_cover_each_case_of_other_letters_up_to_a_limit() -> None:
    # PostgreSQL lowers it itself; each form is also looked up decomposed (NFD: "E" + U+0301)
    assert spellings("ÉLo", fold_all=True) == ["ÉLo", "E\u0301Lo"]
    assert spellings("ÉLo", fold_all=False) == ["élo", "Élo", "e\u0301lo", "E\u0301lo"]
    assert spellings("ada", fold_all=False) == ["ada"]
    assert spellings("ß", fold_all=False) == ["ß"]  # "SS" is two letters: not a spelling
    many = spellings("éèêëé", fold_all=False)
    composed = [form for form in many if form == unicodedata.normalize("NFC", form)]
    assert len(composed) == MAX_SPELLINGS and len(set(many)) == 2 * MAX_SPELLINGS
    assert all(form.endswith("é") for form in composed)  # past the limit: as typed, lowercase
    # past the limit a typed "İ" stays "İ", as SQLite keeps it (not Python's "i" + U+0307)
    assert all(form.endswith("\u0130") for form in spellings("éèêëé\u0130", fold_all=False)[:16])


async def test_the_review_finds_accented_names_in_any_case(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "VIP", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U0001")
    for email, first, last in (("elodie@example.fr", "Élodie", "Dupré"),
                               ("sven@example.se", "SVEN", "ÖSTRÖM"),
                               ("under_score@example.com", "Ana", "Lima")):  # fmt: skip
        await stage_contact(db, TEAM, batch.id or 0, email=email, first_name=first, last_name=last)

    async def found(query: str) -> list[str]:
        rows, total = await contacts_page(db, TEAM, batch.id or 0, query=query)
        assert total == len(rows)
        return [row.email for row in rows]

    for query in ("élo", "ÉLO", "lodi", "DUPRÉ", "upré"):
        assert await found(query) == ["elodie@example.fr"], query
    assert await found("öst") == await found("ström") == ["sven@example.se"]
    assert await found("dupre") == []  # é is its own letter
    assert await found("o_i") == []  # `_` is no wildcard (elodie has "odi")
    assert await found("under_") == ["under_score@example.com"]


async def test_the_review_finds_a_name_whose_accent_the_file_wrote_decomposed(
    db: Database,
) -> None:
    """macOS exports write "é" as "e" + U+0301; names are stored as written."""
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "VIP", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U0001")
    await stage_contact(db, TEAM, batch.id or 0, email="em@example.fr",
                        first_name="E\u0301mile", last_name="Zola")  # fmt: skip
    for query in ("\u00e9mile", "\u00c9MILE", "E\u0301mile"):
        rows, _ = await contacts_page(db, TEAM, batch.id or 0, query=query)
        assert [row.email for row in rows] == ["em@example.fr"], query


async def test_the_audit_filter_finds_accented_words_in_any_case(db: Database) -> None:
    await record(db, TEAM, "U0001", Act.SEGMENT_EXPORTED, "Été VIP", "12 contacts")
    await record(db, TEAM, "U0001", Act.SEGMENT_EXPORTED, "Autumn", "3 contacts")
    for query in ("été", "ÉTÉ", "Été vip", "TÉ V"):
        assert [e.subject for e in await recent(db, TEAM, matching=query)] == ["Été VIP"], query
