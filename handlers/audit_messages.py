"""Block Kit for `/referral audit`: one line per entry, what became of imports, *Older*.

Plain data in, blocks out. Subjects and details come from many places (segment names, file
names, emails), so they are escaped, except a subject that is exactly a mention we stored
(`<@U…>`, a lead change). Lines are packed into sections of at most 3000 characters, so a
page of entries is a handful of blocks, far below Slack's 50.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.audit import CLI, Act, Entry, ImportOutcome, detail_words, import_of, words
from bot.ids import digits
from handlers.ids import Action
from handlers.messages import esc, n, plural, slack_date
from handlers.slack_text import SECTION_TEXT, cut_mrkdwn

PAGE = 20
MAX_DETAIL = 300  # characters of a detail shown (before escaping)
MAX_FILTER = 100
_STORED_MENTION = re.compile(r"^<@[UW][A-Z0-9]{2,30}>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
OUTCOME_WORDS = {"draft": "waiting for review", "queued": "approved, waiting to run",
                 "importing": "importing now", "done": "imported", "failed": "failed",
                 "rejected": "rejected", "cancelled": "cancelled",
                 "undoing": "being undone", "undone": "undone"}  # fmt: skip


def who(actor: str) -> str:
    if actor == CLI:
        return "The command line"
    if _USER_ID.match(actor):
        return f"<@{actor}>"
    return esc(actor) or "Someone"


# Entries whose subject is a person, stored as a mention: every other subject is a name
# someone typed (a segment called "<@U0BOSS>" must not show as a mention of the boss).
_PERSON_SUBJECTS = frozenset({Act.LEAD_ADDED, Act.LEAD_REMOVED})


def subject_text(action: str, subject: str) -> str:
    if action in _PERSON_SUBJECTS and _STORED_MENTION.match(subject):
        return subject
    return esc(subject)


def outcome_line(outcome: ImportOutcome) -> str:
    """What became of an approved import: "imported: 1,180 new contacts, 1,204 added to the
    segment · 1,204 enrolled in campaigns, 1,150 invites sent (54 waiting)"."""
    parts = [OUTCOME_WORDS.get(outcome.status, esc(outcome.status))]
    if outcome.status not in ("draft", "rejected") and (outcome.new_contacts
                                                        or outcome.added_to_segment):
        parts[0] += (f": {plural(outcome.new_contacts, 'new contact')}, "
                     f"{n(outcome.added_to_segment)} added to the segment")  # fmt: skip
    if outcome.enrolled or outcome.invites_sent or outcome.invites_waiting:
        invites = f"{plural(outcome.invites_sent, 'invite')} sent"
        if outcome.invites_waiting:
            invites += f" ({n(outcome.invites_waiting)} waiting)"
        parts.append(f"{n(outcome.enrolled)} enrolled in campaigns, {invites}")
    return " · ".join(parts)


def entry_line(entry: Entry, outcomes: Mapping[int, ImportOutcome]) -> str:
    """"<date> · <@U2> approved import #12 (1,204 contacts to import)", plus what became of
    the import on the line below for an approval."""
    detail = detail_words(entry.action, entry.detail[:MAX_DETAIL])
    line = (f"{slack_date(entry.at)} · {who(entry.actor)} "
            f"{words(esc(entry.action), subject_text(entry.action, entry.subject))}")  # fmt: skip
    if detail:
        line += f" ({esc(detail)}{'…' if len(entry.detail) > MAX_DETAIL else ''})"
    batch_id = import_of(entry.subject)
    if entry.action == Act.IMPORT_APPROVED and batch_id is not None and batch_id in outcomes:
        line += f"\n>{outcome_line(outcomes[batch_id])}"
    return line


def _sections(lines: Sequence[str]) -> list[Block]:
    """Lines packed into as few sections as fit in Slack's 3000 characters each."""
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        line = cut_mrkdwn(line, SECTION_TEXT)
        if chunk and len(chunk) + 1 + len(line) > SECTION_TEXT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
    return blocks


def more_value(oldest_id: int, matching: str) -> str:
    """The *Older* button's value: the oldest id shown, and the filter if any."""
    return f"{oldest_id}:{matching[:MAX_FILTER]}" if matching else str(oldest_id)


def read_more_value(value: str) -> tuple[int, str] | None:
    oldest, _, matching = value.partition(":")
    found = digits(oldest)
    return None if found is None else (found, matching[:MAX_FILTER])


def audit_message(entries: Sequence[Entry], outcomes: Mapping[int, ImportOutcome], *,
                  has_more: bool, matching: str = "",
                  older: bool = False) -> tuple[str, list[Block]]:  # fmt: skip
    """(fallback text, blocks) of one page of the log, newest first."""
    title = "*Audit log*"
    if matching:
        title += f" · entries matching “{esc(matching)}”"
    if older:
        title += " · older entries"
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=title))]
    if entries:
        blocks += _sections([entry_line(e, outcomes) for e in entries])
    else:
        empty = "_No entries match._" if matching else "_Nothing recorded yet._"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=empty)))
    hint = ("Times are in your time zone. Narrow it down with `/referral audit import #12`, "
            "a user id, or a word.")  # fmt: skip
    if older:
        hint += " `/referral audit` shows the newest again."
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=hint)]))
    if has_more and entries:
        blocks.append(ActionsBlock(elements=[ButtonElement(
            text="Older", action_id=Action.AUDIT_MORE,
            value=more_value(entries[-1].id, matching))]))  # fmt: skip
    # "entry" has no plain -s plural for `plural`
    count = f"{n(len(entries))} {'entry' if len(entries) == 1 else 'entries'}"
    text = f"Audit log: {count}" + (" (older)" if older else "")
    return text, blocks
