"""What every listener needs: the database, settings and notifier (put in by middleware)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.request.internals import extract_team_id
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.home_refresh import queue_home_refresh
from bot.ids import digits
from bot.imports import review
from bot.leads import Role, check_listed, drop_demoted, lead_ids, listing, unchecked, vouched
from bot.settings import Settings
from handlers.campaign_messages import notice_modal
from handlers.notify import SlackNotifier

if TYPE_CHECKING:
    from bot.jobs.worker import Worker
    from handlers.later import Later
from models import Database, ImportBatch
from models.clock import utcnow

log = logging.getLogger(__name__)

OUT_OF_DATE = "This form is out of date: close it and open it again."


class Refusal(Exception):
    """Tell the person who acted why nothing happened (the global error handler shows it)."""


def id_in(value: object, what: str) -> int:
    """The id a button carries; anything else (an old or forged button) is refused in words."""
    found = digits(value)
    if found is None:
        raise Refusal(f"That button doesn't name {what}: it may come from an old message.")
    return found


def team_of(body: dict[str, Any]) -> str:
    """The workspace a request is for: the one that installed the bot, as bolt decides it
    for `context["team_id"]` (and for the token it authorizes with).

    `team` isn't always it: in a channel shared with another organisation (Slack Connect),
    a modal submitted by one of its members carries their organisation as `team` and the
    installing workspace as `view.app_installed_team_id`. Read from `team`, the submission
    ran against a workspace that isn't here ("That import doesn't exist") and made a row
    for it, after which the CLI couldn't tell which workspace was "the only one"."""
    team_id = extract_team_id(body)
    if not team_id:
        raise Refusal("Slack didn't say which workspace that came from: nothing was done.")
    return str(team_id)


def event_team(body: dict[str, Any], context: dict[str, Any]) -> str:
    """The workspace an event is for, as `team_of` decides it for a request: bolt's
    `context["team_id"]` (the installing workspace: Slack Connect's `authorizations` before
    the envelope's `team_id`), else the envelope's (an org-wide install's event names no
    team in `authorizations`); "" when Slack named none. An event has nobody to tell, so its
    listener does nothing where `team_of` raises a Refusal."""
    return str(context.get("team_id") or body.get("team_id") or "")


def list_meta(body: dict[str, Any], opened_by: str) -> dict[str, Any]:
    """The private_metadata of the list modal clicked in: a JSON object naming an import.
    Anything else (a click in another view, forged metadata) is refused, telling the person
    to open the list again with its button (`opened_by`)."""
    try:
        meta = json.loads((body.get("view") or {}).get("private_metadata") or "")
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or digits(meta.get("batch")) is None:
        raise Refusal(f"That list is out of date: close it and open {opened_by} again.")
    return meta


def _ids_read(text: object, required: Sequence[str],
              optional: Sequence[str]) -> dict[str, Any] | None:  # fmt: skip
    """The form's metadata with the ids named turned to int (an optional one absent: None);
    None when it isn't a JSON object or an id isn't one of ours."""
    try:
        meta = json.loads(text or "{}") if isinstance(text, str | None) else None
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    for key in (*required, *optional):
        if meta.get(key) is None and key in optional:
            meta[key] = None
            continue
        meta[key] = digits(meta.get(key))
        if meta[key] is None:
            return None
    return meta


async def form_meta(ack: Any, view: dict[str, Any], title: str, *, required: Sequence[str] = (),
                    optional: Sequence[str] = ()) -> dict[str, Any] | None:  # fmt: skip
    """The private_metadata a form's submit handler wrote when it opened the form, its ids
    (`required`, or `optional` and absent) as int. Anything else (a form opened by an older
    release with another shape, submitted after a deploy; forged metadata) is answered in
    the form itself, telling the person to open it again, and None returned: raising here
    closed the modal, losing what was typed, with "Something went wrong" and an ERROR."""
    meta = _ids_read(view.get("private_metadata"), required, optional)
    if meta is None:
        log.info("a %s form came back with metadata it doesn't write: told to open it again",
                 view.get("callback_id"))  # fmt: skip
        await ack(response_action="update", view=notice_modal(title, OUT_OF_DATE).to_dict())
    return meta


@dataclass(frozen=True)
class Deps:
    db: Database
    settings: Settings
    notifier: SlackNotifier
    later: Later
    # runs here, at once, the jobs this process queues and takes itself (upload offers)
    jobs_here: Worker
    # team id -> time.monotonic() Home last had Mailchimp asked about it (handlers/home.py)
    mailchimp_looked: dict[str, float] = field(default_factory=dict)


def deps(context: dict[str, Any]) -> Deps:
    return context["deps"]  # type: ignore[no-any-return]


