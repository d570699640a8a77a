"""Block Kit for campaigns: the `/referral campaign` list, its notes and the campaign modal.

Plain data in, slack_sdk models out (no Slack calls, no database), like `messages.py`. Every
name that reaches mrkdwn or a message's `text` goes through `esc()`; `plain_text` objects
(titles, initial values, the header) are shown as typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.campaigns.invites import stop_remedy, uncertain_words, waiting_pronoun, waiting_words
from bot.campaigns.service import MAX_NAME, MAX_OFFER, MAX_SENDER, MAX_STORE_URL, CampaignSummary
from handlers.enrollment_messages import RESEND_CONFIRM, RETRY_ADVICE, email_them_confirm
from handlers.ids import Action, BlockId, Callback
from handlers.messages import esc, n, plural
from handlers.slack_text import cut_mrkdwn
from models import Campaign, CampaignState

MAX_CAMPAIGNS_SHOWN = 20  # two blocks each: 40 of a message's 50, with room for the rest
MAX_SEGMENTS_NAMED = 10
MAX_DELAY_DAYS = 365
INVITE_ON = "on"
STATE_LABEL = {CampaignState.DRAFT: ":memo: draft", CampaignState.LIVE: ":large_green_circle: live",
               CampaignState.PAUSED: ":double_vertical_bar: paused"}  # fmt: skip
KLAVIYO_WARNING = (":warning: If you send invites from Klaviyo, turn the invite email off here, "
                   "or the same people get two emails.")  # fmt: skip
LIST_TITLE = "Referral campaigns"


@dataclass(frozen=True, slots=True)
class CampaignForm:
    """The modal's fields: read from a submission, or filled from a campaign to edit it."""

    name: str = ""
    store_url: str = ""
    sender: str = ""
    offer: str = ""
    invite_email: bool = True
    invite_delay_days: int | None = 0  # None: what was typed isn't a whole number

    @classmethod
    def of(cls, c: Campaign) -> CampaignForm:
        return cls(c.name, c.store_url, c.sender, c.offer, c.invite_email, c.invite_delay_days)


def _segments(names: list[str]) -> str:
    """Segment names for one line of mrkdwn: escaped, and at most a few of them."""
    if not names:
        return "none"
    shown = ", ".join(esc(name) for name in names[:MAX_SEGMENTS_NAMED])
    hidden = len(names) - MAX_SEGMENTS_NAMED
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def invite_line(campaign: Campaign) -> str:
    if not campaign.invite_email:
        return "Invite email: off"
    days = campaign.invite_delay_days
    when = "at once" if days == 0 else f"{days} day{'s' if days != 1 else ''} after enrollment"
    return f"Invite email: on, {when}"


def waiting_line(count: int) -> str:
    """The campaign's line when `count` of its invites are due and no running worker can send
    them (invites.waiting_for_a_sender): their send jobs wait queued, and the list showed the
    campaign live with its invites unsent, and not why. What such a worker needs, as `campaign
    list` says it (bot.campaigns.jobs.SEND_NEEDS), for whoever runs the bot: nothing in Slack
    starts one. Past the count (invites.WAITING_COUNTED) it says "More than 1,000": each
    publish counted every due invite."""
    words = waiting_words(count)
    return (f":warning: {words[:1].upper()}{words[1:]}, but no running worker can send "
            f"{waiting_pronoun(count)}. Ask whoever runs the bot to start one "
            "with `SMTP_URL` and `PUBLIC_URL` set (or `OUTBOX_DIR`, to write invites as .eml "
            "files), and `SECRET_KEY`.")  # fmt: skip


def _campaign_text(summary: CampaignSummary, waiting: int = 0) -> str:
    c = summary.campaign
    state = STATE_LABEL.get(CampaignState(c.state), c.state)
    more = f"\n{waiting_line(waiting)}" if waiting else ""
    if summary.stopped:  # the latest stop's reason; Retry sending restarts them all
        why = summary.stopped[-1][1]
        more += f"\n:warning: Sending stopped: {esc(why)}\n{RETRY_ADVICE[stop_remedy(why)]}"
    if summary.unsent_while_off:
        more += (f"\n{plural(summary.unsent_while_off, 'advocate')} got no invite while the "
                 "invite email was off: *Email them* sends theirs.")  # fmt: skip
    if count := summary.invites_uncertain:
        them = waiting_pronoun(count)
        how = (f"*Resend uncertain* sends {them} again" if c.invite_email else
               f"turn the invite email on with *Edit* to resend {them}")  # fmt: skip
        more += f"\n{uncertain_words(count)}: {how}."
    failed = (f"{summary.invites_failed:,} failed · " if summary.invites_failed else "")
    text = (f"*{esc(c.name)}* · {state}\n"
            f"Targets: {_segments(summary.targets)} · Excluded: {_segments(summary.excluded)}\n"
            f"{plural(summary.advocates, 'advocate')} · "
            f"{plural(summary.invites_sent, 'invite')} sent · {failed}"
            f"{invite_line(c)}{more}")  # fmt: skip
    return cut_mrkdwn(text)


