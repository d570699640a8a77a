"""Create, edit, target, exclude, go live and pause: each one transaction.

Callers check who may do it (leads, or a trusted shell user). Targeting a live campaign, or a
campaign going live, writes the enrollment row and its job in the same transaction as the
change, so a double click or a retry never enrolls twice (the job's key dedupes it, and
enrollment itself skips existing advocates).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import BindParameter, Integer, String, bindparam, func, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import Act, record_in
from bot.campaigns.enroll import NOT_LIVE, SEND_JOB, excluded_reason, in_excluded_segment
from bot.campaigns.invite_sql import has_its_advocate, left_by_a_dead_run, with_now
from bot.campaigns.invites import (
    default_from,
    reschedule_waiting_in,
    schedule_waiting_in,
    stop_invites_in,
)
from bot.campaigns.reports import (
    INVITE_EMAIL_OFF,
    reported_unsent_while_off_in,
    reported_waiting_in,
)
from bot.email.message import parse_sender
from bot.hosts import ascii_host
from bot.imports.addresses import normalize_email
from bot.jobs.queue import database_now_in, enqueue_in, lease_now, worker_of
from bot.notify import BATCH_CHANGED, enqueue_enrollment_report_in, enqueue_report_in
from bot.once import forget, seen_in
from bot.words import plural, quoted
from bot.workspaces import get_segment, segment_key, too_long_compared
from models import (
    Advocate,
    BatchStatus,
    Campaign,
    CampaignSegment,
    CampaignState,
    Database,
    Enrollment,
    EnrollmentStatus,
    Invite,
    InviteState,
    SeenKey,
    SegmentKind,
    SegmentRole,
)
from models.clock import utcnow

ENROLL_JOB = "enroll"
MAX_NAME = 100
# The columns' sizes (PostgreSQL refuses longer text): said before anything is written, for
# the shell's `campaign create/edit` as for Slack's form (whose inputs have these max lengths)
MAX_STORE_URL = 500
MAX_SENDER = 200
MAX_OFFER = 200


def _now() -> BindParameter[Any]:
    """The current time as a typed parameter, stored the way every other timestamp is."""
    return bindparam("now", value=utcnow(), type_=UTCDateTime())


class CampaignError(Exception):
    """A campaign can't be found or changed as asked; the message says why, for people."""


@dataclass(frozen=True, slots=True)
class Thread:
    """The Slack thread that hears about an enrollment (None from the command line)."""

    channel_id: str
    thread_ts: str


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    campaign: Campaign
    targets: list[str]
    excluded: list[str]
    advocates: int
    invites_sent: int
    # (enrollment id, why) of its enrollments whose sending stopped: shown in the list with
    # Retry sending, since one started without a Slack thread has no report that would say so
    stopped: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    # invites its invite email being off left unsent, while it is on (0 while it is off):
    # the list offers *Email them*, as a report in a thread does (reports.INVITE_EMAIL_OFF)
    unsent_while_off: int = 0
    invites_failed: int = 0  # refused for good
    # maybe delivered (the server took them, then didn't answer): the list offers *Resend
    # uncertain* for all its enrollments, since one started without a thread has no report
    invites_uncertain: int = 0


def check_fields(*, name: str | None = None, store_url: str | None = None,
                 sender: str | None = None, offer: str | None = None,
                 invite_delay_days: int | None = None) -> dict[str, str]:  # fmt: skip
    """Problems with the given fields, keyed by field name (empty: all fine): every field's
    at once, so a form shows them all on the first submit. A field over its length is only
    told so (its content isn't parsed)."""
    problems: dict[str, str] = {}
    for field, value, limit in (("store_url", store_url, MAX_STORE_URL),
                                ("sender", sender, MAX_SENDER), ("offer", offer, MAX_OFFER)):
        if value is not None and len(value.strip()) > limit:
            problems[field] = f"The {field.replace('_', ' ')} is at most {limit} characters."
    if name is not None and not segment_key(name):  # only spaces, or what shows nothing
        # as a segment's name: "\u200e" (a left-to-right mark) alone was a campaign with an
        # empty key, listed with no name (bot.workspaces.clean_segment_name)
        problems["name"] = "A campaign needs a name."
    elif name is not None and len(name) > MAX_NAME:
        problems["name"] = f"Names are at most {MAX_NAME} characters."
    elif name is not None and (longer := len(segment_key(name))) > MAX_NAME:
        problems["name"] = too_long_compared(longer, MAX_NAME)
    if store_url is not None and "store_url" not in problems and (
            why := _not_a_web_address(store_url)):  # fmt: skip
        problems["store_url"] = f"{why} Use the store's web address, e.g. https://shop.example.com"
    if sender and "sender" not in problems:
        name = sender.partition("<")[0]
        unquoted = "<" in sender and '"' not in name and any(c in name for c in ",;:")
        try:  # read as the invite's From is: parseaddr took the first of two addresses
            normalize_email(parse_sender(sender)[1])
            parsed = True
        except ValueError:  # InvalidEmail too
            parsed = False
        if unquoted:
            # "Acme, Inc <hello@…>" reads as two addresses, and "Acme: Spring <…>" parses
            # as the group "Acme:" holding "Spring" (its invites came from "Spring" alone):
            # only the quotes were missing
            problems["sender"] = ("Put a name with a comma, colon or semicolon in double "
                                  f'quotes: "{name.strip()[:40]}" <{sender.partition("<")[2]}')
        elif not parsed:
            problems["sender"] = "Use a sender such as: Shop <hello@shop.example>"
    if invite_delay_days is not None and not 0 <= invite_delay_days <= 365:
        problems["invite_delay_days"] = "Between 0 (at once) and 365 days."
    return problems


