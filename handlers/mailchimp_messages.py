"""Block Kit for Mailchimp: the `/referral mailchimp` status, the API key modal, and the
"Mailchimp lists" part of the import modal.

Plain data in, slack_sdk models out (no Slack calls, no database), like `messages.py`. Account
names, emails and Mailchimp's error texts reach mrkdwn only through `esc()`. The API key is
never put in a view: not as an initial value, not in private_metadata, not in an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    OptionGroup,
    PlainTextInputElement,
    SectionBlock,
    StaticMultiSelectElement,
)
from slack_sdk.models.views import View

from bot.audit import by_whom
from bot.mailchimp.accounts import Connection, Health, Seen, Stamp
from bot.mailchimp.api import Audience
from bot.mailchimp.oauth import STATE_TTL
from handlers.campaign_messages import notice_modal
from handlers.ids import Action, BlockId, Callback
from handlers.messages import counted_option, esc, n, slack_date
from handlers.slack_text import cut_mrkdwn

MODAL_TITLE = "Connect Mailchimp"
MAX_OPTIONS = 100  # Slack's limit for a static select, and for an option group
MAX_SHOWN = MAX_OPTIONS * 100  # in Slack's most option groups
# Slack refuses a view over 250 KB (view_too_large), and an option is some 130 bytes of it:
# an account of 2,000 audiences got no import form at all, not even for a CSV. The options
# offered stop at this many bytes of JSON, measured as slack_sdk sends it (non-ASCII
# escaped, the larger measure), leaving room for the rest of the form.
OPTIONS_BYTES = 180_000
MAX_GROUP_LABEL = 75
MAX_KEY_LENGTH = 100  # real keys are 32 hex characters, a dash and the data centre
SECRET_KEY_MISSING = (
    ":warning: Set `SECRET_KEY` (a long random string) in the bot's environment and restart it "
    "before connecting Mailchimp: the bot encrypts Mailchimp's credentials with it."
)
CHECKING = ":hourglass_flowing_sand: Checking the key with Mailchimp…"
PREPARING = ":hourglass_flowing_sand: Preparing Mailchimp's sign-in…"
LISTS_LOADING = ":hourglass_flowing_sand: Looking up your Mailchimp lists…"
LISTS_NOT_CONNECTED = ("Mailchimp lists can be imported here too, once a team lead connects "
                       "Mailchimp with `/referral mailchimp`.")  # fmt: skip
LISTS_NONE = "Your Mailchimp account has no audiences yet."
LISTS_RECONNECT = (":warning: Mailchimp no longer accepts our credentials: reconnect Mailchimp "
                   "with `/referral mailchimp` to import its lists here.")  # fmt: skip
LISTS_UNREADABLE = (":warning: The saved Mailchimp connection can't be read (the bot's "
                    "`SECRET_KEY` changed since it was saved): a team lead disconnects and "
                    "connects Mailchimp again with `/referral mailchimp`.")  # fmt: skip
LISTS_HINT = "Subscribed members are imported; the others are counted as skipped, by status."
# what Disconnect does (accounts.disconnect): said before it is confirmed, and after
DISCONNECT_CONFIRM = ("Contacts already imported stay. An import not approved yet loses the "
                      "audiences it has from this account. Lists can't be added to imports "
                      "until Mailchimp is connected again.")  # fmt: skip
# a Disconnect button's value before it named the connection it was drawn for (statuses
# drawn by an earlier release): it disconnects what is connected now
LEGACY_DISCONNECT = "disconnect"
DISCONNECTED_NOTE = ("Contacts already imported stay; an import not approved yet loses the "
                     "audiences it had from this account, as its review now says.")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConnectOffer:
    """What *Connect* does for the person who asked: open Mailchimp's sign-in, or the API
    key modal; or nothing, and say why (no SECRET_KEY to encrypt credentials with)."""

    sign_in_url: str = ""  # OAuth configured and a team lead asked: the sign-in's start page
    secret_key_missing: bool = False
    lead: bool = True  # others see the buttons too, with a line saying who may use them


def _who(conn: Connection) -> str:
    if conn.account_name:
        who = f"*{esc(conn.account_name)}*"
        if conn.login_email:
            who += f" ({esc(conn.login_email)})"
        return who
    return f"the account in data centre `{esc(conn.dc)}`"


def _connected_by(conn: Connection) -> str:
    how = "signed in with Mailchimp" if conn.auth == "oauth" else "with an API key"
    when = slack_date(conn.connected_at) if isinstance(conn.connected_at, datetime) else ""
    return " · ".join(part for part in (by_whom(conn.connected_by), when, how) if part)


def _account_line(conn: Connection) -> str:
    return (f":white_check_mark: *Mailchimp is connected*: {_who(conn)}\n"
            f"Connected {_connected_by(conn)}. Its audiences can be chosen in "
            "`/referral import`.")  # fmt: skip


def _unusable_line(conn: Connection, health: Health) -> str:
    """The saved connection can't be used: why, and that reconnecting replaces it."""
    if health == Health.UNREADABLE:
        why = ("the saved credentials can't be read: the bot's `SECRET_KEY` changed (or is "
               "missing) since they were saved")  # fmt: skip
    else:
        why = ("Mailchimp refuses the saved credentials: the sign-in was revoked, or the API "
               "key deleted or disabled")  # fmt: skip
    return (f":warning: *Mailchimp can't be used*: {why}.\n"
            f"Account: {_who(conn)}, connected {_connected_by(conn)}. Its audiences can't be "
            "imported until a team lead reconnects it; reconnecting replaces the saved "
            "credentials.")  # fmt: skip


