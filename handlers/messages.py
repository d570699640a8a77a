"""Block Kit builders: plain data in, slack_sdk models out (their to_dict() checks lengths).

No Slack calls and no database here, so every message can be built and checked in tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ConfirmObject,
    ContextBlock,
    ConversationFilter,
    ConversationSelectElement,
    DividerBlock,
    ExternalDataSelectElement,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.blocks.block_elements import FileInputElement
from slack_sdk.models.views import View

from bot.audit import by_whom
from bot.campaigns.preview import CampaignPreview
from bot.contact_admin import MAX_QUERY
from bot.imports.batches import Totals, cancelled_words
from bot.imports.dry_run import DryRun
from bot.imports.files import ENTRY_SEPARATOR
from bot.imports.mapping import mappable
from bot.imports.review import BatchView, ContactRow, describe_status
from bot.imports.rows import CONSENT_UNREAD
from bot.imports.source_names import told_apart
from bot.words import plural
from handlers.ids import Action, BlockId, Callback
from handlers.slack_text import SECTION_TEXT, cut_mrkdwn
from models import BatchStatus, FileFormat, ImportBatch, ImportSource, SourceKind, SourceStatus

MAX_SOURCES_SHOWN = 30  # keeps the review message far below Slack's 50 blocks
MAX_MAP_BUTTONS = 10  # a *Map columns* row each: 30 sources + 10 + the rest stay below 50
# *All sources* (a modal: 100 blocks) pages by as many, each with its Map columns row: its
# first page is the message's sources, the next ones those the message has no room for
SOURCES_PER_PAGE = MAX_SOURCES_SHOWN
CONTACTS_PER_PAGE = 10
KIND_LABEL = {SourceKind.CSV: "CSV file", SourceKind.CONTACT: "one contact",
              SourceKind.MAILCHIMP: "Mailchimp list"}  # fmt: skip

def help_text(undo_days: int) -> str:
    """`/referral help` (and any word it doesn't know), with the undo window as set
    (UNDO_WINDOW_DAYS), not a fixed week."""
    return HELP.replace("{undo_window}", undo_window(undo_days))


def undo_window(days: int) -> str:
    return "a day" if days == 1 else f"{days} days"


HELP = (
    "*Referral contacts, from Slack*\n"
    "• `/referral import`: add contacts to a segment from CSV or Excel (.xlsx) files, ZIPs of "
    "CSVs, Mailchimp lists or one by one, review them, and have a team lead approve the "
    "import.\n"
    "• `/referral campaign`: your referral campaigns, with their targets, advocates and invites; "
    "team leads create, edit, start and pause them here.\n"
    "• `/referral mailchimp`: whether Mailchimp is connected; team leads connect or disconnect "
    "it here, and its audiences can then be chosen in `/referral import`.\n"
    "• `/referral contacts [email or name]`: find a contact, see its segments, campaigns and "
    "referral links; remove, unsubscribe or delete it.\n"
    "• `/referral segments`: your segments; create, rename, delete or export one.\n"
    "• `/referral leads`: who may approve and undo imports; leads and admins change the list.\n"
    "• `/referral audit`: who did what and when (team leads).\n"
    "• Undo an import from its thread or the Home tab within {undo_window} of it, in two clicks "
    "(team leads).\n"
    "• Upload a CSV, an Excel workbook or a ZIP of CSVs to a channel I'm in and I'll offer to "
    "import it.\n"
    "• `/referral help`: this message."
)


def n(value: int) -> str:
    return f"{value:,}"


def were(count: int) -> str:
    return "was" if count == 1 else "were"




def esc(text: str | None) -> str:
    """User-supplied text made inert in mrkdwn and a message's `text`.

    Slack parses `<!channel>`, `<@U…>`, `<#C…>` and `<url|label>` there; escaping `&`, `<`
    and `>` (only those) shows them as typed. Every name, file name, email and error string
    that reaches mrkdwn goes through here; plain_text objects are not parsed and stay as is.
    """
    if not text:
        return ""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def file_stem(label: str) -> str:
    """A file name's stem, safe to reuse in a file name we upload."""
    stem = label.rsplit(".", 1)[0]
    return "".join(c if c.isalnum() or c in "-_ ." else "_" for c in stem)[:80] or "file"


def slack_date(when: datetime | None) -> str:
    if when is None:
        return "just now"
    stamp = int(when.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{when:%Y-%m-%d %H:%M} UTC>"


def metadata(**values: object) -> str:
    return json.dumps(values, separators=(",", ":"))


def consent_block() -> InputBlock:
    """Optional to Slack; the form's check makes it required when a live campaign targeting
    the segment sends invite emails (the segment is chosen in the same form)."""
    return InputBlock(
        block_id=BlockId.CONSENT, optional=True, label="Consent",
        hint="Required when a live campaign targeting the segment sends invite emails.",
        element=CheckboxesElement(action_id=Action.CONSENT, options=[
            Option(value=CONSENT_VALUE, text="These people agreed to hear from us")]),
    )  # fmt: skip


def review_channel_block() -> InputBlock:
    """Where the review message goes, for a form opened where there is no channel (Home).

    Optional to Slack; the form's check makes it required for anyone who isn't a team lead,
    since only leads approve and they don't see the requester's direct messages."""
    return InputBlock(
        block_id=BlockId.REVIEW_CHANNEL, optional=True, label="Review it in",
        hint="A channel where a team lead will approve it (I must be a member: /invite me "
             "there). Empty: our direct messages, where only you see it.",
        element=ConversationSelectElement(
            action_id=Action.REVIEW_CHANNEL, placeholder="Choose a channel",
            filter=ConversationFilter(include=["public", "private"], exclude_bot_users=True)),
    )  # fmt: skip


def import_modal(*, channel_id: str, batch_id: int | None = None, segment: str | None = None,
                 mailchimp: Sequence[Block] = (), ask_consent: bool = True,
                 choose_channel: bool = False) -> View:  # fmt: skip
    """The import form; with `batch_id` it adds more sources to an existing review.

    `mailchimp` is the "Mailchimp lists" part (`mailchimp_messages.lists_blocks`): the modal
    opens before the audiences are known (trigger ids live 3 s) and is updated with them.
    `choose_channel` (opened from Home): the form asks where to post the review; `channel_id`
    (the person's DM) is where it goes when they leave that empty."""
    blocks: list[Block] = [review_channel_block()] if choose_channel else []
    if segment is None:
        blocks += [
            InputBlock(
                block_id=BlockId.SEGMENT, optional=True,
                label="Segment",
                hint="A static segment; every contact is also in All Customers.",
                element=ExternalDataSelectElement(
                    action_id=Action.SEGMENT, placeholder="Choose a segment", min_query_length=0
                ),
            ),
            InputBlock(
                block_id=BlockId.NEW_SEGMENT, optional=True, label="…or create a segment",
                element=PlainTextInputElement(action_id=Action.NEW_SEGMENT, max_length=100,
                                              placeholder="e.g. Spring VIPs"),
            ),
        ]  # fmt: skip
    else:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"Adding to *{esc(segment)}*")))
    blocks += [
        DividerBlock(),
        InputBlock(
            block_id=BlockId.FILES, optional=True, label="Files: CSV, Excel or ZIP",
            hint="Exports from Shopify, Mailchimp (its ZIP as it is), HubSpot, Klaviyo or a "
                 "spreadsheet. Headers: email, first name, last name and optional language.",
            element=FileInputElement(action_id=Action.FILES,
                                     filetypes=["csv", "tsv", "txt", "xlsx", "xlsm", "zip"],
                                     max_files=10),
        ),
        *mailchimp,
        SectionBlock(text=MarkdownTextObject(text="*…or add one customer by email*")),
        InputBlock(block_id=BlockId.EMAIL, optional=True, label="Email",
                   element=PlainTextInputElement(action_id=Action.EMAIL, max_length=254)),
        InputBlock(block_id=BlockId.FIRST_NAME, optional=True, label="First name",
                   element=PlainTextInputElement(action_id=Action.FIRST_NAME, max_length=200)),
        InputBlock(block_id=BlockId.LAST_NAME, optional=True, label="Last name",
                   element=PlainTextInputElement(action_id=Action.LAST_NAME, max_length=200)),
        InputBlock(block_id=BlockId.LOCALE, optional=True, label="Locale",
                   hint="Language of the invite, e.g. en, fr, pt-BR. Empty: the store default.",
                   element=PlainTextInputElement(action_id=Action.LOCALE, max_length=35)),
    ]  # fmt: skip
    if ask_consent:
        blocks += [DividerBlock(), consent_block()]
    return View(
        type="modal", callback_id=Callback.IMPORT, title="Import contacts",
        submit="Review import", close="Cancel", blocks=blocks,
        private_metadata=metadata(channel=channel_id, batch=batch_id),
    )  # fmt: skip