def _not_a_web_address(url: str) -> str:
    """Why `url` can't be the store's address ("": it can): http(s), a host that is a DNS
    name or an address, and a port that exists: a link to :99999 can't be redirected to, nor
    one to "my shop.com" (every referral link broken). Each refusal says its reason: they all
    read "Use the store's web address", and nobody could tell what was wrong."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "It needs to start with https:// (or http://)."
    if any(c.isspace() for c in url):
        return "A web address has no spaces."
    # no user or password: "https://shop.example@evil.example/" sent every referral link to
    # evil.example, and a password went out in every redirect
    if "@" in parts.netloc:
        return ("Leave out the part before @: links would go to the address after it, "
                "and a password in it to everyone.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "Its port doesn't exist (1 to 65535)."
    if not _host_name(parts.hostname or ""):
        return "Its host name isn't one (letters, digits and hyphens, between dots)."
    if _this_computer(parts.hostname or ""):  # the store as its developer runs it
        return ("It leads to localhost, the computer the link is opened on: every customer "
                "would be sent to their own computer, not the store.")
    return ""


def _host_name(host: str) -> bool:
    """A DNS name (IDNA allowed) or an IP address: no empty label, no spaces or brackets."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    looked_up = ascii_host(host)  # as the redirect and browsers read it (bot.hosts)
    if looked_up is None:
        return False
    labels = looked_up.rstrip(".").split(".")
    # `_` too, as browsers open it (my_shop.example.com; bot.hosts)
    return all(re.fullmatch(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", label)
               for label in labels)  # fmt: skip


def _this_computer(host: str) -> bool:
    """Whether a browser opens `host` on its own computer: localhost and its subdomains (RFC
    6761 keeps them for it), 127.0.0.0/8 and ::1, and 0.0.0.0 and :: (which browsers open as
    this computer too), also as an IPv4-mapped IPv6 address, in full-width characters (IDNA
    maps them) or in the numbers browsers read as IPv4 (127.1, 2130706433, 0x7f.1).

    Private networks' addresses (10/8, 172.16/12, 192.168/16, fc00::/7) are kept: an
    office's or a VPN's store is reached by whoever is on that network, as a DNS name that
    resolves there would be (names aren't resolved here); localhost never is anyone's store
    but their own computer's."""
    # read as the redirect reads it (bot.hosts: IDNA 2008 under UTS 46, as browsers do):
    # IDNA 2003 left "ᴸocalhost" alone, which the redirect sent to localhost
    name = (ascii_host(host) or host).rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
            ipaddress.ip_address(name))  # fmt: skip
    except ValueError:
        address = _browsers_ipv4(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and (address.is_loopback or address.is_unspecified)


_IPV4_PART = re.compile(r"0[xX](?P<hex>[0-9A-Fa-f]*)|0(?P<octal>[0-7]+)|(?P<decimal>0|[1-9][0-9]*)")


def _browsers_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a browser reads in `host` (the WHATWG URL standard's IPv4 parser: one
    to four dot-separated numbers, each decimal, 0x hex or 0-prefixed octal, the last filling
    the bytes left), or None when it reads none: 127.1 and 2130706433 are 127.0.0.1, "0" is
    0.0.0.0."""
    numbers = []
    for part in host.split("."):
        found = _IPV4_PART.fullmatch(part)
        if found is None or len(numbers) == 4:
            return None
        digits = found["hex"] if found["hex"] is not None else found["octal"] or found["decimal"]
        base = 16 if found["hex"] is not None else 8 if found["octal"] else 10
        numbers.append(int(digits or "0", base))
    *first, last = numbers
    if any(n > 255 for n in first) or last >= 256 ** (4 - len(first)):
        return None
    return ipaddress.IPv4Address(sum(n << 8 * (3 - i) for i, n in enumerate(first)) + last)


def _raise_problems(problems: dict[str, str]) -> None:
    if problems:
        raise CampaignError(" ".join(problems.values()))


async def create_campaign(
    db: Database, team_id: str, name: str, *, store_url: str, sender: str = "", offer: str = "",
    invite_email: bool = True, invite_delay_days: int = 0, created_by: str = "cli",
) -> Campaign:  # fmt: skip
    _raise_problems(check_fields(name=name, store_url=store_url, sender=sender, offer=offer,
                                 invite_delay_days=invite_delay_days))  # fmt: skip
    name = " ".join(name.split())
    campaign = Campaign(team_id=team_id, name=name, name_key=segment_key(name),
                        store_url=store_url.strip(), sender=sender.strip(), offer=offer.strip(),
                        invite_email=invite_email, invite_delay_days=invite_delay_days,
                        created_by=created_by)  # fmt: skip
    async with db.session() as session:
        taken = await _name_taken(session, team_id, campaign.name_key)
        if taken is not None:
            raise CampaignError(_exists(taken))
        session.add(campaign)
        # the entry commits with the campaign (or goes with it, a double click's)
        await record_in(await session.connection(), team_id, created_by, Act.CAMPAIGN_CREATED,
                        name, _created_detail(campaign))  # fmt: skip
        try:
            await session.commit()
        except IntegrityError:  # created meanwhile by a double click
            await session.rollback()
            raise CampaignError(_exists(await _name_taken(session, team_id, campaign.name_key)
                                        or name)) from None  # fmt: skip
    return campaign


async def _name_taken(session: Any, team_id: str, name_key: str) -> str | None:
    """The name, as its campaign spells it, of the workspace's campaign with this name key,
    or None: "A campaign named 'spring' already exists" echoed the name typed, not the one
    to look for in the list."""
    query = select(Campaign.name).where(Campaign.team_id == team_id,
                                        Campaign.name_key == name_key)  # fmt: skip
    found = (await session.exec(query)).first()
    return None if found is None else str(found)


def _exists(name: str) -> str:
    return f"A campaign named {quoted(name)} already exists."


def _created_detail(campaign: Campaign) -> str:
    """What the audit log keeps of a new campaign: where links lead and who emails whom."""
    if not campaign.invite_email:
        email = "invite email off"
    else:
        email = "invite email on" + (f", {plural(campaign.invite_delay_days, 'day')} after "
                                     "enrollment" if campaign.invite_delay_days else "")
    sender = f"sender {campaign.sender}" if campaign.sender else "no sender set"
    return f"store URL {campaign.store_url}; {email}; {sender}"


async def update_campaign(db: Database, team_id: str, campaign_id: int, *,
                          opened: datetime | None = None, actor: str = "",
                          **fields: Any) -> Campaign:  # fmt: skip
    """Change a campaign's settings (name, store_url, sender, offer, invite_email, delay).

    `opened`: the campaign's updated_at when the form was opened. A save made since refuses
    this one: a form opened earlier wrote all its fields back over another lead's save (the
    invite email turned off for Klaviyo came back on, and its contacts got two emails).

    The reports in threads it may change are redrawn, in a job (so a change from the shell
    redraws them too): those with invites waiting (held invites stop or move, the name) and
    those with invites the invite email being off left unsent (*Email them* comes or goes:
    reports.reported_unsent_while_off_in).

    `actor` (a user id, or "cli") is who the audit log says changed it ("": nobody known);
    an entry is written only when a setting changed, in the save's transaction."""
    _raise_problems(check_fields(**{k: v for k, v in fields.items()
                                    if k in ("name", "store_url", "sender", "offer",
                                             "invite_delay_days")}))  # fmt: skip
    if "name" in fields:
        fields["name"] = " ".join(fields["name"].split())
        fields["name_key"] = segment_key(fields["name"])
    for stripped in ("store_url", "sender", "offer"):  # saved as create_campaign saves them:
        if isinstance(fields.get(stripped), str):  # "…/spring " led every link to /spring%20
            fields[stripped] = fields[stripped].strip()
    async with db.begin() as conn:
        # the row taken first with a write (PostgreSQL's row lock, SQLite's write lock, which
        # pysqlite takes only at a write), as going live and enrolling take it: a delay
        # change and going live meanwhile would each miss the other's send jobs
        before = (await conn.execute(
            text("UPDATE campaign SET updated_at = updated_at WHERE id = :c AND team_id = :t "
                 "RETURNING invite_delay_days, state, updated_at, name, store_url, sender, "
                 "offer, invite_email")
            .columns(invite_delay_days=Integer(), state=String(), updated_at=UTCDateTime()),
            {"c": campaign_id, "t": team_id},
        )).first()  # fmt: skip
        if before is not None and opened is not None and before[2] != opened:
            raise CampaignError("Someone saved this campaign after you opened Edit, so nothing "
                                "was changed: open Edit again to see their changes.")  # fmt: skip
        if before is not None and "name_key" in fields:
            taken = (await conn.execute(_OTHER_NAMED, {"t": team_id, "c": campaign_id,
                                                       "k": fields["name_key"]})).scalar()
            if taken is not None:
                raise CampaignError(_exists(str(taken)))
        redraw = {*await reported_waiting_in(conn, team_id, campaign_id),
                  *await reported_unsent_while_off_in(conn, team_id, campaign_id)}
        try:
            result = await conn.execute(
                update(Campaign).where(col(Campaign.id) == campaign_id,
                                       col(Campaign.team_id) == team_id)
                .values(**fields, updated_at=utcnow())
            )  # fmt: skip
        except IntegrityError:  # renamed meanwhile by another save
            raise CampaignError(_exists(str(fields.get("name")))) from None
        if result.rowcount == 1 and fields.get("invite_email") is False:
            await stop_invites_in(conn, team_id, campaign_id)
        elif (result.rowcount == 1 and before is not None
              and fields.get("invite_delay_days", before[0]) != before[0]):
            await reschedule_waiting_in(conn, team_id, campaign_id,
                                        int(fields["invite_delay_days"]),
                                        live=before[1] == CampaignState.LIVE)  # fmt: skip
        if result.rowcount == 1:
            for enrollment_id in sorted(redraw):
                await enqueue_enrollment_report_in(conn, team_id, enrollment_id)
            if before is not None and before[1] == CampaignState.LIVE:
                await redraw_reviews_in(conn, team_id)
            changed = _changes(before, fields)
            if changed:
                await record_in(conn, team_id, actor, Act.CAMPAIGN_EDITED,
                                str(fields.get("name", before[3] if before else "")),
                                "; ".join(changed))  # fmt: skip
    if result.rowcount != 1:
        raise CampaignError("That campaign doesn't exist in this workspace.")
    return await get_campaign(db, team_id, campaign_id)


