"""Block Kit for `/referral contacts`: the prompt, search results, a contact's card and the
search modal.

Plain data in, slack_sdk models out (no Slack calls, no database), like `messages.py`. Emails,
names, segment and campaign names and the query are user input: every one that reaches mrkdwn
or a message's `text` goes through `esc()`; confirm dialogs use plain_text (not parsed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.campaigns.links import referral_link
from bot.contact_admin import (
    MAX_QUERY,
    CampaignRef,
    Card,
    Deleted,
    Hit,
    Page,
    contact_ref,
    deleted_detail,
)
from handlers.ids import Action, BlockId, Callback
from handlers.messages import clip, esc, metadata, n, slack_date
from handlers.slack_text import SECTION_TEXT, cut_mrkdwn

MAX_SEGMENTS_SHOWN = 15  # one block each, with its Remove button
MAX_MENU_OPTIONS = 100  # Slack's most in a static menu: the segments past those above
MAX_CAMPAIGNS_SHOWN = 10  # lines of one section
MAX_NAME_SHOWN = 80
MAX_CONFIRM = 300  # a confirm dialog's text
MODAL_TITLE = "Contacts"
SEARCH_HINT = ("Search by the start of an email address, a first name or a last name, e.g. "
               "`/referral contacts ada` or `/referral contacts ada@example.com`.")  # fmt: skip
INVITE_WORDS = {
    "queued": "invite queued", "held": "invite held (it can still be cancelled)",
    "sending": "invite being sent", "sent": "invite sent", "failed": "invite failed",
    "uncertain": "invite may have been delivered", "cancelled": "invite cancelled",
    "not_emailed": "not emailed",
}  # fmt: skip


def _cut(text: str, limit: int = MAX_NAME_SHOWN) -> str:
    """A name or address shortened before `esc()` (escaped text is cut by `cut_mrkdwn`)."""
    return clip(text, limit)


def _name(first: str, last: str) -> str:
    return " ".join(p for p in (first, last) if p)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text, SECTION_TEXT)))


def _noted(note: str, blocks: list[Block]) -> list[Block]:
    return [_section(note), *blocks] if note else blocks


# ---- the prompt and results -----------------------------------------------------------------


def prompt() -> tuple[str, list[Block]]:
    """`/referral contacts` without a query: how to search, and a button for the form."""
    return "Search contacts", [
        _section(f":mag: {SEARCH_HINT}"),
        ActionsBlock(elements=[ButtonElement(text="Search", action_id=Action.HOME_SEARCH_CONTACTS,
                                             value="search", style="primary")]),
    ]  # fmt: skip


def _hit_line(hit: Hit) -> str:
    name = _name(hit.first_name, hit.last_name)
    segments = (f"in {n(len(hit.segments))} segment{'' if len(hit.segments) == 1 else 's'}"
                if hit.segments else "in All Customers only")  # fmt: skip
    consent = consent_word(hit)
    head = f"*{esc(_cut(hit.email, 320))}*" + (f"  {esc(_cut(name))}" if name else "")
    return f"{head}\n{segments} · {consent}"


def consent_word(hit: Hit) -> str:
    """"unsubscribed" only when that sticks; an import's "no marketing" is "not subscribed"."""
    if hit.subscribed:
        return "subscribed"
    return "unsubscribed" if hit.unsubscribed else "not subscribed"


def results(page: Page, *, note: str = "") -> tuple[str, list[Block]]:
    """Up to a page of contacts, each with *Show*, and *More* when more match."""
    query = esc(_cut(page.query))
    if not page.hits:
        text = (f"No contact matches “{query}”." if page.offset == 0
                else f"No more contacts match “{query}”.")  # fmt: skip
        return text, _noted(note, [_section(f"{text} {SEARCH_HINT}")])
    shown = f"{page.offset + 1}–{page.offset + len(page.hits)}"
    text = f"Contacts matching “{query}” ({shown})"
    blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(text=text)])]
    for hit in page.hits:
        blocks.append(SectionBlock(
            text=MarkdownTextObject(text=cut_mrkdwn(_hit_line(hit), SECTION_TEXT)),
            # with its address's check, as the card's buttons: SQLite gives a deleted
            # contact's id to the next, and Show on results left open opened their card
            accessory=ButtonElement(text="Show", action_id=Action.CONTACT_SHOW,
                                    value=contact_ref(hit.id, hit.email)),
        ))  # fmt: skip
    if page.more:
        value = more_value(page.query, page.offset + len(page.hits), page.after)
        blocks.append(ActionsBlock(elements=[ButtonElement(
            text="More", action_id=Action.CONTACT_MORE, value=value)]))  # fmt: skip
    return text, _noted(note, blocks)