def disconnect_value(conn: Connection) -> str:
    """The Disconnect button's value: the connection it is drawn for (its Stamp), so a click
    after another lead connected another account disconnects nothing (accounts.disconnect)."""
    return conn.stamp.text()


def shown_stamp(value: str) -> Stamp | None:
    """The connection a Disconnect button was drawn for (disconnect_value); None when the
    value names none (LEGACY_DISCONNECT, or not one of ours)."""
    return Stamp.read(value)


def disconnected_note(user_id: str, gone: Connection) -> str:
    """What a Disconnect did, naming the account (the button of a status drawn before they
    named their connection disconnects what is connected now)."""
    return (f":white_check_mark: <@{user_id}> disconnected Mailchimp from {_who(gone)}, "
            f"connected {by_whom(gone.connected_by)}. {DISCONNECTED_NOTE}")


def stale_disconnect_note(now: Connection | None) -> str:
    """A Disconnect of a connection that isn't the workspace's any more: what is, in words."""
    if now is None:
        return ("Mailchimp isn't connected any more: someone disconnected it already, so "
                "nothing was disconnected.")  # fmt: skip
    return (f"Mailchimp was connected to {_who(now)} {by_whom(now.connected_by)} since this "
            "was shown: nothing was disconnected. Disconnect below disconnects that one.")


def stale_connect_note(now: Connection | None) -> str:
    """A key form opened on another connection than the workspace's now (or on none): what
    is connected, in words, and that nothing was replaced (accounts.save's `seen`)."""
    if now is None:
        return (":warning: Mailchimp was disconnected in the meantime, so this key wasn't "
                "saved. Run `/referral mailchimp` to connect it again if you still mean to.")
    return (f":warning: Mailchimp was connected to {_who(now)} {by_whom(now.connected_by)} in "
            "the meantime, so nothing was replaced and this key wasn't saved. To connect this "
            "key's account instead, disconnect that account first with `/referral mailchimp`, "
            "then connect again.")  # fmt: skip


def _disconnect_button(conn: Connection) -> ButtonElement:
    return ButtonElement(
        text="Disconnect", action_id=Action.MAILCHIMP_DISCONNECT, value=disconnect_value(conn),
        style="danger",
        confirm=ConfirmObject(title="Disconnect Mailchimp?", confirm="Disconnect", deny="Keep it",
                              text=DISCONNECT_CONFIRM),
    )  # fmt: skip


def _sign_in_note() -> ContextBlock:
    minutes = STATE_TTL // 60
    return ContextBlock(elements=[MarkdownTextObject(
        text=f"You sign in on Mailchimp's site. The link works for {minutes} minutes: run "
             "`/referral mailchimp` again for a new one.")])  # fmt: skip


def _connect_button(offer: ConnectOffer, seen: Seen, *, again: bool = False) -> ButtonElement:
    """*Connect* (`again`: *Reconnect*): the sign-in's URL (its state carries what it was
    drawn for), or the API key form, the button's value naming the connection it was drawn
    for (`seen`)."""
    verb = "Reconnect" if again else "Connect"
    if offer.sign_in_url:
        return _sign_in_button(offer.sign_in_url, verb)
    label = f"{verb} with an API key" if offer.lead else f"{verb} Mailchimp"
    return ButtonElement(text=label, action_id=Action.MAILCHIMP_CONNECT, value=seen.text(),
                         style="primary")  # fmt: skip


