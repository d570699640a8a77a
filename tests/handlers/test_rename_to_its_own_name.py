"""Renaming a segment to the name it has changes nothing and says so: it recorded "renamed a
segment to VIP (was VIP)" and answered "*VIP* is now *VIP*", in Slack and in the shell."""

from __future__ import annotations

import asyncio

from bot.audit import recent
from bot.workspaces import create_segment, ensure_workspace, find_segment
from handlers.ids import Action, BlockId
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_segments import _button, _name
from tests.shell import run

TEAM = "T0001"
SAID = "The segment is already named 'VIP': nothing to change."


async def _renames(app: Harness) -> list[str]:
    return [e.detail for e in await recent(app.db, TEAM) if e.action == "segment.renamed"]


async def test_renaming_a_segment_to_its_own_name_in_slack_changes_nothing(
    app: Harness,
) -> None:
    await ensure_workspace(app.db, TEAM)
    await create_segment(app.db, TEAM, "VIP")
    listing = await app.listing("segments")
    rename = _button(listing, Action.SEGMENT_RENAME, "VIP")
    responses = await app.click_in(listing, Action.SEGMENT_RENAME, rename["value"])
    modal = app.slack.open_views(LEAD)[-1]
    # spacing is not kept, nor what shows nothing ("VIP" + U+200E was renamed "VIP is now
    # VIP", and recorded): the same name
    for typed in ("VIP", "  VIP ", "VIP\u200e", "V\u2063IP", "VIP\ufe0f"):
        reply = await app.requests.view_submission(state_values=_name(typed),
                                                   view_id=modal["id"], user_id=LEAD)
        await app.done()
        assert isinstance(reply.body, dict), reply.body  # not closed: told on the field
        assert reply.body["errors"] == {BlockId.SEGMENT_NAME: SAID}, reply.body
    assert [r["text"] for r in responses if "is now" in r.get("text", "")] == []
    assert await _renames(app) == []
    # its case is still its to change
    await app.requests.view_submission(state_values=_name("vip"), view_id=modal["id"],
                                       user_id=LEAD)  # fmt: skip
    await app.done()
    assert responses[-1]["text"] == ":pencil2: *VIP* is now *vip*."
    assert await _renames(app) == ["was VIP"]


async def test_renaming_a_segment_to_its_own_name_in_the_shell_changes_nothing(
    app: Harness, db_env: dict[str, str]
) -> None:
    await ensure_workspace(app.db, TEAM)
    await create_segment(app.db, TEAM, "VIP")
    done = await asyncio.to_thread(run, db_env, "segments", "rename", "vip", "VIP", "--team",
                                   TEAM)  # fmt: skip
    code, out, err = done.returncode, done.stdout, done.stderr
    assert (code, out) == (1, ""), (code, out, err)
    assert SAID in err
    assert await _renames(app) == []
    found = await find_segment(app.db, TEAM, "VIP")
    assert found is not None and found.name == "VIP"
