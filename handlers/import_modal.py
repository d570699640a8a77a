"""The import modal: open it, suggest segments, validate the form, queue the sources, post the
review.

The modal opens at once (trigger ids live 3 s) with a "looking up your Mailchimp lists" line;
the account's audiences are then fetched (a Mailchimp call, in a thread) and the modal is
updated with a multi-select of them, or with a line saying how to connect or reconnect
Mailchimp. Slack keeps what was already typed in inputs whose ids don't change. The form
carries only audience ids: on submit the names are read again from the account.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.campaigns.preview import inviting_campaigns, preview_batch
from bot.ids import digits
from bot.imports.addresses import InvalidEmail, normalize_email
from bot.imports.background import FileRejected
from bot.imports.batches import (
    add_source_once,
    confirm_consent,
    create_batch,
    get_batch,
    queued_files,
    stage_contact,
)
from bot.imports.job_kinds import SLACK_FILE_JOB
from bot.imports.locales import normalize_locale
from bot.imports.review import BatchView, cancel, describe_status, load, set_message
from bot.mailchimp.accounts import (
    NotConnected,
    connection,
    refused_from_now_on,
    stamped_credentials,
)
from bot.mailchimp.api import Audience, MailchimpError, ReconnectNeeded, audiences
from bot.mailchimp.jobs import queue_audiences, queued_audiences
from bot.mailchimp.secrets import CredentialsUnreadable, SecretKeyMissing
from bot.segments import withdraw_segment
from bot.words import listed
from bot.workspaces import (
    WorkspaceError,
    clean_segment_name,
    create_segment,
    ensure_workspace,
    find_segment,
    get_segment,
    segment_key,
    segment_sizes,
)
from handlers.campaign_messages import notice_modal
from handlers.context import (
    Deps,
    Refusal,
    Role,
    deps,
    form_meta,
    may_change,
    outsider_refusal,
    require_member,
    role_in,
    team_of,
    told_outsider,
)
from handlers.form_once import once_per_view
from handlers.home_publish import refresh_for
from handlers.ids import Action, BlockId, Callback
from handlers.later import context_of, missing_scope, or_log
from handlers.mailchimp_messages import (
    LISTS_LOADING,
    LISTS_NOT_CONNECTED,
    LISTS_RECONNECT,
    LISTS_UNREADABLE,
    SECRET_KEY_MISSING,
    lists_blocks,
    lists_failed,
)
from handlers.messages import (
    CHANNEL_REFUSALS,
    CONSENT_VALUE,
    esc,
    import_modal,
    new_segment_option,
    not_posted_there,
    review_message,
    segment_options,
)
from handlers.people import NAME_SECONDS, person_name
from handlers.placeholder import open_modal
from handlers.respond import fill_modal
from handlers.routes import Routes
from handlers.slack_errors import slack_error
from handlers.slack_files import check_csv, describe, megabytes, slack_fetcher, upload_limit
from models import BatchStatus, Database, ImportSource, Segment, SegmentKind, SourceKind
from models.contacts import ALL_CUSTOMERS

log = logging.getLogger(__name__)
WHO_UNKNOWN = ("Slack couldn't tell me who you are just now, so nothing was added: submit "
               "the form again in a moment.")  # fmt: skip


@dataclass
class ImportForm:
    segment_id: int | None = None
    segment_unknown: bool = False  # a chosen option whose value isn't one of our ids
    new_segment: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    locale: str = ""
    audience_ids: list[str] = field(default_factory=list)  # Mailchimp lists
    consent: bool = False  # "These people agreed to hear from us" ticked
    # opened from Home: the form asks where to post the review ("": the person's DM)
    asks_channel: bool = False
    review_channel: str = ""


def read_form(values: dict[str, dict[str, Any]]) -> ImportForm:
    def text(block: BlockId, action: Action) -> str:
        return ((values.get(block) or {}).get(action) or {}).get("value") or ""

    selected = ((values.get(BlockId.SEGMENT) or {}).get(Action.SEGMENT) or {}).get(
        "selected_option"
    )
    files = ((values.get(BlockId.FILES) or {}).get(Action.FILES) or {}).get("files") or []
    lists = ((values.get(BlockId.MAILCHIMP_LISTS) or {}).get(Action.MAILCHIMP_LISTS) or {}).get(
        "selected_options"
    ) or []
    channel = ((values.get(BlockId.REVIEW_CHANNEL) or {}).get(Action.REVIEW_CHANNEL) or {}).get(
        "selected_conversation"
    )
    segment_id = digits(selected.get("value")) if isinstance(selected, dict) else None
    return ImportForm(
        segment_id=segment_id,
        segment_unknown=bool(selected) and segment_id is None,
        new_segment=text(BlockId.NEW_SEGMENT, Action.NEW_SEGMENT).strip(),
        files=list(files),
        email=text(BlockId.EMAIL, Action.EMAIL).strip(),
        first_name=text(BlockId.FIRST_NAME, Action.FIRST_NAME).strip(),
        last_name=text(BlockId.LAST_NAME, Action.LAST_NAME).strip(),
        locale=text(BlockId.LOCALE, Action.LOCALE).strip(),
        audience_ids=list(dict.fromkeys(str(o["value"]) for o in lists if o.get("value"))),
        consent=any(o.get("value") == CONSENT_VALUE for o in (
            (values.get(BlockId.CONSENT) or {}).get(Action.CONSENT) or {}
        ).get("selected_options") or []),
        asks_channel=BlockId.REVIEW_CHANNEL in values,
        review_channel=str(channel or ""),
    )  # fmt: skip


async def consent_error(d: Deps, team_id: str, form: ImportForm,
                        batch_id: int | None) -> str | None:  # fmt: skip
    """Why the consent box must be ticked (a live campaign emails the segment), or None."""
    if form.consent:
        return None
    segment_id = form.segment_id
    if batch_id is not None:
        batch = await get_batch(d.db, team_id, batch_id)
        if batch is None or batch.consent_by is not None:
            return None  # already confirmed (or gone: the submit says so)
        segment_id = batch.segment_id
    async with d.db.begin() as conn:
        names = await inviting_campaigns(conn, team_id, segment_id)
    if not names:
        return None
    return (f"{names[0]}{' and others' if len(names) > 1 else ''} will email these people an "
            "invite: tick this to confirm they agreed to hear from us.")[:150]  # fmt: skip


def channel_error(form: ImportForm, lead: bool) -> str | None:
    """Why a form opened from Home needs a channel: only leads approve, and a review in the
    requester's direct messages is one no lead sees."""
    if not form.asks_channel or form.review_channel or lead:
        return None
    return "Only team leads approve imports: choose a channel where one will see it."


