"""A fake Socket Mode server: Slack's side of the websocket, on 127.0.0.1.

How Socket Mode works (and what this fake does): the app calls `apps.connections.open` with its
app-level token (xapp-...) through the Web API (here the `FakeSlack` it is attached to, which
answers with this server's URL), opens the websocket, receives `{"type": "hello", ...}`, then
envelopes `{"type": "events_api" | "interactive" | "slash_commands", "envelope_id",
"payload", "accepts_response_payload"}` which it must acknowledge within 3 seconds with
`{"envelope_id": ..., "payload"?: {...}}`. `{"type": "disconnect"}` asks it to open a new
connection (Slack sends it before recycling a connection).

The payloads are the ones Slack posts over HTTP: slash command fields as a dict, the interactive
`payload` object, the Events API `event_callback` body. `SocketModeRequests` builds them with the
same helpers as `SlackRequests` (trigger ids and response_urls the FakeSlack accepts, clicked
messages read from it), so a test can drive the bot over either transport.

    async with FakeSlack() as slack, FakeSocketMode(slack) as socket:
        ...  # run the bot with slack_api_url=slack.api_url and an xapp- token
        await socket.wait_for_connection()
        requests = SocketModeRequests(socket, slack)
        reply = await requests.slash_command(text="import")  # waits for the ack
        assert socket.problems == []
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Self, Unpack

from aiohttp import WSMsgType, web

from tests.fakes.slack_api import FakeSlack, Served
from tests.fakes.slack_requests import Reply, SendOptions, SlackRequests

__all__ = ["Ack", "Connection", "EnvelopeType", "FakeSocketMode", "SocketModeRequests"]

EnvelopeType = Literal["events_api", "interactive", "slash_commands"]
ACK_DEADLINE = 3.0  # Slack shows an error (or retries an event) when the ack comes later
# Interactive payloads whose ack body Slack uses; for the others it is ignored.
_RESPONDING_INTERACTIONS = ("view_submission", "block_suggestion")


@dataclass
class Ack:
    """The app's acknowledgement of one envelope."""

    envelope_id: str
    payload: dict[str, Any] | None  # the response body (e.g. `response_action`), if any
    message: dict[str, Any]  # the whole JSON frame the app sent
    connection: int  # number of the connection that carried it (1 = first)
    seconds: float  # from sending the envelope to receiving its ack


@dataclass
class Connection:
    """One websocket the app opened."""

    number: int  # 1 for the first connection, 2 after the first reconnect, ...
    path_qs: str
    ws: web.WebSocketResponse
    opened_at: float = field(default_factory=time.monotonic)
    hello_sent: bool = False
    closed_at: float | None = None
    frames: list[Any] = field(default_factory=list)  # every frame the app sent, decoded

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.ws.closed


