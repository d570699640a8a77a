"""Text cut to Slack's limits after it was escaped and its mentions built: never inside an
`&amp;` or a `<@U…>`, which Slack showed as "&am" or a broken mention, and always within
the limit."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import insert

from bot.imports.importer import import_files
from bot.segments import CampaignUse
from bot.workspaces import ensure_workspace
from handlers.ids import Action, BlockId
from handlers.mailchimp_messages import key_modal
from handlers.segment_messages import delete_modal
from handlers.slack_text import cut_mrkdwn
from models import CampaignState, SegmentRole, TeamLead
from tests.fakes.slack_api import block_problems, find_element, view_problems
from tests.handlers.conftest import LEAD, Harness

TEAM = "T0001"
_HALF_ENTITY = re.compile(r"&[A-Za-z0-9#]*\Z")
_MENTION = re.compile(r"<@U[0-9A-Z]+>")


def _cut_whole(text: str, limit: int = 3000) -> None:
    """`text` fits in `limit` and, if it was cut, ends in "…" after whole entities and tokens."""
    assert len(text) <= limit, len(text)
    head = text.removesuffix("…")
    assert not _HALF_ENTITY.search(head), head[-20:]
    assert head.rfind("<") <= head.rfind(">"), head[-20:]  # no token left open


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn text of these blocks (sections and context elements)."""
    found = [b["text"]["text"] for b in blocks if (b.get("text") or {}).get("type") == "mrkdwn"]
    found += [e["text"] for b in blocks for e in b.get("elements") or []
              if isinstance(e, dict) and e.get("type") == "mrkdwn"]  # fmt: skip
    return found


# ---- the helper -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "x", "xx", "xxx", "xxxx"])
def test_escaped_ampersands_are_cut_between_entities(prefix: str) -> None:
    text = prefix + "&amp;" * 1000
    cut = cut_mrkdwn(text)
    _cut_whole(cut)
    assert cut.endswith("&amp;…") and len(cut) > 2990


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc", "abcdefghijk"])
def test_mentions_and_links_are_cut_before_them_not_inside(prefix: str) -> None:
    mentions = prefix + ", ".join(f"<@U{i:08d}>" for i in range(400))
    cut = cut_mrkdwn(mentions)
    _cut_whole(cut)
    assert cut.endswith(">…") or cut.endswith(",…")
    links = prefix + " ".join(f"<https://x.example/{i}|a &amp; b>" for i in range(200))
    _cut_whole(cut_mrkdwn(links, 150), 150)


def test_text_that_fits_is_left_as_it_is_and_a_plain_ampersand_is_no_entity() -> None:
    assert cut_mrkdwn("&amp;" * 600) == "&amp;" * 600  # 3,000: fits
    assert cut_mrkdwn("Fish & chips; " * 300, 75) == ("Fish & chips; " * 6)[:74].rstrip() + "…"
    assert cut_mrkdwn("<@U1> said > 3 " + "x" * 80, 20) == "<@U1> said > 3 xxxx…"


# ---- what people see -------------------------------------------------------------------------


async def _done(app: Harness) -> None:
    for _ in range(2):
        await app.later.drain()
        await asyncio.sleep(0.01)


async def _answer(app: Harness, command: str) -> dict[str, Any]:
    url = app.slack.new_response_url("C0001", user_id=LEAD)
    await app.requests.slash_command(text=command, user_id=LEAD, response_url=url)
    await _done(app)
    answer: dict[str, Any] = app.slack.responses[url][-1]
    return answer


async def test_a_contacts_many_segment_names_full_of_ampersands_end_in_whole_entities(
    app: Harness,
) -> None:
    """The card names the segments past its 15 buttons in one line cut to fit: names of "&"
    (escaped "&amp;" each) ended in "&am…"."""
    await ensure_workspace(app.db, TEAM)
    for i in range(24):
        csv = "email,first_name,last_name\nada@example.com,Ada,Lovelace\n"
        await import_files(app.db, TEAM, [("people.csv", io.BytesIO(csv.encode()))],
                           segment=f"{i:02d}" + "&" * 98, create_segment=True)  # fmt: skip
    results = await _answer(app, "contacts ada@")
    show = find_element(results["blocks"], Action.CONTACT_SHOW)
    assert show is not None
    url = app.slack.new_response_url("C0001", user_id=LEAD)
    await app.requests.block_action(Action.CONTACT_SHOW, show[1]["value"], user_id=LEAD,
                                    response_url=url, message={"blocks": results["blocks"]})
    await _done(app)
    card = app.slack.responses[url][-1]
    assert block_problems(card["blocks"]) == []
    (more,) = [b for b in card["blocks"] if b.get("block_id") == BlockId.CONTACT_MORE_SEGMENTS]
    line = more["text"]["text"]
    assert line.startswith("…and 9 more segments: ") and line.endswith("&amp;…"), line[-30:]
    _cut_whole(line)
    assert "&" not in line.replace("&amp;", "")  # every name's "&" shown as typed
    assert app.slack.block_errors == []


async def test_the_leads_past_the_list_are_named_in_whole_mentions(app: Harness) -> None:
    """Past the 40 rows, the other leads are named in one line cut to fit: it ended in
    "<@U00002" (shown as the raw characters, not as a person)."""
    await _answer(app, "leads")  # the workspace's leads are seeded
    async with app.db.begin() as conn:
        await conn.execute(insert(TeamLead), [{"team_id": TEAM, "user_id": f"U{i:09d}",
                                                "added_by": LEAD} for i in range(300)])
    shown = await _answer(app, "leads")
    assert block_problems(shown["blocks"]) == []
    (rest,) = [t for t in _texts(shown["blocks"]) if t.startswith("…and ")]
    _cut_whole(rest)
    names = rest.removeprefix("…and ").removesuffix("…").rstrip(", ")
    assert all(_MENTION.fullmatch(name) for name in names.split(", ")), names[-40:]
    assert len(rest) > 3000 - len("<@U000000000>, …")  # as many as fit, not a few
    assert app.slack.block_errors == []


def test_a_segments_delete_confirmation_naming_many_campaigns_cuts_between_entities() -> None:
    for name in ("&" * 100, "x" + "&" * 99, "xx" + "<" * 98, "xxx" + ">" * 97):
        campaigns = [CampaignUse(f"{name}{i}", SegmentRole.TARGET, CampaignState.LIVE, i)
                     for i in range(20)]  # fmt: skip
        view = delete_modal("VIP", 10, campaigns, private_metadata="{}").to_dict()
        assert view_problems(view) == []
        (text,) = _texts(view["blocks"])
        _cut_whole(text)
        assert text.endswith("…")


def test_mailchimps_long_refusal_is_cut_between_entities() -> None:
    for pad in range(5):
        problem = "x" * pad + "<b> & " * 700  # Mailchimp's words, escaped
        view = key_modal(json.dumps({}), problem).to_dict()
        assert view_problems(view) == []
        for text in _texts(view["blocks"]):
            _cut_whole(text)
