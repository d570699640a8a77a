"""Block Kit for the App Home tab: segments, campaigns, recent imports, Mailchimp, and buttons.

Plain data in, a slack_sdk `View` out (no Slack calls, no database), like `messages.py`. Every
name, email and error that reaches mrkdwn goes through `esc()`. Each section shows at most a
few rows and says how many more there are, so the view stays far below Slack's 100 blocks
for Home whatever the workspace holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.audit import CLI, by_whom
from bot.campaigns.service import CampaignSummary
from bot.ids import digits
from bot.imports.batches import status_words
from bot.imports.undo import STOPPED, WAITING
from bot.mailchimp.accounts import Connection, Seen
from handlers.campaign_messages import STATE_LABEL, waiting_line
from handlers.ids import Action
from handlers.messages import esc, n, plural, slack_date
from handlers.slack_text import SECTION_TEXT, cut_mrkdwn
from models import BatchStatus, CampaignState, Segment, SegmentKind

MAX_SEGMENTS_SHOWN = 10
MAX_CAMPAIGNS_SHOWN = 10
MAX_IMPORTS_SHOWN = 10
# *Show more* adds a page at a time up to these: with the fixed blocks (about 25) the view
# stays below Slack's 100 blocks for Home.
MORE_STEP = 10
MAX_SEGMENTS_EVER = 25
MAX_IMPORTS_EVER = 40
MAX_TARGETS_NAMED = 5
MAX_ERROR = 300
TITLE = "Referral program"


@dataclass(frozen=True, slots=True)
class SegmentRow:
    name: str
    contacts: int
    built_in: bool = False  # All Customers


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One import batch as Home shows it (the batch's columns and its segment's name)."""

    batch_id: int
    segment: str
    status: str
    requested_by: str
    approved_by: str | None = None
    cancelled_by: str | None = None
    new_contacts: int = 0
    added_to_segment: int = 0
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    undone_by: str | None = None
    consent_by: str | None = None
    # done, within the undo window, or its undo runs no more (see below): an *Undo* button
    can_undo: bool = False
    # being undone, but nobody runs it: bot.imports.undo.STOPPED or WAITING (else None)
    undo_unattended: str | None = None
    enrolled: int = 0  # advocates its enrollments made (after it, or from its thread)
    invited: int = 0  # invites those enrollments sent


@dataclass(frozen=True, slots=True)
class HomeData:
    """Everything Home shows; lists may be longer than what is shown (the rest is counted)."""

    segments: Sequence[SegmentRow] = ()
    campaigns: Sequence[CampaignSummary] = ()
    imports: Sequence[ImportRow] = ()  # newest first; may hold only the first few
    imports_total: int = 0  # all the workspace's imports (>= len(imports))
    mailchimp: Connection | None = None
    imports_shown: int = MAX_IMPORTS_SHOWN  # grows with *Show more*
    segments_shown: int | None = None  # None: MAX_SEGMENTS_SHOWN
    # by campaign id: its due invites no running worker can send (invites.waiting_for_a_sender)
    waiting: Mapping[int, int] = field(default_factory=dict)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text, SECTION_TEXT)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=cut_mrkdwn(text, SECTION_TEXT))])


def _more(hidden: int, what: str, where: str) -> list[Block]:
    """What a list leaves out and where it is; `what` is the noun in the singular."""
    if hidden <= 0:
        return []
    return [_context(f"…and {_n_more(hidden, what)}: {where}")]


def _n_more(count: int, noun: str) -> str:
    """"1 more segment", "16 more segments": Home said "1 more segments"."""
    return plural(count, f"more {noun}")


# ---- sections -------------------------------------------------------------------------------


def more_value(segments: int, imports: int) -> str:
    """A *Show more* button's value: how many segments and imports Home shows next."""
    return f"{segments}:{imports}"


