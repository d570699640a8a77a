"""A fake Slack Web API (plus file host, upload URLs and response_urls) served on 127.0.0.1.

Why a real HTTP server instead of mocks: the bot talks to Slack through slack_sdk's
`AsyncWebClient` (and bolt copies its `base_url` into every per-request client), so pointing
`base_url` at this server exercises the real serialisation, retry handlers and error raising.
The fake enforces the Slack behaviours that bite in production: bearer auth, 3-second single-use
trigger ids, `hash_conflict`, block limits, `chat.update` wiping blocks, HTML login pages for
unauthenticated downloads, and 429s with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = [
    "Call",
    "Download",
    "ExternalRequest",
    "FakeExternalHost",
    "FakeSlack",
    "Upload",
    "block_problems",
    "find_element",
    "serve",
    "view_problems",
]

Surface = Literal["message", "modal", "home"]

# What an install from manifest.yml grants (tests/test_manifest.py keeps them equal)
DEFAULT_SCOPES = "commands,chat:write,files:read,files:write,im:write,users:read"
# The bot token's scope each method the bot calls needs (Slack's method pages): a call the
# token isn't granted it for is answered missing_scope, as Slack does, so the suite checks
# that manifest.yml asks for every scope the code needs
NEEDED_SCOPES = {
    "chat.postMessage": "chat:write", "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write", "chat.delete": "chat:write",
    "conversations.open": "im:write", "users.info": "users:read", "files.info": "files:read",
    "files.getUploadURLExternal": "files:write", "files.completeUploadExternal": "files:write",
}  # fmt: skip
MESSAGE_BLOCK_LIMIT = 50
TEXT_LIMIT = 3000  # characters of a text object (section, context element)
SURFACE_BLOCK_LIMIT = 100  # modals and App Home
MESSAGE_TEXT_LIMIT = 40_000
FIELD_TEXT_LIMIT = 2000  # each of a section's fields
OPTION_TEXT_LIMIT = 75  # an option's text (and description), an option group's label
OPTION_VALUE_LIMIT = 150
CHOICE_LIMIT = 10  # options of checkboxes and radio buttons
# views.open/push/update/publish answer view_too_large above it (measured here as UTF-8 of
# compact JSON, the most forgiving measure; the bot keeps well under the strictest)
VIEW_BYTES_LIMIT = 250 * 1024
VIEW_STACK_LIMIT = 3  # root + 2 pushed views
MAX_FILES_RANGE = range(1, 11)
FIRST_TS_MICROS = 1_767_225_700_000_000  # first ts is "1767225700.000100", like the fixtures

LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><meta charset="utf-8"><title>Sign in | Slack</title></head>
<body><h1>Sign in to your workspace</h1>
<form action="/signin" method="post"><input type="email" name="email"></form>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# Records a test can assert on
# --------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One Web API call as the fake received it (JSON-string fields already decoded)."""

    method: str
    args: dict[str, Any]
    headers: CIMultiDict[str]
    rate_limited: bool = False


@dataclass
class Download:
    """One GET on a private file URL: tests assert the token went here and only here."""

    file_id: str
    path: str
    authorization: str | None
    authorized: bool

    @property
    def token_sent(self) -> bool:
        return self.authorization is not None


@dataclass
class Upload:
    """A file sent through files.getUploadURLExternal + upload URL + completeUploadExternal."""

    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    completed: bool = False
    title: str | None = None
    channel_id: str | None = None
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None

    @property
    def text(self) -> str:
        return (self.content or b"").decode("utf-8")


@dataclass
class ExternalRequest:
    """One request received by `FakeExternalHost`."""

    method: str
    path: str
    headers: CIMultiDict[str]


@dataclass
class _Trigger:
    issued_at: float
    user_id: str
    view_id: str | None
    used: bool = False