def more_value(query: str, offset: int, after: str = "") -> str:
    """*More*'s value: the search, how many came before (numbering) and the address key the
    next page starts after ("" on *Back to results*: the first page)."""
    # not \u-escaped: an address of Unicode letters must stay within a value's 2,000
    return json.dumps({"q": query[:MAX_QUERY], "o": offset, "a": after},
                      separators=(",", ":"), ensure_ascii=False)  # fmt: skip


# ---- a contact's card -----------------------------------------------------------------------


def _consent(c: Card) -> str:
    if c.subscribed:
        return ":white_check_mark: subscribed"
    if c.unsubscribed_at is not None:
        return f":no_bell: unsubscribed {slack_date(c.unsubscribed_at)}"
    return ":no_bell: not subscribed (imported without consent to email)"


def _added(c: Card) -> str:
    how = f"by import #{c.batch_id}" if c.batch_id is not None else f"({esc(c.source)})"
    return f"{slack_date(c.created_at)} {how}"


def _invite(ref: CampaignRef) -> str:
    if ref.invite_state is None:
        return "no invite"
    words = INVITE_WORDS.get(ref.invite_state, esc(ref.invite_state))
    if ref.invite_reason and ref.invite_state in ("failed", "not_emailed", "cancelled"):
        words += f" ({esc(_cut(ref.invite_reason))})"
    return words


def _campaign_lines(c: Card, public_url: str) -> str:
    if not c.campaigns:
        return "*Campaigns*\nNot in any campaign."
    lines = [f"• *{esc(_cut(ref.name))}*: {referral_link(public_url, ref.code)} · "
             f"{_invite(ref)} · {n(ref.clicks)} click{'' if ref.clicks == 1 else 's'}"
             for ref in c.campaigns[:MAX_CAMPAIGNS_SHOWN]]  # fmt: skip
    more = len(c.campaigns) - MAX_CAMPAIGNS_SHOWN
    if more > 0:
        lines.append(f"…and {n(more)} more campaign{'' if more == 1 else 's'}")
    return "*Campaigns* (referral link · invite · clicks)\n" + "\n".join(lines)


def _confirm(title: str, text: str, confirm: str, *, danger: bool = False) -> ConfirmObject:
    return ConfirmObject(title=PlainTextObject(text=title), text=PlainTextObject(text=text),
                         confirm=PlainTextObject(text=confirm),
                         deny=PlainTextObject(text="Cancel"),
                         style="danger" if danger else None)  # fmt: skip


def _fit(template: str, email: str) -> str:
    """A confirm text naming the email, shortened to fit Slack's 300 characters."""
    room = MAX_CONFIRM - len(template.format(email=""))
    return template.format(email=_cut(email, room))


def _consent_buttons(c: Card) -> list[ButtonElement]:
    """Unsubscribe unless it sticks already (one an import switched off is unsubscribed for
    good by it: a later import saying yes would subscribe them again); Resubscribe unless
    subscribed."""
    value = contact_ref(c.id, c.email)
    buttons = []
    if c.unsubscribed_at is None:
        buttons.append(ButtonElement(text="Unsubscribe", action_id=Action.CONTACT_UNSUBSCRIBE,
                                     value=value))  # fmt: skip
    if not c.subscribed:
        buttons.append(ButtonElement(
            text="Resubscribe", action_id=Action.CONTACT_RESUBSCRIBE, value=value,
            confirm=_confirm("Resubscribe?", _fit(
                "Only if {email} agreed to hear from us again.", c.email), "Resubscribe")))
    return buttons


def _buttons(c: Card) -> ActionsBlock:
    value = contact_ref(c.id, c.email)
    delete = ButtonElement(
        text="Delete contact", action_id=Action.CONTACT_DELETE, value=value, style="danger",
        confirm=_confirm("Delete this contact?", _fit(
            "Deletes {email} everywhere: segments, campaigns, referral links (they'll stop "
            "working). This can't be undone. If they unsubscribed, an import that adds them "
            "again adds them unsubscribed.", c.email), "Delete", danger=True),
    )  # fmt: skip
    return ActionsBlock(elements=[*_consent_buttons(c), delete])


