"""Settings come from the environment with clear errors; migrations build the same schema."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, make_url, text

from bot.settings import SettingsError, load_settings
from models import Database
from models.migrate import HEAD, compared, current_revision, head_revision, upgrade
from tests import shell
from tests.conftest import POSTGRES_URL, _drop_schema, requires_postgres


def test_defaults_and_normalised_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DEFAULT_LOCALE", "pt_br")
    settings = load_settings()
    assert settings.default_locale == "pt-BR"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "referral-bot.db"
    )


def test_slack_secrets_pasted_with_a_newline_still_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "abc123\n")
    monkeypatch.setenv("SLACK_BOT_TOKEN", " xoxb-1-2\r\n")
    settings = load_settings()
    assert (settings.slack_signing_secret, settings.slack_bot_token) == ("abc123", "xoxb-1-2")


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    monkeypatch.setenv("DEFAULT_LOCALE", "elvish")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "DATABASE_URL" in message and "sqlite" in message
    assert "DEFAULT_LOCALE" in message and "'elvish'" in message


@pytest.mark.parametrize(("url", "said"), [
    ("https://", "has no host"),
    ("https://x.example/?a=1", "?query or #fragment"),
    ("https://x.example#top", "?query or #fragment"),
    ("https://x.example:99999", "port"),
    ("x.example", "must start with https://"),
])  # fmt: skip
def test_a_public_url_links_cant_be_made_of_is_refused(url: str, said: str) -> None:
    """Referral links are PUBLIC_URL plus a path: "https://x.example/?a=1/r/CODE" was sent."""
    with pytest.raises(SettingsError, match="PUBLIC_URL") as err:
        load_settings(public_url=url)
    assert said in str(err.value)


@pytest.mark.parametrize(("url", "said"), [
    ("slack.com/api/", "must be an https:// URL with a host"),
    ("ftp://slack.com/api/", "must be an https:// URL with a host"),
    ("http://slack.example/api/", "the bot token is sent there"),
])  # fmt: skip
def test_a_slack_api_url_that_cant_be_slacks_is_refused(url: str, said: str) -> None:
    """SLACK_API_URL without its scheme was taken for Slack out of reach: serve started
    ("Slack may be reachable later"), /healthz said ok, and every Slack call failed."""
    with pytest.raises(SettingsError, match="SLACK_API_URL") as err:
        load_settings(slack_api_url=url)
    assert said in str(err.value)


@pytest.mark.parametrize(("url", "used"), [
    ("https://slack.com/api", "https://slack.com/api/"),  # calls went to /auth.test
    ("http://127.0.0.1:8080/api/", "http://127.0.0.1:8080/api/"),  # a local fake
    ("http://localhost/api", "http://localhost/api/"),
])  # fmt: skip
def test_a_slack_api_url_ends_in_a_slash(url: str, used: str) -> None:
    assert load_settings(slack_api_url=url).slack_api_url == used


@pytest.mark.parametrize(("url", "used"), [
    ("https://empfehlung.bücher.de", "https://empfehlung.xn--bcher-kva.de"),
    ("https://Bücher.DE:8443/", "https://xn--bcher-kva.de:8443"),
    ("https://straße.de", "https://xn--strae-oqa.de"),  # IDNA 2008 keeps ß (2003 made it ss)
    ("https://r.example/mein shop/ä", "https://r.example/mein%20shop/%C3%A4"),
    ("https://r.example/a%20b/", "https://r.example/a%20b"),  # already encoded: kept
    ("https://[::1]:3000", "https://[::1]:3000"),
])  # fmt: skip
def test_a_public_url_is_used_in_its_ascii_form(url: str, used: str) -> None:
    """Links go into emails' headers, which take ASCII only: an internationalised host or a
    path with a space was accepted, then every invite failed to build."""
    settings = load_settings(public_url=url)
    assert settings.public_url == settings.public_base == used
    assert load_settings(public_url=used).public_url == used  # the same when given again


def test_a_public_url_whose_host_has_no_ascii_form_is_refused() -> None:
    with pytest.raises(SettingsError, match="PUBLIC_URL") as err:
        load_settings(public_url="https://bad_☃host.example")
    assert "internationalised domain name" in str(err.value)


@pytest.mark.parametrize("name", ["max_unzipped_mb", "job_lease_seconds", "invite_hold_seconds",
                                  "worker_poll_seconds", "staged_retention_days"])
def test_an_infinite_number_is_refused_at_start(name: str) -> None:
    """MAX_UNZIPPED_MB=inf was accepted, then failed the first workbook's import."""
    with pytest.raises(SettingsError, match=f"{name.upper()}: inf isn't a finite number"):
        load_settings(**{name: float("inf")})