async def is_lead(d: Deps, client: AsyncWebClient, team_id: str, user_id: str) -> bool:
    """Team leads are the workspace's list (`/referral leads`, seeded from TEAM_LEADS); admins
    and owners of *this* workspace count too.

    In a shared channel a guest from another workspace may be an admin there: `users.info`
    says which workspace the user belongs to, and only this one's flags count. TEAM_LEADS
    seeds every workspace's list alike, so a seeded lead must be of this workspace too (as
    `/referral leads` checks whom it adds): else one workspace's leads approved another's
    imports.
    """
    return await lead_in(d.db, d.settings.team_leads, client, team_id, user_id)


async def lead_in(db: Database, team_leads: Sequence[str], client: AsyncWebClient,
                  team_id: str, user_id: str) -> bool:  # fmt: skip
    """`is_lead` with the database and TEAM_LEADS given, for what has no `Deps` (Home's
    republishing, from the notifier or a worker)."""
    return await role_in(db, team_leads, client, team_id, user_id) is Role.LEAD


async def role_in(db: Database, team_leads: Sequence[str], client: AsyncWebClient,
                  team_id: str, user_id: str) -> Role:  # fmt: skip
    """Lead (as `is_lead` decides), member, or outsider (of another organisation, or a guest):
    one `users.info` at most (none for a lead listed by hand, whom `/referral leads` checked,
    refusing guests, but once a day, `_asked_again`; one, once, for a lead TEAM_LEADS or the
    shell listed, `check_listed`)."""
    found = await listing(db, team_id, user_id, team_leads)
    by = None if found is None else found.added_by
    if found is not None and not unchecked(by):
        if found.due(utcnow()):
            return await _asked_again(db, client, team_id, user_id)
        return Role.LEAD
    info = await client.users_info(user=user_id)
    user = info.get("user") or {}
    if unchecked(by):
        await check_listed(db, team_id, user_id, member=is_member(user, team_id))
    return role_from(user, team_id, listed=unchecked(by))


# How long a listed lead's click waits for Slack's word on them (once a day): a slow or failing
# Slack leaves them a lead until the next click asks, rather than stopping every approval.
RECHECK_SECONDS = 1.5
DEACTIVATED = "deactivated in Slack"  # `demoted`'s word for an account that can't sign in


async def _asked_again(db: Database, client: AsyncWebClient, team_id: str,
                       user_id: str) -> Role:  # fmt: skip
    """A listed lead's role once Slack's last word on them is RECHECK_AFTER old (bot.leads):
    still one of this workspace's members, a lead for RECHECK_AFTER more; deactivated, made a
    guest or moved out, off the list as `user_change` would have taken them (audited as
    Slack's: that event was sent while serve was down, or lost), and whatever Slack makes
    of them now. Slack failing or slow: a lead still (logged), asked again at the next click."""
    try:
        info = await asyncio.wait_for(client.users_info(user=user_id), RECHECK_SECONDS)
    except (SlackApiError, aiohttp.ClientError, OSError) as exc:  # TimeoutError: an OSError
        log.warning("lead %s of %s not asked about again (Slack didn't answer: %r): still a "
                    "lead, asked at their next click", user_id, team_id, exc)  # fmt: skip
        return Role.LEAD
    user = info.get("user") or {}
    why = demoted(user, team_id)
    if not why:
        await vouched(db, team_id, user_id)
        return Role.LEAD
    if await drop_demoted(db, team_id, user_id, why):
        log.info("%s of %s taken off the team leads, %s (asked at a click: no user_change "
                 "said it)", user_id, team_id, why)  # fmt: skip
        # the open Homes offered them a lead's buttons (theirs, the workspace's too): published
        # again by serve's worker, as user_change's refresh does at once
        await queue_home_refresh(db, team_id)
    return role_from(user, team_id, listed=False)


def demoted(user: dict[str, Any], team_id: str) -> str:
    """Why `users.info`'s or `user_change`'s `user` may not be a lead of `team_id` (as
    `why_not` refuses adding them: "deactivated in Slack", "made a guest in Slack"...), or ""
    when they may. A field Slack left out counts for nothing: an event without `team_id`
    moves nobody."""
    if user.get("team_id") and user.get("team_id") != team_id:
        return "moved to another workspace"
    if user.get("deleted"):
        return DEACTIVATED
    if is_guest(user):
        return "made a guest in Slack"
    return ""


def is_member(user: dict[str, Any], team_id: str) -> bool:
    """Is `users.info`'s `user` a member of `team_id`: of it, and not one of its guests?

    A guest (`is_restricted`: a multi-channel guest; `is_ultra_restricted`: a single-channel
    one) has this workspace's `team_id`, but is a contractor, an agency or a customer the
    merchant let into a channel: checked by `team_id` alone, they searched and exported the
    merchant's customers. They are outsiders as a shared channel's people of another
    organisation are, refused in the same words ("Only members of this workspace can …",
    Slack's own word for who isn't a guest)."""
    return user.get("team_id") == team_id and not is_guest(user)


