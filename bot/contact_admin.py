"""Finding one contact among a million, showing everything we hold about it, and the few
changes a team lead may make to it: take it out of a segment, unsubscribe or resubscribe it,
delete it everywhere.

Search is a prefix match on the email address, the first name or the last name, each
answered by its own index (`uq_contact_team_email`, `ix_contact_first_name_prefix`,
`ix_contact_last_name_prefix`) as a range `prefix <= key < prefix || U+10FFFF`: no lookup
reads the whole table, however big the workspace. Each lookup keeps only its first rows by
email, so a short prefix that matches half the names still sorts little. Names are compared
with the database's `lower()`: PostgreSQL's knows every alphabet; SQLite's only folds A-Z, so
there a prefix is looked up in each case its other letters may have ("élo" as "élo" and
"Élo"): "élo", "ÉLO" and "Élo" all find Élodie on both.

Every change is one transaction: a conditional UPDATE or DELETE whose result decides (a
double click or a race is told the real state), with its audit entry. Nothing here knows of
Slack; `ContactError` messages are for people and quote emails and names raw.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import Act, record_in
from bot.campaigns.consent import redraw_reports_in, stop_invites_in
from bot.campaigns.service import enroll_when_exclusion_ends_in
from bot.casefold import spellings
from bot.ids import IDS_PER_QUERY, digits
from bot.imports.addresses import InvalidEmail, email_key, normalize_email
from bot.words import listed, plural, quoted
from models import Contact, Database, InvitedAddress, RetiredCode, SuppressedAddress
from models.clock import utcnow
from models.db import upsert
from models.locks import lock_contacts

PAGE = 10
MAX_QUERY = 100  # characters of a search that count; the rest is ignored
TOP = "\U0010ffff"  # sorts after every character: `prefix || TOP` bounds a prefix range
GONE = "That contact doesn't exist in this workspace (it may have been deleted)."
# Joiners a search keeps between letters: Persian words and emoji (👩‍💻) are spelt with them
_JOINERS = "\u200c\u200d"



class ContactError(Exception):
    """A contact can't be found or changed as asked; the message says why, for people."""


class ContactGone(ContactError):
    """The contact isn't (or is no longer) in this workspace: GONE."""

    def __init__(self) -> None:
        super().__init__(GONE)


@dataclass(frozen=True, slots=True)
class Hit:
    id: int
    email: str
    first_name: str
    last_name: str
    subscribed: bool
    segments: tuple[str, ...]  # its static segments' names (every contact is in All Customers)
    # they (or a lead) unsubscribed, which no import undoes; not subscribed without it: an
    # import said they accept no marketing, and a later one may say yes
    unsubscribed: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    query: str
    offset: int  # how many matches came before (for "11–20")
    hits: list[Hit]
    more: bool  # another page follows
    after: str = ""  # the last hit's address key: the next page starts after it


@dataclass(frozen=True, slots=True)
class SegmentRef:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class CampaignRef:
    name: str
    code: str
    clicks: int
    invite_state: str | None  # None: no invite row (e.g. enrolled before invites existed)
    invite_reason: str | None


