"""Sending an enrollment's invites: each address at most once, whatever crashes or retries.

The invite row is the outbox. Before a message goes to the SMTP server its row becomes
`sending` in a committed transaction (together with the previous message's outcome, so it
costs one write per message); afterwards it becomes `sent`, `failed` (refused for good, or
out of retries), `queued` again (a 4xx or a connection that failed before the server could
have taken it: tried later) or `uncertain` (the connection failed after the message was
handed over: the server may have delivered it). A row still `sending` when the job starts
again belongs to a run that died mid-send: it becomes `uncertain`, never sent again by
itself; a person may choose Resend. A run that was only slow (its worker lost the job's lease)
starts no more invites, and its answer for the one in flight replaces that guess.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any, NamedTuple, NoReturn, Protocol
from urllib.parse import urlsplit

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import Act, record_in
from bot.campaigns.enroll import (
    INVITE_INVITED_BEFORE,
    NOT_SUBSCRIBED,
    SEND_JOB,
    UNSUBSCRIBED,
    consent_reason,
    excluded_reason,
    in_excluded_segment,
    send_after,
)
from bot.campaigns.invite_sql import ITS_ADVOCATE, has_its_advocate, left_by_a_dead_run
from bot.campaigns.links import referral_link, unsubscribe_link
from bot.campaigns.reports import INVITE_EMAIL_OFF
from bot.email.message import build_message, parse_sender, quoted
from bot.email.render import FALLBACK_LOCALE, Invite, choose_locale, render_invite
from bot.email.send import MailSender, SendResult, SendStatus, SmtpServerBusy, SmtpSetupError
from bot.jobs.queue import (
    cancel_jobs_in,
    database_now_in,
    due_in,
    due_params,
    enqueue_in,
    enqueue_pending_in,
    lease_now,
    runnable_kinds,
    take_running_in,
)
from bot.jobs.worker import DATABASE_DOWN, DATABASE_UNREACHABLE, WORKERS_DIED
from bot.words import plural
from models import CampaignState, Database, InviteState
from models.clock import utcnow

log = logging.getLogger(__name__)
# A 4xx (greylisting, a busy or throttling server) is retried 1, 2, 4 ... 64 minutes later:
# about two hours before an invite fails for good (five attempts gave up after 15 minutes of a
# provider's rate limit, failing a whole campaign's invites).
MAX_SEND_ATTEMPTS = 8
# The same permanent refusal for this many invites in a row, not about their addresses (a
# sender the provider hasn't verified, relaying denied): the server's, not the messages'.
SERVER_WIDE_STREAK = 3
# The enhanced status code (RFC 3463) opens the reply text, after the address a refusal at
# RCPT is quoted with: found anywhere, a fragment of an IP address (`[10.4.1.25]`) was read
# as one.
# The address's part before its first "@" holds none: "[^\s:]*@" cost a long run of "@" the
# square of its length.
_ENHANCED = re.compile(r"^\s*(?:[^\s:@]*@[^\s:]*:\s*)?([245]\.\d{1,3}\.\d{1,3})\b")
# Enhanced codes about the recipient: X.1.x (the address), X.2.1 (mailbox disabled), X.2.2
# (mailbox full). X.2.0 is not among them: Microsoft 365 refuses a From the login may not
# send as with 5.2.0, for every invite alike.
_ABOUT_RECIPIENT = re.compile(r"\d\.(1\.\d+|2\.[12])")
# A bare refusal at RCPT (no enhanced code first) that is a relay's of the bot itself, whatever
# the recipient: Exim's "550 relay not permitted", "authentication required", "Sender verify
# failed"; qmail's "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
_RELAY_REFUSED = re.compile(r"relay|rcpthosts|authenticat|not permitted|access denied|"
                            r"sender verify|not allowed|#5\.7\.\d", re.IGNORECASE)  # fmt: skip
_STAMP = UTCDateTime()
RETRY_BASE = timedelta(minutes=1)
# An invite the server took and then didn't answer for (a timeout, a dropped connection)
# stops the run, the rest left for a later one (send_later): a server that does it once most
# likely does it to the next, and going on made every invite left "uncertain" (maybe
# delivered), each after the SMTP timeout, with Resend uncertain the only way on, which
# emails twice everyone the server had in fact taken.
# ... but a run that sent this many before the one left uncertain starts send_later's count
# of waits again: a lost reply in twenty or more is a flaky line, and counted across runs
# that sent, sending stopped after two hours as "turned away"; a server losing every second
# reply, forgiven, went on leaving half the campaign uncertain.
UNCERTAIN_FORGIVEN_AFTER = 20
_SILENT_AFTER_DATA = ("the mail server stopped answering after it was handed an invite "
                      "({why}); the invites left wait for a later run")
PAGE = 500
SERVER_STAGE = "server"  # a result made up for the invite in hand when the server failed


def _ts(name: str) -> Any:
    return bindparam(name, type_=UTCDateTime())


_TIMES = ("now", "send_after", "sent_at")


def _timed(statement: str) -> Any:
    """text() with those of our timestamp parameters it has typed (a statement by PostgreSQL's
    clock has no :now where SQLite's binds it)."""
    return text(statement).bindparams(*(_ts(name) for name in _TIMES
                                        if re.search(rf":{name}\b", statement)))


@dataclass(frozen=True, slots=True)
class Links:
    public_url: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class _Campaign:
    id: int
    name: str
    store_url: str
    sender: str
    offer: str
    default_locale: str


# Invites a dead run left `sending`: it may or may not have handed them over. One a live run
# holds (its job still running under a lease the worker renews) is that run's to finish: two
# runs of one enrollment can overlap, e.g. a resend asked for while a long send goes on.
# A run only slow (a worker starved of CPU) may be alive after all: see _OUTCOME_OVER_GUESS.
_GUESSED = "the sender stopped while handing this invite to the mail server"
# A lease is compared by the clock it was stamped with (bot.jobs.queue: on PostgreSQL, the
# server's): a run on a host whose clock was ahead called a live run's invite in flight
# uncertain. By "is SQLite".
_CRASHED = {sqlite: text(f"""
    UPDATE invite SET state = 'uncertain', updated_at = :now, reason = '{_GUESSED}'
    WHERE team_id = :t AND enrollment_id = :e AND state = 'sending'
      AND (sender_job = :job OR {left_by_a_dead_run("invite", sqlite)})
    RETURNING id, locale
""").bindparams(_ts("now")) for sqlite in (True, False)}
# ... and the language it went in, as its run chose it: only an outcome wrote it, so its
# unsubscribe page (consent._RECIPIENT) spoke today's default, not the invite's
_CRASHED_LOCALES = text("""
    SELECT i.id, c.locale, w.default_locale FROM invite i
    JOIN contact c ON c.id = i.contact_id AND c.team_id = i.team_id
    LEFT JOIN workspace w ON w.team_id = i.team_id
    WHERE i.team_id = :t AND i.id IN :ids
""").bindparams(bindparam("ids", expanding=True))
_SET_LOCALE = text("UPDATE invite SET locale = :l WHERE id = :id AND team_id = :t "
                   "AND locale IS NULL")  # fmt: skip


async def _guess_crashed_in(conn: AsyncConnection, team_id: str, enrollment_id: int,
                            job_id: int | None) -> None:  # fmt: skip
    """The enrollment's invites a dead run left `sending` are uncertain (_CRASHED), with the
    language their run chose for them (choose_locale, as render_invite chooses it)."""
    guessed = (await conn.execute(_CRASHED[conn.dialect.name == "sqlite"], {
        "t": team_id, "e": enrollment_id, "now": utcnow(), "job": job_id})).all()  # fmt: skip
    unknown = [int(invite) for invite, locale in guessed if locale is None]
    if not unknown:
        return
    for invite, contact_locale, default in await conn.execute(
            _CRASHED_LOCALES, {"t": team_id, "ids": unknown}):
        chosen, _fell_back = choose_locale(contact_locale, default or FALLBACK_LOCALE)
        await conn.execute(_SET_LOCALE, {"l": chosen, "id": invite, "t": team_id})


_HAS_ITS_ADVOCATE = has_its_advocate("invite")

# Due by the clock due times are stamped with (bot.jobs.queue.lease_now: on PostgreSQL, the
# server's): a worker on a host whose clock was ahead sent held invites early, by its skew.
# By "is SQLite".
_DUE = {sqlite: _timed(f"""
    SELECT i.id, i.contact_id, c.email, c.first_name, c.last_name, c.locale, a.code,
           c.email_key
    FROM invite i
    JOIN contact c ON c.id = i.contact_id AND c.team_id = i.team_id
    JOIN advocate a ON {ITS_ADVOCATE.format(i="i")}
    WHERE i.team_id = :t AND i.enrollment_id = :e AND i.state IN ('queued', 'held')
      AND i.send_after <= {lease_now(sqlite)} AND i.id > :after
    ORDER BY i.id LIMIT :limit
""") for sqlite in (True, False)}

# Settings win over what is queued, up to the moment of sending: an invite starts only while
# its contact is subscribed (a file may withdraw consent after enrollment), in no segment the
# campaign excludes (an import put it in one after it was enrolled: only excluding
# the segment cancelled the waiting invites, so one who joined it later was emailed all the
# same) and its campaign is live with its invite email on (paused or turned off during a run).
# Lookups by primary key: the contact, the campaign, and per segment the campaign excludes
# (campaign_segment's key starts with campaign_id) the member row (segment_id, contact_id).
_IN_EXCLUDED_SEGMENT = in_excluded_segment("invite.contact_id", campaign="invite.campaign_id",
                                           team="invite.team_id")  # fmt: skip
_START_WHERE = f"""
    UPDATE invite SET state = 'sending', attempts = attempts + 1, updated_at = :now,
        sender_job = :job
    WHERE id = :id AND team_id = :t AND state IN ('queued', 'held')
      AND EXISTS (SELECT 1 FROM contact c WHERE c.id = invite.contact_id
                    AND c.team_id = invite.team_id AND c.subscribed)
      AND EXISTS (SELECT 1 FROM campaign p WHERE p.id = invite.campaign_id
                    AND p.team_id = invite.team_id AND p.state = 'live' AND p.invite_email)
      AND NOT {_IN_EXCLUDED_SEGMENT}
"""
_START_SQL = _START_WHERE + "RETURNING attempts"
# A run of a job starts an invite only while its job is still running: `jobs cancel` went
# unnoticed until the next heartbeat (every third of the lease), and invites kept going out.
_JOB_RUNNING = """SELECT 1 FROM job j WHERE j.id = :job AND j.team_id = :t
                    AND j.state = 'running'"""
# ... and, in a worker, only while that worker still holds the job's lease: one starved of
# CPU past its lease went on sending invites the worker that took the job over had called
# uncertain, or was sending itself.
_JOB_HELD = _JOB_RUNNING + " AND j.lease_owner = :owner"
_START_FOR_JOB_SQL = _START_WHERE + f"AND EXISTS ({_JOB_RUNNING})\nRETURNING attempts"
_START_HELD_SQL = _START_WHERE + f"AND EXISTS ({_JOB_HELD})\nRETURNING attempts"
# Why an invite didn't start (rare: see _START_SQL).
_NOT_STARTED = text("""
    SELECT i.state, c.subscribed, c.unsubscribed_at IS NOT NULL, p.state, p.invite_email,
           (SELECT s.name FROM campaign_segment cs
              JOIN segment_member x ON x.segment_id = cs.segment_id AND x.team_id = i.team_id
              JOIN segment s ON s.id = cs.segment_id AND s.team_id = i.team_id
            WHERE cs.campaign_id = i.campaign_id AND cs.team_id = i.team_id
              AND cs.role = 'exclude' AND x.contact_id = i.contact_id
            ORDER BY s.name_key LIMIT 1) AS excluded_by
    FROM invite i JOIN contact c ON c.id = i.contact_id AND c.team_id = i.team_id
    JOIN campaign p ON p.id = i.campaign_id AND p.team_id = i.team_id
    WHERE i.id = :id AND i.team_id = :t
""")
# An invite that won't start ends `not_emailed`, or `cancelled` when its contact is in a
# segment the campaign excludes, as excluding it cancels them (service.exclude), with the same
# reason: the advocate is invited again once the exclusion ends (enroll.invited_again).
_NOT_STARTING = text("""
    UPDATE invite SET state = :state, reason = :why, updated_at = :now
    WHERE id = :id AND team_id = :t AND state IN ('queued', 'held')
""").bindparams(_ts("now"))
# A retry is due by the shared clock (bot.jobs.queue.due_in): a run on a host whose clock was
# behind made a greylisted invite due again at once, by its skew. By "is SQLite".
_OUTCOME_SET = {sqlite: f"""
    UPDATE invite SET state = :state, reason = :reason,
        send_after = {due_in(sqlite, "send_after")},
        sent_at = :sent_at, locale = :locale, fell_back = :fell_back, updated_at = :now,
        attempts = attempts - :uncount
""" for sqlite in (True, False)}  # fmt: skip
# An outcome lands only on the attempt it is the answer to: the row's job is the run's
# (`sender_job`, NULL for a run outside a job) and its attempt count the one the run's start
# returned (each start adds one, so it tells two runs of one job apart too). A run only slow
# had its invite guessed uncertain by the worker that took its job over, a person clicked
# Resend uncertain, and the slow run's late answer landed on the resend's `sending` row: a
# late 4xx made it `queued` while the resend delivered it (whose `sent` then found no
# `sending` row), and a later run emailed that person again.
_OWN_ATTEMPT = {in_job: ("sender_job = :job" if in_job else "sender_job IS NULL")
                + " AND attempts = :attempt" for in_job in (True, False)}  # fmt: skip
_OUTCOME_SQLS = {(sqlite, in_job): _OUTCOME_SET[sqlite] + f"""
    WHERE id = :id AND team_id = :t AND state = 'sending' AND {_OWN_ATTEMPT[in_job]}
""" for sqlite in (True, False) for in_job in (True, False)}  # fmt: skip
# The run that handed an invite over and got the server's answer knows better than a run
# that took its job over meanwhile and guessed it uncertain (_CRASHED): left uncertain though
# delivered, the thread offered Resend uncertain, and a click emailed the person again. Not
# a retry's outcome: a Resend of the guess sends it once, but a queued invite whose run lost
# its job would wait with no job to send it. Only a run of a job (a guess needs one).
_OUTCOME_OVER_GUESS_SQL = {sqlite: _OUTCOME_SET[sqlite] + f"""
    WHERE id = :id AND team_id = :t AND {_OWN_ATTEMPT[True]} AND (state = 'sending'
        OR state = 'uncertain' AND reason = '{_GUESSED}')
""" for sqlite in (True, False)}  # fmt: skip
_START = text(_START_SQL).bindparams(_ts("now"))
_START_FOR_JOB = text(_START_FOR_JOB_SQL).bindparams(_ts("now"))
_START_HELD = text(_START_HELD_SQL).bindparams(_ts("now"))
_STILL_RUNNING = text(_JOB_RUNNING)
_STILL_HELD = text(_JOB_HELD)
# by their SQL, which _Outbox._outcome_sql chooses (SQLite runs the SQL itself)
_OUTCOMES = {sql: _timed(sql) for sql in (*_OUTCOME_SQLS.values(),
                                          *_OUTCOME_OVER_GUESS_SQL.values())}  # fmt: skip

_NEXT_DUE = text("""
    SELECT MIN(send_after) AS due FROM invite
    WHERE team_id = :t AND enrollment_id = :e AND state IN ('queued', 'held')
""").columns(due=UTCDateTime())


@dataclass
class _Pending:
    """An invite handed to the server, whose outcome is written with the next one's start."""

    id: int
    attempts: int
    result: SendResult | None = None
    locale: str | None = None
    fell_back: bool = False


def _outcome(p: _Pending, now: datetime) -> dict[str, Any]:
    """The invite's outcome as the outcome statements take it, but for its due time:
    `send_in`, the wait before it is tried again (None: not again), which `_Outbox.write`
    binds as the statement's dialect needs (due_params)."""
    result = p.result
    assert result is not None
    values: dict[str, Any] = {"id": p.id, "attempt": p.attempts, "locale": p.locale,
                              "fell_back": p.fell_back, "send_in": None, "sent_at": None,
                              "reason": None, "uncount": 0}  # fmt: skip
    if result.stage == SERVER_STAGE:  # the run stopped before this one went out: no attempt
        values.update(state="queued", reason=f"will retry: {result.text}"[:500],
                      send_in=timedelta(0), uncount=1)  # fmt: skip
    elif result.status is SendStatus.RETRY:
        why = result.text or "not sent"
        if p.attempts >= MAX_SEND_ATTEMPTS:
            why = f"gave up after {p.attempts} attempts: {why}"
            values.update(state="failed", reason=why[:500])
        else:
            values.update(state="queued", reason=f"will retry: {why}"[:500],
                          send_in=RETRY_BASE * 2 ** (p.attempts - 1))  # fmt: skip
    elif result.status is SendStatus.SENT:
        values.update(state="sent", sent_at=now)
    elif result.status is SendStatus.REFUSED:
        # a refusal made here (an address the server can't take) has no code: "refused: None …"
        said = " ".join(str(part) for part in (result.code, result.text) if part)
        values.update(state="failed", reason=f"refused: {said}"[:500])
    else:
        values.update(state="uncertain", reason=f"may have been delivered: {result.text}"[:500])
    return values


class _Outbox:
    """Writes each invite's step on the send run's own connection.

    Taking a connection from the pool for each invite (which resets it on return) cost about
    a sixth of the send job's CPU; on SQLite each step also skips SQLAlchemy and goes to the
    driver in three hand-offs to its thread (statement, statement, commit) instead of seven.
    """

    def __init__(self, conn: AsyncConnection, team_id: str, job: int | None,
                 owner: str | None) -> None:  # fmt: skip
        self.conn, self.team_id, self.job, self.owner = conn, team_id, job, owner
        self._sqlite = conn.dialect.name == "sqlite"
        self._raw: Any = None
        self._stamp = _STAMP.bind_processor(conn.dialect)
        # a run outside a job starts any invite; one of a job only while it runs, and held
        # by this worker if it says which it is
        self._start_sql = (_START_SQL if job is None else _START_FOR_JOB_SQL if owner is None
                           else _START_HELD_SQL)  # fmt: skip
        self._start = (_START if job is None else _START_FOR_JOB if owner is None
                       else _START_HELD)  # fmt: skip

    def _over_guess(self, outcome: dict[str, Any]) -> bool:
        """Whether the outcome also lands on its invite if a run that took this run's job over
        guessed it uncertain meanwhile (see _OUTCOME_OVER_GUESS_SQL)."""
        return self.job is not None and outcome["state"] != "queued"

    def _outcome_sql(self, outcome: dict[str, Any]) -> str:
        """The statement that writes `outcome` on its own attempt only (_OWN_ATTEMPT)."""
        if self._over_guess(outcome):
            return _OUTCOME_OVER_GUESS_SQL[self._sqlite]
        return _OUTCOME_SQLS[self._sqlite, self.job is not None]

    async def write(self, done: _Pending | None, start: int | None) -> int | None:
        """Record `done`'s outcome and mark `start` as sending, in one transaction.

        Returns the started invite's attempt number, or None if it is no longer to be sent
        (cancelled, unsubscribed meanwhile)."""
        now = utcnow()
        # without a result nobody knows whether the server took it: it stays `sending`, and
        # the next run calls it uncertain
        outcome = None
        if done is not None and done.result is not None:
            outcome = _outcome(done, now)
            outcome.update(due_params(self._sqlite, "send_after", outcome.pop("send_in"), now),
                           t=self.team_id, now=now, job=self.job)  # fmt: skip
        started = None
        if start is not None:
            started = {"id": start, "t": self.team_id, "now": now, "job": self.job,
                       "owner": self.owner}  # fmt: skip
        if self._sqlite:
            return await self._sqlite_write(outcome, started)
        async with self.conn.begin():
            if outcome is not None:
                await self.conn.execute(_OUTCOMES[self._outcome_sql(outcome)], outcome)
            if started is None:
                return None
            row = (await self.conn.execute(self._start, started)).first()
            return int(row[0]) if row else None

    async def _sqlite_write(self, outcome: dict[str, Any] | None,
                            started: dict[str, Any] | None) -> int | None:  # fmt: skip
        """The same two statements in one transaction on aiosqlite's connection, timestamps
        stored as SQLAlchemy stores them."""
        if self._raw is None:
            self._raw = (await self.conn.get_raw_connection()).driver_connection
        raw, stamp = self._raw, self._stamp

        def prepared(params: dict[str, Any]) -> dict[str, Any]:
            return {k: stamp(v) if k in _TIMES and v is not None else v  # type: ignore[misc]
                    for k, v in params.items()}  # fmt: skip

        try:
            if outcome is not None:
                await raw.execute(self._outcome_sql(outcome), prepared(outcome))
            rows: list[Any] = []
            if started is not None:
                rows = list(await raw.execute_fetchall(self._start_sql, prepared(started)))
            await raw.commit()
        except BaseException:
            await raw.rollback()
            raise
        return int(rows[0][0]) if rows else None


async def _campaign(db: Database, team_id: str, enrollment_id: int) -> _Campaign | None:
    async with db.begin() as conn:
        row = (await conn.execute(text("""
            SELECT c.id, c.name, c.store_url, c.sender, c.offer, c.state, w.default_locale
            FROM enrollment e JOIN campaign c ON c.id = e.campaign_id
            JOIN workspace w ON w.team_id = e.team_id
            WHERE e.id = :e AND e.team_id = :t"""), {"e": enrollment_id, "t": team_id})).first()
    if row is None:
        return None
    cid, name, store_url, sender, offer, state, locale = row
    if state == "paused":
        return None  # queued invites wait until it is live again
    return _Campaign(cid, name, store_url, sender, offer, locale)


class _Named(Protocol):
    """What names a campaign's store: a Campaign row, or the send run's _Campaign."""

    sender: str
    store_url: str
    name: str


def _store_name(campaign: _Named) -> str:
    display, _ = parseaddr(campaign.sender)
    return display or urlsplit(campaign.store_url).hostname or campaign.name


def default_from(campaign: _Named, public_url: str) -> str:
    """The From of a campaign without a sender: its store's name, quoted (a store at
    http://[2001:db8::1]/ read as the group "2001:" and its invites came from "1"), at
    `invites@` PUBLIC_URL's host; service.default_sender tells it as it is."""
    host = urlsplit(public_url).hostname or "localhost"
    return f"{quoted(_store_name(campaign))} <invites@{host}>"


Progress = Callable[[], Awaitable[None]]


async def send_invites(
    db: Database, team_id: str, enrollment_id: int, *, sender: MailSender, links: Links,
    on_progress: Progress | None = None, checkpoint: Callable[[], None] | None = None,
    job_id: int | None = None, lease_owner: str | None = None,
) -> None:  # fmt: skip
    """Send the enrollment's due invites over one connection; schedule the rest for later.

    `job_id`: the job this run is (None outside one), named on each invite while it is being
    handed over, so that another run of the enrollment leaves that invite to this one.
    `lease_owner`: the worker running that job; once another holds its lease (this one was
    too slow to renew it), the run starts no more invites and leaves the rest to it."""
    async with db.begin() as conn:
        await _guess_crashed_in(conn, team_id, enrollment_id, job_id)
    campaign = await _campaign(db, team_id, enrollment_id)
    if campaign is None:
        return
    if not links.secret_key:
        raise SmtpSetupError("SECRET_KEY is not set: invites need it to sign unsubscribe links.")
    from_header = campaign.sender or default_from(campaign, links.public_url)
    try:  # checked once, before any invite is `sending`: no message could be built
        parse_sender(from_header)
    except ValueError:
        raise SmtpSetupError(f"The sender of {campaign.name}, {from_header!r}, isn't one "
                             "address like 'Shop <hello@shop.example>': edit the campaign."
                             ) from None
    pending: _Pending | None = None
    after, last_report, paused, cancelled = 0, time.monotonic(), False, False
    streak: list[int] = []  # the invites refused in a row the same server-wide-looking way
    domains: set[str] = set()  # their addresses' domains
    streak_of: _Refusal | None = None
    sent_here = 0  # told to the caller with a SmtpServerBusy (send_later's count)
    tried_here = 0  # invites handed to the server this run
    page = await _due(db, team_id, enrollment_id, after)
    if not page:  # nothing due (held, delayed, or all done): no connection at all
        async with db.begin() as conn:
            if await take_running_in(conn, team_id, job_id, lease_owner):
                await _schedule_rest_in(conn, team_id, enrollment_id)
        return
    # A run that raises leaves the rest to its own job's retry (or, on its last attempt, to
    # a person: see stop_sending): a new job per failed run would multiply them.
    try:
        async with db.engine.connect() as conn, sender:
            outbox = _Outbox(conn, team_id, job_id, lease_owner)
            while page:
                for invite_id, contact_id, email, first, last, locale, code, email_key in page:
                    after = invite_id
                    if checkpoint is not None:
                        checkpoint()
                    attempts = await outbox.write(pending, invite_id)
                    pending = None
                    if attempts is None:
                        if not await _job_running(db, team_id, job_id, lease_owner):
                            # `jobs cancel`, or another worker took the job: the rest stay
                            # queued (for that worker)
                            cancelled, page = True, []
                            break
                        if await _not_started(db, team_id, invite_id) == _PAUSED:
                            paused, page = True, []  # the rest wait for it to go live again
                            break
                        continue
                    invite = Invite(
                        to_email=email, first_name=first, last_name=last, locale=locale,
                        store_name=_store_name(campaign), store_url=campaign.store_url,
                        offer=campaign.offer, referral_link=referral_link(links.public_url, code),
                        unsubscribe_url=unsubscribe_link(links.public_url, links.secret_key,
                                                         team_id, contact_id, email_key),
                        sender=from_header,
                        # the advocate's code, never reused (a contact's id may be)
                        message_key=f"{team_id}-c{campaign.id}-{code}",
                        default_locale=campaign.default_locale,
                    )  # fmt: skip
                    rendered = render_invite(invite)
                    pending = _Pending(invite_id, attempts, locale=rendered.locale,
                                       fell_back=rendered.fell_back)  # fmt: skip
                    tried_here += 1
                    pending.result = result = await sender.send(
                        build_message(invite, rendered, public_host=links.public_url)
                    )
                    if not result.sent:
                        _log_outcome(team_id, enrollment_id, invite_id, result)
                    sent_here += result.sent
                    if result.status is SendStatus.UNCERTAIN:
                        silent = SmtpServerBusy(_SILENT_AFTER_DATA.format(why=result.text))
                        silent.uncertain = True
                        raise silent
                    seen = _server_wide(result, email)
                    domain = email.rpartition("@")[2].casefold()
                    if seen is None or seen != streak_of:
                        streak, domains = ([invite_id], {domain}) if seen else ([], set())
                    elif not (seen.bare_rcpt and domain in domains):  # a bare RCPT refusal
                        # counts once per domain (its server may say its mailboxes don't exist)
                        streak, domains = [*streak, invite_id], domains | {domain}
                    streak_of = seen
                    if len(streak) >= SERVER_WIDE_STREAK:
                        await _server_wide_streak(db, team_id, streak, pending, result)
                    if on_progress is not None and time.monotonic() - last_report > 2:
                        last_report = time.monotonic()
                        await on_progress()
                page = page and await _due(db, team_id, enrollment_id, after)
            if (pending is not None and pending.result is not None and streak
                    and len(streak) == tried_here and streak_of and streak_of.code >= 500
                    and not streak_of.bare_rcpt
                    and not await _ever_sent(db, team_id, enrollment_id)):  # fmt: skip
                # every invite this run tried was refused the same server-wide way, fewer
                # than the streak needs, and none of the enrollment's ever went (an
                # enrollment of two meeting SES's "not verified" From): failed for good,
                # nothing could send them once the sender was fixed. Once one went, the
                # sender is fine: a later run's one or two refusals are their own (a stop
                # then met the same invite first at every Retry sending)
                await _server_wide_streak(db, team_id, streak, pending, pending.result)
    except SmtpSetupError as exc:  # the server, not a message: stop the run (see send.py)
        if isinstance(exc, SmtpServerBusy):
            exc.sent_before = sent_here
        if pending is not None and pending.result is None:
            pending.result = SendResult(SendStatus.RETRY, "", text=str(exc), stage=SERVER_STAGE)
        raise
    finally:
        async with db.engine.connect() as conn:
            await _Outbox(conn, team_id, job_id, lease_owner).write(pending, None)
    # a job cancelled while its last invite was in flight: its run neither queues another
    # nor ends the stop `jobs cancel` reported (Retry sending does); one another worker took
    # over is that worker's to finish. The job is taken in the transaction that queues the
    # next run (take_running_in): checked in one of its own, a cancel committed between the
    # two left that run queued, undoing the cancel.
    if cancelled:
        return
    async with db.begin() as conn:
        if not await take_running_in(conn, team_id, job_id, lease_owner):
            return
        if not paused:  # going live again schedules them (schedule_waiting_in)
            await _schedule_rest_in(conn, team_id, enrollment_id)
        await _sending_again_in(conn, team_id, enrollment_id)
    if on_progress is not None:
        await on_progress()


_PAUSED = "paused"
_EVER_SENT = text("SELECT 1 FROM invite WHERE team_id = :t AND enrollment_id = :e "
                  "AND state IN ('sent', 'uncertain') LIMIT 1")


async def _ever_sent(db: Database, team_id: str, enrollment_id: int) -> bool:
    """Whether an invite of the enrollment went (or may have): its sender works."""
    async with db.begin() as conn:
        return (await conn.execute(_EVER_SENT, {"t": team_id, "e": enrollment_id})).first() \
            is not None


def _steady_words(said: str) -> str:
    r"""The reply's words without those that differ from message to message (queue and
    transaction ids, counts, addresses: a digit or an "@" in them; Gmail ends every reply with
    one, `a1234567sm123456wrx.0 - gsmtp`), one space apart. Word by word: a regex
    (`\S*[\d@]\S*`) tried every word again from each of its letters, the square of a long
    one's length."""
    return " ".join(word for word in said.split()
                    if not any(c == "@" or c.isdecimal() for c in word))  # fmt: skip


class _Refusal(NamedTuple):
    """A refusal as the server's own would look (_server_wide): two are the same refusal when
    all of these are equal."""

    stage: str
    code: int
    enhanced: str  # "" when the server gave no enhanced code
    words: str  # without the address, ids and numbers
    bare_rcpt: bool  # at RCPT, without an enhanced code


def _server_wide(result: SendResult, recipient: str) -> _Refusal | None:
    """What a refusal would be if it were the server's rather than this message's: its stage,
    code, enhanced code and words (without the address, ids and numbers, which differ from
    message to message), and whether it is a bare refusal at RCPT (no enhanced code: only
    one in a relay's words counts, and a streak of them counts each domain once: the relay
    may be the recipient domain's own server); None when it is about the recipient (an
    enhanced code X.1.x, X.2.1 or X.2.2, a bare RCPT refusal in other words). A 4xx counts
    too: the same one for invite after invite is a provider's rate limit or quota (SES's 454
    at the end of DATA), not each invite's; a single one is retried per invite (greylisting
    passes at the first retry)."""
    code = result.code
    if result.sent or code is None or not 400 <= code < 600:
        return None
    enhanced = _ENHANCED.match(result.text)
    if enhanced is not None and _ABOUT_RECIPIENT.fullmatch(enhanced[1]):
        return None
    if enhanced is None and result.stage == "rcpt" and not _RELAY_REFUSED.search(result.text):
        return None  # a dead domain's "550 Unrouteable address": three in a row on a big
        # list stopped the campaign, the same three first at every Retry sending
    said = re.sub(re.escape(recipient), "", result.text, flags=re.IGNORECASE)
    words = _steady_words(said)
    return _Refusal(result.stage, code, enhanced[1] if enhanced else "", words,
                    enhanced is None and result.stage == "rcpt")  # fmt: skip


async def _server_wide_streak(db: Database, team_id: str, streak: list[int],
                              pending: _Pending, result: SendResult) -> NoReturn:  # fmt: skip
    """Stop the run: `streak`'s invites were refused the same way, the server's refusal
    (`result`, the last's), not theirs. Their attempts are given back; a 5xx is a setting to
    fix (SmtpSetupError), a 4xx a limit to wait out (SmtpServerBusy: later runs, then
    *Retry sending*), either way without failing an invite for good."""
    busy = result.code is not None and result.code < 500
    how = (f"{len(streak)} invites in a row" if len(streak) >= SERVER_WIDE_STREAK else
           f"every invite this run tried ({len(streak)})")  # fmt: skip
    why = (f"the mail server {'turned away' if busy else 'refused'} {how} the same way, which "
           f"is about {'a sending limit or quota' if busy else 'the sender or the server'}, "
           f"not the addresses: {result.code} {result.text}")  # fmt: skip
    await _server_refused(db, team_id, streak[:-1], why)
    pending.result = SendResult(SendStatus.RETRY, "", text=why, stage=SERVER_STAGE)
    raise (SmtpServerBusy if busy else SmtpSetupError)(why)


_RESTORE = {sqlite: text(f"""
    UPDATE invite SET state = 'queued', attempts = attempts - 1, reason = :why,
        send_after = {lease_now(sqlite)}, updated_at = :now
    WHERE team_id = :t AND state IN ('failed', 'queued') AND id IN :ids
""").bindparams(bindparam("ids", expanding=True), _ts("now")) for sqlite in (True, False)}


async def _server_refused(db: Database, team_id: str, streak: list[int], why: str) -> None:
    """The refusals of a server-wide streak weren't the invites': back to queued (a 5xx
    failed them, a 4xx queued them for later), due now, their attempts given back (the last
    is still in hand)."""
    async with db.begin() as conn:
        await conn.execute(_RESTORE[conn.dialect.name == "sqlite"], {
            "t": team_id, "ids": streak, "now": utcnow(), "why": f"will retry: {why}"[:500]})


async def _job_running(db: Database, team_id: str, job_id: int | None,
                       owner: str | None) -> bool:  # fmt: skip
    """Whether the run's job is still running (not cancelled by `jobs cancel`), held by
    `owner` if given (not taken over by another worker); a run outside a job always is."""
    if job_id is None:
        return True
    still = _STILL_RUNNING if owner is None else _STILL_HELD
    async with db.begin() as conn:
        row = (await conn.execute(still, {"job": job_id, "t": team_id, "owner": owner})).first()
    return row is not None


_SEND_JOBS_WAITING = ("kind = :kind AND state = 'queued' "
                      "AND (dedupe_key = :key OR dedupe_key LIKE :keys)")


async def cancel_send_jobs_in(conn: AsyncConnection, team_id: str, enrollment_id: int) -> int:
    """Cancel the enrollment's send jobs waiting to run, in the caller's transaction: someone
    stopped its sending (`jobs cancel`), and a run that ended just before had queued the next
    (retries, delayed invites), or a Resend had queued one, which would have sent anyway."""
    key = f"send:{enrollment_id}"  # enroll's first job; _enqueue_send's have more after it
    return len(await cancel_jobs_in(conn, team_id, _SEND_JOBS_WAITING, kind=SEND_JOB, key=key,
                                    keys=f"{key}:%"))  # fmt: skip


async def _not_started(db: Database, team_id: str, invite_id: int) -> str | None:
    """An invite that didn't start: one whose contact is now in a segment the campaign
    excludes is cancelled (invited again if the exclusion ends); one whose contact
    unsubscribed or is no longer subscribed, or whose campaign's invite email is off, will
    never be sent (said on the invite); one whose campaign isn't live waits (_PAUSED); one
    another run took or someone cancelled is left as it is."""
    async with db.begin() as conn:
        row = (await conn.execute(_NOT_STARTED, {"id": invite_id, "t": team_id})).first()
        if row is None or row[0] not in ("queued", "held"):
            return None
        _, subscribed, unsubscribed, campaign_state, invite_email, excluded_by = row
        if campaign_state != "live":
            return _PAUSED
        state, why = "not_emailed", None
        if excluded_by is not None:
            state, why = "cancelled", excluded_reason(str(excluded_by))
        elif not subscribed:  # a file may have withdrawn consent: not an unsubscribe
            why = UNSUBSCRIBED if unsubscribed else NOT_SUBSCRIBED
        elif not invite_email:
            why = INVITE_EMAIL_OFF
        if why is not None:
            await conn.execute(_NOT_STARTING, {"id": invite_id, "t": team_id, "state": state,
                                               "why": why, "now": utcnow()})  # fmt: skip
        return why


_STOP = text("UPDATE enrollment SET send_error = :why WHERE id = :e AND team_id = :t")
# conditional: the one that clears it (Retry sending, or a run that got through) knows it did
_CLEAR_STOP = text("UPDATE enrollment SET send_error = NULL "
                   "WHERE id = :e AND team_id = :t AND send_error IS NOT NULL")


SEND_JOB_CANCELLED = "its send job was cancelled."  # `jobs cancel`: nothing to fix first
# A server that turned the bot away (no connection, a 4xx at MAIL FROM) gets a later run,
# 1, 2, 4 ... 64 minutes on, as an invite's own 4xx does: about two hours, then sending stops.
# Two hours or more: a server silent after the end of DATA costs each run its 10 minutes too.
SERVER_WAITS = MAX_SEND_ATTEMPTS - 1
_TURNED_AWAY = "the mail server turned the bot away for two hours or more"
# What every wording of that stop starts with: a stop saved before it read "... for about two
# hours", and was told to fix the mail settings once the wording changed
_TURNED_AWAY_START = "the mail server turned the bot away for "


def stop_remedy(why: str | None) -> str:
    """How a stop of sending (its reason `why`) is put right, for every surface that says
    so: "retry" (someone stopped it: retrying sends), "wait" (the server turned the bot away
    for a while: retry, and if it keeps happening check the provider's sending limits),
    "workers" (the workers died or the database was out: nothing of the mail settings; retry,
    and if it keeps happening read the workers' log), or "settings" (fix the mail settings
    first)."""
    if stopped_by_hand(why):
        return "retry"
    if (why or "").startswith(WORKERS_DIED) or why in (DATABASE_DOWN, DATABASE_UNREACHABLE):
        return "workers"
    return "wait" if server_turned_away(why) else "settings"


def server_turned_away(why: str | None) -> bool:
    """Whether sending stopped because the server kept turning the bot away for a while (a
    provider's throttle or an outage), which fixing the mail settings may not help."""
    return (why or "").startswith(_TURNED_AWAY_START)


# an enrollment's invites still to send (a held one is too: its run comes at its time)
_ANY_LEFT = text("SELECT 1 FROM invite WHERE team_id = :t AND enrollment_id = :e "
                 "AND state IN ('queued', 'held') LIMIT 1")


async def send_later(db: Database, team_id: str, enrollment_id: int, waited: int,
                     job_id: int | None, why: str) -> str | None:  # fmt: skip
    """The server turned the run away (`why`) after `waited` waits in a row with nothing
    sent: queue a send job after the next, longer wait (none if nothing is left to send)
    and return None, or, once it has waited about two hours, return why sending stops. The
    job's own quick retries (5 s doubling) spent its attempts in about a minute and a half
    of a provider's throttle."""
    async with db.begin() as conn:
        if not await take_running_in(conn, team_id, job_id):
            return None  # cancelled meanwhile: nothing to send later
        if not (await conn.execute(_ANY_LEFT, {"t": team_id, "e": enrollment_id})).first():
            return None  # the run's last invite: a later run would find nothing to send
        if waited >= SERVER_WAITS:
            return f"{_TURNED_AWAY}: {why}"
        when = await database_now_in(conn) + RETRY_BASE * 2 ** waited  # by the shared clock
        await _enqueue_send(conn, team_id, enrollment_id, when, occasion=f"wait{waited + 1}",
                            payload={"server_waits": waited + 1})  # fmt: skip
    return None


# Due invites waiting for a sender are counted up to this many, in all: with a million due
# and no sender running, each Home publish counted every one of them. Past it, counting stops
# and each campaign found says "more than 1,000" (WAITING_MORE).
WAITING_COUNTED = 1_000
WAITING_MORE = WAITING_COUNTED + 1

# Invites of live campaigns due to go out, whose sending hasn't stopped: each one's send job
# runs once a worker that can send takes it (bot.campaigns.jobs.send_handlers). Due by the
# shared clock (bot.jobs.queue.lease_now): an invite held or delayed waits for its time, not
# for a worker. The first :counted found, on ix_invite_due (team, state, send_after): the due
# ones only, never the delayed. By "is SQLite".
_WAITING_TO_GO = {sqlite: _timed(f"""
    SELECT campaign_id, COUNT(*) FROM (
        SELECT i.campaign_id FROM invite i
        JOIN campaign p ON p.id = i.campaign_id AND p.team_id = i.team_id
        JOIN enrollment e ON e.id = i.enrollment_id AND e.team_id = i.team_id
        WHERE i.team_id = :t AND i.state IN ('queued', 'held') AND p.state = 'live'
          AND e.send_error IS NULL AND i.send_after <= {lease_now(sqlite)}
        LIMIT :counted) due
    GROUP BY campaign_id
""") for sqlite in (True, False)}


async def waiting_for_a_sender(db: Database, team_id: str,
                               lease_seconds: float) -> dict[int, int]:  # fmt: skip
    """Invites of live campaigns due to go out while no running worker can send them (none
    has what bot.campaigns.jobs.cannot_send names, or the one that had it died), by campaign
    id; empty while one can. A worker that can't send leaves their jobs queued: `campaign
    list` says they wait, and what such a worker needs (bot.campaigns.jobs.SEND_NEEDS).

    Counted up to WAITING_COUNTED in all (Home asks on each publish): past it each campaign
    found maps to WAITING_MORE, said "more than 1,000" (`waiting_words`). How many of the
    first found were whose says nothing of the rest, so no campaign is given a number then."""
    if SEND_JOB in await runnable_kinds(db, lease_seconds):
        return {}
    async with db.begin() as conn:
        rows = (await conn.execute(_WAITING_TO_GO[conn.dialect.name == "sqlite"],
                                   {"t": team_id, "now": utcnow(),
                                    "counted": WAITING_MORE})).all()  # fmt: skip
    found = {int(campaign): int(count) for campaign, count in rows}
    if sum(found.values()) > WAITING_COUNTED:
        return dict.fromkeys(found, WAITING_MORE)
    return found


# Which of some workspaces have a due invite of the kind `_WAITING_TO_GO` counts: one probe
# each on ix_invite_due, stopping at the first found, so a change in who can send (a worker's
# start or stop: bot.home_refresh) reads an invite or so a workspace, not every due one. A
# scalar subquery with LIMIT 1, not EXISTS: PostgreSQL made the EXISTS a semi-join over all
# the workspaces' due invites (200,000 of one workspace: 227 ms against 1 ms).
_HAS_DUE = {sqlite: _timed(f"""
    SELECT w.team_id FROM workspace w
    WHERE w.team_id IN :teams AND (
        SELECT i.id FROM invite i
        JOIN campaign p ON p.id = i.campaign_id AND p.team_id = i.team_id
        JOIN enrollment e ON e.id = i.enrollment_id AND e.team_id = i.team_id
        WHERE i.team_id = w.team_id AND i.state IN ('queued', 'held') AND p.state = 'live'
          AND e.send_error IS NULL AND i.send_after <= {lease_now(sqlite)}
        LIMIT 1) IS NOT NULL
""").bindparams(bindparam("teams", expanding=True)) for sqlite in (True, False)}
_TEAMS_AT_ONCE = 1_000  # workspaces per probe statement: well within either's parameters


async def with_invites_due_in(conn: AsyncConnection, team_ids: Sequence[str]) -> list[str]:
    """Those of the workspaces with invites due that only a worker able to send sends: what
    `waiting_for_a_sender` counts while none runs. In the caller's transaction."""
    found: list[str] = []
    statement = _HAS_DUE[conn.dialect.name == "sqlite"]
    for start in range(0, len(team_ids), _TEAMS_AT_ONCE):
        teams = list(team_ids[start:start + _TEAMS_AT_ONCE])
        rows = await conn.execute(statement, {"teams": teams, "now": utcnow()})
        found += [str(team) for (team,) in rows]
    return found


def waiting_words(count: int) -> str:
    """How a campaign's count of `waiting_for_a_sender` is said, lower case, for the lines
    under it (Home, Slack's and the shell's campaign list): "2 invites are due", or, past
    the count (WAITING_MORE), "more than 1,000 invites of live campaigns are due, some of
    them this one's" (the count stopped over all of them). The lines go on with "but no
    running worker can send it" (one invite) or "them": `waiting_pronoun`."""
    if count >= WAITING_MORE:
        return (f"more than {WAITING_COUNTED:,} invites of live campaigns are due, some of "
                "them this one's")  # fmt: skip
    return f"{count:,} invite{'' if count == 1 else 's'} {'is' if count == 1 else 'are'} due"


def waiting_pronoun(count: int) -> str:
    """"it" for the one invite `waiting_words` said, "them" for more."""
    return "it" if count == 1 else "them"


def uncertain_words(count: int) -> str:
    """How a campaign's invites that may not have arrived are said in its list (Slack's and
    the shell's), before what resends them (`waiting_pronoun`)."""
    return (f"{count:,} invite{'' if count == 1 else 's'} may not have arrived (no answer came "
            f"once {'it' if count == 1 else 'they'} went to the mail server)")


def stopped_by_hand(why: str | None) -> bool:
    """Whether sending stopped because someone cancelled it, not for the mail settings: the
    advice beside it said "fix the mail settings" to someone who had only cancelled it."""
    return (why or "").strip() == SEND_JOB_CANCELLED


async def stop_sending_in(conn: AsyncConnection, team_id: str, enrollment_id: int,
                          why: str) -> bool:  # fmt: skip
    """Sending stops with `why` in the enrollment's report (queued invites stay queued, with
    no job, until Retry sending), in the caller's transaction. False if there is no such
    enrollment."""
    result = await conn.execute(_STOP, {"why": why[:500], "e": enrollment_id, "t": team_id})
    return result.rowcount == 1


async def stop_sending(db: Database, team_id: str, enrollment_id: int, why: str,
                       job_id: int | None = None) -> bool:  # fmt: skip
    """The send job `job_id` gave up: sending stops (stop_sending_in), and an invite its dead
    run left `sending` is uncertain now (no later run of this job will say so)."""
    async with db.begin() as conn:
        stopped = await stop_sending_in(conn, team_id, enrollment_id, why)
        await _guess_crashed_in(conn, team_id, enrollment_id, job_id)
    return stopped


# Not those of an enrollment whose sending stopped (send_error: its job cancelled by hand,
# the mail settings refused, the server turned the bot away): editing the delay or going live
# again restarted what someone had stopped on purpose; Retry sending is what restarts it.
# The enrollments' rows are taken (a conditional UPDATE), not only read: a `jobs cancel` of
# a send job stops its enrollment's sending and then cancels its waiting send jobs
# (cancel._stop_sending_in); read unlocked, an enrollment whose stop wasn't committed yet got
# a job the cancel didn't see, which sent what had been stopped. Taken, one waits for the
# other: after a stop this finds it stopped; before one, the cancel sees the job queued here.
_TAKE_WAITING = text("""
    UPDATE enrollment SET send_error = send_error
    WHERE team_id = :t AND campaign_id = :c AND send_error IS NULL
      AND id IN (SELECT enrollment_id FROM invite
                 WHERE team_id = :t AND campaign_id = :c AND state IN ('queued', 'held'))
    RETURNING id
""")
_WAITING_DUE = text("""
    SELECT MIN(send_after) AS due FROM invite
    WHERE team_id = :t AND enrollment_id = :e AND state IN ('queued', 'held')
""").columns(due=UTCDateTime())


async def schedule_waiting_in(conn: AsyncConnection, team_id: str, campaign_id: int) -> None:
    """A campaign goes live again: its invites that waited while it was paused get their
    send jobs (a run during the pause sent nothing and left none), in the caller's
    transaction."""
    taken = (await conn.execute(_TAKE_WAITING, {"t": team_id, "c": campaign_id})).scalars()
    now = await database_now_in(conn)  # the clock `due` was stamped by
    for enrollment_id in sorted(int(e) for e in taken):
        due = (await conn.execute(_WAITING_DUE, {"t": team_id, "e": enrollment_id})).scalar()
        if due is None:
            continue
        await _enqueue_send(conn, team_id, enrollment_id, max(due, now), occasion="live")


# Invites still waiting for their first attempt, of the campaign's enrollments: a retry or a
# resend keeps the time it was given.
_UNTRIED_WAITING = """
    WHERE team_id = :t AND campaign_id = :c AND state IN ('queued', 'held') AND attempts = 0
      AND reason IS NULL
"""
_ENROLLMENTS_WAITING = text(f"""
    SELECT e.id, e.created_at, e.hold_until FROM enrollment e
    WHERE e.team_id = :t AND e.id IN (SELECT enrollment_id FROM invite {_UNTRIED_WAITING})
""").columns(created_at=UTCDateTime(), hold_until=UTCDateTime())
_RESCHEDULE = text(f"""
    UPDATE invite SET send_after = :due, updated_at = :now
    {_UNTRIED_WAITING} AND enrollment_id = :e
""").bindparams(_ts("due"), _ts("now"))


async def reschedule_waiting_in(conn: AsyncConnection, team_id: str, campaign_id: int,
                                delay_days: int, *, live: bool) -> None:  # fmt: skip
    """The campaign's invite delay changed: invites not sent yet wait that long after their
    enrollment instead (still past its hold), and a live campaign's enrollments get send jobs
    for the new times, in the caller's transaction. A merchant who set 7 days by mistake and
    then 0 expects the invites to go now, not a week later.

    Due by the shared clock (bot.jobs.queue.lease_now), as enrolling made them: from the
    enrollment's created_at and hold_until, both stamped by it (service._enroll_in,
    enroll.run_enrollment), never this host's clock; created_at stamped by the host that
    asked for the enrollment delayed the invites by its skew when it was ahead, and sent
    them early when it was behind."""
    params = {"t": team_id, "c": campaign_id}
    for enrollment_id, enrolled_at, hold_until in (
            await conn.execute(_ENROLLMENTS_WAITING, params)).all():  # fmt: skip
        due = send_after(enrolled_at, hold_until, delay_days)
        await conn.execute(_RESCHEDULE, {**params, "e": enrollment_id, "due": due,
                                         "now": utcnow()})  # fmt: skip
    if live:
        await schedule_waiting_in(conn, team_id, campaign_id)


_INVITE_EMAIL_OFF = text("""
    UPDATE invite SET state = 'not_emailed', reason = :off, updated_at = :now
    WHERE team_id = :t AND campaign_id = :c AND state IN ('queued', 'held')
""").bindparams(_ts("now"))


async def stop_invites_in(conn: AsyncConnection, team_id: str, campaign_id: int) -> int:
    """The campaign's invite email was turned off: its invites not yet sent never will be
    (someone else, Klaviyo say, invites them), in the caller's transaction."""
    result = await conn.execute(_INVITE_EMAIL_OFF, {"t": team_id, "c": campaign_id,
                                                    "off": INVITE_EMAIL_OFF, "now": utcnow()})
    return int(result.rowcount)


async def retry_sending(db: Database, team_id: str, enrollment_id: int) -> bool:
    """Retry sending: forget why it stopped and queue a send job, in one transaction. False if
    sending wasn't stopped (a second click, or a send run got through meanwhile)."""
    async with db.begin() as conn:
        result = await conn.execute(_CLEAR_STOP, {"e": enrollment_id, "t": team_id})
        if result.rowcount != 1:
            return False
        await _enqueue_send(conn, team_id, enrollment_id, None, occasion="retry")
    return True


@dataclass(frozen=True, slots=True)
class RetriedSending:
    """What the campaign's *Retry sending* did: the enrollments restarted (none after a
    second click), and whether the campaign was live as it did so (its own transaction's
    look: the list worded its note from a read made before, "Sending … again" of a campaign
    another lead had paused meanwhile)."""

    enrollments: list[int]
    live: bool


async def retry_campaign_sending(db: Database, team_id: str,
                                 campaign_id: int) -> RetriedSending:  # fmt: skip
    """Retry sending for every stopped enrollment of a campaign (the campaign list's button,
    `campaign retry-sending`), in one transaction, the campaign's row taken first (as pausing
    takes it, so the state said is the one the retry met)."""
    async with db.begin() as conn:
        row = (await conn.execute(_TAKE_INVITE_EMAIL, {"c": campaign_id, "t": team_id})).first()
        if row is None:
            raise LookupError("That campaign doesn't exist in this workspace.")
        restarted = [int(e) for (e,) in await conn.execute(text(
            "UPDATE enrollment SET send_error = NULL WHERE team_id = :t AND campaign_id = :c "
            "AND send_error IS NOT NULL RETURNING id"), {"t": team_id, "c": campaign_id})]
        for enrollment_id in restarted:
            await _enqueue_send(conn, team_id, enrollment_id, None, occasion="retry")
    _invite_email, _name, state = row
    return RetriedSending(sorted(restarted), live=state == CampaignState.LIVE)


# a run never ends a stop someone asked for with `jobs cancel`: only Retry sending does
_CLEAR_STOP_BY_RUN = text("UPDATE enrollment SET send_error = NULL WHERE id = :e AND team_id = :t "
                          "AND send_error IS NOT NULL AND send_error <> :by_hand")


async def _sending_again_in(conn: AsyncConnection, team_id: str, enrollment_id: int) -> None:
    """A run that got through (a resend, say) ends a stop its report still shows, unless
    someone stopped sending by hand."""
    await conn.execute(_CLEAR_STOP_BY_RUN, {"e": enrollment_id, "t": team_id,
                                            "by_hand": SEND_JOB_CANCELLED})  # fmt: skip


def _log_outcome(team_id: str, enrollment_id: int, invite_id: int, result: SendResult) -> None:
    """An invite the server didn't take: refused or maybe-delivered at WARNING, a retry at
    INFO (the row keeps the reason; the log says whose it was)."""
    level = logging.INFO if result.status is SendStatus.RETRY else logging.WARNING
    log.log(level, "invite %s of enrollment %s (team %s): %s at %s: %s %s", invite_id,
            enrollment_id, team_id, result.status, result.stage or "?", result.code or "",
            result.text[:200])  # fmt: skip


async def _due(db: Database, team_id: str, enrollment_id: int, after: int) -> list[Any]:
    async with db.begin() as conn:
        return list((await conn.execute(_DUE[conn.dialect.name == "sqlite"], {
            "t": team_id, "e": enrollment_id, "now": utcnow(), "after": after,
            "limit": PAGE})).all())  # fmt: skip


async def _schedule_rest_in(conn: AsyncConnection, team_id: str, enrollment_id: int) -> None:
    """Invites still waiting (retries, delayed ones) get a send job when they are due."""
    due = (await conn.execute(_NEXT_DUE, {"t": team_id, "e": enrollment_id})).scalar()
    if due is None:
        return
    await _enqueue_send(conn, team_id, enrollment_id, max(due, await database_now_in(conn)))


async def _enqueue_send(conn: AsyncConnection, team_id: str, enrollment_id: int,
                        when: datetime | None, *, occasion: str | None = None,
                        payload: dict[str, Any] | None = None) -> None:  # fmt: skip
    """A send job due `when` (None: now by the shared clock), one per enrollment and second.

    A run reads the invites due when it runs, so a job of that key still queued is joined,
    but one that has started (the run asking may be that very job, keyed to the second it
    started in) or ended gives its key up to a new one (queue.enqueue_pending_in): it may
    have read the invites before this one was due, which then waited queued for good, with
    no job to send it. With an `occasion` (a person's Retry sending, going live again, a
    server's wait) the job is one of its own, whatever else is queued."""
    job = {"enrollment_id": enrollment_id, **(payload or {})}
    if occasion is not None:
        key = f"send:{enrollment_id}:{occasion}:{utcnow():%Y%m%d%H%M%S%f}"
        await enqueue_in(conn, team_id, SEND_JOB, job, dedupe_key=key, run_after=when)
        return
    assert when is not None  # the second of its key
    await enqueue_pending_in(conn, team_id, SEND_JOB, job,
                             dedupe_key=f"send:{enrollment_id}:{when:%Y%m%d%H%M%S}",
                             run_after=when)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HeldCancelled:
    """What *Cancel invites* did: how many held invites it cancelled and, when none, what
    had become of the enrollment's invites as its transaction found them (a lead told "they
    have already left" of invites another lead's turning the invite email off had kept from
    being sent)."""

    cancelled: int
    gone: int = 0  # the hold was over: queued to send, being sent, sent, failed
    cancelled_before: int = 0
    invite_email_off: int = 0
    not_emailed: int = 0  # for another reason (their contacts unsubscribed, say)


_HELD_OUTCOMES = text("SELECT state, reason, COUNT(*) FROM invite "
                      "WHERE team_id = :t AND enrollment_id = :e GROUP BY state, reason")


async def cancel_held(db: Database, team_id: str, enrollment_id: int, who: str) -> HeldCancelled:
    """Cancel invites still in the hold window; the advocates stay. Returns how many, and
    records it in the audit log (who kept people from being emailed), in its transaction."""
    async with db.begin() as conn:
        result = await conn.execute(text("""
            UPDATE invite SET state = 'cancelled', reason = :why, updated_at = :now
            WHERE team_id = :t AND enrollment_id = :e AND state = 'held'
        """).bindparams(_ts("now")), {"t": team_id, "e": enrollment_id, "now": utcnow(),
                                      "why": f"cancelled by {who}"[:500]})  # fmt: skip
        if not result.rowcount:
            return await _held_outcomes_in(conn, team_id, enrollment_id)
        name = (await conn.execute(text(
            "SELECT c.name FROM enrollment e JOIN campaign c ON c.id = e.campaign_id "
            "AND c.team_id = e.team_id WHERE e.id = :e AND e.team_id = :t"),
            {"e": enrollment_id, "t": team_id})).scalar()  # fmt: skip
        await record_in(conn, team_id, who, Act.CAMPAIGN_INVITES_CANCELLED, str(name or ""),
                        plural(result.rowcount, "invite"))  # fmt: skip
    return HeldCancelled(result.rowcount)


async def _held_outcomes_in(conn: AsyncConnection, team_id: str,
                            enrollment_id: int) -> HeldCancelled:  # fmt: skip
    """Nothing was held: what became of the enrollment's invites instead."""
    gone = cancelled_before = off = other = 0
    for state, reason, count in await conn.execute(_HELD_OUTCOMES,
                                                   {"t": team_id, "e": enrollment_id}):
        if state == InviteState.CANCELLED:
            cancelled_before += count
        elif state == InviteState.NOT_EMAILED and reason == INVITE_EMAIL_OFF:
            off += count
        elif state == InviteState.NOT_EMAILED:
            other += count
        else:
            gone += count
    return HeldCancelled(0, gone=gone, cancelled_before=cancelled_before, invite_email_off=off,
                         not_emailed=other)  # fmt: skip


# A lead sends the invites of an enrollment that its campaign's invite email being off left
# unsent (reports.INVITE_EMAIL_OFF), now that it is on: each advocate gets the invite it
# would have had. An address the campaign emailed before (a contact deleted and imported
# again) stays unemailed, as at enrollment, where the invite email being off was decided
# first; so does a contact no longer subscribed (consent withdrawn since: one not subscribed
# at enrollment was recorded so, never "invite email off"), said with its count. Consent,
# exclusions and a pause are checked again as each invite starts (_START_SQL).
# Only for advocates that still exist (an undo took some out: no link left to send). Of one
# enrollment (its report's button), or of every enrollment of the campaign (the list, the
# shell).
# the invite's contact's consent reason when it is no longer subscribed, else NULL
_NO_LONGER_SUBSCRIBED = (f"(SELECT {consent_reason('c')} FROM contact c WHERE "
                         "c.id = invite.contact_id AND c.team_id = :t AND NOT c.subscribed)")
_EMAIL_UNSENT = f"""
    UPDATE invite SET
        state = CASE WHEN {_NO_LONGER_SUBSCRIBED} IS NOT NULL THEN 'not_emailed'
                     WHEN {INVITE_INVITED_BEFORE} THEN 'not_emailed' ELSE 'queued' END,
        reason = COALESCE({_NO_LONGER_SUBSCRIBED},
                          CASE WHEN {INVITE_INVITED_BEFORE} THEN 'invited before' END),
        send_after = {{due}}, updated_at = :now
    WHERE team_id = :t AND campaign_id = :c AND {{enrollment}} AND state = 'not_emailed'
      AND reason = :off AND {_HAS_ITS_ADVOCATE}
    RETURNING enrollment_id, state, reason
"""
# by (one enrollment, is SQLite): due now by the shared clock (bot.jobs.queue.lease_now)
_EMAIL_UNSENT_OF = {(one, sqlite): text(_EMAIL_UNSENT.format(
    enrollment="enrollment_id = :e" if one else "TRUE", due=lease_now(sqlite),
)).bindparams(_ts("now")) for one in (True, False) for sqlite in (True, False)}  # fmt: skip
# The campaign's row taken first, as an Edit's save takes it (service.update_campaign): the
# invite email can't be turned off between this look and the invites queued.
_TAKE_INVITE_EMAIL = text("UPDATE campaign SET updated_at = updated_at WHERE id = :c "
                          "AND team_id = :t RETURNING invite_email, name, state")


def queued_until_live(subject: str, one: bool, campaign: str, go_live: str) -> str:
    """Invites queued of a paused `campaign` (its name as the caller shows it; `subject` as
    "2 invites of Spring", "They", `one` for the verb): its sender sends only a live
    campaign's, so they go at `go_live` (how the caller's surface puts it live)."""
    return (f"{subject} {'is' if one else 'are'} queued: {'it goes' if one else 'they go'} "
            f"once {campaign} is live again ({go_live}).")


def emailed_all(count: int) -> str:
    """"all 3 of those addresses", "that address" for one ("all 1 of those addresses")."""
    return "that address" if count == 1 else f"all {count:,} of those addresses"


@dataclass(frozen=True, slots=True)
class UnsentEmailed:
    """What *Email them* did: invites queued per enrollment, those it didn't queue because
    the campaign had emailed the address before (`invited_before`, per enrollment: their
    reports change too), and whether the campaign's invite email was on (off: nothing was
    queued, and the person is told to turn it on)."""

    queued: dict[int, int]
    invite_email: bool
    invited_before: dict[int, int] = field(default_factory=dict)
    # contacts no longer subscribed (consent withdrawn since they were enrolled), per
    # enrollment: not emailed either, said as enrolling says it (enroll.consent_reason)
    no_consent: dict[int, int] = field(default_factory=dict)
    # the campaign was live when they were queued: a paused one's sender sends nothing, so
    # its invites wait for Go live (said "Sending 1 invite", and nothing went)
    live: bool = True

    @property
    def count(self) -> int:
        return sum(self.queued.values())

    @property
    def emailed_before(self) -> int:
        return sum(self.invited_before.values())

    @property
    def unsubscribed(self) -> int:
        return sum(self.no_consent.values())

    @property
    def changed(self) -> list[int]:
        """The enrollments whose invites changed: each report is drawn again."""
        return sorted({*self.queued, *self.invited_before, *self.no_consent})

    def none_sent(self, campaign: str) -> str:
        """Why nothing was sent, of the `campaign` (its name as the caller shows it), when
        there were invites to look at ("" when there were none)."""
        if not self.unsubscribed:
            return (f"No invite of {campaign} was sent: the campaign had emailed "
                    f"{emailed_all(self.emailed_before)} before."
                    if self.emailed_before else "")  # fmt: skip
        gone = (f"{plural(self.unsubscribed, 'contact')} "
                f"{'is' if self.unsubscribed == 1 else 'are'} no longer subscribed")
        if self.emailed_before:
            gone = (f"the campaign had emailed {self.emailed_before:,} of those addresses "
                    f"before, and {gone}")
        return f"No invite of {campaign} was sent: {gone}."

    def not_again(self) -> str:
        """Why some weren't emailed, as sentences to append, a space before each ("" when all
        were)."""
        said = ""
        for count, why in ((self.emailed_before, "the campaign had emailed those addresses "
                                                 "before"),
                           (self.unsubscribed, "no longer subscribed")):  # fmt: skip
            if count:
                said += f" {count:,} of them {'was' if count == 1 else 'were'} not: {why}."
        return said


async def email_unsent(db: Database, team_id: str, campaign_id: int,
                       enrollment_id: int | None = None, *, actor: str) -> UnsentEmailed:
    """Someone (`actor`, in the audit log) chose to send the invites the invite email being
    off left unsent (*Email them* on a report; the list's and `campaign email-unsent` for all
    the campaign's enrollments, None), in one transaction with their send jobs: none after a
    second click, or when the invite email is off again. LookupError: no such campaign in
    the workspace."""
    params = {"t": team_id, "c": campaign_id, "e": enrollment_id, "off": INVITE_EMAIL_OFF,
              "now": utcnow()}  # fmt: skip
    queued: dict[int, int] = {}
    before: dict[int, int] = {}
    async with db.begin() as conn:
        row = (await conn.execute(_TAKE_INVITE_EMAIL, params)).first()
        if row is None:
            raise LookupError("That campaign doesn't exist in this workspace.")
        invite_email, name, campaign_state = row
        if not invite_email:
            return UnsentEmailed({}, invite_email=False)
        statement = _EMAIL_UNSENT_OF[enrollment_id is not None, conn.dialect.name == "sqlite"]
        no_consent: dict[int, int] = {}
        for enrollment, state, reason in await conn.execute(statement, params):
            tally = (queued if state == "queued" else before if reason == "invited before"
                     else no_consent)  # fmt: skip
            tally[int(enrollment)] = tally.get(int(enrollment), 0) + 1
        for enrollment in sorted(queued):
            await _enqueue_send(conn, team_id, enrollment, None, occasion="email-off")
        if queued:
            await record_in(conn, team_id, actor, Act.CAMPAIGN_EMAILED_UNSENT, str(name),
                            plural(sum(queued.values()), "invite"))  # fmt: skip
    return UnsentEmailed(queued, invite_email=True, invited_before=before,
                         no_consent=no_consent, live=campaign_state == CampaignState.LIVE)


# not resent to a contact no longer subscribed, said as enrolling says it (consent_reason)
_NOT_RESENT = text(f"""
    UPDATE invite SET state = 'not_emailed', updated_at = :now,
        reason = (SELECT {consent_reason("c")} FROM contact c
                  WHERE c.id = invite.contact_id AND c.team_id = :t)
    WHERE team_id = :t AND enrollment_id = :e AND state = 'uncertain'
      AND contact_id IN (SELECT id FROM contact WHERE team_id = :t AND NOT subscribed)
    RETURNING id
""").bindparams(_ts("now"))
# due now by the shared clock (bot.jobs.queue.lease_now); by "is SQLite"
_RESENT = {sqlite: text(f"""
    UPDATE invite SET state = 'queued', reason = 'resent on request',
        send_after = {lease_now(sqlite)}, updated_at = :now
    WHERE team_id = :t AND enrollment_id = :e AND state = 'uncertain'
      AND {_HAS_ITS_ADVOCATE}
    RETURNING id
""").bindparams(_ts("now")) for sqlite in (True, False)}
# invites a resend took out of `uncertain`: their addresses, as a contact's deletion keeps
# those its campaigns emailed or may have (models.InvitedAddress)
_MAYBE_EMAILED = text("""
    INSERT INTO invited_address (team_id, campaign_id, email_key, invited_at)
    SELECT i.team_id, i.campaign_id, c.email_key, :now FROM invite i
    JOIN contact c ON c.id = i.contact_id AND c.team_id = i.team_id
    WHERE i.team_id = :t AND i.id IN :ids
    ON CONFLICT (team_id, campaign_id, email_key) DO NOTHING
""").bindparams(_ts("now"), bindparam("ids", expanding=True))
_SENDING_STOPPED = text("SELECT send_error IS NOT NULL FROM enrollment "
                        "WHERE id = :e AND team_id = :t")


@dataclass(frozen=True)
class Resent:
    """What *Resend uncertain* did: invites queued again, the enrollments whose invites it
    changed (their reports in a thread are drawn again), how many of those queued wait for
    *Retry sending* (their enrollment's sending had stopped: a run now would also send what
    a person stopped), and whether the invite email is on (off, nothing was done: a resend
    then became "got no invite while the invite email was off", and *Email them* offered a
    second email of what may have arrived)."""

    count: int
    changed: list[int]
    waiting_for_retry: int = 0
    invite_email: bool = True
    unsubscribed: int = 0  # not resent: their contacts unsubscribed (now `not_emailed`)
    live: bool = True  # the campaign was: a paused one's are queued until it goes live

    def words(self, name: str, *, retry: str, turn_on: str, sent_by: str = "",
              go_live: str = "*Go live*") -> str:  # fmt: skip
        """What it did, said of the campaign `name`; `retry`: how Retry sending is reached
        where it is said, `turn_on`: how the invite email is turned on, `sent_by`: what sends
        them, after "a worker sends it" (the shell says how to follow it), `go_live`: how the
        campaign is put live again, paused."""
        if not self.invite_email:
            return (f"The invite email of {name} is off: nothing was resent (a resend now would "
                    f"never go). {turn_on}, then resend.")  # fmt: skip
        if not self.count:
            if not self.unsubscribed:
                return f"No invite of {name} is left to resend."
            whose = ("its contact has" if self.unsubscribed == 1
                     else "their contacts have")  # fmt: skip
            return f"No uncertain invite of {name} was resent: {whose} unsubscribed."
        going = self.count - self.waiting_for_retry
        said = []
        if going and not self.live:  # said "a worker sends them", and none went
            said.append(queued_until_live(f"{plural(going, 'invite')} of {name}", going == 1,
                                          name, go_live))  # fmt: skip
        elif going:
            said.append(f"Sending {plural(going, 'invite')} of {name} again: a worker sends "
                        f"{waiting_pronoun(going)}{sent_by}.")  # fmt: skip
        if waiting := self.waiting_for_retry:
            said.append(f"{plural(waiting, 'invite')} of {name} {'is' if waiting == 1 else 'are'}"
                        f" queued again, but {'its' if waiting == 1 else 'their'} sending had "
                        f"stopped: {retry} sends {waiting_pronoun(waiting)} with the rest.")
        return " ".join(said)


async def resend_uncertain(db: Database, team_id: str, enrollment_id: int, *,
                           actor: str) -> Resent:  # fmt: skip
    """A person (`actor`, in the audit log) chose to resend invites that may not have
    arrived (a report's button).

    Only to contacts still subscribed: one who unsubscribed meanwhile (their uncertain
    invite did arrive, then) is not emailed again, and said so. Only to advocates that still
    exist: an undo that took the advocate out left its uncertain invite as it was (it may
    have arrived), but there is no link to send any more, and the send job, which reads the
    advocate's code, would leave it queued for ever."""
    async with db.begin() as conn:
        campaign = (await conn.execute(text(
            "SELECT campaign_id FROM enrollment WHERE id = :e AND team_id = :t"),
            {"e": enrollment_id, "t": team_id})).scalar()  # fmt: skip
        return await _resend_in(conn, team_id, campaign, [enrollment_id], actor)


async def resend_campaign_uncertain(db: Database, team_id: str, campaign_id: int, *,
                                    actor: str) -> Resent:  # fmt: skip
    """Resend uncertain for every enrollment of a campaign, in one transaction (the campaign
    list's button, `campaign resend-uncertain`): one started without a thread (Go live, the
    command line) has no report to offer it, and its uncertain invites had no way on."""
    async with db.begin() as conn:
        # and those a dead run left `sending` (uncertain once a run of theirs looks): with no
        # worker running, nothing else would ever call them so
        enrollments = [int(e) for (e,) in await conn.execute(text(
            "SELECT DISTINCT enrollment_id FROM invite WHERE team_id = :t AND campaign_id = :c "
            "AND state IN ('uncertain', 'sending') ORDER BY enrollment_id"),
            {"t": team_id, "c": campaign_id})]  # fmt: skip
        return await _resend_in(conn, team_id, campaign_id, enrollments, actor)


async def _resend_in(conn: AsyncConnection, team_id: str, campaign_id: int | None,
                     enrollments: list[int], actor: str) -> Resent:  # fmt: skip
    """The resend of those enrollments' uncertain invites, counted from the rows it changed
    (a second click at once finds none). The campaign's row is taken first: an Edit turning
    its invite email off waits, or is waited for."""
    campaign = None if campaign_id is None else (await conn.execute(
        _TAKE_INVITE_EMAIL, {"c": campaign_id, "t": team_id})).first()  # fmt: skip
    if campaign is None or not campaign[0]:
        return Resent(0, [], invite_email=campaign is None)
    count, waiting, changed, unsubscribed = 0, 0, [], 0
    for enrollment_id in enrollments:
        await _guess_crashed_in(conn, team_id, enrollment_id, None)
        params = {"t": team_id, "e": enrollment_id, "now": utcnow()}
        dropped = [i for (i,) in await conn.execute(_NOT_RESENT, params)]
        resent_ids = [i for (i,) in await conn.execute(_RESENT[conn.dialect.name == "sqlite"],
                                                      params)]  # fmt: skip
        if not (dropped or resent_ids):
            continue
        changed.append(enrollment_id)
        unsubscribed += len(dropped)
        # no longer `uncertain`, which an undo or a contact's deletion keeps: its address is
        # remembered as emailed (it may have been), or the contact, undone with its import
        # and imported again, was enrolled anew and emailed a second time
        await conn.execute(_MAYBE_EMAILED, {"t": team_id, "now": params["now"],
                                            "ids": dropped + resent_ids})  # fmt: skip
        resent = len(resent_ids)
        if not resent:
            continue
        count += resent
        if (await conn.execute(_SENDING_STOPPED, params)).scalar():
            waiting += resent  # Retry sending sends them with the rest
        else:
            await _enqueue_send(conn, team_id, enrollment_id, None, occasion="resend")
    if count:
        await record_in(conn, team_id, actor, Act.CAMPAIGN_RESENT, str(campaign[1]),
                        plural(count, "invite"))  # fmt: skip
    return Resent(count, changed, waiting, unsubscribed=unsubscribed,
                  live=campaign[2] == CampaignState.LIVE)
