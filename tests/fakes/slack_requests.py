"""Signed requests "from Slack" to the bot's HTTP endpoint, in the documented payload shapes.

Why: bolt verifies `X-Slack-Signature` and dispatches on exact payload shapes (slash command
form fields, `payload=<url-encoded JSON>` for interactivity, JSON for events), so end-to-end tests
need byte-exact, correctly signed bodies. The module-level builders return plain dicts/bytes so
they also serve tests that call `AsyncBoltRequest` directly.

Given a `FakeSlack`, `SlackRequests` issues trigger_ids and response_urls the fake accepts, reads
clicked messages and open modals from it, and applies a view_submission ack to its modals (Slack
closes a modal on an empty ack).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, Unpack
from urllib.parse import urlencode

import aiohttp

from tests.fakes.slack_api import find_element

if TYPE_CHECKING:
    from tests.fakes.slack_api import FakeSlack

__all__ = [
    "Reply",
    "SendOptions",
    "SlackRequests",
    "block_actions_payload",
    "block_suggestion_payload",
    "event_callback",
    "file_shared_event",
    "interactive_body",
    "message_file_share_event",
    "slash_command_form",
    "state_file_input",
    "state_plain_text",
    "state_static_select",
    "view_submission_payload",
]

VERIFICATION_TOKEN = "fakeVerificationToken0001"  # deprecated by Slack, still sent
STALE_SECONDS = 600  # bolt rejects timestamps more than 300 s away from now

_counter = itertools.count(1)


class Reply(NamedTuple):
    """The bot's answer: HTTP status and the body (parsed when it is JSON, else text)."""

    status: int
    body: Any


class SendOptions(TypedDict, total=False):
    """How to sign/send: `bad_signature`, `stale` timestamp, explicit `timestamp`, `headers`."""

    bad_signature: bool
    stale: bool
    timestamp: int
    headers: dict[str, str]


def _now_ts() -> str:
    return f"{time.time():.6f}"


def _fake_trigger_id() -> str:
    return f"{int(time.time())}{next(_counter):03d}.1000000001.{secrets.token_hex(16)}"


def _user(user_id: str, team_id: str, name: str | None = None) -> dict[str, Any]:
    name = name or user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


# --------------------------------------------------------------------------------------------
# Payload builders (documented shapes; see the slack-payloads reference)
# --------------------------------------------------------------------------------------------


def slash_command_form(
    command: str = "/referral",
    text: str = "",
    *,
    user_id: str = "U0001",
    user_name: str = "rep.alice",
    channel_id: str = "C0001",
    channel_name: str = "referrals",
    team_id: str = "T0001",
    team_domain: str = "acme",
    api_app_id: str = "A0001",
    trigger_id: str | None = None,
    response_url: str | None = None,
) -> dict[str, str]:
    """The form fields of a slash command, in Slack's order. `text` as typed: Slack sends it
    with `&`, `<` and `>` as `&amp;`, `&lt;` and `&gt;` (also with should_escape false, which
    only keeps mentions and channels as typed)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{team_id}/1000000001/{secrets.token_hex(12)}",
        "trigger_id": trigger_id or _fake_trigger_id(),
    }


def interactive_body(payload: dict[str, Any]) -> bytes:
    """`payload=<url-encoded JSON>`: how Slack posts every interactive payload."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    *,
    block_id: str | None = None,
    action: dict[str, Any] | None = None,
    user_id: str = "U0002",
    user_name: str | None = None,
    team_id: str = "T0001",
    team_domain: str = "acme",
    api_app_id: str = "A0001",
    channel_id: str = "C0001",
    channel_name: str = "referrals",
    message: dict[str, Any] | None = None,
    thread_ts: str | None = None,
    view: dict[str, Any] | None = None,
    state_values: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    response_url: str | None = None,
) -> dict[str, Any]:
    """A `block_actions` payload for a click in `message` (a channel message) or in `view`.

    The action object is completed from the element with `action_id` in the message/view
    blocks (block_id, type, text, style); `action` overrides fields, e.g.
    `{"type": "static_select", "selected_option": {...}}`. For a click on a thread reply pass
    `thread_ts` (the parent's ts): the container and message then carry it like Slack's.
    """
    blocks = (view or message or {}).get("blocks") or []
    found = find_element(blocks, action_id)
    element = copy.deepcopy(found[1]) if found else {"type": "button"}
    act: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or (found[0] if found else "actions"),
        **{k: v for k, v in element.items() if k in ("type", "text", "style", "value")},
    }
    if value is not None:
        act["value"] = value
    act.update(action or {})
    act["action_ts"] = _now_ts()
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {},
        "trigger_id": trigger_id or _fake_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = copy.deepcopy(view)
        if state_values is not None:
            payload["view"]["state"] = {"values": state_values}
    else:
        message = copy.deepcopy(message) if message else {}
        message.setdefault("type", "message")
        message.setdefault("ts", "1767225700.000100")
        message.setdefault("text", "")
        message.setdefault("blocks", blocks)
        message.pop("channel", None)
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
            if thread_ts != message["ts"]:
                container["thread_ts"] = thread_ts
                message.setdefault("parent_user_id", message.get("user", ""))
        payload["container"] = container
        payload["channel"] = {"id": channel_id, "name": channel_name}
        payload["message"] = message
        payload["state"] = {"values": state_values or {}}
        payload["response_url"] = response_url or (
            f"https://hooks.slack.com/actions/{team_id}/1000000002/{secrets.token_hex(12)}"
        )
    payload["actions"] = [act]
    return payload


