"""The workspace's Mailchimp connection: connect (OAuth or API key), read, disconnect.

Credentials are sealed with SECRET_KEY before they touch the database and unsealed only to
make a call; they are never logged or shown back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from bot.audit import Act, record_in
from bot.home_refresh import queue_home_refresh
from bot.mailchimp.api import (
    Credentials,
    MailchimpError,
    ReconnectNeeded,
    data_centre,
    ping,
    quick_ping,
)
from bot.mailchimp.secrets import CredentialsUnreadable, SecretKeyMissing, seal, unseal
from models import Database, MailchimpAccount
from models.clock import utcnow
from models.db import upsert


class NotConnected(MailchimpError):
    """This workspace has no Mailchimp account connected."""


@dataclass(frozen=True, slots=True)
class Connection:
    """What people may see of a connection (never the secret)."""

    account_name: str
    login_email: str
    dc: str
    auth: str
    connected_by: str
    connected_at: object
    refused_at: datetime | None = None  # Mailchimp refused these credentials since then


async def connect_api_key(db: Database, team_id: str, api_key: str, *, user: str,
                          secret_key: str, api_url: str) -> Connection:  # fmt: skip
    """Check the key with a ping, then keep it (sealed). `api_url` is a template with {dc}."""
    key = api_key.strip()
    dc = data_centre(key)
    if dc is None:
        raise MailchimpError("That doesn't look like a Mailchimp API key: it ends with the data "
                             "centre after a dash, e.g. 0123abcd...-us21.")  # fmt: skip
    creds = Credentials(api_url.format(dc=dc), "api_key", key)
    await ping(creds)
    return await save(db, team_id, creds, dc=dc, account_name="", login_email="", user=user,
                      secret_key=secret_key)  # fmt: skip


async def save(db: Database, team_id: str, creds: Credentials, *, dc: str, account_name: str,
               login_email: str, user: str, secret_key: str) -> Connection:  # fmt: skip
    row = MailchimpAccount(team_id=team_id, account_name=account_name[:200],
                           login_email=login_email[:320], dc=dc, api_endpoint=creds.api_endpoint,
                           auth=creds.auth, secret=seal(secret_key, creds.secret),
                           connected_by=user, connected_at=utcnow())  # fmt: skip
    what = f"{account_name} ({login_email})" if account_name else f"API key, data centre {dc}"
    values = row.model_dump()
    async with db.begin() as conn:
        # one statement: two connections at once (the OAuth callback and a key) both land,
        # the later one kept; a read-then-insert failed the second on the primary key
        insert = upsert(conn, MailchimpAccount).values(**values)
        await conn.execute(insert.on_conflict_do_update(
            index_elements=["team_id"],
            set_={k: v for k, v in values.items() if k != "team_id"}))  # fmt: skip
        await record_in(conn, team_id, user, Act.MAILCHIMP_CONNECTED, "Mailchimp", what)
    return _public(row)


def _public(row: MailchimpAccount) -> Connection:
    return Connection(row.account_name, row.login_email, row.dc, row.auth, row.connected_by,
                      row.connected_at, row.refused_at)  # fmt: skip


async def connection(db: Database, team_id: str) -> Connection | None:
    async with db.session() as session:
        row = await session.get(MailchimpAccount, team_id)
    return _public(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class Stamp:
    """Which connection credentials were read from: a Disconnect, or a connection to another
    account, while they are used makes another one (or none) the workspace's."""

    api_endpoint: str
    connected_at: datetime


async def credentials(db: Database, team_id: str, secret_key: str) -> Credentials:
    return (await stamped_credentials(db, team_id, secret_key))[0]


async def stamped_credentials(db: Database, team_id: str, secret_key: str
                              ) -> tuple[Credentials, Stamp]:  # fmt: skip
    """The credentials, with the Stamp of the connection they came from."""
    async with db.session() as session:
        row = await session.get(MailchimpAccount, team_id)
    if row is None:
        raise NotConnected("Mailchimp isn't connected: connect it with /referral mailchimp "
                           "(or `referral-bot mailchimp connect --api-key KEY`).")  # fmt: skip
    creds = Credentials(row.api_endpoint, row.auth, unseal(secret_key, row.secret))
    return creds, Stamp(row.api_endpoint, row.connected_at)


