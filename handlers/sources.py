"""*All sources*: a modal paging through every source of an import, with their buttons.

The review message has room for 30 sources and 10 *Map columns* rows (Slack allows a message
50 blocks); an import of a ZIP of 35 CSVs left sources 31-35 without Remove or Map columns.
The message's *All sources* opens this modal at the page of the first source it lacks; its
Remove is the message's (same permission check, the message redrawn, the skipped-rows CSVs
that no longer apply shared anew) and redraws the modal; its Map columns pushes the mapping
modal on top of this one. Anyone of this workspace in the channel may look (not a member of
another organisation it is shared with); changing is for the requester or a team lead,
checked on the click, as on the message.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import digits
from bot.imports import review
from handlers.context import Deps, deps, id_in, list_meta, require_member, team_of
from handlers.ids import Action
from handlers.mapping_messages import note_modal
from handlers.messages import sources_modal
from handlers.modals import redraw_after_write
from handlers.placeholder import open_modal
from handlers.respond import fill_modal, update_modal
from handlers.review import on_review_message, remove_source
from handlers.routes import Routes

LOADING = ":hourglass_flowing_sand: Counting the sources…"


async def _render(d: Deps, team_id: str, batch_id: int, offset: int) -> View:
    return sources_modal(await review.load(d.db, team_id, batch_id), offset)


def _meta(body: dict[str, Any]) -> tuple[int, int]:
    """(batch, offset) of the modal clicked in; anything but our own metadata is refused."""
    meta = list_meta(body, "All sources")
    return digits(meta.get("batch")) or 0, digits(meta.get("offset")) or 0


async def _redraw(d: Deps, client: AsyncWebClient, body: dict[str, Any],
                  offset: int | None = None) -> None:  # fmt: skip
    """The modal anew at another page (a page past the end shows the last); a quicker second
    click redrew it already (hash_conflict), or it was closed: so be it."""
    batch_id, shown = _meta(body)
    view = await _render(d, team_of(body), batch_id, shown if offset is None else offset)
    await update_modal(client, body["view"]["id"], view, hash=body["view"].get("hash"))


async def _redraw_removed(d: Deps, client: AsyncWebClient, body: dict[str, Any]) -> None:
    """The modal anew after a Remove (see redraw_after_write)."""
    batch_id, shown = _meta(body)
    await redraw_after_write(client, body["view"]["id"],
                             lambda: _render(d, team_of(body), batch_id, shown),
                             hash=body["view"].get("hash"))  # fmt: skip


async def open_sources(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                       context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)

    async def work() -> None:
        batch_part, _, first = str(body["actions"][0].get("value") or "").partition(":")
        batch_id = id_in(batch_part, "an import")
        opened = await open_modal(client, body["trigger_id"],
                                  note_modal(LOADING, title="All sources"))  # fmt: skip
        await require_member(client, team_of(body), body["user"]["id"])  # said in the modal
        await fill_modal(client, opened, await _render(d, team_of(body), batch_id,
                                                       digits(first) or 0))  # fmt: skip

    # the first click on a review never recorded (the database away when it was posted)
    # records it, as its other buttons do, once the modal is open (its trigger id lives 3 s)
    d.later.run(on_review_message(d, client, body, work, opens_modal=True), client, body,
                prompt=True)  # fmt: skip


async def page(ack: Any, body: dict[str, Any], client: AsyncWebClient,
               context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    offset = digits(body["actions"][0].get("value")) or 0

    async def work() -> None:
        # as opening the list checks: a page showed the import's files to anyone
        await require_member(client, team_of(body), body["user"]["id"])
        await _redraw(d, client, body, offset)

    d.later.run(work(), client, body)


async def remove(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                 context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)

    async def work() -> None:
        _meta(body)  # a click in anything but this modal changes nothing
        await remove_source(d, client, team_of(body), body["user"]["id"],
                            str(body["actions"][0].get("value") or ""),
                            removed=lambda: _redraw_removed(d, client, body))  # fmt: skip

    d.later.run(work(), client, body)


def register(app: Routes) -> None:
    app.action(Action.SOURCES_OPEN)(open_sources)
    app.action(Action.SOURCES_NEXT)(page)
    app.action(Action.SOURCES_PREVIOUS)(page)
    app.action(Action.SOURCES_REMOVE)(remove)