def read_more_value(value: str) -> tuple[int, int]:
    segments, _, imports = value.partition(":")
    return (digits(segments) or MAX_SEGMENTS_SHOWN, digits(imports) or MAX_IMPORTS_SHOWN)


@dataclass(frozen=True, slots=True)
class _Paging:
    """One list's *Show more* / *Show less*: its buttons, its first page and its ceiling."""

    more: Action
    less: Action
    first_page: int
    ceiling: int
    what: str  # "segment": said in the plural by `plural` when it isn't one
    where: str  # where the rest is, once Home is full


_SEGMENT_PAGING = _Paging(Action.HOME_MORE_SEGMENTS, Action.HOME_LESS_SEGMENTS,
                          MAX_SEGMENTS_SHOWN, MAX_SEGMENTS_EVER, "segment",
                          "`/referral segments` lists them all.")  # fmt: skip
_IMPORT_PAGING = _Paging(Action.HOME_MORE_IMPORTS, Action.HOME_LESS_IMPORTS, MAX_IMPORTS_SHOWN,
                         MAX_IMPORTS_EVER, "import",
                         "`/referral audit` tells who requested and approved each.")  # fmt: skip


def _show_more(paging: _Paging, shown: int, hidden: int, more: str, less: str) -> list[Block]:
    """*Show more* while Home has room for another page (then where the rest is), and *Show
    less* once the list is longer than its first page: what a person opened stays open
    across republishes, so they need a way to fold it back."""
    blocks: list[Block] = []
    buttons: list[ButtonElement] = []
    if hidden > 0 and shown < paging.ceiling:
        buttons.append(ButtonElement(text=f"Show more ({_n_more(hidden, paging.what)})",
                                     action_id=paging.more, value=more))  # fmt: skip
    else:
        blocks += _more(hidden, paging.what, paging.where)
    if shown > paging.first_page:
        buttons.append(ButtonElement(text="Show less", action_id=paging.less, value=less))
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    return blocks


def segment_blocks(segments: Sequence[SegmentRow], shown: int = MAX_SEGMENTS_SHOWN,
                   imports_shown: int = MAX_IMPORTS_SHOWN) -> list[Block]:  # fmt: skip
    blocks: list[Block] = [HeaderBlock(text="Segments")]
    if not segments:
        blocks.append(_section("No segments yet. *New import* creates one and fills it with "
                               "contacts from CSV or Excel files, Mailchimp or one by "
                               "one."))  # fmt: skip
    shown = max(1, min(shown, MAX_SEGMENTS_EVER))
    for row in segments[:shown]:
        kind = " _(every contact)_" if row.built_in else ""
        blocks.append(_section(f"*{esc(row.name)}*{kind} · {plural(row.contacts, 'contact')}"))
    more = more_value(min(shown + MORE_STEP, MAX_SEGMENTS_EVER), imports_shown)
    blocks += _show_more(_SEGMENT_PAGING, min(shown, len(segments)), len(segments) - shown,
                         more, more_value(MAX_SEGMENTS_SHOWN, imports_shown))  # fmt: skip
    return blocks


def _targets(names: Sequence[str]) -> str:
    if not names:
        return "no target segment yet"
    shown = ", ".join(esc(name) for name in names[:MAX_TARGETS_NAMED])
    hidden = len(names) - MAX_TARGETS_NAMED
    return f"{shown} and {n(hidden)} more" if hidden > 0 else shown


def campaign_line(summary: CampaignSummary, waiting: int = 0) -> str:
    """`waiting`: its due invites no running worker can send, said under it as the campaign
    list says it (Home showed the campaign live, its invites unsent, and not why)."""
    c = summary.campaign
    state = STATE_LABEL.get(CampaignState(c.state), esc(c.state))
    return (f"*{esc(c.name)}* · {state}\n"
            f"Targets: {_targets(summary.targets)} · {plural(summary.advocates, 'advocate')} · "
            f"{plural(summary.invites_sent, 'invite')} sent"
            + (f"\n{waiting_line(waiting)}" if waiting else ""))  # fmt: skip


