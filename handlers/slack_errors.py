"""The error code of a Slack Web API failure, whatever shape Slack's answer came in.

A 5xx from Slack (or a proxy in front of it) often has a body that isn't JSON: slack_sdk then
keeps the text as `response.data` (a str), or raises with the raw aiohttp response, and
`exc.response.get("error")` itself raises AttributeError, inside the very code meant to tell
someone about the failure.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError


def slack_error(exc: SlackApiError) -> str:
    """Slack's `error` code ("not_found", "ratelimited"...), or "" when the answer carried
    none (a body that wasn't a JSON object)."""
    response: Any = exc.response
    data = getattr(response, "data", response)  # a plain dict in tests built by hand
    if not isinstance(data, dict):
        return ""
    return str(data.get("error") or "")