# Another campaign of the workspace with the name key a rename asks for: refused naming it as
# it is spelled (the unique index would refuse it too, with the name typed)
_OTHER_NAMED = text("SELECT name FROM campaign WHERE team_id = :t AND name_key = :k AND id <> :c")


def _changes(before: Any, fields: dict[str, Any]) -> list[str]:
    """What an edit changed, for its audit entry: "renamed from 'Spring'", "invite email
    off", "sender removed"... (`before`: the row's invite_delay_days, state, updated_at,
    name, store_url, sender, offer, invite_email as the save found them)."""
    if before is None:
        return []
    was = {"invite_delay_days": before[0], "name": before[3], "store_url": before[4],
           "sender": before[5], "offer": before[6], "invite_email": bool(before[7])}
    said = []
    for field, value in fields.items():
        if field not in was or value == was[field]:
            continue
        if field == "name":
            said.append(f"renamed from {quoted(was['name'])}")
        elif field == "invite_email":
            said.append(f"invite email {'on' if value else 'off'}")
        elif field == "invite_delay_days":
            said.append(f"invite delay {plural(int(value), 'day')}")
        elif not str(value).strip():
            said.append(f"{_LABELS[field]} removed")
        else:
            said.append(f"{_LABELS[field]} {value}")
    return said


_LABELS = {"store_url": "store URL", "sender": "sender", "offer": "offer"}


async def get_campaign(db: Database, team_id: str, campaign_id: int) -> Campaign:
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
    if campaign is None or campaign.team_id != team_id:
        raise CampaignError("That campaign doesn't exist in this workspace.")
    return campaign


async def find_campaign(db: Database, team_id: str, name: str) -> Campaign:
    async with db.session() as session:
        query = select(Campaign).where(Campaign.team_id == team_id,
                                       Campaign.name_key == segment_key(name))  # fmt: skip
        found = (await session.exec(query)).first()
    if found is None:
        raise CampaignError(f"No campaign named {quoted(name)}.")
    return found


async def campaigns_by_name(db: Database, team_id: str) -> list[Campaign]:
    """The workspace's campaigns by name, without list_campaigns' counts (each a read of
    their invites): the target offer and its menu, which must answer within 3 s, name them
    only."""
    async with db.session() as session:
        return list((await session.exec(
            select(Campaign).where(Campaign.team_id == team_id).order_by(col(Campaign.name_key))
        )).all())  # fmt: skip


async def list_campaigns(db: Database, team_id: str) -> list[CampaignSummary]:
    """Every campaign with its segments, advocates and invites sent, failed and uncertain
    (counted from the rows)."""
    campaigns = await campaigns_by_name(db, team_id)
    async with db.session() as session:
        roles = (await session.exec(text(  # type: ignore[call-overload]
            "SELECT cs.campaign_id, cs.role, s.name FROM campaign_segment cs "
            "JOIN segment s ON s.id = cs.segment_id WHERE cs.team_id = :t ORDER BY s.name_key"
        ).bindparams(t=team_id))).all()  # fmt: skip
        advocates = dict((await session.exec(
            select(Advocate.campaign_id, func.count()).where(Advocate.team_id == team_id)
            .group_by(col(Advocate.campaign_id))
        )).all())  # fmt: skip
        # sent, and what a person may act on: failed for good, maybe delivered (uncertain:
        # those a resend can send, whose advocate an undo didn't take out)
        # those a dead run left `sending` are uncertain too (a resend calls them so first)
        ended: dict[tuple[int, str], int] = {}
        for cid, state, n in (await session.exec(with_now(text(f"""
                SELECT i.campaign_id, i.state, COUNT(*) FROM invite i
                WHERE i.team_id = :t AND (i.state IN ('sent', 'failed')
                  OR (i.state IN ('uncertain', 'sending') AND {has_its_advocate("i")}
                      AND (i.state = 'uncertain' OR {left_by_a_dead_run("i", db.is_sqlite)})))
                GROUP BY i.campaign_id, i.state"""), db.is_sqlite).bindparams(t=team_id)  # type: ignore[call-overload]
        )).all():  # fmt: skip
            key = (int(cid), "uncertain" if state == "sending" else str(state))
            ended[key] = ended.get(key, 0) + int(n)
        # stops with invites still to send, as a report offers Retry sending: one whose
        # invites went meanwhile (the invite email turned off) said "Sending stopped" with a
        # button that sent nothing
        waiting = select(Invite.id).where(Invite.team_id == team_id,
                                          Invite.enrollment_id == Enrollment.id,
                                          col(Invite.state).in_(("queued", "held")))  # fmt: skip
        stops = (await session.exec(
            select(Enrollment.campaign_id, Enrollment.id, Enrollment.send_error)
            .where(Enrollment.team_id == team_id, col(Enrollment.send_error).is_not(None),
                   waiting.exists())
            .order_by(col(Enrollment.id))
        )).all()  # fmt: skip
        unsent = dict((await session.exec(
            select(Invite.campaign_id, func.count())
            .where(Invite.team_id == team_id, Invite.state == InviteState.NOT_EMAILED,
                   Invite.reason == INVITE_EMAIL_OFF)
            .group_by(col(Invite.campaign_id))
        )).all())  # fmt: skip
    out = []
    for c in campaigns:
        targets = [n for cid, role, n in roles if cid == c.id and role == SegmentRole.TARGET]
        excluded = [n for cid, role, n in roles if cid == c.id and role == SegmentRole.EXCLUDE]
        stopped = [(int(e), str(why)) for cid, e, why in stops if cid == c.id]
        cid = c.id or 0
        out.append(CampaignSummary(c, targets, excluded, advocates.get(c.id, 0),
                                   ended.get((cid, InviteState.SENT), 0), stopped,
                                   unsent.get(c.id, 0) if c.invite_email else 0,
                                   ended.get((cid, InviteState.FAILED), 0),
                                   ended.get((cid, InviteState.UNCERTAIN), 0)))  # fmt: skip
    return out


async def _name(conn: AsyncConnection, team_id: str, campaign_id: int) -> str:
    return str((await conn.execute(
        text("SELECT name FROM campaign WHERE id = :c AND team_id = :t"),
        {"c": campaign_id, "t": team_id})).scalar_one())  # fmt: skip


async def _take(conn: AsyncConnection, team_id: str, campaign_id: int) -> str:
    """Lock the campaign's row for this transaction; returns its state.

    updated_at is left as it is: it is when the Edit form's fields were last saved, the
    marker update_campaign refuses a stale form by. Stamped here, a Target, Go live, Pause or
    exclude while a lead had Edit open refused their Save as "someone saved this campaign"."""
    row = (await conn.execute(
        text("UPDATE campaign SET updated_at = updated_at WHERE id = :c AND team_id = :t "
             "RETURNING state"), {"c": campaign_id, "t": team_id},
    )).first()  # fmt: skip
    if row is None:
        raise CampaignError("That campaign doesn't exist in this workspace.")
    return str(row[0])


