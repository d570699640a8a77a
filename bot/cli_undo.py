"""`referral-bot undo` (not built yet: issue 10)."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli_common import CliError
from bot.settings import Settings
from models import Database

COMMANDS: tuple[str, ...] = ()


def add_parsers(sub: Any) -> None:
    pass


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    raise CliError("not built yet")
