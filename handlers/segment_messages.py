"""Block Kit for `/referral segments`: the paged list, its notes, and the name/delete modals.

Plain data in, slack_sdk models out (no Slack calls, no database). Every segment or campaign
name that reaches mrkdwn or a message's `text` goes through `esc()`; `plain_text` objects
(button labels, confirm dialogs, initial values) are shown as typed.

Buttons carry only ids: `<segment id>:<offset of the page>` (plus `:ask` on a Delete button
that opens the confirmation modal instead of Slack's confirm dialog), so a change can show
the same page again; *More* carries the last segment shown (`after:<its name key>`), so a
segment deleted or created meanwhile shifts no other out of the next page. Listeners re-read
everything by id and workspace.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.ids import digits
from bot.segments import CampaignUse
from bot.workspaces import MAX_SEGMENT_NAME
from handlers.ids import Action, BlockId, Callback
from handlers.messages import clip, esc, n, plural
from handlers.slack_text import cut_mrkdwn
from models.contacts import ALL_CUSTOMERS

PAGE_SIZE = 20  # two blocks each: 40 of a message's 50, with room for the rest
MAX_CAMPAIGNS_NAMED = 20  # in the delete confirmation
TITLE = "Segments"
ASK = "ask"
AFTER = "after:"  # a More button's value: the name key of the last segment shown


@dataclass(frozen=True, slots=True)
class SegmentItem:
    """One line of the list: a segment's id, name and size, and how many campaigns use it."""

    id: int
    name: str
    contacts: int
    campaigns: int = 0
    key: str = ""  # its name key: the list's order, and where *More* continues


@dataclass(frozen=True, slots=True)
class ButtonValue:
    segment_id: int
    offset: int = 0
    ask: bool = False

    def encode(self) -> str:
        return f"{self.segment_id}:{self.offset}" + (f":{ASK}" if self.ask else "")

    @classmethod
    def parse(cls, value: str) -> ButtonValue | None:
        """None when the value isn't one of ours (an old message, or a forged payload)."""
        parts = value.split(":")
        if not 2 <= len(parts) <= 3 or (len(parts) == 3 and parts[2] != ASK):
            return None
        segment_id, offset = digits(parts[0]), digits(parts[1])
        if segment_id is None or offset is None:
            return None
        return cls(segment_id, offset, len(parts) == 3)


def page_offset(value: str, keys: Sequence[str]) -> int:
    """Where a page starts in the list now (`keys`: its name keys, in order): after the key a
    *More* value names (whether that segment is still there or not), or at an offset (a
    change shows its page again); junk or past the end: the first page."""
    if value.startswith(AFTER):
        offset: int | None = bisect_right(keys, value[len(AFTER):])
    else:
        offset = digits(value)
    if offset is None or offset >= max(len(keys), 1):
        return 0
    return offset


def _contacts(count: int) -> str:
    return f"{n(count)} contact{'' if count == 1 else 's'}"


def _stay(count: int) -> str:
    """The verb after `_contacts`: "its 1 contact stays", not "stay"."""
    return "stays" if count == 1 else "stay"


def _members_stay(count: int) -> str:
    """What becomes of a deleted segment's contacts ("its 0 contacts stay" of an empty one;
    the audit log and the shell say it held none)."""
    if not count:
        return "it held no contacts"
    return f"its {_contacts(count)} {_stay(count)} in {ALL_CUSTOMERS}"


def _plain(text: str, limit: int) -> PlainTextObject:
    return PlainTextObject(text=clip(text, limit))


def _delete_confirm(item: SegmentItem) -> ConfirmObject:
    return ConfirmObject(
        title="Delete this segment?", confirm="Delete", deny="Keep it", style="danger",
        text=_plain(f"{item.name}: {_members_stay(item.contacts)}; only the segment goes. "
                    "Imports into it stay in the history.", 300),
    )  # fmt: skip


def _segment_blocks(item: SegmentItem, offset: int) -> list[Block]:
    used = (f" · used by {n(item.campaigns)} campaign{'' if item.campaigns == 1 else 's'}"
            if item.campaigns else "")  # fmt: skip
    value = ButtonValue(item.id, offset)
    delete = ButtonElement(text="Delete", action_id=Action.SEGMENT_DELETE, style="danger",
                           value=ButtonValue(item.id, offset, ask=True).encode())  # fmt: skip
    if not item.campaigns:  # nothing else changes: Slack's own dialog is enough
        delete = ButtonElement(text="Delete", action_id=Action.SEGMENT_DELETE, style="danger",
                               value=value.encode(), confirm=_delete_confirm(item))  # fmt: skip
    return [
        SectionBlock(text=MarkdownTextObject(
            text=f"*{esc(item.name)}*\n{_contacts(item.contacts)}{used}")),
        ActionsBlock(elements=[
            ButtonElement(text="Rename", action_id=Action.SEGMENT_RENAME, value=value.encode()),
            ButtonElement(text="Export CSV", action_id=Action.SEGMENT_EXPORT,
                          value=value.encode()),
            delete,
        ]),
    ]  # fmt: skip