async def validate(d: Deps, team_id: str, form: ImportForm, adding: bool,
                   batch_id: int | None = None, *,
                   client: AsyncWebClient | None = None) -> dict[str, str]:  # fmt: skip
    """Inline errors keyed by input block id; empty when the form can be queued."""
    if batch_id is not None and (ended := await not_draft(d, client, team_id, batch_id, form)):
        return {BlockId.FILES: ended}  # nothing else on the form matters now
    errors: dict[str, str] = {}
    consent = await consent_error(d, team_id, form, batch_id)
    if consent:
        errors[BlockId.CONSENT] = consent
    if not adding:
        if form.segment_unknown:  # not an option we offered (20 digits failed in the database)
            errors[BlockId.SEGMENT] = "That choice isn't a segment any more: choose it again."
        elif form.segment_id is None and not form.new_segment:
            errors[BlockId.SEGMENT] = "Choose a segment, or name a new one below."
        elif form.segment_id is not None and form.new_segment:
            errors[BlockId.NEW_SEGMENT] = "Choose an existing segment or a new name, not both."
        elif form.segment_id is not None and (
                why := await _not_importable(d.db, team_id, form.segment_id)):
            errors[BlockId.SEGMENT] = why  # deleted since the menu showed it, or forged
        elif form.new_segment and (unusable := _unusable_name(form.new_segment)):
            errors[BlockId.NEW_SEGMENT] = unusable  # said here: after, the form would be lost
        elif form.new_segment:
            existing = await find_segment(d.db, team_id, form.new_segment)
            if existing is not None and existing.kind == SegmentKind.ALL:  # never in the menu
                errors[BlockId.NEW_SEGMENT] = (f"{existing.name} is built in and holds every "
                                               "contact already: name a segment to import into.")
            elif existing is not None:
                errors[BlockId.NEW_SEGMENT] = f"{existing.name} already exists: choose it above."
    if not form.files and not form.email and not form.audience_ids:
        errors[BlockId.FILES] = ("Add a file (CSV, Excel or ZIP), a Mailchimp list, or a "
                                 "customer's email below.")
    if form.audience_ids and await connection(d.db, team_id) is None:
        errors[BlockId.MAILCHIMP_LISTS] = ("Mailchimp was disconnected after this form "
                                           "opened: connect it again with /referral mailchimp.")
    max_bytes = upload_limit(d.settings)
    refused: list[tuple[str, str]] = []
    for file in form.files:
        info = describe(file)
        try:
            check_csv(info, max_bytes)
        except FileRejected as exc:
            refused.append((info.name, str(exc)))
    if refused:
        errors[BlockId.FILES] = files_error(refused, max_bytes)
    elif batch_id is not None and not form.email and (form.files or form.audience_ids):
        # nothing new to add: said on the form, not a form that closed and did nothing (a
        # Mailchimp list the import reads already was left out without a word)
        fresh, repeats = (await new_files(d, team_id, batch_id, form.files) if form.files
                          else ([], []))  # fmt: skip
        queued = await queued_audiences(d.db, team_id, batch_id) if form.audience_ids else set()
        if not fresh and all(i in queued for i in form.audience_ids):
            if repeats:
                errors[BlockId.FILES] = already_there(repeats, ": add another file, or close "
                                                                "this form.")
            if form.audience_ids:
                errors[BlockId.MAILCHIMP_LISTS] = (
                    f"{'That list is' if len(form.audience_ids) == 1 else 'Those lists are'} "
                    "already in this import: choose another, or close this form.")
    if form.email:
        try:
            normalize_email(form.email)
        except InvalidEmail as exc:
            errors[BlockId.EMAIL] = f"That email can't receive invites: {exc}"[:150]
    elif form.first_name or form.last_name:
        errors[BlockId.EMAIL] = "Add the customer's email too."
    if form.locale and normalize_locale(form.locale) is None:
        errors[BlockId.LOCALE] = "Use a language code such as en, fr or pt-BR."
    return errors