CONSENT_VALUE = "agreed"

# Why chat.postMessage refused a channel, as the person can act on it: the errors for which
# the review goes to the requester's DM instead.
_NOT_POSTED = {
    "not_in_channel": "I'm not a member of {channel}",
    "channel_not_found": "I can't see {channel} (a private channel I'm not in?)",
    "is_archived": "{channel} is archived",
    "restricted_action": "{channel} doesn't let apps post",
}
# refusals an /invite can't mend: the import is started again from another channel
_NOT_BY_INVITING = frozenset({"is_archived", "restricted_action"})


CHANNEL_REFUSALS = frozenset(_NOT_POSTED)


def not_posted_there(channel: str, error: str) -> str:
    """Said in the DM beside a review that couldn't go to the chosen channel."""
    where = f"<#{channel}>" if channel[:1] in ("C", "G") else "that conversation"
    reason = _NOT_POSTED.get(error, "Slack refused my message there ({error})")
    mend = ("start the import again from another channel, with me invited there (/invite)"
            if error in _NOT_BY_INVITING
            else f"invite me to {where} with /invite and start the import from there")
    return (f"{reason.format(channel=where, error=esc(error) or 'no reason given')}, so the "
            "review is here, where only you see it. For a team lead to approve it where they "
            f"read, {mend}.")


