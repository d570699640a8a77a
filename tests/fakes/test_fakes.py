"""The test doubles behave like Slack where the bot depends on it (checked with the real SDKs)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes import (
    FakeExternalHost,
    FakeSlack,
    SlackRequests,
    block_problems,
    serve,
    view_problems,
)
from tests.fakes.slack_requests import (
    file_shared_event,
    interactive_body,
    message_file_share_event,
    slash_command_form,
    state_file_input,
    state_plain_text,
)

TOKEN = "xoxb-test"
SECRET = "signing-secret-0001"
CSV = b"email,first_name\njane.doe@example.com,Jane\n"


def button(text: str, action_id: str = "review_approve", value: str = "batch_42") -> dict:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }


def section(text: str, block_id: str | None = None) -> dict:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def modal(blocks: list[dict], title: str = "Referral import", **extra: Any) -> dict:
    view = {"type": "modal", "title": {"type": "plain_text", "text": title}, "blocks": blocks}
    return view | extra


IMPORT_MODAL = modal(
    [
        {
            "type": "input",
            "block_id": "csv_block",
            "label": {"type": "plain_text", "text": "CSV files"},
            "element": {"type": "file_input", "action_id": "csv_files", "filetypes": ["csv"]},
        }
    ],
    submit={"type": "plain_text", "text": "Import"},
    callback_id="referral_import_csv",
)


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk honours HTTP(S)_PROXY and ignores NO_PROXY: reach the local fakes directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN, team_id="T0001") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.api_url)


# ---- Web API basics ----------------------------------------------------------------------------


async def test_auth_post_and_update_with_the_real_client(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    auth = await client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T0001", "U0BOT", "B0001")

    posted = await client.chat_postMessage(
        channel="C0001", text="Review", blocks=[section("*2 contacts*"), {"type": "divider"}]
    )
    assert posted["ts"] == "1767225700.000100"
    updated = await client.chat_update(
        channel="C0001", ts=posted["ts"], text="Approved", blocks=[section("Approved")]
    )
    assert updated["ts"] == posted["ts"]
    message = slack.message("C0001", posted["ts"])
    assert message["text"] == "Approved"
    assert message["blocks"] == [section("Approved")]
    assert slack.calls_to("chat.update")[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert slack.block_errors == []


async def test_chat_update_with_text_only_wipes_the_blocks(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0001", text="x", blocks=[section("x")])
    await client.chat_update(channel="C0001", ts=posted["ts"], text="only text")
    assert slack.message("C0001", posted["ts"])["blocks"] == []

    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel="C0001", ts="1.000001", text="nope")
    assert raised.value.response["error"] == "message_not_found"


async def test_thread_replies_are_counted_on_the_parent(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C0001", text="review")
    await client.chat_postMessage(channel="C0001", text="reply", thread_ts=parent["ts"])
    assert slack.message("C0001", parent["ts"])["reply_count"] == 1
    assert [m["text"] for m in slack.messages_in("C0001", thread_ts=parent["ts"])] == ["reply"]


async def test_wrong_or_missing_token_is_refused(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as raised:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()
    assert raised.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as raised:
        await AsyncWebClient(base_url=slack.api_url).auth_test()
    assert raised.value.response["error"] == "not_authed"

    # A form field token is accepted too (legacy clients send it that way).
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.api_url}auth.test", data={"token": TOKEN}) as response,
    ):
        assert (await response.json())["ok"] is True


@pytest.mark.parametrize("error", ["token_revoked", "account_inactive"])
async def test_after_an_uninstall_every_call_and_download_is_refused(
    slack: FakeSlack, client: AsyncWebClient, error: str
) -> None:
    url = slack.add_file("F0002", "referrals_q3.csv", CSV)["url_private_download"]
    slack.uninstall(error)
    for call in (client.auth_test(), client.chat_postMessage(channel="C0001", text="x"),
                 client.users_info(user="U0001"), client.files_info(file="F0002")):  # fmt: skip
        with pytest.raises(SlackApiError) as raised:
            await call
        assert raised.value.response["error"] == error
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response,
    ):
        assert response.content_type == "text/html"  # the login page, as for a wrong token
    assert slack.messages == []


async def test_users_dm_ephemeral_and_permalink(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.users["U0002"] = {"is_admin": True}
    assert (await client.users_info(user="U0002"))["user"]["is_admin"] is True
    assert (await client.users_info(user="U0001"))["user"]["is_admin"] is False

    dm = (await client.conversations_open(users="U0001"))["channel"]["id"]
    assert dm.startswith("D")
    posted = await client.chat_postMessage(channel="U0001", text="hi")  # a user id means the DM
    assert posted["channel"] == dm

    await client.chat_postEphemeral(channel="C0001", user="U0001", text="only you")
    assert slack.ephemerals[-1]["user"] == "U0001"
    link = await client.chat_getPermalink(channel="C0001", message_ts="1767225700.000100")
    assert link["permalink"].endswith("/archives/C0001/p1767225700000100")


# ---- files ---------------------------------------------------------------------------------------


async def test_files_upload_v2_lands_in_uploads(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C0001", text="review")
    result = await client.files_upload_v2(
        channel="C0001",
        thread_ts=parent["ts"],
        content="email\nbad@\n",
        filename="rejects.csv",
        initial_comment="1 rejected row",
    )
    (upload,) = slack.uploads
    assert upload.completed and upload.content == b"email\nbad@\n"
    assert (upload.filename, upload.title) == ("rejects.csv", "rejects.csv")
    assert (upload.channel_id, upload.thread_ts) == ("C0001", parent["ts"])
    assert upload.initial_comment == "1 rejected row"
    assert result["file"]["id"] == upload.file_id
    assert (await client.files_info(file=upload.file_id))["file"]["channels"] == ["C0001"]


async def test_download_needs_the_bot_token_else_html_login_page(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.channel_names["C0001"] = "referrals"
    slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    info = await client.files_info(file="F0002")
    url = info["file"]["url_private_download"]
    assert url.startswith(f"http://{slack.files_host}/files-pri/T0001-F0002/")
    assert info["file"]["shares"]["public"]["C0001"][0]["channel_name"] == "referrals"

    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert (response.status, response.content_type) == (200, "text/csv")
            assert await response.read() == CSV
        for headers in ({}, {"Authorization": "Bearer xoxb-wrong"}):
            async with session.get(url, headers=headers) as response:
                assert (response.status, response.content_type) == (200, "text/html")
                assert "<!DOCTYPE html>" in await response.text()
    assert [(d.token_sent, d.authorized) for d in slack.downloads] == [
        (True, True),
        (False, False),
        (True, False),
    ]

    with pytest.raises(SlackApiError) as raised:
        await client.files_info(file="F404")
    assert raised.value.response["error"] == "file_not_found"


async def test_external_host_records_headers_and_redirects(slack: FakeSlack) -> None:
    async with FakeExternalHost() as host:
        url = host.serve("/sheet.csv", CSV)
        moved = host.redirect("/moved.csv", url)
        obj = slack.add_file("F0003", "sheet.csv", CSV, external=True, url_private_download=url)
        assert (obj["is_external"], obj["url_private"], obj["url_private_download"]) == (
            True,
            url,
            url,
        )
        async with aiohttp.ClientSession() as session:
            async with session.get(moved, allow_redirects=False) as response:
                assert (response.status, response.headers["Location"]) == (302, url)
            async with session.get(url) as response:
                assert await response.read() == CSV
        assert [r.path for r in host.requests] == ["/moved.csv", "/sheet.csv"]
        assert host.authorizations == []


# ---- views -----------------------------------------------------------------------------------


async def test_views_open_needs_a_fresh_unused_trigger(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    for trigger_id, error in (
        (slack.new_trigger_id(age=3.5), "expired_trigger_id"),
        ("123.456.never-issued", "invalid_trigger_id"),
    ):
        with pytest.raises(SlackApiError) as raised:
            await client.views_open(trigger_id=trigger_id, view=IMPORT_MODAL)
        assert raised.value.response["error"] == error

    trigger_id = slack.new_trigger_id("U0001")
    view = (await client.views_open(trigger_id=trigger_id, view=IMPORT_MODAL))["view"]
    assert view["id"].startswith("V") and view["hash"]
    assert slack.open_views("U0001")[0]["callback_id"] == "referral_import_csv"
    with pytest.raises(SlackApiError) as raised:
        await client.views_open(trigger_id=trigger_id, view=IMPORT_MODAL)
    assert raised.value.response["error"] == "exchanged_trigger_id"


async def test_views_update_checks_hash_and_closed_modals(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    opened = await client.views_open(
        trigger_id=slack.new_trigger_id(), view=modal([section("Loading…")], external_id="imp-1")
    )
    view_id, first_hash = opened["view"]["id"], opened["view"]["hash"]
    updated = await client.views_update(
        view_id=view_id, hash=first_hash, view=modal([section("Ready")])
    )
    assert updated["view"]["hash"] != first_hash
    assert updated["view"]["external_id"] == "imp-1"
    with pytest.raises(SlackApiError) as raised:
        await client.views_update(view_id=view_id, hash=first_hash, view=modal([section("x")]))
    assert raised.value.response["error"] == "hash_conflict"
    await client.views_update(external_id="imp-1", view=modal([section("by external id")]))

    slack.close_view(view_id)
    with pytest.raises(SlackApiError) as raised:
        await client.views_update(view_id=view_id, view=modal([section("late")]))
    assert raised.value.response["error"] == "not_found"


async def test_views_push_allows_two_views_above_the_root(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    root = await client.views_open(trigger_id=slack.new_trigger_id(), view=modal([section("0")]))
    root_id = root["view"]["id"]
    for n in (1, 2):
        pushed = await client.views_push(
            trigger_id=slack.new_trigger_id(view_id=root_id), view=modal([section(str(n))])
        )
        assert pushed["view"]["root_view_id"] == root_id
    with pytest.raises(SlackApiError) as raised:
        await client.views_push(
            trigger_id=slack.new_trigger_id(view_id=root_id), view=modal([section("3")])
        )
    assert raised.value.response["error"] == "push_limit_reached"


async def test_view_submission_acks_act_on_the_open_modal(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    opened = await client.views_open(trigger_id=slack.new_trigger_id(), view=IMPORT_MODAL)
    view_id = opened["view"]["id"]
    slack.apply_view_submission(view_id, {"response_action": "errors", "errors": {"csv": "x"}})
    assert slack.block_errors == [
        "view_submission ack: errors keys must be input block_ids of the view, got ['csv']"
    ]
    ack = {"response_action": "update", "view": modal([section("Importing…")])}
    slack.apply_view_submission(view_id, ack)
    assert slack.views[view_id]["blocks"] == [section("Importing…")]
    slack.apply_view_submission(view_id, {"response_action": "clear"})
    assert slack.views == {}


# ---- Block Kit validation ----------------------------------------------------------------------


async def test_invalid_blocks_are_refused_and_reported(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    too_long = [{"type": "actions", "elements": [button("x" * 76)]}]
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0001", text="t", blocks=too_long)
    assert raised.value.response["error"] == "invalid_blocks"
    assert "75" in raised.value.response["detail"]

    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0001", text="t", blocks=[section("r")] * 51)
    with pytest.raises(SlackApiError):
        await client.views_open(trigger_id=slack.new_trigger_id(), view=modal([section("r")] * 101))
    with pytest.raises(SlackApiError):
        await client.views_open(
            trigger_id=slack.new_trigger_id(), view=modal([section("r")], title="t" * 25)
        )

    assert slack.messages == [] and slack.views == {}
    assert len(slack.block_errors) == 4
    assert slack.block_errors[1].startswith("chat.postMessage: 51 blocks")
    assert "101 blocks" in slack.block_errors[2]
    assert "title" in slack.block_errors[3]


def test_block_problems_beyond_slack_sdk() -> None:
    assert block_problems([section("a", "b1"), section("b", "b1")]) == [
        "blocks[1]: duplicate block_id 'b1'"
    ]
    file_input = IMPORT_MODAL["blocks"]
    assert "file_input works only" in block_problems(file_input, "message")[0]
    assert view_problems(IMPORT_MODAL) == []
    assert "submit" in view_problems({**IMPORT_MODAL, "submit": None})[0]
    assert block_problems([{"type": "nonsense"}]) == ["blocks[0]: unknown block type 'nonsense'"]


# ---- rate limits, response_url -------------------------------------------------------------------


async def test_rate_limit_is_retried_by_the_async_retry_handler(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0001", text="x")
    slack.rate_limit("chat.update", times=1, retry_after=0)
    with pytest.raises(SlackApiError) as raised:  # no retry handler: the 429 surfaces
        await client.chat_update(channel="C0001", ts=posted["ts"], text="y")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "0"

    retrying = AsyncWebClient(
        token=TOKEN,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.rate_limit("chat.update", times=1, retry_after=0)
    await retrying.chat_update(channel="C0001", ts=posted["ts"], text="z")
    assert [c.rate_limited for c in slack.calls_to("chat.update")] == [True, True, False]
    assert slack.message("C0001", posted["ts"])["text"] == "z"


async def test_response_url_records_and_replaces_the_original(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0001", text="review", blocks=[section("r")])
    url = slack.new_response_url("C0001", posted["ts"])
    webhook = AsyncWebhookClient(url)
    sent = await webhook.send(text="Approved", blocks=[section("Approved")], replace_original=True)
    assert sent.status_code == 200
    assert slack.responses[url][0]["replace_original"] is True
    assert slack.message("C0001", posted["ts"])["blocks"] == [section("Approved")]

    bad = await webhook.send(text="x", blocks=[{"type": "actions", "elements": [button("y" * 80)]}])
    assert json.loads(bad.body)["error"] == "invalid_blocks"
    assert slack.block_errors and slack.block_errors[0].startswith("response_url:")


# ---- signed requests -----------------------------------------------------------------------------


def test_signature_verifies_with_slack_sdk() -> None:
    requests = SlackRequests("http://127.0.0.1:1", SECRET)
    body = b"token=x&command=%2Freferral"
    headers = requests.sign(body)
    verifier = SignatureVerifier(SECRET)
    timestamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert verifier.is_valid(body, timestamp, signature)
    assert not verifier.is_valid(body + b"x", timestamp, signature)
    stale = requests.sign(body, int(time.time()) - 301)
    assert not verifier.is_valid(
        body, stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"]
    )


def test_slash_command_form_matches_the_documented_field_order() -> None:
    fields = slash_command_form("/referral", "import", trigger_id="t", response_url="r")
    assert list(fields) == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    payload = {"type": "block_actions"}
    assert json.loads(parse_qs(interactive_body(payload).decode())["payload"][0]) == payload


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for what a bolt listener does after its ack (it runs on after the response)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the listener's work never showed"
        await asyncio.sleep(0.01)


async def test_requests_dispatch_through_a_real_bolt_app(slack: FakeSlack) -> None:
    """Both fakes against slack-bolt's own aiohttp server: shapes, signing, triggers, acks."""
    app = AsyncApp(
        client=AsyncWebClient(token=TOKEN, base_url=slack.api_url), signing_secret=SECRET
    )
    seen: dict[str, Any] = {}

    @app.command("/referral")
    async def command(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=IMPORT_MODAL)

    @app.view("referral_import_csv")
    async def submitted(ack: AsyncAck, view: dict) -> None:
        seen["state"] = view["state"]["values"]
        await ack()

    @app.action("review_approve")
    async def approve(ack: AsyncAck, body: dict, respond: AsyncRespond) -> None:
        await ack()
        seen["action"] = body
        await respond(text="Approved", replace_original=True)

    @app.event("message")
    async def message(event: dict, request: AsyncBoltRequest) -> None:
        seen.setdefault("messages", []).append((event, request.headers.get("x-slack-retry-num")))

    @app.event("file_shared")
    async def file_shared(event: dict) -> None:
        seen["file_shared"] = event

    async with serve(app.web_app()) as base_url:
        requests = SlackRequests(base_url, SECRET, slack=slack)

        assert await requests.url_verification("c-1") == (200, {"challenge": "c-1"})
        assert (await requests.slash_command(bad_signature=True)).status == 401
        assert (await requests.slash_command(stale=True)).status == 401
        assert slack.views == {}

        assert (await requests.slash_command("/referral", "import")).status == 200
        (opened,) = await slack.wait_for("views.open")
        assert opened.args["view"]["callback_id"] == "referral_import_csv"
        view_id = next(iter(slack.views))
        slack.add_file("F0001", "partner_summit.csv", CSV)
        state = {
            "csv_block": {"csv_files": state_file_input([slack.file_object("F0001")])},
            "note_block": {"note_input": state_plain_text("from the summit")},
        }
        assert (await requests.view_submission(view_id=view_id, state_values=state)).status == 200
        assert seen["state"]["csv_block"]["csv_files"]["files"][0]["id"] == "F0001"
        assert slack.views == {}  # an empty ack closes the modal, as in Slack

        posted = await AsyncWebClient(token=TOKEN, base_url=slack.api_url).chat_postMessage(
            channel="C0001",
            text="Review",
            blocks=[{"type": "actions", "block_id": "review_actions", "elements": [button("OK")]}],
        )
        assert (await requests.block_action("review_approve", user_id="U0002")).status == 200
        await slack.wait_for("auth.test")  # bolt's lazy auth.test happened once
        # the listener goes on after its ack: its respond() may land after the 200
        await _until(lambda: slack.message("C0001", posted["ts"])["text"] == "Approved")
        action = seen["action"]
        assert action["container"]["message_ts"] == posted["ts"]
        assert action["actions"][0]["block_id"] == "review_actions"
        assert action["message"]["blocks"][0]["elements"][0]["action_id"] == "review_approve"

        slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
        event = message_file_share_event([slack.file_object("F0002")], text="Q3 list")
        assert (await requests.event(event, event_id="Ev0002")).status == 200
        assert (await requests.event(event, event_id="Ev0002", retry_num=1)).status == 200
        assert (await requests.event(file_shared_event("F0002"))).status == 200
        await _until(lambda: len(seen.get("messages", [])) == 2 and "file_shared" in seen)
        assert [retry for _, retry in seen["messages"]] == [None, ["1"]]
        assert seen["messages"][0][0]["files"][0]["id"] == "F0002"
        assert seen["file_shared"]["file_id"] == "F0002"

    assert slack.calls_to("auth.test") and slack.block_errors == []


def test_limits_slack_sdk_leaves_unchecked() -> None:
    """Slack's limits that slack_sdk's models don't check: a static menu's options (text 75,
    value 150, a group's label 75), a section field's 2,000 characters, and a view's 250 KB."""

    def menu(**element: object) -> list[dict[str, object]]:
        return [{"type": "section", "text": {"type": "mrkdwn", "text": "a"},
                 "accessory": {"type": "static_select", "action_id": "m", **element}}]

    def option(text: str, value: str = "v") -> dict[str, object]:
        return {"text": {"type": "plain_text", "text": text}, "value": value}

    assert "text is 76 characters" in block_problems(menu(options=[option("x" * 76)]))[0]
    assert "value is 151 characters" in block_problems(
        menu(options=[option("x", "v" * 151)]))[0]
    assert "label is 76 characters" in block_problems(menu(option_groups=[
        {"label": {"type": "plain_text", "text": "g" * 76}, "options": [option("x")]}]))[0]
    fields = [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}]
    assert "field's text is 2001 characters" in block_problems(fields)[0]
    assert block_problems(menu(options=[option("x" * 75, "v" * 150)])) == []
    big = modal([section("s" * 2900)] * 95)
    assert "view_too_large" in view_problems(big)[-1]