FILES_ERROR_MAX = 150  # the form's line under the files: a long one is cut


async def not_draft(d: Deps, client: AsyncWebClient | None, team_id: str, batch_id: int,
                    form: ImportForm) -> str | None:  # fmt: skip
    """Why *Add more*'s form can't add to its import any more (approved, rejected or
    cancelled since the form opened), or None. Said on the form: refused after the ack, the
    form had closed and what was attached in it was lost. A batch gone (or another
    workspace's) is left to the submission, which says so."""
    batch = await get_batch(d.db, team_id, batch_id)
    if batch is None or batch.status == BatchStatus.DRAFT:
        return None
    what = ("this file" if len(form.files) == 1 else "these files") if form.files else "them"
    status = await mentions_as_names(client, describe_status(batch))
    return (f"Start a new import for {what} with /referral import: this one is already "
            f"{status}.")[:FILES_ERROR_MAX]  # fmt: skip


_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")


async def mentions_as_names(client: AsyncWebClient | None, text: str) -> str:
    """`text` with each `<@U…>` as "@name" ("someone" when Slack doesn't say): a form's error
    is plain text, where Slack shows a mention as typed. Asked before the form's ack, so
    each name waits NAME_SECONDS at most."""
    names: dict[str, str] = {}
    for user_id in dict.fromkeys(_MENTION.findall(text)):
        name = await person_name(client, user_id, wait=NAME_SECONDS)
        names[user_id] = f"@{name}" if name else "someone"
    return _MENTION.sub(lambda m: names[m.group(1)], text)


def files_error(refused: Sequence[tuple[str, str]], max_bytes: int) -> str:
    """Why the form's files are refused, every one named: (name, why) each. One message
    (or several alike) as is; several that fit one after the other; else the names, with
    what the form takes."""
    said = list(dict.fromkeys(why for _, why in refused))
    joined = " ".join(said)
    if len(said) == 1 or len(joined) <= FILES_ERROR_MAX:
        return joined
    rest = (" can't be imported: upload CSV, Excel .xlsx or ZIP files stored in Slack, each "
            f"up to {megabytes(max_bytes)} MB.")  # fmt: skip
    names = list(dict.fromkeys(name for name, _ in refused))
    for shown in range(len(names), 0, -1):
        left = len(names) - shown
        named = listed(names[:shown] + ([f"{left} more"] if left else []))
        if len(named) + len(rest) <= FILES_ERROR_MAX or shown == 1:
            return (named + rest)[:FILES_ERROR_MAX]
    return rest.strip()  # no names (not reached)