async def _enroll_in(conn: AsyncConnection, team_id: str, campaign_id: int, *,
                     segment_id: int | None, batch_id: int | None, requested_by: str,
                     thread: Thread | None, hold: bool | None = None, queue_job: bool = True,
                     key: str | None = None, run_after: datetime | None = None) -> int:  # fmt: skip
    """An enrollment row and its job, in the caller's transaction; returns the enrollment id.

    Enrolling again (a double click, a second targeting) is harmless: existing advocates are
    skipped and counted as such. With a `key` (an import's enrollment), asking again returns
    the first enrollment instead of making another: the job's unique key decides, even when
    two processes ask at once."""
    # created_at by the clock due times are stamped with (bot.jobs.queue.lease_now: on
    # PostgreSQL, the server's): a change of the invite delay makes the invites due from it
    # (invites.reschedule_waiting_in), and a host whose clock was ahead delayed them by its
    # skew, one behind sent them early
    sqlite = conn.dialect.name == "sqlite"
    enrollment_id = (await conn.execute(
        text(f"""INSERT INTO enrollment (team_id, campaign_id, segment_id, batch_id, requested_by,
                 status, enrolled, already_advocates, excluded, channel_id, thread_ts, created_at)
                 VALUES (:t, :c, :s, :b, :who, 'queued', 0, 0, 0, :ch, :ts, {lease_now(sqlite)})
                 RETURNING id""").bindparams(*([_now()] if sqlite else [])),
        {"t": team_id, "c": campaign_id, "s": segment_id, "b": batch_id, "who": requested_by,
         "ch": thread.channel_id if thread else None, "ts": thread.thread_ts if thread else None},
    )).scalar_one()  # fmt: skip
    if not queue_job:
        return int(enrollment_id)
    # the hold is the time to press Cancel invites, on the report in its thread: without a
    # thread (Go live from /referral campaign, a shell's import) it only delayed the invites.
    # Unless asked for (`campaign target --hold`): None is "when there is a thread".
    hold = thread is not None if hold is None else hold
    job_id = await enqueue_in(conn, team_id, ENROLL_JOB,
                              {"enrollment_id": enrollment_id, "hold": hold},
                              dedupe_key=key or enrollment_job_key(enrollment_id),
                              run_after=run_after)  # fmt: skip
    payload = (await conn.execute(text("SELECT payload FROM job WHERE id = :j"),
                                  {"j": job_id})).scalar_one()  # fmt: skip
    first = int(json.loads(payload)["enrollment_id"])
    if first != enrollment_id:  # asked before: this row is not needed
        await conn.execute(text("DELETE FROM enrollment WHERE id = :e"), {"e": enrollment_id})
    return first


_NOT_LIVE_IN_A_THREAD = text("""
    UPDATE enrollment SET status = 'queued', error = NULL, finished_at = NULL
    WHERE team_id = :t AND campaign_id = :c AND thread_ts IS NOT NULL AND status = :done
      AND error = :not_live
    RETURNING id
""")


async def _resume_not_live_in(conn: AsyncConnection, team_id: str, campaign_id: int) -> bool:
    """Enrollments reported in a thread that found the campaign paused when they ran run
    again as it goes live, before the enrollment of every target: their threads kept saying
    "nobody was enrolled" while going live enrolled and emailed those very contacts, with no
    hold and no *Cancel invites*. Each gets a job of its own (its first one has ended)."""
    resumed = (await conn.execute(_NOT_LIVE_IN_A_THREAD, {
        "t": team_id, "c": campaign_id, "done": EnrollmentStatus.DONE,
        "not_live": NOT_LIVE})).scalars().all()  # fmt: skip
    for enrollment_id in sorted(resumed):
        await enqueue_in(conn, team_id, ENROLL_JOB, {"enrollment_id": enrollment_id,
                                                     "hold": True},
                         dedupe_key=f"{enrollment_job_key(enrollment_id)}:live:{uuid.uuid4().hex}")
        await enqueue_enrollment_report_in(conn, team_id, enrollment_id)
    return bool(resumed)


_RESUMED_JOBS = text("""
    SELECT e.id, j.dedupe_key FROM enrollment e
    JOIN job j ON j.team_id = e.team_id AND j.kind = :kind AND j.state = 'queued'
      AND j.dedupe_key LIKE :prefix || e.id || ':live:%'
    WHERE e.team_id = :t AND e.campaign_id = :c AND e.thread_ts IS NOT NULL
      AND e.status = 'queued'
    ORDER BY e.id
""")


async def resumed_enrollments(db: Database, team_id: str,
                              campaign_id: int) -> list[tuple[int, str]]:  # fmt: skip
    """The thread enrollments going live resumed whose jobs still wait, with their jobs'
    keys (`campaign live` in a shell runs them before its own: see _resume_not_live_in)."""
    async with db.begin() as conn:
        return [(int(e), str(key)) for e, key in await conn.execute(_RESUMED_JOBS, {
            "t": team_id, "c": campaign_id, "kind": ENROLL_JOB, "prefix": "enroll:"})]


# How long going live's enrollment of every target waits after the thread enrollments it
# resumed: with two workers, taking the campaign's row first it enrolled their contacts
# without the hold, the threads saying "already enrolled" (one takes a few milliseconds)
RESUMED_FIRST = timedelta(seconds=2)


async def put_live_by(db: Database, team_id: str, campaign_id: int) -> str | None:
    """Who last put the campaign live, as the audit log has it (None: nobody it records):
    a *Go live and target* that found it live already says whether its clicker did (a double
    click) or another lead."""
    async with db.begin() as conn:
        name = await _name(conn, team_id, campaign_id)
        return (await conn.execute(text(
            "SELECT actor FROM audit_entry WHERE team_id = :t AND action = :live "
            "AND subject = :name ORDER BY id DESC LIMIT 1"),
            {"t": team_id, "live": str(Act.CAMPAIGN_LIVE), "name": name})).scalar()  # fmt: skip


def import_enrollment_key(campaign_id: int, batch_id: int) -> str:
    """The dedupe key of the job enrolling an import's contacts in a campaign: one per pair
    (after_import.enroll_imported_now marks it done by this key)."""
    return f"enroll:{campaign_id}:batch:{batch_id}"


async def _pending_in(conn: AsyncConnection, team_id: str, campaign_id: int, segment_id: int,
                      *, thread: Thread | None, hold: bool | None,
                      queue_job: bool) -> int | None:  # fmt: skip
    """The unfinished enrollment of the segment (0: of every target, by going live) made
    for the same thread (or none), with its job, unless it has one: an enrollment the shell
    made and was interrupted running (or made before its enrollments had jobs) was never run,
    and going live again said "done". Another thread's (or a threadless Go live's) isn't
    reused: its report went elsewhere, and its invites unheld, while this thread was told
    its report would follow."""
    pending = (await conn.execute(_PENDING_ENROLLMENT, {
        "t": team_id, "c": campaign_id, "s": segment_id,
        "ch": thread.channel_id if thread else "",
        "ts": thread.thread_ts if thread else ""})).scalar()  # fmt: skip
    if pending is not None and queue_job:
        if hold is None:  # as _enroll_in: held when reported in a thread (it matched ours)
            hold = thread is not None
        await _lock_job_of_key(conn, team_id, enrollment_job_key(pending))
        job = await enqueue_in(conn, team_id, ENROLL_JOB, {"enrollment_id": pending,
                                                          "hold": hold},
                               dedupe_key=enrollment_job_key(pending))  # fmt: skip
        # its job cancelled (`jobs cancel`) or given up with the enrollment still to run:
        # queued again, or nothing would ever run it and every Go live returned it as is. Due
        # now by the clock workers compare it with (bot.jobs.queue.lease_now: on PostgreSQL,
        # the server's): this host's, when ahead, left it waiting the skew
        sqlite = conn.dialect.name == "sqlite"
        await conn.execute(text(
            f"UPDATE job SET state = 'queued', attempts = 0, run_after = {lease_now(sqlite)}, "
            "last_error = NULL, finished_at = NULL WHERE id = :j AND team_id = :t "
            "AND state IN ('cancelled', 'failed')").bindparams(*([_now()] if sqlite else [])),
            {"j": job, "t": team_id})  # fmt: skip
    return None if pending is None else int(pending)