@dataclass(frozen=True, slots=True)
class Card:
    """Everything the contact's card shows."""

    id: int
    email: str
    first_name: str
    last_name: str
    locale: str | None  # None: the workspace default
    default_locale: str
    subscribed: bool
    unsubscribed_at: datetime | None  # set when they (or a lead) unsubscribed: sticky
    created_at: datetime
    batch_id: int | None  # the import that created it
    source: str
    segments: list[SegmentRef]
    campaigns: list[CampaignRef]


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a deletion took with it, counted from the rows deleted."""

    email: str
    segments: int
    advocates: int  # = referral links retired
    invites: int


def subject(email: str) -> str:
    return f"contact {email}"


# ---- search ---------------------------------------------------------------------------------


MAX_NAME_SPLITS = 3  # "mary ann van der berg": where the first name may end, tried at most


@dataclass(frozen=True, slots=True)
class SearchShape:
    """How many spellings each name part is looked up by (see `spellings`)."""

    names: int  # the whole query, in the first-name and last-name indexes
    # for each place the first name may end (after the first word, the second, ...): the
    # spellings of the words before it (first-name index) and of the rest (last name)
    splits: tuple[tuple[int, int], ...] = ()


def _name_range(column: str, param: str, collate: str) -> str:
    """`column` starts with :param, case-insensitively, written exactly as its index is."""
    key = f"lower({column}){collate}"
    low = f"lower(CAST(:{param} AS TEXT)){collate}"
    high = f"(lower(CAST(:{param} AS TEXT)) || CAST(:top AS TEXT)){collate}"
    return f"{key} >= {low} AND {key} < {high}"


def search_sql(dialect: str, shape: SearchShape) -> str:
    """The search: one indexed range lookup per column and spelling, each keeping its first
    :k rows by email, then those few rows ordered by email and paged.

    PostgreSQL's indexes compare `lower(name) COLLATE "C"` (bytewise: a range is exactly a
    prefix whatever the database's collation); SQLite is told which index to use, since its
    planner would rather walk the email index to skip a sort, i.e. read the whole workspace.
    """
    pg = dialect == "postgresql"
    collate = ' COLLATE "C"' if pg else ""

    def using(index: str) -> str:
        return "" if pg else f" INDEXED BY {index}"

    branches = [
        # substr: exact even if the email index's collation isn't bytewise
        "SELECT id FROM (SELECT id FROM contact WHERE team_id = :t AND email_key >= :e "
        "AND email_key < :e_top AND substr(email_key, 1, :e_len) = :e AND email_key > :after "
        "ORDER BY email_key LIMIT :k) by_email",
    ]
    for column in ("first_name", "last_name"):
        index = f"ix_contact_{column}_prefix"
        branches += [f"SELECT id FROM (SELECT id FROM contact{using(index)} WHERE team_id = :t "
                     f"AND {_name_range(column, f'q{i}', collate)} AND email_key > :after "
                     f"ORDER BY email_key LIMIT :k) by_{column}_{i}"
                     for i in range(shape.names)]  # fmt: skip
    # "ada love": first name "ada…" and last name "love…"; "mary ann smi": also "mary ann" and
    # "smi…" (a first name of two words)
    for s, (firsts, lasts) in enumerate(shape.splits):
        rest = " OR ".join(f"({_name_range('last_name', f'l{s}_{i}', collate)})"
                           for i in range(lasts))  # fmt: skip
        branches += [
            "SELECT id FROM (SELECT id FROM contact"
            f"{using('ix_contact_first_name_prefix')} WHERE team_id = :t "
            f"AND {_name_range('first_name', f'f{s}_{i}', collate)} AND ({rest}) "
            "AND email_key > :after "
            f"ORDER BY email_key LIMIT :k) by_full_name_{s}_{i}"
            for i in range(firsts)
        ]  # fmt: skip
    hits = " UNION ".join(branches)
    return ("SELECT c.id, c.email, c.first_name, c.last_name, c.subscribed, "
            "c.unsubscribed_at IS NOT NULL, c.email_key FROM contact c "
            f"WHERE c.team_id = :t AND c.id IN ({hits}) AND c.email_key > :after "
            "ORDER BY c.email_key, c.id LIMIT :limit OFFSET :offset")  # fmt: skip


def search_params(team_id: str, query: str, dialect: str, *, offset: int = 0, limit: int = PAGE,
                  after: str = "") -> tuple[dict[str, Any], SearchShape]:  # fmt: skip
    """The search's parameters, and how many spellings of each part `search_sql` looks up.
    `after`: an address key; only matches after it (the rows skipped by `offset` then are
    not read)."""
    q = searched(query)[:MAX_QUERY]
    # a whole address as an import stores it ("ada@xn--bcher-kva.de": ada@bücher.de); a
    # prefix of one is matched as typed
    e = address_key(q) if "@" in q else q.casefold()
    params: dict[str, Any] = {"t": team_id, "q": q, "e": e, "e_top": e + TOP, "e_len": len(e),
                              "top": TOP, "k": offset + limit + 1, "limit": limit + 1,
                              "offset": offset, "after": after}  # fmt: skip
    fold_all = dialect == "postgresql"

    def spelt(prefix: str, words: list[str]) -> int:
        params.update({f"{prefix}{i}": word for i, word in enumerate(words)})
        return len(words)

    names = spelt("q", spellings(q, fold_all=fold_all))
    words = q.split(" ")
    splits = []
    for s, cut in enumerate(range(1, min(len(words), MAX_NAME_SPLITS + 1))):
        first, rest = " ".join(words[:cut]), " ".join(words[cut:])
        splits.append((spelt(f"f{s}_", spellings(first, fold_all=fold_all)),
                       spelt(f"l{s}_", spellings(rest, fold_all=fold_all))))  # fmt: skip
    return params, SearchShape(names, tuple(splits))


def searched(query: str) -> str:
    """The query as it is searched for: without the characters that show nothing (format
    characters, Unicode's Cf: a zero-width space, a soft hyphen, a direction mark pasted
    with a name; joiners only between letters), spacing collapsed. Blank ("") when nothing
    shown is left: a zero-width space alone was searched for, not refused as blank."""
    if query.isascii():  # no format character: all are beyond ASCII
        return " ".join(query.split())
    shown = "".join(c for c in query if c in _JOINERS or unicodedata.category(c) != "Cf")
    return " ".join(w for w in (w.strip(_JOINERS) for w in shown.split()) if w)


async def search(db: Database, team_id: str, query: str, *, offset: int = 0,
                 limit: int = PAGE, after: str = "") -> Page:  # fmt: skip
    """Contacts whose email, first name or last name starts with `query` (case-insensitive),
    by email; `limit` of them, and whether there are more. The next page is the one `after`
    the last hit's address key (`Page.after`; `offset` then only numbers it): counted by
    offset, a contact deleted or added on an earlier page since made one skipped or shown
    twice. Without `after`, `offset` skips that many (a button from before there were keys)."""
    offset = max(0, offset)
    params, shape = search_params(team_id, query, db.dialect, offset=0 if after else offset,
                                  limit=limit, after=after)  # fmt: skip
    if not params["q"]:
        return Page(query=params["q"], offset=offset, hits=[], more=False)
    async with db.begin() as conn:
        sql = search_sql(db.dialect, shape)
        rows = (await conn.execute(text(sql), params)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        names = await _segment_names(conn, team_id, [int(r[0]) for r in rows])
    hits = [Hit(id=int(cid), email=email, first_name=first or "", last_name=last or "",
                subscribed=bool(subscribed), segments=tuple(names.get(int(cid), ())),
                unsubscribed=bool(unsubscribed))
            for cid, email, first, last, subscribed, unsubscribed, _ in rows]  # fmt: skip
    return Page(query=params["q"], offset=offset, hits=hits, more=more,
                after=str(rows[-1][-1]) if rows else after)  # fmt: skip


async def _segment_names(conn: AsyncConnection, team_id: str, contact_ids: list[int]
                         ) -> dict[int, list[str]]:  # fmt: skip
    """The static segments of these contacts, by name; IDS_PER_QUERY contacts a statement
    (`contacts search --limit 40000` failed on PostgreSQL's parameter limit, printed raw)."""
    names: dict[int, list[str]] = {}
    for start in range(0, len(contact_ids), IDS_PER_QUERY):
        ids = {f"c{i}": cid for i, cid in
               enumerate(contact_ids[start : start + IDS_PER_QUERY])}  # fmt: skip
        rows = await conn.execute(text(f"""
            SELECT m.contact_id, s.name FROM segment_member m
            JOIN segment s ON s.id = m.segment_id AND s.team_id = m.team_id
            WHERE m.team_id = :t AND s.kind = 'static'
              AND m.contact_id IN ({", ".join(f":{k}" for k in ids)})
            ORDER BY s.name_key
        """), {"t": team_id, **ids})  # fmt: skip
        for contact_id, name in rows:
            names.setdefault(int(contact_id), []).append(name)
    return names


# ---- one contact ----------------------------------------------------------------------------


def contact_id_of(value: str) -> int:
    """A contact id from a button value; anything else is an old or forged button."""
    found = digits(value)
    if found is None:
        raise ContactError("That button doesn't name a contact: it may come from an old message.")
    return found


def contact_ref(contact_id: int, email: str) -> str:
    """A contact as a button names it: its id and a check of its address ("12.3f9a0c1b").
    SQLite gives a deleted contact's id to the next contact, so a card left open acted on
    someone else (Delete on x's card, confirmed naming x, deleted y)."""
    return f"{contact_id}.{_address_check(email)}"


def _address_check(email: str) -> str:
    """The button's check: a hash of the address's key (the same for every spelling)."""
    return hashlib.sha256(email_key(email).encode()).hexdigest()[:8]


def typed_check(typed: str) -> str:
    """The check (as a button's, see contact_ref) of an address as people type it (see
    `address_key`): a change given it and the id `find_by_email` found acts only while the
    id still names that address. `contacts delete` deleted by the id alone, in a
    transaction of its own: a contact deleted meanwhile and another imported in its place
    (SQLite gives it the same id) was deleted instead."""
    return _address_check(address_key(typed))


@dataclass(frozen=True, slots=True)
class ContactRef:
    """A contact as a button names it. `check` is "" on a button from a card shown before
    there were checks: the id alone names the contact, as it always did."""

    id: int
    check: str = ""


def parse_ref(value: str) -> ContactRef:
    """A button's contact ("12.3f9a0c1b", or "12"). Nothing is read here: each change checks
    the address in its own transaction (`_key_of`), as the card does when it is shown."""
    id_part, _, check = value.partition(".")
    return ContactRef(contact_id_of(id_part), check)


def address_key(typed: str) -> str:
    """The key of an address as people type or paste it: normalised as an import stores it
    (punycode domains in Unicode, "mailto:" and "Name <…>" taken off), so
    "ada@xn--bcher-kva.de" finds ada@bücher.de; anything that isn't an address, case-folded."""
    typed = typed.strip()
    try:
        return email_key(normalize_email(typed))
    except InvalidEmail:
        return typed.casefold()


async def find_by_email(db: Database, team_id: str, email: str) -> int:
    """The id of the workspace's contact with this address, however it is spelt (case,
    punycode, "mailto:", "Name <address>": see `address_key`)."""
    async with db.begin() as conn:
        found = (await conn.execute(
            text("SELECT id FROM contact WHERE team_id = :t AND email_key = :e"),
            {"t": team_id, "e": address_key(email)},
        )).scalar()  # fmt: skip
    if found is None:
        raise ContactError(f"No contact with the email {quoted(email.strip())} in this workspace.")
    return int(found)


async def card(db: Database, team_id: str, contact_id: int, *, check: str = "") -> Card:
    """The contact with its static segments and its campaigns (link code, invite state).
    With a button's `check`, only while the id still names the contact it was made for."""
    async with db.session() as session:
        contact = (await session.exec(select(Contact).where(
            Contact.team_id == team_id, Contact.id == contact_id))).first()  # fmt: skip
        if contact is None or (check and _address_check(contact.email) != check):
            raise ContactGone()
        conn = await session.connection()
        default = (await conn.execute(text("SELECT default_locale FROM workspace WHERE team_id "
                                           "= :t"), {"t": team_id})).scalar()  # fmt: skip
        segments = [SegmentRef(int(i), n) for i, n in await conn.execute(text("""
            SELECT s.id, s.name FROM segment_member m
            JOIN segment s ON s.id = m.segment_id AND s.team_id = m.team_id
            WHERE m.team_id = :t AND m.contact_id = :c AND s.kind = 'static'
            ORDER BY s.name_key
        """), {"t": team_id, "c": contact_id})]  # fmt: skip
        campaigns = [CampaignRef(name, code, int(clicks or 0), state, reason)
                     for name, code, clicks, state, reason in await conn.execute(text("""
            SELECT p.name, a.code, a.clicks, i.state, i.reason FROM advocate a
            JOIN campaign p ON p.id = a.campaign_id AND p.team_id = a.team_id
            LEFT JOIN invite i ON i.advocate_id = a.id AND i.team_id = a.team_id
              AND i.campaign_id = a.campaign_id AND i.contact_id = a.contact_id
            WHERE a.team_id = :t AND a.contact_id = :c
            ORDER BY p.name_key
        """), {"t": team_id, "c": contact_id})]  # fmt: skip
    return Card(id=contact_id, email=contact.email, first_name=contact.first_name,
                last_name=contact.last_name, locale=contact.locale,
                default_locale=str(default or "en"), subscribed=bool(contact.subscribed),
                unsubscribed_at=contact.unsubscribed_at, created_at=contact.created_at,
                batch_id=contact.batch_id, source=contact.source, segments=segments,
                campaigns=campaigns)  # fmt: skip


# ---- changes --------------------------------------------------------------------------------

_NOW = bindparam("now", type_=UTCDateTime())


async def _key_of(conn: AsyncConnection, team_id: str, contact_id: int, check: str
                  ) -> tuple[str, str]:  # fmt: skip
    """(email, address key) of the contact, if the id still names the one a button was made
    for (`check`, when it has one), read in the change's own transaction.

    The change's statement then matches that key too, and a change that matched nothing
    asks `_same`: SQLite gives a deleted contact's id to the next contact, and a transaction's
    reads before its first write aren't isolated from other commits there, so a deletion
    and a new contact between this read and the write would otherwise be changed instead.
    """
    row = (await conn.execute(text("SELECT email, email_key FROM contact WHERE team_id = :t "
                                   "AND id = :c"), {"t": team_id, "c": contact_id})).first()
    if row is None or (check and _address_check(row[0]) != check):
        raise ContactGone()
    return str(row[0]), str(row[1])


_SAME = text("SELECT 1 FROM contact WHERE team_id = :t AND id = :c AND email_key = :k")


async def _same(conn: AsyncConnection, params: dict[str, Any]) -> None:
    """After a change that matched nothing: ContactGone unless the id still has key :k."""
    if (await conn.execute(_SAME, params)).first() is None:
        raise ContactGone()


@dataclass(frozen=True, slots=True)
class RemovedFrom:
    segment: str
    enrolling: bool  # a live campaign excluded the segment: its targets are enrolled again


async def remove_from_segment(db: Database, team_id: str, contact_id: int, segment_id: int,
                              actor: str, *, check: str = "") -> RemovedFrom:  # fmt: skip
    """Take the contact out of one static segment (it stays in All Customers and in its
    campaigns). Returns the segment's name, and whether campaigns that excluded it enroll.

    The later imports' listings of the membership go with it (a listing never outlives its
    membership); the contacts lock keeps an import's chunk under way from recording one
    for the membership as it goes (models/locks.py). `check`: a button's, see `_key_of`."""
    params: dict[str, Any] = {"t": team_id, "c": contact_id, "s": segment_id}
    async with db.begin() as conn:
        await lock_contacts(conn, team_id, exclusive=True)
        email, params["k"] = await _key_of(conn, team_id, contact_id, check)
        name = (await conn.execute(text("SELECT name FROM segment WHERE team_id = :t AND id = :s "
                                        "AND kind = 'static'"), params)).scalar()  # fmt: skip
        if name is None:
            raise ContactError("That segment no longer exists.")
        removed = await conn.execute(text(
            "DELETE FROM segment_member WHERE team_id = :t AND segment_id = :s "
            "AND contact_id = :c AND EXISTS (SELECT 1 FROM contact WHERE team_id = :t "
            "AND id = :c AND email_key = :k)"), params)  # fmt: skip
        if not removed.rowcount:
            await _same(conn, params)
            raise ContactError(f"{email} isn't in {name} any more.")
        await conn.execute(text(
            "DELETE FROM segment_member_listing WHERE team_id = :t AND segment_id = :s "
            "AND contact_id = :c"), params)  # fmt: skip
        enrolling = bool(await enroll_when_exclusion_ends_in(conn, team_id, segment_id, actor))
        await record_in(conn, team_id, actor, Act.CONTACT_REMOVED_FROM_SEGMENT, subject(email),
                        f"removed from the segment {name}")  # fmt: skip
    return RemovedFrom(str(name), enrolling)


# also one an import switched off (subscribed false, no unsubscribed_at): that lasts only
# until an --update-existing import says yes, the lead's unsubscribe (as the link's) for good
_UNSUBSCRIBE = text("""
    UPDATE contact SET subscribed = :no, unsubscribed_at = :now, updated_at = :now
    WHERE team_id = :t AND id = :c AND email_key = :k AND unsubscribed_at IS NULL
    RETURNING email
""").bindparams(_NOW)


async def unsubscribe(db: Database, team_id: str, contact_id: int, actor: str, *,
                      check: str = "") -> int:  # fmt: skip
    """No more invites to this contact: sticky against later imports (`unsubscribed_at`, as
    the unsubscribe link does), and its invites not yet sent are stopped. Returns how many.
    `check`: a button's, see `_key_of`."""
    params = {"t": team_id, "c": contact_id, "no": False, "now": utcnow()}
    async with db.begin() as conn:
        email, params["k"] = await _key_of(conn, team_id, contact_id, check)
        row = (await conn.execute(_UNSUBSCRIBE, params)).first()
        if row is None:
            await _same(conn, params)
            raise ContactError(f"{email} is already unsubscribed.")
        stopped = await stop_invites_in(conn, params)  # as the link does, reports redrawn
        detail = f"{plural(stopped, 'invite')} not yet sent stopped" if stopped else ""
        await record_in(conn, team_id, actor, Act.CONTACT_UNSUBSCRIBED, subject(row[0]), detail)
    return int(stopped)


_UNSUPPRESS = text("DELETE FROM suppressed_address WHERE team_id = :t AND email_key = :k")
# An import that re-subscribed the contact no longer answers for its consent (undoing it would
# unsubscribe it again): the contact's own word does (models.ResubscribedContact). Also with
# the contact: SQLite gives a deleted contact's id to the next one.
_FORGET_RESUBSCRIBED = text("DELETE FROM resubscribed_contact WHERE contact_id = :c "
                            "AND team_id = :t")  # fmt: skip
_RESUBSCRIBE = text("""
    UPDATE contact SET subscribed = :yes, unsubscribed_at = NULL, updated_at = :now
    WHERE team_id = :t AND id = :c AND email_key = :k
      AND (subscribed = :no OR unsubscribed_at IS NOT NULL)
    RETURNING email
""").bindparams(_NOW)


async def resubscribe(db: Database, team_id: str, contact_id: int, actor: str, *,
                      check: str = "") -> None:  # fmt: skip
    """The contact agreed to hear from us again: later invites are emailed. Invites it wasn't
    sent meanwhile stay unsent (nobody is emailed about an old enrollment by surprise).
    `check`: a button's, see `_key_of`."""
    params = {"t": team_id, "c": contact_id, "no": False, "yes": True, "now": utcnow()}
    async with db.begin() as conn:
        email, params["k"] = await _key_of(conn, team_id, contact_id, check)
        row = (await conn.execute(_RESUBSCRIBE, params)).first()
        if row is None:
            await _same(conn, params)
            raise ContactError(f"{email} is already subscribed.")
        await conn.execute(_UNSUPPRESS, params)  # their unsubscribe is over
        await conn.execute(_FORGET_RESUBSCRIBED, params)  # and their yes is their own
        await record_in(conn, team_id, actor, Act.CONTACT_RESUBSCRIBED, subject(row[0]))


_DELETE_CONTACT = text("DELETE FROM contact WHERE team_id = :t AND id = :c AND email_key = :k "
                       "RETURNING email, unsubscribed_at"
                       ).columns(unsubscribed_at=UTCDateTime())  # a datetime on SQLite too


async def delete_contact(db: Database, team_id: str, contact_id: int, actor: str, *,
                         check: str = "") -> Deleted:  # fmt: skip
    """Delete the contact, its segment memberships, its invites and its advocates, and retire
    their referral codes (the links answer 410 Gone, and the codes are never used again).

    Invites go in every state. One being handed to the mail server at this moment can't be
    recalled, but its row may go: the sender records an outcome by id and state, so a row
    that is gone is skipped, never an error. Staged import rows are left to retention.
    `check`: a button's, see `_key_of`.
    """
    params = {"t": team_id, "c": contact_id}
    async with db.begin() as conn:
        await lock_contacts(conn, team_id, exclusive=True)  # no import or enrollment mid-way
        _, params["k"] = await _key_of(conn, team_id, contact_id, check)
        gone = (await conn.execute(_DELETE_CONTACT, params)).first()
        if gone is None:
            raise ContactGone()
        email, unsubscribed_at = gone
        if unsubscribed_at is not None:  # its unsubscribe outlives it (SuppressedAddress),
            # dated when they unsubscribed: a card of it imported again shows that day
            await conn.execute(upsert(conn, SuppressedAddress).values(
                team_id=team_id, email_key=params["k"], suppressed_at=unsubscribed_at,
            ).on_conflict_do_nothing(index_elements=["team_id", "email_key"]))  # fmt: skip
        # later imports' listings of its memberships, found through them (before they go):
        # SQLite gives its id to the next contact, which a listing left behind would keep in
        # the segment when the import that adds it is undone
        await conn.execute(text(
            "DELETE FROM segment_member_listing WHERE team_id = :t AND contact_id = :c "
            "AND segment_id IN (SELECT segment_id FROM segment_member "
            "WHERE team_id = :t AND contact_id = :c)"), params)  # fmt: skip
        members = await conn.execute(text("DELETE FROM segment_member WHERE team_id = :t "
                                          "AND contact_id = :c"), params)  # fmt: skip
        await conn.execute(_FORGET_RESUBSCRIBED, params)
        gone_invites = (await conn.execute(text(
            "DELETE FROM invite WHERE team_id = :t AND contact_id = :c "
            "RETURNING campaign_id, state, enrollment_id"), params)).all()  # fmt: skip
        # the campaigns that emailed it (or may have) remember its address (InvitedAddress):
        # read from the rows deleted, so one a send run had just taken is counted
        emailed = sorted({int(c) for c, state, _ in gone_invites
                          if state in ("sent", "sending", "uncertain")})  # fmt: skip
        if emailed:
            now = utcnow()
            await conn.execute(upsert(conn, InvitedAddress).values(
                [{"team_id": team_id, "campaign_id": c, "email_key": params["k"],
                  "invited_at": now} for c in emailed]
            ).on_conflict_do_nothing(index_elements=["team_id", "campaign_id", "email_key"]))
        invites = len(gone_invites)
        advocates = (await conn.execute(text(
            "DELETE FROM advocate WHERE team_id = :t AND contact_id = :c "
            "RETURNING code, enrollment_id"), params)).all()  # fmt: skip
        codes = [str(code) for code, _ in advocates]
        # the enrollment reports counting them (held invites, *Cancel invites*, advocates
        # removed since) are redrawn
        await redraw_reports_in(conn, team_id, [e for *_, e in gone_invites]
                                + [e for _, e in advocates])  # fmt: skip
        if codes:
            now = utcnow()
            await conn.execute(upsert(conn, RetiredCode).values(
                [{"code": code, "team_id": team_id, "retired_at": now} for code in codes]
            ).on_conflict_do_nothing(index_elements=["code"]))  # fmt: skip
        result = Deleted(email=str(email), segments=int(members.rowcount),
                         advocates=len(codes), invites=invites)  # fmt: skip
        await record_in(conn, team_id, actor, Act.CONTACT_DELETED, subject(result.email),
                        deleted_detail(result))  # fmt: skip
    return result


def deleted_detail(d: Deleted) -> str:
    """What went with the contact, in plain words (the audit entry and the CLI). All
    Customers, which holds every contact without a membership row, is named: "from 0
    segments" was said of a contact in it alone. The invites deleted are their records
    (those sent were sent: "2 invites deleted" read as emails unsent)."""
    where = ["All Customers", *([plural(d.segments, "segment")] if d.segments else []),
             plural(d.advocates, "campaign")]  # fmt: skip
    return (f"from {listed(where)} ({plural(d.advocates, 'referral link')} retired, "
            f"{plural(d.invites, 'invite record')} deleted)")  # fmt: skip
