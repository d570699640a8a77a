"""The workspace uninstalls the app or revokes its tokens: Slack says so with `app_uninstalled`
and `tokens_revoked`, and from then on answers every call with the bot token
`token_revoked` (or `account_inactive`, a deactivated workspace). The events were answered
404 ("Unhandled request", so Slack sent them again), and background work kept calling Slack:
every report, progress tick and Home viewer logged a warning of its own, and a file being
read was retried five times, a traceback each. The merchant's decisions (an approved import,
a live campaign's invites) must still be carried out, and nothing deleted."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession
from sqlalchemy import text

from bot.app import build_worker, slack_client
from bot.audit import recent, sentence
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_cancel_and_outages import (
    ROWS,
    _approved,
    _due_now,
    invites_take_three_seconds,
)
from tests.handlers.test_home import _open_home
from tests.handlers.test_import_flow import _count, _form, _open_modal
from tests.handlers.test_targeting import _hold_is_over, _targeted

TEAM = "T0001"
VIEWERS = ("U0001", "U0002", "U0003")  # people who opened Home: each refresh republishes it


def _uninstalled() -> dict[str, Any]:
    return {"type": "app_uninstalled", "event_ts": f"{time.time():.6f}"}


def _revoked(bot: list[str] | None = None) -> dict[str, Any]:
    tokens = {"oauth": ["U0001"]} if bot is None else {"bot": bot}
    return {"type": "tokens_revoked", "tokens": tokens, "event_ts": f"{time.time():.6f}"}


def _said(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


@pytest.fixture
async def fresh_worker(app: Harness) -> AsyncIterator[None]:
    """The harness's worker replaced by one with a Slack session of its own, as a worker
    child process has (nothing it asked Slack before is remembered)."""
    async with ClientSession() as session:
        app.worker = build_worker(app.settings, slack_client(app.settings, session), app.db)
        yield


async def _run_jobs(app: Harness) -> None:
    """Every job, and every retry of one, until none is left to run."""
    for _ in range(6):
        await app.worker.run_until_idle()
        await _due_now(app)


@pytest.mark.parametrize(("event", "act"), [(_uninstalled(), "slack.app_uninstalled"),
                                             (_revoked(["U0BOT"]), "slack.tokens_revoked")])
async def test_an_uninstall_is_answered_said_once_and_audited(
    app: Harness, caplog: pytest.LogCaptureFixture, event: dict[str, Any], act: str
) -> None:
    app.slack.uninstall()
    calls = len(app.slack.calls)
    caplog.set_level(logging.INFO)
    first = await app.requests.event(event, event_id="Ev0UNINSTALL")
    again = await app.requests.event(event, event_id="Ev0UNINSTALL", retry_num=1)
    await app.done()
    assert (first.status, again.status) == (200, 200)
    warned = _said(caplog)
    assert len(warned) == 1, warned  # not bolt's "Unhandled request", nor one per delivery
    assert TEAM in warned[0] and "reinstall" in warned[0] and "SLACK_BOT_TOKEN" in warned[0]
    (entry,) = await recent(app.db, TEAM)  # Slack's retry of the event isn't a second one
    assert (entry.actor, entry.action) == ("Slack", act)
    assert "nothing is deleted" in sentence(entry)
    assert len(app.slack.calls) == calls  # nothing asked of a Slack that refuses the token


BOTH = ((_revoked(["U0BOT"]), "Ev0REVOKED"), (_uninstalled(), "Ev0GONE"))


@pytest.mark.parametrize("events", [BOTH, BOTH[::-1]], ids=["revoked-first", "uninstalled-first"])
async def test_an_uninstall_sending_both_events_is_said_and_audited_once(
    app: Harness, caplog: pytest.LogCaptureFixture, events: tuple[tuple[dict[str, Any], str], ...]
) -> None:
    """Slack sends an uninstall as both events, each with an id of its own, in no set order:
    keyed by event, one uninstall wrote two warnings and two audit entries. Each event's note
    is written after its ack, so which of the two is written first isn't set either."""
    app.slack.uninstall()
    caplog.set_level(logging.INFO)
    for event, event_id in events:
        assert (await app.requests.event(event, event_id=event_id)).status == 200
    await app.done()
    assert len(_said(caplog)) == 1, _said(caplog)
    (entry,) = await recent(app.db, TEAM)
    assert entry.action in {"slack.tokens_revoked", "slack.app_uninstalled"}


