"""*Send me the CSV* under a thread's offer: an import's skipped rows, a campaign's undelivered
invites. The CSV holds customers' addresses and names, so it goes by direct message to a
member of this workspace who clicks; a guest, or a member of another organisation in a
shared channel, is told why not. Written when asked, from the rows as they are then; the
audit log says who took a copy (a count, no address: a typed customer's address labels its
source, and the log outlives the rows)."""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from functools import partial
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import Act, import_subject, record
from bot.campaigns.reports import failed_invites
from bot.campaigns.service import CampaignError, get_campaign, get_enrollment
from bot.ids import digits
from bot.imports.batches import get_source, neutralise, write_rejects
from bot.imports.retention import rows_purged
from bot.imports.review import ReviewError, load
from bot.imports.source_names import told_apart
from bot.once import held
from bot.temp_files import spill_dir
from bot.words import plural
from handlers.context import Deps, Refusal, deps, require_member
from handlers.ids import Action
from handlers.messages import esc, file_stem, rejects_comment
from handlers.private_csv_messages import (
    OLD_BUTTON,
    none_skipped,
    none_undelivered,
    rows_forgotten,
    sent_note,
    source_being_read,
    source_removed,
    source_unreadable,
    undelivered_comment,
    under_way_note,
)
from handlers.respond import Click, ResponseUrlFailed, dm, dm_file, explained, respond
from handlers.routes import Routes
from models import SourceStatus
from models.clock import utcnow

log = logging.getLogger(__name__)
# a second click while the first one's file is on its way is told so; a holder killed
# mid-way lets go after this long
SENDING_STALE = timedelta(minutes=15)
WHAT = "see customers' details"  # "Only members of this workspace can <WHAT>."


async def _say(client: AsyncWebClient, click: Click, text: str) -> None:
    """A note where they clicked, else (an expired response_url) by direct message."""
    try:
        await respond(client, click.response_url, text, replace=False)
    except ResponseUrlFailed as exc:
        log.info("a CSV click's note to %s in %s goes by DM (%s)", click.user_id,
                 click.team_id, exc)  # fmt: skip
        await dm(client, click.user_id, text)


async def _one_at_a_time(d: Deps, client: AsyncWebClient, click: Click, key: str,
                         what: str, send: Callable[[], Awaitable[None]]) -> None:  # fmt: skip
    """Run `send` unless this person's earlier click on the same CSV is still sending it."""
    async with held(d.db, click.team_id, f"{key}:{click.user_id}",
                    stale_after=SENDING_STALE) as mine:  # fmt: skip
        if not mine:
            await _say(client, click, under_way_note(what))
            return
        await send()


# ---- an import's skipped rows ------------------------------------------------------------------


async def _skipped_rows(d: Deps, client: AsyncWebClient, click: Click) -> None:
    await require_member(client, click.team_id, click.user_id, what=WHAT)
    batch_text, _, source_text = click.value.partition(":")
    batch_id, source_id = digits(batch_text), digits(source_text)
    if batch_id is None or source_id is None:
        raise Refusal(OLD_BUTTON)
    try:
        source = await get_source(d.db, click.team_id, source_id)
        view = await load(d.db, click.team_id, batch_id)
    except (LookupError, ReviewError) as exc:
        raise Refusal(OLD_BUTTON) from exc
    if source.batch_id != batch_id:
        raise Refusal(OLD_BUTTON)
    label = told_apart(source, view.sources)
    if source.removed:
        await _say(client, click, source_removed(label))
    elif source.status == SourceStatus.PENDING:
        await _say(client, click, source_being_read(label))
    elif source.status == SourceStatus.FAILED:  # read again since, and unreadable now
        await _say(client, click, source_unreadable(label, source.error))
    else:
        what = f"The CSV of *{esc(label)}*'s skipped rows"
        send = partial(_send_skipped_rows, d, client, click, batch_id, source_id, label,
                       rejects_comment(label, view.counts_of(source)),
                       purged=rows_purged(view.batch, d.settings.staged_retention_days,
                                          utcnow()))  # fmt: skip
        await _one_at_a_time(d, client, click, f"skipped-csv:{source_id}", what, send)


