"""`/referral audit [filter]`: who did what and when, for team leads.

Shows the workspace's newest entries (every query is by team id: another workspace's entries
never appear, and an *Older* value naming one of its ids only bounds the page), what became of
the imports approved on the page (imported, enrolled, invited), and *Older* to page back by
id. A filter narrows it: `import #12` (or `#12`), a user id, or words found in the subject,
action or detail. Others are told to ask a lead; the answer is ephemeral, through the
command's or click's `response_url`.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import Act, import_of, import_outcomes, recent
from handlers.audit_messages import MAX_FILTER, PAGE, audit_message, read_more_value
from handlers.context import Deps, Refusal, deps, is_lead, not_a_lead
from handlers.ids import Action
from handlers.leads import Asker, explained, respond
from handlers.routes import Routes


def command_filter(text: str) -> str:
    """What follows `/referral audit`, as the filter (spaces tidied, at most 100 characters)."""
    words = text.split()
    return " ".join(words[1:])[:MAX_FILTER] if words[:1] and words[0].lower() == "audit" else ""


async def show(d: Deps, client: AsyncWebClient, asker: Asker, *, matching: str,
               before_id: int | None = None) -> None:  # fmt: skip
    if not await is_lead(d, client, asker.team_id, asker.user_id):
        raise await not_a_lead(d, client, asker.team_id, asker.user_id, "see the audit log")
    entries = await recent(d.db, asker.team_id, limit=PAGE + 1, before_id=before_id,
                           matching=matching)  # fmt: skip
    page = entries[:PAGE]
    approved = [b for e in page if e.action == Act.IMPORT_APPROVED
                and (b := import_of(e.subject)) is not None]  # fmt: skip
    outcomes = await import_outcomes(d.db, asker.team_id, approved)
    text, blocks = audit_message(page, outcomes, has_more=len(entries) > PAGE,
                                 matching=matching, older=before_id is not None)  # fmt: skip
    await respond(client, asker.response_url, text, blocks=blocks, replace=before_id is not None)


async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """`/referral audit [filter]`: ack at once, then the newest entries through response_url."""
    await ack()
    d, asker = deps(context), Asker.of_command(command)
    work = show(d, client, asker, matching=command_filter(command.get("text") or ""))
    d.later.run(explained(work, client, asker.response_url), client, command)


async def _older(d: Deps, client: AsyncWebClient, asker: Asker, value: str) -> None:
    parsed = read_more_value(value)
    if parsed is None:
        raise Refusal("That button doesn't say where to continue: type `/referral audit`.")
    before_id, matching = parsed
    await show(d, client, asker, matching=matching, before_id=before_id)


async def on_more(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                  context: dict[str, Any]) -> None:  # fmt: skip
    """*Older*: the page before the oldest entry shown, in place of this one."""
    await ack()
    d, asker = deps(context), Asker.of_click(body)
    value = str(body["actions"][0].get("value") or "")
    d.later.run(explained(_older(d, client, asker, value), client, asker.response_url),
                client, body)  # fmt: skip


def register(app: Routes) -> None:
    app.action(Action.AUDIT_MORE)(on_more)
