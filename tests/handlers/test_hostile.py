"""Attackers and careless input: unsigned requests, Slack markup in names, who may change what."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.imports.batches import create_batch, stage_contact
from bot.log_lines import log_handler
from bot.workspaces import ensure_workspace, import_target, resolve_team
from handlers.ids import Action, BlockId, Callback
from tests.fakes.slack_api import FakeExternalHost
from tests.fakes.slack_requests import block_actions_payload, interactive_body
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_cancel_and_outages import _offer
from tests.handlers.test_decisions import _start
from tests.handlers.test_import_flow import CSV, _count, _form, _open_modal, _review

STRANGER = "U0777"
OUTSIDER, OTHER_ORG = "U0EXT", "T0EXT"  # a member of the organisation C0001 is shared with
OUTSIDER_REFUSAL = "Only members of this workspace can see or change its imports and segments."
EVIL = "<!channel> Promo <https://evil.example|Approve> & more"


async def test_a_request_with_a_malformed_timestamp_gets_401_and_no_web_api_call(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    payload = block_actions_payload(Action.APPROVE, "1", user_id="U0VICTIM1", team_id="T0001",
                                    channel_id="C0VICTIM1")  # fmt: skip
    # 400 digits: bolt's float() of it overflowed, logged as an error of its own with the
    # whole number, twice (8 KB of it a line); a digit of another script, and a sign
    for timestamp in ("notanumber", "", "12.5", "9" * 400, "\u0661\u0662", "-1"):
        reply = await app.requests.send(
            interactive_body(payload), "application/x-www-form-urlencoded",
            headers={"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=00"},
        )  # fmt: skip
        assert reply.status == 401, timestamp
    await app.settle()
    assert app.slack.calls == []
    said = [r.getMessage() for r in caplog.records]
    assert not [line for line in said if "OverflowError" in line or "9" * 50 in line], said
    assert len([line for line in said if "without a valid Slack timestamp" in line]) == 6, said


async def test_slacks_unsigned_ssl_check_is_answered_200_and_nothing_else(
    app: Harness,
) -> None:  # fmt: skip
    """Slack checks the certificate with `ssl_check=1` and no signature headers (bolt answers it
    200 before verifying): it got 401 here, so Slack reported the Request URL as failing."""
    for body in (b"ssl_check=1&token=xxx", b"ssl_check=1&" + interactive_body(
            block_actions_payload(Action.APPROVE, "1", user_id="U0VICTIM1"))):  # fmt: skip
        async with aiohttp.ClientSession() as session, session.post(
            app.requests.url, data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"},
        ) as response:  # fmt: skip
            assert response.status == 200 and await response.text() == ""
    reply = await app.requests.send(b"ssl_check=0&token=xxx", "application/x-www-form-urlencoded",
                                    headers={"X-Slack-Request-Timestamp": ""})  # fmt: skip
    assert reply.status == 401  # anything else unsigned is still refused
    await app.settle()
    assert app.slack.calls == []


async def test_an_unsigned_body_never_reaches_the_log(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """bolt logged a refused request's body at INFO (serve's level): a made-up log line after a
    newline, a megabyte a request, or a genuine request's response_url when its clock was off.
    One line of ours says it was refused, with where from and how big."""
    forged = "\n2030-01-01 00:00:00,000 WARNING bot.web: FORGED LINE\n"
    payload = block_actions_payload(Action.APPROVE, "1", user_id="U0VICTIM1")
    payload["response_url"] = "https://hooks.slack.com/actions/T0001/1/SECRETHOOK"
    body = interactive_body(payload) + b"&x=" + forged.encode() + b"p" * 100_000
    # bolt's loggers take the root's level when the app is built: serve's INFO
    caplog.set_level(logging.INFO, logger="slack_bolt.RequestVerification")
    with caplog.at_level(logging.DEBUG):
        reply = await app.requests.send(body, "application/x-www-form-urlencoded", headers={
            "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"})
    assert reply.status == 401
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "FORGED LINE" not in said and "SECRETHOOK" not in said and "ppppp" not in said
    refused = [r.getMessage() for r in caplog.records if "bad or stale Slack signature" in
               r.getMessage()]  # fmt: skip
    assert len(refused) == 1 and f"({len(body)} bytes" in refused[0]
    await app.settle()
    assert app.slack.calls == []


@pytest.mark.parametrize("body", [b"payload=not-json", b"{not json", b"payload=1", b"payload=[1]",
                                  b"payload=%FF%FE",
                                  # JSON objects bolt reads ids out of before the signature
                                  # is checked: a 500 and an ERROR traceback each
                                  b'{"authorizations": 5, "event": 5}', b'{"authorizations": "x"}',
                                  b'{"event": {"channel": 5}}',
                                  b"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A5"
                                  b"%2C%22team%22%3A5%2C%22channel%22%3A5%7D"])  # fmt: skip
async def test_a_malformed_unsigned_body_gets_400_not_a_crash(
    app: Harness, caplog: pytest.LogCaptureFixture, body: bytes,
) -> None:  # fmt: skip
    with caplog.at_level(logging.INFO):
        reply = await app.requests.send(body, "application/x-www-form-urlencoded", headers={
            "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"})
    assert reply.status == 400
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("refused a malformed request" in r.getMessage() for r in caplog.records)
    assert app.slack.calls == []


@pytest.mark.parametrize(("body", "content_type"), [
    (b"command=%2Freferral&text=help", "application/x-www-form-urlencoded; charset=nope"),
    (b'{"a":' * 100_000, "application/json"),  # nested past Python's recursion limit
])  # fmt: skip
async def test_a_made_up_charset_or_deep_json_is_refused_not_a_500(
    app: Harness, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str,
) -> None:  # fmt: skip
    """Anyone can send these before the signature is checked: a LookupError and a
    RecursionError answered 500 with a traceback in the log. Now the charset is ignored (Slack
    sends UTF-8) and the unsigned request refused; the deep JSON is malformed."""
    with caplog.at_level(logging.INFO):
        reply = await app.requests.send(body, content_type, headers={
            "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"})
    assert reply.status == (401 if "charset" in content_type else 400)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert app.slack.calls == []


async def test_the_error_handler_never_acts_on_an_unverified_request(app: Harness) -> None:
    """Even past the HTTP route (e.g. another adapter), bolt's own failure path stays silent."""
    from slack_bolt.request.async_request import AsyncBoltRequest

    from bot.app import build_app, slack_client

    bolt = build_app(app.settings, slack_client(app.settings), app.db, app.later)
    body = interactive_body(block_actions_payload(Action.APPROVE, "1", user_id="U0VICTIM1",
                                                  channel_id="C0VICTIM1"))  # fmt: skip
    response = await bolt.async_dispatch(AsyncBoltRequest(
        body=body.decode(), headers={"content-type": "application/x-www-form-urlencoded",
                                     "x-slack-request-timestamp": "notanumber",
                                     "x-slack-signature": "v0=00"},
    ))  # fmt: skip
    await app.later.drain()
    assert response.status == 401
    assert app.slack.calls == []


