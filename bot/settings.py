"""Every setting in one place, read from the environment and an optional `.env` file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import SplitResult, quote

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.ids import USER_ID
from bot.imports.locales import normalize_locale


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# Environment variables hold lists as "a,b,c", not JSON.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


# A path's characters that stay as typed: RFC 3986's pchar punctuation, and % so that a path
# already percent-encoded isn't encoded twice (quote keeps letters, digits and _.-~ anyway).
_PATH_SAFE = "/%:@!$&'()*+,;="


def _ascii_url(parts: SplitResult) -> str:
    """PUBLIC_URL as links must carry it: emails' headers (List-Unsubscribe) take ASCII only,
    so https://bücher.de/mein shop had every invite fail to build. The host becomes its xn--
    form (IDNA 2008, as browsers and the recipients' domains: the codec in the standard
    library is 2003's, which turns ß into ss, another domain), the path is percent-encoded.
    Browsers send that form back (Origin, the address bar), so the web pages compare alike."""
    import idna

    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not hostport.isascii():
        try:
            host = idna.encode(parts.hostname or "", uts46=True).decode("ascii")
        except idna.IDNAError:
            raise ValueError(f"has a host, {parts.hostname!r}, that isn't a valid "
                             "internationalised domain name (type its xn-- form if it has "
                             "one)") from None  # fmt: skip
        hostport = host if parts.port is None else f"{host}:{parts.port}"
    userinfo = quote(userinfo, safe=_PATH_SAFE.replace("/", "").replace("@", ""))
    return f"{parts.scheme}://{userinfo}{at}{hostport}{quote(parts.path, safe=_PATH_SAFE)}"


# A host name or IPv4 address, with an optional port: what SLACK_FILE_HOSTS may hold.
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
                   r"(?::[0-9]{1,5})?")


# Where an app's tokens are copied from (the app's own pages are under it).
_APP_PAGE = "your app's page at https://api.slack.com/apps"
# Slack's token prefixes, for saying which token was pasted where another belongs.
_TOKEN_KINDS = {"xoxb-": "a bot token", "xapp-": "an app-level token", "xoxp-": "a user token"}
# SECRET_KEY's shortest length: 32 characters, as the 43 of the example `serve` suggests.
SECRET_KEY_MIN_LENGTH = 32


def _has_shape(token: str, prefix: str) -> bool:
    """A token of the kind `prefix` names: the prefix, then something, with no space in it."""
    return token.startswith(prefix) and len(token) > len(prefix) and not any(
        c.isspace() for c in token)  # fmt: skip


def _token_kind(token: str, wanted: str) -> str:
    """Why a value isn't a `wanted` token, never quoting it (it may be a real token of another
    kind, pasted into the wrong variable)."""
    if token.startswith(wanted):
        return f"nothing follows {wanted}, or it holds a space"
    for prefix, kind in _TOKEN_KINDS.items():
        if token.startswith(prefix):
            home = {"xoxb-": ", which goes in SLACK_BOT_TOKEN",
                    "xapp-": ", which goes in SLACK_APP_TOKEN"}.get(prefix, "")  # fmt: skip
            return f"it is {kind}, {prefix}...{home}"
    return f"it doesn't start with {wanted}"


def _example_key() -> str:
    """A SECRET_KEY to suggest: 43 random URL-safe characters."""
    import secrets

    return secrets.token_urlsafe(32)


# the SQLite URL's shape, said in every refusal of one
_SQLITE_SHAPE = ("e.g. sqlite:///./referral-bot.db; three slashes, four for an absolute path: "
                 "sqlite:////var/lib/bot.db")
# why a database in memory is refused: every command said it had done its work and kept
# nothing, and each of serve's worker children had one of its own
_IN_MEMORY = ("lost when the process exits, and not shared with serve's worker processes or "
              "other commands")


def _a_sqlite_file(named_a_host: object, database: str, file: str | None) -> None:
    """Refuse a SQLite URL that names a host (two slashes: sqlite://bot.db) or no file
    (sqlite:///, :memory:), saying which: a database in memory was told "three slashes"."""
    if named_a_host:
        raise ValueError(f"a SQLite URL is sqlite:/// and then the file ({_SQLITE_SHAPE})")
    if database == ":memory:" or "mode=memory" in database:
        raise ValueError(f"{database!r} is a database kept in memory: {_IN_MEMORY}. Name a "
                         f"file instead ({_SQLITE_SHAPE})")  # fmt: skip
    if file is None:
        raise ValueError(f"a SQLite URL is sqlite:/// and then the file, and this one names "
                         f"none: SQLite would keep the database in memory, {_IN_MEMORY}. Name "
                         f"a file ({_SQLITE_SHAPE})")  # fmt: skip


class SettingsError(Exception):
    """Raised with one readable message naming every bad variable."""


class Settings(BaseSettings):
    # no inf or nan in a number: MAX_UNZIPPED_MB=inf (a natural "no limit") was accepted, then
    # failed the first workbook's import turning it into bytes
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      allow_inf_nan=False)  # fmt: skip

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'referral-bot.db'}",
        description="SQLAlchemy URL: a SQLite file by default, postgresql://... to share",
    )
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema to use instead of the default search path"
    )
    default_locale: str = Field(default="en", description="Invite language when a row has none")
    import_chunk_rows: int = Field(default=1_000_000, ge=1, description="Rows per import commit")
    job_lease_seconds: float = Field(default=30.0, gt=0, description="A dead worker's job waits")
    slack_timeout_seconds: float = Field(
        default=30.0, gt=0, description="serve gives up a Slack call silent this long"
    )
    job_retry_base_seconds: float = Field(default=5.0, ge=0, description="First retry delay")
    job_max_attempts: int = Field(default=5, ge=1, description="Attempts before a job fails")
    staged_retention_days: float = Field(
        default=30.0, ge=0, description="staged rows are deleted this long after an import ends"
    )
    undo_window_days: int = Field(
        default=7, ge=0, description="a finished import can be undone this many days after it"
    )
    worker_poll_seconds: float = Field(default=1.0, gt=0, description="Idle queue polling")

    slack_bot_token: str = Field(default="", description="xoxb-... (OAuth & Permissions)")
    slack_signing_secret: str = Field(default="", description="Basic Information > App Credentials")
    slack_app_token: str = Field(default="", description="xapp-... turns on Socket Mode")
    slack_api_url: str = Field(default="https://slack.com/api/", description="Web API base URL")
    slack_file_hosts: CommaList = Field(
        default=["files.slack.com"], description="hosts that may receive the bot token"
    )
    team_leads: CommaList = Field(default=[], description="Slack user ids who may approve")
    max_upload_mb: float = Field(default=10.0, gt=0, description="largest CSV accepted")
    max_unzipped_mb: float = Field(
        default=500.0, gt=0,
        description="a ZIP's CSV files (or an .xlsx workbook) may unzip to this much at most",
    )  # fmt: skip
    host: str = Field(default="0.0.0.0", description="address `serve` listens on")
    port: int = Field(default=3000, ge=1, le=65535, description="HTTP port of `serve`")
    run_worker: bool = Field(default=True, description="`serve` also runs background jobs")
    worker_processes: int = Field(
        default=1, ge=0, le=16,
        description="worker child processes `serve` starts (0: jobs run in its own process)",
    )  # fmt: skip
    public_url: str = Field(
        default="", description="where people reach `serve`: referral and unsubscribe links"
    )
    secret_key: str = Field(default="", description="signs unsubscribe links (keep it secret)")
    smtp_url: str = Field(default="", description="smtp://user:pass@host:587 or smtps://...")
    outbox_dir: Path = Field(
        default=Path("outbox"),
        description="given (without SMTP_URL): invites are written here as .eml files"
    )
    mailchimp_client_id: str = Field(default="", description="OAuth app: Connect by sign-in")
    mailchimp_client_secret: str = Field(default="", description="OAuth app secret")
    mailchimp_login_url: str = Field(
        default="https://login.mailchimp.com", description="Mailchimp's OAuth host"
    )
    mailchimp_api_url: str = Field(
        default="https://{dc}.api.mailchimp.com", description="API host for a key's data centre"
    )
    invite_hold_seconds: float = Field(
        default=300.0, ge=0, description="invites wait this long with a Cancel invites button"
    )

    @property
    def public_base(self) -> str:
        """PUBLIC_URL, or this machine's `serve` when it isn't set (fine for trying it out)."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def public_path(self) -> str:
        """PUBLIC_URL's path as links carry it (`/referrals`, percent-encoded), "" for none.
        `serve` answers under it as well as at the root: a proxy forwarding `/referrals/*` as
        it came, or none, sent every link to a 404 (bot.web.under_public_path)."""
        from urllib.parse import urlsplit

        return urlsplit(self.public_base).path.rstrip("/")

    @property
    def links_unreachable(self) -> bool:
        """Invites go to real people (SMTP_URL) with links to this machine's localhost."""
        return bool(self.smtp_url and not self.public_url)

    @property
    def max_unzipped_bytes(self) -> int:
        """MAX_UNZIPPED_MB in bytes (MiB, as archives.human_size shows them: 500 is "500 MB")."""
        return int(self.max_unzipped_mb * 1024 * 1024)

    def database_folder_problem(self) -> str | None:
        """Why the SQLite file DATABASE_URL names can't be made: its folder doesn't exist (or
        is a file). SQLite makes the file, not its folder, and said only "unable to open
        database file". None for PostgreSQL, or a folder that exists. Not refused at start:
        a folder on a volume not mounted yet may still appear (a worker waits for it); for
        where the database couldn't be opened to say."""
        from models.db import sqlite_file

        if not self.database_url.startswith("sqlite"):
            return None
        file = sqlite_file(self.database_url)
        folder = Path(file).parent if file else None
        if folder is None or folder.is_dir():
            return None
        if folder.exists():
            said, mend = f"{folder} is a file, not a folder", "name"
        else:
            said = f"the folder {folder} doesn't exist (SQLite makes the file, not its folder)"
            mend = "create it, or name"
        return (f"{said}: {mend} a file in a folder that exists, e.g. "
                "DATABASE_URL=sqlite:///./referral-bot.db")  # fmt: skip

    def slack_problems(self) -> list[str]:
        """What is missing or wrong to talk to Slack, in words that say where to find it."""
        problems = [p for p in (self.bot_token_problem(), self._app_token_problem()) if p]
        if not self.slack_app_token and not self.slack_signing_secret:
            problems.append(
                "SLACK_SIGNING_SECRET: under Basic Information > App Credentials (HTTP mode), "
                "or set SLACK_APP_TOKEN (xapp-...) to use Socket Mode instead"
            )
        if self.mailchimp_client_id and not self.mailchimp_client_secret:
            problems.append("MAILCHIMP_CLIENT_SECRET: the secret of the Mailchimp app whose "
                            "MAILCHIMP_CLIENT_ID is set (or unset both to connect by API key)")
        if self.mailchimp_client_id and not self.public_url:
            # every lead's Connect button opened http://localhost:3000 in their own browser
            problems.append("PUBLIC_URL: the https:// address people reach `serve` at; "
                            "Connect Mailchimp's sign-in comes back to it (MAILCHIMP_CLIENT_ID "
                            "is set)")
        return problems

    @property
    def slack_unset(self) -> bool:
        """Slack's settings are missing (not merely wrong): `serve` then walks through
        creating the app. A token set but mistyped is told as such instead: "Slack isn't
        configured yet" sent people who had pasted the wrong thing to redo the app."""
        return not self.slack_bot_token or not (self.slack_app_token or
                                                self.slack_signing_secret)  # fmt: skip

    def bot_token_problem(self) -> str | None:
        """SLACK_BOT_TOKEN unset, or set to something that isn't a bot token (a worker given
        one claimed Slack's jobs and failed each with invalid_auth)."""
        token = self.slack_bot_token
        if not token:
            return ("SLACK_BOT_TOKEN: the bot token (xoxb-...), under OAuth & Permissions after "
                    "you install the app created from manifest.yml")  # fmt: skip
        if _has_shape(token, "xoxb-"):
            return None
        return (f"SLACK_BOT_TOKEN: is set, but isn't a bot token ({_token_kind(token, 'xoxb-')}). "
                f"Copy the Bot User OAuth Token (it starts with xoxb-) from {_APP_PAGE} > "
                "OAuth & Permissions")  # fmt: skip

    def _app_token_problem(self) -> str | None:
        token = self.slack_app_token
        if not token or _has_shape(token, "xapp-"):
            return None
        return (f"SLACK_APP_TOKEN: is set, but isn't an app-level token "
                f"({_token_kind(token, 'xapp-')}). Copy an app-level token (it starts with "
                f"xapp-) from {_APP_PAGE} > Basic Information > App-Level Tokens (one with "
                "connections:write), or unset SLACK_APP_TOKEN to take Slack's requests over "
                "HTTP")  # fmt: skip

    def invite_delivery(self) -> str:
        """One line for `serve` and `worker` to say at start: where invites go."""
        if self.smtp_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.smtp_url)
            return f"Invites are sent by SMTP through {parts.hostname}:{parts.port or 'default'}."
        if "outbox_dir" in self.model_fields_set:
            return (f"SMTP_URL is not set: invites are written as .eml files into "
                    f"{self.outbox_dir.resolve()} (OUTBOX_DIR; set SMTP_URL to send them).")
        return ("SMTP_URL is not set: invites wait for a worker that has it (or OUTBOX_DIR, "
                "to write them as .eml files instead).")

    def invite_problems(self) -> list[str]:
        """What is missing to send invites (serve and worker need it). With SMTP_URL, real
        people get them once and for good: their referral and unsubscribe links must lead to
        this `serve`, not to the localhost a trial's .eml files may point at."""
        problems = []
        if not self.secret_key:
            problems.append(
                f"SECRET_KEY: a long random string that signs unsubscribe links, e.g. "
                f"{_example_key()} (keep it: changing it breaks links already sent)")
        if self.links_unreachable:
            problems.append(
                "PUBLIC_URL: the https:// address people reach `serve` at; invites sent through "
                "SMTP_URL carry referral and unsubscribe links to it (without it they'd lead to "
                f"{self.public_base}, which nobody else can reach)")
        return problems

    def plain_http_links(self) -> str | None:
        """A warning when invites go to real people (SMTP_URL) with links over plain http:
        an unsubscribe link's token never expires, and RFC 8058's one-click unsubscribe,
        which Gmail and Yahoo ask bulk senders for, needs an https link. Not refused: a
        trial's local mail catcher (smtp://localhost:1025) may well link to http."""
        if not self.smtp_url or not self.public_url.lower().startswith("http://"):
            return None
        return ("PUBLIC_URL starts with http://: invites' referral and unsubscribe links travel "
                "unencrypted, and mail providers offer no one-click unsubscribe without https. "
                "Serve it over https and set PUBLIC_URL to the https:// address.")

    def secret_key_problem(self) -> str | None:
        """SECRET_KEY set, but too short to stay secret: SECRET_KEY=short was accepted, and
        whoever guesses it can sign unsubscribe links for any address and read the Mailchimp
        credentials it encrypts. `serve` and `worker` refuse to start with one."""
        if not self.secret_key or len(self.secret_key) >= SECRET_KEY_MIN_LENGTH:
            return None
        return (f"SECRET_KEY: is {len(self.secret_key)} characters long; it needs at least "
                f"{SECRET_KEY_MIN_LENGTH}, or it can be guessed (it signs unsubscribe links and "
                f"encrypts Mailchimp credentials). Set a long random string, e.g. "
                f"{_example_key()} (links already sent with the short one stop working, and "
                "a Mailchimp connection has to be made again)")  # fmt: skip

    @field_validator("slack_bot_token", "slack_signing_secret", "slack_app_token",
                     "mailchimp_client_secret")  # fmt: skip
    @classmethod
    def _no_surrounding_space(cls, value: str) -> str:
        """A secret copied with its line's newline (a Kubernetes secret made from a file):
        every request's signature failed to match, with nothing but a 401 to show for it.
        Not SECRET_KEY: links already sent were signed with it exactly as it was."""
        return value.strip()

    @field_validator("team_leads")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        """Slack user ids, as Slack shows them: a lower-case id or a pasted mention is taken as
        the id it is; anything else is refused at start. A value like "@jane" was seeded as a
        lead nobody could be, for good (seeding is once), and could be removed from nowhere."""
        ids = []
        for item in value:
            for word in item.replace(";", " ").split():
                uid = word.strip().removeprefix("<@").removesuffix(">").split("|")[0].upper()
                if not USER_ID.match(uid):
                    raise ValueError(f"{word!r} is not a Slack user id (like U012AB3CD: in "
                                     "Slack, a person's profile > ⋮ > Copy member ID); "
                                     "separate ids with commas")  # fmt: skip
                ids.append(uid)
        return ids

    @field_validator("slack_file_hosts")
    @classmethod
    def _bare_hosts(cls, value: list[str]) -> list[str]:
        """Each entry as the bare lower-case host[:port] a file's URL is compared with: written
        as a URL (https://files.slack.com), in capitals or with a trailing slash, it matched no
        file's host, and every Slack file was refused "not on Slack's file host". Only the
        scheme, the case and trailing slashes are forgiven; anything else that isn't a host (a
        path, a wildcard) is refused at start: the match is never widened, since these hosts
        receive the bot token."""
        hosts = []
        for item in value:
            host = item.strip().lower()
            for scheme in ("https://", "http://"):
                host = host.removeprefix(scheme)
            host = host.rstrip("/")
            if not _HOST.fullmatch(host):
                raise ValueError(f"{item!r} is not a host name (like files.slack.com, the "
                                 "default; separate hosts with commas)")  # fmt: skip
            hosts.append(host)
        if not hosts:
            raise ValueError("names no host: Slack files can't be read at all (leave it unset "
                             "for Slack's, files.slack.com)")  # fmt: skip
        return hosts

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """An address links are made of: a host, no ?query or #fragment (a link would end up
        in them), a port that exists; kept in its ASCII form (see _ascii_url)."""
        if not value:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local test)")
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018  (raises for a port out of range)
        except ValueError:
            raise ValueError("has a port that isn't a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError("has no host (expected e.g. https://referrals.example.com)")
        if parts.query or parts.fragment or value.rstrip("/").endswith(("?", "#")):
            raise ValueError("must not hold a ?query or #fragment: links are made by adding "
                             "paths to it")  # fmt: skip
        return _ascii_url(parts).rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _blank_outbox_is_unset(cls, data: Any) -> Any:
        """OUTBOX_DIR= (a template's .env with blanks) is unset, as SMTP_URL= is: taken as
        given, the empty path was the folder the worker ran in, and every invite was
        written there and marked sent, nobody emailed."""
        if isinstance(data, dict):
            for key in [k for k in data if str(k).lower() == "outbox_dir"]:
                if isinstance(data[key], str) and not data[key].strip():
                    data = {k: v for k, v in data.items() if k != key}
        return data

    @field_validator("slack_api_url")
    @classmethod
    def _slack_api_url(cls, value: str) -> str:
        """Where Slack's Web API is (a test's fake, a proxy): an http(s) URL with a host,
        https unless on this machine (the bot token goes there), ending in "/" (the client
        joins method names to it: without it, `.../api` sent calls to `.../auth.test`). A
        URL without its scheme was taken for Slack out of reach: serve started, its
        /healthz said ok, and every Slack call failed."""
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https:// URL with a host (Slack's is "
                             "https://slack.com/api/, the default)")  # fmt: skip
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("must start with https:// (the bot token is sent there; http:// "
                             "only for this machine, a local test)")  # fmt: skip
        if parts.query or parts.fragment:
            raise ValueError("must not hold a ?query or #fragment")
        return value.strip().rstrip("/") + "/"

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        """Checked at start-up, not at the first invite (a worker would start and say "through
        None:default"); the parser's messages never quote the password."""
        if value.strip():
            from bot.email.send import parse_smtp_url  # aiosmtplib only when there is a URL

            parse_smtp_url(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        """The URL's shape, at start-up: a typo used to surface as SQLAlchemy's traceback
        ("Can't load plugin: sqlalchemy.dialects:postgresq"). Never quotes the URL (it may
        hold a password)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        from models.db import ASYNC_DRIVERS, PG_URL_PARAMETERS, sqlite_file

        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("isn't a database URL: sqlite:///path/to/file.db or "
                             "postgresql://user:password@host:5432/database") from None  # fmt: skip
        if url.drivername not in ASYNC_DRIVERS:
            raise ValueError(f"{url.drivername}:// is no database referral-bot knows: "
                             "sqlite:/// or postgresql://")  # fmt: skip
        if url.get_backend_name() == "sqlite":
            _a_sqlite_file(url.host or url.username or url.port, url.database or "",
                           sqlite_file(value))  # fmt: skip
        timeout = url.query.get("connect_timeout")
        if isinstance(timeout, str) and not timeout.replace(".", "", 1).isdigit():
            raise ValueError("?connect_timeout= must be a number of seconds")
        unknown = sorted(set(url.query) - PG_URL_PARAMETERS)
        if url.get_backend_name() in ("postgresql", "postgres") and unknown:
            raise ValueError(f"?{unknown[0]}= isn't a parameter referral-bot can pass to "
                             "PostgreSQL (it takes sslmode, connect_timeout, application_name "
                             "and channel_binding)")  # fmt: skip
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
    except UnicodeDecodeError as exc:  # pydantic-settings reads .env as UTF-8
        raise SettingsError(f"Invalid configuration: the .env file isn't UTF-8 text ({exc.reason} "
                            f"at byte {exc.start}); save it as UTF-8.") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(part) for part in err["loc"]).upper() or "settings"
            problems.append(f"  {name}: {_problem(name, err)}")
        raise SettingsError("Invalid configuration:\n" + "\n".join(problems)) from None


# pydantic's checks of a number's or a boolean's value: said as what the setting takes
_VALUE_CHECKS = frozenset({
    "int_parsing", "int_from_float", "int_type", "float_parsing", "float_type", "finite_number",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "bool_parsing",
    "bool_type"})  # fmt: skip
_SHOWN_VALUE = 40  # characters of a bad value quoted back


def _problem(name: str, err: Mapping[str, Any]) -> str:  # one of ValidationError.errors()
    """What is wrong with the setting `name`, in a sentence: a number's or a boolean's value
    as what the setting takes, with an example ("'abc' isn't a whole number from 1 to 65535
    (e.g. PORT=3000)", where pydantic said "Input should be a valid integer, unable to parse
    string as an integer"); a validator's own sentence without pydantic's "Value error, "."""
    field = Settings.model_fields.get(name.lower())
    if field is None or err["type"] not in _VALUE_CHECKS:
        return str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = repr(value[:_SHOWN_VALUE] + "…" if len(value) > _SHOWN_VALUE else value) if (
        isinstance(value, str)) else repr(value)  # fmt: skip
    return (f"{shown} isn't {_takes(field, finite=err['type'] == 'finite_number')} "
            f"(e.g. {name}={_example(field.default)})")


def _takes(field: FieldInfo, *, finite: bool) -> str:
    """What a number or boolean setting takes: "a whole number from 1 to 65535", "a number
    above 0", "true or false"."""
    if field.annotation is bool:
        return "true or false"
    kind = "a whole number" if field.annotation is int else "a number"
    if finite:
        kind = kind.replace("number", "finite number")
    bounds = {name: getattr(rule, name) for rule in field.metadata
              for name in ("ge", "gt", "le", "lt") if hasattr(rule, name)}  # fmt: skip
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {bounds['ge']} to {bounds['le']}"
    if "gt" in bounds:
        return f"{kind} above {bounds['gt']}"
    if "ge" in bounds:
        return f"{kind}, {bounds['ge']} or more"
    return kind


def _example(default: object) -> str:
    """A setting's default as it is written in the environment: 30, not 30.0; false for a
    switch that is on (what setting it is for)."""
    if isinstance(default, bool):
        return str(not default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def _loopback(host: str) -> bool:
    """Whether `host` is this machine: localhost, or a loopback address."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