def view_submission_payload(
    view: dict[str, Any],
    state_values: dict[str, Any],
    *,
    user_id: str = "U0001",
    user_name: str | None = None,
    team_id: str = "T0001",
    team_domain: str = "acme",
    api_app_id: str = "A0001",
    trigger_id: str | None = None,
    response_urls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `view_submission` payload for `view` (as Slack returned it) with these state values."""
    submitted = copy.deepcopy(view)
    submitted["state"] = {"values": state_values}
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or _fake_trigger_id(),
        "view": submitted,
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def block_suggestion_payload(
    action_id: str,
    value: str,
    *,
    block_id: str,
    view: dict[str, Any],
    user_id: str = "U0001",
    user_name: str | None = None,
    team_id: str = "T0001",
    team_domain: str = "acme",
    api_app_id: str = "A0001",
) -> dict[str, Any]:
    """A `block_suggestion` payload: the user typed `value` into an external_select."""
    return {
        "type": "block_suggestion",
        "user": _user(user_id, team_id, user_name),
        "container": {"type": "view", "view_id": view.get("id")},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": copy.deepcopy(view),
    }


def event_callback(
    event: dict[str, Any],
    *,
    team_id: str = "T0001",
    api_app_id: str = "A0001",
    event_id: str | None = None,
    event_time: int | None = None,
    bot_user_id: str = "U0BOT",
) -> dict[str, Any]:
    """The Events API envelope (`type: event_callback`) around one event."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_counter):08d}",
        "event_time": event_time or int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-fakeEventContext{secrets.token_hex(4)}",
    }


def file_shared_event(
    file_id: str, *, channel_id: str = "C0001", user_id: str = "U0001", event_ts: str | None = None
) -> dict[str, Any]:
    """A `file_shared` event: ids only, the bot must call files.info."""
    return {
        "type": "file_shared",
        "channel_id": channel_id,
        "file_id": file_id,
        "user_id": user_id,
        "file": {"id": file_id},
        "event_ts": event_ts or _now_ts(),
    }