def segment_list(everyone: SegmentItem | None, segments: Sequence[SegmentItem], *,
                 offset: int = 0, note: str = "") -> tuple[str, list[Block]]:  # fmt: skip
    """(fallback text, blocks) of one page of the list; `note` (mrkdwn, escaped) on top.

    `segments` are the static ones, in order; the page shows PAGE_SIZE of them from `offset`
    (All Customers heads the first page), so the message stays under Slack's 50 blocks.
    """
    blocks: list[Block] = []
    if note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(note))))
    blocks.append(HeaderBlock(text=TITLE))
    if everyone is not None and offset == 0:
        blocks.append(SectionBlock(
            text=MarkdownTextObject(text=f"*{esc(ALL_CUSTOMERS)}* · every contact\n"
                                         f"{_contacts(everyone.contacts)}"),
            accessory=ButtonElement(text="Export CSV", action_id=Action.SEGMENT_EXPORT,
                                    value=ButtonValue(everyone.id, offset).encode()),
        ))  # fmt: skip
    page = segments[offset : offset + PAGE_SIZE]
    for item in page:
        blocks += _segment_blocks(item, offset)
    if not segments:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text="No segments of your own yet. Create one here, or choose *create a segment* "
                 "in `/referral import`.")]))  # fmt: skip
    elif len(segments) > PAGE_SIZE:
        last = offset + len(page)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"Segments {n(offset + 1)}–{n(last)} of {n(len(segments))}")]))  # fmt: skip
    buttons = [ButtonElement(text="New segment", action_id=Action.SEGMENT_CREATE,
                             value=str(offset), style="primary")]  # fmt: skip
    if page and offset + PAGE_SIZE < len(segments):
        buttons.append(ButtonElement(text="More", action_id=Action.SEGMENT_MORE,
                                     value=f"{AFTER}{page[-1].key}"))  # fmt: skip
    blocks.append(ActionsBlock(elements=buttons))
    return note or TITLE, blocks


def name_modal(*, renaming: str | None, private_metadata: str) -> View:
    """The New segment form, or (given the current name) the Rename form filled with it."""
    field = InputBlock(
        block_id=BlockId.SEGMENT_NAME, label="Name",
        hint="Unique in this workspace, ignoring case and spacing.",
        element=PlainTextInputElement(action_id=Action.SEGMENT_NAME, max_length=MAX_SEGMENT_NAME,
                                      initial_value=renaming or None,
                                      placeholder="e.g. Newsletter subscribers"),
    )  # fmt: skip
    blocks: list[Block] = [field]
    if renaming is None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text="A new segment is empty: import contacts into it with `/referral import`.")]))
    return View(type="modal",
                callback_id=Callback.SEGMENT_RENAME if renaming else Callback.SEGMENT_CREATE,
                title="Rename segment" if renaming else "New segment",
                submit="Rename" if renaming else "Create", close="Cancel", blocks=blocks,
                private_metadata=private_metadata)  # fmt: skip


def delete_modal(name: str, contacts: int, campaigns: Sequence[CampaignUse], *,
                 private_metadata: str) -> View:  # fmt: skip
    """Asks before deleting a segment campaigns use, saying what that means for each."""
    lines = [f"Delete *{esc(name)}*? Its {_contacts(contacts)} {_stay(contacts)} in "
             f"{ALL_CUSTOMERS}; only the segment goes." if contacts else
             f"Delete *{esc(name)}*? It holds no contacts; only the segment goes."]  # fmt: skip
    lines += [f"• {esc(c.consequence())}" for c in campaigns[:MAX_CAMPAIGNS_NAMED]]
    if len(campaigns) > MAX_CAMPAIGNS_NAMED:
        lines.append(f"• …and {plural(len(campaigns) - MAX_CAMPAIGNS_NAMED, 'more campaign')}.")
    text = MarkdownTextObject(text=cut_mrkdwn("\n".join(lines)))
    return View(type="modal", callback_id=Callback.SEGMENT_DELETE, title="Delete segment",
                submit="Delete", close="Keep it", private_metadata=private_metadata,
                blocks=[SectionBlock(text=text)])  # fmt: skip


def created_note(name: str) -> str:
    return (f":white_check_mark: *{esc(name)}* is ready. Import contacts into it with "
            "`/referral import`.")  # fmt: skip


def renamed_note(old: str, new: str) -> str:
    return f":pencil2: *{esc(old)}* is now *{esc(new)}*."


def deleted_note(name: str, members: int, campaigns: Sequence[CampaignUse]) -> str:
    note = f":wastebasket: *{esc(name)}* is deleted; {_members_stay(members)}."
    if campaigns:
        names = ", ".join(esc(c.name) for c in campaigns[:MAX_CAMPAIGNS_NAMED])
        note += f" No longer used by: {names}."
    return note


def exported_note(name: str, rows: int) -> str:
    return (f":inbox_tray: *{esc(name)}* ({_contacts(rows)}) is in your direct messages with me, "
            "as a CSV file.")  # fmt: skip


def export_under_way(name: str) -> str:
    return (f":hourglass_flowing_sand: Your export of *{esc(name)}* is already on its way to "
            "your direct messages with me.")  # fmt: skip


def export_comment(name: str, rows: int) -> str:
    return (f"{_contacts(rows)} of *{esc(name)}*. This file holds customer data: share it "
            "with care. It can be imported again as it is.")  # fmt: skip