def _sign_in_button(url: str, verb: str = "Connect") -> ButtonElement:
    """A link to the sign-in's start page: its state says what the Connect was drawn for."""
    return ButtonElement(text=f"{verb} Mailchimp", action_id=Action.MAILCHIMP_SIGN_IN, url=url,
                         style="primary")  # fmt: skip


def _connect_blocks(offer: ConnectOffer) -> list[Block]:
    if offer.secret_key_missing:
        return [SectionBlock(text=MarkdownTextObject(text=SECRET_KEY_MISSING))]
    blocks: list[Block] = [ActionsBlock(elements=[_connect_button(offer, Seen(None))])]
    if offer.sign_in_url:
        blocks.append(_sign_in_note())
    return blocks


def _connected_blocks(conn: Connection, offer: ConnectOffer, health: Health,
                      reason: str) -> tuple[str, list[Block]]:  # fmt: skip
    """A saved connection: working (or not known to fail), or refused with *Reconnect*."""
    if health not in (Health.REFUSED, Health.UNREADABLE):
        blocks: list[Block] = [
            SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(_account_line(conn)))),
            ActionsBlock(elements=[_disconnect_button(conn)])]  # fmt: skip
        if health == Health.UNANSWERED:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(
                text=cut_mrkdwn(f":grey_question: The saved credentials couldn't be checked "
                                f"with Mailchimp just now: {esc(reason)}"))]))  # fmt: skip
        return "Mailchimp is connected.", blocks
    blocks = [SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(_unusable_line(conn, health))))]
    if offer.secret_key_missing:  # nothing could be saved either: say what to set
        blocks += [SectionBlock(text=MarkdownTextObject(text=SECRET_KEY_MISSING)),
                   ActionsBlock(elements=[_disconnect_button(conn)])]  # fmt: skip
    else:
        blocks.append(ActionsBlock(elements=[_connect_button(offer, Seen.of(conn), again=True),
                                             _disconnect_button(conn)]))  # fmt: skip
        if offer.sign_in_url:
            blocks.append(_sign_in_note())
    return "Mailchimp is connected, but its saved credentials can't be used.", blocks


def status_message(conn: Connection | None, offer: ConnectOffer, note: str = "",
                   health: Health = Health.WORKING,
                   reason: str = "") -> tuple[str, list[Block]]:  # fmt: skip
    """(fallback text, blocks) of `/referral mailchimp`; `note` (mrkdwn) says what just
    happened, on top. `health`: what Mailchimp made of the saved credentials just now
    (`reason`: why it couldn't tell)."""
    blocks: list[Block] = []
    if note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(note))))
    if conn is not None:
        text, shown = _connected_blocks(conn, offer, health, reason)
        blocks += shown
    else:
        text = "Mailchimp isn't connected."
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text="*Mailchimp isn't connected.* Connect it to import its audiences (lists) into "
                 "a segment from `/referral import`; only subscribed members are imported.")))
        blocks += _connect_blocks(offer)  # fmt: skip
    if not offer.lead and not (conn is None and offer.secret_key_missing):
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text="Only team leads can connect or disconnect Mailchimp.")]))  # fmt: skip
    return text, blocks


def key_modal(private_metadata: str, problem: str = "") -> View:
    """The form for an API key; `problem` is why the last key wasn't accepted (when it was
    checked after the modal was answered, so it couldn't be an inline error)."""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(
            text="Paste an API key of the Mailchimp account whose audiences you want to import. "
                 "In Mailchimp: *Profile › Extras › API keys › Create A Key*. The key is checked "
                 "with Mailchimp, stored encrypted and never shown again.")),
        InputBlock(block_id=BlockId.MAILCHIMP_KEY, label="API key",
                   hint="It ends with your data centre, e.g. -us21.",
                   element=PlainTextInputElement(action_id=Action.MAILCHIMP_KEY,
                                                 max_length=MAX_KEY_LENGTH,
                                                 placeholder="0123456789abcdef…-us21")),
    ]  # fmt: skip
    if problem:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=cut_mrkdwn(f":warning: {esc(problem)}"))]))  # fmt: skip
    return View(type="modal", callback_id=Callback.MAILCHIMP_KEY, title=MODAL_TITLE,
                submit="Connect", close="Cancel", blocks=blocks,
                private_metadata=private_metadata)  # fmt: skip


