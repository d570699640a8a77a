"""The workspace's Mailchimp connection: connect (OAuth or API key), read, disconnect.

Credentials are sealed with SECRET_KEY before they touch the database and unsealed only to
make a call; they are never logged or shown back.

Disconnecting, or connecting another account, also takes the audiences out of the imports
not approved yet, in the same transaction: read through the connection the workspace let go,
their members would otherwise stay in the review to be approved (see drop_audiences_in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Row, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from bot.audit import Act, import_subject, record_in
from bot.home_refresh import queue_home_refresh
from bot.imports.batches import clear_staged, promote_after_failure_in
from bot.imports.staging import take_staging
from bot.mailchimp.api import (
    Credentials,
    MailchimpError,
    NoSuchHost,
    ReconnectNeeded,
    data_centre,
    no_lookup,
    ping,
    quick_ping,
    resolves,
)
from bot.mailchimp.secrets import CredentialsUnreadable, SecretKeyMissing, seal, unseal
from bot.notify import BATCH_CHANGED, enqueue_report_in
from models import (
    BatchStatus,
    Database,
    ImportBatch,
    ImportSource,
    MailchimpAccount,
    SourceKind,
    SourceStatus,
)
from models.clock import as_utc, utcnow
from models.db import upsert


class NotConnected(MailchimpError):
    """This workspace has no Mailchimp account connected."""


class ConnectionChanged(MailchimpError):
    """A Connect opened on one connection (or on none) was submitted after another lead
    connected an account, or disconnected the one it was opened on: nothing was saved.
    `now` is what is connected (None: nothing), for the person to be told."""

    def __init__(self, now: Connection | None) -> None:
        super().__init__("Mailchimp was connected or disconnected in the meantime: nothing "
                         "was saved.")  # fmt: skip
        self.now = now


@dataclass(frozen=True, slots=True)
class Connection:
    """What people may see of a connection (never the secret)."""

    account_name: str
    login_email: str
    dc: str
    auth: str
    connected_by: str
    connected_at: object
    # which connection this is: a Disconnect drawn for it disconnects it, not one made since
    stamp: Stamp
    refused_at: datetime | None = None  # Mailchimp refused these credentials since then
    # the credentials can't be read with this process's SECRET_KEY (changed, or unset)
    unreadable: bool = False


# What a key Mailchimp refuses when it is connected is told (the Slack form, the shell).
KEY_REFUSED = ("Mailchimp didn't accept this key. Copy it again from Profile › Extras › API "
               "keys: a deleted or disabled key is refused.")  # fmt: skip


async def connect_api_key(db: Database, team_id: str, api_key: str, *, user: str,
                          secret_key: str, api_url: str,
                          seen: Seen | None = None) -> Connection:  # fmt: skip
    """Check the key with a ping, then keep it (sealed). `api_url` is a template with {dc};
    `seen`: what the key form was opened on (save)."""
    key = api_key.strip()
    dc = data_centre(key)
    if dc is None:
        raise MailchimpError("That doesn't look like a Mailchimp API key: it ends with the data "
                             "centre after a dash, e.g. 0123abcd...-us21.")  # fmt: skip
    creds = Credentials(api_url.format(dc=dc), "api_key", key)
    try:
        await ping(creds, host_must_exist=True)
    except NoSuchHost:  # at once: retried, a mistyped key took 15 s to say "try again later"
        if await _offline(dc, api_url):
            raise MailchimpError(no_lookup("no Mailchimp host name can be looked up from "
                                           "here")) from None  # fmt: skip
        raise MailchimpError(f"There's no Mailchimp data centre '{dc}': check the part of the "
                             "key after the dash.") from None
    return await save(db, team_id, creds, dc=dc, account_name="", login_email="", user=user,
                      secret_key=secret_key, seen=seen)  # fmt: skip


# A data centre as Mailchimp names them (us1, us21...), and one that surely exists: a key
# ending in such a name whose host doesn't resolve is as likely a machine offline as a typo.
_DATA_CENTRE = re.compile(r"us[0-9]{1,3}")
KNOWN_DC = "us1"


async def _offline(dc: str, api_url: str) -> bool:
    """The key's data centre looks real, and its host failing to resolve is this machine's
    doing: Mailchimp's data centre that surely exists (KNOWN_DC) doesn't resolve either.
    Offline, the resolver said every name doesn't exist, and `mailchimp connect` with a
    key of us21 said "There's no Mailchimp data centre 'us21'"."""
    if not _DATA_CENTRE.fullmatch(dc):
        return False
    known = urlsplit(api_url.format(dc=KNOWN_DC)).hostname
    return not known or not await resolves(known)


async def save(db: Database, team_id: str, creds: Credentials, *, dc: str, account_name: str,
               login_email: str, user: str, secret_key: str,
               seen: Seen | None = None) -> Connection:  # fmt: skip
    """Keep the connection, replacing the workspace's; when it is another account's than the
    one it replaces, the drafts' audiences go (drop_audiences_in), in the same transaction.

    `seen`: what the Connect was opened on (a key form, a sign-in started from Slack). It
    replaces only that: a form opened on "not connected" and submitted after another lead
    connected an account replaced theirs without a word. The write is one conditional
    statement; ConnectionChanged (nothing written) when the connection is another now. The
    same account as is connected now is saved again whatever `seen` names: that replaces
    nobody's. Without it, whatever is connected (the shell's `mailchimp connect`)."""
    row = MailchimpAccount(team_id=team_id, account_name=account_name[:200],
                           login_email=login_email[:320], dc=dc, api_endpoint=creds.api_endpoint,
                           auth=creds.auth, secret=seal(secret_key, creds.secret),
                           connected_by=user, connected_at=utcnow())  # fmt: skip
    what = f"{account_name} ({login_email})" if account_name else f"API key, data centre {dc}"
    async with db.begin() as conn:
        drafts = await hold_drafts_in(conn, team_id)
        before = await _replaced_in(conn, team_id)
        another = before is not None and not _same_account(before, row, creds.secret,
                                                           secret_key)  # fmt: skip
        if before is not None and not another:
            # the same account again is the same connection, its credentials renewed: it
            # keeps its stamp, so an audience being read under it goes on (it failed as if
            # Mailchimp had been disconnected, though the drafts keep what it read)
            row.connected_by, row.connected_at = before.connected_by, before.connected_at
            if seen is not None:
                # nobody's account is replaced, whatever the Connect was opened on: a form
                # opened on "not connected" while another lead connected this same account
                # was refused, and told to disconnect it to connect it. Written over the
                # connection as read (held, on PostgreSQL), still one conditional statement
                seen = Seen(Stamp(before.api_endpoint, before.connected_at))
        if not await _write_in(conn, row.model_dump(), seen):
            raise ConnectionChanged(await _now_in(conn, team_id))
        dropped = _dropped(await drop_audiences_in(conn, team_id, drafts if another else []))
        await record_in(conn, team_id, user, Act.MAILCHIMP_CONNECTED, "Mailchimp",
                        "; ".join(part for part in (what, dropped) if part))  # fmt: skip
    return _public(row)


async def _write_in(conn: AsyncConnection, values: dict[str, Any], seen: Seen | None) -> bool:
    """Write the connection `values` in one statement, only over what `seen` names (nothing
    connected: an insert that a row there makes a no-op; a connection: an update of that
    one); without `seen`, over whatever is there. Whether it was written. One statement:
    two connections at once (the OAuth callback and a key) both land, the later one kept,
    where a read-then-insert failed the second on the primary key."""
    team = col(MailchimpAccount.team_id)
    changes = {k: v for k, v in values.items() if k != "team_id"}
    if seen is not None and seen.stamp is not None:
        written = update(MailchimpAccount).where(
            *seen.stamp.where(values["team_id"])).values(**changes)
        return (await conn.execute(written.returning(team))).first() is not None  # fmt: skip
    insert = upsert(conn, MailchimpAccount).values(**values)
    if seen is None:
        insert = insert.on_conflict_do_update(index_elements=["team_id"], set_=changes)
    else:
        insert = insert.on_conflict_do_nothing(index_elements=["team_id"])
    return (await conn.execute(insert.returning(team))).first() is not None


async def _now_in(conn: AsyncConnection, team_id: str) -> Connection | None:
    """What is connected, read in the caller's transaction (a refused Connect's to tell)."""
    row = (await conn.execute(select(*_SHOWN).where(
        col(MailchimpAccount.team_id) == team_id))).first()  # fmt: skip
    return None if row is None else _public(MailchimpAccount(**row._mapping, secret=""))


async def _replaced_in(conn: AsyncConnection, team_id: str) -> Row[Any] | None:
    """The connection about to be replaced (PostgreSQL: held until `conn` commits, taken
    after the drafts, as staging takes them: lock_batch, then stamp_in)."""
    query = select(MailchimpAccount.api_endpoint, MailchimpAccount.auth,
                   MailchimpAccount.account_name, MailchimpAccount.login_email,
                   MailchimpAccount.secret, MailchimpAccount.connected_by,
                   MailchimpAccount.connected_at).where(col(MailchimpAccount.team_id) == team_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await conn.execute(query)).first()


def _same_account(before: Row[Any], after: MailchimpAccount, secret: str,
                  secret_key: str) -> bool:  # fmt: skip
    """Whether the new credentials are of the account the old ones were, as far as can be
    told without asking Mailchimp: the same API endpoint and kind, and the same key (another
    key may be another account's: an API key's endpoint is its data centre's), or a sign-in
    to the same account name by the same login (a Reconnect's new token). Unsure is "no":
    drafts lose their audiences rather than keep another account's members."""
    if (before.api_endpoint, before.auth) != (after.api_endpoint, after.auth):
        return False
    if after.auth == "oauth":
        return bool(after.account_name) and (before.account_name, before.login_email) == (
            after.account_name, after.login_email)  # fmt: skip
    try:
        return unseal(secret_key, before.secret) == secret
    except (CredentialsUnreadable, SecretKeyMissing):
        return False


# the columns _public shows
_SHOWN = (col(MailchimpAccount.team_id), col(MailchimpAccount.account_name),
          col(MailchimpAccount.login_email), col(MailchimpAccount.dc),
          col(MailchimpAccount.api_endpoint), col(MailchimpAccount.auth),
          col(MailchimpAccount.connected_by), col(MailchimpAccount.connected_at),
          col(MailchimpAccount.refused_at))  # fmt: skip


def _public(row: MailchimpAccount) -> Connection:
    return Connection(row.account_name, row.login_email, row.dc, row.auth, row.connected_by,
                      row.connected_at, Stamp(row.api_endpoint, row.connected_at),
                      refused_at=row.refused_at)  # fmt: skip


async def connection(db: Database, team_id: str, *,
                     secret_key: str | None = None) -> Connection | None:  # fmt: skip
    """What people may see of the workspace's connection. With `secret_key`, whether its
    credentials can be read with it (`unreadable`): App Home said "Connected" of credentials
    a changed SECRET_KEY had made useless, while the import form said they can't be read."""
    async with db.session() as session:
        row = await session.get(MailchimpAccount, team_id)
    if row is None:
        return None
    public = _public(row)
    if secret_key is not None:
        try:
            unseal(secret_key, row.secret)
        except (CredentialsUnreadable, SecretKeyMissing):
            return replace(public, unreadable=True)
    return public


@dataclass(frozen=True, slots=True)
class Stamp:
    """Which connection credentials were read from: a Disconnect, or a connection to another
    account, while they are used makes another one (or none) the workspace's."""

    api_endpoint: str
    connected_at: datetime

    def where(self, team_id: str) -> tuple[ColumnElement[bool], ...]:
        """The WHERE of a write to `team_id`'s connection only while it is the one this
        names: a write of a stale Connect, Disconnect or health check leaves a connection
        made since (or none) as it is."""
        return (col(MailchimpAccount.team_id) == team_id,
                col(MailchimpAccount.api_endpoint) == self.api_endpoint,
                col(MailchimpAccount.connected_at) == self.connected_at)  # fmt: skip

    def text(self) -> str:
        """The Stamp as a button's value or a state's field carries it (`read`)."""
        return f"{self.api_endpoint} {as_utc(self.connected_at).isoformat()}"

    @staticmethod
    def read(text: str) -> Stamp | None:
        """The Stamp `text` wrote; None when `text` names none."""
        endpoint, _, when = text.rpartition(" ")
        try:
            return Stamp(endpoint, as_utc(datetime.fromisoformat(when))) if endpoint else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Seen:
    """What a Connect was opened on: nothing connected (`stamp` None), or the connection
    `stamp` names. It connects only over that (save): another lead's connection made since
    is theirs to keep until someone disconnects it."""

    stamp: Stamp | None

    def text(self) -> str:
        """As a form's metadata, a button's value or the sign-in's state carries it: "none"
        for nothing connected, else the Stamp's text (`read`)."""
        return NOTHING_SEEN if self.stamp is None else self.stamp.text()

    @staticmethod
    def read(text: object) -> Seen | None:
        """The Seen `text` wrote; None when it names none (a form or button drawn before
        they carried it, or not ours)."""
        if text == NOTHING_SEEN:
            return Seen(None)
        stamp = Stamp.read(text) if isinstance(text, str) else None
        return None if stamp is None else Seen(stamp)

    @staticmethod
    def of(conn: Connection | None) -> Seen:
        return Seen(None if conn is None else conn.stamp)


NOTHING_SEEN = "none"  # Seen's text for "nothing connected"


async def credentials(db: Database, team_id: str, secret_key: str) -> Credentials:
    return (await stamped_credentials(db, team_id, secret_key))[0]


async def stamped_credentials(db: Database, team_id: str, secret_key: str
                              ) -> tuple[Credentials, Stamp]:  # fmt: skip
    """The credentials, with the Stamp of the connection they came from."""
    async with db.session() as session:
        row = await session.get(MailchimpAccount, team_id)
    if row is None:
        raise NotConnected("Mailchimp isn't connected: connect it with /referral mailchimp (or "
                           "`referral-bot mailchimp connect`, which asks for the key).")
    creds = Credentials(row.api_endpoint, row.auth, unseal(secret_key, row.secret))
    return creds, Stamp(row.api_endpoint, row.connected_at)


async def stamp_of(db: Database, team_id: str, creds: Credentials) -> Stamp | None:
    """The Stamp of the connection `creds` were read from, for a caller handed them (the
    shell's import, whose credentials were read a moment before, to list the audiences):
    the connection now, if it has their endpoint and kind; MailchimpError if another one
    does (connected since). None when none is saved: credentials the caller made itself."""
    async with db.session() as session:
        row = await session.get(MailchimpAccount, team_id)
    if row is None:
        return None
    if (row.api_endpoint, row.auth) != (creds.api_endpoint, creds.auth):
        raise MailchimpError("Mailchimp was connected to another account just now: import "
                             "again to read its audiences.")  # fmt: skip
    return Stamp(row.api_endpoint, row.connected_at)


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
    changed = (col(MailchimpAccount.refused_at).is_(None) if refused
               else col(MailchimpAccount.refused_at).is_not(None))  # fmt: skip
    async with db.begin() as conn:
        done = await conn.execute(update(MailchimpAccount).where(*stamp.where(team_id), changed)
                                  .values(refused_at=utcnow() if refused else None))  # fmt: skip
    return done.rowcount > 0


async def refused_from_now_on(db: Database, team_id: str, stamp: Stamp | None) -> None:
    """Mailchimp refused the credentials of connection `stamp` while the bot worked with it
    (the import form's lists, a chosen list, an audience's import): App Home says so from
    now on, and the tabs open now are refreshed by a worker as after a change from the shell
    (the caller may be a worker, with no Slack client of its own)."""
    if stamp is not None and await note_refusal(db, team_id, stamp, refused=True):
        await queue_home_refresh(db, team_id)


async def disconnect(db: Database, team_id: str, *, user: str = "cli",
                     only: Stamp | None = None) -> Connection | None:  # fmt: skip
    """Forget the credentials; the drafts' audiences go with them (drop_audiences_in), in the
    same transaction. `only`: the connection a Disconnect was drawn for, forgotten only if it
    is still the one connected (one conditional statement): a stale click disconnected an
    account another lead connected since. Without it, whatever is connected now (the shell).
    Returns what was forgotten, None when nothing was."""
    where = (col(MailchimpAccount.team_id) == team_id,) if only is None else only.where(team_id)
    async with db.begin() as conn:
        drafts = await hold_drafts_in(conn, team_id)
        gone = (await conn.execute(delete(MailchimpAccount).where(*where).returning(
            *_SHOWN))).first()  # fmt: skip
        if gone is None:
            return None
        dropped = await drop_audiences_in(conn, team_id, drafts)
        await record_in(conn, team_id, user, Act.MAILCHIMP_DISCONNECTED, "Mailchimp",
                        _dropped(dropped))  # fmt: skip
    return _public(MailchimpAccount(**gone._mapping, secret=""))


# ---- the drafts' audiences, when the connection goes ----------------------------------------

# what a draft's audience says of it: being read, or read already
DISCONNECTED = ("Mailchimp was disconnected (or connected to another account) while this "
                "audience was read, so none of its members were taken.")  # fmt: skip
DROPPED = ("Mailchimp was disconnected (or connected to another account) before this import "
           "was approved, so none of this audience's members will be imported: add it again "
           "once the right account is connected.")  # fmt: skip
# the audiences of a draft read through the connection, or being read: not failed, not removed
_LIVE_AUDIENCES = (col(ImportSource.kind) == SourceKind.MAILCHIMP,
                   col(ImportSource.removed).is_(False),
                   col(ImportSource.status).in_([SourceStatus.PENDING, SourceStatus.PARSED]))


async def hold_drafts_in(conn: AsyncConnection, team_id: str) -> list[int]:
    """Take the workspace's draft imports with audiences (read or being read), before the
    connection's row: a change of them starts with the batch, and staging an audience takes
    the batch, then the connection (lock_batch, then stamp_in). A write that changes nothing,
    like lock_batch's: on PostgreSQL a draft approved meanwhile is left out (it was approved
    first, and imports what it held), on SQLite it takes the write lock first."""
    audiences = select(ImportSource.batch_id).where(col(ImportSource.team_id) == team_id,
                                                    *_LIVE_AUDIENCES)  # fmt: skip
    held = await conn.execute(
        update(ImportBatch)
        .where(col(ImportBatch.team_id) == team_id, col(ImportBatch.status) == BatchStatus.DRAFT,
               col(ImportBatch.id).in_(audiences))
        .values(updated_at=ImportBatch.updated_at)
        .returning(ImportBatch.id))  # fmt: skip
    return sorted(int(batch_id) for (batch_id,) in held)


async def drop_audiences_in(conn: AsyncConnection, team_id: str,
                            drafts: list[int]) -> list[int]:  # fmt: skip
    """The connection the drafts' audiences were read through (or are being read through)
    is gone: in the caller's transaction they fail, saying so (DISCONNECTED, DROPPED), their
    staged rows go (but those removed by hand), the duplicates elsewhere of their members are
    decided again, and the reviews are queued to be redrawn. Nobody approves people of an
    account the workspace let go: the check while staging (importing.stage_audience) came
    too late for an audience read already. `drafts`: from hold_drafts_in. Returns the
    drafts changed."""
    if not drafts:
        return []
    failed = (await conn.execute(
        update(ImportSource)
        .where(col(ImportSource.team_id) == team_id, col(ImportSource.batch_id).in_(drafts),
               *_LIVE_AUDIENCES)
        .values(status=SourceStatus.FAILED, error=case(
            (col(ImportSource.status) == SourceStatus.PENDING, DISCONNECTED), else_=DROPPED))
        .returning(ImportSource.id, ImportSource.batch_id))).all()  # fmt: skip
    if not failed:
        return []
    await take_staging(conn)  # SQLite: the staging file's write lock before reading it
    for source_id, batch_id in sorted(failed):
        await promote_after_failure_in(conn, team_id, int(batch_id), int(source_id))
        await clear_staged(conn, team_id, int(batch_id), int(source_id), keep_removed=True)
    changed = sorted({int(batch_id) for _, batch_id in failed})
    # a change of the draft like any other (lock_batch's): an Approve on a review drawn
    # before it imports nothing and says so; it imported fewer than it showed, without a word
    await conn.execute(
        update(ImportBatch)
        .where(col(ImportBatch.team_id) == team_id, col(ImportBatch.id).in_(changed))
        .values(updated_at=utcnow(), revision=col(ImportBatch.revision) + 1))  # fmt: skip
    for batch_id in changed:
        await enqueue_report_in(conn, team_id, batch_id, BATCH_CHANGED)
    return changed


def _dropped(drafts: list[int]) -> str:
    """For the audit log: the drafts whose audiences went ("" for none)."""
    if not drafts:
        return ""
    return "audiences taken out of " + ", ".join(import_subject(b) for b in drafts)