async def test_slack_markup_in_names_is_shown_as_typed_everywhere(app: Harness) -> None:
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "<!here>.csv", CSV)
    await app.requests.view_submission(state_values=_form(files=[file], segment=EVIL),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    batch = message["blocks"][-1]["elements"][0]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    posted = [c.args for c in app.slack.calls
              if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")]  # fmt: skip
    assert posted
    for args in posted:
        # mrkdwn and `text` are parsed by Slack: the raw markup must never reach them
        for text in _mrkdwn_texts(args):
            assert "<!channel>" not in text and "<!here>" not in text, text
            assert "<https://evil.example" not in text, text
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("&lt;!channel&gt; Promo &lt;https://evil.example|Approve&gt; &amp; more" in t
               for t in thread)  # fmt: skip
    header = app.slack.message("C0001", message["ts"])["blocks"][0]
    assert header["type"] == "header" and EVIL in header["text"]["text"]  # plain_text: as typed
    (upload,) = await app.csvs_sent(message["ts"])  # by DM, said as typed over it
    assert "&lt;!here&gt;.csv" in (upload.initial_comment or "")
    (note,) = [r["text"] for url in app.slack.responses for r in app.slack.responses[url]]
    assert "&lt;!here&gt;.csv" in note and "<!here>" not in note, note


def _mrkdwn_texts(args: dict) -> list[str]:
    texts = [args.get("text") or ""]
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                texts.append(node.get("text", ""))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return texts


async def test_only_the_requester_or_a_lead_changes_a_draft(app: Harness) -> None:
    message, batch = await _start(app)
    remove = next(b for b in message["blocks"]
                  if b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE)  # fmt: skip
    await app.requests.block_action(Action.REMOVE_SOURCE, remove["accessory"]["value"],
                                    user_id=STRANGER, message_ts=message["ts"])  # fmt: skip
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=STRANGER,
                                    message_ts=message["ts"])  # fmt: skip
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=STRANGER,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(STRANGER)[-1]  # anyone may look
    assert modal["callback_id"] == Callback.CONTACTS
    row = next(b for b in modal["blocks"] if b.get("accessory", {}).get("action_id")
               == Action.REMOVE_CONTACT)  # fmt: skip
    await app.requests.block_action(Action.REMOVE_CONTACT, row["accessory"]["value"],
                                    user_id=STRANGER, view=modal["id"])  # fmt: skip
    await app.settle()
    refusals = [e["text"] for e in app.slack.ephemerals if e["user"] == STRANGER]
    dms = [m["text"] for m in app.slack.messages if m["channel"].startswith("D")]
    assert len(refusals) == 2 and all(f"Only <@{REP}>" in t for t in refusals)
    assert any(f"Only <@{REP}>" in t for t in dms)  # the modal button: told by DM
    assert app.slack.open_views(STRANGER) == [modal]  # no Add more form for them
    assert await _count(app, "SELECT COUNT(*) FROM import_source WHERE removed") == 0
    assert await _count(app, "SELECT COUNT(*) FROM staged_row WHERE removed") == 0

    await app.requests.block_action(Action.REMOVE_SOURCE, remove["accessory"]["value"],
                                    user_id=LEAD, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM import_source WHERE removed") == 1


async def test_admins_of_another_workspace_are_not_leads_here(app: Harness) -> None:
    app.slack.users["U0GUEST"] = {"team_id": "T0OTHER", "is_admin": True, "is_owner": True}
    app.slack.users["U0ADMIN"] = {"is_admin": True}
    message, batch = await _start(app)
    await app.requests.block_action(Action.APPROVE, batch, user_id="U0GUEST",
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert app.slack.ephemerals[-1]["text"] == "Only members of this workspace can approve imports."
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
    await app.requests.block_action(Action.APPROVE, batch, user_id="U0ADMIN",
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2


async def test_a_form_submitted_from_another_organisation_is_judged_in_this_workspace(
    app: Harness,
) -> None:  # fmt: skip
    """C0001 is shared with another organisation (Slack Connect). A form one of its members
    submits carries their organisation as `team` and this workspace as
    `view.app_installed_team_id`: the submission ran against their organisation ("That
    import doesn't exist in this workspace.") and made a workspace row for it, after which
    every CLI command wanting the only workspace said "There are several workspaces". Now it
    is judged here, refused in the form, and no workspace is made."""
    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    _, batch = await _start(app)
    reply = await app.requests.view_submission(
        Callback.IMPORT, _form(email="late@example.com"), user_id=OUTSIDER, team_id=OTHER_ORG,
        private_metadata=json.dumps({"batch": int(batch), "channel": "C0001"}),
    )  # fmt: skip
    await app.settle()
    assert reply.body["response_action"] == "update"
    assert OUTSIDER_REFUSAL in json.dumps(reply.body["view"]["blocks"])
    assert await _count(app, "SELECT COUNT(*) FROM workspace") == 1
    assert await resolve_team(app.db, None) == "T0001"
    assert await _count(app, "SELECT COUNT(*) FROM staged_row WHERE email LIKE 'late@%'") == 0


async def test_a_form_submitted_from_another_organisation_names_no_campaign_or_segment(
    app: Harness,
) -> None:  # fmt: skip
    """C0001 is shared with another organisation (Slack Connect); one of its members submits
    the import form (opened for them before the refusal replaced it). The form's checks ran
    before anyone asked whether they are a member: its inline errors named this workspace's
    live campaign ("Spring Secret Sale will email these people an invite") and said which
    segment names exist ("VIP Partners already exists"), which the refusal never shows."""
    from bot.campaigns import service
    from bot.workspaces import find_segment
    from models import CampaignState

    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    await ensure_workspace(app.db, "T0001")
    await import_target(app.db, "T0001", "VIP Partners", create=True)
    everyone = await find_segment(app.db, "T0001", "All Customers")
    assert everyone is not None
    spring = await service.create_campaign(app.db, "T0001", "Spring Secret Sale",
                                           store_url="https://shop.example")  # fmt: skip
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=LEAD, queue_job=False)  # fmt: skip
    await service.target(app.db, "T0001", spring.id or 0, everyone.id or 0,
                         requested_by=LEAD, queue_job=False)  # fmt: skip
    reply = await app.requests.view_submission(
        Callback.IMPORT, _form(segment="vip partners", email="late@example.com"),
        user_id=OUTSIDER, team_id=OTHER_ORG, private_metadata=json.dumps({"channel": "C0001"}),
    )  # fmt: skip
    await app.settle()
    shown = json.dumps(reply.body)
    assert "Spring Secret Sale" not in shown and "VIP Partners" not in shown, shown
    assert OUTSIDER_REFUSAL in shown, shown
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


async def test_a_form_from_another_organisation_names_nothing_when_slack_fails_to_say(
    app: Harness,
) -> None:  # fmt: skip
    """users.info answering an error (ratelimited, fatal_error) as the form is submitted: the
    membership check let the form's checks run for the outsider, their inline errors naming
    this workspace's segments ("VIP Partners already exists"). Nothing is checked or made
    until Slack says who they are."""
    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    await ensure_workspace(app.db, "T0001")
    await import_target(app.db, "T0001", "VIP Partners", create=True)
    app.slack.fail("users.info", "ratelimited")
    reply = await app.requests.view_submission(
        Callback.IMPORT, _form(segment="vip partners", email="late@example.com"),
        user_id=OUTSIDER, team_id=OTHER_ORG, private_metadata=json.dumps({"channel": "C0001"}),
    )  # fmt: skip
    await app.settle()
    shown = json.dumps(reply.body)
    assert "VIP Partners" not in shown, shown
    assert "Slack couldn't tell me who you are just now" in shown, shown
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


async def non_member_clicks_in_the_reviews_channel(app: Harness, user: str,
                                                   message: dict[str, Any], batch: str,
                                                   ) -> dict[str, Any]:  # fmt: skip
    """`user`, no member of the workspace, clicks *Review contacts*, *Preview only* and *All
    sources* on the review `message`, types `/referral import`, and uploads a CSV to its
    channel; the offer's segment menu lists nothing to them. Returns the upload's offer."""
    for action, value in ((Action.REVIEW_CONTACTS, batch), (Action.PREVIEW_ONLY, batch),
                          (Action.SOURCES_OPEN, f"{batch}:0")):  # fmt: skip
        await app.requests.block_action(action, value, user_id=user, message_ts=message["ts"])
    await app.requests.slash_command(text="import", user_id=user)
    app.slack.add_file("F0002", "theirs.csv", b"email\nok@example.org\n", channels=["C0001"],
                       user=user)  # fmt: skip
    offer = await _offer(app)
    menu = await app.requests.block_suggestion(Action.UPLOAD_SEGMENT, "", block_id=BlockId.UPLOAD,
                                               user_id=user)  # fmt: skip
    assert menu.body["options"] == []
    return offer


async def review_upload_into_a_new_segment(app: Harness, user: str,
                                           offer: dict[str, Any]) -> None:  # fmt: skip
    """`user` clicks *Review import* on the upload's `offer`, a new segment "Partners" chosen."""
    new = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {"type": "external_select", "selected_option": {
        "text": {"type": "plain_text", "text": "New segment"}, "value": "new:Partners"}}}}
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=user,
                                    message_ts=offer["ts"], state_values=new)  # fmt: skip
    await app.settle()


