"""Block builders for the import thread's next step and an enrollment's report."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    ExternalDataSelectElement,
    MarkdownTextObject,
    Option,
    SectionBlock,
)

from bot.campaigns.invites import stop_remedy
from bot.campaigns.reports import EnrollmentSummary
from handlers.ids import Action, BlockId
from handlers.messages import counted_option, esc, n, plural, slack_date, were
from handlers.slack_text import cut_mrkdwn
from models import Campaign, CampaignState

MAX_CHOICES = 100  # a select's menu holds at most 100 options


# What the person does about a stop of sending (bot.campaigns.invites.stop_remedy)
RETRY_ADVICE = {
    "retry": "*Retry sending* sends them.",
    "wait": ("*Retry sending* tries again; if it keeps happening, check the mail provider's "
             "sending limits and the bot's mail settings."),
    "settings": "Fix the bot's mail settings, then *Retry sending*.",
    "workers": ("*Retry sending* tries again; if it keeps happening, whoever runs the bot can "
                "read why in the workers' log."),
}


# Resend uncertain, in a report and in the campaign list
RESEND_CONFIRM = ConfirmObject(
    title="Resend?", confirm="Resend", deny="No",
    text="The mail server may already have delivered these: some people could get the "
         "invite twice.")  # fmt: skip


def email_them_confirm(count: int) -> ConfirmObject:
    """*Email them* (a campaign in the list, an enrollment's report) asks first: another tool
    may have invited these people while the invite email was off."""
    return ConfirmObject(title="Email them now?", confirm="Email them", deny="No",
                         text=f"{plural(count, 'advocate')} got no invite because the invite email "
                              "was off. If another tool (a Klaviyo flow) invited them "
                              "meanwhile, they get a second email.")  # fmt: skip


def campaign_options(campaigns: list[Campaign], query: str = "") -> list[Option]:
    """The target offer's menu: campaigns whose name holds `query`, draft ones marked."""
    folded = query.casefold()
    return [counted_option(str(c.id), c.name, f" ({c.state})")  # a long name is cut, not this
            for c in campaigns if folded in c.name.casefold()][:MAX_CHOICES]  # fmt: skip


CONSENT_TO_TARGET = ("Its contacts become advocates and, if the campaign sends invite emails, "
                     "get one (not those who aren't subscribed or who unsubscribed). Go on only if "
                     "they agreed to hear from us: your name is kept with the enrollment.")


def target_offer(segment: str, batch_id: int, campaigns: list[Campaign]) -> tuple[str, list[Block]]:
    """After an import: choose a campaign that targets the segment (draft ones are marked).

    The menu loads the campaigns when it is opened (an external select): this message is
    posted once, and a campaign created after it (the first one, say) must be in it too."""
    text = f"Next step: target a campaign with {esc(segment)}"
    intro = (f"*Next step:* target a campaign with *{esc(segment)}*: its contacts become "
             "advocates with their own referral links and get an invite.")  # fmt: skip
    if not campaigns:
        intro += ("\nThere is no campaign yet: create one with `/referral campaign`, then "
                  "choose it here.")  # fmt: skip
    return text, [
        SectionBlock(text=MarkdownTextObject(text=intro)),
        ActionsBlock(block_id=BlockId.TARGET, elements=[
            ExternalDataSelectElement(action_id=Action.TARGET_CHOICE, min_query_length=0,
                                  placeholder="Choose a campaign"),
            # the import's form asks for consent only when a live campaign targets the
            # segment then: targeting afterwards emailed people nobody vouched for
            ButtonElement(text="Target a campaign", action_id=Action.TARGET, style="primary",
                          value=str(batch_id), confirm=ConfirmObject(
                              title="Invite these people?", confirm="They agreed",
                              deny="Not yet", text=CONSENT_TO_TARGET)),
        ]),
    ]  # fmt: skip


def go_live_first(campaign: Campaign, batch_id: int) -> tuple[str, list[Block]]:
    text = f"{esc(campaign.name)} is a {campaign.state} campaign"
    return text, [
        SectionBlock(text=MarkdownTextObject(
            text=f"*{esc(campaign.name)}* is a {campaign.state} campaign: targeting it enrolls "
                 "nobody until it is live. Go live now and enroll this segment?")),
        ActionsBlock(elements=[ButtonElement(
            text="Go live and target", action_id=Action.TARGET_GO_LIVE, style="primary",
            value=f"{campaign.id}:{batch_id}",
            confirm=ConfirmObject(title="Go live?", confirm="Go live", deny="Not yet",
                                  text="Every target segment is enrolled and invited now. "
                                       + CONSENT_TO_TARGET),
        )]),
    ]  # fmt: skip


def enrollment_report(summary: EnrollmentSummary) -> tuple[str, list[Block]]:
    """The thread's report of one enrollment, updated as its invites go out."""
    e, c = summary.enrollment, summary.campaign
    where = f" from *{esc(summary.segment)}*" if summary.segment else ""
    text = f"Enrollment in {esc(c.name)}"
    if e.status == "failed":
        return text, [SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(
            f":x: Enrolling contacts{where} in *{esc(c.name)}* failed after "
            f"{plural(e.enrolled, 'new advocate')}: {esc(e.error or 'unknown error.')} Target "
            "the campaign again to enroll the rest.")))]  # fmt: skip
    if e.status != "done":
        return text, [SectionBlock(text=MarkdownTextObject(
            text=f":hourglass_flowing_sand: Enrolling contacts{where} in *{esc(c.name)}*…"))]
    if e.error:
        return text, [SectionBlock(text=MarkdownTextObject(
            text=cut_mrkdwn(f":warning: {esc(e.error)}")))]
    new = "new advocate" if e.enrolled == 1 else "new advocates"
    lines = [f":tada: *{n(e.enrolled)}* {new} in *{esc(c.name)}*{where} "
             f"({n(e.already_advocates)} already {were(e.already_advocates)}, "
             f"{n(e.excluded)} excluded)."]  # fmt: skip
    if summary.advocates < e.enrolled:
        lines.append(f"• {n(e.enrolled - summary.advocates)} of them removed since (an import "
                     f"undone with its advocates, or contacts deleted): {n(summary.advocates)} "
                     f"{'remains' if summary.advocates == 1 else 'remain'}")  # fmt: skip
    sent, queued, held = summary.count("sent"), summary.count("queued"), summary.count("held")
    emailing = [f"{plural(sent, 'invite')} sent"]
    stopped = bool(e.send_error and (held or queued))
    if stopped:
        emailing.append(f"{n(held + queued)} not sent yet")
    if held and not stopped:
        emailing.append(f"{n(held)} held until {slack_date(summary.held_until or e.hold_until)}")
    if queued and not stopped:
        emailing.append(f"{n(queued)} queued")
    if summary.count("sending"):
        emailing.append(f"{n(summary.count('sending'))} sending")
    for state, label in (("failed", "failed"), ("uncertain", "may not have arrived"),
                         ("cancelled", "cancelled")):  # fmt: skip
        if summary.count(state):
            emailing.append(f"{n(summary.count(state))} {label}")
    lines.append("• " + " · ".join(emailing))
    for reason, count in sorted(summary.not_emailed.items()):
        lines.append(f"• {n(count)} enrolled without an email: {esc(reason)}")
    if summary.unsent_while_off:
        lines.append("_The invite email is on again: *Email them* sends those it left "
                     "without one._")  # fmt: skip
    for locale, count in sorted(summary.fell_back.items()):
        lines.append(f"• {n(count)} sent in {esc(locale)}: no template in their language")
    if not c.invite_email:
        lines.append("_The invite email of this campaign is off (e.g. you invite from Klaviyo)._")
    if stopped:
        lines.append(f":warning: Sending stopped: {esc(e.send_error or '')}\n"
                     f"{RETRY_ADVICE[stop_remedy(e.send_error)]}")  # fmt: skip
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn("\n".join(lines))))]
    buttons = []
    if stopped:
        buttons.append(ButtonElement(text="Retry sending", action_id=Action.RETRY_SENDING,
                                     style="primary", value=str(e.id)))  # fmt: skip
    if summary.holding:
        buttons.append(ButtonElement(
            text="Cancel invites", action_id=Action.CANCEL_INVITES, style="danger",
            value=str(e.id), confirm=ConfirmObject(
                title="Cancel these invites?", confirm="Cancel invites", deny="Keep them",
                text="The advocates stay enrolled; nobody of this enrollment is emailed."),
        ))  # fmt: skip
    if summary.unsent_while_off:
        buttons.append(ButtonElement(
            text="Email them", action_id=Action.EMAIL_UNSENT, value=str(e.id),
            confirm=email_them_confirm(summary.unsent_while_off)))  # fmt: skip
    if summary.resendable and c.invite_email:  # what a click can resend
        buttons.append(ButtonElement(
            text="Resend uncertain", action_id=Action.RESEND_UNCERTAIN, value=str(e.id),
            confirm=RESEND_CONFIRM))  # fmt: skip
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    if c.state != CampaignState.LIVE:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"The campaign is {c.state}: unsent invites wait until it is live.")]))
    return text, blocks
