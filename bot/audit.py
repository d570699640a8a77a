"""The audit log: who did what to which import, contact, segment, campaign or connection, and
when.

An entry is written by `record_in` on the connection of the change it describes, so the log
and the change commit (or roll back) together: an entry never claims what didn't happen.

Reading it: `recent` pages back by id (newest first), optionally narrowed by a filter;
`words` turns an entry's action into plain English for Slack and the command line, and
`import_outcomes` says what became of the imports the entries name (imported, enrolled,
invited), so "who approved last week's import and how many were invited" is one look.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, func, insert, literal, or_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from bot.casefold import contains
from bot.once import first_time_in
from models import (
    Advocate,
    AuditEntry,
    Database,
    Enrollment,
    ImportBatch,
    Invite,
    InviteState,
)
from models.clock import utcnow

CLI = "cli"  # the actor of a shell command (shell users are trusted admins)
SLACK = "Slack"  # the actor of what Slack itself told the bot (the app uninstalled, a lead
#                  deactivated or made a guest)


def by_whom(actor: str | None) -> str:
    """Who did something, after a verb, for Slack: "by <@U…>", or "from the command line"
    for the shell, or when nobody is recorded (`<@cli>` names nobody: Slack shows it as a
    broken mention)."""
    return "from the command line" if not actor or actor == CLI else f"by <@{actor}>"


class Act(StrEnum):
    IMPORT_REQUESTED = "import.requested"
    IMPORT_CONSENT = "import.consent"  # "These people agreed to hear from us" was ticked
    IMPORT_SOURCE_REMOVED = "import.source_removed"
    IMPORT_CONTACT_REMOVED = "import.contact_removed"  # one contact taken out during review
    IMPORT_APPROVED = "import.approved"
    IMPORT_REJECTED = "import.rejected"
    IMPORT_CANCELLED = "import.cancelled"
    IMPORT_UNDONE = "import.undone"
    # a CSV of customers' details sent by DM (Send me the CSV in a thread): who has a copy
    IMPORT_SKIPPED_ROWS_SENT = "import.skipped_rows_sent"
    SEGMENT_CREATED = "segment.created"
    SEGMENT_RENAMED = "segment.renamed"
    SEGMENT_DELETED = "segment.deleted"
    SEGMENT_EXPORTED = "segment.exported"
    CONTACT_REMOVED_FROM_SEGMENT = "contact.removed_from_segment"
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
    CONTACT_RESUBSCRIBED = "contact.resubscribed"
    CONTACT_DELETED = "contact.deleted"
    MAILCHIMP_CONNECTED = "mailchimp.connected"
    MAILCHIMP_DISCONNECTED = "mailchimp.disconnected"
    LEAD_ADDED = "lead.added"
    LEAD_REMOVED = "lead.removed"
    # campaigns: what decides who is emailed (bot/campaigns/service.py writes them)
    CAMPAIGN_CREATED = "campaign.created"
    CAMPAIGN_EDITED = "campaign.edited"
    CAMPAIGN_TARGETED = "campaign.targeted"
    CAMPAIGN_EXCLUDED = "campaign.excluded"
    CAMPAIGN_LIVE = "campaign.live"
    CAMPAIGN_PAUSED = "campaign.paused"
    # ... and who chose to email people again, or those held back
    CAMPAIGN_RESENT = "campaign.resent"  # Resend uncertain: some may get theirs twice
    CAMPAIGN_EMAILED_UNSENT = "campaign.emailed_unsent"  # Email them
    CAMPAIGN_INVITES_CANCELLED = "campaign.invites_cancelled"  # Cancel invites, in the hold
    # the CSV of its invites that failed or may not have arrived, sent by DM (as the skipped
    # rows' CSV, IMPORT_SKIPPED_ROWS_SENT)
    CAMPAIGN_UNDELIVERED_SENT = "campaign.undelivered_sent"
    # Slack's word (the actor is SLACK) that its messages stop until the app is reinstalled
    APP_UNINSTALLED = "slack.app_uninstalled"
    TOKENS_REVOKED = "slack.tokens_revoked"


# What each act says after the actor's name; {subject} is the entry's subject. The detail, if
# any, follows in brackets: "approved import #12 (1,204 contacts to import)".
ACTION_WORDS: dict[str, str] = {
    Act.IMPORT_REQUESTED: "asked for {subject}",
    Act.IMPORT_CONSENT: "confirmed that the people in {subject} agreed to hear from us",
    Act.IMPORT_SOURCE_REMOVED: "edited {subject}",
    Act.IMPORT_CONTACT_REMOVED: "edited {subject}",
    Act.IMPORT_APPROVED: "approved {subject}",
    Act.IMPORT_REJECTED: "rejected {subject}",
    Act.IMPORT_CANCELLED: "cancelled {subject}",
    Act.IMPORT_UNDONE: "undid {subject}",
    Act.IMPORT_SKIPPED_ROWS_SENT: "took the CSV of the skipped rows of {subject}",
    Act.SEGMENT_CREATED: "created the segment {subject}",
    Act.SEGMENT_RENAMED: "renamed a segment to {subject}",
    Act.SEGMENT_DELETED: "deleted the segment {subject}",
    Act.SEGMENT_EXPORTED: "exported the segment {subject}",
    Act.CONTACT_REMOVED_FROM_SEGMENT: "removed {subject} from a segment",
    Act.CONTACT_UNSUBSCRIBED: "unsubscribed {subject}",
    Act.CONTACT_RESUBSCRIBED: "resubscribed {subject}",
    Act.CONTACT_DELETED: "deleted {subject}",
    Act.MAILCHIMP_CONNECTED: "connected {subject}",
    Act.MAILCHIMP_DISCONNECTED: "disconnected {subject}",
    Act.LEAD_ADDED: "added {subject} to the team leads",
    Act.LEAD_REMOVED: "removed {subject} from the team leads",
    Act.CAMPAIGN_CREATED: "created the campaign {subject}",
    Act.CAMPAIGN_EDITED: "edited the campaign {subject}",
    Act.CAMPAIGN_TARGETED: "made a segment a target of the campaign {subject}",
    Act.CAMPAIGN_EXCLUDED: "excluded a segment from the campaign {subject}",
    Act.CAMPAIGN_LIVE: "put the campaign {subject} live",
    Act.CAMPAIGN_PAUSED: "paused the campaign {subject}",
    Act.CAMPAIGN_RESENT: "resent the invites of the campaign {subject} that may not have "
                         "arrived",
    Act.CAMPAIGN_INVITES_CANCELLED: "cancelled invites of the campaign {subject} in their "
                                    "hold",
    Act.CAMPAIGN_EMAILED_UNSENT: "emailed the advocates of the campaign {subject} that the "
                                 "invite email being off left without an invite",
    Act.CAMPAIGN_UNDELIVERED_SENT: "took the CSV of the campaign {subject}'s invites that "
                                   "failed or may not have arrived",
    Act.APP_UNINSTALLED: "said {subject} was uninstalled from this workspace",
    Act.TOKENS_REVOKED: "said {subject} was revoked",
}
# Acts whose words already say what their detail says
QUIET_DETAIL = frozenset({Act.IMPORT_CONSENT})
IMPORT_SUBJECT = re.compile(r"^import #(\d+)$")
_LEADING_COUNT = re.compile(r"^(\d{4,})(?= )")
_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,30})(?:\|[^>]*)?>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_IMPORT_FILTER = re.compile(r"^(?:import\s*)?#?(\d{1,12})$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: str


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What became of an import, counted from its rows: the batch, enrollments and invites."""

    status: str
    new_contacts: int
    added_to_segment: int
    enrolled: int
    invites_sent: int
    invites_waiting: int  # queued, held or being sent