MAX_OPTION_TEXT = 75  # Slack's limit for an option's text


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters (Slack's limit of a field): cut with an ellipsis.

    For plain text, or text before `esc()`; escaped mrkdwn is cut by `cut_mrkdwn`, which
    splits no entity or mention."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def counted_option(value: str, name: str, count: str) -> Option:
    """An option "name (count)" within Slack's 75 characters: a long name (segments take 100
    characters, audiences more) is cut, not its count: cutting the whole text at 75 showed
    "… (1,2"."""
    room = MAX_OPTION_TEXT - len(count)
    shown = name if len(name) <= room else name[: room - 1].rstrip() + "…"
    return Option(value=value, text=shown + count)


NEW_SEGMENT_VALUE = "new:"  # an upload offer's choice of a segment to create, by its name


def new_segment_option(name: str) -> Option:
    """"New segment “Spring list”" (the name as typed, cut to fit Slack's 75 characters)."""
    return counted_option(NEW_SEGMENT_VALUE + name, "New segment “" + name, "”")


def segment_options(sized: list[tuple[int, str, int]]) -> list[Option]:
    """The import form's segment choices: "VIP (1,204)"."""
    return [counted_option(str(segment_id), name, f" ({n(size)})")
            for segment_id, name, size in sized[:100]]  # fmt: skip


FORMAT_LABEL = {FileFormat.CSV: "CSV file", FileFormat.XLSX: "Excel file",
                FileFormat.ZIP: "ZIP file", FileFormat.ZIP_CSV: "CSV in a ZIP"}  # fmt: skip


def _kind_label(source: ImportSource) -> str:
    """"CSV file", "Excel file", "CSV in a ZIP"...: file sources all have kind csv. What the
    file's bytes said when it was read; until then (and for files read before that was kept)
    what its name says."""
    if source.kind == SourceKind.CSV:
        if source.file_format in FORMAT_LABEL:
            return FORMAT_LABEL[source.file_format]  # type: ignore[index]
        if ENTRY_SEPARATOR in source.label:
            return "CSV in a ZIP"
        if source.label.lower().endswith(".xlsx"):
            return "Excel file"
        if source.label.lower().endswith(".zip"):
            return "ZIP file"  # not read yet, or refused: its CSVs get lines of their own
    return KIND_LABEL.get(SourceKind(source.kind), source.kind)


def _note_lines(note: str | None, icon: str) -> str:
    """A line each, with `icon`: what was recognised in the file (notes), or what was not
    (the warning about consent values nobody could read)."""
    lines = [line for line in (note or "").splitlines() if line.strip()]
    return "".join(f"\n{icon} {esc(line)}" for line in lines)


def _source_line(source: ImportSource, name: str, counts: Totals,
                 skipped: dict[str, int] | None = None) -> str:  # fmt: skip
    """The source's line under its `name` (told_apart: two customers.csv read as one)."""
    title = f"*{esc(name)}* ({_kind_label(source)})"
    if source.status == SourceStatus.PENDING:
        return f"{title}\n:hourglass_flowing_sand: Reading…"
    if source.status == SourceStatus.FAILED:
        return f"{title}\n:warning: {esc(source.error) or 'Could not be read.'}"
    parts = [f"{n(counts.valid)} valid", plural(counts.duplicates, "duplicate")]
    if skipped:  # a Mailchimp audience: members who aren't subscribed, by status
        by_status = sorted(skipped.items())
        parts.append("skipped: " + ", ".join(f"{n(c)} {esc(status)}" for status, c in by_status))
    elif source.kind == SourceKind.MAILCHIMP and counts.rejected:
        # an ended import whose staged rows were deleted after their retention: the count
        # by status went with them
        parts.append(f"skipped: {n(counts.rejected)} (not subscribed, or without a valid "
                     "address)")
    else:
        parts.append(f"{n(counts.rejected)} rejected")
    if counts.warnings:  # unknown locales, and consent values the warning lists
        # the warning may speak only of cells past the header, which are no row's warning
        consent = CONSENT_UNREAD in (source.warning or "")
        parts.append(f"{n(counts.warnings)} with " + ("a warning" if consent
                                                      else "an unknown locale"))  # fmt: skip
    return (f"{title}\n:white_check_mark: " + " · ".join(parts)
            + _note_lines(source.note, ":information_source:")
            + _note_lines(source.warning, ":warning:"))  # fmt: skip


def map_columns_actions(batch_id: int, source: ImportSource) -> ActionsBlock:
    """*Map columns* under a file's line: choose which header holds each field."""
    return ActionsBlock(elements=[ButtonElement(
        text="Map columns", action_id=Action.MAP_COLUMNS, value=f"{batch_id}:{source.id}")])


def _source_blocks(view: BatchView, source: ImportSource, remove: Action | None,
                   map_row: bool) -> list[Block]:  # fmt: skip
    """A source's line with its counts, its *Remove* (`remove`: the message's or the modal's
    action) and, with `map_row`, its *Map columns* row."""
    batch_id = view.batch.id or 0
    accessory = None
    if remove is not None:
        accessory = ButtonElement(text="Remove", action_id=remove, value=f"{batch_id}:{source.id}")
    line = _source_line(source, told_apart(source, view.sources), view.counts_of(source),
                        view.skipped.get(source.id or 0))  # fmt: skip
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(line)),
                                        accessory=accessory)]  # fmt: skip
    if map_row:
        blocks.append(map_columns_actions(batch_id, source))
    return blocks


