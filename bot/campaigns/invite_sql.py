"""SQL fragments about an invite that the campaign modules share (its own advocate; a
run that died handing it over)."""

from __future__ import annotations

from sqlalchemy import TextClause, bindparam
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.jobs.queue import lease_now
from models.clock import utcnow

# The invite's own advocate: its id alone could name another's, since SQLite gives a
# deleted row's id (an undo takes advocates out, keeping their uncertain invites) to the next
# advocate made, of another person and campaign: a resend emailed that advocate's link.
ITS_ADVOCATE = ("a.id = {i}.advocate_id AND a.team_id = {i}.team_id "
                "AND a.campaign_id = {i}.campaign_id AND a.contact_id = {i}.contact_id")


def has_its_advocate(invite: str) -> str:
    """SQL: the invite (table or alias `invite`) still has its own advocate, so a resend has
    a link to send (one an undo took out has none)."""
    return f"EXISTS (SELECT 1 FROM advocate a WHERE {ITS_ADVOCATE.format(i=invite)})"


def left_by_a_dead_run(invite: str, sqlite: bool) -> str:
    """SQL: the invite (table or alias `invite`), `sending`, belongs to no run still going
    (its job not running under a live lease, by the shared clock): a run that died mid-send
    left it, and it may have arrived. A statement with it takes `with_now` (SQLite's clock
    is bound as :now)."""
    return (f"({invite}.sender_job IS NULL OR NOT EXISTS (SELECT 1 FROM job j "
            f"WHERE j.id = {invite}.sender_job AND j.state = 'running' "
            f"AND j.lease_expires_at > {lease_now(sqlite)}))")


def with_now(statement: TextClause, sqlite: bool) -> TextClause:
    """`statement` with :now bound as the shared clock stamps it, on SQLite (PostgreSQL's
    is the server's own)."""
    if not sqlite:
        return statement
    return statement.bindparams(bindparam("now", utcnow(), type_=UTCDateTime()))
