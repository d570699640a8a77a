"""What fails once an undo was asked for is logged, never told as the undo failing.

The confirmation's modal says "Undoing import #N" as soon as the undo's job is queued; the
review message is then redrawn as being undone. That redraw (or the modal's update) failing
sent the lead a direct message saying something went wrong and the undo "may not have gone
through", although it was under way and its result came to the thread as usual."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from handlers.later import BUSY, SORRY
from models import Database
from tests.handlers.conftest import LEAD, Harness, running_app
from tests.handlers.test_import_flow import _count
from tests.handlers.test_undo import _click_undo, _slack_import, _thread, _with_undo
from tests.jobs.test_last_attempt_outage import WriteLock
from tests.jobs.test_worker_faults import impatient

MISLEADING = (SORRY.partition("{")[0], BUSY, "may not have gone through")


def _told_failed(app: Harness, user: str) -> list[str]:
    """What `user` was told (DM or ephemeral note) that says their action may have failed."""
    dm = app.slack.dm_channels.get(user)
    said = [m.get("text") or "" for m in app.slack.messages_in(dm)] if dm else []
    said += [e.get("text") or "" for e in app.slack.ephemerals if e.get("user") == user]
    return [t for t in said if any(words in t for words in MISLEADING)]


async def _undone(app: Harness, message: dict, batch: int) -> None:
    """The undo ran: its result is in the import's thread and on the review message."""
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2  # old@, other@ stay
    done = [m["text"] for m in _thread(app, message) if "was undone" in m["text"]]
    assert len(done) == 1 and f"Import #{batch} was undone by <@{LEAD}>" in done[0], done
    record = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert f"then undone by <@{LEAD}>" in record


async def _logged_then_undone(
    app: Harness, caplog: pytest.LogCaptureFixture, message: dict, batch: int
) -> None:
    """The failure after the undo was asked for is logged with who asked which undo, the lead
    told nothing misleading; then the undo runs and reports as usual."""
    assert _told_failed(app, LEAD) == []
    logged = [r.getMessage() for r in caplog.records
              if r.name == "handlers.undo" and r.levelno >= logging.WARNING]
    assert any(f"user={LEAD}" in m and f"batch={batch}" in m for m in logged), logged

    await app.settle()
    await _undone(app, message, batch)
    assert _told_failed(app, LEAD) == [] and app.slack.block_errors == []


async def test_the_review_not_redrawn_after_the_undo_was_asked_for_is_only_logged(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once the modal says "Undoing import #N", Slack stops answering chat.update and the
    database is locked by another client: the review's redraw can't be made, nor queued for
    later. The lead was told by DM that the undo may not have gone through; now the failure
    is logged with who asked which undo, and the undo runs and reports as usual."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    impatient_db = impatient(db_env)  # its statements give up after waiting 100 ms for a lock
    lock = WriteLock(impatient_db)
    try:
        async with running_app(impatient_db, tmp_path) as app:
            message, batch = await _slack_import(app)
            (result,) = _with_undo(app, message)
            modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
            updates = len(app.slack.calls_to("views.update"))
            gate = app.slack.hold("views.update")
            with caplog.at_level(logging.INFO):
                await app.requests.view_submission(state_values={}, view_id=modal["id"],
                                                   user_id=LEAD)  # fmt: skip
                await app.slack.wait_for("views.update", updates + 1, timeout=10)  # asked for
                await lock.hold()
                app.slack.outage("chat.update", times=1000)
                app.slack.unhold("views.update")
                gate.set()
                await app.done()
            await lock.release()
            app.slack.outage("chat.update", times=0)

            shown = json.dumps(app.slack.views[modal["id"]]["blocks"])
            assert f"Undoing import #{batch}" in shown
            await _logged_then_undone(app, caplog, message, batch)
    finally:
        await lock.release()
        await impatient_db.dispose()


async def test_the_modal_not_told_the_undo_started_says_nothing_misleading(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack refusing the modal's "Undoing import #N" update (an internal error) after the
    undo was asked for sent the same "may not have gone through" DM: the undo is under way,
    so it is logged, and the result comes to the thread."""
    message, batch = await _slack_import(app)
    (result,) = _with_undo(app, message)
    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    app.slack.fail("views.update", "internal_error")
    with caplog.at_level(logging.INFO):
        await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
        await app.done()
    await _logged_then_undone(app, caplog, message, batch)
