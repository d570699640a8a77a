"""A modal's Submit done once, however many times Slack delivers it.

Pressed again when Slack was slow to hear the answer (it says it had trouble connecting, and
the form stays open), each submission did the form's work again: the import form made a
second import and review; the campaign and segment forms then answered their own saved
name with "already exists: choose another name", and following that advice made a
duplicate. The work is keyed by the view's id and runs once (`once_per_view`, after the
ack). The campaign and segment forms also answer a submission seen before with a plain ack
where their name's check found the name taken (`submitted_before`, a read before the ack:
SQLite's one write lock may be held by an import's chunk for seconds). It is read after that
check, never before: the work takes the view's key before it saves, so a save the check saw
has its key; read first, the first Submit's save could land between the two reads, and CI
saw the second told "already exists" of its own campaign. The import form answers every
Submit alike.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from bot.once import first_time, forget, was_seen
from handlers.context import Deps
from handlers.later import discard

log = logging.getLogger(__name__)


def _key(form: str, view_id: str) -> str:
    return f"{form}:{view_id}"


async def submitted_before(d: Deps, team_id: str, form: str, view_id: str) -> bool:
    """Whether this view's Submit was taken already (its work done or under way)."""
    if not view_id or not await was_seen(d.db, team_id, _key(form, view_id)):
        return False
    _said_again(form, view_id, team_id)
    return True


def _said_again(form: str, view_id: str, team_id: str) -> None:
    log.info("%s %s of team %s submitted again: done once already", form, view_id, team_id)


async def once_per_view(d: Deps, team_id: str, form: str, view_id: str,
                        work: Coroutine[Any, Any, None]) -> None:  # fmt: skip
    """`work` once per view (`form` names the kind: "import-form"). Let go if the work
    fails: a submission again then does it."""
    key = _key(form, view_id)
    try:
        again = bool(view_id) and not await first_time(d.db, team_id, key)
    except BaseException:  # the database refused: said as any failure, the work not begun
        discard(work)
        raise
    if again:
        discard(work)
        _said_again(form, view_id, team_id)
        return
    try:
        await work
    except BaseException:
        if view_id:
            await forget(d.db, team_id, key)
        raise