async def record_in(conn: AsyncConnection, team_id: str, actor: str, action: Act,
                    subject: str = "", detail: str = "") -> None:  # fmt: skip
    """Add an entry in the caller's transaction (commits with the change it describes)."""
    await conn.execute(
        insert(AuditEntry).values(team_id=team_id, at=utcnow(), actor=actor[:64],
                                  action=str(action), subject=subject[:200], detail=detail)
    )  # fmt: skip


async def record(db: Database, team_id: str, actor: str, action: Act, subject: str = "",
                 detail: str = "") -> None:  # fmt: skip
    """An entry on its own, for acts with no row of ours to change (an export)."""
    async with db.begin() as conn:
        await record_in(conn, team_id, actor, action, subject, detail)


async def record_once(db: Database, team_id: str, key: str, actor: str, action: Act,
                      subject: str = "", detail: str = "") -> bool:  # fmt: skip
    """An entry on its own for something that may be told twice (a Slack event delivered
    again: `key`, its event id), written only the first time; True if it was. The key and
    the entry are one transaction, so a failure leaves neither."""
    async with db.begin() as conn:
        if not await first_time_in(conn, team_id, key):
            return False
        await record_in(conn, team_id, actor, action, subject, detail)
    return True


def _matching(text: str, dialect: str) -> ColumnElement[bool]:
    """The WHERE clause of a filter: an import by number ("import #12", "#12": that import
    only; a bare number that import or the words), or words found in the subject, action,
    detail or the words the log shows for the act (ignoring case); words that look like a
    user id also find that person's acts, and lead changes about them."""
    text = " ".join(text.split())
    number = _IMPORT_FILTER.match(text)
    if number and not text.isdecimal():  # "import #12", "#12": that import only
        return col(AuditEntry.subject) == import_subject(int(number.group(1)))
    if number:  # a bare number: that import, or the number as a word of a subject that is no
        # import's or of a detail ("Sale 2025"), not within #120 or "1204 contacts"
        word = f"% {text} %"
        return or_(col(AuditEntry.subject) == import_subject(int(number.group(1))),
                   and_(col(AuditEntry.subject).not_like("import #%"),
                        (literal(" ") + col(AuditEntry.subject) + literal(" ")).like(word)),
                   (literal(" ") + col(AuditEntry.detail) + literal(" ")).like(word))
    found = [contains(c, text, dialect)
             for c in (col(AuditEntry.subject), col(AuditEntry.action), col(AuditEntry.detail))]
    # the words the log shows for an act ("undid", "asked for"): its stored code is another
    acts = [act for act, words in ACTION_WORDS.items()
            if text.casefold() in " ".join(words.replace("{subject}", " ").split()).casefold()]
    if acts:
        found.append(col(AuditEntry.action).in_(acts))
    person = _MENTION.match(text)
    user_id = person.group(1) if person else text.upper()
    if _USER_ID.match(user_id):
        found += [col(AuditEntry.actor) == user_id, col(AuditEntry.subject) == f"<@{user_id}>"]
    return or_(*found)