def sign_in_modal(offer: ConnectOffer) -> View:
    """*Connect Mailchimp* from Home when an OAuth app is configured: the same sign-in as
    `/referral mailchimp`'s, a link made for the lead who clicked (`offer.sign_in_url`)."""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(
            text="Sign in to the Mailchimp account whose audiences you want to import. Once "
                 "you have, the bot tells you in a direct message.")),
        ActionsBlock(elements=[_sign_in_button(offer.sign_in_url)]),
        _sign_in_note(),
    ]  # fmt: skip
    return View(type="modal", title=MODAL_TITLE, close="Close", blocks=blocks)


def preparing_modal() -> View:
    return notice_modal(MODAL_TITLE, PREPARING)


def checking_modal() -> View:
    return notice_modal(MODAL_TITLE, CHECKING)


def connected_modal(conn: Connection) -> View:
    return notice_modal(MODAL_TITLE, _account_line(conn))


def refused_modal(text: str) -> View:
    """Why this person can't connect (mrkdwn of our own, e.g. naming the team leads)."""
    return notice_modal(MODAL_TITLE, text)


# ---- the import modal's "Mailchimp lists" ---------------------------------------------------


def _option(audience: Audience) -> Option:
    """"Name (1,234 subscribed)", the name shortened so the count always shows."""
    return counted_option(audience.id[:150], audience.name,
                          f" ({n(audience.subscribed)} subscribed)")  # fmt: skip


def _group(audiences: Sequence[Audience]) -> OptionGroup:
    """Up to MAX_OPTIONS audiences under the names they run from and to."""
    first, last = audiences[0].name, audiences[-1].name
    room = (MAX_GROUP_LABEL - len(" – ")) // 2
    label = " – ".join(dict.fromkeys(name if len(name) <= room else name[: room - 1] + "…"
                                     for name in (first, last)))  # fmt: skip
    return OptionGroup(label=label, options=[_option(a) for a in audiences])


def _audience_select(audiences: Sequence[Audience]) -> StaticMultiSelectElement:
    """The audiences by name; past Slack's MAX_OPTIONS options, in groups of as many (an
    agency's account has hundreds: only the first 100, the oldest, could be chosen). The
    caller gives those that fit (_fitting)."""
    if len(audiences) <= MAX_OPTIONS:
        return StaticMultiSelectElement(action_id=Action.MAILCHIMP_LISTS,
                                        placeholder="Choose audiences",
                                        options=[_option(a) for a in audiences])  # fmt: skip
    groups = [_group(audiences[i:i + MAX_OPTIONS])
              for i in range(0, len(audiences), MAX_OPTIONS)]  # fmt: skip
    return StaticMultiSelectElement(action_id=Action.MAILCHIMP_LISTS,
                                    placeholder="Choose audiences (type to search)",
                                    option_groups=groups)  # fmt: skip


def _fitting(audiences: Sequence[Audience]) -> int:
    """How many of `audiences` (at most MAX_SHOWN) fit in OPTIONS_BYTES as options."""
    size = 0
    for count, audience in enumerate(audiences[:MAX_SHOWN]):
        size += len(json.dumps(_option(audience).to_dict()))
        if size > OPTIONS_BYTES:
            return count
    return min(len(audiences), MAX_SHOWN)


def lists_blocks(audiences: Sequence[Audience] = (), note: str = "") -> list[Block]:
    """A multi-select of the account's audiences, or one context line (`note`, mrkdwn) saying
    why there is none: still loading, not connected, reconnect, or Mailchimp failed."""
    if not audiences:
        return [ContextBlock(elements=[MarkdownTextObject(text=cut_mrkdwn(note or LISTS_NONE))])]
    by_name = sorted(audiences, key=lambda a: (a.name.casefold(), a.id))
    shown = _fitting(by_name)
    blocks: list[Block] = [InputBlock(
        block_id=BlockId.MAILCHIMP_LISTS, optional=True, label="Mailchimp lists",
        hint=LISTS_HINT, element=_audience_select(by_name[:shown]),
    )]  # fmt: skip
    if len(audiences) > shown:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"Showing the first {n(shown)} of {n(len(audiences))} audiences by name; "
                 "import the others with `referral-bot import --mailchimp-list`.")]))
    return blocks


def lists_failed(error: str) -> str:
    return (f":warning: Mailchimp lists couldn't be loaded ({esc(error)}): close this form and "
            "try again in a moment.")  # fmt: skip
