"""Block builders for *Map columns*: the modal that says which header holds each field.

Options are the file's columns by position (a header may be blank or repeated), each shown
as "Header — sample1, sample2, sample3" so people recognise the column by its values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.ids import digits
from bot.imports.mapping import FIELD_LABELS, FIELDS, ColumnMap, position_of
from handlers.ids import Action, BlockId, Callback
from handlers.messages import MAX_OPTION_TEXT, clip, esc, metadata
from handlers.slack_text import cut_mrkdwn

NONE = "none"  # the "(none)" option's value; columns are their position
MAX_NAMED_SHEETS = 5  # other sheets of a workbook the modal names
MAX_SHEET_TITLE = 100  # characters of a sheet's name the modal shows (and its metadata keeps)
MAX_OPTIONS = 100  # Slack's limit for a static select
MAX_COLUMNS = MAX_OPTIONS - 1  # columns a field offers: room for "(none)" in every select
FIELD_BLOCKS = {"email": BlockId.MAP_EMAIL, "first_name": BlockId.MAP_FIRST_NAME,
                "last_name": BlockId.MAP_LAST_NAME, "locale": BlockId.MAP_LOCALE,
                "subscribed": BlockId.MAP_SUBSCRIBED}  # fmt: skip
HINTS = {
    "email": "Required: the column with the email addresses.",
    "locale": "Language of the invite, e.g. en, fr, pt-BR.",
    "subscribed": "Consent to marketing email (yes/no, subscribed, opted in…).",
}


def column_text(index: int, name: str, values: list[str]) -> str:
    """"Work Email — ada@example.com, bob@example.org, …", within Slack's 75 characters."""
    title = name.strip() or f"(column {index + 1}, no name)"
    shown = ", ".join(values) if values else "(empty)"
    return clip(f"{clip(title, 40)} — {shown}", MAX_OPTION_TEXT)


def _options(header: list[str], samples: list[list[str]], optional: bool,
             current: int | None) -> list[Option]:  # fmt: skip
    """The first MAX_COLUMNS columns, and always the `current` one: a column past
    them, shown unselected, was submitted as "(none)" by a person who only meant to fix
    another field (a consent column lost: unsubscribed people imported as subscribed). Every
    field offers as many (Email has no "(none)" but no extra column): the modal's note says
    how many can be chosen, and Email listing one more than it said looked like a mistake."""
    options = [Option(value=NONE, text="(none)")] if optional else []
    room = MAX_COLUMNS
    positions = list(range(min(len(header), room)))
    if current is not None and current >= room:
        positions[-1] = current
    options += [Option(value=str(i), text=column_text(i, header[i], samples[i]
                                                       if i < len(samples) else []))
                for i in positions]  # fmt: skip
    return options


def field_block(name: str, header: list[str], samples: list[list[str]],
                current: str | None) -> InputBlock:  # fmt: skip
    optional = name != "email"
    position = position_of(header, current) if current is not None else None
    options = _options(header, samples, optional, position)
    chosen = str(position) if position is not None else (NONE if optional else None)
    initial = next((o for o in options if o.value == chosen), None)
    return InputBlock(
        block_id=FIELD_BLOCKS[name], label=FIELD_LABELS[name], optional=optional,
        hint=HINTS.get(name),
        element=StaticSelectElement(action_id=Action.MAP_FIELD, options=options,
                                    initial_option=initial,
                                    placeholder="Choose a column"),
    )  # fmt: skip


def sheets_said(sheet: str, others: list[str]) -> str:
    """Which sheet of a workbook the columns are from, and its others: only one is read,
    and a person looking for the customers' columns on another sheet was shown a staff
    list's with no word of why."""
    said = f"These are the columns of the sheet “{esc(clip(sheet, MAX_SHEET_TITLE))}”"
    if not others:
        return said + ", the workbook's only sheet with data."
    names = ", ".join(f"“{esc(clip(o, MAX_SHEET_TITLE))}”" for o in others[:MAX_NAMED_SHEETS])
    more = len(others) - MAX_NAMED_SHEETS
    names += f" and {more} more" if more > 0 else ""
    return (f"{said}; only one sheet is read, not the workbook's others ({names}). To import "
            "another sheet, choose it under *Sheet* and map its columns: it is read in place "
            "of this one.")