def _go_live_confirm(campaign: Campaign) -> ConfirmObject:
    emails = ("and their invite emails are sent (turn the invite email off first if Klaviyo "
              "sends them). Go on only if they agreed to hear from us"
              if campaign.invite_email else "without an invite email")  # fmt: skip
    return ConfirmObject(title="Go live?", confirm="Go live", deny="Not yet",
                         text=f"Every contact of its target segments becomes an advocate with a "
                              f"referral link, {emails}.")  # fmt: skip


def _campaign_buttons(summary: CampaignSummary) -> ActionsBlock:
    campaign = summary.campaign
    value = str(campaign.id)
    change = (ButtonElement(text="Pause", action_id=Action.CAMPAIGN_PAUSE, value=value)
              if campaign.state == CampaignState.LIVE else
              ButtonElement(text="Go live", action_id=Action.CAMPAIGN_LIVE, value=value,
                            style="primary", confirm=_go_live_confirm(campaign)))  # fmt: skip
    buttons = [ButtonElement(text="Edit", action_id=Action.CAMPAIGN_EDIT, value=value), change]
    if summary.stopped:
        buttons.append(ButtonElement(text="Retry sending", action_id=Action.CAMPAIGN_RETRY_SENDING,
                                     value=value))  # fmt: skip
    if summary.unsent_while_off:
        buttons.append(ButtonElement(
            text="Email them", action_id=Action.CAMPAIGN_EMAIL_UNSENT, value=value,
            confirm=email_them_confirm(summary.unsent_while_off)))  # fmt: skip
    if summary.invites_uncertain and campaign.invite_email:
        buttons.append(ButtonElement(
            text="Resend uncertain", action_id=Action.CAMPAIGN_RESEND_UNCERTAIN, value=value,
            confirm=RESEND_CONFIRM))  # fmt: skip
    return ActionsBlock(elements=buttons)


def _page_start(index: int) -> int:
    """The offset of the page of the list that holds its `index`th campaign."""
    return index - index % MAX_CAMPAIGNS_SHOWN


def page_of(summaries: list[CampaignSummary], campaign_id: int | None) -> int:
    """The offset of the page that shows this campaign (the first page if it isn't there)."""
    return _page_start(next((i for i, s in enumerate(summaries)
                             if s.campaign.id == campaign_id), 0))  # fmt: skip


def campaign_list(summaries: list[CampaignSummary], note: str = "", *, offset: int = 0,
                  waiting: Mapping[int, int] | None = None) -> tuple[str, list[Block]]:  # fmt: skip
    """(fallback text, blocks) of one page of the campaign list; `note` (mrkdwn, already
    escaped) on top; `waiting`: by campaign id, its due invites no running worker can send
    (invites.waiting_for_a_sender), said in its text (`waiting_line`).

    A page is MAX_CAMPAIGNS_SHOWN campaigns from `offset`, so the message stays under Slack's
    50 blocks; *More* shows the next one (every campaign can be reached and changed from
    Slack, not only the first page's). An offset past the end (a stale button) is page one.
    What a campaign's invites wait for is a line of its section, not a block of its own: a
    page of 20 campaigns all waiting would be 64 blocks.
    """
    waiting = waiting or {}
    offset = _page_start(offset if 0 <= offset < len(summaries) else 0)
    blocks: list[Block] = []
    if note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(note))))
    blocks.append(HeaderBlock(text=LIST_TITLE))
    if not summaries:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text="No campaigns yet. A campaign turns the contacts of the segments it targets "
                 "into advocates with referral links, and can send each one an invite email."
        )))  # fmt: skip
    page = summaries[offset : offset + MAX_CAMPAIGNS_SHOWN]
    for summary in page:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=_campaign_text(summary, waiting.get(summary.campaign.id or 0, 0)))))
        blocks.append(_campaign_buttons(summary))
    if len(summaries) > MAX_CAMPAIGNS_SHOWN:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"Campaigns {n(offset + 1)}–{n(offset + len(page))} of {n(len(summaries))}"
        )]))  # fmt: skip
    buttons = [ButtonElement(text="New campaign", action_id=Action.CAMPAIGN_CREATE, value="new",
                             style="primary")]  # fmt: skip
    if offset + MAX_CAMPAIGNS_SHOWN < len(summaries):
        buttons.append(ButtonElement(text="More", action_id=Action.CAMPAIGN_MORE,
                                     value=str(offset + MAX_CAMPAIGNS_SHOWN)))  # fmt: skip
    blocks.append(ActionsBlock(elements=buttons))
    return note or LIST_TITLE, blocks


