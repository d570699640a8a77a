"""`/referral` and its subcommands."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers import campaigns, mailchimp
from handlers.context import deps
from handlers.import_modal import open_import_modal
from handlers.messages import HELP


async def referral(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                   context: dict[str, Any]) -> None:  # fmt: skip
    words = (command.get("text") or "").lower().split()
    if words[:1] in (["campaign"], ["campaigns"]):
        await campaigns.list_command(ack, command, client, context)
        return
    if words[:1] == ["mailchimp"]:
        await mailchimp.status_command(ack, command, client, context)
        return
    if words[:1] != ["import"]:
        await ack(text=HELP)
        return
    await ack()
    # trigger ids live 3 seconds: opening the modal is the first thing after the ack
    d = deps(context)
    d.later.run(open_import_modal(d, client, command["trigger_id"], command["team_id"],
                                  channel_id=command["channel_id"]), client, command)  # fmt: skip


def register(app: AsyncApp) -> None:
    app.command("/referral")(referral)