async def recent(db: Database, team_id: str, *, limit: int = 50, since: datetime | None = None,
                 before_id: int | None = None, matching: str = "") -> list[Entry]:  # fmt: skip
    """The workspace's newest entries first; `before_id` pages further back (ids grow with
    time, so paging by id never skips or repeats an entry the way paging by time could)."""
    query = select(AuditEntry).where(col(AuditEntry.team_id) == team_id)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    if matching.strip():
        query = query.where(_matching(matching, db.dialect))
    query = query.order_by(col(AuditEntry.id).desc()).limit(limit)
    async with db.session() as session:
        rows = (await session.exec(query)).all()
    return [Entry(r.id or 0, r.at, r.actor, r.action, r.subject, r.detail) for r in rows]


def import_subject(batch_id: int) -> str:
    return f"import #{batch_id}"


def import_subject_sql(batch_id: str) -> str:
    """`import_subject` in SQL, of the column or expression `batch_id`."""
    return f"'import #' || CAST({batch_id} AS TEXT)"


def import_of(subject: str) -> int | None:
    """The import a subject names ("import #12" -> 12), else None."""
    found = IMPORT_SUBJECT.match(subject)
    return int(found.group(1)) if found else None


def words(action: str, subject: str) -> str:
    """What was done, after the actor's name: "approved import #12". `subject` is put in as
    given (the caller escapes it for Slack); an action this version doesn't know is shown as
    its name, so entries written by newer code still read."""
    template = ACTION_WORDS.get(action)
    if template is None:
        return f"did {action}" + (f" on {subject}" if subject else "")
    return " ".join(template.replace("{subject}", subject).split())


def detail_words(action: str, detail: str) -> str:
    """The detail as shown, or "" when the words already say it. A leading count gets its
    thousands separators ("1204 contacts to import" -> "1,204 contacts to import")."""
    if action in QUIET_DETAIL or not detail.strip():
        return ""
    return _LEADING_COUNT.sub(lambda m: f"{int(m.group(1)):,}", detail.strip())


