"""*Map columns* on the review message: choose which header holds each field of a file.

The click opens a modal at once ("Reading the file…", since a trigger id lives 3 s), reads
the file again from Slack for its headers and a few values each, and fills the modal with
the current mapping preselected (remembered for these headers, else guessed). The header is
kept on the source, so the submission (options are column positions) can name the columns:
its field errors are checked before the ack (they can only be shown in it); the modal then
says it is saving, and after the ack the mapping is remembered for the workspace and the file
queued to be read again with it (a write, which on SQLite may wait for an import holding the
one write lock: never before an ack), and the modal says what came of it. The review message
shows "Reading…" and then the new counts, as for any upload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import digits
from bot.imports import review
from bot.imports.background import FileRejected
from bot.imports.batches import ReviewError, get_source
from bot.imports.files import shown_reader
from bot.imports.mapping import (
    BEING_READ,
    ColumnMap,
    SheetRef,
    column_name,
    fits,
    guess,
    keep_header,
    kept_header,
    kept_mapping,
    kept_title,
    mappable,
    mapper_for,
    read_sheet,
    recall,
    rememberable,
    reread_source,
    samples,
    sheet_ref,
)
from bot.imports.reading import CsvFileError, is_data_row
from bot.temp_files import disk_temporary_file
from handlers.context import Deps, Refusal, deps, form_meta, may_change, team_of
from handlers.ids import Action, Callback
from handlers.mapping_messages import (
    MAX_SHEET_TITLE,
    chosen_positions,
    mapping_errors,
    mapping_modal,
    note_modal,
)
from handlers.messages import clip, esc
from handlers.placeholder import open_modal
from handlers.respond import fill_modal, update_modal
from handlers.review import on_review_message
from handlers.routes import Routes
from handlers.slack_files import FileHostUnavailable, slack_fetcher
from models import BatchStatus, ImportSource, SourceStatus

READING = ":hourglass_flowing_sand: Reading the file's columns…"
HOST_BUSY = ("Slack's file service is busy right now, so the file can't be read again: try "
             "in a minute.")
SAVING = ":hourglass_flowing_sand: Saving your choice of columns…"
SAVED = (":white_check_mark: Saved: files with the same headers will be read with these "
         "columns. This file is being read again with them; the review message shows its new "
         "counts in a moment.")  # fmt: skip
# a file without a header row: its first row is data, so its "header" is remembered for no
# other file (mapping.rememberable)
READ_WITHOUT_HEADER = (":white_check_mark: This file is being read again with these columns; "
                       "the review message shows its new counts in a moment. It has no header "
                       "row, so they aren't remembered for other files.")  # fmt: skip
NOT_MAPPABLE = "This file's columns can't be chosen: it was not read from a CSV or Excel file."


def _ids(value: str) -> tuple[int, int]:
    batch, _, source = value.partition(":")
    batch_id, source_id = digits(batch), digits(source)
    if batch_id is None or source_id is None:
        raise Refusal("That button doesn't name a file: it may come from an old message.")
    return batch_id, source_id


async def _source_in_draft(d: Deps, client: AsyncWebClient, team_id: str, user_id: str,
                           batch_id: int, source_id: int) -> ImportSource:  # fmt: skip
    """The source, if this person may change the import and its columns can be chosen now."""
    batch = await may_change(d, client, team_id, user_id, batch_id)
    if batch.status != BatchStatus.DRAFT:
        raise Refusal(f"This import is already {review.describe_status(batch)}.")
    source = await get_source(d.db, team_id, source_id)
    if source.batch_id != batch_id or source.removed:
        raise Refusal("That file is no longer part of this import.")
    if source.status == SourceStatus.PENDING:
        raise Refusal(BEING_READ)
    if not mappable(source):
        raise Refusal(NOT_MAPPABLE)
    return source


@dataclass(frozen=True, slots=True)
class _Shown:
    """What the modal shows of a file: its header, up to three values of each column, and
    for a workbook the sheet they are from and its other sheets with data, (position,
    title) each."""

    header: list[str]
    samples: list[list[str]]
    sheet: tuple[int, str] | None = None
    other_sheets: tuple[tuple[int, str], ...] = ()


async def _read_columns(d: Deps, client: AsyncWebClient, team_id: str, source: ImportSource,
                        sheet: SheetRef | None = None) -> _Shown:  # fmt: skip
    """The file's header and up to three values of each column, read again from Slack.

    Reading decides the encoding over the whole file (or unpacks a workbook): CPU work that
    runs on a thread, not on the event loop that acks Slack. A workbook shows the `sheet`
    chosen in the modal (its position, or its name in a modal an older release drew), else
    the sheet its import reads: the one a mapping remembered fits, else the first recognised
    by name."""
    assert source.ref is not None
    fits_chosen = (await mapper_for(d.db, team_id)).fits_chosen
    with disk_temporary_file() as tmp:  # on disk: a big download isn't held in RAM
        name = await slack_fetcher(d.settings, client)(source.ref, tmp)
        tmp.seek(0)
        return await asyncio.to_thread(_header_and_samples, tmp, name, source.label,
                                       d.settings.max_unzipped_bytes, fits_chosen,
                                       sheet)  # fmt: skip


def _header_and_samples(stream: BinaryIO, name: str, label: str, max_unzipped_bytes: int,
                        fits_chosen: Callable[[list[str]], bool] | None,
                        sheet: SheetRef | None) -> _Shown:  # fmt: skip
    with shown_reader(stream, name=name, label=label, max_unzipped_bytes=max_unzipped_bytes,
                      fits_chosen=fits_chosen, sheet=sheet) as reader:  # fmt: skip
        if (position := getattr(reader, "sheet_position", None)) is None:  # a CSV
            return _Shown(list(reader.header), samples(reader))
        others = zip(reader.other_positions, reader.other_sheets, strict=True)
        return _Shown(list(reader.header), samples(reader), (position, reader.sheet),
                      tuple(others))  # fmt: skip


async def _drawn(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, batch_id: int,
                 source_id: int, list_id: str, sheet: SheetRef | None = None) -> View:  # fmt: skip
    """The mapping modal of the file (of its `sheet`, for a workbook, else of the sheet it
    was last mapped on and read from), its header kept on the source for the submission; or
    a note saying why it can't be shown."""
    try:
        source = await _source_in_draft(d, client, team_id, user_id, batch_id, source_id)
        shown = await _read_columns(d, client, team_id, source,
                                    sheet if sheet is not None else read_sheet(source.header))
    except (Refusal, ReviewError) as exc:
        return note_modal(str(exc))
    except (CsvFileError, FileRejected) as exc:
        return note_modal(f"The file can't be read: {esc(str(exc))}")
    except FileHostUnavailable:
        return note_modal(HOST_BUSY)
    header = shown.header
    position, title = shown.sheet or (None, None)
    await keep_header(d.db, team_id, source_id, header, position, title)
    remembered = await recall(d.db, team_id, header)
    # a file without a header row: its mapping is kept on it, not remembered for others
    kept = kept_mapping(source.header) if remembered is None else None
    if kept is not None and not fits(header, kept):
        kept = None
    # named as the review message names it: the second customers.csv is customers (2).csv
    label = (await review.source_names(d.db, team_id, batch_id)).get(source_id, source.label)
    return mapping_modal(batch_id=batch_id, source_id=source_id, label=label,
                         header=header, samples=shown.samples,
                         current=remembered or kept or guess(header),
                         remembered=remembered is not None, kept=kept is not None,
                         headerless=is_data_row(header), list_id=list_id,
                         sheet=shown.sheet, other_sheets=shown.other_sheets)  # fmt: skip


