"""The error code of a Slack Web API failure, whatever shape Slack's answer came in.

A 5xx from Slack (or a proxy in front of it) often has a body that isn't JSON: slack_sdk then
keeps the text as `response.data` (a str), or raises with the raw aiohttp response, and
`exc.response.get("error")` itself raises AttributeError, inside the very code meant to tell
someone about the failure.

Also which of them mean Slack refuses the bot token itself (the app uninstalled, its tokens
revoked), and the one warning a process gives when it meets that.
"""

from __future__ import annotations

import logging
from typing import Any
from weakref import WeakSet

from aiohttp import ClientSession
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient


def slack_error(exc: SlackApiError) -> str:
    """Slack's `error` code ("not_found", "ratelimited"...), or "" when the answer carried
    none (a body that wasn't a JSON object)."""
    response: Any = exc.response
    data = getattr(response, "data", response)  # a plain dict in tests built by hand
    if not isinstance(data, dict):
        return ""
    return str(data.get("error") or "")


# Slack's answers for a bot token it no longer takes, in words that say what happened. Once
# the app is uninstalled, its tokens revoked or the workspace deactivated, every call with the
# token gets one of them until the app is reinstalled and SLACK_BOT_TOKEN set to its new
# token: trying again later changes nothing (`serve` refuses to start with such a token).
TOKEN_REFUSALS = {
    "invalid_auth": "Slack doesn't know this token (mistyped, cut short, or another app's)",
    "not_authed": "Slack received no token",
    "token_revoked": "the token was revoked (the app was uninstalled, or its tokens revoked)",
    "account_inactive": "the token's bot user or workspace has been deactivated",
}
# What a refused bot token means, for the log and the audit log
UNTIL_REINSTALLED = ("the bot's messages, App Home and file reads stop until the app is "
                     "reinstalled and SLACK_BOT_TOKEN set to its new token; imports, campaigns "
                     "and invites go on, and nothing is deleted")  # fmt: skip
# Whose refusal was said in full, by connection pool (one a process: serve's, a worker's)
_SAID: WeakSet[ClientSession] = WeakSet()


def token_refused(exc: BaseException) -> str:
    """Slack's error when it refused the bot token itself (TOKEN_REFUSALS), else ""."""
    error = slack_error(exc) if isinstance(exc, SlackApiError) else ""
    return error if error in TOKEN_REFUSALS else ""


def say_token_refused(logger: logging.Logger, client: AsyncWebClient, error: str, what: str,
                      *, again: int = logging.INFO) -> None:  # fmt: skip
    """Log that `what` (a report, Home's refresh) was dropped because Slack refuses the bot
    token (`error`). The first time in the process, one warning says what that means and
    what to do; after that one line at `again` says what was dropped. Each report, progress
    tick and Home viewer warned on its own: a send run after an uninstall wrote a dozen
    warnings every few seconds, each as if it were news."""
    session = client.session
    if session is not None and session in _SAID:
        logger.log(again, "%s not sent: Slack refuses the bot token (%s)", what, error)
        return
    if session is not None:
        _SAID.add(session)
    logger.warning("Slack refuses the bot token (%s): %s. So %s was not sent, and %s", error,
                   TOKEN_REFUSALS[error], what, UNTIL_REINSTALLED)  # fmt: skip
