"""What every listener needs: the database, settings and notifier (put in by middleware)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from handlers.notify import SlackNotifier

if TYPE_CHECKING:
    from handlers.later import Later
from models import Database


class Refusal(Exception):
    """Tell the person who acted why nothing happened (the global error handler shows it)."""


@dataclass(frozen=True)
class Deps:
    db: Database
    settings: Settings
    notifier: SlackNotifier
    later: Later


def deps(context: dict[str, Any]) -> Deps:
    return context["deps"]  # type: ignore[no-any-return]


async def is_lead(client: AsyncWebClient, settings: Settings, user_id: str) -> bool:
    """Team leads are listed in TEAM_LEADS; workspace admins and owners count too."""
    if user_id in settings.team_leads:
        return True
    info = await client.users_info(user=user_id)
    user = info.get("user") or {}
    return bool(user.get("is_admin") or user.get("is_owner"))


def lead_refusal(settings: Settings, verb: str) -> Refusal:
    leads = ", ".join(f"<@{u}>" for u in settings.team_leads[:5])
    ask = f" Ask {leads}." if leads else " Ask a workspace admin."
    return Refusal(f"Only team leads can {verb} imports.{ask}")
