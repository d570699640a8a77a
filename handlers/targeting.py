"""In an import's thread: target a campaign, go live first, cancel held invites, resend,
retry sending, email those the invite email being off left unsent."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.campaigns import service
from bot.campaigns.invites import (
    HeldCancelled,
    cancel_held,
    email_unsent,
    emailed_all,
    queued_until_live,
    resend_uncertain,
    retry_sending,
)
from bot.imports.review import batch_of, describe_status
from bot.once import PostUnderWay, post_once, posting_stale
from handlers.campaign_messages import with_sender_warning
from handlers.context import (
    Deps,
    Refusal,
    deps,
    id_in,
    is_lead,
    not_a_lead,
    outsider_refusal,
    team_of,
)
from handlers.enrollment_messages import campaign_options, go_live_first
from handlers.ids import Action, BlockId
from handlers.messages import esc, plural
from handlers.respond import dm
from handlers.routes import Routes
from handlers.slack_errors import slack_error
from models import BatchStatus, Campaign, CampaignState, Enrollment, ImportBatch, SegmentRole

log = logging.getLogger(__name__)


async def _lead(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, verb: str) -> None:
    if not await is_lead(d, client, team_id, user_id):
        raise await not_a_lead(d, client, team_id, user_id, verb)


async def _imported(d: Deps, team_id: str, batch_id: int) -> ImportBatch:
    batch = await batch_of(d.db, team_id, batch_id)
    if not batch.channel_id or not batch.message_ts:
        raise Refusal("Only a finished import's contacts can be targeted from its thread.")
    if batch.status != BatchStatus.DONE:  # undone since its thread offered this, say
        raise Refusal("Only a finished import's contacts can be targeted from its thread: "
                      f"this import is {describe_status(batch)}.")  # fmt: skip
    return batch


def _thread(batch: ImportBatch) -> service.Thread:
    return service.Thread(batch.channel_id or "", batch.message_ts or "")


async def _target(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id = team_of(body), body["user"]["id"]
    await _lead(d, client, team_id, user_id, "target campaigns")
    batch = await _imported(d, team_id, id_in(body["actions"][0].get("value"), "an import"))
    state = ((body.get("state") or {}).get("values") or {}).get(BlockId.TARGET) or {}
    chosen = (state.get(Action.TARGET_CHOICE) or {}).get("selected_option")
    if not chosen:
        raise Refusal("Choose a campaign first, then press Target a campaign.")
    campaign = await service.get_campaign(d.db, team_id, id_in(chosen.get("value"), "a campaign"))
    channel = batch.channel_id or ""
    if campaign.state != CampaignState.LIVE:
        text, blocks = go_live_first(campaign, batch.id or 0)
        await client.chat_postEphemeral(channel=channel, user=user_id, text=text, blocks=blocks,
                                        thread_ts=batch.message_ts)  # fmt: skip
        return
    done = await service.targeting(d.db, team_id, campaign.id or 0, batch.segment_id,
                                   requested_by=user_id, thread=_thread(batch))  # fmt: skip
    await _announce(d, client, team_id, done, campaign, batch, user_id,
                    f"<@{user_id}> targeted *{esc(campaign.name)}* with this segment: enrolling "
                    "its contacts now.")  # fmt: skip


async def _go_live(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id = team_of(body), body["user"]["id"]
    await _lead(d, client, team_id, user_id, "take campaigns live")
    campaign_part, _, batch_part = str(body["actions"][0].get("value") or "").partition(":")
    batch = await _imported(d, team_id, id_in(batch_part, "an import"))
    campaign = await service.get_campaign(d.db, team_id, id_in(campaign_part, "a campaign"))
    # one transaction: live already (another click got there first), the enrollment under
    # way if any, else one of this segment
    done = await service.targeting(d.db, team_id, campaign.id or 0, batch.segment_id,
                                   requested_by=user_id, thread=_thread(batch),
                                   go_live=True)  # fmt: skip
    warning = await _sender_warning(d, team_id, campaign) if done.went_live else ""
    try:
        # live already: by this lead (a double click's other click) or by another, from
        # `/referral campaign`, whose going live this click must not claim
        took = done.went_live or await service.put_live_by(d.db, team_id,
                                                           campaign.id or 0) == user_id
        said = (f"<@{user_id}> took *{esc(campaign.name)}* live and targeted this segment: "
                "enrolling now." if took else
                f"<@{user_id}> targeted *{esc(campaign.name)}* with this segment: enrolling "
                "its contacts now.")  # fmt: skip
        await _announce(d, client, team_id, done, campaign, batch, user_id, said)
    except Refusal as exc:  # the campaign is live all the same: the warning still said
        if warning:
            raise Refusal(with_sender_warning(str(exc), warning)) from exc
        raise
    if warning:
        await _tell(client, batch, user_id, with_sender_warning(
            f"You took *{esc(campaign.name)}* live.", warning))  # fmt: skip


async def _sender_warning(d: Deps, team_id: str, campaign: Campaign) -> str:
    """What the invites of a campaign a *Go live and target* click put live will come from
    (service.sender_warning; "": it has a sender, or sends no invite email), as Save and Go
    live in `/referral campaign` say it: only to the lead who clicked (the thread is the
    channel's), who may never have seen it (the shell made the campaign, or its form was
    saved long before). Read as the campaign is now, after going live."""
    now = await service.get_campaign(d.db, team_id, campaign.id or 0)
    return service.sender_warning(now, d.settings.public_base,
                                  "fill in *Sender* with *Edit* in `/referral campaign`.")


async def _tell(client: AsyncWebClient, batch: ImportBatch, user_id: str, text: str) -> None:
    """Say it to the lead alone, in the import's thread; by direct message if Slack refuses
    that (as the listeners' refusals are told: handlers.later.tell)."""
    try:
        await client.chat_postEphemeral(channel=batch.channel_id or "", user=user_id,
                                        thread_ts=batch.message_ts, text=text)  # fmt: skip
    except SlackApiError as exc:
        log.warning("sender warning not posted in the thread (%s): sending a direct message",
                    slack_error(exc) or "no reason given")  # fmt: skip
        await dm(client, user_id, text)


def _was_excluded(campaign: Campaign) -> str:
    """Said in the announcement when the segment was excluded from the campaign: a lead left
    its contacts out on purpose, and targeting switched it (a campaign gives a segment one
    role), enrolling them; the channel sees it where it happens."""
    return (f"\n:warning: This segment was excluded from *{esc(campaign.name)}*: it is a "
            "target now instead, and its contacts are enrolled.")


def _not_live(campaign: Campaign, was: SegmentRole | None) -> str:
    """The targeting found the campaign paused (between the click's check that it was live
    and the targeting's transaction): the segment is a target all the same, so say what that
    means, and that it was excluded before if it was (the click that switched it is told:
    nobody else knows)."""
    name = esc(campaign.name)
    said = (f"Nobody was enrolled: *{name}* was paused meanwhile. This segment is one of its "
            "targets now, so its contacts are enrolled once it is live again (*Go live* in "
            "`/referral campaign`).")  # fmt: skip
    if was == SegmentRole.EXCLUDE:
        said += (f"\n:warning: This segment was excluded from *{name}*: it is a target now "
                 "instead.")  # fmt: skip
    return said


async def _announce(d: Deps, client: AsyncWebClient, team_id: str, done: service.Targeting,
                    campaign: Campaign, batch: ImportBatch, user_id: str,
                    text: str) -> None:  # fmt: skip
    """Say it in the thread once per enrollment: a second click that found the same one
    under way (announced, or being announced by another click) is told so, privately. A
    click whose process died announcing it left the enrollment unannounced: the next click
    on it, once the dead click's posting key is stale (bot.once.post_once), announces it.

    The announcement says the segment was excluded if a targeting the enrollment takes in
    switched it, whichever click posts it: the switch is the first targeting's alone, and
    the other click of a race may post first (or its own post was refused)."""
    if done.enrollment is None:
        raise Refusal(_not_live(campaign, done.was))
    enrollment = done.enrollment

    async def post() -> None:
        switched = await service.excluded_then_targeted(d.db, team_id, enrollment)
        await client.chat_postMessage(
            channel=batch.channel_id or "", thread_ts=batch.message_ts,
            text=text + (_was_excluded(campaign) if switched else ""))  # fmt: skip
        if switched:
            await service.excluded_then_targeted_said(d.db, team_id, enrollment)

    announced: bool | None  # None: another click is announcing it
    try:
        announced = await post_once(
            d.db, team_id, f"announced:{enrollment}", post,
            stale_after=posting_stale(d.settings.job_lease_seconds))  # fmt: skip
    except PostUnderWay:  # another click's announcement is on its way, and says the switch
        # too: it reads it once its post is under way, after this click's targeting noted it
        # (unless the segment was excluded between the two targetings: the next click says it)
        announced = None
    except UNSENT as exc:  # the enrollment is under way all the same: say that
        _refused(enrollment, exc)
    if not announced:
        await client.chat_postEphemeral(
            channel=batch.channel_id or "", user=user_id, thread_ts=batch.message_ts,
            text="That campaign is already enrolling this segment: its report in this thread "
                 "follows it.")  # fmt: skip
    if announced is False:  # posted before: a switch noted since then is still to be said
        await _switch_said_late(d, client, team_id, enrollment, campaign, batch, user_id)


async def _switch_said_late(d: Deps, client: AsyncWebClient, team_id: str, enrollment: int,
                            campaign: Campaign, batch: ImportBatch,
                            user_id: str) -> None:  # fmt: skip
    """A switch from excluded that the enrollment's announcement didn't say, said on its own:
    the announcement was posted before it (the segment excluded, then targeted again, while
    the enrollment was still waiting to run). Once, however many clicks get here."""
    if not await service.excluded_then_targeted_said(d.db, team_id, enrollment):
        return
    try:
        await client.chat_postMessage(
            channel=batch.channel_id or "", thread_ts=batch.message_ts,
            text=f"<@{user_id}> targeted *{esc(campaign.name)}* with this segment again."
                 f"{_was_excluded(campaign)}")  # fmt: skip
    except UNSENT as exc:  # not said after all: the next click on it says it
        await service.excluded_then_targeted_unsaid(d.db, team_id, enrollment)
        _refused(enrollment, exc)


# A message in the thread failing after the change it tells of was made: Slack refusing it,
# or not reached (slack_sdk raises aiohttp's and asyncio's own errors then). The change stands,
# and the person is told that, not "this may not have gone through" (trying again was refused).
UNSENT = (SlackApiError, aiohttp.ClientError, TimeoutError)


def _unsent_words(exc: BaseException) -> str:
    """Why a message in the thread wasn't posted, in words (mrkdwn)."""
    if isinstance(exc, SlackApiError):
        return (f"Slack refused my message in the thread "
                f"({esc(slack_error(exc) or 'no reason given')})")  # fmt: skip
    return "my message in the thread didn't reach Slack"


def _refused(enrollment: int, exc: BaseException) -> NoReturn:
    """A message in the thread wasn't posted: the enrollment is under way all the same."""
    log.warning("targeting of enrollment %s not announced: %s", enrollment,
                slack_error(exc) if isinstance(exc, SlackApiError) else repr(exc))
    raise Refusal(f"Enrolling has started, but {_unsent_words(exc)}.") from exc


async def _enrollment(d: Deps, client: AsyncWebClient, body: dict[str, Any],
                      verb: str) -> tuple[str, str, Enrollment]:  # fmt: skip
    """(team, user, enrollment) of a click on an enrollment report's button, by a lead."""
    team_id, user_id = team_of(body), body["user"]["id"]
    await _lead(d, client, team_id, user_id, verb)
    enrollment = await service.get_enrollment(
        d.db, team_id, id_in(body["actions"][0].get("value"), "an enrollment"))  # fmt: skip
    return team_id, user_id, enrollment


async def _cancel_invites(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id, enrollment = await _enrollment(d, client, body, "cancel invites")
    done = await cancel_held(d.db, team_id, enrollment.id or 0, user_id)
    if not done.cancelled:
        raise Refusal(_not_cancelled(done))
    await _redrawn_and_said(d, client, team_id, enrollment,
                            f"<@{user_id}> cancelled {plural(done.cancelled, 'invite')}; the "
                            "advocates stay enrolled.")  # fmt: skip


TOO_LATE = "Too late: these invites have already left (or were cancelled)."


def _not_cancelled(done: HeldCancelled) -> str:
    """Why *Cancel invites* found nothing held, as its transaction saw the invites."""
    if done.gone:
        return TOO_LATE
    if done.cancelled_before:  # a double click's second, or another lead's
        return "These invites were cancelled already."
    if done.invite_email_off:  # those wait for *Email them*, whatever kept the others
        return ("Nothing to cancel: the campaign's invite email was turned off, so these "
                "invites weren't sent. They go only if a lead turns it on and presses *Email "
                "them*.")  # fmt: skip
    if done.not_emailed:
        return ("Nothing to cancel: none of these invites will be sent (the report says why: "
                "their people unsubscribed, say).")  # fmt: skip
    return TOO_LATE


async def _redrawn_and_said(d: Deps, client: AsyncWebClient, team_id: str,
                            enrollment: Enrollment, text: str) -> None:  # fmt: skip
    """The enrollment's report drawn again, and what a lead did with it said in its thread;
    if that can't be said there, it is said to the lead: it was done all the same."""
    await d.notifier.enrollment_changed(team_id, enrollment.id or 0)
    try:
        await client.chat_postMessage(channel=enrollment.channel_id or "",
                                      thread_ts=enrollment.thread_ts, text=text)  # fmt: skip
    except UNSENT as exc:
        log.warning("enrollment %s of %s changed, not said in its thread: %s", enrollment.id,
                    team_id, slack_error(exc) if isinstance(exc, SlackApiError) else repr(exc))
        raise Refusal(f"Done: {text} But {_unsent_words(exc)}, so only you see this.") from exc


async def _resend(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id, enrollment = await _enrollment(d, client, body, "resend invites")
    done = await resend_uncertain(d.db, team_id, enrollment.id or 0, actor=user_id)
    if done.changed:  # some resent, or their contacts found unsubscribed
        await d.notifier.enrollment_changed(team_id, enrollment.id or 0)
    if not done.count:  # as the campaign list says it
        campaign = await service.get_campaign(d.db, team_id, enrollment.campaign_id)
        raise Refusal(done.words(esc(campaign.name), retry="*Retry sending*",
                                 turn_on="Turn it on with *Edit* in `/referral campaign`"))


async def _email_unsent(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id, enrollment = await _enrollment(d, client, body, "email advocates")
    done = await email_unsent(d.db, team_id, enrollment.campaign_id, enrollment.id or 0,
                              actor=user_id)
    if not done.changed:
        if not done.invite_email:
            raise Refusal("Nobody was emailed: the campaign's invite email is off. Turn it on "
                          "with *Edit* in `/referral campaign` first.")  # fmt: skip
        raise Refusal("Nobody is left to email: their invites are already on their way.")
    held = f"{plural(done.count, 'invite')} the invite email being off had held back"
    waits = queued_until_live("It" if done.count == 1 else "They", done.count == 1,
                              "the campaign", "*Go live* in `/referral campaign`")  # fmt: skip
    said = (f"<@{user_id}> is sending {held}.{done.not_again()}" if done.count and done.live else
            f"<@{user_id}> chose to send {held}. {waits}{done.not_again()}" if done.count else
            f"<@{user_id}> chose to email the advocates the invite email being off had held "
            f"back: nobody was emailed, as the campaign had emailed "
            f"{emailed_all(done.emailed_before)} before." if not done.unsubscribed else
            f"<@{user_id}> chose to email the advocates the invite email being off had held "
            f"back. {done.none_sent('the campaign')}")  # fmt: skip
    await _redrawn_and_said(d, client, team_id, enrollment, said)


async def _retry_sending(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, _, enrollment = await _enrollment(d, client, body, "retry sending invites")
    if not await retry_sending(d.db, team_id, enrollment.id or 0):
        raise Refusal("Sending has already been restarted.")
    await d.notifier.enrollment_changed(team_id, enrollment.id or 0)


async def on_click(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    work = {Action.TARGET: _target, Action.TARGET_GO_LIVE: _go_live,
            Action.CANCEL_INVITES: _cancel_invites, Action.RESEND_UNCERTAIN: _resend,
            Action.RETRY_SENDING: _retry_sending,
            Action.EMAIL_UNSENT: _email_unsent}[Action(body["actions"][0]["action_id"])]
    d.later.run(work(d, client, body), client, body)


async def _noop(ack: Any) -> None:
    await ack()  # choosing a campaign does nothing until Target a campaign


async def suggest_campaigns(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                            context: dict[str, Any]) -> None:  # fmt: skip
    """The target offer's menu, read when it is opened: today's campaigns of this workspace.
    The offer is in the import's thread, in its channel: a guest in it, or a member of
    another organisation it is shared with, gets none (as the upload offer's segments)."""
    d = deps(context)
    if await outsider_refusal(client, team_of(body), body["user"]["id"]) is not None:
        await ack(options=[])
        return
    campaigns = await service.campaigns_by_name(d.db, team_of(body))
    await ack(options=[o.to_dict() for o in campaign_options(campaigns,
                                                             str(body.get("value") or ""))])


def register(app: Routes) -> None:
    for action in (Action.TARGET, Action.TARGET_GO_LIVE, Action.CANCEL_INVITES,
                   Action.RESEND_UNCERTAIN, Action.RETRY_SENDING,
                   Action.EMAIL_UNSENT):  # fmt: skip
        app.action(action)(on_click)
    app.action(Action.TARGET_CHOICE)(_noop)
    app.options(Action.TARGET_CHOICE)(suggest_campaigns)