async def _lock_job_of_key(conn: AsyncConnection, team_id: str, dedupe_key: str) -> None:
    """The job of that key stays, or is gone, until the caller's transaction ends
    (PostgreSQL: its row locked FOR KEY SHARE, which a DELETE waits for and a worker's
    updates of a running job don't). The daily purge (bot.jobs.retention) deletes an ended
    job a month old: between `enqueue_in` finding the old job of the key (ON CONFLICT DO
    NOTHING, which locks nothing) and the UPDATE queuing it again, a purge that committed
    left the UPDATE nothing to match, and the enrollment no job until the next Go live. Now
    a purge under way is waited for and the row then seen gone (`enqueue_in` makes a new
    job), and one that comes later finds the job queued again, which it keeps. SQLite: the
    caller's transaction wrote already (`_take`), and its write lock keeps the purge out."""
    if conn.dialect.name != "postgresql":
        return
    await conn.execute(text("SELECT id FROM job WHERE team_id = :t AND dedupe_key = :k "
                            "FOR KEY SHARE"), {"t": team_id, "k": dedupe_key})  # fmt: skip


def enrollment_job_key(enrollment_id: int) -> str:
    """The dedupe key of the job that runs an enrollment: one job per enrollment."""
    return f"enroll:{enrollment_id}"


# An unfinished enrollment of the segment by targeting (or of every target, by going live).
_PENDING_ENROLLMENT = text("""
    SELECT id FROM enrollment WHERE team_id = :t AND campaign_id = :c AND batch_id IS NULL
      AND (segment_id = :s OR segment_id IS NULL) AND status IN ('queued', 'running')
      AND COALESCE(channel_id, '') = :ch AND COALESCE(thread_ts, '') = :ts
    ORDER BY id LIMIT 1
""")


# The segment's role in the campaign (targeting and exclude say what it was)
_ROLE = text("SELECT role FROM campaign_segment WHERE campaign_id = :c AND segment_id = :s "
             "AND team_id = :t")


@dataclass(frozen=True, slots=True)
class Targeting:
    """What `targeting` changed: a segment the campaign excluded becomes a target (a campaign
    gives a segment one role), which a lead excluded on purpose: the caller says so."""

    was: SegmentRole | None  # the segment's role in the campaign before (None: it had none)
    enrollment: int | None  # the enrollment started or found unfinished (None: not live)
    # `go_live` put it live (it wasn't as the targeting took it): the caller says what its
    # invites will come from (sender_warning), as Go live does; not when found live already
    went_live: bool = False


async def target(db: Database, team_id: str, campaign_id: int, segment_id: int, *,
                 requested_by: str, thread: Thread | None = None, hold: bool | None = None,
                 queue_job: bool = True) -> int | None:  # fmt: skip
    """Make the segment a target; a live campaign enrolls it at once (returns the enrollment).

    Targeting twice is harmless: the segment stays targeted and nobody is enrolled twice. An
    enrollment of the segment that hasn't finished yet (a double click, Go live pressed
    twice) is returned instead of a second one, so one report follows it.
    """
    done = await targeting(db, team_id, campaign_id, segment_id, requested_by=requested_by,
                           thread=thread, hold=hold, queue_job=queue_job)  # fmt: skip
    return done.enrollment


async def targeting(db: Database, team_id: str, campaign_id: int, segment_id: int, *,
                    requested_by: str, thread: Thread | None = None, hold: bool | None = None,
                    queue_job: bool = True, go_live: bool = False) -> Targeting:  # fmt: skip
    """`target`, with the segment's role before: one the campaign excluded is a target
    instead, for the caller to say (as `exclude` says a target it excludes).

    `go_live`: a campaign that isn't live goes live in the same transaction, enrolling every
    target (*Go live and target*: one click, one transaction; as two, another click's
    targeting came between them and could announce the enrollment without the warning).

    A switch from excluded that an enrollment reported in `thread` takes in is noted for
    that thread's announcement of it to say, in this transaction (excluded_then_targeted):
    the switch is the first targeting's alone, and another click's announcement of the same
    enrollment may be the one posted."""
    segment = await get_segment(db, team_id, segment_id)
    params = {"c": campaign_id, "t": team_id, "s": segment.id}
    async with db.begin() as conn:
        state = await _take(conn, team_id, campaign_id)  # two targetings: one after the other
        await _segment_stays(conn, team_id, segment.id or 0)
        found = (await conn.execute(_ROLE, params)).scalar()
        was = SegmentRole(found) if found else None
        await _set_role(conn, team_id, campaign_id, segment.id or 0, SegmentRole.TARGET)
        await record_in(conn, team_id, requested_by, Act.CAMPAIGN_TARGETED,
                        await _name(conn, team_id, campaign_id),
                        _role_detail(segment.name, was, SegmentRole.TARGET))  # fmt: skip
        enrollment = await _targeted_enrollment_in(
            conn, team_id, campaign_id, segment.id or 0, state, go_live=go_live,
            requested_by=requested_by, thread=thread, hold=hold, queue_job=queue_job)  # fmt: skip
        if was == SegmentRole.EXCLUDE and enrollment is not None and thread is not None:
            await seen_in(conn, team_id, _excluded_then_targeted_key(enrollment))
    return Targeting(was, enrollment, went_live=go_live and state != CampaignState.LIVE)


async def _targeted_enrollment_in(conn: AsyncConnection, team_id: str, campaign_id: int,
                                  segment_id: int, state: str, *, go_live: bool,
                                  requested_by: str, thread: Thread | None, hold: bool | None,
                                  queue_job: bool) -> int | None:  # fmt: skip
    """The enrollment a targeting starts or finds unfinished, in its transaction; None when
    the campaign (in `state`, as the targeting took it) isn't live and isn't to go live."""
    if state != CampaignState.LIVE and go_live:
        _, enrollment = await _set_state_in(conn, team_id, campaign_id, CampaignState.LIVE,
                                            requested_by=requested_by, thread=thread,
                                            hold=hold, queue_job=queue_job)  # fmt: skip
        return enrollment
    if state != CampaignState.LIVE:
        return None
    await redraw_reviews_in(conn, team_id)
    pending = await _pending_in(conn, team_id, campaign_id, segment_id, thread=thread,
                                hold=hold, queue_job=queue_job)  # fmt: skip
    if pending is not None:
        return pending
    return await _enroll_in(conn, team_id, campaign_id, segment_id=segment_id, batch_id=None,
                            requested_by=requested_by, thread=thread, hold=hold,
                            queue_job=queue_job)  # fmt: skip


def _excluded_then_targeted_key(enrollment_id: int) -> str:
    """The seen_key row of a switch from excluded the enrollment's announcement is still to
    say: there while it is to be said, gone once it was."""
    return f"excluded-then-targeted:{enrollment_id}"


async def excluded_then_targeted(db: Database, team_id: str, enrollment_id: int) -> bool:
    """Whether a targeting the enrollment takes in switched its segment from excluded, and no
    message in its thread has said so yet: its announcement says it, whichever click posts
    it (then excluded_then_targeted_said)."""
    async with db.session() as session:
        found = (await session.exec(select(SeenKey.key).where(
            SeenKey.team_id == team_id,
            SeenKey.key == _excluded_then_targeted_key(enrollment_id)))).first()  # fmt: skip
    return found is not None


async def excluded_then_targeted_said(db: Database, team_id: str, enrollment_id: int) -> bool:
    """The switch is said (or this caller is about to say it): True if it was still to be
    said, so that of two callers one says it."""
    return await forget(db, team_id, _excluded_then_targeted_key(enrollment_id))


async def excluded_then_targeted_unsaid(db: Database, team_id: str, enrollment_id: int) -> None:
    """excluded_then_targeted_said taken back: the message saying it didn't go out."""
    async with db.begin() as conn:
        await seen_in(conn, team_id, _excluded_then_targeted_key(enrollment_id))