async def new_files(d: Deps, team_id: str, batch_id: int, files: Sequence[dict[str, Any]]
                    ) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """The form's files the batch hasn't got yet, once each, and the names of those it has
    (the same Slack file added again with *Add more* was read and counted twice)."""
    queued = await queued_files(d.db, team_id, batch_id)
    fresh: dict[str, dict[str, Any]] = {}
    repeats: list[str] = []
    for file in files:
        info = describe(file)
        if info.id in queued:
            repeats.append(info.name)
        else:
            fresh.setdefault(info.id, file)
    return list(fresh.values()), list(dict.fromkeys(repeats))


def already_there(names: Sequence[str], then: str = ".") -> str:
    verb = "is" if len(names) == 1 else "are"
    return f"{listed(list(names))} {verb} already in this import{then}"[:FILES_ERROR_MAX]


def _unusable_name(name: str) -> str | None:
    """Why a new segment can't have this name (only invisible characters, too long,
    reserved), in the words segment creation would use; None when it can."""
    try:
        clean_segment_name(name)
    except WorkspaceError as exc:
        return str(exc)
    return None


async def suggest_segments(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                           context: dict[str, Any]) -> None:  # fmt: skip
    """The import form's segments with their sizes. Anyone who isn't a member (a guest, or of
    another organisation: `is_member`) gets none: the form opened for them (it opens before the
    check: trigger ids live 3 s) listed them until the refusal replaced it."""
    d = deps(context)
    team_id = team_of(body)
    if await outsider_refusal(client, team_id, body["user"]["id"]) is not None:
        await ack(options=[])
        return
    query = (body.get("value") or "").casefold()
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    sized = [(s.id or 0, s.name, n) for s, n in await segment_sizes(d.db, team_id)
             if s.kind == SegmentKind.STATIC and query in s.name.casefold()]  # fmt: skip
    await ack(options=[o.to_dict() for o in segment_options(sized)])


async def suggest_upload_segments(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                                  context: dict[str, Any]) -> None:  # fmt: skip
    """The upload offer's segments and, for a name typed that none has, "New segment “…”":
    the offer has no field to create one, so in a workspace without segments it was a dead end
    ("Choose a segment first") with nothing to choose. The offer is in the channel: a guest in it,
    or a member of another organisation it is shared with, gets no options (their Review import
    click says why)."""
    d = deps(context)
    team_id = team_of(body)
    if await outsider_refusal(client, team_id, body["user"]["id"]) is not None:
        await ack(options=[])
        return
    typed = (body.get("value") or "").strip()
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    every = await segment_sizes(d.db, team_id)
    sized = [(s.id or 0, s.name, n) for s, n in every
             if s.kind == SegmentKind.STATIC and typed.casefold() in s.name.casefold()]
    options = [o.to_dict() for o in segment_options(sized)][:99]
    try:
        name = clean_segment_name(typed) if typed else ""
    except WorkspaceError:
        name = ""  # said when chosen: a name of only invisible characters, a reserved one
    # no "New segment" of a name taken, All Customers' included (Review import refused it)
    if name and all(segment_key(s.name) != segment_key(name) for s, _ in every):
        options.append(new_segment_option(name).to_dict())
    await ack(options=options)


async def submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient,
                 context: dict[str, Any]) -> None:  # fmt: skip
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    meta = await form_meta(ack, view, "Import contacts", optional=("batch",))
    if meta is None:
        return
    batch_id: int | None = meta["batch"]
    form = read_form(view["state"]["values"])
    # who they are (one users.info at most) beside the form's checks, both before the answer
    # due in 3 s: waited for side by side, not one after the other. The checks name this
    # workspace's live campaigns and segments, so they are said only once the role is known
    role, errors = await asyncio.gather(
        _role(d, client, team_id, user_id),
        validate(d, team_id, form, adding=batch_id is not None, batch_id=batch_id,
                 client=client))  # fmt: skip
    if not isinstance(role, Role):  # why Slack couldn't say: the form stays, to submit again
        await ack(response_action="errors", errors={BlockId.FILES: role})
        return
    if role is Role.OUTSIDER:
        await ack(response_action="update", view=notice_modal(
            "Import contacts", told_outsider(team_id, user_id)).to_dict())  # fmt: skip
        return
    channel = channel_error(form, role is Role.LEAD)
    if channel:
        errors[BlockId.REVIEW_CHANNEL] = channel
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    # the modal is closed by now: a failure reaches the person by direct message
    d.later.run(once_per_view(d, team_id, "import-form", str(view.get("id") or ""),
                              _create(d, client, team_id, user_id, meta, form)), client, body)


