"""How background work tells people what happened, without bot/ knowing about Slack blocks.

The Slack layer implements this (handlers/notify.py); the command line uses Silent.
"""

from __future__ import annotations

from typing import Protocol


class ImportNotifier(Protocol):
    async def batch_changed(self, team_id: str, batch_id: int) -> None:
        """Something in the batch changed: refresh the review message."""

    async def source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        """A file finished reading (or failed): refresh, and share its skipped rows."""

    async def import_progress(self, team_id: str, batch_id: int, done: int, total: int) -> None:
        """The approved import moved on (called at most about once a second)."""

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        """The import is done or failed: report the result and the next step."""


class Silent:
    async def batch_changed(self, team_id: str, batch_id: int) -> None:
        return None

    async def source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        return None

    async def import_progress(self, team_id: str, batch_id: int, done: int, total: int) -> None:
        return None

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        return None
