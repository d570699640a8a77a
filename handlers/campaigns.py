"""`/referral campaign`: the campaign list, the create/edit modal, Go live and Pause.

Any member of the workspace may see the list (a member of another organisation, in a
channel shared with it, is told it isn't for them); only team leads change campaigns, and
every change re-reads the campaign by id *and* workspace (the service does), so a stale or
forged button changes nothing. The list is ephemeral: after a change it is replaced through
the click's `response_url` (a modal carries that URL in its private_metadata), with what
happened on top.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.campaigns.invites import (
    email_unsent,
    queued_until_live,
    resend_campaign_uncertain,
    retry_campaign_sending,
    waiting_for_a_sender,
)
from bot.campaigns.service import (
    CampaignError,
    change_state,
    check_fields,
    create_campaign,
    find_campaign,
    get_campaign,
    list_campaigns,
    pause,
    sender_warning,
    update_campaign,
)
from bot.ids import digits
from bot.workspaces import ensure_workspace
from handlers.campaign_messages import (
    INVITE_ON,
    CampaignForm,
    campaign_list,
    campaign_modal,
    notice_modal,
    page_of,
    paused_note,
    saved_note,
    went_live_note,
    with_sender_warning,
)
from handlers.context import (
    Deps,
    Refusal,
    deps,
    form_meta,
    id_in,
    is_lead,
    not_a_lead,
    outsider_refusal,
    require_lead,
    team_of,
)
from handlers.form_once import once_per_view, submitted_before
from handlers.home_publish import refresh_for
from handlers.ids import Action, BlockId, Callback
from handlers.messages import esc, metadata, plural
from handlers.placeholder import open_modal
from handlers.respond import (
    Click,
    ResponseUrlFailed,
    dm,
    explained,
    fill_modal,
    for_people,
    redraw_or_dm,
    respond,
)
from handlers.routes import Routes
from models import Campaign, CampaignState

log = logging.getLogger(__name__)
FIELD_BLOCKS = {
    "name": BlockId.CAMPAIGN_NAME,
    "store_url": BlockId.CAMPAIGN_STORE_URL,
    "sender": BlockId.CAMPAIGN_SENDER,
    "offer": BlockId.CAMPAIGN_OFFER,
    "invite_delay_days": BlockId.CAMPAIGN_DELAY,
}
LOADING = "Loading…"


def _campaign_id(value: str) -> int:
    return id_in(value, "a campaign")


async def _respond(client: AsyncWebClient, url: str, text: str, *, replace: bool,
                   blocks: list[Any] | None = None) -> None:  # fmt: skip
    """Post to a response_url: replace the ephemeral list, or add an ephemeral note."""
    await respond(client, url, text, replace=replace, blocks=blocks)


async def _waiting(d: Deps, team_id: str) -> dict[int, int]:
    """Due invites no running worker can send, by campaign id, as the shell's `campaign list`
    has them (invites.waiting_for_a_sender): the list says so under each campaign."""
    return await waiting_for_a_sender(d.db, team_id, d.settings.job_lease_seconds)


async def _show_list(d: Deps, client: AsyncWebClient, team_id: str, url: str, *,
                     note: str = "", replace: bool, offset: int = 0,
                     campaign_id: int | None = None, told: str = "") -> None:  # fmt: skip
    """A page of the list: from `offset`, or the one showing `campaign_id` (just changed).
    `told`: the user to tell `note` by DM if the list can't be redrawn (redraw_or_dm)."""
    summaries = await list_campaigns(d.db, team_id)
    if campaign_id is not None:
        offset = page_of(summaries, campaign_id)
    text, blocks = campaign_list(summaries, note=note, offset=offset,
                                 waiting=await _waiting(d, team_id))  # fmt: skip
    if told and note:
        await redraw_or_dm(client, url, text, blocks, note=note, user_id=told,
                           command=LIST_COMMAND)
    else:
        await _respond(client, url, text, replace=replace, blocks=blocks)


# ---- the list -------------------------------------------------------------------------------


