"""Workspaces and segments: the scope every other service works in."""

from __future__ import annotations

import logging
import re
import unicodedata

from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.audit import CLI, Act, record_in
from bot.words import quoted
from models import Contact, Database, Segment, SegmentKind, SegmentMember, Workspace
from models.contacts import ALL_CUSTOMERS

log = logging.getLogger(__name__)

LOCAL_TEAM = "local"  # the CLI's workspace when no Slack workspace exists yet
MAX_SEGMENT_NAME = 100
GONE = "That segment no longer exists."
# A deleted segment keeps its name for history but gives up its key (`deleted:<id>`), so the
# name can be used again; a live segment may not take a key of that shape.
_DELETED_KEY = re.compile(r"deleted:\d+")


class WorkspaceError(Exception):
    """A workspace or segment can't be found or used as asked; the message says why."""


# Characters that show nothing and mean nothing in a name: zero-width space, word joiner, BOM,
# soft hyphen. Not the zero-width joiners, which make emoji (👩‍💻) and Persian words.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"))
# Format characters (category Cf) a name's key keeps, as what they do can be seen: the joiners
# (above), the Arabic number signs that show as a sign (U+0600..0605, U+06DD, ...), and the
# tags that tell the flag of Scotland from England's (🏴 + U+E0067 ...). See _unseen.
_SEEN_FORMAT = frozenset("\u200c\u200d\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f"
                         "\u0890\u0891\u08e2\U000110bd\U000110cd") | frozenset(
    map(chr, range(0xE0020, 0xE0080)))  # fmt: skip


def _visible(name: str) -> str:
    """The name as people see it: composed (a macOS "e" + accent is "é") and without
    invisible characters (a zero-width space pasted from a document), spacing collapsed.
    "Café" twice, or "VIP" and "VIP" + U+200B, were two segments that looked the same."""
    composed = unicodedata.normalize("NFC", name)
    if not composed.isascii():
        composed = composed.translate(_INVISIBLE)
    return " ".join(composed.split())


# Letters that draw nothing but blank space (Hangul fillers, Khmer's inherent vowels, the
# blank Braille cell): a name's key reads each as a space, so "All Customers" + U+3164 and
# "All⠀Customers" are All Customers, not a second one that looks the same in every menu
_BLANK_AS_SPACE = dict.fromkeys(map(ord, "\u115f\u1160\u3164\uffa0\u17b4\u17b5\u2800"), " ")


def _unseen(char: str) -> bool:
    """A character that changes nothing people can tell apart in a name: a format character
    (a left-to-right mark pasted from RTL text, a bidi isolate, U+2063), the grapheme joiner,
    a variation selector (❤ and ❤️ are one heart)."""
    return (char == "\u034f" or "\ufe00" <= char <= "\ufe0f"
            or (unicodedata.category(char) == "Cf" and char not in _SEEN_FORMAT))  # fmt: skip


def shown_name(name: str) -> str:
    """The name as people see it, case kept: segment_key before it ignores case."""
    name = _visible(name)
    if not name.isascii():
        name = name.translate(_BLANK_AS_SPACE)
        name = " ".join("".join(c for c in name if not _unseen(c)).split())
    return name


def segment_key(name: str) -> str:
    """The name as names are compared: as seen (_visible), without the characters that show
    nothing, ignoring case. Those are left out of the key only, not out of the stored name:
    some shape what is shown (U+FE0F makes ❤️ the emoji, U+180E a Mongolian vowel's form, a
    mark the order of mixed RTL text), but two names they alone tell apart look the same, so
    "VIP" + U+200E was a second "VIP" and "All Customers" + U+200E a second All Customers."""
    return shown_name(name).casefold()


def too_long_compared(length: int, limit: int) -> str:
    """A name within `limit` whose key (the name as names are compared) isn't: casefolding
    spells "ß" as "ss", and the key's column holds `limit` characters (PostgreSQL refused
    such a name with an error nobody could act on)."""
    return (f"Names are at most {limit} characters, counted as they are compared: this one "
            f"is {length}, with letters such as ß counted as ss. Shorten it a little.")


def deleted_key(segment_id: int) -> str:
    """The name_key a deleted segment takes, freeing its name."""
    return f"deleted:{segment_id}"


