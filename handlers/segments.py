"""`/referral segments`: the list, New segment, Rename, Delete, Export CSV, and More.

Any member of the workspace may see the list and create a segment (an empty segment harms
nobody); renaming, deleting and exporting (it hands out customer data) are for team leads.
A member of another organisation, in a channel shared with it (Slack Connect), is refused
everything: it listed every segment's name and size, and created segments in the audit log
under its id. Every click re-reads
the segment by id *and* workspace, so a stale, doubled or forged button changes nothing and
the person is told why. The list is ephemeral: after a change it is replaced through the
click's `response_url` (a modal carries it in private_metadata) with what happened on top,
and Home is republished for the people who look at it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import digits
from bot.leads import Role
from bot.once import held
from bot.segments import (
    NO_CAMPAIGNS,
    SegmentInUse,
    busy_import,
    campaign_counts,
    campaigns_using,
    delete_segment,
    member_count,
    record_export,
    renamable,
    rename_segment,
    require_new_name,
    uses_key,
    write_export,
)
from bot.temp_files import spill_dir
from bot.workspaces import (
    WorkspaceError,
    create_segment,
    ensure_workspace,
    free_name,
    get_segment,
    segment_sizes,
)
from handlers.campaign_messages import notice_modal
from handlers.context import (
    Deps,
    Refusal,
    deps,
    form_meta,
    is_lead,
    leads_only,
    not_a_lead,
    outsider_refusal,
    require_lead,
    role_in,
    team_of,
    told_outsider,
)
from handlers.form_once import once_per_view, submitted_before
from handlers.home_publish import refresh_for
from handlers.ids import Action, BlockId, Callback
from handlers.messages import file_stem, metadata
from handlers.placeholder import open_modal
from handlers.respond import (
    Click,
    ResponseUrlFailed,
    dm,
    dm_file,
    explained,
    fill_modal,
    for_people,
    respond,
)
from handlers.routes import Routes
from handlers.segment_messages import (
    ButtonValue,
    SegmentItem,
    created_note,
    delete_modal,
    deleted_note,
    export_comment,
    export_under_way,
    exported_note,
    name_modal,
    page_offset,
    renamed_note,
    segment_list,
)
from models import SegmentKind
from models.clock import utcnow

log = logging.getLogger(__name__)
# An export taking longer than this was stopped (its process killed): clicking again exports.
EXPORT_STALE = timedelta(minutes=15)
LOADING = "Loading…"
OLD_BUTTON = "That button doesn't name a segment: it may come from an old message."


def button_of(click: Click) -> ButtonValue:
    """The segment (and page) a button names; an old or forged value is refused."""
    value = ButtonValue.parse(click.value)
    if value is None:
        raise Refusal(OLD_BUTTON)
    return value


async def _show_list(d: Deps, client: AsyncWebClient, team_id: str, url: str, *,
                     offset: int = 0, page: str = "", note: str = "",
                     replace: bool) -> None:  # fmt: skip
    """Read the segments (counted from rows) and answer with one page of the list: from
    `offset`, or where a *More* button's `page` says."""
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    sized = await segment_sizes(d.db, team_id)
    used = await campaign_counts(d.db, team_id)
    everyone = next((SegmentItem(s.id or 0, s.name, count) for s, count in sized
                     if s.kind == SegmentKind.ALL), None)  # fmt: skip
    # in the order of their keys as Python compares them, as `page_offset` does
    static = sorted((SegmentItem(s.id or 0, s.name, count, used.get(s.id or 0, 0), s.name_key)
                     for s, count in sized if s.kind == SegmentKind.STATIC),
                    key=lambda item: item.key)  # fmt: skip
    offset = page_offset(page or str(offset), [item.key for item in static])
    text, blocks = segment_list(everyone, static, offset=offset, note=note)
    await respond(client, url, text, replace=replace, blocks=blocks)


async def _after_change(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, url: str,
                        note: str, offset: int) -> None:  # fmt: skip
    """Show the list again with what happened (or DM it), then republish Home."""
    try:
        await _show_list(d, client, team_id, url, offset=offset, note=note, replace=True)
    except ResponseUrlFailed as exc:  # e.g. a modal left open past the URL's 30 minutes
        log.info("could not refresh the segment list (%s); sending a direct message", exc)
        await dm(client, user_id, note)
    await refresh_for(d, client, team_id)


def _explained(work: Coroutine[Any, Any, None], client: AsyncWebClient, url: str,
               user_id: str) -> Coroutine[Any, Any, None]:  # fmt: skip
    """A segment click's work; a refusal is answered where they clicked (or by DM)."""
    return explained(work, client, url, refused=(WorkspaceError,), what="segment change",
                     user_id=user_id)