@pytest.mark.parametrize(("env", "said"), [
    ({"PORT": "abc"}, "PORT: 'abc' isn't a whole number from 1 to 65535 (e.g. PORT=3000)"),
    ({"PORT": "0"}, "PORT: '0' isn't a whole number from 1 to 65535 (e.g. PORT=3000)"),
    ({"JOB_LEASE_SECONDS": "-1"},
     "JOB_LEASE_SECONDS: '-1' isn't a number above 0 (e.g. JOB_LEASE_SECONDS=30)"),
    ({"JOB_LEASE_SECONDS": "inf"},
     "JOB_LEASE_SECONDS: 'inf' isn't a finite number above 0 (e.g. JOB_LEASE_SECONDS=30)"),
    ({"UNDO_WINDOW_DAYS": "1.5"},
     "UNDO_WINDOW_DAYS: '1.5' isn't a whole number, 0 or more (e.g. UNDO_WINDOW_DAYS=7)"),
    ({"RUN_WORKER": "maybe"}, "RUN_WORKER: 'maybe' isn't true or false (e.g. RUN_WORKER=false)"),
])  # fmt: skip
def test_a_bad_number_or_switch_is_said_in_plain_words(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], said: str
) -> None:
    """"PORT: Input should be a valid integer, unable to parse string as an integer" was
    pydantic's wording: the value, what the setting takes, and an example, instead."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == f"Invalid configuration:\n  {said}"


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///"])
def test_a_database_in_memory_is_refused_saying_why(url: str) -> None:
    """sqlite:///:memory: was told about slashes ("three slashes, four for an absolute
    path"), not why it is refused: nothing would be kept, nor shared with the workers."""
    with pytest.raises(SettingsError) as err:
        load_settings(database_url=url)
    said = str(err.value)
    assert " in memory" in said and "lost when the process exits" in said, said
    assert "not shared with serve's worker processes" in said, said
    assert "e.g. sqlite:///./referral-bot.db" in said, said
    assert (":memory:" in said) == (":memory:" in url), said


def test_a_sqlite_file_in_a_missing_folder_says_so(tmp_path: Path) -> None:
    """SQLite makes the file, not its folder: it said only "unable to open database file"."""
    missing = load_settings(database_url=f"sqlite:///{tmp_path}/nope/bot.db")
    assert missing.database_folder_problem() == (
        f"the folder {tmp_path}/nope doesn't exist (SQLite makes the file, not its folder): "
        "create it, or name a file in a folder that exists, e.g. "
        "DATABASE_URL=sqlite:///./referral-bot.db")  # fmt: skip
    (tmp_path / "afile").write_text("", encoding="utf-8")
    in_a_file = load_settings(database_url=f"sqlite:///{tmp_path}/afile/bot.db")
    assert str(in_a_file.database_folder_problem()).startswith(
        f"{tmp_path}/afile is a file, not a folder: name a file in a folder that exists")
    assert load_settings(database_url=f"sqlite:///{tmp_path}/bot.db").database_folder_problem() \
        is None


def test_sending_by_smtp_needs_a_public_url() -> None:
    """Invites sent through SMTP_URL go to real people once: without PUBLIC_URL their links
    led to localhost (serve and worker said nothing)."""
    settings = load_settings(smtp_url="smtp://mail.example:587", secret_key="s", public_url="")
    assert [p.split(":")[0] for p in settings.invite_problems()] == ["PUBLIC_URL"]
    assert load_settings(smtp_url="", secret_key="s", public_url="").invite_problems() == []
    assert load_settings(smtp_url="smtp://mail.example:587", secret_key="s",
                         public_url="https://r.example").invite_problems() == []  # fmt: skip


async def test_migrations_reach_head_and_match_the_models(db: Database) -> None:
    assert await current_revision(db) == head_revision() == HEAD  # HEAD: a new migration's
    await upgrade(db)  # a second run is a no-op
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"workspace", "contact", "segment", "segment_member", "import_batch",
            "import_source"} <= tables  # fmt: skip
    # on SQLite, staged rows live in their own file (models/staging.py), not in the main one
    assert ("staged_row" in tables) == (not db.is_sqlite)


# SQLite's reflection can't read the hand-written expression indexes, which `compared` leaves
# out of the comparison on purpose (models/migrate.py); SQLAlchemy says so for each
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
async def test_models_and_migrations_agree(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    async with db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(
                    c, opts={"include_object": partial(compared, dialect=c.dialect.name)}
                ),
                SQLModel.metadata,
            )
        )
    assert diff == [], "models changed without a migration: run alembic revision --autogenerate"