def _all_sources(batch_id: int, hidden: int, unmapped: list[int],
                 draft: bool) -> SectionBlock | None:  # fmt: skip
    """The line under the sources when the message can't show them all, or has no room for
    every *Map columns* row: *All sources* opens a modal with every one of them and its
    buttons, at the page of the first one missing here (without it, sources past the 30th
    could not be removed or mapped from Slack at all). With sources past the 30th, files
    shown here without their *Map columns* are said too: one that failed on its columns is
    imported only by mapping them, and nothing told that the list's first page has them."""
    files = plural(len(unmapped), "more file")
    if hidden > 0:
        more = plural(hidden, "more source")
        text = (f"…and {more} (counted in the total): *All sources* lists "
                + ("them with their buttons." if draft else "them."))  # fmt: skip
        if unmapped:
            # it opens on the sources past the 30th: the first page is its *Previous*
            text += f"\n*Map columns* for {files}: *All sources*, then *Previous*."
        first = MAX_SOURCES_SHOWN
    elif unmapped:
        text = f"*Map columns* for {files}: under *All sources*."
        first = unmapped[0]
    else:
        return None
    button = ButtonElement(text="All sources", action_id=Action.SOURCES_OPEN,
                           value=f"{batch_id}:{first}")  # fmt: skip
    return SectionBlock(text=MarkdownTextObject(text=text), accessory=button)