# At most this long for Slack to say who submits, before the form's answer (due in 3 s):
# serve's client waits out a rate limit's Retry-After, and the answer came too late to show
WHO_SECONDS = 2.0


async def _role(d: Deps, client: AsyncWebClient, team_id: str,
                user_id: str) -> Role | str:  # fmt: skip
    """Who is submitting, asked before the form's checks, whose inline errors named this
    workspace's live campaigns ("Spring will email these people") and segments ("VIP already
    exists") to a member of another organisation (a shared channel's); when Slack can't
    say, why (then nothing is checked or made): a token without users:read, or Slack
    failing or slow."""
    try:
        return await asyncio.wait_for(
            role_in(d.db, d.settings.team_leads, client, team_id, user_id), WHO_SECONDS)
    except (SlackApiError, aiohttp.ClientError, OSError) as exc:  # TimeoutError: an OSError
        log.warning("import form of %s in %s not taken: Slack didn't say who they are: %s",
                    user_id, team_id, slack_error(exc) if isinstance(exc, SlackApiError)
                    else repr(exc))  # fmt: skip
        lacking = missing_scope(exc)
        if lacking is None:
            return WHO_UNKNOWN
        return (f"The app lacks Slack's {lacking or 'users:read'} permission, so nothing was "
                "added: ask your Slack admin to reinstall it from manifest.yml.")  # fmt: skip


async def _create(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                  meta: dict[str, Any], form: ImportForm) -> None:  # fmt: skip
    batch_id: int | None = meta.get("batch")  # a member: asked before the form was checked
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    if batch_id is None:
        chosen = await chosen_audiences(d, team_id, form.audience_ids)  # before anything exists
        await own_uploads(d, client, user_id, form.files)
        await _new_import(d, client, team_id, user_id, meta, form, chosen)
        return
    existing = await may_change(d, client, team_id, user_id, batch_id)  # also: workspace
    if existing.status != BatchStatus.DRAFT:
        raise Refusal(f"That import is already {describe_status(existing)}; "
                      "start a new one with /referral import.")  # fmt: skip
    chosen = await chosen_audiences(d, team_id, form.audience_ids, batch_id)
    await own_uploads(d, client, user_id, form.files)
    if form.consent:
        await confirm_consent(d.db, team_id, batch_id, user_id)
    staged = await queue_sources(d, team_id, batch_id, form, chosen)
    await d.notifier.batch_changed(team_id, batch_id)
    if staged is not None:  # read at once: its skipped row (a repeat) shared as a file's
        await d.notifier.rejects_changed(team_id, batch_id, staged.id or 0)


async def _new_import(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                      meta: dict[str, Any], form: ImportForm,
                      chosen: Sequence[Audience]) -> None:  # fmt: skip
    """The form's import, made and its review posted. A segment the form named new and the
    import then failed to use (its review couldn't be posted, the database failed) is
    withdrawn with it: left, it sat empty in every menu, and the same form again, as the
    refusal asks, was told its name "already exists"."""
    made = None
    if form.new_segment:
        made = await create_segment(d.db, team_id, form.new_segment, actor=user_id)
    try:
        segment = made or await import_segment(d.db, team_id, form.segment_id or 0)
        batch = await create_batch(d.db, team_id, segment.id or 0, user_id, consent=form.consent)
        drawn = await _queued_and_published(d, client, team_id, user_id, batch.id or 0, meta,
                                            form, chosen)  # fmt: skip
    except Exception:
        if made is not None:
            await withdraw_segment(d.db, team_id, made.id or 0, user_id)
        raise
    await review_posted(client, d, team_id, batch.id or 0, drawn)


async def _queued_and_published(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                                batch_id: int, meta: dict[str, Any], form: ImportForm,
                                chosen: Sequence[Audience]) -> BatchView:  # fmt: skip
    """A new import's sources queued and its review posted; the review as drawn."""
    try:
        await queue_sources(d, team_id, batch_id, form, chosen)
        channel = form.review_channel or meta.get("channel") or ""
        return await publish_review(client, d, team_id, batch_id, channel, user_id)
    except Exception as exc:
        # a draft with no review message is one nobody could approve or cancel, and its
        # segment couldn't be deleted: withdraw it, and say so. publish_review raises only
        # before the message is posted: once it is, nothing withdraws the import, not even a
        # failure to record it (Approve said "already cancelled" under a live review)
        log.warning("import %s withdrawn: its review could not be posted", batch_id,
                    exc_info=exc)  # fmt: skip
        await cancel(d.db, team_id, batch_id, user_id, is_lead=True)
        raise Refusal("I couldn't post the review of your import, so nothing was imported: "
                      "please start again with /referral import.") from exc


