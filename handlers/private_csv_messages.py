"""Block builders for a thread's offer of a CSV that holds customers' details (an import's
skipped rows, a campaign's undelivered invites), and for what a click on it is told.

The CSV itself was once uploaded into the thread, where everyone in the channel could
download it: a guest, or a member of another organisation in a shared channel. Now the
thread says what the CSV is about and a button sends it by direct message to a member of
this workspace who asks (handlers/private_csvs.py)."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    MarkdownTextObject,
    SectionBlock,
)

from bot.imports.batches import Totals
from handlers.ids import Action
from handlers.messages import esc, plural, skipped_words
from handlers.slack_text import cut_mrkdwn

SEND_ME = "Send me the CSV"
_BY_DM = ("It holds customers' details, so *Send me the CSV* brings it to your direct messages "
          "with me.")  # fmt: skip


def _offer(text: str, action: Action, value: str) -> list[Block]:
    return [
        SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(f"{text} {_BY_DM}"))),
        ActionsBlock(elements=[ButtonElement(text=SEND_ME, action_id=action, value=value)]),
    ]


def skipped_rows_offer(label: str, counts: Totals, batch_id: int,
                       source_id: int) -> tuple[str, list[Block]]:  # fmt: skip
    """In the import's thread, once per reading of a file with rows it won't import."""
    text = f":page_facing_up: {skipped_words(counts)} in *{esc(label)}* won't be imported."
    return text, _offer(text, Action.SEND_SKIPPED_ROWS, f"{batch_id}:{source_id}")


def undelivered_offer(campaign: str, count: int, enrollment_id: int) -> tuple[str, list[Block]]:
    """In the enrollment's thread, once per count of invites that failed once sending is
    over."""
    text = (f":warning: {plural(count, 'invite')} of *{esc(campaign)}* failed or may not have "
            "arrived.")  # fmt: skip
    return text, _offer(text, Action.SEND_UNDELIVERED, str(enrollment_id))


def undelivered_comment(campaign: str, count: int) -> str:
    """Said over the undelivered invites' CSV, in the direct message that brings it."""
    return (f"{plural(count, 'invite')} of *{esc(campaign)}* failed or may not have arrived; "
            "this CSV says why.")  # fmt: skip


def sent_note(what: str) -> str:
    """Where a click's CSV went: `what` is mrkdwn, its names escaped."""
    return f":inbox_tray: {what} is in your direct messages with me, as a CSV file."


def under_way_note(what: str) -> str:
    return f":hourglass_flowing_sand: {what} is already on its way to your direct messages with me."


OLD_BUTTON = "That button doesn't name a CSV of this workspace: it may come from an old message."


def source_removed(label: str) -> str:
    return f"*{esc(label)}* was taken out of this import: none of its rows will be imported."


def source_being_read(label: str) -> str:
    return (f":hourglass_flowing_sand: *{esc(label)}* is being read again: its skipped rows "
            "will be offered in this thread once it is read.")  # fmt: skip


def source_unreadable(label: str, error: str | None) -> str:
    why = f": {esc(error)}" if error else "."
    return f"*{esc(label)}* couldn't be read this time, so none of its rows will be imported{why}"


def none_skipped(label: str) -> str:
    return f"None of the rows of *{esc(label)}* are skipped now."


def rows_forgotten(label: str, days: float) -> str:
    when = f"{plural(round(days), 'day')} after it ends" if days >= 1 else "once it ends"
    return (f"The skipped rows of *{esc(label)}* are no longer kept: an import's rows are "
            f"deleted {when}.")  # fmt: skip


def none_undelivered(campaign: str) -> str:
    return f"No invite of *{esc(campaign)}* has failed or is in doubt now."