class FakeSocketMode(Served):
    """Slack's Socket Mode websocket endpoint; attaches its URL to `slack.socket_url`.

    Records `connections`, `sent` envelopes, `acks` by envelope id, and `problems` (acks for
    unknown or already acknowledged envelopes, malformed frames, late acks, a response payload
    where Slack ignores it). Use as `async with FakeSocketMode(slack) as socket:`.
    """

    def __init__(self, slack: FakeSlack | None = None, *, app_id: str | None = None) -> None:
        self.slack = slack
        self.app_id = app_id or (slack.app_id if slack else "A0001")
        self.connections: list[Connection] = []
        self.sent: list[dict[str, Any]] = []  # every frame sent to the app, oldest first
        self.acks: dict[str, Ack] = {}
        self.problems: list[str] = []
        self._envelopes: dict[str, tuple[dict[str, Any], float]] = {}  # id -> (envelope, sent at)
        self._waiting: dict[str, asyncio.Future[Ack]] = {}
        self._ids = itertools.count(1)

    # ---- lifecycle ---------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/link/", self._handle_ws)
        return app

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        if self.slack is not None:
            self.slack.socket_url = self.url
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.slack is not None:
            self.slack.socket_url = None
        for connection in self.connections:
            if not connection.ws.closed:
                await connection.ws.close()
        for waiter in self._waiting.values():
            waiter.cancel()
        await super().__aexit__(*exc_info)

    @property
    def url(self) -> str:
        """What apps.connections.open hands out, like "wss://wss-primary.slack.com/link/?..."."""
        return f"ws://{self.host}/link/?ticket={secrets.token_hex(16)}&app_id={self.app_id}"

    # ---- the websocket -----------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)  # answers the SDK's "sdk-ping-pong" pings
        await ws.prepare(request)
        connection = Connection(len(self.connections) + 1, request.path_qs, ws)
        self.connections.append(connection)
        await self._send_frame(connection, {
            "type": "hello",
            "num_connections": sum(c.open for c in self.connections),
            "debug_info": {"host": "applink-fake", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        })  # fmt: skip
        connection.hello_sent = True
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_text(connection, frame.data)
                elif frame.type == WSMsgType.BINARY:
                    connection.frames.append(frame.data)
                    self.problems.append(f"connection {connection.number}: a binary frame")
        finally:
            connection.closed_at = time.monotonic()
        return ws

    async def _send_frame(self, connection: Connection, frame: dict[str, Any]) -> None:
        self.sent.append(frame)
        await connection.ws.send_str(json.dumps(frame))

    def _on_text(self, connection: Connection, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            connection.frames.append(data)
            self.problems.append(f"connection {connection.number}: not JSON: {data[:100]!r}")
            return
        connection.frames.append(frame)
        envelope_id = frame.get("envelope_id") if isinstance(frame, dict) else None
        if not isinstance(envelope_id, str):
            self.problems.append(f"connection {connection.number}: not an ack: {data[:100]!r}")
            return
        if envelope_id not in self._envelopes:
            self.problems.append(f"ack for an unknown envelope {envelope_id}")
            return
        if envelope_id in self.acks:
            self.problems.append(f"envelope {envelope_id} acknowledged twice")
            return
        envelope, sent_at = self._envelopes[envelope_id]
        payload = frame.get("payload")
        if payload is not None and not isinstance(payload, dict):
            self.problems.append(f"envelope {envelope_id}: ack payload is not an object")
        elif payload and not envelope["accepts_response_payload"]:
            self.problems.append(
                f"envelope {envelope_id} ({envelope['type']}): Slack ignores this ack "
                f"payload: {json.dumps(payload)[:200]}"
            )
        ack = Ack(envelope_id, payload, frame, connection.number, time.monotonic() - sent_at)
        if ack.seconds > ACK_DEADLINE:
            self.problems.append(f"envelope {envelope_id} acknowledged after {ack.seconds:.1f}s")
        self.acks[envelope_id] = ack
        waiter = self._waiting.pop(envelope_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)

    # ---- what a test does --------------------------------------------------------------------

    @property
    def current(self) -> Connection | None:
        """The newest open connection that got its hello (where envelopes go)."""
        return next((c for c in reversed(self.connections) if c.open and c.hello_sent), None)

    async def wait_for_connection(self, count: int = 1, timeout: float = 5.0) -> Connection:
        """Wait until connection number `count` (or a later one) is open and got its hello."""
        deadline = time.monotonic() + timeout
        while (current := self.current) is None or current.number < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.connections)} connection(s) opened, waited for "
                                   f"number {count} to be open")  # fmt: skip
            await asyncio.sleep(0.01)
        return current

    async def deliver(
        self,
        type: EnvelopeType,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        envelope_id: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Send an envelope on the current connection without waiting; returns its id.

        `accepts_response_payload` defaults to what Slack sends: true for slash commands,
        view_submission and block_suggestion, false otherwise.
        """
        connection = await self.wait_for_connection(timeout=timeout)
        envelope_id = envelope_id or f"{next(self._ids):04d}-{secrets.token_hex(12)}"
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive" and payload.get("type") in _RESPONDING_INTERACTIONS
            )
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        self._waiting[envelope_id] = asyncio.get_running_loop().create_future()
        self._envelopes[envelope_id] = (envelope, time.monotonic())
        await self._send_frame(connection, envelope)
        return envelope_id

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """The ack of this envelope, waiting up to `timeout` seconds for it."""
        if envelope_id in self.acks:
            return self.acks[envelope_id]
        if envelope_id not in self._waiting:
            raise KeyError(f"no envelope {envelope_id} was sent")
        try:
            return await asyncio.wait_for(asyncio.shield(self._waiting[envelope_id]), timeout)
        except TimeoutError:
            envelope = self._envelopes[envelope_id][0]
            raise TimeoutError(
                f"no ack for {envelope['type']} envelope {envelope_id} within {timeout}s"
            ) from None

    async def send(
        self,
        type: EnvelopeType,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 5.0,
    ) -> Ack:
        """Send an envelope and wait (up to `timeout`) for its ack, which it returns."""
        envelope_id = await self.deliver(
            type, payload, accepts_response_payload=accepts_response_payload,
            retry_attempt=retry_attempt, retry_reason=retry_reason, timeout=timeout,
        )  # fmt: skip
        return await self.wait_for_ack(envelope_id, timeout)

    async def disconnect(
        self, reason: str = "refresh_requested", *, timeout: float = 5.0
    ) -> Connection:
        """Ask the app to reconnect, like Slack before recycling a connection.

        Returns the new connection (hello sent). The old one stays open until the app closes
        it, as on Slack, where it is closed some seconds later.
        """
        old = await self.wait_for_connection(timeout=timeout)
        count = len(self.connections)
        await self._send_frame(old, {"type": "disconnect", "reason": reason,
                                     "debug_info": {"host": "applink-fake"}})  # fmt: skip
        return await self.wait_for_connection(count + 1, timeout)

    async def drop(self, *, timeout: float = 5.0) -> Connection:
        """Close the current connection from Slack's side without warning; returns the next."""
        old = await self.wait_for_connection(timeout=timeout)
        count = len(self.connections)
        await old.ws.close(code=1001, message=b"going away")
        return await self.wait_for_connection(count + 1, timeout)

    @property
    def unacknowledged(self) -> list[str]:
        """Ids of envelopes sent and never acknowledged."""
        return [e for e in self._envelopes if e not in self.acks]


class SocketModeRequests(SlackRequests):
    """`SlackRequests` over Socket Mode: same helpers and payloads, sent as envelopes.

    `slash_command`, `block_action`, `view_submission`, `block_suggestion` and `event` build
    exactly what they build for HTTP (trigger ids, response_urls and clicked messages from the
    FakeSlack) and wait for the ack. The `Reply` is `(200, ack payload or "")`, what the
    HTTP transport returns for the same response, so a view_submission ack is applied to the
    fake's modals the same way. Signing options do not apply: envelopes are not signed.
    """

    def __init__(self, socket: FakeSocketMode, slack: FakeSlack, *, timeout: float = 5.0) -> None:
        super().__init__(socket.base_url, "", slack=slack)
        self.socket = socket
        self.timeout = timeout
        self.last_ack: Ack | None = None

    async def send(self, body: bytes, content_type: str, **options: Unpack[SendOptions]) -> Reply:
        raise TypeError("Socket Mode sends payloads, not bodies: use send_form/_interactive/_json")

    async def _envelope(self, type: EnvelopeType, payload: dict[str, Any],
                        options: SendOptions, **extra: Any) -> Reply:  # fmt: skip
        if options.get("bad_signature") or options.get("stale") or "timestamp" in options:
            raise ValueError("Socket Mode envelopes are not signed")
        self.last_ack = await self.socket.send(type, payload, timeout=self.timeout, **extra)
        body = self.last_ack.payload
        return Reply(200, body if body is not None else "")

    async def send_form(self, fields: dict[str, str], **options: Unpack[SendOptions]) -> Reply:
        return await self._envelope("slash_commands", dict(fields), options)

    async def send_interactive(
        self, payload: dict[str, Any], **options: Unpack[SendOptions]
    ) -> Reply:
        return await self._envelope("interactive", payload, options)

    async def send_json(self, body: dict[str, Any], **options: Unpack[SendOptions]) -> Reply:
        """Events API bodies; `event(retry_num=...)`'s headers become the envelope's retry."""
        headers = options.pop("headers", {})
        retry = headers.get("X-Slack-Retry-Num")
        return await self._envelope(
            "events_api", body, options,
            retry_attempt=int(retry) if retry else None,
            retry_reason=headers.get("X-Slack-Retry-Reason") if retry else None,
        )  # fmt: skip
