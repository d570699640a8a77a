"""What every `referral-bot` subcommand module shares (kept apart so they needn't import cli)."""

from __future__ import annotations

import argparse
from typing import Protocol

from bot.settings import Settings
from models import Database


class CliError(Exception):
    """A failure to report on stderr (and as {"error": ...} with --json), exit status 1."""


class Subcommands(Protocol):
    """A module that adds commands to `referral-bot`: its names, parsers and runner."""

    COMMANDS: tuple[str, ...]

    def add_parsers(self, sub: argparse._SubParsersAction) -> None: ...  # type: ignore[type-arg]

    async def run(self, db: Database, team: str, settings: Settings,
                  args: argparse.Namespace) -> int: ...  # fmt: skip