def sheet_block(sheet: tuple[int, str], others: Sequence[tuple[int, str]]) -> SectionBlock:
    """The workbook's sheets with data, (position, title) each, the one shown chosen:
    choosing another shows its columns (mapping them makes the import read that sheet, see
    excel.XlsxReader). An option's value is the sheet's position: it was its name cut to 150
    characters, Slack's limit, and a sheet named longer was looked up by the cut name ("no
    longer in this workbook"), two sharing their first 150 characters by the same one."""
    options = [Option(value=str(position), text=clip(title, MAX_OPTION_TEXT))
               for position, title in [sheet, *others][:MAX_OPTIONS]]  # fmt: skip
    return SectionBlock(block_id=BlockId.MAP_SHEET, text=MarkdownTextObject(text="*Sheet*"),
                        accessory=StaticSelectElement(action_id=Action.MAP_SHEET,
                                                      options=options,
                                                      initial_option=options[0]))  # fmt: skip


def mapping_modal(*, batch_id: int, source_id: int, label: str, header: list[str],
                  samples: list[list[str]], current: ColumnMap,
                  remembered: bool, list_id: str = "", sheet: tuple[int, str] | None = None,
                  other_sheets: Sequence[tuple[int, str]] = (), headerless: bool = False,
                  kept: bool = False) -> View:  # fmt: skip
    """One select per field, the current mapping (remembered, else guessed) preselected;
    `list_id`: the *All sources* list under it, to redraw when the file is read again;
    `sheet`: for a workbook, the sheet the columns are from, (position, title), and its
    `other_sheets`. The metadata keeps the sheet's position and its title cut short: the
    whole name overflowed Slack's 3,000 characters ("Something went wrong on our side").
    `headerless`: the file has no header row (its first row holds an address), so its
    columns are chosen for it alone, never remembered for others (mapping.rememberable);
    `kept`: `current` is what it was chosen before (kept on the file)."""
    said = ("These columns were chosen for files with the same headers before." if remembered
            else "These columns were chosen for this file before." if kept
            else "Columns were guessed from their names.")  # fmt: skip
    if sheet is not None:
        said = f"{sheets_said(sheet[1], [title for _, title in other_sheets])} {said}"
    then = ("; it has no header row, so your choice is for this file alone" if headerless
            else ", and files with the same headers map themselves next time")  # fmt: skip
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(
            f"Which column of *{esc(label)}* holds each field? The file is read again with "
            f"your choice{then}."))),
        ContextBlock(elements=[MarkdownTextObject(text=cut_mrkdwn(said))]),
    ]  # fmt: skip
    if sheet is not None and other_sheets:
        blocks.append(sheet_block(sheet, other_sheets))
    blocks += [field_block(name, header, samples, getattr(current, name)) for name in FIELDS]
    if len(header) > MAX_COLUMNS:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"Only the first {MAX_COLUMNS} of {len(header)} columns can be chosen.")]))
    return View(type="modal", callback_id=Callback.MAP_COLUMNS, title="Map columns",
                submit="Read again", close="Cancel", blocks=blocks,
                private_metadata=metadata(batch=batch_id, source=source_id,
                                          **({"list": list_id} if list_id else {}),
                                          **({"sheet": sheet[0],
                                              "title": clip(sheet[1], MAX_SHEET_TITLE)}
                                             if sheet is not None else {})))  # fmt: skip


def note_modal(text: str, title: str = "Map columns") -> View:
    """A modal that only says something: "Reading the file…", or why it can't be mapped."""
    return View(type="modal", title=title, close="Close",
                blocks=[SectionBlock(text=MarkdownTextObject(text=cut_mrkdwn(text)))])  # fmt: skip


def chosen_positions(values: dict[str, Any]) -> dict[str, int | None]:
    """The submitted choice of each field: a column's position, or None for "(none)"."""
    out: dict[str, int | None] = {}
    for name, block in FIELD_BLOCKS.items():
        selected = ((values.get(block) or {}).get(Action.MAP_FIELD) or {}).get("selected_option")
        value = str((selected or {}).get("value") or NONE)
        out[name] = digits(value)
    return out


def mapping_errors(chosen: dict[str, int | None], header: list[str]) -> dict[str, str]:
    """Field errors for the modal: an email column is required, and a column serves once."""
    errors: dict[str, str] = {}
    if chosen.get("email") is None:
        errors[FIELD_BLOCKS["email"]] = "Choose the column that holds the email addresses."
    used: dict[int, str] = {}
    for name, position in chosen.items():
        if position is None:
            continue
        if position >= len(header):
            errors[FIELD_BLOCKS[name]] = "That column is not in the file any more."
        elif position in used:
            errors[FIELD_BLOCKS[name]] = (f"This column is already chosen for "
                                          f"{FIELD_LABELS[used[position]]}.")  # fmt: skip
        else:
            used[position] = name
    return errors


def none_skipped_now(label: str) -> str:
    """In the import's thread: the file has no rows skipped any more (read again with other
    columns, or the file its duplicates repeated was removed)."""
    return (f"None of the rows of *{esc(label)}* are skipped now: its skipped-rows CSV above "
            "no longer applies.")  # fmt: skip
