"""Campaigns, the advocates they enroll, and the invite each advocate is sent (at most once)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.clock import utcnow


class CampaignState(StrEnum):
    DRAFT = "draft"  # being set up: targeting it enrolls nobody yet
    LIVE = "live"  # targets are enrolled at once, and so are contacts added to them later
    PAUSED = "paused"  # nobody new is enrolled; queued invites wait


class Campaign(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("team_id", "name_key", name="uq_campaign_team_name"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32, foreign_key="workspace.team_id", index=True)
    name: str = Field(max_length=100)
    name_key: str = Field(max_length=100)
    state: str = Field(default=CampaignState.DRAFT, max_length=10)
    store_url: str = Field(max_length=500)  # where referral links lead
    sender: str = Field(default="", max_length=200)  # "Shop <hello@shop.example>"
    offer: str = Field(default="", max_length=200)  # "Give 10%, get $10"
    invite_email: bool = True  # off for merchants who invite from Klaviyo
    invite_delay_days: int = 0  # 0: at once
    created_by: str = Field(default="cli", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    # when its settings (the Edit form's fields) were last saved: the marker a stale form is
    # refused by (service.update_campaign); targeting, excluding, going live and pausing
    # leave it as it is
    updated_at: datetime = Field(default_factory=utcnow)


class SegmentRole(StrEnum):
    TARGET = "target"
    EXCLUDE = "exclude"


class CampaignSegment(SQLModel, table=True):
    """A segment a campaign targets, or excludes (an excluded contact is never enrolled)."""

    __tablename__ = "campaign_segment"

    campaign_id: int = Field(primary_key=True)
    segment_id: int = Field(primary_key=True)
    team_id: str = Field(max_length=32)
    role: str = Field(max_length=10)
    created_at: datetime = Field(default_factory=utcnow)


class Advocate(SQLModel, table=True):
    """A contact enrolled in a campaign, with the unguessable code of its referral link.

    Written in bulk by enrollment only; like the other bulk tables it declares no foreign keys.
    """

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id", name="uq_advocate_campaign_contact"),
        UniqueConstraint("code", name="uq_advocate_code"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    campaign_id: int
    contact_id: int
    code: str = Field(max_length=16)
    enrollment_id: int | None = None
    # The import whose membership of its segment enrolled it (its enrollment's), or the one an
    # undo handed that membership on to: undoing that import with its advocates removes it.
    # None: enrolled by targeting or going live.
    batch_id: int | None = None
    clicks: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class EnrollmentStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Enrollment(SQLModel, table=True):
    """One run of enrolling a campaign's targets (targeting, going live, or after an import).

    Its counts are taken from the rows it wrote; `channel_id`/`thread_ts` is the Slack thread
    that hears about it, `report_ts` the reply there that is kept up to date.
    """

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32, foreign_key="workspace.team_id", index=True)
    campaign_id: int
    segment_id: int | None = None  # the segment just targeted, or None for all targets
    batch_id: int | None = None  # the import whose new contacts are enrolled
    requested_by: str = Field(default="cli", max_length=64)
    status: str = Field(default=EnrollmentStatus.QUEUED, max_length=10)
    enrolled: int = 0
    already_advocates: int = 0
    excluded: int = 0
    hold_until: datetime | None = None  # invites wait until then (Cancel invites meanwhile)
    channel_id: str | None = Field(default=None, max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)
    report_ts: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, max_length=2000)
    # Why its invites stopped going out (its send job gave up); cleared by Retry sending or
    # by a later send run that gets through.
    send_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class InviteState(StrEnum):
    QUEUED = "queued"  # to send at `send_after`
    HELD = "held"  # waiting for the enrollment's hold window to end
    SENDING = "sending"  # handed to the SMTP server; found so after a crash: uncertain
    SENT = "sent"
    FAILED = "failed"  # refused for good (5xx) or out of retries; `reason` says why
    UNCERTAIN = "uncertain"  # the server may have accepted it: never resent without a person
    CANCELLED = "cancelled"  # Cancel invites during the hold
    NOT_EMAILED = "not_emailed"  # `reason`: unsubscribed, invite email off


class Invite(SQLModel, table=True):
    """The outbox: one row per advocate, so no address is ever emailed twice per campaign."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id", name="uq_invite_campaign_contact"),
        Index("ix_invite_enrollment_state", "enrollment_id", "state"),
        Index("ix_invite_due", "team_id", "state", "send_after"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    campaign_id: int
    contact_id: int
    advocate_id: int
    enrollment_id: int
    state: str = Field(max_length=12)
    reason: str | None = Field(default=None, max_length=500)
    send_after: datetime | None = None
    attempts: int = 0
    locale: str | None = Field(default=None, max_length=35)  # the template language used
    fell_back: bool = False  # the contact's language had no template
    sent_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # while `sending`: the job handing it to the mail server (None: sent outside a job); only
    # an invite whose job is no longer alive is called uncertain by another run
    sender_job: int | None = None
