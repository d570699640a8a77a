"""Alembic environment: runs on the connection handed in by models.migrate (sync or async)."""

from functools import partial

from alembic import context
from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table on SQLModel.metadata)
from models.migrate import compared

target_metadata = SQLModel.metadata


def run_offline() -> None:
    """`sql=True`: the DDL as text, for a dialect named by the config's URL (tests build
    their per-test PostgreSQL schemas from it in one round trip)."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        include_object=compared,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `referral-bot db upgrade` (models.migrate)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=partial(compared, dialect=connection.dialect.name),
        # models.migrate follows the steps to name the one that failed
        on_version_apply=context.config.attributes.get("on_version_apply", ()),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_migrations()
