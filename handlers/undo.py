"""Not built yet (issue 10)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    await ack(text="Not built yet.")


def register(app: AsyncApp) -> None:
    pass