def is_guest(user: dict[str, Any]) -> bool:
    """Is `users.info`'s `user` a guest (multi-channel: `is_restricted`; single-channel:
    `is_ultra_restricted`)?"""
    return bool(user.get("is_restricted") or user.get("is_ultra_restricted"))


def role_from(user: dict[str, Any], team_id: str, *, listed: bool) -> Role:
    """What `users.info`'s `user` makes of them in `team_id`: an outsider when not a member
    (`is_member`: of another organisation, or a guest; whatever lists them or flags them
    admin), a lead when `listed` (a lead Slack had to be asked about: seeded from TEAM_LEADS)
    or one of its admins or owners, else a member."""
    if not is_member(user, team_id):
        return Role.OUTSIDER
    if listed or user.get("is_admin") or user.get("is_owner"):
        return Role.LEAD
    return Role.MEMBER


OUTSIDER = "Only members of this workspace can see or change its imports and segments."


async def require_member(client: AsyncWebClient, team_id: str, user_id: str, *,
                         what: str = "") -> None:  # fmt: skip
    """Refuse anyone who isn't a member (`is_member`): a member of another organisation (one a
    channel is shared with), or a guest of this one. The review message's buttons and the
    upload offer are in a channel, and showed them this workspace's contacts and segments;
    slash commands typed there answered them too. Tested as `is_lead` tests membership; a
    failing `users.info` raises, as there: nothing is shown. `what`: "see its campaigns"
    says "Only members of this workspace can see its campaigns." (else OUTSIDER)."""
    info = await client.users_info(user=user_id)
    if not is_member(info.get("user") or {}, team_id):
        raise Refusal(_outsider_text(what))


def _outsider_text(what: str) -> str:
    return f"Only members of this workspace can {what}." if what else OUTSIDER


def told_outsider(team_id: str, user_id: str, what: str = "") -> str:
    """The refusal someone who isn't a member is told (see `require_member` for `what`),
    logged: for a caller that knows the role already (`role_in`)."""
    said = _outsider_text(what)
    log.info("%s, not a member (of another organisation, or a guest), refused in %s: %s",
             user_id, team_id, said)  # fmt: skip
    return said


async def outsider_refusal(client: AsyncWebClient, team_id: str, user_id: str, *,
                           what: str = "") -> str | None:  # fmt: skip
    """`require_member`'s refusal (logged), or None for a member: for a surface that says it
    its own way (in a list's place, a modal, a menu with no options)."""
    try:
        await require_member(client, team_id, user_id, what=what)
    except Refusal:
        return told_outsider(team_id, user_id, what)
    return None


async def lead_refusal(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                       verb: str) -> Refusal:  # fmt: skip
    return await not_a_lead(d, client, team_id, user_id, f"{verb} imports")


async def require_lead(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                       what: str) -> None:  # fmt: skip
    """Refuse ("Only team leads can <what>", naming whom to ask) anyone who isn't a lead."""
    if not await is_lead(d, client, team_id, user_id):
        raise await not_a_lead(d, client, team_id, user_id, what)


async def not_a_lead(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                     what: str) -> Refusal:  # fmt: skip
    """Why `user_id`, who isn't a lead, can't <what>: leads_only for a member; anyone else (of
    another organisation: a shared channel's, or a forged click; a guest) is refused as not a
    member, and never told who this workspace's leads are ("Ask <@U…>", which `/referral
    leads` refuses them)."""
    if (outsider := await outsider_refusal(client, team_id, user_id, what=what)) is not None:
        return Refusal(outsider)
    return await leads_only(d, team_id, what)


async def leads_only(d: Deps, team_id: str, what: str) -> Refusal:
    """"Only team leads can <what>", naming whom to ask."""
    leads = ", ".join(f"<@{u}>" for u in (await lead_ids(d.db, team_id, d.settings.team_leads))[:5])
    ask = f" Ask {leads}." if leads else " Ask a workspace admin."
    return Refusal(f"Only team leads can {what}.{ask}")


async def may_change(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                     batch_id: int) -> ImportBatch:  # fmt: skip
    """The batch, if this user may change its contents: the requester or a team lead."""
    batch = await review.batch_of(d.db, team_id, batch_id)
    requester = batch.requested_by
    if user_id != requester and not await is_lead(d, client, team_id, user_id):
        raise Refusal(f"Only <@{requester}>, who asked for this import, or a team lead can "
                      "change it.")  # fmt: skip
    return batch
