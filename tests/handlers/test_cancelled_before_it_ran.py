"""An approved import cancelled before a worker ran it: no "they stay", it has none."""

from __future__ import annotations

from handlers.ids import Action
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_decisions import _start
from tests.handlers.test_import_flow import _count


async def test_an_import_cancelled_before_it_ran_doesnt_say_its_contacts_stay(
    app: Harness,
) -> None:  # fmt: skip
    """Cancel import pressed while the approved import waits for a worker: nothing was
    imported, yet the thread says "0 of 2 contacts imported before it was cancelled (0 new,
    0 added to the segment). They stay in the segment." """
    message, batch = await _start(app)
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"],
                                    block_id=message["blocks"][-1].get("block_id"))  # fmt: skip
    await app.done()  # approved and queued; no worker has run it
    await app.requests.block_action(Action.CANCEL, batch, user_id=REP, message_ts=message["ts"])
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    cancelled = [t for t in thread if "was cancelled" in t]
    assert cancelled, thread
    assert "They stay in the segment" not in cancelled[0], cancelled[0]


def test_one_cancelled_part_way_still_says_what_it_added_stays() -> None:
    from handlers.messages import result_text
    from models import BatchStatus, ImportBatch

    batch = ImportBatch(team_id="T0001", segment_id=1, requested_by=REP,
                        status=BatchStatus.CANCELLED, cancelled_by=REP, valid=4, new_contacts=2,
                        added_to_segment=2)  # fmt: skip
    said = result_text(batch, "VIP")
    assert "2 of 4 contacts imported before it was cancelled" in said, said
    assert said.endswith("They stay in the segment."), said