# Invites of the campaign still waiting (queued, held: a delay, a hold) for the contacts of a
# segment it now excludes: they went out all the same, to the very people the merchant had
# just left out. (The send also refuses them now, for contacts who join an excluded segment
# later: invites._START_WHERE; cancelling them here says so in the reports at once.)
_STOP_EXCLUDED = text("""
    UPDATE invite SET state = 'cancelled', reason = :why, updated_at = :now
    WHERE campaign_id = :c AND team_id = :t AND state IN ('queued', 'held')
      AND contact_id IN (SELECT contact_id FROM segment_member WHERE segment_id = :s
                         AND team_id = :t)
    RETURNING enrollment_id
""").bindparams(bindparam("now", type_=UTCDateTime()))


@dataclass(frozen=True, slots=True)
class Exclusion:
    """What `exclude` changed: the shell says it, as a segment the campaign targeted stops
    being a target (a campaign gives a segment one role) without anyone asking in so many
    words."""

    was: SegmentRole | None  # the segment's role in the campaign before (None: it had none)
    advocates: int  # the campaign's advocates in the segment: they stay, links and all
    cancelled: int  # their invites still waiting, cancelled


_ADVOCATES_IN = text("""
    SELECT count(*) FROM advocate a JOIN segment_member m ON m.contact_id = a.contact_id
    WHERE a.campaign_id = :c AND a.team_id = :t AND m.segment_id = :s AND m.team_id = :t
""")


async def exclude(db: Database, team_id: str, campaign_id: int, segment_id: int, *,
                  requested_by: str = "") -> Exclusion:  # fmt: skip
    """Contacts of an excluded segment are never enrolled, and their invites still waiting
    are cancelled (existing advocates stay, links and all). A segment the campaign targeted
    is excluded instead: what it was is returned, for the caller to say. The audit log says
    `requested_by` did it ("": nobody known), in the same transaction."""
    segment = await get_segment(db, team_id, segment_id)
    if segment.kind == SegmentKind.ALL:  # it has no member rows: excluding it excluded nobody
        raise CampaignError(f"{segment.name} holds every contact: excluding it would leave the "
                            "campaign nobody to enroll. Exclude a segment of the contacts to "
                            "leave out instead.")  # fmt: skip
    params = {"c": campaign_id, "t": team_id, "s": segment.id}
    async with db.begin() as conn:
        state = await _take(conn, team_id, campaign_id)
        await _segment_stays(conn, team_id, segment.id or 0)
        was = (await conn.execute(_ROLE, params)).scalar()
        await _set_role(conn, team_id, campaign_id, segment.id or 0, SegmentRole.EXCLUDE)
        if state == CampaignState.LIVE:
            await redraw_reviews_in(conn, team_id)
        stopped = (await conn.execute(_STOP_EXCLUDED, {
            **params, "now": utcnow(), "why": excluded_reason(segment.name)})).all()  # fmt: skip
        for enrollment_id in sorted({row[0] for row in stopped}):
            await enqueue_enrollment_report_in(conn, team_id, enrollment_id)
        advocates = int((await conn.execute(_ADVOCATES_IN, params)).scalar() or 0)
        before = SegmentRole(was) if was else None
        detail = _role_detail(segment.name, before, SegmentRole.EXCLUDE)
        if stopped:
            detail += f"; {plural(len(stopped), 'waiting invite')} cancelled"
        await record_in(conn, team_id, requested_by, Act.CAMPAIGN_EXCLUDED,
                        await _name(conn, team_id, campaign_id), detail)  # fmt: skip
    return Exclusion(before, advocates, len(stopped))


def _role_detail(segment: str, was: SegmentRole | None, now: SegmentRole) -> str:
    """A targeting's or exclusion's audit detail: the segment, and its role before when it
    had one ("VIP; it was excluded"): the switch is what someone may have done by mistake."""
    if was is None:
        return segment
    role = "a target" if was == SegmentRole.TARGET else "excluded"
    return f"{segment}; it was {role}" + (" already" if was == now else "")


async def _segment_stays(conn: AsyncConnection, team_id: str, segment_id: int) -> None:
    """The segment isn't deleted, and (PostgreSQL) can't be until this transaction ends: a
    deletion under way is waited for and then seen, one that comes later removes the link this
    transaction makes (SQLite: the write lock already orders them)."""
    lock = " FOR SHARE" if conn.dialect.name == "postgresql" else ""
    found = (await conn.execute(text(
        "SELECT id FROM segment WHERE id = :s AND team_id = :t AND kind <> 'deleted'" + lock
    ), {"s": segment_id, "t": team_id})).first()  # fmt: skip
    if found is None:
        raise CampaignError("That segment was deleted meanwhile: nothing changed.")


async def _set_role(conn: AsyncConnection, team_id: str, campaign_id: int, segment_id: int,
                    role: SegmentRole) -> None:  # fmt: skip
    await conn.execute(text("DELETE FROM campaign_segment WHERE campaign_id = :c AND "
                            "segment_id = :s AND team_id = :t"),
                       {"c": campaign_id, "s": segment_id, "t": team_id})  # fmt: skip
    await conn.execute(
        text("INSERT INTO campaign_segment (campaign_id, segment_id, team_id, role, created_at) "
             "VALUES (:c, :s, :t, :r, :now)").bindparams(_now()),
        {"c": campaign_id, "s": segment_id, "t": team_id, "r": role},
    )  # fmt: skip


async def pause(db: Database, team_id: str, campaign_id: int, *, requested_by: str) -> str:
    """Pause the campaign (set_state); returns the state it was in, as found in the pause's
    own transaction: read before it, two leads pausing at once were both told they paused
    it, and one pausing a campaign another had just put live was told "already paused"."""
    async with db.begin() as conn:
        before, _ = await _set_state_in(conn, team_id, campaign_id, CampaignState.PAUSED,
                                        requested_by=requested_by)  # fmt: skip
    return before


async def set_state(db: Database, team_id: str, campaign_id: int, state: CampaignState, *,
                    requested_by: str, thread: Thread | None = None, hold: bool | None = None,
                    queue_job: bool = True) -> int | None:  # fmt: skip
    """Go live (enrolling every target now; returns the enrollment) or pause (a live or
    paused campaign: a draft was never live, and the shell made one "paused"). `change_state`
    says whether this call changed the state too."""
    done = await change_state(db, team_id, campaign_id, state, requested_by=requested_by,
                              thread=thread, hold=hold, queue_job=queue_job)  # fmt: skip
    return done.enrollment


@dataclass(frozen=True, slots=True)
class StateChange:
    """What `change_state` did, as its own transaction found the campaign."""

    before: str  # the state the campaign was in (CampaignState)
    after: str  # the state asked for, which it is in now
    enrollment: int | None  # going live: the enrollment started or found unfinished

    @property
    def changed(self) -> bool:
        """This call changed the state: a campaign found in it already (a second click, a
        stale button) was left as it was."""
        return self.before != self.after

    @property
    def went_live(self) -> bool:
        """This call put the campaign live: what its invites will come from is worth saying
        (sender_warning) now, not on every Go live of a campaign live already."""
        return self.changed and self.after == CampaignState.LIVE


async def change_state(db: Database, team_id: str, campaign_id: int, state: CampaignState, *,
                       requested_by: str, thread: Thread | None = None,
                       hold: bool | None = None,
                       queue_job: bool = True) -> StateChange:  # fmt: skip
    """`set_state`, with the state before as its transaction found it: read after (from the
    list, say), a campaign live already with no targets or with an enrollment unfinished
    looked as if this call had put it live."""
    async with db.begin() as conn:
        before, enrollment = await _set_state_in(conn, team_id, campaign_id, state,
                                                 requested_by=requested_by, thread=thread,
                                                 hold=hold, queue_job=queue_job)  # fmt: skip
    return StateChange(before, str(state), enrollment)


