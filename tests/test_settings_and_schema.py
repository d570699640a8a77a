"""Settings come from the environment with clear errors; migrations build the same schema."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from bot.settings import SettingsError, load_settings
from models import Database
from models.migrate import compared, current_revision, head_revision, upgrade


def test_defaults_and_normalised_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DEFAULT_LOCALE", "pt_br")
    settings = load_settings()
    assert settings.default_locale == "pt-BR"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "referral-bot.db"
    )


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    monkeypatch.setenv("DEFAULT_LOCALE", "elvish")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "DATABASE_URL" in message and "sqlite" in message
    assert "DEFAULT_LOCALE" in message and "'elvish'" in message


async def test_migrations_reach_head_and_match_the_models(db: Database) -> None:
    assert await current_revision(db) == head_revision()
    await upgrade(db)  # a second run is a no-op
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"workspace", "contact", "segment", "segment_member", "import_batch",
            "import_source", "staged_row"} <= tables  # fmt: skip


async def test_models_and_migrations_agree(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    async with db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"include_object": compared}),
                SQLModel.metadata,
            )
        )
    assert diff == [], "models changed without a migration: run alembic revision --autogenerate"