def sources_modal(view: BatchView, offset: int) -> View:
    """*All sources*: the page of the import's sources holding the `offset`th, each with its
    counts and, while in review, its Remove and Map columns (2 blocks each: 62 of 100)."""
    batch = view.batch
    draft = batch.status == BatchStatus.DRAFT
    total = len(view.sources)
    last = max(0, total - 1) // SOURCES_PER_PAGE * SOURCES_PER_PAGE
    offset = min(max(0, offset), last) // SOURCES_PER_PAGE * SOURCES_PER_PAGE
    page = view.sources[offset:offset + SOURCES_PER_PAGE]
    shown = (f"sources {n(offset + 1)}–{n(offset + len(page))} of {n(total)}" if page
             else "no sources")  # fmt: skip
    about = (f"Import #{batch.id} into *{esc(view.segment.name)}* · {shown} · "
             f"{n(view.totals.valid)} to import")  # fmt: skip
    if not draft:
        about += f"\nThis import is {describe_status(batch)}: its sources can't be changed."
    blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(text=cut_mrkdwn(about))])]
    remove = Action.SOURCES_REMOVE if draft else None
    for source in page:
        blocks += _source_blocks(view, source, remove, draft and mappable(source))
    if not page:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="_No contacts queued._")))
    pager = []
    if offset > 0:
        pager.append(ButtonElement(text="Previous", action_id=Action.SOURCES_PREVIOUS,
                                   value=str(offset - SOURCES_PER_PAGE)))  # fmt: skip
    if offset + len(page) < total:
        pager.append(ButtonElement(text="Next", action_id=Action.SOURCES_NEXT,
                                   value=str(offset + SOURCES_PER_PAGE)))  # fmt: skip
    if pager:
        blocks.append(ActionsBlock(elements=pager))
    return View(type="modal", callback_id=Callback.SOURCES, title="All sources", close="Close",
                blocks=blocks,
                private_metadata=metadata(batch=batch.id, offset=offset))  # fmt: skip


def source_offset(view: BatchView, source_id: int) -> int:
    """Where the source is in the import's list (sources_modal shows the page holding it)."""
    return next((i for i, s in enumerate(view.sources) if s.id == source_id), 0)


def skipped_words(counts: Totals) -> str:
    """"2 rejected rows and 1 duplicate row": a count of none left out ("0 rejected and 1
    duplicate rows" was said)."""
    skipped = [plural(count, word) for count, word in ((counts.rejected, "rejected row"),
                                                       (counts.duplicates, "duplicate row"))
               if count] or [plural(0, "row")]  # fmt: skip
    return " and ".join(skipped)


def rejects_comment(label: str, counts: Totals) -> str:
    """Said over a file's skipped-rows CSV, in the direct message that brings it."""
    return f"{skipped_words(counts)} in *{esc(label)}* won't be imported; this CSV says why."


def _preview_line(p: CampaignPreview) -> str:
    when = f" in {plural(p.invite_in_days, 'day')}" if p.invite_in_days else ""
    parts = [f"*{n(p.will_invite)} will be invited*{when}"]
    parts += [f"{n(c)} enrolled without email ({esc(why)})" for why, c in p.without_email.items()]
    if p.already_advocates:
        parts.append(f"{n(p.already_advocates)} already advocates")
    if p.excluded:
        parts.append(f"{n(p.excluded)} excluded")
    return f":mailbox_with_mail: *{esc(p.campaign)}* (live) targets this segment: " + " · ".join(
        parts
    )


def preview_lines(previews: Sequence[CampaignPreview], prefix: str = "",
                  room: int = SECTION_TEXT) -> str:  # fmt: skip
    """Each live campaign's line, as many as fit in `room` characters, then how many more
    there are: the first five alone were shown, and a sixth campaign emailed everyone with
    nothing in the review saying it would."""
    lines = [prefix + _preview_line(p) for p in previews]
    shown: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index - 1
        tail = len(prefix + _more_campaigns(rest)) + 1 if rest else 0  # its bullet too
        if used + len(line) + 1 + tail > room:
            shown.append(prefix + _more_campaigns(len(lines) - index))
            break
        shown.append(line)
        used += len(line) + 1
    return "\n".join(shown)


def _more_campaigns(count: int) -> str:
    target = "targets" if count == 1 else "target"
    return (f"…and {plural(count, 'more live campaign')} {target} this segment and will email "
            "them too.")  # fmt: skip