async def _set_state_in(conn: AsyncConnection, team_id: str, campaign_id: int,
                        state: CampaignState, *, requested_by: str, thread: Thread | None = None,
                        hold: bool | None = None, queue_job: bool = True
                        ) -> tuple[str, int | None]:  # fmt: skip
    """set_state in the caller's transaction: (the state the campaign was in, the enrollment
    going live started or found unfinished)."""
    before = await _take(conn, team_id, campaign_id)
    if state == CampaignState.PAUSED and before == CampaignState.DRAFT:
        raise CampaignError(f"{await _name(conn, team_id, campaign_id)} is a draft: it "
                            "isn't live, so there is nothing to pause.")  # fmt: skip
    await conn.execute(text("UPDATE campaign SET state = :s WHERE id = :c AND team_id = :t"),
                       {"s": state, "c": campaign_id, "t": team_id})  # fmt: skip
    if before != state:
        await _redraw_waiting_in(conn, team_id, campaign_id)
        await redraw_reviews_in(conn, team_id)
        # only a change of state: live again (finishing an enrollment) or paused again
        # changed nothing to record
        await record_in(conn, team_id, requested_by,
                        Act.CAMPAIGN_LIVE if state == CampaignState.LIVE else Act.CAMPAIGN_PAUSED,
                        await _name(conn, team_id, campaign_id),
                        "it was paused" if before == CampaignState.PAUSED else "")  # fmt: skip
    if state != CampaignState.LIVE:
        return before, None
    if before == CampaignState.LIVE:  # going live again: its enrollment if unfinished
        return before, await _pending_in(conn, team_id, campaign_id, 0, thread=thread,
                                         hold=hold, queue_job=queue_job)  # fmt: skip
    await schedule_waiting_in(conn, team_id, campaign_id)
    resumed = await _resume_not_live_in(conn, team_id, campaign_id)
    targets = (await conn.execute(
        text("SELECT COUNT(*) FROM campaign_segment WHERE campaign_id = :c "
             "AND team_id = :t AND role = 'target'"),
        {"c": campaign_id, "t": team_id})).scalar_one()  # fmt: skip
    if not targets:
        return before, None  # nothing to enroll until a segment is targeted
    after = await database_now_in(conn) + RESUMED_FIRST if resumed else None
    return before, await _enroll_in(conn, team_id, campaign_id, segment_id=None, batch_id=None,
                                    requested_by=requested_by, thread=thread, hold=hold,
                                    queue_job=queue_job, run_after=after)  # fmt: skip


# The workspace's reviews still waiting for a lead, on a message: each shows whom every live
# campaign targeting its segment will invite, and asks to confirm consent when one does.
_OPEN_REVIEWS = text("SELECT id FROM import_batch WHERE team_id = :t AND status = :draft "
                     "AND message_ts IS NOT NULL ORDER BY id")


async def redraw_reviews_in(conn: AsyncConnection, team_id: str) -> None:
    """Open reviews are drawn again, in a job, after a campaign changes what they preview
    (goes live or pauses, is edited, targets or excludes a segment while live): going live
    left a review with no *Confirm consent* button while Approve asked for it, and a pause
    or the invite email turned off left "2 will be invited" on it."""
    params = {"t": team_id, "draft": BatchStatus.DRAFT}
    for (batch_id,) in (await conn.execute(_OPEN_REVIEWS, params)).all():
        await enqueue_report_in(conn, team_id, int(batch_id), BATCH_CHANGED)


async def _redraw_waiting_in(conn: AsyncConnection, team_id: str, campaign_id: int) -> None:
    """Reports in threads with invites still waiting are drawn again, as after an Edit: they
    said "2 held until 06:22" with Cancel invites while a pause kept them back (the report
    says the campaign is paused), and going live again must take that back. In a job, so
    the command line's pause redraws them too."""
    for enrollment_id in await reported_waiting_in(conn, team_id, campaign_id):
        await enqueue_enrollment_report_in(conn, team_id, enrollment_id)


async def enroll_after_import_in(conn: AsyncConnection, team_id: str, batch_id: int,
                                 segment_id: int, thread: Thread | None, requested_by: str,
                                 *, hold: bool | None = None, queue_job: bool = True
                                 ) -> list[int]:  # fmt: skip
    """Enroll an import's new members in every live campaign targeting its segment, or All
    Customers (which every contact an import adds is in too: the import's members are its
    new ones there as well)."""
    campaigns = [r[0] for r in await conn.execute(
        text("SELECT DISTINCT c.id FROM campaign c "
             "JOIN campaign_segment cs ON cs.campaign_id = c.id "
             "JOIN segment g ON g.id = cs.segment_id AND g.team_id = c.team_id "
             "WHERE c.team_id = :t AND c.state = 'live' AND cs.role = 'target' "
             "AND (cs.segment_id = :s OR g.kind = :all) ORDER BY c.id"),
        {"t": team_id, "s": segment_id, "all": SegmentKind.ALL},
    )]  # fmt: skip
    return [await _enroll_in(conn, team_id, c, segment_id=segment_id, batch_id=batch_id,
                             requested_by=requested_by, thread=thread, hold=hold,
                             queue_job=queue_job, key=import_enrollment_key(c, batch_id))
            for c in campaigns]  # fmt: skip


_EXCLUDING_LIVE = text("""
    SELECT DISTINCT c.id FROM campaign c JOIN campaign_segment cs ON cs.campaign_id = c.id
    WHERE c.team_id = :t AND c.state = 'live' AND cs.team_id = :t AND cs.segment_id = :s
      AND cs.role = 'exclude'
    ORDER BY c.id
""")


async def enroll_when_exclusion_ends_in(conn: AsyncConnection, team_id: str, segment_id: int,
                                        requested_by: str) -> list[int]:  # fmt: skip
    """Contacts of the segment stop being kept out of the live campaigns that exclude it (it
    is being deleted, a contact left it, an import into it was undone): each of those
    campaigns enrolls its targets again, in a job, so those of them in a target become
    advocates (advocates are skipped, the still excluded counted). Nothing did before: they
    stayed in targeted segments without a link for good, and importing them again enrolled
    nobody (they were members already) while the review promised them an invite. Call it
    while the exclusion still stands (this reads it); returns the enrollments."""
    campaigns = [int(r[0]) for r in await conn.execute(_EXCLUDING_LIVE,
                                                       {"t": team_id, "s": segment_id})]
    enrollments = []
    for campaign in campaigns:
        # one not started yet will see this change too: contacts taken out one by one made
        # one enrollment of every target each, and each read the whole audience. The
        # campaign's row first: a run starting now waits for this commit, and one already
        # under way is over before this reads whether it is still waiting
        await _take(conn, team_id, campaign)
        waiting = (await conn.execute(_WAITING_FULL_ENROLLMENT,
                                      {"t": team_id, "c": campaign})).scalar()  # fmt: skip
        enrollments.append(int(waiting) if waiting is not None else await _enroll_in(
            conn, team_id, campaign, segment_id=None, batch_id=None,
            requested_by=requested_by, thread=None))  # fmt: skip
    return enrollments


_WAITING_FULL_ENROLLMENT = text("""
    SELECT e.id FROM enrollment e JOIN job j ON j.team_id = e.team_id
      AND j.dedupe_key = 'enroll:' || CAST(e.id AS VARCHAR(20))
    WHERE e.team_id = :t AND e.campaign_id = :c AND e.segment_id IS NULL
      AND e.batch_id IS NULL AND e.status = 'queued' AND j.state = 'queued'
    ORDER BY e.id LIMIT 1
""")


async def enrollments_in_thread(db: Database, team_id: str, channel_id: str,
                                thread_ts: str) -> list[int]:  # fmt: skip
    """The enrollments reported in a Slack thread (an import's), oldest first."""
    async with db.begin() as conn:
        return [int(r[0]) for r in await conn.execute(text(
            "SELECT id FROM enrollment WHERE team_id = :t AND channel_id = :c "
            "AND thread_ts = :ts ORDER BY id"), {"t": team_id, "c": channel_id, "ts": thread_ts})]


async def get_enrollment(db: Database, team_id: str, enrollment_id: int) -> Enrollment:
    async with db.session() as session:
        enrollment = await session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.team_id != team_id:
        raise CampaignError("That enrollment doesn't exist in this workspace.")
    return enrollment


