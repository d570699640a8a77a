"""The "Review contacts" modal: pages, search and per-contact Remove."""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.contact_admin import MAX_QUERY
from bot.ids import digits
from bot.imports import review
from handlers.campaign_messages import notice_modal
from handlers.context import deps, id_in, list_meta, may_change, require_member, team_of
from handlers.ids import Action, Callback
from handlers.messages import (
    CONTACTS_PER_PAGE,
    CONTACTS_TITLE,
    PAGE_AFTER,
    PAGE_BEFORE,
    contacts_modal,
)
from handlers.modals import redraw_after_write
from handlers.placeholder import open_modal
from handlers.respond import fill_modal, update_modal
from handlers.review import on_review_message
from handlers.routes import Routes
from models import BatchStatus


async def _render(context: dict[str, Any], team_id: str, batch_id: int, query: str,
                  after: int = 0, before: int | None = None) -> View:  # fmt: skip
    """The page of rows after row `after` (or, with `before`, the one ending before it)."""
    d = deps(context)
    batch = await review.batch_of(d.db, team_id, batch_id)
    rows, total = await review.contacts_page(d.db, team_id, batch_id, query=query, after=after,
                                             before=before, limit=CONTACTS_PER_PAGE)  # fmt: skip
    if before is not None and len(rows) < CONTACTS_PER_PAGE:  # fewer than a page before it
        # (rows went): they start the list, so its first page (Previous showed the last)
        rows, total = await review.contacts_page(d.db, team_id, batch_id, query=query,
                                                 limit=CONTACTS_PER_PAGE)  # fmt: skip
    if not rows and total:  # rows went (a page's last removed, or a whole file): the last
        # page that has any
        rows, total = await review.contacts_page(d.db, team_id, batch_id, query=query,
                                                 last=True, limit=CONTACTS_PER_PAGE)
    offset = (await review.contacts_before(d.db, team_id, batch_id, rows[0].id, query=query)
              if rows else 0)  # fmt: skip
    return contacts_modal(batch_id=batch_id, rows=rows, total=total, offset=offset, query=query,
                          editable=batch.status == BatchStatus.DRAFT)  # fmt: skip


def _page(value: object) -> tuple[int, int | None]:
    """A page button's (after, before); any other value (a view older than row paging,
    whose value was an offset, or an id no row can have: `digits` reads none past an
    INTEGER column's MAX_INT, which PostgreSQL refused) starts afresh."""
    said = str(value or "")
    if said.startswith(PAGE_BEFORE) and (row := digits(said.removeprefix(PAGE_BEFORE))):
        return 0, row
    if said.startswith(PAGE_AFTER):
        return digits(said.removeprefix(PAGE_AFTER)) or 0, None
    return 0, None


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    """The contacts modal's private_metadata; anything but our own is refused."""
    return list_meta(body, "Review contacts")


async def open_contacts(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                        context: dict[str, Any]) -> None:  # fmt: skip
    await ack()

    async def work() -> None:
        batch_id = id_in(body["actions"][0].get("value"), "an import")
        await require_member(client, team_of(body), body["user"]["id"])
        await review.batch_of(deps(context).db, team_of(body), batch_id)  # this workspace's
        # a trigger id lives 3 s: the modal opens before the import's rows are counted (a
        # million of them, or a database busy with an apply, could outlast it)
        opened = await open_modal(client, body["trigger_id"],
                                  notice_modal(CONTACTS_TITLE, "Loading…"))  # fmt: skip
        await fill_modal(client, opened, await _render(context, team_of(body), batch_id, "", 0))

    # the first click on a review never recorded (the database away when it was posted)
    # records it, as its other buttons do
    d = deps(context)
    d.later.run(on_review_message(d, client, body, work, opens_modal=True), client, body,
                prompt=True)  # fmt: skip


async def _update(body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any], *,
                  query: str | None = None, page: tuple[int, int | None] | None = None,
                  written: bool = False) -> int:  # fmt: skip
    """Redraw the list; `written`: after a removal (see redraw_after_write), whose click was
    checked already. A page or a search is checked here: opening the list checks that the
    person is a member of the workspace, and a click in the list showed its contacts to
    anyone (a view left over, or forged)."""
    meta = _meta(body)
    batch_id = id_in(meta.get("batch"), "an import")
    if not written:
        await require_member(client, team_of(body), body["user"]["id"])
    # the search and the page as the list wrote them; any other shape starts afresh (a
    # query that wasn't text, an offset that wasn't a number failed the redraw after a Remove)
    kept_query = meta.get("query") if isinstance(meta.get("query"), str) else ""
    # drawn again from the page's first row (a Remove): its rows after stay in place
    start = digits(meta.get("start")) or 0
    after, before = (max(0, start - 1), None) if page is None else page

    async def render() -> View:
        return await _render(context, team_of(body), batch_id,
                             kept_query[:MAX_QUERY] if query is None else query, after,
                             before)  # fmt: skip

    if written:
        await redraw_after_write(client, body["view"]["id"], render,
                                 hash=body["view"].get("hash"))  # fmt: skip
    else:  # a quicker second click redrew it already (hash_conflict), or it was closed
        await update_modal(client, body["view"]["id"], await render(),
                           hash=body["view"].get("hash"))  # fmt: skip
    return batch_id


async def page(ack: Any, body: dict[str, Any], client: AsyncWebClient,
               context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    where = _page(body["actions"][0].get("value"))
    deps(context).later.run(_update(body, client, context, page=where), client, body)


async def search(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                 context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    query = str(body["actions"][0].get("value") or "")[:MAX_QUERY]  # the box's own limit
    deps(context).later.run(_update(body, client, context, query=query, page=(0, None)), client,
                            body)  # fmt: skip


async def remove_contact(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                         context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    team_id = team_of(body)
    batch_id = id_in(_meta(body).get("batch"), "an import")

    async def work() -> None:
        await may_change(d, client, team_id, body["user"]["id"], batch_id)
        staged_id = id_in(body["actions"][0].get("value"), "a contact")
        repeated = await review.remove_contact(d.db, team_id, batch_id, staged_id,
                                               actor=body["user"]["id"])  # fmt: skip
        try:
            # the review's counts first: the list's redraw may find the modal closed or changed
            await d.notifier.batch_changed(team_id, batch_id)
            await _update(body, client, context, written=True)
        finally:  # committed already: a redraw Slack refused mustn't keep these stale
            for other in repeated:  # its skipped-rows CSV lists a repeat removed now
                await d.notifier.rejects_changed(team_id, batch_id, other)

    d.later.run(work(), client, body)


async def done(ack: Any) -> None:
    await ack()  # "Done" just closes the modal: removals already happened


def register(app: Routes) -> None:
    app.view(Callback.CONTACTS)(done)
    app.action(Action.REVIEW_CONTACTS)(open_contacts)
    app.action(re.compile(f"^{Action.PAGE}(_next)?$"))(page)
    app.action(Action.SEARCH)(search)
    app.action(Action.REMOVE_CONTACT)(remove_contact)
