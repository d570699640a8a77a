"""Block builders for undoing an import: the button, the confirmation modal, the result."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.audit import by_whom
from bot.imports.undo import (
    UndoPlan,
    handed_on_words,
    unsubscribed_again_words,
    unsubscribed_words,
)
from handlers.ids import Action, BlockId, Callback
from handlers.messages import esc, n, plural, slack_date, were
from handlers.slack_text import cut_mrkdwn
from models import ImportBatch

REMOVE_ADVOCATES = "remove_advocates"  # the checkbox option's value


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text)))


def undo_button(batch_id: int) -> ButtonElement:
    """*Undo import*: opens the confirmation (the thread's result reply; App Home rows too)."""
    return ButtonElement(text="Undo import", action_id=Action.UNDO, value=str(batch_id),
                         style="danger")  # fmt: skip


def result_blocks(result: str, batch_id: int) -> list[Block]:
    """The import's result reply in its thread, with *Undo import* under it."""
    return [_section(result), ActionsBlock(elements=[undo_button(batch_id)])]


def undone_text(batch: ImportBatch, segment: str, *, kept: int = 0) -> str:
    """"Undone by <@U>: 120 contacts removed from VIP, 80 deleted (2 kept: they unsubscribed
    or were emailed), 15 invites cancelled". `kept`: bot.imports.undo.kept_unsubscribed, the
    contacts it created that stay in no segment, which the command line and the audit log
    name and the thread left out (its counts then added up to fewer than it had added)."""
    text = (f":leftwards_arrow_with_hook: Import #{batch.id} was undone "
            f"{by_whom(batch.undone_by)}: "
            f"{plural(batch.undo_removed, 'contact')} removed from *{esc(segment)}*"
            f"{handed_on_words(batch.undo_handed_on)}, "
            f"{n(batch.undo_deleted)} deleted{unsubscribed_words(kept)}, "
            f"{plural(batch.undo_invites_cancelled, 'invite')} cancelled")  # fmt: skip
    if batch.undo_advocates_removed:
        text += (f", {plural(batch.undo_advocates_removed, 'advocate')} removed (their referral "
                 "links no longer work)")  # fmt: skip
    return text + unsubscribed_again_words(batch.undo_unsubscribed) + "."


def undone_result_blocks(result: str, batch: ImportBatch) -> list[Block]:
    """The result reply once the import is undone: no button, and a line saying so."""
    return [
        _section(result),
        ContextBlock(elements=[MarkdownTextObject(
            text=f"Undone {by_whom(batch.undone_by)} · {slack_date(batch.undone_at)}")]),
    ]  # fmt: skip


def _modal(blocks: list[Block], *, submit: str | None = None, metadata: str = "") -> View:
    return View(type="modal", callback_id=Callback.UNDO, title="Undo import", blocks=blocks,
                submit=submit, close="Close" if submit is None else "Keep it",
                private_metadata=metadata)  # fmt: skip


def checking_modal() -> View:
    """Shown at once (trigger ids live 3 s) while the plan is counted."""
    return _modal([_section(":hourglass_flowing_sand: Counting what this import added…")])


def asking_modal(batch_id: int) -> View:
    """Shown in the submission's ack, while the undo is asked for."""
    return _modal([_section(f":hourglass_flowing_sand: Asking for the undo of import "
                            f"#{batch_id}…")])  # fmt: skip


def not_asked_text(batch_id: int, why: str) -> str:
    """The undo couldn't be asked for (the database failed); `why` (handlers.later's words
    for the failure) says whether anything changed and when to try again."""
    return (f":warning: *I couldn't ask for the undo of import #{batch_id}*: to try again, "
            f"click its *Undo* button once more.\n{why}")


def not_asked_modal(text: str) -> View:
    """`not_asked_text` in the modal the ack left saying "Asking for the undo…"."""
    return _modal([_section(text)])


def refused_modal(reason: str) -> View:
    """Why this person can't undo this import (reason: mrkdwn written for Slack)."""
    return _modal([_section(f":no_entry_sign: {reason}")])


def _with_advocates(plan: UndoPlan) -> str:
    """The invites the undo cancels when the advocates go too, where that is more: theirs go
    even if the campaign still reaches the contact (the modal said fewer than were cancelled)."""
    if plan.invites_with_advocates == plan.invites:
        return ""
    return f", {n(plan.invites_with_advocates)} if the advocates it enrolled are removed too"


def _kept_lines(plan: UndoPlan) -> list[str]:
    """The contacts it created that stay though in no segment, and why: right after the line
    that deletes the others, which they are not among (inserted by position, it came before
    that line when a later import's line was there too)."""
    if not plan.keeps:
        return []
    return [f"• Keeps the {plural(plan.keeps, 'contact')} it created who unsubscribed or "
            f"{were(plan.keeps)} already sent an invite, in no segment, so that no later "
            "import emails them (again)."]


def confirm_modal(plan: UndoPlan, *, in_thread: bool, metadata: str) -> View:
    """What undoing will do, counted now, and whether the advocates it enrolled go too (asked
    only of an import that enrolled some: "Also remove the 0 advocates" was offered).
    `in_thread`: the import has a thread, where the result goes (else a direct message)."""
    seg = esc(plan.segment)
    lines = [
        f"*Undo import #{plan.batch_id} into {seg}?* It finished {slack_date(plan.finished_at)}.",
        f"• Removes the {plural(plan.removes, 'contact')} this import added to *{seg}* "
        "(contacts that were already there stay).",
        *([f"• Keeps the {plural(plan.hands_on, 'contact')} it added that a later import into "
           f"*{seg}* listed too: they stay there, as that import's (undoing it takes them "
           "out)."] if plan.hands_on else []),
        f"• Deletes the {plural(plan.deletes, 'contact')} it created that "
        f"{'is' if plan.deletes == 1 else 'are'} in no other segment, with their referral "
        "links.",
        *_kept_lines(plan),
        f"• Cancels invites still waiting to be sent to them ({n(plan.invites)} now"
        f"{_with_advocates(plan)}). Invites already sent stay sent.",
        *([f"• Unsubscribes again the {plural(plan.unsubscribes, 'contact')} it re-subscribed "
           "(they had said no before it; its file said yes)."] if plan.unsubscribes else []),
    ]  # fmt: skip
    if plan.excluding:  # leaving the segment ends their exclusion
        names = ", ".join(f"*{esc(name)}*" for name in plan.excluding[:5])
        lines.append(f"• {names} {'excludes' if len(plan.excluding) == 1 else 'exclude'} "
                     f"*{seg}*: the contacts it takes out that are in a segment "
                     f"{'it targets' if len(plan.excluding) == 1 else 'they target'} are enrolled "
                     "then (and invited, where invites are on).")  # fmt: skip
    option = Option(value=REMOVE_ADVOCATES,
                    text=f"Also remove the {plural(plan.advocates, 'advocate')} it enrolled",
                    description="Their referral links stop working.")  # fmt: skip
    where = "The thread of the import says" if in_thread else "A direct message tells you"
    blocks: list[Block] = [
        _section("\n".join(lines)),
        *([InputBlock(block_id=BlockId.UNDO_ADVOCATES, label="Advocates", optional=True,
                      element=CheckboxesElement(action_id=Action.UNDO_ADVOCATES,
                                                options=[option]),
                      hint="Without this, contacts that stay keep their referral links.")]
          if plan.advocates else []),
        ContextBlock(elements=[MarkdownTextObject(
            text=f"{where} what was taken out once it is done.")]),
    ]  # fmt: skip
    return _modal(blocks, submit="Undo import", metadata=metadata)


def resume_modal(batch_id: int, why: str, *, metadata: str) -> View:
    """An undo that stopped for good (its job failed or was cancelled): finish it? `why` as
    stalled_undo says it (a database error in words, whose full stop the bracket ends)."""
    why = why[:300].removesuffix(".")
    text = (f"*The undo of import #{batch_id} stopped part way* ({esc(why)}). What it took "
            "out so far stays out. Finish it now? It carries on where it stopped.")
    return _modal([_section(text)], submit="Finish the undo", metadata=metadata)


def waiting_modal(batch_id: int) -> View:
    """An undo whose job waits for a worker while none runs: nothing Slack can queue helps."""
    return _modal([_section(
        f":hourglass: *The undo of import #{batch_id} is waiting for a worker*, and none is "
        "running (`serve` with `RUN_WORKER=false`, or its workers stopped). It carries on "
        "where it stopped once one runs (`referral-bot worker`), or finish it now from the "
        f"shell with `referral-bot undo {batch_id}`.")])


def started_modal(batch_id: int, *, in_thread: bool) -> View:
    where = ("in the import's thread" if in_thread
             else "in a direct message")  # fmt: skip
    return _modal([_section(f":hourglass_flowing_sand: Undoing import #{batch_id}. The result "
                            f"will be {where} when it is done.")])  # fmt: skip


def remove_advocates(values: dict[str, dict[str, Any]]) -> bool:
    """Whether the checkbox was ticked, from a view_submission's state values."""
    chosen = ((values.get(BlockId.UNDO_ADVOCATES) or {}).get(Action.UNDO_ADVOCATES) or {})
    return any(o.get("value") == REMOVE_ADVOCATES for o in chosen.get("selected_options") or [])