async def queue_sources(d: Deps, team_id: str, batch_id: int, form: ImportForm,
                        chosen: Sequence[Audience] = ()) -> ImportSource | None:  # fmt: skip
    """Queue the form's files and Mailchimp lists to be read; the customer typed in is read
    now, and returned (None without one): no reading job reports on it. A file the batch
    has already (the same Slack file, added again with *Add more*) is left out: checked
    again as each is added (add_source_once), so two forms adding the same file at once add
    it once (each had checked before either added it, and the file was read twice)."""
    staged = None
    files, repeats = await new_files(d, team_id, batch_id, form.files)
    added = 0
    for file in files:
        info = describe(file)
        if await add_source_once(d.db, team_id, batch_id, SourceKind.CSV, info.name,
                                 ref=info.id, read_by=SLACK_FILE_JOB) is None:  # fmt: skip
            repeats.append(info.name)
        else:
            added += 1
    if not added and not form.email and not chosen:  # added meanwhile (validate checked)
        raise Refusal(f"Nothing was added: {esc(already_there(repeats))}" if repeats else
                      "Nothing was added: the chosen Mailchimp lists are already in this "
                      "import.")  # fmt: skip
    if form.email:
        staged = await stage_contact(d.db, team_id, batch_id, email=form.email,
                                     first_name=form.first_name, last_name=form.last_name,
                                     locale=form.locale)  # fmt: skip
    if chosen:
        await queue_audiences(d.db, team_id, batch_id, list(chosen))
    return staged


async def own_uploads(d: Deps, client: AsyncWebClient, user_id: str,
                      files: Sequence[dict[str, Any]]) -> None:  # fmt: skip
    """Refuse the form unless the person submitting it uploaded every file it names.

    The form carries file ids, and the bot's token opens every file the bot can see (one in
    a private channel, another workspace's in a shared one): `files.info` (the fetcher's, as
    the reading job asks it) says who uploaded each, and only the submitter's own uploads are
    read; a file gone meanwhile is no upload of theirs."""
    fetcher = slack_fetcher(d.settings, client)
    for file in files:
        file_id = str(file.get("id") or "")
        try:
            info = await fetcher.info(file_id) if file_id else {}
        except FileRejected:
            info = {}
        if not file_id or info.get("user") != user_id:
            name = esc(str(info.get("name") or file.get("name") or "a file"))
            raise Refusal(f"Nothing was imported: {name} isn't a file you uploaded to the "
                          "form. Upload the file itself in /referral import.")  # fmt: skip


async def chosen_audiences(d: Deps, team_id: str, ids: Sequence[str],
                           batch_id: int | None = None) -> list[Audience]:  # fmt: skip
    """The chosen Mailchimp lists, read again from the account: the form carries only ids, so
    names come from Mailchimp and a list deleted since the form opened is refused. Lists the
    draft `batch_id` has already are left out: added again, one was read and counted twice."""
    if batch_id is not None:
        queued = await queued_audiences(d.db, team_id, batch_id)
        ids = [i for i in ids if i not in queued]
    if not ids:
        return []
    stamp = None
    try:
        creds, stamp = await stamped_credentials(d.db, team_id, d.settings.secret_key)
        known = {a.id: a for a in await audiences(creds)}
    except (MailchimpError, SecretKeyMissing, CredentialsUnreadable) as exc:
        if isinstance(exc, ReconnectNeeded):
            await refused_from_now_on(d.db, team_id, stamp)
        raise Refusal(f"Nothing was imported: {esc(str(exc))}") from exc
    if any(i not in known for i in ids):
        raise Refusal("Nothing was imported: a chosen Mailchimp list is no longer in the "
                      "connected account. Start again with /referral import.")  # fmt: skip
    return [known[i] for i in ids]