async def test_a_member_of_another_organisation_is_shown_and_starts_nothing(
    app: Harness,
) -> None:  # fmt: skip
    """C0001 is shared with another organisation (Slack Connect). One of its members clicked
    *Review contacts* on a review there and read every staged contact's email and name;
    *Preview only* and *All sources* showed the import; the upload offer's menu listed the
    segments with their sizes, and *Review import* made a segment and started a review. Now
    each is refused in words, as the lead checks refuse them, and nothing is made."""
    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    message, batch = await _start(app)
    offer = await non_member_clicks_in_the_reviews_channel(app, OUTSIDER, message, batch)
    # the import form's segment menu, loaded before the form was replaced by the refusal
    menu = await app.requests.block_suggestion(Action.SEGMENT, "", block_id=BlockId.SEGMENT,
                                               user_id=OUTSIDER)  # fmt: skip
    assert menu.body["options"] == []
    await review_upload_into_a_new_segment(app, OUTSIDER, offer)
    told = [e["text"] for e in app.slack.ephemerals if e["user"] == OUTSIDER]
    assert told == [OUTSIDER_REFUSAL] * 3  # contacts, preview, review import
    shown = json.dumps(app.slack.open_views(OUTSIDER))
    assert "example.com" not in shown and "example.org" not in shown and "q3.csv" not in shown
    assert shown.count(OUTSIDER_REFUSAL) == 2  # All sources, the import form: said there
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE name = 'Partners'") == 0
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 1


