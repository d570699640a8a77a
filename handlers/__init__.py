"""Slack listeners: parse the payload, call a service, render blocks. Nothing else."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.imports.review import ReviewError
from bot.workspaces import WorkspaceError
from handlers import commands, contacts, import_modal, review, uploads
from handlers.context import Deps, Refusal

log = logging.getLogger(__name__)


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    @app.middleware
    async def inject(context: dict[str, Any], next: Any) -> None:
        context["deps"] = deps
        await next()

    @app.error
    async def tell_the_user(
        error: Exception, body: dict[str, Any], client: AsyncWebClient
    ) -> BoltResponse:
        """Failures become a note to the person who acted, never a silent spinner."""
        if isinstance(error, Refusal | ReviewError | WorkspaceError):
            message = str(error)
        else:
            log.exception("listener failed", exc_info=error)
            message = "Something went wrong on our side; nothing was changed. Try again shortly."
        user = (body.get("user") or {}).get("id") or body.get("user_id")
        channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
        if user and channel:
            await client.chat_postEphemeral(channel=channel, user=user, text=message)
        return BoltResponse(status=200, body="")  # the user has been told; Slack needn't

    for module in (commands, import_modal, review, contacts, uploads):
        module.register(app)