def campaign_blocks(campaigns: Sequence[CampaignSummary],
                    waiting: Mapping[int, int] | None = None) -> list[Block]:  # fmt: skip
    """`waiting`: by campaign id, as HomeData's; a line of the campaign's section, not a
    block of its own (Home's block count stays what it was)."""
    waiting = waiting or {}
    blocks: list[Block] = [HeaderBlock(text="Campaigns")]
    if not campaigns:
        blocks.append(_section("No campaigns yet. A campaign turns the contacts of the "
                               "segments it targets into advocates with referral links, and "
                               "can send each one an invite email."))  # fmt: skip
    for summary in campaigns[:MAX_CAMPAIGNS_SHOWN]:
        due = waiting.get(summary.campaign.id or 0, 0)
        blocks.append(_section(campaign_line(summary, due)))
    blocks += _more(len(campaigns) - MAX_CAMPAIGNS_SHOWN, "campaign",
                    "`/referral campaign` lists them all.")  # fmt: skip
    return blocks


# A draft of the shell's (`referral-bot import`, `--background`) is one whose files are being
# read: nobody reviews it, and "waiting for review" sent people looking for a review message.
SHELL_DRAFT_WORDS = "reading its files (an import from the command line: no review)"


def import_line(row: ImportRow) -> str:
    status = status_words(row.status, row.approved_by, row.cancelled_by, row.undone_by, row.error)
    if row.status == BatchStatus.DRAFT and row.requested_by == CLI:
        status = SHELL_DRAFT_WORDS
    when = slack_date(row.created_at) if row.created_at else ""
    line = (f"*{esc(row.segment)}* · {status}\n"
            f"Requested {by_whom(row.requested_by)}" + (f" · {when}" if when else ""))  # fmt: skip
    if row.status in (BatchStatus.DONE, BatchStatus.UNDOING, BatchStatus.UNDONE):
        line += (f"\n{plural(row.new_contacts, 'new contact')}, "
                 f"{n(row.added_to_segment)} added to the segment")  # fmt: skip
        if row.enrolled or row.invited:
            line += (f" · {n(row.enrolled)} enrolled as "
                     f"advocate{'' if row.enrolled == 1 else 's'}, "
                     f"{plural(row.invited, 'invite')} sent")  # fmt: skip
    elif row.status in (BatchStatus.CANCELLED, BatchStatus.IMPORTING) and (
        row.new_contacts or row.added_to_segment
    ):
        line += (f"\nSo far: {plural(row.new_contacts, 'new contact')}, "
                 f"{n(row.added_to_segment)} added to the segment")  # fmt: skip
    elif row.status == BatchStatus.FAILED and row.error:
        line += f"\n{esc(row.error[:MAX_ERROR])}"
    return line + _UNATTENDED.get(row.undo_unattended or "", "")


# why "being undone" lasts: nothing runs it (a shell import has no thread to say so)
_UNATTENDED = {
    STOPPED: "\nIts undo stopped part way: a team lead finishes it with *Undo*.",
    WAITING: "\nIts undo waits for a worker, and none is running: *Undo* says how to finish it.",
}


def _undo_button(batch_id: int) -> ButtonElement:
    # the import thread's Undo: handlers/undo.py asks for confirmation in a modal
    return ButtonElement(text="Undo", action_id=Action.UNDO, value=str(batch_id))