async def test_user_tokens_revoked_leave_the_bot_token_alone(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Only user tokens revoked (the bot uses none): no alarm, nothing audited."""
    caplog.set_level(logging.INFO)
    assert (await app.requests.event(_revoked())).status == 200
    await app.done()
    assert _said(caplog) == [] and await recent(app.db, TEAM) == []


async def test_an_approved_import_finishes_after_an_uninstall_and_the_log_says_why_once(
    app: Harness, caplog: pytest.LogCaptureFixture, fresh_worker: None
) -> None:
    for user in VIEWERS:
        await _open_home(app, user)
    await _approved(app)
    app.slack.uninstall()
    caplog.set_level(logging.INFO)
    await _run_jobs(app)
    assert await _count(app, "SELECT COUNT(*) FROM segment_member") == ROWS
    assert await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = 'done'") == 1
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE state <> 'done' "
                             "AND kind <> 'purge_staged'") == 0  # fmt: skip
    warned = _said(caplog)
    assert len(warned) == 1, warned  # not one per report, progress tick and Home viewer
    assert "token_revoked" in warned[0] and "reinstall" in warned[0]
    assert any("import_finished" in said and "token_revoked" in said
               for said in _said(caplog, logging.INFO))  # fmt: skip


async def test_a_live_campaigns_invites_go_out_after_an_uninstall_saying_why_once(
    app: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    fresh_worker: None,
) -> None:
    for user in VIEWERS:
        await _open_home(app, user)
    await _targeted(app)  # two contacts enrolled, their invites held
    app.slack.uninstall("account_inactive")
    caplog.set_level(logging.INFO)

    invites_take_three_seconds(monkeypatch)
    await _hold_is_over(app)
    await _run_jobs(app)
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'sent'") == 2
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE state <> 'done' "
                             "AND kind <> 'purge_staged'") == 0  # fmt: skip
    warned = _said(caplog)
    assert len(warned) == 1, warned
    assert "account_inactive" in warned[0] and "reinstall" in warned[0]


async def test_a_file_being_read_when_slack_refuses_the_token_fails_at_once_saying_why(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Retried five times (a traceback each), it said "Could not read the file: The request
    to the Slack API failed…" a minute and a half later."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "list.csv", b"email\na@example.com\n")
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.later.drain()
    app.slack.uninstall()
    caplog.set_level(logging.INFO)
    await app.worker.run_until_idle()
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'stage_slack_file' "
                             "AND state = 'done' AND attempts = 1") == 1  # fmt: skip
    async with app.db.begin() as conn:
        status, error = (await conn.execute(text("SELECT status, error FROM import_source"))
                         ).one()  # fmt: skip
    assert status == "failed" and "uninstalled" in error, error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_serves_worker_process_says_it_once_too(
    app: Harness, db_env: dict[str, str]
) -> None:
    """The approved import's reports, progress and Home refreshes run in serve's worker child
    (`referral-bot worker`, WORKER_PROCESSES=1 by default), whose Slack client had no session
    of its own: "warns once a process" is kept per session, so there it warned in full at
    every report, progress tick and Home refresh, as before the change."""
    import asyncio
    import os
    import sys

    from bot.jobs.child import settings_env
    from tests.shell import environment

    for user in VIEWERS:
        await _open_home(app, user)
    await _approved(app)
    app.slack.uninstall()
    # the harness's database (its schema on PostgreSQL); its short key a worker refuses
    env = {**settings_env(app.settings, environment(db_env)), **db_env, "SECRET_KEY": "k" * 32}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", "bot.launch", "worker", "--stop-with-stdin", env=env,
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, cwd=os.getcwd(),
    )  # fmt: skip
    assert child.stdin is not None
    try:
        deadline = asyncio.get_running_loop().time() + 90
        while await _count(app, "SELECT COUNT(*) FROM job WHERE state <> 'done' "
                                "AND kind <> 'purge_staged'"):  # fmt: skip
            assert asyncio.get_running_loop().time() < deadline, "the worker never finished"
            await asyncio.sleep(0.2)
    finally:
        child.stdin.close()  # as serve ending closes it: the worker stops
        _, err = await asyncio.wait_for(child.communicate(), 60)
    assert await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = 'done'") == 1
    lines = err.decode().splitlines()
    assert not [line for line in lines if " ERROR " in line], lines
    warned = [line for line in lines if " WARNING " in line and "Slack" in line]
    assert len(warned) == 1, warned
    assert "token_revoked" in warned[0] and "reinstall" in warned[0]