async def targets_of(db: Database, team_id: str, campaign_id: int) -> list[CampaignSegment]:
    async with db.session() as session:
        return list((await session.exec(select(CampaignSegment).where(
            CampaignSegment.team_id == team_id, CampaignSegment.campaign_id == campaign_id
        ))).all())  # fmt: skip


# When the contacts of a segment a campaign targets are enrolled, by the campaign's state: a
# live campaign at once (and, with the invite email on, invites them), a draft or a paused one
# with all its targets when it goes live. One wording for the segments' delete confirmation
# (contacts it no longer excludes) and `campaign target` of a campaign that isn't live: a
# paused one said "when it goes live" in one and "when it resumes" in the other.
_ENROLLED_WHEN = {CampaignState.LIVE: "are enrolled now (and invited, if it sends invites)",
                  CampaignState.DRAFT: "will be enrolled when it goes live",
                  CampaignState.PAUSED: "will be enrolled when it resumes"}  # fmt: skip


def enrolled_when(state: str) -> str:
    """When a campaign in `state` enrolls its targets' contacts, after "its contacts": "will
    be enrolled when it resumes" (no full stop: callers end the sentence)."""
    return _ENROLLED_WHEN[CampaignState(state)]


@dataclass(frozen=True, slots=True)
class DefaultSender:
    """The From an invite gets when its campaign has no sender (invites.send_invites): the
    store's name at `invites@` the host of PUBLIC_URL, i.e. the bot's domain, not the shop's."""

    address: str  # as the invite shows it: "shop.example" <invites@r.example>
    host: str  # the domain after @
    unusable: str  # why no mail from it is delivered ("": it may be): an IP, localhost


def default_sender(campaign: Campaign, public_url: str) -> DefaultSender | None:
    """The From a campaign's invites will carry because it has no sender, or None (it has
    one, or its invite email is off: no invite goes out): invites.default_from, the store
    URL's host at `invites@` PUBLIC_URL's host, and whether mail from there is delivered."""
    if not campaign.invite_email or campaign.sender.strip():
        return None
    host = urlsplit(public_url).hostname or "localhost"
    try:
        ipaddress.ip_address(host.strip("[]"))
        unusable = "an IP address"
    except ValueError:
        unusable = "this computer, not a mail domain" if _this_computer(host) else ""
    # the invite's own From: a copy made with formataddr wrote an accented store's name as
    # an encoded word, =?utf-8?q?b=C3=BCcher=2Ede?=, in what people read
    return DefaultSender(default_from(campaign, public_url), host, unusable)


def sender_warning(campaign: Campaign, public_url: str, how_to_set: str) -> str:
    """A warning for whoever creates, edits or puts live a campaign that emails without a
    sender ("": it has one, or sends no invite email): the address its invites will come
    from, and `how_to_set` one ("referral-bot campaign edit …", or the form's field). The
    default is the bot's domain (PUBLIC_URL's host), not the merchant's: providers trust mail
    from the shop's own domain more, and an IP address or localhost is no mail domain at all.
    Only a warning: trying it out on the default works (invites written as .eml files)."""
    found = default_sender(campaign, public_url)
    if found is None:
        return ""
    said = (f"Invites of {quoted(campaign.name)} will come from {found.address}: no sender is set, "
            "so the address is made from the bot's PUBLIC_URL")
    if found.unusable:
        return (f"{said}, and {found.host} is {found.unusable}: mail from it won't be "
                f"delivered. Set the shop's own sender: {how_to_set}")
    return (f"{said}, the bot's domain rather than the shop's: mail from the shop's own domain "
            f"is more likely to reach inboxes. Set one: {how_to_set}")


@dataclass(frozen=True, slots=True)
class Audience:
    """Whom an enrollment would make advocates now: contacts of the scope not advocates yet
    and in no excluded segment; `subscribed` of them are emailed an invite."""

    enrolled: int
    subscribed: int


# Left out: advocates already, and contacts of a segment the campaign excludes, as enrolling
# has it (enroll.in_excluded_segment), but the segment being targeted (:s, 0 going live):
# targeting makes it a target, excluded no more.
_AUDIENCE = f"""
    SELECT COUNT(*), COALESCE(SUM(CASE WHEN k.subscribed = :yes THEN 1 ELSE 0 END), 0)
    FROM contact k
    WHERE k.team_id = :t AND {{scope}}
      AND NOT EXISTS (SELECT 1 FROM advocate a WHERE a.campaign_id = :c AND a.contact_id = k.id)
      AND NOT {in_excluded_segment("k.id", other_than=":s")}
"""
_IN_TARGETS = ("k.id IN (SELECT m.contact_id FROM segment_member m JOIN campaign_segment cs "
               "ON cs.segment_id = m.segment_id WHERE m.team_id = :t AND cs.team_id = :t "
               "AND cs.campaign_id = :c AND cs.role = 'target')")
_TARGETS_ALL = ("EXISTS (SELECT 1 FROM campaign_segment cs JOIN segment g ON g.id = cs.segment_id "
                "WHERE cs.campaign_id = :c AND cs.team_id = :t AND cs.role = 'target' "
                "AND g.kind = 'all')")
_IN_SEGMENT = ("k.id IN (SELECT contact_id FROM segment_member WHERE team_id = :t "
               "AND segment_id = :s)")


async def audience(db: Database, team_id: str, campaign_id: int,
                   segment_id: int | None = None) -> Audience:  # fmt: skip
    """Whom enrolling would add now: of the segment (targeting it; it counts as a target even
    if the campaign excludes it now, as targeting makes it one), or of every target (going
    live). What the shell asks about before enrolling thousands at once; counted as
    enroll.run_enrollment decides (advocates skipped, excluded segments' contacts left out),
    but not locked: the figure may move a little before the enrollment runs."""
    params: dict[str, Any] = {"t": team_id, "c": campaign_id, "s": segment_id or 0,
                              "yes": True}  # fmt: skip
    if segment_id is not None:
        segment = await get_segment(db, team_id, segment_id)
        scope = "1 = 1" if segment.kind == SegmentKind.ALL else _IN_SEGMENT
    else:
        scope = f"({_TARGETS_ALL} OR {_IN_TARGETS})"
    async with db.begin() as conn:
        row = (await conn.execute(text(_AUDIENCE.format(scope=scope)), params)).one()
    return Audience(int(row[0]), int(row[1]))


@dataclass(frozen=True, slots=True)
class QueuedRetry:
    """A send job a Retry sending queued (invites._enqueue_send's "retry" occasion) that
    hasn't ended: queued, or running under `worker` (its lease owner's worker)."""

    job_id: int
    state: str
    queued_at: datetime
    worker: str | None


# The retry's key is "send:<enrollment>:retry:<time>" (invites._enqueue_send)
_QUEUED_RETRIES = text(f"""
    SELECT j.id, j.state, j.created_at, j.lease_owner FROM job j JOIN enrollment e
      ON j.team_id = e.team_id
     AND j.dedupe_key LIKE 'send:' || CAST(e.id AS VARCHAR(20)) || ':retry:%'
    WHERE e.team_id = :t AND e.campaign_id = :c AND j.kind = '{SEND_JOB}'
      AND j.state IN ('queued', 'running')
    ORDER BY j.id
""").columns(created_at=UTCDateTime())


async def queued_retries(db: Database, team_id: str, campaign_id: int) -> list[QueuedRetry]:
    """The campaign's retries of sending not ended yet: a second `campaign retry-sending` (or
    click) finds nothing stopped, because the first one's run is on its way, and says so."""
    async with db.begin() as conn:
        rows = (await conn.execute(_QUEUED_RETRIES, {"t": team_id, "c": campaign_id})).all()
    return [QueuedRetry(int(r[0]), str(r[1]), r[2], worker_of(r[3])) for r in rows]