async def test_a_member_check_slack_cannot_answer_shows_nothing(app: Harness) -> None:
    """users.info failing is no answer: the contacts stay hidden, as a lead check fails."""
    message, batch = await _start(app)
    app.slack.fail("users.info", "fatal_error")
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert app.slack.open_views(REP) == []
    assert "went wrong" in app.slack.ephemerals[-1]["text"]


async def test_team_leads_of_one_workspace_are_not_leads_of_another(app: Harness) -> None:
    """TEAM_LEADS seeds every workspace's list alike: one workspace's lead (users.info says
    T0001) approved another workspace's import, skipping the check `/referral leads` makes."""
    app.slack.users[LEAD] = {"team_id": "T0001"}
    await ensure_workspace(app.db, "T0002")
    segment = await import_target(app.db, "T0002", "Theirs", create=True)
    theirs = await create_batch(app.db, "T0002", segment.id or 0, "U0900")
    await stage_contact(app.db, "T0002", theirs.id or 0, email="their@example.com")
    await app.requests.block_action(Action.APPROVE, str(theirs.id), user_id=LEAD,
                                    team_id="T0002", message_ts="1.0")  # fmt: skip
    await app.settle()
    # a member of another workspace: refused as one, and not told who the leads are
    assert app.slack.ephemerals[-1]["text"] == "Only members of this workspace can approve imports."
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
    message, batch = await _start(app)  # their own workspace: still a lead
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2