def import_blocks(imports: Sequence[ImportRow], total: int, shown: int = MAX_IMPORTS_SHOWN,
                  segments_shown: int = MAX_SEGMENTS_SHOWN, *,
                  lead: bool = False) -> list[Block]:  # fmt: skip
    """`lead`: *Undo* beside the imports that can be undone (only leads may)."""
    blocks: list[Block] = [HeaderBlock(text="Recent imports")]
    if not imports:
        blocks.append(_section("No imports yet: press *New import*, or upload a CSV or an "
                               "Excel workbook to a channel I'm in."))  # fmt: skip
    rows = imports[:max(1, min(shown, MAX_IMPORTS_EVER))]
    for row in rows:
        section = _section(import_line(row))
        if row.can_undo and lead:
            section.accessory = _undo_button(row.batch_id)
        blocks.append(section)
    more = more_value(segments_shown, min(len(rows) + MORE_STEP, MAX_IMPORTS_EVER))
    # `/referral audit` is the leads': a member sent there was refused
    paging = _IMPORT_PAGING if lead else replace(
        _IMPORT_PAGING, where="a team lead can see them all with `/referral audit`.")
    blocks += _show_more(paging, len(rows), max(total, len(imports)) - len(rows), more,
                         more_value(segments_shown, MAX_IMPORTS_SHOWN))  # fmt: skip
    return blocks


def mailchimp_line(conn: Connection) -> str:
    if conn.account_name:
        who = f"*{esc(conn.account_name)}*"
        if conn.login_email:
            who += f" ({esc(conn.login_email)})"
    else:
        who = f"the account in data centre `{esc(conn.dc)}`"
    when = slack_date(conn.connected_at) if isinstance(conn.connected_at, datetime) else ""
    by = by_whom(conn.connected_by) if conn.connected_by else "by someone"
    return (f":white_check_mark: *Connected*: {who}\n"
            f"Connected {by}" + (f" · {when}" if when else ""))  # fmt: skip


def mailchimp_blocks(conn: Connection | None, *, lead: bool = False) -> list[Block]:
    """`lead`: *Connect Mailchimp* when it isn't (only leads may); others read who can."""
    blocks: list[Block] = [HeaderBlock(text="Mailchimp")]
    if conn is not None and conn.refused_at is not None:
        since = slack_date(conn.refused_at)
        who = "Reconnect it" if lead else "A team lead can reconnect it"
        blocks.append(_section(f":warning: *Mailchimp refuses the saved credentials* (revoked, "
                               f"or the key deleted; seen {since}): no audience can be "
                               f"imported. {who}: that replaces them."))  # fmt: skip
        if lead:
            blocks.append(ActionsBlock(elements=[
                _connect_button("Reconnect Mailchimp", Seen.of(conn))]))  # fmt: skip
        return blocks
    if conn is not None and conn.unreadable:  # SECRET_KEY changed (or unset) since it was saved
        who = "Reconnect it" if lead else "A team lead can reconnect it"
        blocks.append(_section(":warning: *Mailchimp's saved credentials can't be read* with "
                               "this bot's SECRET_KEY (changed, or unset, since they were "
                               f"saved): no audience can be imported. {who}: that saves them "
                               "again."))  # fmt: skip
        if lead:
            blocks.append(ActionsBlock(elements=[
                _connect_button("Reconnect Mailchimp", Seen.of(conn))]))  # fmt: skip
        return blocks
    if conn is not None:
        blocks.append(_section(mailchimp_line(conn)))
        blocks.append(_context("`/referral mailchimp` disconnects it (team leads)."))
        return blocks
    who = "Connect Mailchimp" if lead else "A team lead can connect Mailchimp"
    blocks.append(_section(f"*Not connected.* {who} to import its audiences into a segment; "
                           "only subscribed members are imported."))  # fmt: skip
    if lead:
        blocks.append(ActionsBlock(elements=[_connect_button()]))
    return blocks


# ---- buttons and the view -------------------------------------------------------------------


NOTHING_CONNECTED = Seen(None)  # what Connect on a Home without a connection is drawn for