def test_a_worker_process_gets_the_very_settings_of_serve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """serve's settings may come from code or a .env file: its children get them all."""
    from bot.jobs.child import settings_env
    from bot.settings import load_settings

    monkeypatch.chdir(tmp_path)  # no .env here
    settings = load_settings(database_url="sqlite:///x.db", team_leads=["U01", "U02"],
                             slack_file_hosts=["files.slack.com", "127.0.0.1:9"],
                             run_worker=False, outbox_dir=Path("out"), invite_hold_seconds=2.5,
                             database_schema=None, secret_key="k")  # fmt: skip
    env = settings_env(settings, base={"DATABASE_SCHEMA": "stale", "PATH": "/bin"})
    assert "DATABASE_SCHEMA" not in env and env["PATH"] == "/bin"
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = load_settings()
    assert again.model_dump() == {**settings.model_dump(), "outbox_dir": tmp_path / "out"}


async def test_a_sqlite_database_with_data_from_0007_upgrades_to_head(tmp_path: Path) -> None:
    """0008 rebuilds `workspace` (batch mode): with foreign keys on, dropping it while a
    segment pointed at it failed, and every database with data stopped at 0007 for good."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db, "0007")
        async with db.begin() as conn:
            await conn.execute(text(
                "INSERT INTO workspace (team_id, name, default_locale, created_at) "
                "VALUES ('T1', '', 'en', '2026-12-01 00:00:00')"))  # fmt: skip
            await conn.execute(text(
                "INSERT INTO segment (id, team_id, name, name_key, kind, created_at) "
                "VALUES (1, 'T1', 'All Customers', 'all customers', 'all', '2026-12-01')"
            ))  # fmt: skip
        await upgrade(db)
        assert await current_revision(db) == head_revision()
        async with db.begin() as conn:
            assert (await conn.execute(text("SELECT team_id FROM segment"))).all() == [("T1",)]
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA foreign_key_check"))).all() == []
    finally:
        await db.dispose()


@requires_postgres
async def test_a_schema_named_with_capitals_or_made_by_the_dba_is_used() -> None:
    """DATABASE_SCHEMA=t_Caps: CREATE SCHEMA made "t_Caps" but the unquoted search_path looked
    for t_caps, so nothing could be created. And a schema a DBA made for a role without
    CREATE on the database was refused (CREATE SCHEMA IF NOT EXISTS needs that privilege)."""
    caps, owned = f"t_Caps{os.getpid()}", f"t_own{os.getpid()}"
    role = f"t_role{os.getpid()}"
    admin = Database(POSTGRES_URL)
    try:
        result = shell.run({"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": caps}, "segments")
        assert result.returncode == 0, result.stderr
        assert "All Customers" in result.stdout
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            await conn.execute(text(f"CREATE SCHEMA {owned} AUTHORIZATION {role}"))
        as_role = make_url(POSTGRES_URL).set(username=role).render_as_string(hide_password=False)
        result = shell.run({"DATABASE_URL": as_role, "DATABASE_SCHEMA": owned}, "segments")
        assert result.returncode == 0, result.stderr
    finally:
        await _drop_schema(caps)
        await _drop_schema(owned)
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        await admin.dispose()


@requires_postgres
async def test_a_role_not_granted_a_current_schema_is_told_which_grant_it_lacks() -> None:
    """A role given no USAGE on DATABASE_SCHEMA (at HEAD, made by another role) sees no
    alembic_version in it, and every command said "migrating the database to revision 0001
    failed: ... no schema has been selected to create in (it had no schema yet)". The
    schema is there and current: the role lacks a grant, which the line names."""
    schema, role = f"t_nogrant{os.getpid()}", f"t_nogrant{os.getpid()}"
    admin = Database(POSTGRES_URL)
    try:
        made = shell.run({"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema}, "segments")
        assert made.returncode == 0, made.stderr
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        as_role = {"DATABASE_URL": make_url(POSTGRES_URL).set(username=role)
                   .render_as_string(hide_password=False), "DATABASE_SCHEMA": schema}  # fmt: skip
        for args in (("segments",), ("db", "upgrade")):
            result = shell.run(as_role, *args)
            said = result.stderr.strip()
            assert result.returncode == 1 and "\n" not in said, said
            assert "migrating" not in said and "no schema yet" not in said, said
            assert said.startswith(f"referral-bot: the database role {role} may not use the "
                                   f"schema {schema} (DATABASE_SCHEMA)"), said
            assert f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO "{role}"' in said, said
        async with admin.begin() as conn:  # the grants the line names are all it takes
            grants = said.split("run ", 1)[1].split(" (or", 1)[0]
            for grant in filter(None, (g.strip() for g in grants.split(";"))):
                await conn.execute(text(grant))
        result = shell.run(as_role, "segments")
        assert result.returncode == 0 and "All Customers" in result.stdout, result.stderr
    finally:
        await _drop_schema(schema)
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP OWNED BY {role}"))
            await conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        await admin.dispose()


@requires_postgres
def test_a_database_url_with_libpq_parameters_connects_or_is_refused_in_one_line() -> None:
    """asyncpg took each URL parameter as a keyword: a host's connection string
    (?connect_timeout=10, Neon's channel_binding=require) failed with an 80-line traceback."""
    schema = f"t_url{os.getpid()}"
    url = (f"{POSTGRES_URL}?sslmode=disable&connect_timeout=10&application_name=refbot"
           "&channel_binding=prefer")  # fmt: skip
    try:
        result = shell.run({"DATABASE_URL": url, "DATABASE_SCHEMA": schema}, "segments")
        assert result.returncode == 0, result.stderr
    finally:
        asyncio.run(_drop_schema(schema))
    for scheme in ("postgresql://", "postgres://"):  # Heroku's spelling too
        bad = scheme + POSTGRES_URL.split("://", 1)[1] + "?keepalives=1"
        refused = shell.run({"DATABASE_URL": bad}, "segments")
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
        assert "?keepalives= isn't a parameter referral-bot can pass" in refused.stderr


async def test_upgrading_sqlite_carries_staged_rows_and_memberships_over(tmp_path: Path) -> None:
    """0009 moves a draft's staged rows into the staging file and rebuilds segment_member
    WITHOUT ROWID: a review under way and the segments' members survive the upgrade."""
    from sqlalchemy import text

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db, "0008")
        async with db.begin() as conn:
            for sql in (
                "INSERT INTO segment_member (segment_id, contact_id, team_id, batch_id, added_at)"
                " VALUES (5, 7, 'T1', 3, '2026-12-01 00:00:00')",
                "INSERT INTO main.staged_row (id, team_id, batch_id, source_id, line, email, "
                "email_key, first_name, last_name, locale, outcome, reason, removed, subscribed) "
                "VALUES (41, 'T1', 3, 4, 2, 'A@x.com', 'a@x.com', 'A', '', NULL, 'valid', NULL, "
                "0, NULL)",
            ):
                await conn.execute(text(sql))
        await upgrade(db)
        async with db.begin() as conn:
            staged = (await conn.execute(text(
                "SELECT id, email_key, outcome FROM staging.staged_row"))).all()  # fmt: skip
            members = (await conn.execute(text(
                "SELECT segment_id, contact_id, batch_id FROM segment_member"))).all()  # fmt: skip
            ddl = (await conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'segment_member'"))).scalar_one()
        assert staged == [(41, "a@x.com", "valid")]
        assert members == [(5, 7, 3)]
        assert "WITHOUT ROWID" in ddl
    finally:
        await db.dispose()


@contextlib.asynccontextmanager
async def _at_revision(db_env: dict[str, str], revision: str) -> AsyncIterator[Database]:
    """A database of its own at `revision`, with one workspace (T1), dropped afterwards."""
    from sqlalchemy import text

    from tests.conftest import dropped

    db = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))
    try:
        if db.schema:
            async with db.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{db.schema}"'))
        await upgrade(db, revision)
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO workspace (team_id, name, default_locale, "
                                    "leads_seeded, created_at) VALUES ('T1', '', 'en', false, "
                                    "'2026-12-01 00:00:00')"))  # fmt: skip
        yield db
    finally:
        await dropped(db)