async def _send_skipped_rows(d: Deps, client: AsyncWebClient, click: Click, batch_id: int,
                             source_id: int, label: str, comment: str, *,
                             purged: bool) -> None:  # fmt: skip
    # on disk, not a tmpfs: a million skipped rows held in RAM while they upload
    handle, path = tempfile.mkstemp(prefix="skipped-", suffix=".csv", dir=spill_dir())
    try:
        # utf-8-sig: Excel then reads the names right; the importer skips the BOM
        with os.fdopen(handle, "w", encoding="utf-8-sig", newline="") as out:
            rows = await write_rejects(d.db, click.team_id, batch_id, out, source_id=source_id)
        if not rows:
            days = d.settings.staged_retention_days
            await _say(client, click, rows_forgotten(label, days) if purged
                       else none_skipped(label))  # fmt: skip
            return
        await dm_file(client, click, file=path,
                      filename=f"{file_stem(label)}-skipped-rows.csv",
                      title=f"{label}: rows that won't be imported, and why",
                      initial_comment=comment)  # fmt: skip
    finally:
        os.unlink(path)
    await record(d.db, click.team_id, click.user_id, Act.IMPORT_SKIPPED_ROWS_SENT,
                 import_subject(batch_id), plural(rows, "row"))  # fmt: skip
    await _say(client, click, sent_note(f"The CSV of *{esc(label)}*'s skipped rows"))


# ---- a campaign's undelivered invites ----------------------------------------------------------


async def _undelivered(d: Deps, client: AsyncWebClient, click: Click) -> None:
    await require_member(client, click.team_id, click.user_id, what=WHAT)
    enrollment_id = digits(click.value)
    if enrollment_id is None:
        raise Refusal(OLD_BUTTON)
    try:
        enrollment = await get_enrollment(d.db, click.team_id, enrollment_id)
        campaign = (await get_campaign(d.db, click.team_id, enrollment.campaign_id)).name
    except CampaignError as exc:
        raise Refusal(OLD_BUTTON) from exc
    what = f"The CSV of *{esc(campaign)}*'s undelivered invites"
    send = partial(_send_undelivered, d, client, click, enrollment_id, campaign)
    await _one_at_a_time(d, client, click, f"undelivered-csv:{enrollment_id}", what, send)


async def _send_undelivered(d: Deps, client: AsyncWebClient, click: Click, enrollment_id: int,
                            campaign: str) -> None:  # fmt: skip
    failed = await failed_invites(d.db, click.team_id, enrollment_id)
    if not failed:
        await _say(client, click, none_undelivered(campaign))
        return
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "what happened"])
    for email, why in failed:
        writer.writerow(neutralise([email, why]))
    await dm_file(client, click, content=out.getvalue(),
                  filename=f"{file_stem(campaign)}-invites-not-delivered.csv",
                  title=f"{campaign}: invites that failed or may not have arrived",
                  initial_comment=undelivered_comment(campaign, len(failed)))  # fmt: skip
    await record(d.db, click.team_id, click.user_id, Act.CAMPAIGN_UNDELIVERED_SENT, campaign,
                 plural(len(failed), "invite"))  # fmt: skip
    await _say(client, click, sent_note(f"The CSV of *{esc(campaign)}*'s undelivered invites"))


Work = Callable[[Deps, AsyncWebClient, Click], Coroutine[Any, Any, None]]


def _on(work: Work) -> Callable[..., Coroutine[Any, Any, None]]:
    """The button's listener: ack, then `work` after the ack, a refusal said where they
    clicked."""

    async def listener(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                       context: dict[str, Any]) -> None:  # fmt: skip
        await ack()
        d, click = deps(context), Click.of(body)
        d.later.run(explained(work(d, client, click), client, click.response_url, refused=(),
                              what="CSV by DM", user_id=click.user_id), client, body)  # fmt: skip

    return listener


def register(app: Routes) -> None:
    app.action(Action.SEND_SKIPPED_ROWS)(_on(_skipped_rows))
    app.action(Action.SEND_UNDELIVERED)(_on(_undelivered))
