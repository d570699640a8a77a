"""Socket Mode end to end: the real `serve()` with an xapp- token, over a loopback websocket.

The bot asks the fake Web API for a websocket URL (apps.connections.open, app-level token),
connects to `FakeSocketMode`, and gets the same payloads Slack posts over HTTP, as envelopes it
must acknowledge. Its Web API calls and the in-process worker are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
from sqlalchemy import text

from bot.app import serve
from bot.settings import Settings, load_settings
from handlers.ids import Action, BlockId, Callback
from models import Database
from tests.children import lent_cpu
from tests.fakes.slack_api import FakeSlack, find_element
from tests.fakes.slack_requests import Reply, file_shared_event
from tests.fakes.socket_mode import Connection, FakeSocketMode, SocketModeRequests

LEAD = "U0002"
REP = "U0001"
CSV = b"first_name,last_name,email\nJane,Doe,jane@example.com\n"
T = TypeVar("T")


@pytest.fixture(autouse=True)
async def _worker_children_get_cpu() -> AsyncIterator[None]:
    """serve's worker children run idle-class: on a machine other work keeps busy they got
    no CPU, and an import (or a stop) waited on them past these tests' limits (see
    tests/children.py)."""
    async with lent_cpu():
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(probe: Callable[[], T], timeout: float = 30.0, what: str = "") -> T:
    """Poll `probe` until it returns something truthy (listeners and jobs run after the ack).

    The wait ends as soon as it does; the timeout is generous because a job's result comes
    from serve's worker child, which a machine busy with other tests (CI runs them two at a
    time on two cores) took more than 5 s to start and run."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what or probe}")
        await asyncio.sleep(0.02)
    return result


@dataclass
class Bot:
    slack: FakeSlack
    socket: FakeSocketMode
    requests: SocketModeRequests
    db: Database
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    async def shut_down(self, timeout: float = 30.0) -> None:
        """Stop serve; `timeout` only guards against a hang (a loaded machine took over 5 s to
        drain a finished import's worker), unless a test asks for promptness itself."""
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)

    async def count(self, sql: str) -> int:
        async with self.db.begin() as conn:
            return int((await conn.execute(text(sql))).scalar_one())


def _settings(db: Database, slack: FakeSlack) -> Settings:
    return load_settings(
        database_url=db.url, database_schema=db.schema, slack_bot_token="xoxb-test",
        slack_signing_secret="", slack_app_token="xapp-test", slack_api_url=slack.api_url,
        slack_file_hosts=[slack.files_host], team_leads=[LEAD], host="127.0.0.1",
        port=free_port(), job_lease_seconds=10, worker_poll_seconds=0.05,
        job_retry_base_seconds=0,
    )  # fmt: skip