def message_file_share_event(
    files: list[dict[str, Any]],
    *,
    channel: str = "C0001",
    user: str = "U0001",
    text: str = "",
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A `message` event with `subtype: file_share` carrying full file objects."""
    ts = ts or _now_ts()
    event: dict[str, Any] = {
        "type": "message",
        "subtype": "file_share",
        "text": text,
        "files": copy.deepcopy(files),
        "upload": False,
        "user": user,
        "display_as_bot": False,
        "ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if text:
        event["blocks"] = [
            {
                "type": "rich_text",
                "block_id": secrets.token_hex(2),
                "elements": [
                    {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                ],
            }
        ]
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def state_file_input(files: list[dict[str, Any]]) -> dict[str, Any]:
    """A file_input's value in `view.state.values[block_id][action_id]`."""
    return {"type": "file_input", "files": copy.deepcopy(files)}


def state_static_select(value: str, text: str | None = None) -> dict[str, Any]:
    """A static_select's value in `view.state.values[block_id][action_id]`."""
    option = {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value}
    return {"type": "static_select", "selected_option": option}


def state_plain_text(value: str | None) -> dict[str, Any]:
    """A plain_text_input's value in `view.state.values[block_id][action_id]`."""
    return {"type": "plain_text_input", "value": value}


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class SlackRequests:
    """Sends signed Slack requests to the bot (`{base_url}/slack/events` by default)."""

    def __init__(
        self,
        base_url: str,
        signing_secret: str,
        *,
        slack: FakeSlack | None = None,
        path: str = "/slack/events",
        team_id: str | None = None,
        team_domain: str = "acme",
        api_app_id: str = "A0001",
    ) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith(path) else base + path
        self.signing_secret = signing_secret
        self.slack = slack
        self.team_id = team_id or (slack.team_id if slack else "T0001")
        self.team_domain = team_domain
        self.api_app_id = slack.app_id if slack else api_app_id
        self.bot_user_id = slack.bot_user_id if slack else "U0BOT"

    # ---- signing and sending ------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """`X-Slack-Request-Timestamp` and `X-Slack-Signature` (v0 HMAC-SHA256) for `body`."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + ts.encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    async def send(self, body: bytes, content_type: str, **options: Unpack[SendOptions]) -> Reply:
        """POST a raw body, signed unless told otherwise; returns (status, body)."""
        timestamp = options.get("timestamp")
        if options.get("stale"):
            timestamp = int(time.time()) - STALE_SECONDS
        headers = {"Content-Type": content_type, **self.sign(body, timestamp)}
        if options.get("bad_signature"):
            headers["X-Slack-Signature"] = "v0=" + "0" * 64
        headers.update(options.get("headers", {}))
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=body, headers=headers) as response,
        ):
            text = await response.text()
            if response.content_type == "application/json" and text:
                return Reply(response.status, json.loads(text))
            return Reply(response.status, text)

    async def send_form(self, fields: dict[str, str], **options: Unpack[SendOptions]) -> Reply:
        return await self.send(
            urlencode(fields).encode(), "application/x-www-form-urlencoded", **options
        )

    async def send_interactive(
        self, payload: dict[str, Any], **options: Unpack[SendOptions]
    ) -> Reply:
        return await self.send(
            interactive_body(payload), "application/x-www-form-urlencoded", **options
        )

    async def send_json(self, body: dict[str, Any], **options: Unpack[SendOptions]) -> Reply:
        return await self.send(json.dumps(body).encode(), "application/json", **options)

    # ---- Slack's request kinds ----------------------------------------------------------------

    def _trigger(self, user_id: str, view_id: str | None = None) -> str:
        if self.slack is None:
            return _fake_trigger_id()
        return self.slack.new_trigger_id(user_id, view_id=view_id)

    async def slash_command(
        self,
        command: str = "/referral",
        text: str = "import",
        *,
        user_id: str = "U0001",
        user_name: str = "rep.alice",
        channel_id: str = "C0001",
        channel_name: str = "referrals",
        team_id: str | None = None,
        trigger_id: str | None = None,
        response_url: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """A slash command (plain form fields)."""
        if response_url is None and self.slack is not None:
            response_url = self.slack.new_response_url(channel_id, user_id=user_id)
        fields = slash_command_form(
            command,
            text,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name,
            team_id=team_id or self.team_id,
            team_domain=self.team_domain,
            api_app_id=self.api_app_id,
            trigger_id=trigger_id or self._trigger(user_id),
            response_url=response_url,
        )
        return await self.send_form(fields, **options)

    async def block_action(
        self,
        action_id: str,
        value: str | None = None,
        *,
        block_id: str | None = None,
        action: dict[str, Any] | None = None,
        user_id: str = "U0002",
        team_id: str | None = None,
        channel_id: str = "C0001",
        message_ts: str | None = None,
        thread_ts: str | None = None,
        message: dict[str, Any] | None = None,
        view: dict[str, Any] | str | None = None,
        state_values: dict[str, Any] | None = None,
        trigger_id: str | None = None,
        response_url: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """A click on `action_id` in a message (default) or in a modal (`view`: dict or id).

        With a FakeSlack, the clicked message is the stored one at `channel_id`/`message_ts`,
        or the newest stored message holding `action_id`; its blocks and thread go into the
        payload. A view id is looked up in the fake's open modals.
        """
        if isinstance(view, str):
            if self.slack is None:
                raise ValueError("a view id needs SlackRequests(slack=...)")
            view = self.slack.views[view]
        if view is None and message is None and self.slack is not None:
            if message_ts is not None:
                message = self.slack.get_message(channel_id, message_ts)
            else:
                message = self.slack.find_action(action_id, channel_id)
        if message is not None:
            message_ts = message.get("ts", message_ts)
            thread_ts = thread_ts or message.get("thread_ts")
        elif message_ts is not None:
            message = {"ts": message_ts}
        view_id = view.get("id") if view else None
        if response_url is None and self.slack is not None and view is None:
            response_url = self.slack.new_response_url(channel_id, message_ts, user_id=user_id)
        payload = block_actions_payload(
            action_id,
            value,
            block_id=block_id,
            action=action,
            user_id=user_id,
            team_id=team_id or self.team_id,
            team_domain=self.team_domain,
            api_app_id=self.api_app_id,
            channel_id=channel_id,
            message=message,
            thread_ts=thread_ts,
            view=view,
            state_values=state_values,
            trigger_id=trigger_id or self._trigger(user_id, view_id),
            response_url=response_url,
        )
        return await self.send_interactive(payload, **options)

    async def view_submission(
        self,
        callback_id: str | None = None,
        state_values: dict[str, Any] | None = None,
        *,
        private_metadata: str | None = None,
        user_id: str = "U0001",
        team_id: str | None = None,
        view_id: str | None = None,
        view: dict[str, Any] | None = None,
        trigger_id: str | None = None,
        response_urls: list[dict[str, Any]] | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Submit a modal. With a FakeSlack and an open `view_id`, that modal is submitted
        (and closed, updated or pushed afterwards according to the bot's ack)."""
        if view is None and self.slack is not None and view_id in self.slack.views:
            view = {k: v for k, v in self.slack.views[view_id].items() if not k.startswith("_")}
        view = copy.deepcopy(view) if view else self._bare_view(view_id)
        if callback_id is not None:
            view["callback_id"] = callback_id
        if private_metadata is not None:
            view["private_metadata"] = private_metadata
        payload = view_submission_payload(
            view,
            state_values or {},
            user_id=user_id,
            team_id=team_id or self.team_id,
            team_domain=self.team_domain,
            api_app_id=self.api_app_id,
            trigger_id=trigger_id or self._trigger(user_id, view.get("id")),
            response_urls=response_urls,
        )
        reply = await self.send_interactive(payload, **options)
        if self.slack is not None and reply.status == 200 and view.get("id") in self.slack.views:
            self.slack.apply_view_submission(view["id"], reply.body)
        return reply

    async def block_suggestion(
        self,
        action_id: str,
        value: str,
        *,
        block_id: str,
        user_id: str = "U0001",
        team_id: str | None = None,
        view_id: str | None = None,
        view: dict[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Options request for an external_select in a modal (open `view_id` or `view`)."""
        if view is None and self.slack is not None and view_id in self.slack.views:
            view = self.slack.views[view_id]
        view = {k: v for k, v in (view or self._bare_view(view_id)).items() if k[0] != "_"}
        payload = block_suggestion_payload(
            action_id,
            value,
            block_id=block_id,
            view=view,
            user_id=user_id,
            team_id=team_id or self.team_id,
            team_domain=self.team_domain,
            api_app_id=self.api_app_id,
        )
        return await self.send_interactive(payload, **options)

    async def event(
        self,
        event: dict[str, Any],
        *,
        team_id: str | None = None,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        **options: Unpack[SendOptions],
    ) -> Reply:
        """An Events API delivery; `retry_num` marks it as Slack's retry of the same event_id."""
        body = event_callback(
            event,
            team_id=team_id or self.team_id,
            api_app_id=self.api_app_id,
            event_id=event_id,
            bot_user_id=self.bot_user_id,
        )
        if retry_num is not None:
            options["headers"] = {
                "X-Slack-Retry-Num": str(retry_num),
                "X-Slack-Retry-Reason": retry_reason,
                **options.get("headers", {}),
            }
        return await self.send_json(body, **options)

    async def url_verification(
        self, challenge: str = "fakeChallenge0001", **options: Unpack[SendOptions]
    ) -> Reply:
        """The handshake Slack sends when the Request URL is saved."""
        body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
        return await self.send_json(body, **options)

    def _bare_view(self, view_id: str | None) -> dict[str, Any]:
        return {
            "id": view_id or "V0001",
            "team_id": self.team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": {"type": "plain_text", "text": "Referral import", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "previous_view_id": None,
            "root_view_id": view_id or "V0001",
            "app_id": self.api_app_id,
            "external_id": "",
            "app_installed_team_id": self.team_id,
            "bot_id": "B0001",
        }