async def mailchimp_part(d: Deps, team_id: str) -> list[Block]:
    """The modal's "Mailchimp lists": the account's audiences, or why there are none.

    Mailchimp being unreachable, or refusing the stored credentials, is said in the modal;
    the rest of the form still works."""
    stamp = None
    try:
        creds, stamp = await stamped_credentials(d.db, team_id, d.settings.secret_key)
        return lists_blocks(await audiences(creds))
    except NotConnected:
        return lists_blocks(note=LISTS_NOT_CONNECTED)
    except ReconnectNeeded:
        await refused_from_now_on(d.db, team_id, stamp)
        return lists_blocks(note=LISTS_RECONNECT)
    except CredentialsUnreadable:  # Mailchimp wasn't even asked: the operator's doing
        log.warning("Mailchimp credentials of %s don't decrypt with this SECRET_KEY (changed "
                    "since they were saved?): connect Mailchimp again", team_id)  # fmt: skip
        return lists_blocks(note=LISTS_UNREADABLE)
    except SecretKeyMissing:
        return lists_blocks(note=SECRET_KEY_MISSING)
    except MailchimpError as exc:
        log.warning("Mailchimp lists not loaded for %s: %s", team_id, exc)
        return lists_blocks(note=lists_failed(str(exc)))


async def open_import_modal(d: Deps, client: AsyncWebClient, trigger_id: str, team_id: str,
                            user_id: str, *, channel_id: str, batch_id: int | None = None,
                            segment: str | None = None,
                            ask_consent: bool = True,
                            choose_channel: bool = False) -> None:  # fmt: skip
    """Open the form first (trigger ids live 3 s), then fill in the Mailchimp lists; anyone who
    isn't a member (a guest, or a shared channel's other organisation) is told in it that it
    isn't for them."""

    def form(mailchimp: list[Block]) -> View:
        return import_modal(channel_id=channel_id, batch_id=batch_id, segment=segment,
                            mailchimp=mailchimp, ask_consent=ask_consent,
                            choose_channel=choose_channel)  # fmt: skip

    opened = await open_modal(client, trigger_id, form(lists_blocks(note=LISTS_LOADING)))
    await require_member(client, team_id, user_id)
    await fill_modal(client, opened, form(await mailchimp_part(d, team_id)))


async def post_review(client: AsyncWebClient, d: Deps, team_id: str, batch_id: int,
                      channel: str, user_id: str, *,
                      before_post: Callable[[], Awaitable[None]] | None = None
                      ) -> None:  # fmt: skip
    """Post and record the review message (publish_review), then bring it up to date."""
    drawn = await publish_review(client, d, team_id, batch_id, channel, user_id,
                                 before_post=before_post)  # fmt: skip
    await review_posted(client, d, team_id, batch_id, drawn)


async def publish_review(client: AsyncWebClient, d: Deps, team_id: str, batch_id: int,
                         channel: str, user_id: str, *,
                         before_post: Callable[[], Awaitable[None]] | None = None
                         ) -> BatchView:  # fmt: skip
    """Post the review message where the import started, or in a DM if the bot can't, saying
    why there: leads approve in the channel, and they don't see that DM. Returns the import
    as drawn.

    `before_post` is awaited once, with the review drawn, just before its first post (the
    DM's, after the channel refused, is the same review's): an upload's click takes there
    the key saying it was sent to Slack (handlers/uploads.py review_sent_key), which
    reading the import before it must not have taken. Raising, it stops the post.

    The message is recorded as soon as it is posted, before anything else: once posted its
    buttons work, so from then on nothing may withdraw the import (a failure after the post
    did, and left a live-looking review whose Approve said "already cancelled"). Nothing after
    the post raises: a record that fails is tried again, then left to the review's first
    click (record_review); the line saying why it's in the DM is logged when it fails, the
    network's failures as well as Slack's refusals (or_log)."""
    view = await load(d.db, team_id, batch_id)
    previews = await preview_batch(d.db, team_id, batch_id, view.segment.id or 0)
    text, blocks = review_message(view, previews, undo_days=d.settings.undo_window_days)
    if before_post is not None:
        await before_post()
    refused = ""
    try:
        posted = await client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as exc:
        refused = slack_error(exc)
        if refused not in CHANNEL_REFUSALS:  # rate limits, outages, bad blocks: not the channel
            raise
        log.info("review of import %s not posted in %s (%s): sent by DM", batch_id, channel,
                 refused)  # fmt: skip
        dm = (await client.conversations_open(users=user_id))["channel"]["id"]
        posted = await client.chat_postMessage(channel=dm, text=text, blocks=blocks)
    await record_review(d.db, team_id, batch_id, str(posted["channel"]), str(posted["ts"]))
    if refused and channel and channel != posted["channel"]:
        where = {"team": team_id, "batch": str(batch_id), "channel": str(posted["channel"])}
        await or_log(_say_why_here(client, posted["channel"], channel, refused, where),
                     "review sent by DM, but the line saying why was not posted", where,
                     log)  # fmt: skip
    return view