def review_message(view: BatchView, previews: Sequence[CampaignPreview] = (), *,
                   undo_days: int = 7) -> tuple[str, list[Block]]:  # fmt: skip
    """(fallback text, blocks) of the review message; read-only once it leaves draft.
    `undo_days`: UNDO_WINDOW_DAYS, which Approve's confirmation promises.

    While in draft, each live campaign targeting the segment says whom it will email, so the
    lead approves knowing who gets an invite."""
    batch, totals = view.batch, view.totals
    draft = batch.status == BatchStatus.DRAFT
    title = f"Contact import #{batch.id} into {view.segment.name}"
    text = f"Contact import #{batch.id} into {esc(view.segment.name)}"
    blocks: list[Block] = [
        HeaderBlock(text=title[:150]),  # plain_text: shown as typed
        ContextBlock(elements=[MarkdownTextObject(
            text=f"Requested {by_whom(batch.requested_by)} · {slack_date(batch.created_at)}"
        )]),
    ]  # fmt: skip
    mapped = 0
    unmapped: list[int] = []  # positions of files shown without their *Map columns* row
    for index, source in enumerate(view.sources[:MAX_SOURCES_SHOWN]):
        map_row = draft and mappable(source)
        if map_row and mapped == MAX_MAP_BUTTONS:
            map_row = False
            unmapped.append(index)
        mapped += map_row
        blocks += _source_blocks(view, source, Action.REMOVE_SOURCE if draft else None, map_row)
    more = _all_sources(batch.id or 0, len(view.sources) - MAX_SOURCES_SHOWN, unmapped, draft)
    if more is not None:
        blocks.append(more)
    if not view.sources:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="_No contacts queued._")))
    blocks.append(DividerBlock())
    summary = (f"*Total:* {plural(totals.rows, 'row')} · *{n(totals.valid)} to import* · "
               f"{plural(totals.duplicates, 'duplicate')} · {n(totals.rejected)} rejected"
               )  # fmt: skip
    if view.pending:
        summary += (f"\n:hourglass_flowing_sand: {plural(view.pending, 'file')} still being "
                    "read.")  # fmt: skip
    blocks.append(SectionBlock(text=MarkdownTextObject(text=summary)))
    if draft and previews:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=preview_lines(previews))))
    consent = _consent_line(batch, draft and any(p.invites_on for p in previews))
    if consent:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=consent)]))
    if draft:
        needs = batch.consent_by is None and any(p.invites_on for p in previews)
        blocks.append(_review_actions(batch.id or 0, confirm_consent=needs,
                                      undo_days=undo_days, revision=batch.revision))  # fmt: skip
    else:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_record(batch))]))
        if batch.status in (BatchStatus.QUEUED, BatchStatus.IMPORTING):
            blocks.append(ActionsBlock(elements=[ButtonElement(
                text="Cancel import", action_id=Action.CANCEL, value=str(batch.id),
                confirm=ConfirmObject(title="Stop this import?", confirm="Stop it",
                                      deny="Keep going",
                                      text="Contacts already imported stay in the segment."),
            )]))  # fmt: skip
    return text, blocks


def dry_run_text(result: DryRun, segment: str) -> str:
    """*Preview only*: what approving now would do, nothing written."""
    t = result.totals
    lines = [
        f"*Preview of importing into {esc(segment)}* (nothing was written)",
        f"• {plural(t.rows, 'row')}: *{n(t.valid)} valid*, {plural(t.duplicates, 'duplicate')}, "
        f"{n(t.rejected)} rejected" + (f", {plural(t.warnings, 'warning')}" if t.warnings else ""),
        f"• {plural(result.new_contacts, 'new contact')}, {n(result.existing_contacts)} already "
        "known",
        f"• {n(result.added_to_segment)} would be added to the segment, "
        f"{n(result.already_in_segment)} {'is' if result.already_in_segment == 1 else 'are'} "
        "already in it",
    ]  # fmt: skip
    if not result.campaigns:
        lines.append("• No live campaign targets this segment: nobody would be invited.")
    if result.pending_sources:
        lines.append(f":hourglass_flowing_sand: {plural(result.pending_sources, 'file')} still "
                     f"being read {'is' if result.pending_sources == 1 else 'are'} not counted "
                     "yet.")  # fmt: skip
    head = "\n".join(lines)
    if result.campaigns:
        campaigns = preview_lines(result.campaigns, "• ", SECTION_TEXT - len(head) - 1)
        head = "\n".join([*lines[:4], campaigns, *lines[4:]])
    return cut_mrkdwn(head)


def _consent_line(batch: ImportBatch, needed: bool) -> str:
    if batch.consent_by:
        return (f":ballot_box_with_check: <@{batch.consent_by}> confirmed these people agreed to "
                f"hear from us · {slack_date(batch.consent_at)}")  # fmt: skip
    if needed:
        return (":warning: *Consent not confirmed.* A live campaign will email these people: "
                "*Confirm consent* before this can be approved.")  # fmt: skip
    return ""