async def _segment_and_batch(conn: Any, status: str, counts: tuple[int, ...]) -> None:
    """Segment 1 and import batch 1 of workspace T1 as an old revision's columns hold them:
    `counts` are rows, valid, duplicates, rejected, warnings, new_contacts,
    existing_contacts, added_to_segment, already_in_segment and apply_cursor."""
    from sqlalchemy import text

    await conn.execute(text("INSERT INTO segment (id, team_id, name, name_key, kind, created_at) "
                            "VALUES (1, 'T1', 'S', 's', 'static', '2026-12-01 00:00:00')"))
    await conn.execute(text(
        "INSERT INTO import_batch (id, team_id, segment_id, requested_by, status, "
        "update_existing, rows, valid, duplicates, rejected, warnings, new_contacts, "
        "existing_contacts, added_to_segment, already_in_segment, apply_cursor, "
        "created_at, updated_at, undo_advocates, undo_removed) VALUES (1, 'T1', 1, "
        f"'U1', :status, false, {', '.join(str(c) for c in counts)}, '2026-12-01 00:00:00', "
        "'2026-12-01 00:00:00', false, 0)"), {"status": status})  # fmt: skip


async def test_0012_classifies_failures_and_splits_notes(db_env: dict[str, str]) -> None:
    """Sources from before 0012 are classified once the way they were read until then: a
    failure by its wording, a note's consent line moved to the warning."""
    from sqlalchemy import text

    consent = ("2 rows have a consent value we don't recognise: “MAYBE” (2). They are imported "
               "as not subscribed (never emailed); use yes/no.")  # fmt: skip
    async with _at_revision(db_env, "0011") as db:
        async with db.begin() as conn:
            await _segment_and_batch(conn, "draft", (0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            for n, (status, error, note) in enumerate([
                ("failed", "No email column found. Columns found: 'x'.", None),
                ("failed", "The column 'Mail' chosen for Email isn't in this file.", None),
                ("failed", "The file is not a CSV file.", None),
                ("parsed", None, f"This is Mailchimp's cleaned members export.\n{consent}"),
                ("parsed", None, consent),
            ], start=1):  # fmt: skip
                await conn.execute(text(
                    "INSERT INTO import_source (id, team_id, batch_id, kind, label, status, "
                    "error, note, rows, valid, duplicates, rejected, warnings, removed, "
                    "created_at) VALUES (:n, 'T1', 1, 'csv', 'f.csv', :s, :e, :note, 0, 0, 0, 0, "
                    "0, false, '2026-12-01 00:00:00')"),
                    {"n": n, "s": status, "e": error, "note": note})  # fmt: skip
        await upgrade(db)
        async with db.begin() as conn:
            rows = (await conn.execute(text(
                "SELECT id, failed_on_columns, note, warning FROM import_source ORDER BY id"
            ))).all()  # fmt: skip
        assert [r[0] for r in rows if r[1]] == [1, 2]
        assert [(r[2], r[3]) for r in rows[3:]] == [
            ("This is Mailchimp's cleaned members export.", consent), (None, consent)]



async def _old_segments(db: Database, named: list[tuple[str, str]]) -> None:
    """All Customers (id 1), then static segments 2, 3, … of `named` (name, key), written
    as an older revision keyed them."""
    from sqlalchemy import text

    async with db.begin() as conn:
        for n, (name, key) in enumerate([("All Customers", "all customers"), *named], start=1):
            await conn.execute(text(
                "INSERT INTO segment (id, team_id, name, name_key, kind, created_at) "
                "VALUES (:n, 'T1', :name, :key, :kind, '2026-12-01 00:00:00')"),
                {"n": n, "name": name, "key": key,
                 "kind": "all" if n == 1 else "static"})  # fmt: skip

async def test_0015_gives_lookalike_names_made_before_it_one_key(db_env: dict[str, str]) -> None:
    """A segment made from a macOS paste ("Cafe" + U+0301) kept its key: found by no name
    typed composed, and importing into "Café" made a second one."""
    from sqlalchemy import text

    from bot.workspaces import find_segment, import_target

    async with _at_revision(db_env, "0014") as db:
        await _old_segments(db, [("Cafe\u0301", "cafe\u0301"), ("VIP\u200b", "vip\u200b"),
                                 ("VIP", "vip")])  # fmt: skip
        await upgrade(db)
        found = await find_segment(db, "T1", "Café")
        assert found is not None and found.id == 2
        assert (await import_target(db, "T1", "café", create=True)).id == 2  # no second Café
        async with db.begin() as conn:
            keys = dict((await conn.execute(text("SELECT id, name_key FROM segment"))).all())
        assert keys[3] == "vip\u200b" and keys[4] == "vip"  # a collision keeps its old key


@pytest.mark.parametrize(("before", "unseen", "other"), [
    ("0021", "\u200e", "\u2066"),  # 0022: a left-to-right mark, a bidi isolate
    ("0027", "\u3164", "\u2800"),  # 0028: a Hangul filler, the blank Braille cell
])  # fmt: skip
async def test_name_keys_made_before_leave_out_what_shows_nothing(
    db_env: dict[str, str], before: str, unseen: str, other: str,
) -> None:
    """A segment named with a left-to-right mark (0022) or a Hangul filler (0028) kept its
    key: "Staff" typed found nothing and made a second one that looked the same; a lookalike
    of another keeps its key."""
    from sqlalchemy import text

    from bot.workspaces import WorkspaceError, create_segment, find_segment

    async with _at_revision(db_env, before) as db:
        await _old_segments(db, [(f"Staff{unseen}", f"staff{unseen}"),
                                 (f"VIP{other}", f"vip{other}"), ("VIP", "vip")])  # fmt: skip
        await upgrade(db)
        found = await find_segment(db, "T1", "staff")
        assert found is not None and found.id == 2
        with pytest.raises(WorkspaceError, match="already exists"):
            await create_segment(db, "T1", "Staff")
        async with db.begin() as conn:
            keys = dict((await conn.execute(text("SELECT id, name_key FROM segment"))).all())
        assert keys[3] == f"vip{other}" and keys[4] == "vip"  # a collision keeps its old key


async def test_0028_rekeys_no_live_name_to_a_deleted_segments_key(
    db_env: dict[str, str],
) -> None:
    """A live "deleted:2" + U+3164, allowed before 0028, would key to a deleted segment's
    key: the upgrade failed on the unique index and the bot wouldn't start."""
    from sqlalchemy import text

    async with _at_revision(db_env, "0027") as db:
        async with db.begin() as conn:
            for n, name, key, kind in [(1, "All Customers", "all customers", "all"),
                                       (2, "Old", "deleted:2", "deleted"),
                                       (3, "deleted:2\u3164", "deleted:2\u3164", "static")]:
                await conn.execute(text(
                    "INSERT INTO segment (id, team_id, name, name_key, kind, created_at) "
                    "VALUES (:n, 'T1', :name, :key, :kind, '2026-12-01 00:00:00')"),
                    {"n": n, "name": name, "key": key, "kind": kind})  # fmt: skip
        await upgrade(db)
        async with db.begin() as conn:
            keys = dict((await conn.execute(text("SELECT id, name_key FROM segment"))).all())
        assert keys[2] == "deleted:2" and keys[3] == "deleted:2\u3164"


def test_the_worker_child_gets_the_outbox_choice_serve_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OUTBOX_DIR exported blank (unset) beside a `.env` naming a folder: serve took the
    outbox as unset, then left OUTBOX_DIR out of its worker child's environment, and the
    child read the `.env`'s folder and wrote every invite there, marked sent."""
    import os

    from bot.campaigns.jobs import outbox_chosen
    from bot.jobs.child import settings_env

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"OUTBOX_DIR={tmp_path / 'out'}\n")
    monkeypatch.setenv("OUTBOX_DIR", "")
    parent = load_settings()
    assert not outbox_chosen(parent)
    child_env = settings_env(parent)
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in child_env.items():
        monkeypatch.setenv(name, value)
    assert not outbox_chosen(load_settings())


async def test_0016_adds_the_listings_and_downgrades_keeping_the_rest(
    db_env: dict[str, str],
) -> None:
    """0016 adds segment_member_listing (WITHOUT ROWID on SQLite, like segment_member) and the
    undo's count of memberships handed on, 0 for the imports made before it; downgrading
    drops both and keeps every other row; upgrading again works."""
    from alembic import command
    from sqlalchemy import text

    from models.migrate import alembic_config

    def columns(sync: object, table: str) -> set[str]:
        return {c["name"] for c in inspect(sync).get_columns(table)}

    async with _at_revision(db_env, "0015") as db:
        async with db.begin() as conn:
            await _segment_and_batch(conn, "done", (1, 1, 0, 0, 0, 1, 0, 1, 0, 2))
            await conn.execute(text(
                "INSERT INTO segment_member (segment_id, contact_id, team_id, batch_id, "
                "added_at) VALUES (1, 7, 'T1', 1, '2026-12-01 00:00:00')"))  # fmt: skip
        await upgrade(db)
        async with db.begin() as conn:
            assert (await conn.execute(text(
                "SELECT id, undo_handed_on FROM import_batch"))).all() == [(1, 0)]  # fmt: skip
            await conn.execute(text(
                "INSERT INTO segment_member_listing (segment_id, contact_id, batch_id, team_id) "
                "VALUES (1, 7, 2, 'T1')"))  # fmt: skip
            if db.is_sqlite:
                ddl = (await conn.execute(text("SELECT sql FROM sqlite_master "
                                               "WHERE name = 'segment_member_listing'"))
                       ).scalar_one()  # fmt: skip
                assert "WITHOUT ROWID" in ddl

        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0015"))
        assert await current_revision(db) == "0015"
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            batch_columns = await conn.run_sync(columns, "import_batch")
            members = (await conn.execute(text(
                "SELECT segment_id, contact_id, batch_id FROM segment_member"))).all()
            batches = (await conn.execute(text("SELECT id, status FROM import_batch"))).all()
        assert "segment_member_listing" not in tables and "segment_member" in tables
        assert "undo_handed_on" not in batch_columns and "undo_removed" in batch_columns
        assert (members, batches) == ([(1, 7, 1)], [(1, "done")])

        await upgrade(db)
        assert await current_revision(db) == head_revision()


async def test_0018_gives_each_advocate_the_import_its_enrollment_was_for(
    db_env: dict[str, str],
) -> None:
    """0018 adds advocate.batch_id: an advocate an import's enrollment made takes that import,
    one made by targeting or going live none; downgrading drops it, keeping the advocates."""
    from alembic import command
    from sqlalchemy import text

    from models.migrate import alembic_config

    async with _at_revision(db_env, "0017") as db:
        async with db.begin() as conn:
            for enrollment, batch in ((1, 5), (2, None)):
                await conn.execute(text(
                    "INSERT INTO enrollment (id, team_id, campaign_id, batch_id, requested_by, "
                    "status, enrolled, already_advocates, excluded, created_at) VALUES "
                    "(:e, 'T1', 1, :b, 'U1', 'done', 1, 0, 0, '2026-12-01 00:00:00')"),
                    {"e": enrollment, "b": batch})  # fmt: skip
            for advocate, enrollment in ((1, 1), (2, 2), (3, None)):
                await conn.execute(text(
                    "INSERT INTO advocate (id, team_id, campaign_id, contact_id, code, "
                    "enrollment_id, clicks, created_at) VALUES (:a, 'T1', 1, :a, :code, :e, 0, "
                    "'2026-12-01 00:00:00')"), {"a": advocate, "code": f"c{advocate}",
                                                "e": enrollment})  # fmt: skip
        await upgrade(db)
        async with db.begin() as conn:
            rows = (await conn.execute(text("SELECT id, batch_id FROM advocate ORDER BY id"))).all()
        assert rows == [(1, 5), (2, None), (3, None)]

        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0017"))
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("advocate")})
            kept = (await conn.execute(text("SELECT id FROM advocate ORDER BY id"))).all()
        assert "batch_id" not in columns and kept == [(1,), (2,), (3,)]
        await upgrade(db)
        assert await current_revision(db) == head_revision()


