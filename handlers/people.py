"""People and conversations as Slack names them, decided in one place.

How a person is named (the import form's errors, the Mailchimp start page) and what counts as
a direct message (`/referral import`, *Review import* on an upload) were each written twice,
a little differently: the same person was "@dana" in one place and "Dana Lead" in the other,
and a group DM was a DM to the slash command but a channel to the upload offer.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

NAME_SECONDS = 1.0  # a person's name asked of Slack before a 3-second ack waits this long, at most


async def person_name(client: AsyncWebClient | None, user_id: str, *,
                      wait: float | None = None) -> str | None:  # fmt: skip
    """The person's name as Slack shows it in messages: their display name, else their full
    name, else their username. None when Slack doesn't say (no client, a failure, a rate
    limit's wait longer than `wait` seconds): a name is nice to have, and each caller has its
    own neutral word for the person instead. Before an ack, give `wait` (NAME_SECONDS): the
    client's retry of a rate limit could otherwise cost the 3 seconds Slack gives."""
    if client is None:
        return None
    try:
        asked = client.users_info(user=user_id)
        found = await (asked if wait is None else asyncio.wait_for(asked, wait))
        user = found.get("user") or {}
    except Exception as exc:  # a timeout too: the caller says it without the name
        log.info("users.info failed for %s (named without it): %r", user_id, exc)
        return None
    profile = user.get("profile") or {}
    name = (profile.get("display_name") or profile.get("real_name") or user.get("real_name")
            or user.get("name"))  # fmt: skip
    return str(name) if name else None


def is_direct_message(channel_id: str, channel_name: str = "") -> bool:
    """A direct message: with the bot, between people, or a group DM. Slack names a DM
    "directmessage" and a group DM "mpdm-…" in a slash command's and a click's payload; a
    group DM's id starts with G (C in newer workspaces), as a private channel's may, so only
    the name tells them apart. No lead need see any of these: what leads approve goes to a
    channel."""
    return (channel_id.startswith("D") or channel_name == "directmessage"
            or channel_name.startswith("mpdm-"))  # fmt: skip