def _connect_button(text: str = "Connect Mailchimp",
                    seen: Seen = NOTHING_CONNECTED) -> ButtonElement:  # fmt: skip
    # the `/referral mailchimp` Connect button: its listener opens a modal with Mailchimp's
    # sign-in, or the API key form when no OAuth app is configured. Its value names the
    # connection Home was drawn with (none, or the one to reconnect): the sign-in or key it
    # leads to replaces only that, not an account another lead connected since
    return ButtonElement(text=text, action_id=Action.MAILCHIMP_CONNECT,
                         value=seen.text())  # fmt: skip


def action_buttons(connected: bool, *, lead: bool = False) -> ActionsBlock:
    """The common actions; *New campaign* and *Connect Mailchimp* for team leads only (the
    others would be refused on clicking)."""
    buttons = [ButtonElement(text="New import", action_id=Action.HOME_NEW_IMPORT, value="new",
                             style="primary")]  # fmt: skip
    if lead:  # the campaign list's New campaign button: campaigns.py opens the modal for it
        buttons.append(ButtonElement(text="New campaign", action_id=Action.CAMPAIGN_CREATE,
                                     value="new"))  # fmt: skip
    # contact_search.py opens the search modal
    buttons.append(ButtonElement(text="Search contacts", action_id=Action.HOME_SEARCH_CONTACTS,
                                 value="search"))  # fmt: skip
    if lead and not connected:
        buttons.append(_connect_button())
    return ActionsBlock(elements=buttons)


# how to ask for the import form again, for `form_not_opened`
AGAIN_FROM_HOME = "press *New import* on Home again"
AGAIN_TYPED = "type `/referral import` again"


def form_not_opened(again: str, wait: int) -> str:
    """Slack rate limited the form's opening for longer than its trigger id lives (`wait`:
    its Retry-After, in seconds)."""
    when = "in a few seconds" if wait <= 5 else f"in {wait} seconds"
    return (f"Slack is busy right now and didn't open the import form. Nothing changed: "
            f"{again} {when}.")


OUTSIDER_HOME = ("Only members of this workspace can see its referral program here: its "
                 "segments, campaigns and imports.")


def outsider_home_view() -> View:
    """Home for a member of another organisation (a shared channel's): nothing of the
    workspace's."""
    return View(type="home", blocks=[HeaderBlock(text=TITLE), _section(OUTSIDER_HOME)])


UNKNOWN_VIEWER_HOME = ("Slack couldn't say just now whether you are a member of this "
                       "workspace, so its referral program isn't shown: open this tab again "
                       "in a moment.")


def unknown_viewer_home_view() -> View:
    """Home when Slack can't say who is looking (users.info failed)."""
    return View(type="home", blocks=[HeaderBlock(text=TITLE), _section(UNKNOWN_VIEWER_HOME)])


def home_view(data: HomeData, *, lead: bool) -> View:
    """Home as `lead` (a team lead, or not: no buttons they would be refused) sees it."""
    blocks: list[Block] = [HeaderBlock(text=TITLE)]
    blocks.append(action_buttons(data.mailchimp is not None, lead=lead))
    segments = min(data.segments_shown or MAX_SEGMENTS_SHOWN, MAX_SEGMENTS_EVER)
    imports = min(data.imports_shown, MAX_IMPORTS_EVER)
    blocks += [DividerBlock(), *segment_blocks(data.segments, segments, imports)]
    blocks += [DividerBlock(), *campaign_blocks(data.campaigns, data.waiting)]
    blocks += [DividerBlock(), *import_blocks(data.imports, data.imports_total, imports,
                                              segments, lead=lead)]  # fmt: skip
    blocks += [DividerBlock(), *mailchimp_blocks(data.mailchimp, lead=lead)]
    blocks.append(_context("Type `/referral help` anywhere for the commands."))
    return View(type="home", blocks=blocks)


def segment_rows(sized: Sequence[tuple[Segment, int]]) -> list[SegmentRow]:
    """`segment_sizes` (Segment, count) pairs as rows."""
    return [SegmentRow(s.name, count, s.kind == SegmentKind.ALL) for s, count in sized]
