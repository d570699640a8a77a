"""Every setting in one place, read from the environment and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.imports.locales import normalize_locale


class SettingsError(Exception):
    """Raised with one readable message naming every bad variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'referral-bot.db'}",
        description="SQLAlchemy URL: a SQLite file by default, postgresql://... to share",
    )
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema to use instead of the default search path"
    )
    default_locale: str = Field(default="en", description="Invite language when a row has none")
    import_chunk_rows: int = Field(default=100_000, ge=1, description="Rows per import commit")
    job_lease_seconds: float = Field(default=30.0, gt=0, description="A dead worker's job waits")
    job_retry_base_seconds: float = Field(default=5.0, ge=0, description="First retry delay")
    job_max_attempts: int = Field(default=5, ge=1, description="Attempts before a job fails")
    worker_poll_seconds: float = Field(default=1.0, gt=0, description="Idle queue polling")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        locale = normalize_locale(value)
        if locale is None:
            raise ValueError(f"{value!r} is not a language code such as en, fr or pt-BR")
        return locale


def load_settings(**overrides: object) -> Settings:
    """Build settings or raise SettingsError listing each variable and what is wrong with it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(part) for part in err["loc"]).upper() or "settings"
            problems.append(f"  {name}: {err['msg']}")
        raise SettingsError("Invalid configuration:\n" + "\n".join(problems)) from None
