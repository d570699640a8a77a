"""Slack's word that the app was uninstalled from a workspace, or its bot token revoked.

From then on Slack answers every call with the bot token `token_revoked` until the app is
reinstalled and SLACK_BOT_TOKEN set to its new token. That is said once, in the log with the
workspace and in the workspace's audit log. Nothing is deleted (the merchant may reinstall),
and the work that isn't Slack's goes on (approved imports, live campaigns' invites): what
it would have posted is dropped where Slack refuses it (handlers/slack_errors.py).

Unhandled, both events were answered 404 with bolt's "Unhandled request" warning, and Slack
delivered them again.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import SLACK, Act, record_once
from handlers.context import deps, event_team
from handlers.routes import Routes
from handlers.slack_errors import UNTIL_REINSTALLED

log = logging.getLogger(__name__)
# act -> what the audit entry names, and what the log says of the workspace
SAID = {Act.APP_UNINSTALLED: ("the app", "the app was uninstalled from workspace"),
        Act.TOKENS_REVOKED: ("the bot token", "the bot token was revoked in workspace")}


async def app_uninstalled(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                          context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    _note(body, client, context, Act.APP_UNINSTALLED)


async def tokens_revoked(ack: Any, event: dict[str, Any], body: dict[str, Any],
                         client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Slack names the revoked tokens by their users: the bot's under `bot`. The bot has no
    user tokens, so a revocation of those alone changes nothing."""
    await ack()
    if not (event.get("tokens") or {}).get("bot"):
        log.info("Slack revoked user tokens in workspace %s; the bot uses none",
                 event_team(body, context))  # fmt: skip
        return
    _note(body, client, context, Act.TOKENS_REVOKED)


def _note(body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any],
          act: Act) -> None:  # fmt: skip
    """After the ack: the audit entry and the log's warning, once per bot token. Slack
    delivers an event again when it missed the answer, and an uninstall sends both events
    (each with an id of its own), in no set order: keyed by event, one uninstall was said and
    audited twice. A reinstall gives a new token (and serve a restart), whose own end is
    news again; the key holds a digest of the token, never the token."""
    d, team_id = deps(context), event_team(body, context)
    subject, happened = SAID[act]
    digest = hashlib.sha256(d.settings.slack_bot_token.encode()).hexdigest()[:16]
    key = f"slack-token-gone:{digest}"

    async def note() -> None:
        if await record_once(d.db, team_id, key, SLACK, act, subject, UNTIL_REINSTALLED):
            log.warning("Slack says %s %s: %s", happened, team_id, UNTIL_REINSTALLED)

    d.later.run(note(), client, body)


def register(app: Routes) -> None:
    app.event("app_uninstalled")(app_uninstalled)
    app.event("tokens_revoked")(tokens_revoked)
