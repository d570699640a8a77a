"""What the fast ack path keeps: who is told what, unhandled ids, and work after the ack."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from handlers.ids import Action
from handlers.later import Later
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_decisions import _start


async def test_a_click_on_an_import_that_doesnt_exist_is_answered_by_lead_status(
    app: Harness,
) -> None:
    """The lead check still comes first: a rep is told who may approve, a lead that the
    import doesn't exist (the click bench/ack_latency.py sends)."""
    for user in (REP, LEAD):
        reply = await app.requests.block_action(Action.APPROVE, "987654321", user_id=user,
                                                message={"blocks": []})  # fmt: skip
        assert reply.status == 200
    await app.done()
    notes = {e["user"]: e["text"] for e in app.slack.ephemerals}
    assert "Only team leads can approve imports" in notes[REP]
    assert notes[LEAD] == "That import doesn't exist in this workspace."


async def test_a_decided_import_is_answered_with_its_state_and_stays_decided(
    app: Harness,
) -> None:
    message, batch = await _start(app)
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    await app.requests.block_action(Action.REJECT, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    said = app.slack.ephemerals[-1]["text"]
    assert said.startswith("This import is already ") and f"approved by <@{LEAD}>" in said


async def test_an_action_nobody_listens_to_is_left_unhandled_and_calls_nothing(
    app: Harness,
) -> None:
    reply = await app.requests.block_action("no_such_action", "1", message={"blocks": []})
    await app.done()
    assert reply.status == 404
    assert [c.method for c in app.slack.calls] == ["auth.test"]  # bolt's, on its first request


async def test_a_command_whose_text_says_payload_is_still_a_command(app: Harness) -> None:
    """bolt took any form body with the word "payload" in it for an interactive payload and,
    finding no such field, gave the listeners an empty body: the command went unhandled."""
    reply = await app.requests.slash_command(text="payload")
    assert reply.status == 200
    assert "/referral import" in json.dumps(reply.body)


async def test_work_after_the_ack_waits_its_turn_but_opening_a_modal_does_not() -> None:
    later = Later(running=1)
    release = asyncio.Event()
    started: list[str] = []

    async def work(name: str) -> None:
        started.append(name)
        await release.wait()

    later.run(work("first"), None, {})  # type: ignore[arg-type]
    later.run(work("queued"), None, {})  # type: ignore[arg-type]
    later.run(work("modal"), None, {}, prompt=True)  # type: ignore[arg-type]
    for _ in range(5):
        await asyncio.sleep(0)
    assert started == ["first", "modal"]
    release.set()
    await later.drain()
    assert started == ["first", "modal", "queued"]


async def test_a_signed_request_slack_cant_be_reached_to_authorize_is_said_so(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """bolt's auth.test of the bot token never reached Slack: the signed command got a 401
    logged as "unverified request refused", which an operator reads as a bad signing secret."""
    app.slack.outage("auth.test", times=5)  # the client retries a dropped connection
    reply = await app.requests.slash_command(text="import")
    assert reply.status == 503
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "couldn't be reached to check SLACK_BOT_TOKEN" in said, said
    assert "unverified" not in said, said
    app.slack.outage("auth.test", times=0)  # Slack is back
    assert (await app.requests.slash_command(text="help")).status == 200


async def test_a_stop_gives_up_work_slack_never_answers_after_its_grace_naming_it(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A rep's click is acked; telling them only leads approve is held by Slack for good.
    serve's stop (Later.drain with serve's grace, 0.5 s here) gives it up and names it by
    team, user and action. Before, drain waited as long as Slack's timeouts let the call
    hang (two tries of up to 40 s), past any orchestrator's grace, saying nothing of what
    was lost when the process was killed."""
    gate = app.slack.hold("chat.postEphemeral")
    try:
        reply = await app.requests.block_action(Action.APPROVE, "987654321", user_id=REP,
                                                message={"blocks": []})  # fmt: skip
        assert reply.status == 200
        await app.slack.wait_for("chat.postEphemeral", timeout=30)  # the answer, held
        caplog.set_level(logging.WARNING, logger="handlers.later")
        assert await asyncio.wait_for(app.later.drain(timeout=0.5), 10) is True
        assert not app.later.busy
    finally:
        gate.set()
    given_up = [r.getMessage() for r in caplog.records if r.name == "handlers.later"
                and r.levelno == logging.WARNING]  # fmt: skip
    assert len(given_up) == 1, given_up
    assert re.fullmatch(r"stopping with 1 piece\(s\) of work still under way after \d+\.\d s, "
                        r"given up: team=\S+ user=" + REP + r" .*action=" + Action.APPROVE,
                        given_up[0]), given_up  # fmt: skip
    assert app.slack.ephemerals == []  # it never went


async def test_work_a_click_brings_once_serve_is_stopping_is_not_started_and_is_said(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener still running when serve's stop gives up the work after acks (one past
    Socket Mode's grace) queues more: nothing would wait for it, and it ran into the
    process's end unnamed. It is not started, and the log says which it was."""
    caplog.set_level(logging.WARNING, logger="handlers.later")
    await app.later.stop(0.0)
    reply = await app.requests.block_action(Action.APPROVE, "987654321", user_id=REP,
                                            message={"blocks": []})  # fmt: skip
    assert reply.status == 200
    assert not app.later.busy
    said = [r.getMessage() for r in caplog.records if r.name == "handlers.later"]
    assert len(said) == 1 and said[0].startswith(
        "serve is stopping: work after an ack or a sign-in not started (team="), said
    assert f"action={Action.APPROVE}" in said[0], said
    assert app.slack.ephemerals == []
