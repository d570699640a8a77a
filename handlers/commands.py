"""`/referral` and its subcommands."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers import campaigns
from handlers.context import deps
from handlers.messages import HELP, import_modal


async def referral(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    words = (command.get("text") or "").lower().split()
    if words[:1] in (["campaign"], ["campaigns"]):
        await campaigns.list_command(ack, command, client, context)
        return
    if words[:1] != ["import"]:
        await ack(text=HELP)
        return
    await ack()
    # trigger ids live 3 seconds: opening the modal is the first thing after the ack
    modal = import_modal(channel_id=command["channel_id"])
    deps(context).later.run(
        client.views_open(trigger_id=command["trigger_id"], view=modal), client, command
    )


def register(app: AsyncApp) -> None:
    app.command("/referral")(referral)
