"""Block Kit for `/referral leads`: the list, Remove per lead, and the people picker to add.

Plain data in, blocks out. The lead ids were checked and stored by us (never typed text), so
they are shown as `<@U…>` mentions; notes come in as mrkdwn the handler already escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
    UserMultiSelectElement,
)

from bot.audit import by_whom
from bot.leads import MAX_ADDED_AT_ONCE, Lead, is_seeded
from handlers.ids import Action, BlockId
from handlers.messages import slack_date
from handlers.slack_text import cut_mrkdwn

MAX_ROWS = 40  # a row (and Remove button) per lead; with the rest, far below 50 blocks
WHO_COUNTS = ("Team leads approve, undo and delete imports, see the audit log and manage "
              "campaigns. Workspace admins and owners count as team leads too.")  # fmt: skip


def _added_by(lead: Lead) -> str:
    if is_seeded(lead.added_by):
        return "from the TEAM_LEADS setting"
    return by_whom(lead.added_by)


def _row(lead: Lead, can_edit: bool) -> SectionBlock:
    text = f"<@{lead.user_id}>\nadded {_added_by(lead)} · {slack_date(lead.added_at)}"
    accessory = None
    if can_edit:
        accessory = ButtonElement(
            text="Remove", action_id=Action.LEADS_REMOVE, value=lead.user_id,
            confirm=ConfirmObject(
                title="Remove this team lead?", confirm="Remove", deny="Keep",
                text=PlainTextObject(text="They will no longer approve or undo imports, "
                                          "unless they are a workspace admin or owner.")),
        )  # fmt: skip
    return SectionBlock(text=MarkdownTextObject(text=text), accessory=accessory)


def _picker() -> ActionsBlock:
    return ActionsBlock(block_id=BlockId.LEADS_USERS, elements=[
        UserMultiSelectElement(action_id=Action.LEADS_USERS, placeholder="Choose people",
                               max_selected_items=MAX_ADDED_AT_ONCE),
        ButtonElement(text="Add as team leads", action_id=Action.LEADS_ADD, style="primary"),
    ])  # fmt: skip


def leads_message(leads: Sequence[Lead], *, can_edit: bool,
                  note: str = "") -> tuple[str, list[Block]]:  # fmt: skip
    """(fallback text, blocks) of the list; leads and admins get Remove and the picker."""
    blocks: list[Block] = []
    if note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(note))))
    count = f"{len(leads)} listed" if leads else "none listed"
    blocks.append(SectionBlock(text=MarkdownTextObject(
        text=f"*Team leads* ({count})\n{WHO_COUNTS}")))  # fmt: skip
    blocks += [_row(lead, can_edit) for lead in leads[:MAX_ROWS]]
    if rest := leads[MAX_ROWS:]:
        # cut before a mention, not inside one ("<@U12" was shown past the limit)
        named = ", ".join(f"<@{lead.user_id}>" for lead in rest)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(f"…and {named}"))))
    if not leads:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text="_No one is listed: workspace admins and owners approve for now._")))  # fmt: skip
    if can_edit:
        blocks.append(_picker())
        hint = ("Choose people of this workspace and *Add as team leads*; *Remove* takes "
                "someone off the list. Every change is in `/referral audit`.")  # fmt: skip
    else:
        ask = ", ".join(f"<@{lead.user_id}>" for lead in leads[:5]) or "a workspace admin"
        hint = f"Only team leads and workspace admins change this list: ask {ask}."
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=hint)]))
    text = f"Team leads: {count}" + (f". {note}" if note else "")
    return cut_mrkdwn(text), blocks