def _more_segments(c: Card) -> SectionBlock:
    """The contact's segments past those with a button, named, in a menu that takes the
    contact out of the one chosen: "…and 5 more segments" named none, and a lead couldn't
    take the contact out of them from Slack. A menu holds 100 options."""
    rest = c.segments[MAX_SEGMENTS_SHOWN:]
    listed = rest[:MAX_MENU_OPTIONS]
    names = ", ".join(esc(_cut(s.name, 75)) for s in listed)
    beyond = len(rest) - len(listed)
    text = (f"…and {n(len(rest))} more segment{'' if len(rest) == 1 else 's'}: "
            + cut_mrkdwn(names, 2500)
            + (f" (the menu holds the first {MAX_MENU_OPTIONS}; `referral-bot contacts` "
               "lists them all)" if beyond else ""))  # fmt: skip
    ref = contact_ref(c.id, c.email)
    menu = StaticSelectElement(
        action_id=Action.CONTACT_REMOVE_FROM_SEGMENT_PICK,
        placeholder="Remove from segment…",
        options=[Option(text=_cut(s.name, 75), value=f"{ref}:{s.id}") for s in listed],
    )  # fmt: skip
    return SectionBlock(block_id=BlockId.CONTACT_MORE_SEGMENTS,
                        text=MarkdownTextObject(text=text), accessory=menu)


def card(c: Card, public_url: str, *, note: str = "") -> tuple[str, list[Block]]:
    """Everything about one contact, with the changes a team lead may make."""
    name = _name(c.first_name, c.last_name)
    locale = esc(c.locale) if c.locale else f"workspace default ({esc(c.default_locale)})"
    blocks: list[Block] = [
        _section(f"*{esc(c.email)}*\n{esc(_cut(name, 200)) if name else '_no name_'}"),
        SectionBlock(fields=[
            MarkdownTextObject(text=f"*Language*\n{locale}"),
            MarkdownTextObject(text=f"*Email*\n{_consent(c)}"),
            MarkdownTextObject(text=f"*Added*\n{_added(c)}"),
        ]),
    ]  # fmt: skip
    if c.segments:
        blocks.append(_section("*Segments* (and All Customers, which holds everyone)"))
        for segment in c.segments[:MAX_SEGMENTS_SHOWN]:
            blocks.append(SectionBlock(
                text=MarkdownTextObject(text=f"• {esc(_cut(segment.name))}"),
                accessory=ButtonElement(text="Remove from segment",
                                        action_id=Action.CONTACT_REMOVE_FROM_SEGMENT,
                                        value=f"{contact_ref(c.id, c.email)}:{segment.id}"),
            ))  # fmt: skip
        if len(c.segments) > MAX_SEGMENTS_SHOWN:
            blocks.append(_more_segments(c))
    else:
        blocks.append(_section("*Segments*\nOnly All Customers."))
    blocks.append(_section(_campaign_lines(c, public_url)))
    blocks.append(_buttons(c))
    text = esc(c.email) + (f" ({esc(_cut(name))})" if name else "")
    return (f"{note}\n{text}" if note else text), _noted(note, blocks)


def deleted(result: Deleted) -> tuple[str, list[Block]]:
    text = (f":wastebasket: Deleted *{esc(result.email)}* {deleted_detail(result)}."
            + (" Its referral links now answer “gone”." if result.advocates else ""))  # fmt: skip
    return text, [_section(text)]


def gone(message: str) -> tuple[str, list[Block]]:
    """A note alone (the contact is gone, or the button was forged); `message` is mrkdwn."""
    return message, [_section(message)]


# ---- the modal ------------------------------------------------------------------------------


def search_modal(query: str = "", body: Sequence[Block] = (), *, back: bool = False) -> View:
    """The search form; with results (or a card) below it. *Search* runs it again, and
    *Back to results* (on a card) reruns the search it came from."""
    blocks: list[Block] = [
        InputBlock(block_id=BlockId.CONTACT_QUERY, label="Email or name",
                   hint="The start of an email address, a first name or a last name.",
                   element=PlainTextInputElement(action_id=Action.CONTACT_QUERY,
                                                 initial_value=query[:MAX_QUERY] or None,
                                                 placeholder="ada, ada@example.com, Lovelace",
                                                 max_length=MAX_QUERY)),
        *body,
    ]  # fmt: skip
    if back and query:
        blocks.append(ActionsBlock(elements=[ButtonElement(
            text="Back to results", action_id=Action.CONTACT_MORE, value=more_value(query, 0))]))
    return View(type="modal", callback_id=Callback.CONTACT_SEARCH, title=MODAL_TITLE,
                submit="Search", close="Close", blocks=blocks,
                private_metadata=metadata(q=query[:MAX_QUERY]))  # fmt: skip