# ---- the list and More ----------------------------------------------------------------------


async def _list_for_members(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                            url: str, *, page: str = "", replace: bool) -> None:  # fmt: skip
    """The list, for a member of the workspace; anyone else is told why not, in its place."""
    if (refused := await outsider_refusal(client, team_id, user_id)) is not None:
        await respond(client, url, refused, replace=replace)
        return
    await _show_list(d, client, team_id, url, page=page, replace=replace)


async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """`/referral segments`: ack at once, then answer with the list through response_url."""
    await ack()
    d = deps(context)
    d.later.run(_list_for_members(d, client, command["team_id"], command["user_id"],
                                  command["response_url"], replace=False),
                client, command)  # fmt: skip


async def on_more(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d, click = deps(context), Click.of(body)
    d.later.run(_list_for_members(d, client, click.team_id, click.user_id, click.response_url,
                                  page=click.value, replace=True), client, body)  # fmt: skip


# ---- New segment and Rename: the name modal ---------------------------------------------------


async def on_create(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                    context: dict[str, Any]) -> None:  # fmt: skip
    """Any member may create: the form needs no data, so it opens at once (trigger ids live
    3 s); a member of another organisation then sees why not in its place (and the
    submission checks again)."""
    await ack()
    d, click = deps(context), Click.of(body)
    offset = digits(click.value) or 0
    modal = name_modal(renaming=None, private_metadata=metadata(url=click.response_url,
                                                                 offset=offset))  # fmt: skip
    d.later.run(_open_create(client, click, modal), client, body, prompt=True)


async def _open_create(client: AsyncWebClient, click: Click, modal: View) -> None:
    opened = await open_modal(client, click.trigger_id, modal)
    if (refused := await outsider_refusal(client, click.team_id, click.user_id)) is not None:
        await fill_modal(client, opened, notice_modal("New segment", refused))


async def _open_rename(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """Open a placeholder first (trigger ids live 3 s), then fill it from the database."""
    opened = await open_modal(client, click.trigger_id, notice_modal("Rename segment", LOADING))
    try:
        await require_lead(d, client, click.team_id, click.user_id, "rename segments")
        value = button_of(click)
        segment = await get_segment(d.db, click.team_id, value.segment_id)
        if segment.kind != SegmentKind.STATIC:
            raise WorkspaceError(f"{segment.name} is built in: it can't be renamed.")
        modal = name_modal(renaming=segment.name, private_metadata=metadata(
            segment=segment.id, url=click.response_url, offset=value.offset))  # fmt: skip
    except (Refusal, WorkspaceError) as exc:
        log.info("segment rename refused: %s", exc)
        modal = notice_modal("Rename segment", for_people(exc))
    await fill_modal(client, opened, modal)


async def on_rename(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                    context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d, click = deps(context), Click.of(body)
    d.later.run(_open_rename(d, client, click), client, body, prompt=True)


def _typed_name(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    state = (values.get(BlockId.SEGMENT_NAME) or {}).get(Action.SEGMENT_NAME) or {}
    return str(state.get("value") or "")


async def submit_name(ack: Any, body: dict[str, Any], view: dict[str, Any],
                      client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Check the name before the ack (a refusal shows on the field), then create or rename
    after it: a write, which on SQLite may wait for an import holding the one write lock.
    The unique name index still decides a race; its loser is told where they asked."""
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    renaming = view.get("callback_id") == Callback.SEGMENT_RENAME
    meta = await form_meta(ack, view, "Rename segment" if renaming else "New segment",
                           required=("segment",) if renaming else (), optional=("offset",))
    if meta is None:
        return
    segment_id, url = meta.get("segment"), str(meta.get("url") or "")
    offset = meta["offset"] or 0
    # one question to Slack at most before the answer (due in 3 s): none for a listed lead
    role = await role_in(d.db, d.settings.team_leads, client, team_id, user_id)
    if role is Role.OUTSIDER:
        await ack(response_action="update",
                  view=notice_modal("Rename segment" if renaming else "New segment",
                                    told_outsider(team_id, user_id)).to_dict())  # fmt: skip
        return
    if renaming and role is not Role.LEAD:
        refusal = await leads_only(d, team_id, "rename segments")
        await ack(response_action="update",
                  view=notice_modal("Rename segment", str(refusal)).to_dict())  # fmt: skip
        return
    view_id = str(view.get("id") or "")
    name = _typed_name(view)
    try:
        segment = await renamable(d.db, team_id, segment_id) if renaming else None
        stored = await free_name(d.db, team_id, name, renaming=segment_id if renaming else None)
        if segment is not None:  # its own name again: said here, and the modal stays
            require_new_name(segment, stored)
    except WorkspaceError as exc:  # errors are plain text: shown as typed, no escaping
        # asked after the name's check: a save of this view that check saw had taken its key
        if await submitted_before(d, team_id, "segment-form", view_id):
            await ack()  # Submit pressed again: its own new name isn't "already exists"
            return
        await ack(response_action="errors", errors={BlockId.SEGMENT_NAME: str(exc)})
        return
    await ack()
    work = _name_change(d, client, team_id, user_id, name, segment_id if renaming else None,
                        url, offset)  # fmt: skip
    d.later.run(once_per_view(d, team_id, "segment-form", view_id,
                              _explained(work, client, url, user_id)), client, body)


async def _name_change(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, name: str,
                       segment_id: int | None, url: str, offset: int) -> None:  # fmt: skip
    """Create (segment_id None) or rename, after the ack; then the list again, with a note."""
    if segment_id is not None:
        renamed = await rename_segment(d.db, team_id, segment_id, name, actor=user_id)
        note = renamed_note(renamed.old, renamed.new)
    else:
        await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
        note = created_note((await create_segment(d.db, team_id, name, actor=user_id)).name)
    await _after_change(d, client, team_id, user_id, url, note, offset)


# ---- Delete -------------------------------------------------------------------------------


async def _delete(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, value: ButtonValue,
                  url: str, *, shown: str, trigger_id: str) -> None:  # fmt: skip
    """Delete, if the campaigns using the segment are still those the person was shown
    (`shown`, their uses_key), checked in the delete's own transaction; else nothing is
    deleted and the confirmation opens (with `trigger_id`) naming the campaigns using it now."""
    await require_lead(d, client, team_id, user_id, "delete segments")
    try:
        deleted = await delete_segment(d.db, team_id, value.segment_id, actor=user_id,
                                       expect_campaigns=shown)  # fmt: skip
    except SegmentInUse as exc:
        log.info("segment delete held back: %s", exc)
        modal = await _confirm_modal(d, team_id, value, url)
        try:
            await client.views_open(trigger_id=trigger_id, view=modal)
        except SlackApiError as failed:  # the trigger id lived 3 s: say so where they asked
            log.info("could not show the campaigns using the segment (%s)", failed)
            raise exc from failed
        return
    note = deleted_note(deleted.name, deleted.members, deleted.campaigns)
    await _after_change(d, client, team_id, user_id, url, note, value.offset)


async def _confirm_modal(d: Deps, team_id: str, value: ButtonValue, url: str) -> View:
    """The confirmation naming the campaigns that use the segment, or why it can't go."""
    segment = await get_segment(d.db, team_id, value.segment_id)
    if segment.kind != SegmentKind.STATIC:
        raise WorkspaceError(f"{segment.name} is built in and holds every contact: it can't be "
                             "deleted.")  # fmt: skip
    if busy := await busy_import(d.db, team_id, value.segment_id):
        raise WorkspaceError(busy)
    campaigns = await campaigns_using(d.db, team_id, value.segment_id)
    # what it says about the campaigns goes with it: the delete checks them against it
    return delete_modal(segment.name, await member_count(d.db, team_id, value.segment_id),
                        campaigns, private_metadata=metadata(
                            segment=segment.id, url=url, offset=value.offset,
                            campaigns=uses_key(campaigns)))  # fmt: skip


async def _ask_first(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """A Delete button without Slack's confirm dialog: open the confirmation modal at once,
    then fill it (or say why the segment can't be deleted)."""
    opened = await open_modal(client, click.trigger_id, notice_modal("Delete segment", LOADING))
    try:
        await require_lead(d, client, click.team_id, click.user_id, "delete segments")
        modal = await _confirm_modal(d, click.team_id, button_of(click), click.response_url)
    except (Refusal, WorkspaceError) as exc:
        log.info("segment delete refused: %s", exc)
        modal = notice_modal("Delete segment", for_people(exc))
    await fill_modal(client, opened, modal)


async def _delete_click(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """Confirmed in Slack's dialog (shown only when no campaign used the segment): delete,
    unless campaigns started using the segment since the list was shown (then they are named
    in the modal first). Checked in the delete's transaction: a check before it, in another,
    let a campaign that started excluding the segment in between enroll its contacts."""
    value = button_of(click)
    await _delete(d, client, click.team_id, click.user_id, value, click.response_url,
                  shown=NO_CAMPAIGNS, trigger_id=click.trigger_id)  # fmt: skip


async def on_delete(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                    context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d, click = deps(context), Click.of(body)
    value = ButtonValue.parse(click.value)
    if value is not None and value.ask:
        d.later.run(_ask_first(d, client, click), client, body, prompt=True)
        return
    # it may open a modal (campaigns started using the segment): prompt
    d.later.run(_explained(_delete_click(d, client, click), client, click.response_url,
                           click.user_id), client, body, prompt=True)  # fmt: skip


async def submit_delete(ack: Any, body: dict[str, Any], view: dict[str, Any],
                        client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Confirmed in the modal: a non-lead sees why in the modal; the delete runs after the
    ack (a big segment's memberships take a moment) and its outcome replaces the list. If the
    campaigns using the segment changed since the modal opened, nothing is deleted and the
    modal opens again naming them (a modal of an older release, without them: the same)."""
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    meta = await form_meta(ack, view, "Delete segment", required=("segment",),
                           optional=("offset",))  # fmt: skip
    if meta is None:
        return
    if not await is_lead(d, client, team_id, user_id):
        refusal = await not_a_lead(d, client, team_id, user_id, "delete segments")
        await ack(response_action="update",
                  view=notice_modal("Delete segment", str(refusal)).to_dict())  # fmt: skip
        return
    await ack()
    url = str(meta.get("url") or "")
    shown = meta.get("campaigns")
    value = ButtonValue(segment_id=meta["segment"], offset=meta["offset"] or 0)
    work = _delete(d, client, team_id, user_id, value, url,
                   shown=shown if isinstance(shown, str) else "",
                   trigger_id=str(body.get("trigger_id") or ""))  # fmt: skip
    d.later.run(_explained(work, client, url, user_id), client, body, prompt=True)


# ---- Export CSV -----------------------------------------------------------------------------


async def _export(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """Stream the segment into a temporary file, upload it to the person's DM with the bot,
    and say so where they clicked. The audit entry counts the rows written."""
    await require_lead(d, client, click.team_id, click.user_id, "export segments")
    value = button_of(click)
    segment = await get_segment(d.db, click.team_id, value.segment_id)
    # one file per click, not two for a double click: a second click while the first one's
    # file is on its way is told so
    exporting = f"exporting:{value.segment_id}:{click.user_id}"
    async with held(d.db, click.team_id, exporting, stale_after=EXPORT_STALE) as mine:
        if not mine:
            await respond(client, click.response_url, export_under_way(segment.name),
                          replace=False)  # fmt: skip
            return
        await _send_export(d, client, click, segment.name, value.segment_id)


async def _send_export(d: Deps, client: AsyncWebClient, click: Click, segment_name: str,
                       segment_id: int) -> None:  # fmt: skip
    # on disk, not a tmpfs: a million contacts' CSV held in RAM while it uploads
    handle, path = tempfile.mkstemp(prefix="segment-", suffix=".csv", dir=spill_dir())
    try:
        # utf-8-sig: Excel then reads the names right; the importer skips the BOM
        with os.fdopen(handle, "w", encoding="utf-8-sig", newline="") as out:
            rows = await write_export(d.db, click.team_id, segment_id, out)
        name = f"{file_stem(segment_name + '.csv')}-contacts-{utcnow():%Y-%m-%d}.csv"
        await dm_file(client, click, file=path, filename=name,
                      title=f"{segment_name}: contacts",
                      initial_comment=export_comment(segment_name, rows))  # fmt: skip
    finally:
        os.unlink(path)
    await record_export(d.db, click.team_id, click.user_id, segment_name, rows)
    note = exported_note(segment_name, rows)
    try:
        await respond(client, click.response_url, note, replace=False)
    except ResponseUrlFailed as exc:
        log.info("could not say where the export went (%s): the file is in the DM", exc)


async def on_export(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                    context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d, click = deps(context), Click.of(body)
    d.later.run(_explained(_export(d, client, click), client, click.response_url,
                           click.user_id), client, body)  # fmt: skip


def register(app: Routes) -> None:
    app.action(Action.SEGMENT_MORE)(on_more)
    app.action(Action.SEGMENT_CREATE)(on_create)
    app.action(Action.SEGMENT_RENAME)(on_rename)
    app.action(Action.SEGMENT_DELETE)(on_delete)
    app.action(Action.SEGMENT_EXPORT)(on_export)
    app.view(Callback.SEGMENT_CREATE)(submit_name)
    app.view(Callback.SEGMENT_RENAME)(submit_name)
    app.view(Callback.SEGMENT_DELETE)(submit_delete)