def sentence(entry: Entry) -> str:
    """Plain words for the command line: "approved import #12 (1,204 contacts to import)"."""
    detail = detail_words(entry.action, entry.detail)
    return words(entry.action, entry.subject) + (f" ({detail})" if detail else "")


@dataclass(frozen=True, slots=True)
class EnrollmentFigures:
    """What the enrollments an import led to did, counted from the rows that still exist."""

    enrolled: int = 0  # advocates (a deleted contact's or an undone import's: gone)
    sent: int = 0  # invites sent
    waiting: int = 0  # invites queued, held or being sent


_WAITING = frozenset({InviteState.QUEUED, InviteState.HELD, InviteState.SENDING})


async def enrollment_figures(db: Database, team_id: str, threads: Mapping[int, str | None]
                             ) -> dict[int, EnrollmentFigures]:  # fmt: skip
    """Per import (`threads`: its id -> its review message's ts): the advocates and invites
    of the enrollments it led to, i.e. the ones run for its new contacts
    (`enrollment.batch_id`) and the ones started from its thread (*Target a campaign*: same
    thread). Counted from the rows, not from `enrollment.enrolled` (a count at the time):
    contacts deleted or an undo since took their advocates and invites with them. Each
    advocate is found through its invite, which is indexed by enrollment. Home and the audit
    log both say this, so they agree."""
    ids = list(threads)
    by_thread = {ts: batch_id for batch_id, ts in threads.items() if ts}
    if not ids:
        return {}
    async with db.session() as session:
        runs = (await session.exec(
            select(Enrollment.id, Enrollment.batch_id, Enrollment.thread_ts).where(
                col(Enrollment.team_id) == team_id,
                or_(col(Enrollment.batch_id).in_(ids),
                    col(Enrollment.thread_ts).in_(list(by_thread))))
        )).all()  # fmt: skip
        owner = {e_id: (batch_id if batch_id in threads else by_thread[thread or ""])
                 for e_id, batch_id, thread in runs}  # fmt: skip
        counts = (await session.exec(
            select(Invite.enrollment_id, Invite.state, func.count(col(Invite.id)),
                   func.count(col(Advocate.id)))
            # its own advocate: an id alone may be an undone one's, reused (invites.py)
            .outerjoin(Advocate, and_(col(Advocate.id) == col(Invite.advocate_id),
                                      col(Advocate.team_id) == team_id,
                                      col(Advocate.campaign_id) == col(Invite.campaign_id),
                                      col(Advocate.contact_id) == col(Invite.contact_id)))
            .where(col(Invite.team_id) == team_id, col(Invite.enrollment_id).in_(list(owner)))
            .group_by(col(Invite.enrollment_id), col(Invite.state))
        )).all() if owner else []  # fmt: skip
    totals: dict[int, list[int]] = {}
    for e_id, state, invites, advocates in counts:
        total = totals.setdefault(owner[e_id], [0, 0, 0])
        total[0] += int(advocates)
        total[1] += int(invites) if state == InviteState.SENT else 0
        total[2] += int(invites) if state in _WAITING else 0
    return {batch_id: EnrollmentFigures(*total) for batch_id, total in totals.items()}


async def import_outcomes(db: Database, team_id: str,
                          batch_ids: Iterable[int]) -> dict[int, ImportOutcome]:  # fmt: skip
    """For each of these imports of this workspace: its state and counts, how many of its
    contacts were enrolled in campaigns, and their invites sent or waiting (as Home counts
    them: `enrollment_figures`)."""
    ids = sorted(set(batch_ids))
    if not ids:
        return {}
    async with db.session() as session:
        batches = (await session.exec(
            select(ImportBatch.id, ImportBatch.status, ImportBatch.new_contacts,
                   ImportBatch.added_to_segment, ImportBatch.message_ts)
            .where(col(ImportBatch.team_id) == team_id, col(ImportBatch.id).in_(ids))
        )).all()  # fmt: skip
    figures = await enrollment_figures(db, team_id, {int(b[0] or 0): b[4] for b in batches})
    outcomes: dict[int, ImportOutcome] = {}
    for batch_id, status, new, added, _ in batches:
        found = figures.get(int(batch_id or 0), EnrollmentFigures())
        outcomes[int(batch_id or 0)] = ImportOutcome(str(status), int(new), int(added),
                                                     found.enrolled, found.sent, found.waiting)
    return outcomes