async def stamp_in(conn: AsyncConnection, team_id: str) -> Stamp | None:
    """The Stamp of the connection now (None: disconnected), held until `conn` commits
    (PostgreSQL: a Disconnect or a new connection waits; SQLite has one writer)."""
    query = select(MailchimpAccount.api_endpoint, MailchimpAccount.connected_at).where(
        col(MailchimpAccount.team_id) == team_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = (await conn.execute(query)).first()
    return None if row is None else Stamp(row[0], row[1])


class Health(StrEnum):
    """What Mailchimp makes of the saved credentials now (`check_credentials`)."""

    WORKING = "working"
    REFUSED = "refused"  # Mailchimp answered 401/403: the token or key was revoked or deleted
    UNREADABLE = "unreadable"  # they don't decrypt (SECRET_KEY changed, or is missing)
    UNANSWERED = "unanswered"  # Mailchimp didn't answer in time, or failed: unknown
    DISCONNECTED = "disconnected"  # nothing is saved (any more)


@dataclass(frozen=True, slots=True)
class Checked:
    health: Health
    reason: str = ""  # for UNANSWERED: what went wrong, in words for people
    changed: bool = False  # what App Home says of the connection changed (note_refusal)


async def check_credentials(db: Database, team_id: str, secret_key: str) -> Checked:
    """Whether Mailchimp accepts the saved credentials, by one quick ping.

    A connection whose token was revoked (or key deleted) stays saved and looks connected;
    only Mailchimp can tell, so the status asks it rather than saying "connected" and
    offering no way to reconnect."""
    try:
        creds, stamp = await stamped_credentials(db, team_id, secret_key)
    except NotConnected:
        return Checked(Health.DISCONNECTED)
    except (CredentialsUnreadable, SecretKeyMissing):
        return Checked(Health.UNREADABLE)
    try:
        await quick_ping(creds)
    except ReconnectNeeded:
        return Checked(Health.REFUSED, changed=await note_refusal(db, team_id, stamp,
                                                                  refused=True))
    except MailchimpError as exc:
        return Checked(Health.UNANSWERED, str(exc))
    return Checked(Health.WORKING, changed=await note_refusal(db, team_id, stamp, refused=False))


async def note_refusal(db: Database, team_id: str, stamp: Stamp, *, refused: bool) -> bool:
    """Record that Mailchimp refused (or, `refused=False`, accepted) the credentials of the
    connection `stamp` names, for App Home to say without asking Mailchimp; a connection made
    since (a reconnect) is left as it is. Writes only when it changes: whether it did."""
    where = (col(MailchimpAccount.team_id) == team_id,
             col(MailchimpAccount.api_endpoint) == stamp.api_endpoint,
             col(MailchimpAccount.connected_at) == stamp.connected_at)  # fmt: skip
    changed = (col(MailchimpAccount.refused_at).is_(None) if refused
               else col(MailchimpAccount.refused_at).is_not(None))  # fmt: skip
    async with db.begin() as conn:
        done = await conn.execute(update(MailchimpAccount).where(*where, changed)
                                  .values(refused_at=utcnow() if refused else None))  # fmt: skip
    return done.rowcount > 0


async def refused_from_now_on(db: Database, team_id: str, stamp: Stamp | None) -> None:
    """Mailchimp refused the credentials of connection `stamp` while the bot worked with it
    (the import form's lists, a chosen list, an audience's import): App Home says so from
    now on, and the tabs open now are refreshed by a worker as after a change from the shell
    (the caller may be a worker, with no Slack client of its own)."""
    if stamp is not None and await note_refusal(db, team_id, stamp, refused=True):
        await queue_home_refresh(db, team_id)


async def disconnect(db: Database, team_id: str, *, user: str = "cli") -> bool:
    async with db.begin() as conn:
        result = await conn.execute(
            delete(MailchimpAccount).where(col(MailchimpAccount.team_id) == team_id)
        )
        if result.rowcount == 1:
            await record_in(conn, team_id, user, Act.MAILCHIMP_DISCONNECTED, "Mailchimp")
    return result.rowcount == 1