# seconds between tries to record a review just posted: a database restarting, or busy a
# while (on SQLite each try has already waited out its busy timeout)
RECORD_PAUSES = (0.5, 1.0, 2.0)


async def record_review(db: Database, team_id: str, batch_id: int, channel: str,
                        ts: str) -> None:  # fmt: skip
    """Record where the review of `batch_id` was posted; never raises. The review is live
    in Slack, so the import stays in review whatever happens here: withdrawing it would need
    the database that just failed, and left a review whose buttons said "already cancelled".
    A failed write is tried again a few times (it sets the same two values: a write that
    did land changes nothing); if the database stays away, the review's buttons still work
    (each carries the import's id) and the first click on it records it
    (handlers/review.py), redrawing what it missed meanwhile. Every exception is caught, not
    only the database's (SQLAlchemyError, OSError): one raised from here would withdraw the
    import under its live review."""
    where = context_of({"team": team_id, "batch": str(batch_id), "channel": channel, "ts": ts})
    for pause in (*RECORD_PAUSES, None):
        try:
            await set_message(db, team_id, batch_id, channel_id=channel, message_ts=ts)
            return
        except Exception as exc:
            if pause is None:
                log.error("review posted but not recorded (%s): the first click on it "
                          "records it", where, exc_info=exc)  # fmt: skip
                return
            log.warning("review posted, not recorded yet (%s): %r; trying again in %s s",
                        where, exc, pause)  # fmt: skip
            await asyncio.sleep(pause)


async def _say_why_here(client: AsyncWebClient, dm: str, channel: str, refused: str,
                        where: dict[str, str]) -> None:  # fmt: skip
    """The line beside a review sent to the DM saying why it's there; nice to have: the
    review itself is posted and recorded, so this line failing changes nothing. Slack
    refusing it is logged here in a line; any other failure (a network error: slack_sdk
    raises aiohttp's and asyncio's own, not SlackApiError) is the caller's or_log's."""
    try:
        await client.chat_postMessage(channel=dm, text=not_posted_there(channel, refused))
    except SlackApiError as exc:
        log.warning("review sent by DM, but the line saying why was not posted (%s): %s",
                    context_of(where), slack_error(exc))  # fmt: skip


async def review_posted(client: AsyncWebClient, d: Deps, team_id: str, batch_id: int,
                        drawn: BatchView | None) -> None:  # fmt: skip
    """Bring the review just posted from `drawn` up to date: redrawn if a file was read while
    it was posted, the skipped-rows CSVs of files read before it existed, and Home listing
    the import. Each is logged and left when it fails: the review is posted and works, and
    the person who asked was told "may not have gone through, try again" over it (trying
    again made a second import). `drawn` None: a review recorded only now, by a click on it
    (record_review), which is redrawn whatever it shows."""
    redraw = (d.notifier.batch_changed(team_id, batch_id) if drawn is None
              else d.notifier.redraw_since(team_id, batch_id, drawn))  # fmt: skip
    where = {"team": team_id, "batch": str(batch_id)}
    await or_log(redraw, "review posted, not redrawn", where, log)
    await or_log(d.notifier.share_pending_rejects(team_id, batch_id),
                 "review posted, not given its skipped-rows CSVs", where, log)  # fmt: skip
    await or_log(refresh_for(d, client, team_id), "review posted, not listed on Home", where,
                 log)  # fmt: skip


async def _not_importable(db: Database, team_id: str, segment_id: int) -> str | None:
    """Why the form's chosen segment is no longer one to import into, if so (said on the
    field: after the form closed, its files and typed fields were lost with it)."""
    try:
        await import_segment(db, team_id, segment_id)
    except WorkspaceError:
        return "That segment was deleted: choose another, or name a new one below."
    except Refusal as exc:
        return str(exc)
    return None


async def import_segment(db: Database, team_id: str, segment_id: int) -> Segment:
    """The static segment chosen in a form; All Customers already holds everyone."""
    segment = await get_segment(db, team_id, segment_id)
    if segment.kind != SegmentKind.STATIC:
        raise Refusal(f"{ALL_CUSTOMERS} already holds every contact: choose or create a "
                      "static segment to import into.")  # fmt: skip
    return segment


def register(app: Routes) -> None:
    app.options(Action.SEGMENT)(suggest_segments)
    app.options(Action.UPLOAD_SEGMENT)(suggest_upload_segments)
    app.view(Callback.IMPORT)(submit)