async def test_every_cell_of_the_skipped_rows_csv_is_formula_safe(app: Harness) -> None:
    view_id = await _open_modal(app)
    nasty = (b"email,first_name,last_name\n"
             b"=cmd|' /C calc'!A0,@SUM(1),+1\n"
             b"a@example.com,A,\n"
             b"A@example.com,-2,\n")  # fmt: skip
    file = app.slack.add_file("F0001", "=HYPERLINK(evil).csv", nasty)
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    (upload,) = await app.csvs_sent(app.slack.find_action(Action.APPROVE, "C0001")["ts"])
    content = (upload.content or b"").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0][0] == "source" and len(rows) == 3
    for row in rows[1:]:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@"), row
    assert rows[1][0] == "'=HYPERLINK(evil).csv"


async def test_a_missing_scope_is_told_as_reinstall_the_app_not_something_went_wrong(
    app: Harness,
) -> None:  # fmt: skip
    """An install whose token lacks one of manifest.yml's scopes (users:read here: every
    lead check) failed each click with "Something went wrong ... give your Slack admin this
    reference", a note no admin could act on; Slack's answer says which scope it needs."""
    message, batch = await _start(app)
    app.slack.scopes = app.slack.scopes.replace(",users:read", "")
    await app.requests.block_action(Action.APPROVE, batch, user_id="U0ADMIN",
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    note = app.slack.ephemerals[-1]["text"]
    assert "`users:read`" in note and "reinstall" in note, note
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'import'") == 0


def test_the_manifest_asks_for_no_channel_history() -> None:
    manifest = yaml.safe_load((Path(__file__).parents[2] / "manifest.yml").read_text())
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert not {"channels:history", "groups:history", "im:history", "mpim:history"} & set(scopes)
    assert not [e for e in events if e.startswith("message")]
    assert "file_shared" in events and "files:read" in scopes


async def test_a_failure_is_logged_with_who_and_what(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    message, batch = await _start(app)
    app.slack.fail("users.info", "fatal_error")
    with caplog.at_level(logging.INFO):
        await app.requests.block_action(Action.APPROVE, batch, user_id="U0ADMIN",
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
    failure = next(r for r in caplog.records if r.getMessage().startswith("listener failed"))
    text = failure.getMessage()
    assert "team=T0001" in text and "user=U0ADMIN" in text and f"action={Action.APPROVE}" in text
    assert failure.exc_info is not None
    note = app.slack.ephemerals[-1]["text"]
    assert "nothing was changed" not in note and "reference" in note


@pytest.mark.parametrize("value", ["99999999999999999999", "\u00b2", "abc"])
async def test_a_button_value_that_names_nothing_is_refused_in_words(
    app: Harness, value: str,
) -> None:  # fmt: skip
    message, _ = await _start(app)
    for action in (Action.APPROVE, Action.UNDO, Action.CONTACT_DELETE, Action.CAMPAIGN_LIVE,
                   Action.CANCEL_INVITES, Action.REVIEW_CONTACTS):  # fmt: skip
        await app.requests.block_action(action, value, user_id=LEAD, message_ts=message["ts"])
        await app.settle()
    told = [e["text"] for e in app.slack.ephemerals] + [
        r.get("text", "") for rs in app.slack.responses.values() for r in rs]  # fmt: skip
    assert not [t for t in told if "Something went wrong" in t], told
    assert sum("doesn't name" in t for t in told) >= 6, told


async def test_a_contacts_list_with_broken_metadata_is_told_to_reopen(app: Harness) -> None:
    message, batch = await _start(app)
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    for meta in ("{}", "garbage", "[]"):
        await app.requests.block_action(Action.REMOVE_CONTACT, "1", user_id=REP,
                                        view=dict(modal, private_metadata=meta))  # fmt: skip
        await app.settle()
        told = [m.get("text", "") for m in app.slack.messages]  # a modal has no channel: a DM
        assert "out of date" in told[-1], told


async def test_review_import_of_a_file_not_shared_in_the_channel_is_refused(
    app: Harness,
) -> None:  # fmt: skip
    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0SECRET", "payroll.csv", b"email,first_name\nceo@corp.example,Zed\n",
                       channels=["G0PRIVATE"], user="U0900")  # fmt: skip
    chosen = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {"type": "external_select",
              "selected_option": {"text": {"type": "plain_text", "text": "VIP"},
                                  "value": str(segment.id)}}}}  # fmt: skip
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0SECRET", user_id=REP,
                                    channel_id="C0001", message_ts="1767225700.000100",
                                    state_values=chosen)  # fmt: skip
    await app.settle()
    assert "isn't shared in this channel" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0
    assert "ceo@corp.example" not in json.dumps(app.slack.messages)


