"""Campaign changes in the audit log, as Slack and the shell make them: create, edit, target,
exclude, go live and pause each leave one entry naming who did it, written in the change's
own transaction (a change refused leaves none), and shown by `/referral audit`."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.audit import Act, recent
from bot.campaigns import service
from handlers.audit_messages import entry_line
from models import CampaignState
from tests.campaigns.conftest import TEAM, World, people

LEAD = "U0LEAD"


async def _new_entries(world: World, since: int) -> list[tuple[str, str, str, str]]:
    """(actor, action, subject, detail) of the entries after id `since`, oldest first."""
    return [(e.actor, e.action, e.subject, e.detail)
            for e in reversed(await recent(world.db, TEAM)) if e.id > since]  # fmt: skip


async def _last_id(world: World) -> int:
    newest = await recent(world.db, TEAM, limit=1)
    return newest[0].id if newest else 0


async def test_each_campaign_change_leaves_one_entry_by_whoever_made_it(world: World) -> None:
    await world.import_csv("VIP", people("ana@example.com,Ana,"))
    await world.import_csv("Staff", people("sam@example.com,Sam,"))
    vip, staff = await world.segment_id("VIP"), await world.segment_id("Staff")
    steps = []
    mark = await _last_id(world)
    spring = await service.create_campaign(world.db, TEAM, "Spring",
                                           store_url="https://shop.example",
                                           created_by=LEAD)  # fmt: skip
    cid = spring.id or 0
    steps.append(await _new_entries(world, mark))
    for change in (
        lambda: service.update_campaign(world.db, TEAM, cid, actor=LEAD, offer="Give 10%",
                                        invite_delay_days=2),
        lambda: service.target(world.db, TEAM, cid, vip, requested_by=LEAD, queue_job=False),
        lambda: service.exclude(world.db, TEAM, cid, staff, requested_by=LEAD),
        lambda: service.set_state(world.db, TEAM, cid, CampaignState.LIVE, requested_by=LEAD,
                                  queue_job=False),
        lambda: service.pause(world.db, TEAM, cid, requested_by=LEAD),
        lambda: service.set_state(world.db, TEAM, cid, CampaignState.LIVE, requested_by=LEAD,
                                  queue_job=False),
    ):  # fmt: skip
        mark = await _last_id(world)
        await change()
        steps.append(await _new_entries(world, mark))

    assert steps == [
        [(LEAD, Act.CAMPAIGN_CREATED, "Spring",
          "store URL https://shop.example; invite email on; no sender set")],
        [(LEAD, Act.CAMPAIGN_EDITED, "Spring", "offer Give 10%; invite delay 2 days")],
        [(LEAD, Act.CAMPAIGN_TARGETED, "Spring", "VIP")],
        [(LEAD, Act.CAMPAIGN_EXCLUDED, "Spring", "Staff")],
        [(LEAD, Act.CAMPAIGN_LIVE, "Spring", "")],
        [(LEAD, Act.CAMPAIGN_PAUSED, "Spring", "")],
        [(LEAD, Act.CAMPAIGN_LIVE, "Spring", "it was paused")],
    ]  # fmt: skip
    # Slack's audit log reads them as it reads every entry
    [live] = await recent(world.db, TEAM, limit=1)
    assert "<@U0LEAD> put the campaign Spring live (it was paused)" in entry_line(live, {})
    [target] = [e for e in await recent(world.db, TEAM) if e.action == Act.CAMPAIGN_TARGETED]
    assert "<@U0LEAD> made a segment a target of the campaign Spring (VIP)" in entry_line(
        target, {})  # fmt: skip


async def test_a_switch_between_target_and_excluded_is_said_in_the_entry(world: World) -> None:
    await world.import_csv("VIP", people("ana@example.com,Ana,"))
    vip = await world.segment_id("VIP")
    spring = await world.campaign()  # live, its invite email on
    await world.target(spring, "VIP")  # ana's invite is queued
    mark = await _last_id(world)
    await service.exclude(world.db, TEAM, spring, vip, requested_by=LEAD)
    await service.targeting(world.db, TEAM, spring, vip, requested_by=LEAD, queue_job=False)
    await service.targeting(world.db, TEAM, spring, vip, requested_by=LEAD, queue_job=False)
    assert [(a, d) for _, a, _, d in await _new_entries(world, mark)] == [
        (Act.CAMPAIGN_EXCLUDED, "VIP; it was a target; 1 waiting invite cancelled"),
        (Act.CAMPAIGN_TARGETED, "VIP; it was excluded"),
        (Act.CAMPAIGN_TARGETED, "VIP; it was a target already")]  # fmt: skip


async def test_a_change_that_changes_nothing_or_is_refused_leaves_no_entry(world: World) -> None:
    spring = await service.create_campaign(world.db, TEAM, "Spring",
                                           store_url="https://shop.example",
                                           created_by=LEAD)  # fmt: skip
    cid = spring.id or 0
    mark = await _last_id(world)
    with pytest.raises(service.CampaignError, match="is a draft"):
        await service.pause(world.db, TEAM, cid, requested_by=LEAD)
    with pytest.raises(service.CampaignError, match="already exists"):
        await service.create_campaign(world.db, TEAM, "SPRING", store_url="https://s.example",
                                      created_by=LEAD)  # fmt: skip
    with pytest.raises(service.CampaignError, match="Someone saved this campaign"):
        await service.update_campaign(world.db, TEAM, cid, actor=LEAD, offer="Give 5%",
                                      opened=datetime(2000, 1, 1))  # fmt: skip
    await service.update_campaign(world.db, TEAM, cid, actor=LEAD,
                                  store_url="https://shop.example")  # as it was  # fmt: skip
    await service.set_state(world.db, TEAM, cid, CampaignState.LIVE, requested_by=LEAD,
                            queue_job=False)  # fmt: skip
    await service.set_state(world.db, TEAM, cid, CampaignState.LIVE, requested_by=LEAD,
                            queue_job=False)  # live again: nothing changed  # fmt: skip
    assert [a for _, a, _, _ in await _new_entries(world, mark)] == [Act.CAMPAIGN_LIVE]


async def test_a_name_taken_is_said_as_the_campaign_spells_it(world: World) -> None:
    """"A campaign named 'spring' already exists" echoed the name typed, not the one the
    list shows."""
    await service.create_campaign(world.db, TEAM, "Spring Sale", store_url="https://s.example")
    autumn = await service.create_campaign(world.db, TEAM, "Autumn",
                                           store_url="https://s.example")  # fmt: skip
    with pytest.raises(service.CampaignError) as created:
        await service.create_campaign(world.db, TEAM, "spring  SALE",
                                      store_url="https://s.example")  # fmt: skip
    with pytest.raises(service.CampaignError) as renamed:
        await service.update_campaign(world.db, TEAM, autumn.id or 0, name="SPRING sale")
    assert str(created.value) == str(renamed.value) == (
        "A campaign named 'Spring Sale' already exists.")  # fmt: skip
    # its own name in another case is no clash
    assert (await service.update_campaign(world.db, TEAM, autumn.id or 0,
                                          name="AUTUMN")).name == "AUTUMN"  # fmt: skip
