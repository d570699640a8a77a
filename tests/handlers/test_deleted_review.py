"""A review message someone deleted while its import ran: Slack answers `thread_not_found`
to a reply in its thread once it has no replies, and the result was only logged, lost to
everyone though the thread had promised it."""

from __future__ import annotations

from bot.app import slack_client
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_cancel_and_outages import ROWS, _approved


async def _delete_with_its_replies(app: Harness, message: dict) -> None:
    """As a person would: the thread's replies, then the review message itself."""
    client = slack_client(app.settings)
    for reply in app.slack.messages_in("C0001", message["ts"]):
        await client.chat_delete(channel="C0001", ts=reply["ts"])
    await client.chat_delete(channel="C0001", ts=message["ts"])


async def test_the_result_of_an_import_whose_review_was_deleted_goes_to_the_requester(
    app: Harness,
) -> None:
    message, _ = await _approved(app)
    await _delete_with_its_replies(app, message)
    await app.settle()  # the import runs and reports its result
    assert [c for c in app.slack.calls_to("chat.postMessage")
            if c.args.get("thread_ts") == message["ts"]]  # fmt: skip  # it was tried there
    dm = app.slack.dm_channels[REP]
    told = [m["text"] for m in app.slack.messages_in(dm) if "Imported into *VIP*" in m["text"]]
    assert len(told) == 1, [m["text"] for m in app.slack.messages_in(dm)]
    assert f"{ROWS:,}" in told[0]
    assert "review message was deleted" in told[0]
    assert app.slack.messages_in("C0001", message["ts"]) == []  # nothing landed elsewhere