@pytest.fixture
async def bot(db: Database, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    async with _serving(db, monkeypatch) as running:
        yield running


@contextlib.asynccontextmanager
async def _serving(db: Database, monkeypatch: pytest.MonkeyPatch, *, all_acked: bool = True,
                   **serving: Any) -> AsyncIterator[Bot]:  # fmt: skip
    """The real `serve()` connected in Socket Mode; `serving`: more of serve's arguments;
    `all_acked`: whether every envelope must have been acknowledged by the end."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with FakeSlack(bot_token="xoxb-test", team_id="T0001") as slack, \
            FakeSocketMode(slack) as fake_socket:  # fmt: skip
        settings = _settings(db, slack)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, db, stop=stop, **serving))
        bot = Bot(slack, fake_socket, SocketModeRequests(fake_socket, slack), db, settings,
                  stop, task)  # fmt: skip
        try:
            connecting = asyncio.create_task(fake_socket.wait_for_connection())
            await asyncio.wait({task, connecting}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                connecting.cancel()
                task.result()  # serve's exception, if any
                pytest.fail("serve() returned before connecting in Socket Mode")
            connecting.result()
            yield bot
        finally:
            if not task.done():
                await bot.shut_down()
            task.result()
        assert fake_socket.problems == [], fake_socket.problems
        assert not all_acked or fake_socket.unacknowledged == []
        assert slack.block_errors == []


def _form(segment: str = "", email: str = "", first: str = "") -> dict[str, Any]:
    """state.values of the import modal as Slack sends them (see test_import_flow)."""

    def value(block: BlockId, action: Action, v: str) -> dict[str, Any]:
        return {block: {action: {"type": "plain_text_input", "value": v or None}}}

    return {
        **value(BlockId.NEW_SEGMENT, Action.NEW_SEGMENT, segment),
        **value(BlockId.EMAIL, Action.EMAIL, email),
        **value(BlockId.FIRST_NAME, Action.FIRST_NAME, first),
        **value(BlockId.LAST_NAME, Action.LAST_NAME, ""),
        **value(BlockId.LOCALE, Action.LOCALE, ""),
        BlockId.SEGMENT: {Action.SEGMENT: {"type": "external_select", "selected_option": None}},
        BlockId.FILES: {Action.FILES: {"type": "file_input", "files": []}},
    }


async def _open_import_modal(bot: Bot) -> str:
    opened = len(bot.slack.calls_to("views.open"))
    reply = await bot.requests.slash_command(text="import", user_id=REP, channel_id="C0001")
    assert reply == Reply(200, "")  # an empty ack, then the modal
    await bot.slack.wait_for("views.open", opened + 1, timeout=5)
    views = bot.slack.open_views(REP)
    assert views and views[-1]["callback_id"] == Callback.IMPORT, bot.slack.block_errors
    return str(views[-1]["id"])


# --------------------------------------------------------------------------------------------


async def test_connects_with_the_app_token_and_serves_only_health_over_http(bot: Bot) -> None:
    connection = bot.socket.current
    assert connection is not None and connection.number == 1 and connection.hello_sent
    assert bot.socket.sent[0]["type"] == "hello"
    opens = bot.slack.calls_to("apps.connections.open")
    assert [c.headers["Authorization"] for c in opens] == ["Bearer xapp-test"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bot.base_url}/healthz") as response:
            health = await response.json()
            assert response.status == 200 and health["ok"] is True
            assert health["slack"] == {"ok": True, "state": "connected"}
        for method in ("POST", "GET"):
            async with session.request(method, f"{bot.base_url}/slack/events") as response:
                assert response.status in (404, 405), method
    # the bot token never goes to apps.connections.open, the app token nowhere else
    others = [c for c in bot.slack.calls if c.method != "apps.connections.open"]
    assert all(c.headers.get("Authorization") == "Bearer xoxb-test" for c in others)

    started = time.monotonic()
    await bot.shut_down(timeout=5)
    assert time.monotonic() - started < 5
    await until(lambda: not connection.open, what="the websocket to close")
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(f"{bot.base_url}/healthz"):
            pass


async def test_import_flow_from_command_to_result_in_the_thread(bot: Bot) -> None:
    slack, requests = bot.slack, bot.requests
    reply = await requests.slash_command(text="", user_id=REP)  # help comes back in the ack
    assert reply.status == 200 and "/referral import" in json.dumps(reply.body)

    view_id = await _open_import_modal(bot)
    reply = await requests.view_submission(state_values=_form(), view_id=view_id, user_id=REP)
    assert reply.body["response_action"] == "errors"  # inline errors travel in the ack payload
    assert BlockId.SEGMENT in reply.body["errors"] and view_id in slack.views

    reply = await requests.view_submission(
        state_values=_form(segment="Socket VIPs", email="solo@example.com", first="Solo"),
        view_id=view_id, user_id=REP,
    )  # fmt: skip
    assert reply == Reply(200, "") and view_id not in slack.views  # closed by the empty ack
    review = await until(lambda: slack.find_action(Action.APPROVE, "C0001"), what="the review")
    rendered = json.dumps(review["blocks"])
    assert "Socket VIPs" in rendered and "solo@example.com" in rendered

    found = find_element(review["blocks"], Action.APPROVE)
    assert found is not None
    reply = await requests.block_action(Action.APPROVE, found[1]["value"], user_id=LEAD,
                                        message_ts=review["ts"])  # fmt: skip
    assert reply == Reply(200, "")
    assert requests.last_ack is not None and requests.last_ack.seconds < 3

    def result() -> list[str]:
        thread = slack.messages_in("C0001", review["ts"])
        return [m["text"] for m in thread if "Imported into" in m["text"]]

    texts = await until(result, what="the import result in the review's thread")
    assert "Socket VIPs" in texts[0]
    assert await bot.count("SELECT COUNT(*) FROM contact") == 1
    assert slack.find_action(Action.APPROVE, "C0001") is None  # the review is read-only now
    assert f"<@{LEAD}>" in json.dumps(slack.message("C0001", review["ts"])["blocks"])

    envelopes = [f for f in bot.socket.sent if "envelope_id" in f]
    kinds = ["slash_commands"] * 2 + ["interactive"] * 3
    assert [e["type"] for e in envelopes] == kinds
    assert set(bot.socket.acks) == {e["envelope_id"] for e in envelopes}
    assert all(a.message["envelope_id"] == a.envelope_id for a in bot.socket.acks.values())


async def test_reconnects_when_slack_asks_or_drops_the_connection(bot: Bot) -> None:
    first = bot.socket.current
    assert first is not None
    second: Connection = await bot.socket.disconnect()
    assert second.number == 2 and second.hello_sent
    assert len(bot.slack.calls_to("apps.connections.open")) == 2
    await until(lambda: not first.open, what="the bot to close the old connection")

    await _open_import_modal(bot)
    assert bot.requests.last_ack is not None and bot.requests.last_ack.connection == 2

    third = await bot.socket.drop()  # no warning: the bot notices the close and reconnects
    assert third.number == 3 and len(bot.slack.calls_to("apps.connections.open")) == 3
    await _open_import_modal(bot)
    assert bot.requests.last_ack is not None and bot.requests.last_ack.connection == 3
    assert [c.open for c in bot.socket.connections] == [False, False, True]


async def test_file_shared_event_is_acked_and_offers_the_import(bot: Bot) -> None:
    slack = bot.slack
    file = slack.add_file("F0001", "leads.csv", CSV, channels=["C0001"])
    share_ts = file["shares"]["public"]["C0001"][0]["ts"]
    event = file_shared_event("F0001", channel_id="C0001", user_id=REP)
    reply = await bot.requests.event(event, event_id="Ev0001")
    assert reply == Reply(200, "")
    ack = bot.requests.last_ack
    assert ack is not None and bot.socket.sent[-1]["type"] == "events_api"
    assert bot.socket.sent[-1]["payload"]["event"] == event

    def offers() -> list[dict[str, Any]]:
        return [m for m in slack.messages_in("C0001", share_ts)
                if find_element(m["blocks"], Action.UPLOAD_REVIEW)]  # fmt: skip

    assert len(await until(offers, what="the upload offer in the file's thread")) == 1
    # Slack's retry of the same event is acked too, and offers nothing new
    assert await bot.requests.event(event, event_id="Ev0001", retry_num=1) == Reply(200, "")
    assert bot.socket.sent[-1]["retry_attempt"] == 1
    await bot.shut_down()  # drains the listener's work
    # the retry found the offer's job queued: Slack wasn't asked about the file again
    assert len(offers()) == 1 and len(slack.calls_to("files.info")) == 1


async def test_the_fake_hands_its_url_only_to_the_app_token(bot: Bot) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(base_url=bot.slack.api_url)
    opened = await client.apps_connections_open(app_token="xapp-test")
    assert opened["url"].startswith(f"ws://{bot.socket.host}/link/?ticket=")
    with pytest.raises(SlackApiError) as refused:
        await client.apps_connections_open(app_token="xoxb-test")
    assert refused.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0001", text="hi", token="xapp-test")
    assert refused.value.response["error"] == "invalid_auth"


async def test_stop_ends_serve_even_while_it_cannot_connect(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with FakeSlack(bot_token="xoxb-test", team_id="T0001") as slack:
        slack.fail("apps.connections.open", "invalid_auth", times=1000)  # e.g. a revoked token
        stop = asyncio.Event()
        task = asyncio.create_task(serve(_settings(db, slack), db, stop=stop))
        await slack.wait_for("apps.connections.open", timeout=5)
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 3)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_health_is_503_while_socket_mode_cannot_connect(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK retries a refused app token forever: the process must not look healthy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with FakeSlack(bot_token="xoxb-test", team_id="T0001") as slack:
        slack.fail("apps.connections.open", "invalid_auth", times=1000)  # e.g. a revoked token
        settings = _settings(db, slack)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, db, stop=stop))
        try:
            await slack.wait_for("apps.connections.open", timeout=5)
            url = f"http://127.0.0.1:{settings.port}/healthz"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                health = await response.json()
            assert response.status == 503 and health["ok"] is False
            assert health["slack"]["state"].startswith("not connected")
            assert health["worker"]["state"] == "running"  # the rest of the report is kept
            assert "invalid_auth" in caplog.text  # the log says why
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)  # a hang guard (see Bot.shut_down)


async def test_stopping_while_a_submission_is_handled_acks_it_before_the_socket_closes(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the import form's Submit was being checked (a slow database): serve
    closed the websocket first, so Slack never got the ack and showed the person an error,
    while the listener went on and made the import; a resubmit made a second one."""
    import handlers.import_modal as im

    checked = im.validate
    reached, release = asyncio.Event(), asyncio.Event()

    async def slow_validate(*args: Any, **kwargs: Any) -> Any:
        reached.set()
        await release.wait()
        return await checked(*args, **kwargs)

    monkeypatch.setattr(im, "validate", slow_validate)
    view_id = await _open_import_modal(bot)
    submitting = asyncio.create_task(bot.requests.view_submission(
        state_values=_form(segment="Late VIPs", email="late@example.com", first="Late"),
        view_id=view_id, user_id=REP))  # fmt: skip
    await asyncio.wait_for(reached.wait(), 5)
    envelope_id = bot.socket.sent[-1]["envelope_id"]
    connection = bot.socket.connections[-1]

    bot.stop.set()  # what SIGTERM does
    await asyncio.sleep(0.3)
    assert connection.open  # the listener's ack still has a way to go
    release.set()  # the database answers
    await asyncio.wait_for(asyncio.shield(bot.task), 20)
    await asyncio.gather(submitting, return_exceptions=True)

    assert envelope_id in bot.socket.acks
    assert not connection.open
    assert await bot.count("SELECT COUNT(*) FROM import_batch") == 1


def _slow_checks(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.Event]:
    """Each import form's Submit is checked only once its gate opens (a slow database), as
    in the test above; the gates, in the order the submissions reached the check."""
    import handlers.import_modal as im

    checked = im.validate
    gates: list[asyncio.Event] = []

    async def slow_validate(*args: Any, **kwargs: Any) -> Any:
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()
        return await checked(*args, **kwargs)

    monkeypatch.setattr(im, "validate", slow_validate)
    return gates


async def _submit(bot: Bot, segment: str) -> asyncio.Task[Reply]:
    view_id = await _open_import_modal(bot)
    return asyncio.create_task(bot.requests.view_submission(
        state_values=_form(segment=segment, email=f"{segment.lower()}@example.com", first="A"),
        view_id=view_id, user_id=REP))  # fmt: skip


async def test_a_submit_arriving_while_the_stop_waits_for_another_is_acked_too(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop waits for a Submit being checked; meanwhile Slack sends another over the
    socket kept open for it. Before, only the first was waited for: the socket closed when
    it ended, the second's ack went with it (Slack showed an error) and its import was made
    all the same, so a resubmit made a second."""
    gates = _slow_checks(monkeypatch)
    async with _serving(db, monkeypatch, run_worker=False) as bot:
        first = await _submit(bot, "One")
        await until(lambda: len(gates) == 1, 10, "the first Submit's check")
        second_form = await _open_import_modal(bot)
        bot.stop.set()  # what SIGTERM does
        await asyncio.sleep(0.3)
        second = asyncio.create_task(bot.requests.view_submission(
            state_values=_form(segment="Two", email="two@example.com", first="T"),
            view_id=second_form, user_id=REP))  # fmt: skip
        await until(lambda: len(gates) == 2, 10, "the second Submit's check")
        gates[0].set()
        await asyncio.sleep(0.5)
        assert not bot.task.done()  # still waiting for the second
        gates[1].set()
        await asyncio.wait_for(asyncio.shield(bot.task), 20)
        replies = await asyncio.gather(first, second)
    assert [reply.status for reply in replies] == [200, 200], replies
    assert await bot.count("SELECT COUNT(*) FROM import_batch") == 2


async def test_the_stop_keeps_to_its_grace_from_the_start_naming_a_request_left(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Submit whose check never ends: serve's stop gives what is under way its grace in
    all (3 s here), counted from the stop, and names the request it leaves without an
    answer. Before, the listeners got their own 10 s first and then the work after acks
    its own 25 s: 35 s in all, past Kubernetes' 30, with the listener never named."""
    caplog.set_level(logging.WARNING, logger="bot.slack_connection")
    gates = _slow_checks(monkeypatch)
    try:
        async with _serving(db, monkeypatch, all_acked=False, run_worker=False,
                            work_grace_seconds=3.0) as bot:  # fmt: skip
            submitting = await _submit(bot, "Stuck")
            await until(lambda: gates, 10, "the Submit's check")
            started = time.monotonic()
            bot.stop.set()
            await asyncio.wait_for(asyncio.shield(bot.task), 30)
            took = time.monotonic() - started
    finally:
        for gate in gates:
            gate.set()
        # the listener serve left runs its check now: let it end before the test's schema
        # is dropped (PostgreSQL ended its connection, warning)
        await asyncio.sleep(0.5)
    submitting.cancel()
    assert took < 3.0 + 3.0, took  # 10 s and more before; 3 s and a little now
    left = [r.getMessage() for r in caplog.records if r.name == "bot.slack_connection"]
    assert left == ["closing Socket Mode's connection with 1 request(s) still being handled "
                    "after 3.0 s (Slack gets no answer to them): interactive from team=T0001 "
                    f"user={REP}"], left  # fmt: skip


async def test_a_demotion_not_recorded_is_left_unacknowledged_and_its_redelivery_recorded(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Over Socket Mode a failure's 503 is an envelope left unacknowledged, which Slack sends
    again: a hand-listed lead made a guest while the database failed leaves the list on the
    redelivery (it was acked, and lost, when the change was made after the ack)."""
    from bot.leads import add_leads, leads
    from bot.workspaces import ensure_workspace
    from tests.handlers.test_demoted_leads import (
        _ALLOW_DELETE,
        _REFUSE_DELETE,
        _execute,
        _user_change,
    )

    hand = "U0HAND"
    await ensure_workspace(db, "T0001")
    await add_leads(db, "T0001", [hand], by=LEAD)
    change = _user_change(hand, is_restricted=True)
    caplog.set_level(logging.WARNING)
    async with _serving(db, monkeypatch, all_acked=False) as bot:
        bot.slack.users[hand] = {"is_restricted": True}
        await _execute(db, _REFUSE_DELETE[db.dialect])
        try:
            sent = len(bot.socket.sent)
            first = asyncio.create_task(bot.requests.event(change, event_id="Ev0REFUSED"))
            await until(lambda: "deliver it again" in caplog.text, what="the failure's log line")
            first.cancel()  # it waits for an ack that never comes
            with contextlib.suppress(asyncio.CancelledError):
                await first
            envelope = next(e for e in bot.socket.sent[sent:] if "envelope_id" in e)
            assert bot.socket.unacknowledged == [envelope["envelope_id"]]
        finally:
            await _execute(db, _ALLOW_DELETE[db.dialect])
        assert await bot.requests.event(change, event_id="Ev0REFUSED", retry_num=1) == Reply(
            200, "")
        await bot.shut_down()
    assert hand not in [lead.user_id for lead in await leads(db, "T0001")]