OUTSIDER = "see its campaigns"
LIST_COMMAND = "/referral campaign"  # "Only members of this workspace can …"


async def _list_for_members(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                            url: str, *, replace: bool, offset: int = 0) -> None:  # fmt: skip
    """The list, for a member of the workspace: in a channel shared with another
    organisation, its members were shown every campaign (names, stores, offers, counts)."""
    if (refused := await outsider_refusal(client, team_id, user_id, what=OUTSIDER)) is not None:
        await _respond(client, url, refused, replace=replace)
        return
    await _show_list(d, client, team_id, url, replace=replace, offset=offset)


async def list_command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                       context: dict[str, Any]) -> None:  # fmt: skip
    """`/referral campaign`: ack at once, then answer with the list through response_url."""
    await ack()
    d = deps(context)
    d.later.run(_list_for_members(d, client, command["team_id"], command["user_id"],
                                  command["response_url"], replace=False),
                client, command)  # fmt: skip


async def on_more(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """*More*: the next page of the list, in place of this one."""
    await ack()
    d, click = deps(context), Click.of(body)
    d.later.run(_list_for_members(d, client, click.team_id, click.user_id, click.response_url,
                                  replace=True, offset=digits(click.value) or 0),
                client, body)  # fmt: skip


# ---- Go live / Pause ------------------------------------------------------------------------


def _sender_warning(d: Deps, campaign: Campaign) -> str:
    """service.sender_warning with the way to set a sender in Slack ("": nothing to warn)."""
    return sender_warning(campaign, d.settings.public_base, "fill in *Sender* with *Edit*.")


async def _go_live(d: Deps, client: AsyncWebClient, click: Click) -> None:
    await require_lead(d, client, click.team_id, click.user_id, "put campaigns live")
    campaign_id = _campaign_id(click.value)
    done = await change_state(d.db, click.team_id, campaign_id, CampaignState.LIVE,
                              requested_by=click.user_id)  # fmt: skip
    await refresh_for(d, client, click.team_id)
    summaries = await list_campaigns(d.db, click.team_id)
    mine = next((s for s in summaries if s.campaign.id == campaign_id), None)
    if mine is None:
        raise CampaignError("That campaign doesn't exist in this workspace.")
    # going live enrolls nobody when the campaign was live already (an enrollment still
    # unfinished is returned again) or has no targets
    note = went_live_note(mine.campaign.name, len(mine.targets),
                          already_live=done.enrollment is None)  # fmt: skip
    if done.went_live:  # put live by this click (as its transaction found the campaign, not
        # guessed from the list after): what its invites will come from, as a save says it
        # (the default sender was said only on saving, often long before); not again on every
        # Go live of a campaign live already
        note = with_sender_warning(note, _sender_warning(d, mine.campaign))
    text, blocks = campaign_list(summaries, note=note, offset=page_of(summaries, campaign_id),
                                 waiting=await _waiting(d, click.team_id))  # fmt: skip
    await redraw_or_dm(client, click.response_url, text, blocks, note=note,
                       user_id=click.user_id, command=LIST_COMMAND)


async def _pause(d: Deps, client: AsyncWebClient, click: Click) -> None:
    await require_lead(d, client, click.team_id, click.user_id, "pause campaigns")
    campaign_id = _campaign_id(click.value)
    # a draft is refused by the service (CampaignError, told escaped), whoever asks; the
    # state before is the one the pause found, not one read before it
    before = await pause(d.db, click.team_id, campaign_id, requested_by=click.user_id)
    campaign = await get_campaign(d.db, click.team_id, campaign_id)
    await refresh_for(d, client, click.team_id)
    await _show_list(d, client, click.team_id, click.response_url, replace=True,
                     note=paused_note(campaign.name, before), campaign_id=campaign_id,
                     told=click.user_id)  # fmt: skip


async def _retry_sending(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """The list's *Retry sending*: enrollments started without a thread (Go live here, the
    command line) have no report to offer it, so the list does."""
    await require_lead(d, client, click.team_id, click.user_id, "retry sending invites")
    campaign = await get_campaign(d.db, click.team_id, _campaign_id(click.value))
    retried = await retry_campaign_sending(d.db, click.team_id, campaign.id or 0)
    for enrollment_id in retried.enrollments:  # a report in a thread says so too
        await d.notifier.enrollment_changed(click.team_id, enrollment_id)
    note = (f"Sending the invites of {esc(campaign.name)} was already restarted."
            if not retried.enrollments else f"Sending the invites of {esc(campaign.name)} again."
            if retried.live else
            queued_until_live(f"The invites of {esc(campaign.name)}", False, esc(campaign.name),
                              "*Go live*"))  # fmt: skip
    await _show_list(d, client, click.team_id, click.response_url, replace=True, note=note,
                     campaign_id=campaign.id, told=click.user_id)  # fmt: skip


async def _email_unsent(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """The list's *Email them*: enrollments started without a thread (Go live here, the
    command line) have no report to offer it, so the list does, for all the campaign's."""
    await require_lead(d, client, click.team_id, click.user_id, "email advocates")
    campaign = await get_campaign(d.db, click.team_id, _campaign_id(click.value))
    done = await email_unsent(d.db, click.team_id, campaign.id or 0, actor=click.user_id)
    for enrollment_id in done.changed:  # a report in a thread says so too
        await d.notifier.enrollment_changed(click.team_id, enrollment_id)
    sent = (f"Sending {plural(done.count, 'invite')} of {esc(campaign.name)}." if done.live else
            queued_until_live(f"{plural(done.count, 'invite')} of {esc(campaign.name)}",
                              done.count == 1, esc(campaign.name), "*Go live*"))  # fmt: skip
    note = (f"{sent}{done.not_again()}"
            if done.count else done.none_sent(esc(campaign.name)) or
            f"No invite of {esc(campaign.name)} is left unsent by the invite email being off"
            + ("." if done.invite_email else ", which is off: turn it on with *Edit* "
               "first."))  # fmt: skip
    await _show_list(d, client, click.team_id, click.response_url, replace=True, note=note,
                     campaign_id=campaign.id, told=click.user_id)  # fmt: skip


async def _resend_uncertain(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """The list's *Resend uncertain*: enrollments started without a thread (Go live here,
    the command line) have no report to offer it, so their invites that may not have
    arrived had no way on."""
    await require_lead(d, client, click.team_id, click.user_id, "resend invites")
    campaign = await get_campaign(d.db, click.team_id, _campaign_id(click.value))
    done = await resend_campaign_uncertain(d.db, click.team_id, campaign.id or 0,
                                           actor=click.user_id)
    for enrollment_id in done.changed:  # a report in a thread says so too
        await d.notifier.enrollment_changed(click.team_id, enrollment_id)
    note = done.words(esc(campaign.name), retry="*Retry sending*",
                      turn_on="Turn it on with *Edit*")  # fmt: skip
    await _show_list(d, client, click.team_id, click.response_url, replace=True, note=note,
                     campaign_id=campaign.id, told=click.user_id)  # fmt: skip


# The list's buttons about a campaign's invites: what each does, and its name in a log line.
_SENDING = {Action.CAMPAIGN_RETRY_SENDING: (_retry_sending, "retry sending"),
            Action.CAMPAIGN_EMAIL_UNSENT: (_email_unsent, "email advocates"),
            Action.CAMPAIGN_RESEND_UNCERTAIN: (_resend_uncertain, "resend invites")}  # fmt: skip


async def on_sending(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                     context: dict[str, Any]) -> None:  # fmt: skip
    """Retry sending, Email them, Resend uncertain: ack at once; the work runs after the
    response."""
    await ack()
    d, click = deps(context), Click.of(body)
    work, what = _SENDING[Action(body["actions"][0]["action_id"])]
    d.later.run(explained(work(d, client, click), client, click.response_url,
                          refused=(CampaignError,), what=what), client, body)


async def on_state(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    """Go live or Pause: ack at once; the change runs after the response."""
    await ack()
    d, click = deps(context), Click.of(body)
    change = _go_live if body["actions"][0]["action_id"] == Action.CAMPAIGN_LIVE else _pause
    d.later.run(explained(change(d, client, click), client, click.response_url,
                          refused=(CampaignError,), what="campaign change"), client, body)


# ---- the modal: open ------------------------------------------------------------------------


async def _open_new(d: Deps, client: AsyncWebClient, click: Click, trigger_id: str) -> None:
    """The form needs no data, so it opens at once; a non-lead then sees why they can't."""
    opened = await open_modal(client, trigger_id, campaign_modal(
        None, private_metadata=metadata(url=click.response_url)))  # fmt: skip
    if not await is_lead(d, client, click.team_id, click.user_id):
        text = str(await not_a_lead(d, client, click.team_id, click.user_id,
                                     "create campaigns"))
        await fill_modal(client, opened, notice_modal("New campaign", text))


async def _open_edit(d: Deps, client: AsyncWebClient, click: Click, trigger_id: str) -> None:
    """Open a placeholder first (trigger ids live 3 s), then fill it from the database."""
    opened = await open_modal(client, trigger_id, notice_modal("Edit campaign", LOADING))
    try:
        await require_lead(d, client, click.team_id, click.user_id, "edit campaigns")
        campaign = await get_campaign(d.db, click.team_id, _campaign_id(click.value))
        modal = campaign_modal(CampaignForm.of(campaign), private_metadata=metadata(
            campaign=campaign.id, url=click.response_url,
            opened=campaign.updated_at.isoformat()))  # saved since: refused (update_campaign)
    except (Refusal, CampaignError) as exc:
        log.info("campaign edit refused: %s", exc)
        modal = notice_modal("Edit campaign", for_people(exc))
    await fill_modal(client, opened, modal)


async def on_open(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d, click = deps(context), Click.of(body)
    opener = _open_new if body["actions"][0]["action_id"] == Action.CAMPAIGN_CREATE else _open_edit
    d.later.run(opener(d, client, click, body["trigger_id"]), client, body, prompt=True)


# ---- the modal: submit ----------------------------------------------------------------------


def read_form(values: dict[str, dict[str, Any]]) -> CampaignForm:
    def state(block: BlockId, action: Action) -> dict[str, Any]:
        return (values.get(block) or {}).get(action) or {}

    def text(block: BlockId, action: Action) -> str:
        return str(state(block, action).get("value") or "").strip()

    chosen = state(BlockId.CAMPAIGN_INVITE, Action.CAMPAIGN_INVITE).get("selected_options") or []
    delay = text(BlockId.CAMPAIGN_DELAY, Action.CAMPAIGN_DELAY) or "0"
    return CampaignForm(
        name=text(BlockId.CAMPAIGN_NAME, Action.CAMPAIGN_NAME),
        store_url=text(BlockId.CAMPAIGN_STORE_URL, Action.CAMPAIGN_STORE_URL),
        sender=text(BlockId.CAMPAIGN_SENDER, Action.CAMPAIGN_SENDER),
        offer=text(BlockId.CAMPAIGN_OFFER, Action.CAMPAIGN_OFFER),
        invite_email=any(o.get("value") == INVITE_ON for o in chosen),
        invite_delay_days=digits(delay),
    )  # fmt: skip


async def validate(d: Deps, team_id: str, form: CampaignForm,
                   campaign_id: int | None) -> dict[str, str]:  # fmt: skip
    """Inline errors keyed by input block id; empty when the form can be saved."""
    problems = check_fields(name=form.name, store_url=form.store_url, sender=form.sender,
                            offer=form.offer, invite_delay_days=form.invite_delay_days)  # fmt: skip
    errors: dict[str, str] = {FIELD_BLOCKS[k]: v for k, v in problems.items()}
    if form.invite_delay_days is None:
        errors[BlockId.CAMPAIGN_DELAY] = "A whole number of days: 0 sends at once."
    if BlockId.CAMPAIGN_NAME not in errors:
        try:
            taken = await find_campaign(d.db, team_id, form.name)
        except CampaignError:
            pass  # no campaign has that name: good
        else:
            if taken.id != campaign_id:
                errors[BlockId.CAMPAIGN_NAME] = f"{taken.name} already exists: choose another name."
    return errors


async def _save(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                campaign_id: int | None, form: CampaignForm, url: str, *,
                opened: datetime | None = None) -> None:  # fmt: skip
    """Create or update, then refresh the list the modal was opened from (or DM the result).

    The modal is closed by now, so a refusal (e.g. the name was taken a moment ago) is told
    in the list's place too.
    """
    fields = {"store_url": form.store_url, "sender": form.sender, "offer": form.offer,
              "invite_email": form.invite_email,
              "invite_delay_days": form.invite_delay_days}  # fmt: skip
    try:
        await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
        if campaign_id is None:
            campaign = await create_campaign(d.db, team_id, form.name, created_by=user_id,
                                             **fields)  # fmt: skip
        else:
            # the reports in threads it changes are redrawn by a job (update_campaign)
            campaign = await update_campaign(d.db, team_id, campaign_id, name=form.name,
                                             opened=opened, actor=user_id,
                                             **fields)  # fmt: skip
        note = with_sender_warning(saved_note(campaign.name, created=campaign_id is None),
                                   _sender_warning(d, campaign))  # fmt: skip
        campaign_id = campaign.id  # the list shows the page it is on
        await refresh_for(d, client, team_id)
    except CampaignError as exc:
        log.info("campaign save refused: %s", exc)
        note = for_people(exc)
    try:
        if not url:
            raise ResponseUrlFailed("the modal carries no response_url")
        await _show_list(d, client, team_id, url, note=note, replace=True,
                         campaign_id=campaign_id)  # fmt: skip
    except ResponseUrlFailed as exc:  # e.g. the modal stayed open past the URL's 30 minutes
        log.info("could not refresh the campaign list (%s); sending a direct message", exc)
        await dm(client, user_id, note)


async def submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient,
                 context: dict[str, Any]) -> None:  # fmt: skip
    """Check who and what before the ack (errors show inline); save after it."""
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    meta = await form_meta(ack, view, "Campaign", optional=("campaign",))
    if meta is None:
        return
    campaign_id: int | None = meta["campaign"]
    try:  # when the edit form was opened: a save made since refuses this one
        opened = datetime.fromisoformat(meta["opened"]) if meta.get("opened") else None
    except (TypeError, ValueError):
        opened = datetime.min.replace(tzinfo=UTC)  # not ours: matches no save, so refused
    verb = "create campaigns" if campaign_id is None else "edit campaigns"
    if not await is_lead(d, client, team_id, user_id):
        why = await not_a_lead(d, client, team_id, user_id, verb)
        refusal = notice_modal(view.get("title", {}).get("text") or "Campaign", str(why))
        await ack(response_action="update", view=refusal.to_dict())
        return
    view_id = str(view.get("id") or "")
    form = read_form(view["state"]["values"])
    errors = await validate(d, team_id, form, campaign_id)
    # asked after the name's check: a save of this view that check saw had taken its key
    if errors and await submitted_before(d, team_id, "campaign-form", view_id):
        await ack()  # Submit pressed again: its own save isn't "already exists"
        return
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    d.later.run(once_per_view(d, team_id, "campaign-form", view_id,
                              _save(d, client, team_id, user_id, campaign_id, form,
                                    str(meta.get("url") or ""), opened=opened)),
                client, body)  # fmt: skip


def register(app: Routes) -> None:
    app.action(Action.CAMPAIGN_CREATE)(on_open)
    app.action(Action.CAMPAIGN_EDIT)(on_open)
    app.action(Action.CAMPAIGN_LIVE)(on_state)
    app.action(Action.CAMPAIGN_PAUSE)(on_state)
    app.action(Action.CAMPAIGN_MORE)(on_more)
    for action in _SENDING:
        app.action(action)(on_sending)
    app.view(Callback.CAMPAIGN)(submit)