def _review_actions(batch_id: int, *, revision: int, confirm_consent: bool = False,
                    undo_days: int = 7) -> ActionsBlock:  # fmt: skip
    """The review's buttons. Their block's id names the batch's `revision` the message shows
    ("review_actions:3"): an approval imports only what the lead saw (bot.imports.batches).
    Not in a button's value, which carries the import's id alone."""
    value = str(batch_id)
    buttons = [
        ButtonElement(text="Review contacts", action_id=Action.REVIEW_CONTACTS, value=value),
        ButtonElement(text="Add more", action_id=Action.ADD_MORE, value=value),
        ButtonElement(text="Preview only", action_id=Action.PREVIEW_ONLY, value=value),
    ]
    if confirm_consent:
        buttons.append(ButtonElement(
            text="Confirm consent", action_id=Action.CONFIRM_CONSENT, value=value,
            confirm=ConfirmObject(title="Did they agree?", confirm="They agreed", deny="No",
                                  text="Confirm that these people agreed to hear from us. "
                                       "Your name and the time are kept with this import."),
        ))  # fmt: skip
    buttons += [
        ButtonElement(
            text="Approve & import", action_id=Action.APPROVE, value=value, style="primary",
            confirm=ConfirmObject(title="Import these contacts?", confirm="Import", deny="Not yet",
                                  text="They are added to the segment. " + (
                                      f"A team lead can undo the import from its thread "
                                      f"within {undo_window(undo_days)}." if undo_days else
                                      "It can't be undone (UNDO_WINDOW_DAYS is 0).")),
        ),
        # one misclick on either ended the review for good (the files to upload and map again)
        ButtonElement(
            text="Reject", action_id=Action.REJECT, value=value, style="danger",
            confirm=ConfirmObject(title="Reject this import?", confirm="Reject", deny="Keep it",
                                  text=f"Nothing of import #{value} is imported, and the review "
                                       "ends: importing these contacts means starting again."),
        ),
        ButtonElement(
            text="Cancel", action_id=Action.WITHDRAW, value=value,
            confirm=ConfirmObject(title="Cancel this import?", confirm="Cancel it",
                                  deny="Keep it",
                                  text=f"Import #{value} is dropped before anything is "
                                       "imported: importing these contacts means starting "
                                       "again."),
        ),
    ]  # fmt: skip
    return ActionsBlock(elements=buttons, block_id=f"{BlockId.REVIEW_ACTIONS}:{revision}")


def _record(batch: ImportBatch) -> str:
    """The read-only line that replaces the buttons once the import leaves draft."""
    status = describe_status(batch)
    line = f"This import is {status}."
    if batch.status == BatchStatus.DONE:
        line += (f" {plural(batch.new_contacts, 'new contact')}, {n(batch.added_to_segment)} added "
                 f"to the segment · finished {slack_date(batch.finished_at)}")  # fmt: skip
    elif batch.status == BatchStatus.FAILED and batch.error:
        line += f" {esc(batch.error[:500])}"
    elif batch.status == BatchStatus.CANCELLED and batch.approved_by:
        line += (f" {n(_processed(batch))} of {plural(batch.valid, 'contact')} "
                 f"{were(_processed(batch))} imported before that.")  # fmt: skip
    return line


def _processed(batch: ImportBatch) -> int:
    return batch.new_contacts + batch.existing_contacts


def progress_text(segment: str, done: int, total: int) -> str:
    share = done / total if total else 0
    return (f":arrows_counterclockwise: Importing into *{esc(segment)}*: {share:.0%} "
            f"({n(done)} of {plural(total, 'row')})")  # fmt: skip


def ended_as(batch: ImportBatch) -> str:
    """How the import itself ended, for one being undone or undone: a failed or cancelled
    one's result became "Imported into …" with 500 rows, 500 valid once it was undone."""
    if batch.status not in (BatchStatus.UNDOING, BatchStatus.UNDONE):
        return batch.status
    if batch.cancelled_by:
        return BatchStatus.CANCELLED
    return BatchStatus.FAILED if batch.error else BatchStatus.DONE