async def test_odd_digits_in_any_button_value_never_crash_a_listener(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    message, _ = await _start(app)
    clicks = [(Action.HOME_MORE_IMPORTS, "\u00b2:\u00b2"), (Action.HOME_MORE_SEGMENTS, "1:\u00b2"),
              (Action.SEGMENT_MORE, "\u00b2"), (Action.SEGMENT_CREATE, "\u00b2"),
              (Action.SEGMENT_RENAME, "\u00b2:0"), (Action.SEGMENT_DELETE, "1:\u00b2"),
              (Action.AUDIT_MORE, "\u00b2"), (Action.MAP_COLUMNS, "\u00b2:1"),
              (Action.CONTACT_REMOVE_FROM_SEGMENT, "1:\u00b2"),
              (Action.PAGE, "\u00b2"), (Action.PAGE, "before:\u00b2"),
              (Action.PAGE, "after:-1"), (Action.PAGE, "after:99999999999"),
              (Action.PAGE, "before:99999999999")]  # fmt: skip
    with caplog.at_level(logging.INFO):
        for action, value in clicks:
            url = app.slack.new_response_url("C0001", user_id=LEAD)
            await app.requests.block_action(action, value, user_id=LEAD, response_url=url,
                                            message_ts=message["ts"])  # fmt: skip
            await app.settle()
    crashes = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], crashes