async def _open(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    team_id, user_id = team_of(body), body["user"]["id"]
    batch_id, source_id = _ids(str(body["actions"][0].get("value") or ""))
    opened = await open_modal(client, body["trigger_id"], note_modal(READING),
                              push=(body.get("view") or {}).get("type") == "modal")  # fmt: skip
    below = body.get("view") or {}  # *All sources*: redrawn once the file is read again
    list_id = str(below.get("id") or "") if below.get("callback_id") == Callback.SOURCES else ""
    await fill_modal(client, opened, await _drawn(d, client, team_id, user_id, batch_id,
                                                  source_id, list_id))  # fmt: skip


async def on_sheet(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    """Another sheet of a workbook chosen in the modal: the modal shows its columns (a staff
    list's "Email" on the first sheet was all *Map columns* could offer)."""
    await ack()
    d = deps(context)
    view = body.get("view") or {}
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    batch_id, source_id = digits(str(meta.get("batch"))), digits(str(meta.get("source")))
    selected = str((body["actions"][0].get("selected_option") or {}).get("value") or "")
    # an option's value is the sheet's position; in a modal an older release drew (its
    # metadata holds the sheet's name), the name cut to 150 characters (excel._named)
    by_position = isinstance(sheet_ref(meta.get("sheet")), int)
    sheet = digits(selected) if by_position else selected or None
    if batch_id is None or source_id is None or sheet is None:
        return
    d.later.run(_switch(d, client, body, batch_id, source_id, sheet,
                        str(meta.get("list") or "")), client, body)  # fmt: skip


async def _switch(d: Deps, client: AsyncWebClient, body: dict[str, Any], batch_id: int,
                  source_id: int, sheet: SheetRef, list_id: str) -> None:  # fmt: skip
    view = body["view"]
    await update_modal(client, view["id"], note_modal(READING), hash=view.get("hash"))
    modal = await _drawn(d, client, team_of(body), body["user"]["id"], batch_id, source_id,
                         list_id, sheet)  # fmt: skip
    await update_modal(client, view["id"], modal)


async def on_click(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    # the first click on a review never recorded (the database away when it was posted)
    # records it, as its other buttons do; a click in *All sources* is no click on it
    d.later.run(on_review_message(d, client, body, lambda: _open(d, client, body),
                                  opens_modal=True), client, body, prompt=True)  # fmt: skip


async def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any],
                    client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Check the choice (field errors stay in the modal), then remember it and read again."""
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    meta = await form_meta(ack, view, "Map columns", required=("batch", "source"))
    if meta is None:
        return
    batch_id, source_id = meta["batch"], meta["source"]
    try:
        source = await _source_in_draft(d, client, team_id, user_id, batch_id, source_id)
    except (Refusal, ReviewError, LookupError) as exc:
        await ack(response_action="update", view=note_modal(str(exc)).to_dict())
        return
    header, sheet = kept_header(source.header)
    if (shown := meta.get("sheet")) is not None and shown != sheet:
        # opened again meanwhile (another window, a teammate) and switched to another sheet:
        # the kept header is that sheet's, which these positions don't describe. A modal an
        # older release drew holds the sheet's name, the kept one may be a position: told too
        told = _other_sheet(meta.get("title"), kept_title(source.header))
        await ack(response_action="update", view=note_modal(told).to_dict())
        return
    chosen = chosen_positions(view["state"]["values"])
    errors = mapping_errors(chosen, header)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    mapping = ColumnMap(**{f: None if i is None else column_name(header, i)
                           for f, i in chosen.items()})  # fmt: skip
    await ack(response_action="update", view=note_modal(SAVING).to_dict())
    d.later.run(_save(d, client, str(view.get("id") or ""), team_id, user_id, batch_id,
                      source_id, header, mapping, str(meta.get("list") or ""), sheet,
                      kept_title(source.header)), client, body)  # fmt: skip


def _other_sheet(shown: object, kept: str | None) -> str:
    """`shown`: the title this modal's metadata keeps (None in one an older release drew,
    whose sheet's name is unshown: it may be any length, and unprintable)."""
    here = (f"not “{esc(clip(str(shown), MAX_SHEET_TITLE))}” as here" if shown is not None
            else "not the one shown here")  # fmt: skip
    return (f"*Map columns* of this file was opened again since, on the sheet "
            f"“{esc(clip(kept or '', MAX_SHEET_TITLE))}”, {here}: nothing was saved. "
            "Open *Map columns* again to map the sheet you want.")


async def _save(
    d: Deps, client: AsyncWebClient, view_id: str, team_id: str, user_id: str, batch_id: int,
    source_id: int, header: list[str], mapping: ColumnMap, list_id: str = "",
    sheet: SheetRef | None = None, title: str | None = None,
) -> None:  # fmt: skip
    """Remember the mapping and queue the file's reading (after the ack); the modal says how
    it went: a second submission that passed the checks meanwhile is told the file is being
    read already. The *All sources* list it was opened from (`list_id`) shows the file being
    read, then read. A workbook is read again from the `sheet` its columns were mapped on
    (`title`: its name as shown)."""
    try:
        promoted = await reread_source(d.db, team_id, batch_id, source_id, header, mapping,
                                       user_id, sheet, title)  # fmt: skip
    except (ReviewError, LookupError) as exc:
        await update_modal(client, view_id, note_modal(str(exc)))
        return
    try:
        await update_modal(client, view_id, note_modal(
            SAVED if rememberable(header, mapping) else READ_WITHOUT_HEADER))  # fmt: skip
        await d.notifier.batch_changed(team_id, batch_id)
        if list_id:
            await d.notifier.show_list_when_read(team_id, batch_id, source_id, list_id)
    finally:  # committed already: a redraw Slack refused mustn't keep these stale
        for other in promoted:  # its skipped-rows CSV in the thread lists rows imported now
            await d.notifier.rejects_changed(team_id, batch_id, other)


def register(app: Routes) -> None:
    app.action(Action.MAP_COLUMNS)(on_click)
    app.action(Action.MAP_SHEET)(on_sheet)
    app.view(Callback.MAP_COLUMNS)(on_submit)
