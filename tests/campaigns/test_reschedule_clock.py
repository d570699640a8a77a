"""A change of the invite delay makes the invites due by the database server's clock.

The invites not sent yet wait the new delay after their enrollment (invites.reschedule_waiting_in).
That enrollment's time was stamped by the clock of the host that asked for it (a lead's Target
click, `campaign target` in a shell), while due times are compared by the database server's:
enrolled on a host 90 s ahead, invites cut from a week's delay to none waited another 90 s
(their send job with them), and a day's delay ended 90 s late; on a host behind, early.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from bot.campaigns import service
from bot.jobs.queue import database_now
from tests.campaigns.conftest import TEAM, World
from tests.campaigns.test_send import _enrolled, _received, _send_worker
from tests.email.smtp_server import smtp_server
from tests.jobs.clock import POSTGRES_ONLY, skew_clock

pytestmark = POSTGRES_ONLY

DAY = timedelta(days=1).total_seconds()


async def _due(world: World) -> list[float]:
    """Each invite's due time, in seconds from now by the database server's clock."""
    now = await database_now(world.db)
    return [(due - now).total_seconds()
            for (due,) in await world.rows("SELECT send_after FROM invite ORDER BY id")]


@pytest.mark.parametrize("skew", [-90, 90], ids=["behind", "ahead"])
async def test_a_new_invite_delay_counts_from_the_enrollment_by_the_database_clock(
    world: World, monkeypatch: pytest.MonkeyPatch, skew: int
) -> None:
    with monkeypatch.context() as m:  # a lead on a host whose clock is off, throughout
        skew_clock(m, skew)
        await _enrolled(world, "a@example.com,A,en", "b@example.com,B,en", invite_delay_days=7)
        spring = int(str(await world.scalar("SELECT campaign_id FROM enrollment")))
        await service.update_campaign(world.db, TEAM, spring, invite_delay_days=1)
    assert all(DAY - 30 < due <= DAY for due in await _due(world)), await _due(world)

    with monkeypatch.context() as m:
        skew_clock(m, skew)
        await service.update_campaign(world.db, TEAM, spring, invite_delay_days=0)
    assert all(-30 < due <= 0 for due in await _due(world)), await _due(world)
    # due now: a worker whose clock is right sends them now, not once the skew has passed
    async with smtp_server() as server:
        assert await _send_worker(world, server).run_until_idle() >= 1
    assert _received(server) == Counter({"a@example.com": 1, "b@example.com": 1})
