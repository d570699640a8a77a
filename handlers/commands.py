"""`/referral` and its subcommands."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers.messages import HELP, import_modal


async def referral(ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
    words = (command.get("text") or "").split()
    if words[:1] == ["import"]:
        await ack()
        # trigger ids live 3 seconds: open the modal before anything else
        await client.views_open(trigger_id=command["trigger_id"],
                                view=import_modal(channel_id=command["channel_id"]))  # fmt: skip
        return
    await ack(text=HELP)


def register(app: AsyncApp) -> None:
    app.command("/referral")(referral)