def went_live_note(name: str, targets: int, *, already_live: bool) -> str:
    """What going live did: enrolling its targets, nothing (already live), or waiting."""
    if already_live and targets:
        return f"{esc(name)} is already live."
    if not targets:
        return (f"{esc(name)} is live. It targets no segment yet: choose it under *Target a "
                "campaign* in the thread of an import (or `referral-bot campaign target`), and "
                "that segment's contacts are enrolled at once.")  # fmt: skip
    plural = "s" if targets != 1 else ""
    return f"{esc(name)} is live: enrolling its {n(targets)} target segment{plural} now."


def with_sender_warning(note: str, warning: str) -> str:
    """A note (mrkdwn, escaped) with the campaign's sender warning under it
    (service.sender_warning; "" adds nothing), as the save and Go live say it: the name in
    it is the lead's own typing, escaped like the note's."""
    return f"{note}\n:warning: {esc(warning)}" if warning else note


def paused_note(name: str, was: str) -> str:
    if was == CampaignState.PAUSED:
        return f"{esc(name)} was already paused."
    return f"{esc(name)} is paused: nobody new is enrolled and unsent invites wait."


def saved_note(name: str, created: bool) -> str:
    if created:
        return (f"{esc(name)} is ready as a draft: target a segment (under *Target a "
                "campaign* in the thread of an import into it, or `referral-bot campaign "
                "target`), then press *Go live* in `/referral campaign` to enroll its "
                "contacts.")  # fmt: skip
    return f"{esc(name)} is saved."


def _text_input(block_id: BlockId, action_id: Action, label: str, *, value: str,
                max_length: int, optional: bool = False, placeholder: str | None = None,
                hint: str | None = None) -> InputBlock:  # fmt: skip
    return InputBlock(
        block_id=block_id, label=label, optional=optional, hint=hint,
        element=PlainTextInputElement(action_id=action_id, max_length=max_length,
                                      initial_value=value or None, placeholder=placeholder),
    )  # fmt: skip


def _invite_option() -> Option:
    return Option(value=INVITE_ON, text="Send each new advocate an invite email",
                  description="With their referral link, in their language.")  # fmt: skip


def campaign_modal(editing: CampaignForm | None, *, private_metadata: str) -> View:
    """The create form, or (given a campaign's settings) the edit form filled with them."""
    c = editing or CampaignForm()
    delay = c.invite_delay_days or 0
    initial = [_invite_option()] if c.invite_email else None
    invite = CheckboxesElement(action_id=Action.CAMPAIGN_INVITE, options=[_invite_option()],
                               initial_options=initial)  # fmt: skip
    blocks: list[Block] = [
        _text_input(BlockId.CAMPAIGN_NAME, Action.CAMPAIGN_NAME, "Name", value=c.name,
                    max_length=MAX_NAME, placeholder="e.g. Spring referrals"),
        _text_input(BlockId.CAMPAIGN_STORE_URL, Action.CAMPAIGN_STORE_URL, "Store URL",
                    value=c.store_url, max_length=MAX_STORE_URL,
                    placeholder="https://shop.example.com", hint="Where referral links lead."),
        _text_input(BlockId.CAMPAIGN_SENDER, Action.CAMPAIGN_SENDER, "Sender", value=c.sender,
                    max_length=MAX_SENDER, optional=True,
                    placeholder="Shop <hello@shop.example>",
                    hint="Who invite emails come from; its name is the shop's name in "
                         "them (“Thanks for shopping with Shop”). No name: the store's web "
                         "address is."),
        _text_input(BlockId.CAMPAIGN_OFFER, Action.CAMPAIGN_OFFER, "Offer", value=c.offer,
                    max_length=MAX_OFFER, optional=True, placeholder="Give 10%, get $10",
                    hint="Shown in the invite email."),
        InputBlock(block_id=BlockId.CAMPAIGN_INVITE, label="Invite email", optional=True,
                   element=invite),
        InputBlock(block_id=BlockId.CAMPAIGN_DELAY, label="Invite delay (days)",
                   hint="0 sends the invite as soon as a contact is enrolled.",
                   element=NumberInputElement(action_id=Action.CAMPAIGN_DELAY,
                                              is_decimal_allowed=False, min_value=0,
                                              max_value=MAX_DELAY_DAYS,
                                              initial_value=str(delay))),
        ContextBlock(elements=[MarkdownTextObject(text=KLAVIYO_WARNING)]),
    ]  # fmt: skip
    return View(type="modal", callback_id=Callback.CAMPAIGN,
                title="Edit campaign" if editing else "New campaign",
                submit="Save" if editing else "Create", close="Cancel", blocks=blocks,
                private_metadata=private_metadata)  # fmt: skip


def notice_modal(title: str, text: str) -> View:
    """A modal with one line and no inputs: loading, or why the form can't be shown."""
    return View(type="modal", title=title[:24], close="Close",
                blocks=[SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text)))])  # fmt: skip