def clean_segment_name(name: str) -> str:
    """The name as stored (see _visible), or WorkspaceError saying what is wrong with it.

    Uniqueness is checked by the caller (`find_segment`) and, against races, by the unique
    (team_id, name_key) index.
    """
    name = _visible(name)
    if not segment_key(name):  # nothing but spaces or characters that show nothing
        raise WorkspaceError("A segment needs a name.")
    if len(name) > MAX_SEGMENT_NAME:
        raise WorkspaceError(f"Segment names are at most {MAX_SEGMENT_NAME} characters.")
    if (longer := len(segment_key(name))) > MAX_SEGMENT_NAME:
        raise WorkspaceError(too_long_compared(longer, MAX_SEGMENT_NAME))
    if _DELETED_KEY.fullmatch(segment_key(name)):
        raise WorkspaceError(f"{quoted(name)} is reserved: choose another name.")
    return name


def name_taken(existing: Segment) -> WorkspaceError:
    """Why a name can't be used: All Customers is built in, any other belongs to a segment."""
    if existing.kind == SegmentKind.ALL:
        # the name is the built-in segment's (it said only "already holds every contact",
        # which read oddly as the answer to a rename)
        return WorkspaceError(f"{ALL_CUSTOMERS} is built in (it holds every contact): its "
                              "name can't be another segment's.")
    return WorkspaceError(f"A segment named {quoted(existing.name)} already exists.")


async def ensure_workspace(db: Database, team_id: str, *, default_locale: str = "en") -> Workspace:
    """The workspace row (created with its built-in All Customers segment on first use)."""
    async with db.session() as session:
        workspace = await session.get(Workspace, team_id)
        if workspace is not None:
            return workspace
        workspace = Workspace(team_id=team_id, default_locale=default_locale)
        session.add(workspace)
        try:
            await session.flush()  # the segment's foreign key needs the workspace row first
        except IntegrityError:  # two first requests at once: the other one created it
            await session.rollback()
            existing = await session.get(Workspace, team_id)
            assert existing is not None
            return existing
        session.add(
            Segment(team_id=team_id, name=ALL_CUSTOMERS, name_key=segment_key(ALL_CUSTOMERS),
                    kind=SegmentKind.ALL)
        )  # fmt: skip
        await session.commit()
        return workspace


async def apply_default_locale(db: Database, locale: str) -> int:
    """DEFAULT_LOCALE is the invite language of contacts without one, in every workspace: a
    workspace row keeps a copy (made when it was created) only until the setting changes,
    since nothing else sets it. Returns how many workspaces changed; writes nothing (no
    write lock) when none differs."""
    async with db.begin() as conn:
        params = {"l": locale}
        if (await conn.execute(text("SELECT 1 FROM workspace WHERE default_locale <> :l "
                                    "LIMIT 1"), params)).first() is None:  # fmt: skip
            return 0
        changed = await conn.execute(text("UPDATE workspace SET default_locale = :l "
                                          "WHERE default_locale <> :l"), params)  # fmt: skip
    log.info("invites without a locale now go out in %r (DEFAULT_LOCALE) in %s workspace(s)",
             locale, changed.rowcount)  # fmt: skip
    return int(changed.rowcount)


async def resolve_team(db: Database, team_id: str | None, *, default_locale: str = "en") -> str:
    """The team to work in: the one named, else the only one, else a new local one."""
    async with db.session() as session:
        teams = list((await session.exec(select(Workspace.team_id).limit(2))).all())
    if team_id is not None:
        if team_id not in teams and not await _exists(db, team_id):
            raise WorkspaceError(f"No workspace {quoted(team_id)}. Known: {await _known(db)}.")
        return team_id
    if len(teams) > 1:
        # naming them: "choose one with --team" alone left the reader to find the ids elsewhere
        raise WorkspaceError(f"There are several workspaces: choose one with --team "
                             f"({await _known(db)}).")  # fmt: skip
    if teams:
        return teams[0]
    await ensure_workspace(db, LOCAL_TEAM, default_locale=default_locale)
    return LOCAL_TEAM


KNOWN_SHOWN = 20  # workspaces an unknown --team lists; the others are counted


async def _known(db: Database) -> str:
    """Every workspace's team id, in order (a long list cut short, saying how many more):
    what an unknown --team could have meant."""
    async with db.session() as session:
        teams = list((await session.exec(
            select(Workspace.team_id).order_by(col(Workspace.team_id)).limit(KNOWN_SHOWN)
        )).all())  # fmt: skip
        total = (await session.exec(select(func.count()).select_from(Workspace))).one()
    listed = ", ".join(teams) or "none"
    return listed + (f" and {total - len(teams):,} more" if total > len(teams) else "")


async def _exists(db: Database, team_id: str) -> bool:
    async with db.session() as session:
        return await session.get(Workspace, team_id) is not None