def result_text(batch: ImportBatch, segment: str) -> str:
    seg = esc(segment)
    ended = ended_as(batch)
    if ended == BatchStatus.FAILED:
        text = f":x: The import into *{seg}* failed: {esc(batch.error) or 'unknown error'}"
        if batch.new_contacts or batch.added_to_segment:  # chunks applied before it stopped
            text += (f"\nBefore it stopped, {plural(batch.new_contacts, 'new contact')} "
                     f"{were(batch.new_contacts)} imported and {n(batch.added_to_segment)} added "
                     "to the segment; they stay.")  # fmt: skip
        return text
    if ended == BatchStatus.CANCELLED:
        who = cancelled_words(batch.cancelled_by)
        return (
            f":no_entry_sign: The import into *{seg}* was cancelled{who}: "
            f"{n(_processed(batch))} of {plural(batch.valid, 'contact')} imported before it was "
            f"cancelled ({n(batch.new_contacts)} new, {n(batch.added_to_segment)} added to "
            "the segment)."
            # only of contacts there are: cancelled before it ran, it read as if they were in
            + (" They stay in the segment." if batch.new_contacts or batch.added_to_segment
               else "")
        )  # fmt: skip
    return (
        f":white_check_mark: Imported into *{seg}*: {plural(batch.rows, 'row')} read, "
        f"{n(batch.valid)} valid.\n"
        f"• {plural(batch.new_contacts, 'new contact')}, {n(batch.existing_contacts)} already "
        "known\n"
        f"• {n(batch.added_to_segment)} added to the segment, "
        f"{n(batch.already_in_segment)} {were(batch.already_in_segment)} already in it\n"
        f"• {plural(batch.duplicates, 'duplicate')} and {n(batch.rejected)} rejected "
        f"{'row' if batch.rejected == 1 else 'rows'} skipped"
        + (" (the CSVs in this thread say why)" if batch.duplicates or batch.rejected else "")
    )


CONTACTS_TITLE = "Queued contacts"  # Review contacts' modal


def contacts_modal(*, batch_id: int, rows: list[ContactRow], total: int, offset: int,
                   query: str, editable: bool) -> View:  # fmt: skip
    """One page of queued contacts with search and per-contact Remove; `offset`: how many
    come before it. Its buttons page from the rows shown (PAGE_AFTER, PAGE_BEFORE and a row
    id), and it keeps its first row (`start`) to be drawn again from there after a Remove."""
    blocks: list[Block] = [
        InputBlock(
            block_id=BlockId.SEARCH, optional=True, dispatch_action=True, label="Search",
            element=PlainTextInputElement(action_id=Action.SEARCH, initial_value=query or None,
                                          placeholder="email or name", max_length=MAX_QUERY),
        ),
        ContextBlock(elements=[MarkdownTextObject(
            text=plural(total, "contact") + (f" matching “{esc(query)}”" if query else "")
            + (f" · showing {offset + 1}-{offset + len(rows)}" if rows else "")
        )]),
    ]  # fmt: skip
    for row in rows:
        name = " ".join(p for p in (row.first_name, row.last_name) if p) or "(no name)"
        text = (f"*{esc(name)}*  {esc(row.email)}\n{esc(row.locale) or 'default locale'} · "
                f"from {esc(row.source)}")  # fmt: skip
        accessory = None
        if editable:
            accessory = ButtonElement(text="Remove", action_id=Action.REMOVE_CONTACT,
                                      value=str(row.id), style="danger")  # fmt: skip
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text)),
                                    accessory=accessory))
    pager = []
    if offset > 0 and rows:
        pager.append(ButtonElement(text="Previous", action_id=Action.PAGE,
                                   value=f"{PAGE_BEFORE}{rows[0].id}"))  # fmt: skip
    if offset + len(rows) < total and rows:
        pager.append(ButtonElement(text="Next", action_id=f"{Action.PAGE}_next",
                                   value=f"{PAGE_AFTER}{rows[-1].id}"))  # fmt: skip
    if pager:
        blocks.append(ActionsBlock(elements=pager))
    return View(type="modal", callback_id=Callback.CONTACTS, title=CONTACTS_TITLE,
                submit="Done", close="Close", blocks=blocks,
                private_metadata=metadata(batch=batch_id, query=query,
                                          start=rows[0].id if rows else 0))  # fmt: skip


# Review contacts' page buttons: the rows after, or before, the row id that follows
PAGE_AFTER, PAGE_BEFORE = "after:", "before:"


def upload_offer(*, file_id: str, file_name: str) -> tuple[str, list[Block]]:
    file_name = file_name[:255]  # as every source label: Slack allows longer file names
    text = f"Import {esc(file_name)} into a segment?"
    return text, [
        SectionBlock(text=MarkdownTextObject(
            text=f":inbox_tray: Import *{esc(file_name)}* into a segment? Choose one (or type "
                 "a new one's name), then review."
        )),
        ActionsBlock(block_id=BlockId.UPLOAD, elements=[
            ExternalDataSelectElement(action_id=Action.UPLOAD_SEGMENT, min_query_length=0,
                                      placeholder="Choose a segment"),
            ButtonElement(text="Review import", action_id=Action.UPLOAD_REVIEW, value=file_id,
                          style="primary"),
        ]),
    ]  # fmt: skip


def plain(text: str) -> list[Block]:
    return [SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text)))]
