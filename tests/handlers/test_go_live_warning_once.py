"""Go live warns of the sender once: on the click that put the campaign live.

The list's Go live guessed "put live by this click" after the fact, from the list (no
enrollment returned and some target): a campaign live already with no target, or live already
with its enrollment unfinished (which going live again returns, queuing its job again when it
was cancelled), repeated the sender warning on every click of a stale Go live button, as if
each had started the emails. The service says whether the click changed the state
(service.change_state).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from bot.campaigns.service import ENROLL_JOB, create_campaign, target
from bot.imports.cancel import cancel_job
from bot.workspaces import create_segment, ensure_workspace
from handlers.ids import Action
from tests.handlers.conftest import LEAD, Harness

TEAM = "T0001"
SHOP = "https://shop.example.com"
WARNING = "\n:warning: Invites of 'Spring' will come from \"shop.example.com\" "


async def _spring(app: Harness, *, targets: bool) -> int:
    """Spring, a draft with no sender made outside Slack (no save warned anyone), targeting
    VIP (empty) or nothing."""
    await ensure_workspace(app.db, TEAM)
    spring = await create_campaign(app.db, TEAM, "Spring", store_url=SHOP, created_by=LEAD)
    if targets:
        vip = await create_segment(app.db, TEAM, "VIP")
        await target(app.db, TEAM, spring.id or 0, vip.id or 0, requested_by=LEAD)
    return spring.id or 0


async def _go_live(app: Harness, campaign_id: int) -> str:
    """Click Go live on the list (a stale one, once the campaign is live); the note of the
    list that replaces it."""
    answer = (await app.click_in(await app.listing("campaign"), Action.CAMPAIGN_LIVE,
                                 str(campaign_id)))[-1]  # fmt: skip
    assert answer["replace_original"] is True
    assert app.slack.block_errors == []
    note = str(answer["text"])
    assert answer["blocks"][0]["text"]["text"] == note
    return note


async def _rows(app: Harness, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with app.db.begin() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def test_go_live_again_on_a_live_campaign_with_no_target_warns_no_more(
    app: Harness,
) -> None:
    spring = await _spring(app, targets=False)
    first = await _go_live(app, spring)
    assert first.startswith("Spring is live. It targets no segment yet") and WARNING in first
    again = await _go_live(app, spring)  # the stale button: it made nothing live
    assert again == first.split("\n")[0], again
    assert await _rows(app, "SELECT state FROM campaign WHERE id = :c", c=spring) == [("live",)]


@pytest.mark.parametrize("job", ["queued", "cancelled"])
async def test_go_live_again_with_the_enrollment_unfinished_warns_no_more(
    app: Harness, job: str
) -> None:
    """Its enrollment still waits for a worker (or its job was cancelled: Go live queues it
    again): the second click returns that enrollment, and puts nothing live."""
    spring = await _spring(app, targets=True)
    first = await _go_live(app, spring)
    assert first.startswith("Spring is live: enrolling its 1 target segment now.") and (
        WARNING in first), first
    (enrollment, job_id), = await _rows(
        app, "SELECT e.id, j.id FROM enrollment e JOIN job j ON j.kind = :k", k=ENROLL_JOB)
    if job == "cancelled":  # `referral-bot jobs cancel`: the enrollment stays queued
        assert await cancel_job(app.db, TEAM, job_id) is not None
    again = await _go_live(app, spring)
    assert again == "Spring is live: enrolling its 1 target segment now.", again
    # the same enrollment, its one job queued (again)
    assert await _rows(app, "SELECT e.id, e.status, j.id, j.state FROM enrollment e "
                       "JOIN job j ON j.kind = :k", k=ENROLL_JOB) == [
        (enrollment, "queued", job_id, "queued")]  # fmt: skip
    await app.settle()  # the enrollment runs (VIP is empty): then it is plainly live already
    assert await _go_live(app, spring) == "Spring is already live."