async def find_segment(db: Database, team_id: str, name: str) -> Segment | None:
    """The workspace's live segment with this name (ignoring case and spacing), if any."""
    async with db.session() as session:
        query = select(Segment).where(
            Segment.team_id == team_id, Segment.name_key == segment_key(name),
            col(Segment.kind) != SegmentKind.DELETED,
        )  # fmt: skip
        return (await session.exec(query)).first()


async def get_segment(db: Database, team_id: str, segment_id: int) -> Segment:
    """The workspace's live segment with this id; another workspace's or a deleted one is
    WorkspaceError, so a stale or forged button changes nothing."""
    segment = await db.reader.get(Segment, segment_id, team_id)
    if segment is None or segment.kind == SegmentKind.DELETED:
        raise WorkspaceError(GONE)
    return segment


async def free_name(db: Database, team_id: str, name: str, *,
                    renaming: int | None = None) -> str:  # fmt: skip
    """The name as it would be stored, if it is free for a new segment (or for the segment
    `renaming`, whose own name, in any case, is free for it); WorkspaceError saying why not.
    A read: the write that follows may still lose a race, which the unique index decides."""
    name = clean_segment_name(name)
    existing = await find_segment(db, team_id, name)
    if existing is not None and existing.id != renaming:
        raise name_taken(existing)
    return name


async def create_segment(db: Database, team_id: str, name: str, *, actor: str = CLI) -> Segment:
    """A new static segment; names are unique per workspace, ignoring case and spacing.

    The audit entry commits with the segment; of two people creating the same name at once,
    the unique index turns the loser away with the same message as the check before it.
    """
    name = await free_name(db, team_id, name)
    try:
        async with db.session() as session:
            segment = Segment(team_id=team_id, name=name, name_key=segment_key(name))
            session.add(segment)
            await session.flush()
            await record_in(await session.connection(), team_id, actor, Act.SEGMENT_CREATED,
                            name)  # fmt: skip
            await session.commit()
            return segment
    except IntegrityError:
        raced = await find_segment(db, team_id, name)
        if raced is None:
            raise
        raise name_taken(raced) from None


async def import_target(db: Database, team_id: str, name: str, *, create: bool) -> Segment:
    """The static segment an import goes into, created if asked; never All Customers."""
    segment = await find_segment(db, team_id, name)
    if segment is None:
        if not create:
            raise WorkspaceError(f"No segment named {quoted(name)}. Create it with "
                                 "--create-segment.")
        return await create_segment(db, team_id, name)
    if segment.kind == SegmentKind.ALL:
        raise WorkspaceError(
            f"{ALL_CUSTOMERS} is built in and holds every contact: import into a static segment."
        )
    return segment


async def segment_sizes(db: Database, team_id: str) -> list[tuple[Segment, int]]:
    """Every live segment of the workspace with its number of contacts, All Customers first."""
    async with db.session() as session:
        segments = (
            await session.exec(
                select(Segment)
                .where(Segment.team_id == team_id, col(Segment.kind) != SegmentKind.DELETED)
                .order_by(col(Segment.name_key))
            )
        ).all()
        # by the workspace's segments, through segment_member's key: filtered by team_id
        # alone (no index of its own), every workspace's memberships were read for each Home
        static = [s.id for s in segments if s.kind == SegmentKind.STATIC]
        counts = dict(
            (
                await session.exec(
                    select(SegmentMember.segment_id, func.count())
                    .where(col(SegmentMember.segment_id).in_(static),
                           SegmentMember.team_id == team_id)
                    .group_by(col(SegmentMember.segment_id))
                )
            ).all()
        ) if static else {}  # fmt: skip
        everyone = (
            await session.exec(select(func.count()).where(Contact.team_id == team_id))
        ).one()
    sized = [(s, everyone if s.kind == SegmentKind.ALL else counts.get(s.id, 0)) for s in segments]
    sized.sort(key=lambda pair: pair[0].kind != SegmentKind.ALL)
    return sized


async def name_workspace(db: Database, team_id: str, name: str) -> None:
    """Keep the workspace's name as Slack says it: pages outside Slack (the Mailchimp sign-in's
    start page) name the workspace by it. Callers skip it when the stored name is the same
    (an UPDATE takes SQLite's write lock even when it changes nothing)."""
    async with db.begin() as conn:
        await conn.execute(text("UPDATE workspace SET name = :n WHERE team_id = :t"),
                           {"n": name[:200], "t": team_id})  # fmt: skip


async def workspace_name(db: Database, team_id: str) -> str:
    """The workspace's name as last seen in Slack ("" if never seen, or no such workspace)."""
    async with db.begin() as conn:
        found = await conn.execute(text("SELECT name FROM workspace WHERE team_id = :t"),
                                   {"t": team_id})  # fmt: skip
        return str(found.scalar() or "")