async def test_a_file_on_another_host_is_refused_logged_and_never_sent_the_token(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    async with FakeExternalHost() as other:
        urls = [other.serve("/stolen.csv", CSV), f"http://{app.slack.files_host}:bad/x.csv"]
        view_id = await _open_modal(app)
        files = [app.slack.add_file(f"F000{i}", "q3.csv", CSV, url_private_download=url)
                 for i, url in enumerate(urls)]  # fmt: skip
        with caplog.at_level(logging.INFO):
            await app.requests.view_submission(state_values=_form(files=files, segment="Q3"),
                                               view_id=view_id, user_id=REP)  # fmt: skip
            await app.settle()
        assert other.requests == [] and other.authorizations == []
    refused = [r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING and "refused" in r.getMessage()]  # fmt: skip
    assert sum("(team T0001): Slack file F000" in t for t in refused) == 2, refused
    assert await _count(app, "SELECT COUNT(*) FROM import_source WHERE status = 'failed'") == 2
    assert await _count(app, "SELECT MAX(attempts) FROM job WHERE kind = 'stage_slack_file'") == 1


async def test_a_refused_files_name_writes_no_log_line_of_its_own(app: Harness) -> None:
    """Anyone who uploads a file names it (files.upload's `filename`): the worker's refusal
    line quoted it raw, so a line feed in it wrote a log line of the uploader's making, and
    an escape character reached the terminal tailing `serve`'s log."""
    forged = "q3\n2030-01-01 00:00:00,000 WARNING bot.web: FORGED LINE\x1b[2J\n.csv"
    written = io.StringIO()
    handler = log_handler(written)
    logging.getLogger().addHandler(handler)
    try:
        async with FakeExternalHost() as other:
            url = other.serve("/stolen.csv", CSV)
            view_id = await _open_modal(app)
            file = app.slack.add_file("F0001", forged, CSV, url_private_download=url)
            await app.requests.view_submission(state_values=_form(files=[file], segment="Q3"),
                                               view_id=view_id, user_id=REP)  # fmt: skip
            await app.settle()
    finally:
        logging.getLogger().removeHandler(handler)
    lines = written.getvalue().splitlines()
    refused = [line for line in lines if "Slack file F0001 refused" in line]
    assert refused and "FORGED LINE" in refused[0], lines
    assert not [line for line in lines if line.startswith("2030-01-01")], lines
    assert "\x1b" not in written.getvalue()


async def test_an_import_form_naming_a_file_someone_else_uploaded_reads_nothing(
    app: Harness,
) -> None:  # fmt: skip
    """The form's file_input carries file ids; the bot's token opens every file it can see
    (a private channel's payroll), so only files the submitter uploaded are read."""
    secret = app.slack.add_file("F0SECRET", "payroll.csv", b"email,first_name\n"
                                b"ceo@corp.example,Zed\n", channels=["G0PRIVATE"],
                                user="U0900")  # fmt: skip
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=[secret], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    assert "ceo@corp.example" not in json.dumps([app.slack.messages, app.slack.views])
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0
    assert await _count(app, "SELECT COUNT(*) FROM import_source") == 0
    assert await _count(app, "SELECT COUNT(*) FROM segment WHERE name = 'VIP'") == 0
    told = [m["text"] for m in app.slack.messages if m["channel"].startswith("D")]
    assert any("payroll.csv" in t and "you uploaded" in t for t in told), told

    # the same form with the rep's own file is read as ever
    own = app.slack.add_file("F0OWN", "mine.csv", CSV, user=REP)
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=[own], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM import_source") == 1


@pytest.mark.parametrize("value", ["99999999999999999999", "VIP", "\u00b2"])
async def test_an_import_form_choosing_a_segment_by_a_bad_id_is_told_inline(
    app: Harness, caplog: pytest.LogCaptureFixture, value: str,
) -> None:  # fmt: skip
    """The segment menu's options are ours (block_suggestion); a value that is no id of ours
    reached int() and the database: 'Something went wrong' and an error in the log."""
    view_id = await _open_modal(app)
    form = _form(email="a@example.com")
    form[BlockId.SEGMENT] = {Action.SEGMENT: {"type": "external_select", "selected_option": {
        "text": {"type": "plain_text", "text": "VIP"}, "value": value}}}  # fmt: skip
    with caplog.at_level(logging.INFO):
        reply = await app.requests.view_submission(state_values=form, view_id=view_id,
                                                   user_id=REP)  # fmt: skip
        await app.settle()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert reply.body["response_action"] == "errors"
    assert "choose it again" in reply.body["errors"][BlockId.SEGMENT]
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


@pytest.mark.parametrize("callback", [Callback.IMPORT, Callback.CAMPAIGN, Callback.SEGMENT_CREATE,
                                      Callback.SEGMENT_RENAME, Callback.SEGMENT_DELETE,
                                      Callback.UNDO, Callback.MAP_COLUMNS])  # fmt: skip
@pytest.mark.parametrize("meta", ["garbage", "[]", json.dumps(
    {k: "x" for k in ("batch", "source", "segment", "campaign", "offset")})])  # fmt: skip
async def test_a_form_whose_metadata_isnt_ours_is_told_to_reopen_in_the_form(
    app: Harness, caplog: pytest.LogCaptureFixture, callback: str, meta: str,
) -> None:  # fmt: skip
    """A form opened by an older release (another metadata shape) and submitted after a
    deploy: the person saw "Something went wrong… reference", the modal closed with what
    they typed, and an ERROR was logged. Now the form itself says to open it again."""
    await _start(app)
    before = await _count(app, "SELECT COUNT(*) FROM import_batch")
    view = {"id": "V0META", "type": "modal", "callback_id": callback, "blocks": [],
            "private_metadata": meta}  # fmt: skip
    with caplog.at_level(logging.INFO):
        reply = await app.requests.view_submission(callback, {}, view=view, user_id=LEAD)
        await app.settle()
    told_to_reopen(app, reply, caplog)
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == before


def told_to_reopen(app: Harness, reply: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The form itself said to open it again: no ERROR logged, and nobody told "Something
    went wrong"."""
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert reply.body["response_action"] == "update", reply.body
    assert "out of date" in json.dumps(reply.body["view"])
    told = [m.get("text", "") for m in app.slack.messages] + [
        e["text"] for e in app.slack.ephemerals]  # fmt: skip
    assert not [t for t in told if "Something went wrong" in t], told


@pytest.mark.parametrize(("action", "shape"), [(Action.PAGE, {"query": ["a"]}),
                                               (Action.REMOVE_CONTACT, {"offset": "x"}),
                                               (Action.REMOVE_CONTACT, {"start": ["x"]})])
async def test_review_contacts_metadata_of_another_shape_is_not_a_crash(
    app: Harness, caplog: pytest.LogCaptureFixture, action: str, shape: dict,
) -> None:  # fmt: skip
    """*Review contacts* read its list's search and page from the metadata as they came: a
    query that wasn't text or an offset that wasn't a number failed the redraw with an ERROR
    and "Something went wrong… may not have gone through", after a Remove had been made."""
    message, batch = await _start(app)
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    row = next(b for b in modal["blocks"]
               if b.get("accessory", {}).get("action_id") == Action.REMOVE_CONTACT)
    value = row["accessory"]["value"] if action == Action.REMOVE_CONTACT else "10"
    meta = json.dumps({"batch": int(batch), **shape})
    with caplog.at_level(logging.INFO):
        await app.requests.block_action(action, value, user_id=REP,
                                        view=dict(modal, private_metadata=meta))  # fmt: skip
        await app.settle()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    told = [m.get("text", "") for m in app.slack.messages] + [
        e["text"] for e in app.slack.ephemerals]  # fmt: skip
    assert not [t for t in told if "Something went wrong" in t], told


@pytest.mark.parametrize(("opener", "click", "value", "secret"), [
    (Action.SOURCES_OPEN, Action.SOURCES_NEXT, "0", "q3.csv"),
    (Action.REVIEW_CONTACTS, Action.SEARCH, "", "example.com"),
    (Action.REVIEW_CONTACTS, Action.PAGE, "0", "example.com")])  # fmt: skip
async def test_an_outsider_paging_a_list_left_open_sees_nothing(
    app: Harness, opener: str, click: str, value: str, secret: str,
) -> None:  # fmt: skip
    """Opening *All sources* or *Review contacts* checks that the person is a member of the
    workspace; paging or searching in the list didn't, and showed the import's files or its
    contacts' names and addresses to a member of another organisation."""
    app.slack.users[OUTSIDER] = {"team_id": OTHER_ORG}
    message, batch = await _start(app)
    await app.requests.block_action(opener, f"{batch}:0" if opener == Action.SOURCES_OPEN
                                    else batch, user_id=REP, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    blank = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    app.slack.views[modal["id"]]["blocks"] = blank
    await app.requests.block_action(click, value, user_id=OUTSIDER,
                                    view=dict(modal, blocks=blank))  # fmt: skip
    await app.settle()
    assert secret not in json.dumps(app.slack.views[modal["id"]]["blocks"])