async def test_a_migration_that_fails_says_so_and_blames_no_database_url(
    db_env: dict[str, str],
) -> None:
    """A statement of a migration that fails (here 0016's table, already made by hand) was
    reported as "can't use the database ... (DATABASE_URL)", sending people to check a URL
    that was fine. It names the revision and the error, in one line."""
    from sqlalchemy import text

    from tests.shell import run

    async with _at_revision(db_env, "0015") as db:
        async with db.begin() as conn:
            await conn.execute(text("CREATE TABLE segment_member_listing (x INTEGER)"))
        for args in (("db", "upgrade"), ("segments", "--json")):
            result = await asyncio.to_thread(run, db_env, *args)
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            said = result.stderr.strip()
            assert "\n" not in said and "DATABASE_URL" not in said, said
            assert "migrating the database to revision 0016 failed" in said, said
            assert "segment_member_listing" in said and "already exists" in said, said
            # SQLite doesn't roll a revision's DDL back: the message mustn't suggest it did
            assert ("may be in place" in said) is (db.dialect == "sqlite"), said
        assert await current_revision(db) == "0015"


@pytest.mark.parametrize(("value", "ids"), [
    ("U012AB3CD, u045ef6gh", ["U012AB3CD", "U045EF6GH"]),
    ("U012AB3CD U045EF6GH", ["U012AB3CD", "U045EF6GH"]),
    ("<@U012AB3CD>", ["U012AB3CD"]),
])  # fmt: skip
def test_team_leads_are_taken_as_the_user_ids_they_name(
    value: str, ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lower-case id, a pasted mention or ids separated by spaces were seeded as they were
    written: leads nobody could be, seeded once for good, and removable from nowhere."""
    monkeypatch.setenv("TEAM_LEADS", value)
    assert load_settings().team_leads == ids


def test_a_team_lead_that_is_no_user_id_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEAM_LEADS", "U012AB3CD,@jane")
    with pytest.raises(SettingsError, match=r"TEAM_LEADS: .*'@jane' is not a Slack user id"):
        load_settings()


def test_mailchimp_sign_in_needs_a_public_url_and_its_secret() -> None:
    """With MAILCHIMP_CLIENT_ID but no PUBLIC_URL, `serve` started without a word and every
    lead's Connect button sent them to http://localhost:3000."""
    base = {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s"}
    alone = load_settings(**base, mailchimp_client_id="123", public_url="")
    assert [p.split(":")[0] for p in alone.slack_problems()] == [
        "MAILCHIMP_CLIENT_SECRET", "PUBLIC_URL"]
    assert load_settings(**base, mailchimp_client_id="123", mailchimp_client_secret="x",
                         public_url="https://r.example").slack_problems() == []  # fmt: skip
    assert load_settings(**base, public_url="").slack_problems() == []


async def test_a_command_on_a_current_schema_starts_without_loading_alembic(
    db: Database, db_env: dict[str, str]
) -> None:
    """Alembic and the migration scripts took ~0.3 s of every command's start (a third of
    `referral-bot jobs`): a schema at HEAD is recognised without them. One not at HEAD still
    goes through Alembic (the migration tests above)."""
    script = ("import sys; from bot.cli import main; code = main(['jobs']); "
              "print(code, 'alembic' in sys.modules)")  # fmt: skip
    ran = subprocess.run([sys.executable, "-c", script], env=shell.environment(db_env),
                         capture_output=True, text=True, timeout=shell.TIMEOUT)  # fmt: skip
    assert ran.stdout.splitlines()[-1] == "0 False", ran.stdout + ran.stderr


@pytest.mark.parametrize("value", ["https://files.slack.com", "Files.Slack.com",
                                   "files.slack.com/", " HTTPS://FILES.SLACK.COM/ "])
def test_slack_file_hosts_written_as_a_url_or_in_capitals_is_taken_as_its_host(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Written so, the host matched no file's, and every Slack file was refused "not on
    Slack's file host (files.slack.com)"; it is Slack's host, as the file's URL has it."""
    from handlers.slack_files import _allowed

    monkeypatch.setenv("SLACK_FILE_HOSTS", f"{value},127.0.0.1:8443")
    hosts = load_settings().slack_file_hosts
    assert hosts == ["files.slack.com", "127.0.0.1:8443"]
    assert _allowed("https://files.slack.com/files-pri/T1-F1/customers.csv", hosts)
    assert not _allowed("https://files.slack.com.evil.example/files-pri/T1-F1/x.csv", hosts)


@pytest.mark.parametrize(("value", "said"), [
    ("", "names no host"), (" , ", "names no host"),
    ("files.slack.com/files-pri", "'files.slack.com/files-pri' is not a host name"),
    ("*.slack.com", "'*.slack.com' is not a host name"),
])  # fmt: skip
def test_slack_file_hosts_that_names_no_host_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str, said: str
) -> None:
    """An empty list, a path or a wildcard: refused in one line, never a wider match (these
    hosts receive the bot token)."""
    monkeypatch.setenv("SLACK_FILE_HOSTS", value)
    with pytest.raises(SettingsError, match=rf"\n  SLACK_FILE_HOSTS: .*{said}") as err:
        load_settings()
    assert len(str(err.value).splitlines()) == 2


def test_ctrl_c_while_another_process_migrates_ends_the_command_at_once(
    tmp_path: Path,
) -> None:
    """`db upgrade` of a SQLite file another process is migrating (here: holding its lock)
    waits; Ctrl-C then ended it only once the other process let go, since the wait was on
    a thread asyncio's shutdown waits for (a deploy's hung migration held it for good)."""
    import fcntl
    import signal
    import time

    db_file = tmp_path / "app.db"
    with open(f"{db_file}.migrating", "a+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)  # another process's migration
        upgrading = subprocess.Popen(
            [*shell.CLI, "db", "upgrade"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=shell.environment({"DATABASE_URL": f"sqlite:///{db_file}"}), text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _holds_open(upgrading.pid, f"{db_file}.migrating"):  # waiting for it
                assert upgrading.poll() is None, upgrading.communicate()
                assert time.monotonic() < deadline, "db upgrade never reached the lock"
                time.sleep(0.05)
            time.sleep(0.3)
            upgrading.send_signal(signal.SIGINT)
            _, err = upgrading.communicate(timeout=10)  # the lock still held meanwhile
        finally:
            upgrading.kill()
    assert upgrading.returncode == 130, err
    assert err.strip().splitlines()[-1] == "referral-bot: interrupted", err


def _holds_open(pid: int, path: str) -> bool:
    """Whether process `pid` has `path` open (Linux's /proc)."""
    with contextlib.suppress(OSError):
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == path
                   for fd in os.listdir(f"/proc/{pid}/fd"))  # fmt: skip
    return False


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_outbox_dir_is_unset_not_the_current_folder(
    blank: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OUTBOX_DIR= in a .env made from a template (SMTP_URL= beside it, which is unset): the
    empty path was the folder the worker ran in, and every invite was written there as an
    .eml file and marked sent."""
    from bot.campaigns.jobs import outbox_chosen

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"OUTBOX_DIR={blank}\nSMTP_URL=\n")
    for settings in (load_settings(), load_settings(outbox_dir=blank)):
        assert not outbox_chosen(settings)
        assert settings.invite_delivery().startswith("SMTP_URL is not set: invites wait for "
                                                     "a worker that has it"), settings
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "out"))
    assert outbox_chosen(load_settings())  # given, it is used