class _ApiError(Exception):
    """Raised inside a method handler; becomes `{"ok": false, "error": ...}` with HTTP 200."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# --------------------------------------------------------------------------------------------
# Block Kit validation (also usable directly on the bot's block builders)
# --------------------------------------------------------------------------------------------


def block_problems(blocks: Any, surface: Surface = "message") -> list[str]:
    """Why Slack would reject these blocks, or [] when they are fine.

    Runs slack_sdk's own length checks (`to_dict()` validates nested elements) and adds what
    slack_sdk does not check: per-surface block counts, duplicate block_id / action_id, and
    `file_input` outside modals.
    """
    if not isinstance(blocks, list):
        return [f"blocks must be a list, got {type(blocks).__name__}"]
    limit = MESSAGE_BLOCK_LIMIT if surface == "message" else SURFACE_BLOCK_LIMIT
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks: a {surface} allows at most {limit}")
    block_ids: set[str] = set()
    for index, raw in enumerate(blocks):
        where = f"blocks[{index}]"
        if not isinstance(raw, dict) or not raw.get("type"):
            problems.append(f"{where}: not a block object with a type")
            continue
        try:
            parsed = Block.parse(raw)
            if parsed is None:
                problems.append(f"{where}: unknown block type {raw['type']!r}")
                continue
            parsed.to_dict()
        except Exception as exc:  # slack_sdk raises several exception types here
            problems.append(f"{where} ({raw['type']}): {exc}")
            continue
        block_id = raw.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                problems.append(f"{where}: duplicate block_id {block_id!r}")
            block_ids.add(block_id)
        problems.extend(_element_problems(raw, where, surface))
    return problems


def _option_problems(element: dict[str, Any], where: str) -> list[str]:
    """What slack_sdk leaves unchecked in a static menu's options (it checks only those of
    checkboxes and radio buttons): every option's text, value and description, in groups
    too, and the initial ones."""
    problems: list[str] = []
    groups = element.get("option_groups") or []
    initial = element.get("initial_option")
    options = [*(element.get("options") or []),
               *(o for g in groups if isinstance(g, dict) for o in g.get("options") or []),
               *([initial] if isinstance(initial, dict) else []),
               *(element.get("initial_options") or [])]  # fmt: skip
    for group in groups:
        label = str(((group or {}).get("label") or {}).get("text") or "")
        if len(label) > OPTION_TEXT_LIMIT:
            problems.append(f"{where}: an option group's label is {len(label)} characters, "
                            f"more than {OPTION_TEXT_LIMIT}")  # fmt: skip
    for option in options:
        if not isinstance(option, dict):
            continue
        text = str((option.get("text") or {}).get("text") or "")
        value = str(option.get("value") or "")
        description = str((option.get("description") or {}).get("text") or "")
        for what, said, limit in (("text", text, OPTION_TEXT_LIMIT),
                                  ("value", value, OPTION_VALUE_LIMIT),
                                  ("description", description, OPTION_TEXT_LIMIT)):  # fmt: skip
            if len(said) > limit:
                problems.append(f"{where}: an option's {what} is {len(said)} characters, more "
                                f"than {limit}")  # fmt: skip
    if element.get("type") in ("checkboxes", "radio_buttons") and len(
            element.get("options") or []) > CHOICE_LIMIT:  # fmt: skip
        problems.append(f"{where}: {element['type']} hold at most {CHOICE_LIMIT} options")
    return problems


def _element_problems(block: dict[str, Any], where: str, surface: Surface) -> list[str]:
    if block["type"] == "context":  # slack_sdk doesn't check its text objects' length
        return [f"{where}: a context element's text is {len(e['text'])} characters, more "
                f"than {TEXT_LIMIT}" for e in block.get("elements", [])
                if isinstance(e, dict) and len(str(e.get("text") or "")) > TEXT_LIMIT]  # fmt: skip
    if block["type"] == "section":  # slack_sdk counts a section's fields, not their length
        too_long = [f"{where}: a field's text is {len(str(f.get('text') or ''))} characters, "
                    f"more than {FIELD_TEXT_LIMIT}" for f in block.get("fields") or []
                    if isinstance(f, dict) and len(str(f.get("text") or "")) > FIELD_TEXT_LIMIT]
        if too_long:
            return too_long
    elements: list[Any] = []
    if block["type"] in ("actions", "input", "section"):
        elements = [block.get("element"), block.get("accessory"), *block.get("elements", [])]
    problems: list[str] = []
    action_ids: set[str] = set()
    for element in elements:
        if not isinstance(element, dict):
            continue
        action_id = element.get("action_id")
        if action_id is not None:
            if action_id in action_ids:
                problems.append(f"{where}: duplicate action_id {action_id!r} in one block")
            action_ids.add(action_id)
        problems.extend(_option_problems(element, where))
        if element.get("type") == "file_input":
            if surface != "modal" or block["type"] != "input":
                problems.append(f"{where}: file_input works only in input blocks of a modal")
            if element.get("max_files", 10) not in MAX_FILES_RANGE:
                problems.append(f"{where}: file_input max_files must be 1-10")
    return problems


def view_problems(view: Any, surface: Literal["modal", "home"] = "modal") -> list[str]:
    """Why Slack would reject this view (modal or App Home), or [] when it is fine."""
    if not isinstance(view, dict):
        return [f"view must be an object, got {type(view).__name__}"]
    problems: list[str] = []
    if view.get("type") != surface:
        problems.append(f"view.type must be {surface!r}, got {view.get('type')!r}")
    blocks = view.get("blocks")
    if not blocks:
        problems.append("view.blocks must hold at least one block")
    else:
        problems.extend(f"view.{p}" for p in block_problems(blocks, surface))
    size = len(json.dumps(view, ensure_ascii=False, separators=(",", ":")).encode())
    if size > VIEW_BYTES_LIMIT:
        problems.append(f"view: {size:,} bytes of JSON, more than Slack's 250 KB "
                        "(view_too_large)")  # fmt: skip
    # View-level checks (title 24, private_metadata 3000, callback_id 255...) on a stand-in
    # block list, so block errors are not reported twice.
    try:
        View(**{**view, "blocks": [{"type": "divider"}]}).to_dict()
    except Exception as exc:
        problems.append(f"view: {exc}")
    if surface == "modal":
        if not view.get("title"):
            problems.append("view: a modal needs a title")
        has_inputs = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_inputs and not view.get("submit"):
            problems.append("view: must provide submit when input blocks are present")
    return problems


# --------------------------------------------------------------------------------------------
# Serving helpers
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an aiohttp app on a free port; yields its base URL ("http://127.0.0.1:PORT").

    Also handy for the bot's own web app (e.g. `serve(bolt_app.web_app())`) in tests.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Served:
    """Shared `async with` plumbing for the fake servers (Slack, Mailchimp)."""

    _base_url: str | None = None

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._server = serve(self._build_app())
        self._base_url = await self._server.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.__aexit__(None, None, None)
        self._base_url = None

    @property
    def base_url(self) -> str:
        """Like "http://127.0.0.1:PORT" (only inside `async with`)."""
        if self._base_url is None:
            raise RuntimeError("the fake server is not running: use `async with`")
        return self._base_url

    @property
    def host(self) -> str:
        """Like "127.0.0.1:PORT": the netloc a bot compares URLs against."""
        return urlsplit(self.base_url).netloc


# --------------------------------------------------------------------------------------------
# FakeSlack
# --------------------------------------------------------------------------------------------

_JSON_ARGS = ("blocks", "view", "attachments", "files", "metadata")
_Handler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any]] | dict[str, Any]]


_IDS = itertools.count(1)  # every fake's ids (views, channels, files) from one count

class FakeSlack(Served):
    """Slack's Web API, private file host, upload URLs and response_urls, in one local server.

    Use as `async with FakeSlack() as slack:` and give the bot
    `AsyncWebClient(token, base_url=slack.api_url)`. State is public so tests can seed it
    (`users`, `tokens`, `add_file`) and assert on it (`calls`, `messages`, `views`, `uploads`,
    `downloads`, `responses`, `block_errors`).
    """

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        team_id: str = "T0001",
        *,
        team_domain: str = "acme",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0001",
        app_id: str = "A0001",
        scopes: str = DEFAULT_SCOPES,
        trigger_ttl: float = 3.0,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.scopes = scopes
        self.trigger_ttl = trigger_ttl
        # token -> team_id; add entries to fake more workspaces
        self.tokens: dict[str, str] = {bot_token: team_id}
        # token -> what every call with it is answered from now on (`uninstall`)
        self.revoked: dict[str, str] = {}
        # user_id -> fields overriding the default user object (e.g. {"is_admin": True})
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}  # open modals by view id
        self.home_views: dict[str, dict[str, Any]] = {}  # published App Home by user id
        self.files: dict[str, dict[str, Any]] = {}  # file objects by id
        self.file_contents: dict[str, bytes] = {}
        self.uploads: list[Upload] = []
        self.downloads: list[Download] = []
        self.responses: dict[str, list[dict[str, Any]]] = {}  # response_url -> posted bodies
        self.block_errors: list[str] = []
        self.dm_channels: dict[str, str] = {}  # user id -> "D..." channel
        self.failing_uploads = 0  # the next this many file uploads get a 500 from the host
        self.failing_downloads = 0  # the next this many file downloads get a 503
        self.channel_names: dict[str, str] = {}  # e.g. {"C0001": "referrals"} for file shares
        self.socket_url: str | None = None  # apps.connections.open answers it (FakeSocketMode)
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        # messages deleted with no replies: their thread is gone (one with replies stays)
        self._gone_threads: set[tuple[str, str]] = set()
        self._triggers: dict[str, _Trigger] = {}
        self._stacks: dict[str, list[str]] = {}  # root view id -> view ids, bottom first
        self._response_urls: dict[str, tuple[str | None, str | None, str | None]] = {}
        self._rate_limits: dict[str, list[int]] = {}  # method -> [remaining, retry_after]
        self._failures: dict[str, list[Any]] = {}  # method -> [remaining, error]
        self._outages: dict[str, list[Any]] = {}  # method -> [remaining, HTTP status or None]
        self._holds: dict[str, asyncio.Event] = {}  # method -> gate the calls wait for
        self._ts = itertools.count(1)
        self._ids = _IDS  # unique across fakes, as Slack's are: two apps may share a database
        self._handlers: dict[str, _Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "files.info": self._files_info,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "apps.connections.open": self._apps_connections_open,
        }

    # ---- URLs -------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """Base URL for `AsyncWebClient(base_url=...)` (ends with "/api/")."""
        return f"{self.base_url}/api/"

    @property
    def files_host(self) -> str:
        """Netloc standing in for files.slack.com: the only host that may see the bot token."""
        return self.host

    # ---- seeding and scripting ----------------------------------------------------------------

    def new_trigger_id(
        self, user_id: str = "U0001", *, view_id: str | None = None, age: float = 0.0
    ) -> str:
        """Issue a trigger_id views.open/push will accept once, within `trigger_ttl` seconds.

        `age` back-dates it (age=5 gives an already expired trigger without sleeping);
        `view_id` ties it to an open modal, as for a click inside that modal (views.push).
        """
        n = next(self._ids)
        trigger_id = f"{int(time.time())}{n:03d}.1000000001.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = _Trigger(time.monotonic() - age, user_id, view_id)
        return trigger_id

    def new_response_url(
        self,
        channel: str | None = None,
        message_ts: str | None = None,
        *,
        user_id: str | None = None,
    ) -> str:
        """A response_url recording what is posted to it (in `responses[url]`).

        Tied to `channel`/`message_ts` it also applies `replace_original`/`delete_original`
        to that stored message, like Slack does for a button's response_url.
        """
        key = secrets.token_hex(8)
        self._response_urls[key] = (channel, message_ts, user_id)
        url = f"{self.base_url}/response/{key}"
        self.responses[url] = []
        return url

    def add_file(
        self,
        file_id: str,
        name: str,
        content: bytes,
        filetype: str = "csv",
        mimetype: str = "text/csv",
        channels: Sequence[str] = (),
        external: bool = False,
        url_private_download: str | None = None,
        *,
        user: str = "U0001",
        title: str | None = None,
        url_private: str | None = None,
        replies_to: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Register a file for files.info and the private download URLs; returns the object.

        `replies_to` (channel -> a message's ts): the file was shared there as a reply in that
        message's thread; its share then carries the thread's `thread_ts`, as Slack's does.

        Hosted files get `url_private`/`url_private_download` on this server (like
        files.slack.com). For `external=True` pass the other host's URL as
        `url_private_download` (and/or `url_private`): Slack hands those out unchanged.
        """
        base = f"{self.base_url}/files-pri/{self.team_id}-{file_id}"
        private = (url_private or url_private_download) if external else url_private
        private_download = url_private_download or (private if external else None)
        created = int(time.time())
        public: dict[str, Any] = {}
        private_shares: dict[str, Any] = {}
        for channel in channels:
            share = {
                "reply_users": [],
                "reply_users_count": 0,
                "reply_count": 0,
                "ts": self._next_ts(),
                "channel_name": self.channel_names.get(channel, channel.lower()),
                "team_id": self.team_id,
            }
            if replies_to and channel in replies_to:
                share["thread_ts"] = replies_to[channel]
            (private_shares if channel[0] in "GD" else public).setdefault(channel, []).append(share)
        obj: dict[str, Any] = {
            "id": file_id,
            "created": created,
            "timestamp": created,
            "name": name,
            "title": title or name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(content),
            "mode": "external" if external else "hosted",
            "is_external": external,
            "external_type": "gdrive" if external else "",
            "is_public": bool(public),
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": private or f"{base}/{name}",
            "url_private_download": private_download or f"{base}/download/{name}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{user}/{file_id}/{name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{file_id}-0a1b2c3d4e",
            "comments_count": 0,
            "is_starred": False,
            "shares": ({"public": public} if public else {})
            | ({"private": private_shares} if private_shares else {}),
            "channels": [c for c in channels if c[0] == "C"],
            "groups": [c for c in channels if c[0] == "G"],
            "ims": [c for c in channels if c[0] == "D"],
            "has_rich_preview": False,
            "file_access": "visible",
        }
        self.files[file_id] = obj
        self.file_contents[file_id] = content
        return copy.deepcopy(obj)

    def file_object(self, file_id: str) -> dict[str, Any]:
        """A copy of a registered file object, e.g. for a file_shared / file_share event."""
        return copy.deepcopy(self.files[file_id])

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls to `method` with HTTP 429 and `Retry-After`.

        slack_sdk's retry handler sleeps int(first digit of Retry-After) + random() seconds,
        so keep `retry_after` small (0 is fine) in tests.
        """
        self._rate_limits[method] = [times, retry_after]

    def uninstall(self, error: str = "token_revoked", token: str | None = None) -> None:
        """The workspace uninstalled the app or revoked its tokens (`token_revoked`), or was
        deactivated (`account_inactive`): every later Web API call with the bot token (or
        `token`) is answered `error`, and its file downloads get the login page, as Slack
        answers a token it no longer takes. The app's events then are the bot's to handle."""
        self.revoked[token or self.bot_token] = error

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next `times` calls to `method` with `{"ok": false, "error": error}`."""
        self._failures[method] = [times, error]

    def outage(self, method: str, times: int = 1, *, status: int | None = None) -> None:
        """The next `times` calls to `method` never get an answer from Slack: the connection is
        dropped (a network error in the client), or with `status` an HTTP error such as 503."""
        self._outages[method] = [times, status]

    def hold(self, method: str) -> asyncio.Event:
        """Calls to `method` wait (after being recorded) until the returned event is set."""
        gate = asyncio.Event()
        self._holds[method] = gate
        return gate

    def unhold(self, method: str) -> None:
        """Later calls to `method` go through at once; those already held still wait for
        their gate (one call held while the next passes: a reply that lands late)."""
        self._holds.pop(method, None)

    def close_view(self, view_id: str) -> None:
        """The user closed (or submitted) this modal: it and the views above it are gone."""
        for root, stack in list(self._stacks.items()):
            if view_id in stack:
                for gone in stack[stack.index(view_id) :]:
                    self.views.pop(gone, None)
                del stack[stack.index(view_id) :]
                if not stack:
                    del self._stacks[root]

    def apply_view_submission(self, view_id: str, ack_body: Any) -> None:
        """Do what Slack does with the ack of a view_submission (close, clear, update, push).

        Problems (invalid view, `errors` keyed by something other than an input block_id)
        go to `block_errors`; the modal then stays as it was.
        """
        action = ack_body.get("response_action") if isinstance(ack_body, dict) else None
        view = self.views.get(view_id)
        try:
            if action is None:
                self.close_view(view_id)
            elif action == "clear":
                self.close_view(view["root_view_id"] if view else view_id)
            elif action == "errors" and view is not None:
                inputs = {b.get("block_id") for b in view["blocks"] if b.get("type") == "input"}
                errors = ack_body.get("errors") or {}
                if unknown := sorted(set(errors) - inputs):
                    problem = f"errors keys must be input block_ids of the view, got {unknown}"
                    self._reject("view_submission ack", [problem])
                if not errors:
                    self._reject("view_submission ack", ["response_action errors without errors"])
            elif action == "update" and view is not None:
                self._check_view(ack_body.get("view"), "view_submission ack", "modal")
                self.views[view_id] = self._render_view(ack_body["view"], view)
            elif action == "push" and view is not None:
                self._check_view(ack_body.get("view"), "view_submission ack", "modal")
                self._push(ack_body["view"], view["root_view_id"])
        except _ApiError:
            pass  # already recorded in block_errors (or push_limit_reached: nothing to do)

    # ---- queries ------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        """Calls to one Web API method, oldest first (including rate-limited ones)."""
        return [c for c in self.calls if c.method == method]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Messages currently in channels (posted, updated, not deleted), oldest first."""
        return list(self._messages.values())

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The stored message; KeyError when there is none."""
        return self._messages[(self._channel_id(channel), ts)]

    def get_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stored message, or None (e.g. a message a person posted)."""
        return self._messages.get((self._channel_id(channel), ts))

    def messages_in(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages of a channel; with `thread_ts`, the thread's replies (parent excluded)."""
        channel = self._channel_id(channel)
        return [
            m
            for m in self._messages.values()
            if m["channel"] == channel
            and (thread_ts is None or (m.get("thread_ts") == thread_ts and m["ts"] != thread_ts))
        ]

    def find_action(self, action_id: str, channel: str | None = None) -> dict[str, Any] | None:
        """The newest stored message with an element whose action_id is `action_id`."""
        for message in reversed(self.messages):
            if channel and message["channel"] != self._channel_id(channel):
                continue
            if find_element(message.get("blocks") or [], action_id):
                return message
        return None

    def open_views(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Open modals (optionally of one user), oldest first."""
        return [v for v in self.views.values() if user_id in (None, v["_user_id"])]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 30.0) -> list[Call]:
        """Wait until `method` was called `count` times (bolt runs listeners after the ack).

        `timeout` is a hang guard, not a time the app is given: 2 s was, and a loaded machine
        (CI's 2 cores, 3 test processes and PostgreSQL) can take that long to run a click's
        work after its ack. A test meaning a deadline (a trigger id's 3 s) passes its own."""
        deadline = time.monotonic() + timeout
        while len(calls := self.calls_to(method)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} called {len(calls)} times, expected {count}")
            await asyncio.sleep(0.01)
        return calls

    # ---- aiohttp plumbing ---------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/files-pri/{team_file}/{tail:.+}", self._handle_download)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response_url)
        return app

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        body_token: str | None = request.query.get("token")
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    return self._json({"ok": False, "error": "invalid_json"})
                if not isinstance(body, dict):
                    return self._json({"ok": False, "error": "invalid_json"})
                args.update(body)  # Slack ignores a token inside a JSON body
            else:
                form = await request.post()
                for key, value in form.items():
                    args[key] = value if isinstance(value, str) else value.file.read()
                body_token = args.get("token", body_token)
        args.pop("token", None)
        for key in _JSON_ARGS:
            if isinstance(args.get(key), str) and args[key][:1] in ("[", "{"):
                with suppress(ValueError):
                    args[key] = json.loads(args[key])
        call = Call(method, args, CIMultiDict(request.headers))
        self.calls.append(call)

        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        token = token or body_token
        if not token:
            return self._json({"ok": False, "error": "not_authed"})
        team_id = self.tokens.get(token)
        if method == "apps.connections.open":  # the one method that takes the app-level token
            if not header.startswith("Bearer xapp-"):
                return self._json({"ok": False, "error": "not_allowed_token_type"})
            team_id = self.team_id
        if team_id is None:
            return self._json({"ok": False, "error": "invalid_auth"})
        if token in self.revoked:
            return self._json({"ok": False, "error": self.revoked[token]})

        if (limit := self._rate_limits.get(method)) and limit[0] > 0:
            limit[0] -= 1
            call.rate_limited = True
            return self._json(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(limit[1])},
            )
        if (outage := self._outages.get(method)) and outage[0] > 0:
            outage[0] -= 1
            if outage[1] is None:
                if request.transport is not None:
                    request.transport.close()  # no answer at all
                raise ConnectionResetError("fake outage")
            return web.Response(status=outage[1], text="upstream unavailable")
        if (gate := self._holds.get(method)) is not None:
            await gate.wait()
        if (failure := self._failures.get(method)) and failure[0] > 0:
            failure[0] -= 1
            if failure[1] == "missing_scope":  # Slack names the scope wanted, and those held
                return self._json({"ok": False, "error": "missing_scope",
                                   "needed": NEEDED_SCOPES.get(method, ""),
                                   "provided": self.scopes})  # fmt: skip
            return self._json({"ok": False, "error": failure[1]})
        needed = NEEDED_SCOPES.get(method)
        if needed is not None and needed not in self.scopes.split(","):
            return self._json({"ok": False, "error": "missing_scope", "needed": needed,
                               "provided": self.scopes})  # fmt: skip

        handler = self._handlers.get(method)
        if handler is None:
            return self._json({"ok": False, "error": "unknown_method"})
        try:
            result = handler(args, team_id)
            if not isinstance(result, dict):
                result = await result
        except _ApiError as exc:
            return self._json({"ok": False, "error": exc.error, **exc.extra})
        return self._json({"ok": True, **result})

    def _json(
        self, body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return web.json_response(
            body, status=status, headers={"x-oauth-scopes": self.scopes, **(headers or {})}
        )

    async def _handle_download(self, request: web.Request) -> web.Response:
        team_file = request.match_info["team_file"]
        file_id = team_file.split("-", 1)[-1]
        header = request.headers.get("Authorization")
        token = header.removeprefix("Bearer ") if header and header.startswith("Bearer ") else ""
        file = self.files.get(file_id)
        authorized = (bool(file) and self.tokens.get(token) == team_file.split("-", 1)[0]
                      and token not in self.revoked)  # fmt: skip
        self.downloads.append(Download(file_id, request.path, header, authorized))
        if self.failing_downloads > 0:  # the file host's own trouble
            self.failing_downloads -= 1
            return web.Response(status=503, text="busy", content_type="text/plain")
        if not authorized:
            # What Slack answers without a valid token: a 200 login page, not a 401.
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        assert file is not None
        headers = {}
        if "/download/" in request.path:
            headers["Content-Disposition"] = f'attachment; filename="{file["name"]}"'
        return web.Response(
            body=self.file_contents[file_id], content_type=file["mimetype"], headers=headers
        )

    async def _handle_upload(self, request: web.Request) -> web.Response:
        upload = self._upload(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="not found", content_type="text/plain")
        if self.failing_uploads > 0:  # the upload host's own trouble (not a Web API answer)
            self.failing_uploads -= 1
            return web.Response(status=500, text="upload failed", content_type="text/plain")
        upload.content = await request.read()
        return web.Response(text=f"OK - {len(upload.content)}", content_type="text/plain")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        url = f"{self.base_url}{request.path}"
        target = self._response_urls.get(request.match_info["key"])
        if target is None:
            return web.Response(status=404, text="no_active_hooks", content_type="text/plain")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        self.responses[url].append(body)
        try:
            self._apply_response(body, *target)
        except _ApiError as exc:
            return web.json_response({"ok": False, "error": exc.error, **exc.extra})
        return web.json_response({"ok": True})

    def _apply_response(
        self, body: dict[str, Any], channel: str | None, ts: str | None, user: str | None
    ) -> None:
        if body.get("delete_original"):
            if channel and ts:
                self._messages.pop((channel, ts), None)
            return
        self._require_content(body, "response_url")
        if "blocks" in body:
            self._check_blocks(body["blocks"], "response_url", "message")
        original = self._messages.get((channel or "", ts or ""))
        if body.get("replace_original") and original is not None:
            original["text"] = body.get("text", "")
            original["blocks"] = body.get("blocks", [])
        elif body.get("response_type") == "in_channel" and channel:
            self._store_message(channel, body.get("text", ""), body.get("blocks"), None)
        else:
            self.ephemerals.append(
                {
                    "channel": channel,
                    "user": user,
                    "text": body.get("text", ""),
                    "blocks": body.get("blocks", []),
                    "message_ts": self._next_ts(),
                }
            )

    # ---- helpers ------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        micros = FIRST_TS_MICROS + 100 * next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}9{next(self._ids):07d}"

    def _channel_id(self, channel: str) -> str:
        """User ids stand for the DM with that user, as in chat.postMessage(channel=U...)."""
        if channel[:1] in ("U", "W"):
            return self._dm_for(channel)[0]
        return channel

    def _dm_for(self, user_id: str) -> tuple[str, bool]:
        existed = user_id in self.dm_channels
        if not existed:
            self.dm_channels[user_id] = self._next_id("D")
        return self.dm_channels[user_id], existed

    def _check_blocks(self, blocks: Any, method: str, surface: Surface) -> None:
        problems = block_problems(blocks, surface)
        if problems:
            self._reject(method, problems)

    def _check_view(self, view: Any, method: str, surface: Literal["modal", "home"]) -> None:
        problems = view_problems(view, surface)
        if problems:
            self._reject(method, problems, error="view_too_large" if any(
                "view_too_large" in p for p in problems) else "invalid_blocks")  # fmt: skip

    def _reject(self, method: str, problems: list[str], error: str = "invalid_blocks") -> None:
        self.block_errors.extend(f"{method}: {p}" for p in problems)
        raise _ApiError(
            error,
            detail="; ".join(problems),
            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
        )

    @staticmethod
    def _require(args: dict[str, Any], *names: str) -> None:
        missing = [n for n in names if not args.get(n)]
        if missing:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] missing required field: {missing[0]}"]},
            )

    @staticmethod
    def _require_content(args: dict[str, Any], method: str) -> None:
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _ApiError("no_text")
        if len(args.get("text") or "") > MESSAGE_TEXT_LIMIT:
            raise _ApiError("msg_too_long")

    def _store_message(
        self, channel: str, text: str, blocks: list[Any] | None, thread_ts: str | None
    ) -> dict[str, Any]:
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "ts": ts,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text,
            "blocks": blocks or [],
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
            parent = self._mark_thread_parent(channel, thread_ts, ts, message["user"])
            if parent is not None:
                message["parent_user_id"] = parent["user"]
        self._messages[(channel, ts)] = message
        return message

    def _mark_thread_parent(self, channel: str, thread_ts: str, reply_ts: str,
                            replier: str) -> dict[str, Any] | None:  # fmt: skip
        """A reply landed in `thread_ts`'s thread: its stored parent becomes a thread parent
        in Slack's shape (`thread_ts` equal to its own `ts`, `reply_count`, `latest_reply`,
        `reply_users`), so a click on it carries that as Slack's does. None: no such parent."""
        parent = self._messages.get((channel, thread_ts))
        if parent is not None:
            parent["thread_ts"] = thread_ts
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = reply_ts
            parent["reply_users"] = sorted({*parent.get("reply_users", []), replier})
            parent["reply_users_count"] = len(parent["reply_users"])
        return parent

    def _upload(self, file_id: str) -> Upload | None:
        return next((u for u in self.uploads if u.file_id == file_id), None)

    def _use_trigger(self, trigger_id: str | None) -> _Trigger:
        trigger = self._triggers.get(trigger_id or "")
        if trigger is None:
            raise _ApiError("invalid_trigger_id")
        if trigger.used:
            raise _ApiError("exchanged_trigger_id")
        if time.monotonic() - trigger.issued_at > self.trigger_ttl:
            raise _ApiError("expired_trigger_id")
        trigger.used = True
        return trigger

    def _render_view(
        self, view: dict[str, Any], previous: dict[str, Any] | None = None, **ids: Any
    ) -> dict[str, Any]:
        """The view object Slack returns: the payload plus ids, hash and state."""
        rendered = copy.deepcopy(view)
        rendered.setdefault("private_metadata", "")
        rendered.setdefault("callback_id", "")
        rendered.setdefault("external_id", "")
        rendered.setdefault("clear_on_close", False)
        rendered.setdefault("notify_on_close", False)
        keep = ("id", "root_view_id", "previous_view_id", "_user_id")
        base = {k: previous[k] for k in keep} if previous else {}
        rendered.update(
            {
                "team_id": self.team_id,
                "app_id": self.app_id,
                "bot_id": self.bot_id,
                "app_installed_team_id": self.team_id,
                "state": {"values": {}},
                "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
                **base,
                **ids,
            }
        )
        return rendered

    def _check_external_id(self, view: dict[str, Any], own_id: str | None = None) -> None:
        external_id = view.get("external_id")
        if external_id and any(
            v["external_id"] == external_id and v["id"] != own_id for v in self.views.values()
        ):
            raise _ApiError("duplicate_external_id")

    def _push(self, view: dict[str, Any], root_id: str, user_id: str = "") -> dict[str, Any]:
        stack = self._stacks[root_id]
        if len(stack) >= VIEW_STACK_LIMIT:
            raise _ApiError("push_limit_reached")
        user_id = user_id or self.views[root_id]["_user_id"]
        view_id = self._next_id("V")
        rendered = self._render_view(
            view, id=view_id, root_view_id=root_id, previous_view_id=stack[-1], _user_id=user_id
        )
        stack.append(view_id)
        self.views[view_id] = rendered
        return rendered

    @staticmethod
    def _public(view: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in view.items() if not k.startswith("_")}

    # ---- Web API methods ----------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain.title(),
            "user": "referral-bot",
            "team_id": team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        if self.socket_url is None:  # the fake's own error: no FakeSocketMode attached
            raise _ApiError("socket_mode_not_enabled")
        return {"url": self.socket_url}

    def _chat_post_message(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "channel")
        self._require_content(args, "chat.postMessage")
        if "blocks" in args:
            self._check_blocks(args["blocks"], "chat.postMessage", "message")
        channel = self._channel_id(args["channel"])
        if (channel, args.get("thread_ts")) in self._gone_threads:
            raise _ApiError("thread_not_found")  # Slack's answer for a reply to a deleted parent
        message = self._store_message(
            channel, args.get("text", ""), args.get("blocks"), args.get("thread_ts")
        )
        if args.get("attachments"):
            message["attachments"] = args["attachments"]
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        reply = {k: v for k, v in message.items() if k != "channel"}
        return {"channel": channel, "ts": message["ts"], "message": copy.deepcopy(reply)}

    def _chat_update(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "channel", "ts")
        channel = self._channel_id(args["channel"])
        message = self._messages.get((channel, args["ts"]))
        if message is None:
            raise _ApiError("message_not_found")
        self._require_content(args, "chat.update")
        if "blocks" in args:
            self._check_blocks(args["blocks"], "chat.update", "message")
            message["blocks"] = args["blocks"]
        if "text" in args:
            message["text"] = args["text"]
            if "blocks" not in args:
                message["blocks"] = []  # Slack drops the blocks when only text is sent
        if "attachments" in args:
            message["attachments"] = args["attachments"]
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        reply = {k: v for k, v in message.items() if k != "channel"}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(reply),
        }

    def _chat_delete(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "channel", "ts")
        channel = self._channel_id(args["channel"])
        if self._messages.pop((channel, args["ts"]), None) is None:
            raise _ApiError("message_not_found")
        if not self.messages_in(channel, args["ts"]):  # no replies left: no thread either
            self._gone_threads.add((channel, args["ts"]))
        return {"channel": channel, "ts": args["ts"]}

    def _chat_post_ephemeral(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "channel", "user")
        self._require_content(args, "chat.postEphemeral")
        if "blocks" in args:
            self._check_blocks(args["blocks"], "chat.postEphemeral", "message")
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": self._channel_id(args["channel"]),
                "user": args["user"],
                "text": args.get("text", ""),
                "blocks": args.get("blocks", []),
                "thread_ts": args.get("thread_ts"),
                "message_ts": ts,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        """Always answers (messages posted by people are not stored here)."""
        self._require(args, "channel", "message_ts")
        channel, ts = self._channel_id(args["channel"]), args["message_ts"]
        permalink = (
            f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        )
        message = self._messages.get((channel, ts))
        if message and message.get("thread_ts") and message["thread_ts"] != ts:
            permalink += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": permalink}

    def _conversations_open(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        if args.get("channel"):
            return {"channel": {"id": args["channel"]}}
        users = args.get("users")
        if isinstance(users, str):
            users = [u for u in users.split(",") if u]
        if not users:
            raise _ApiError("users_list_not_supplied")
        if len(users) > 1:
            channel_id, existed = self._next_id("G"), False  # a multi-person DM
        else:
            channel_id, existed = self._dm_for(users[0])
        return {"no_op": existed, "already_open": existed, "channel": {"id": channel_id}}

    def _users_info(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        """Unseeded U/W ids are ordinary members; seed `users[id]` to change fields."""
        self._require(args, "user")
        user_id = args["user"]
        if user_id not in self.users and user_id[:1] not in ("U", "W"):
            raise _ApiError("user_not_found")
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": team_id,
            "name": user_id.lower(),
            "real_name": user_id,
            "deleted": False,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": user_id == self.bot_user_id,
            "is_app_user": False,
            "tz": "Europe/London",
            "locale": "en-US",
            "profile": {
                "real_name": user_id,
                "display_name": user_id.lower(),
                "email": f"{user_id.lower()}@example.com",
            },
        }
        user.update(copy.deepcopy(self.users.get(user_id, {})))
        return {"user": user}

    def _files_info(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "file")
        if args["file"] not in self.files:
            raise _ApiError("file_not_found")
        return {
            "file": self.file_object(args["file"]),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    def _files_get_upload_url_external(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "filename", "length")
        file_id = self._next_id("F")
        self.uploads.append(Upload(file_id, args["filename"], int(args["length"])))
        return {"upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "files")
        entries = args["files"]
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        uploads: list[tuple[Upload, dict[str, Any]]] = []
        for entry in entries:
            upload = self._upload(entry.get("id", ""))
            if upload is None or upload.content is None or upload.completed:
                raise _ApiError("file_not_found")
            uploads.append((upload, entry))
        channels = args.get("channels") or []
        if isinstance(channels, str):
            channels = [c for c in channels.split(",") if c]
        channel_id = args.get("channel_id")
        targets = [*([channel_id] if channel_id else []), *channels]
        files = []
        thread_ts = args.get("thread_ts")
        for upload, entry in uploads:
            assert upload.content is not None
            upload.completed = True
            upload.title = entry.get("title") or upload.filename
            upload.channel_id = channel_id
            upload.channels = list(channels)
            upload.thread_ts = args.get("thread_ts")
            upload.initial_comment = args.get("initial_comment")
            filetype = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
            files.append(
                self.add_file(
                    upload.file_id,
                    upload.filename,
                    upload.content,
                    filetype=filetype or "text",
                    mimetype="text/csv" if filetype == "csv" else "application/octet-stream",
                    channels=targets,
                    user=self.bot_user_id,
                    title=upload.title,
                )
            )
        if thread_ts:  # the files' one message is a reply there: its parent is a thread's now
            shares = {**files[-1]["shares"].get("public", {}),
                      **files[-1]["shares"].get("private", {})}  # fmt: skip
            for target in targets:
                self._mark_thread_parent(self._channel_id(target), thread_ts,
                                         shares[target][-1]["ts"], self.bot_user_id)  # fmt: skip
        return {"files": files}

    def _views_open(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "view")
        view = args["view"]
        self._check_view(view, "views.open", "modal")
        self._check_external_id(view)
        trigger = self._use_trigger(args.get("trigger_id") or args.get("interactivity_pointer"))
        view_id = self._next_id("V")
        rendered = self._render_view(
            view, id=view_id, root_view_id=view_id, previous_view_id=None, _user_id=trigger.user_id
        )
        self.views[view_id] = rendered
        self._stacks[view_id] = [view_id]
        return {"view": self._public(rendered)}

    def _views_push(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "view")
        view = args["view"]
        self._check_view(view, "views.push", "modal")
        self._check_external_id(view)
        trigger = self._use_trigger(args.get("trigger_id") or args.get("interactivity_pointer"))
        root_id = (
            self.views[trigger.view_id]["root_view_id"] if trigger.view_id in self.views else None
        )
        if root_id is None:  # a trigger not tied to a modal: the user's newest open modal
            mine = [v for v in self.open_views(trigger.user_id) if v["id"] == v["root_view_id"]]
            if not mine:
                raise _ApiError("not_found")
            root_id = mine[-1]["id"]
        return {"view": self._public(self._push(view, root_id, trigger.user_id))}

    def _views_update(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "view")
        if args.get("view_id"):
            current = self.views.get(args["view_id"])
        elif args.get("external_id"):
            current = next(
                (v for v in self.views.values() if v["external_id"] == args["external_id"]), None
            )
        else:
            raise _ApiError("invalid_arguments")
        if current is None:
            raise _ApiError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        view = args["view"]
        self._check_view(view, "views.update", "modal")
        self._check_external_id(view, own_id=current["id"])
        rendered = self._render_view(view, current)
        if not view.get("external_id"):
            rendered["external_id"] = current["external_id"]
        self.views[current["id"]] = rendered
        return {"view": self._public(rendered)}

    def _views_publish(self, args: dict[str, Any], team_id: str) -> dict[str, Any]:
        self._require(args, "user_id", "view")
        view = args["view"]
        current = self.home_views.get(args["user_id"])
        if current and args.get("hash") and args["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        self._check_view(view, "views.publish", "home")
        view_id = current["id"] if current else self._next_id("V")
        rendered = self._render_view(view, id=view_id, root_view_id=None, previous_view_id=None)
        self.home_views[args["user_id"]] = rendered
        return {"view": rendered}


def find_element(blocks: Iterable[Any], action_id: str) -> tuple[str, dict[str, Any]] | None:
    """(block_id, element) of the first element with this action_id in a block list."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        for element in (
            block.get("element"),
            block.get("accessory"),
            *(block.get("elements") or []),
        ):
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id", ""), element
    return None


# --------------------------------------------------------------------------------------------
# FakeExternalHost
# --------------------------------------------------------------------------------------------


@dataclass
class _Route:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    location: str | None = None


class FakeExternalHost(Served):
    """A non-Slack host (e.g. an external file's `url_private`) that records request headers.

    Tests assert the bot token never reaches it, including through redirects:
    `host.redirect("/f.csv", slack_or_other_url)`.
    """

    def __init__(self) -> None:
        self.requests: list[ExternalRequest] = []
        self._routes: dict[str, _Route] = {}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def serve(self, path: str, content: bytes, content_type: str = "text/csv") -> str:
        """Answer GET `path` with `content`; returns the full URL."""
        self._routes["/" + path.lstrip("/")] = _Route(200, content, content_type)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer `path` with a redirect to `location`; returns the full URL."""
        self._routes["/" + path.lstrip("/")] = _Route(status, location=location)
        return self.url(path)

    @property
    def authorizations(self) -> list[str]:
        """Every Authorization header this host received (should stay empty)."""
        return [r.headers["Authorization"] for r in self.requests if "Authorization" in r.headers]

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            ExternalRequest(request.method, request.path, CIMultiDict(request.headers))
        )
        route = self._routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="not found")
        if route.location is not None:
            return web.Response(status=route.status, headers={"Location": route.location})
        return web.Response(status=route.status, body=route.body, content_type=route.content_type)
