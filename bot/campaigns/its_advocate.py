"""SQL for an invite's own advocate (a fragment the campaign modules share)."""

from __future__ import annotations

# The invite's own advocate: its id alone could name another's, since SQLite gives a
# deleted row's id (an undo takes advocates out, keeping their uncertain invites) to the next
# advocate made, of another person and campaign: a resend emailed that advocate's link.
ITS_ADVOCATE = ("a.id = {i}.advocate_id AND a.team_id = {i}.team_id "
                "AND a.campaign_id = {i}.campaign_id AND a.contact_id = {i}.contact_id")


def has_its_advocate(invite: str) -> str:
    """SQL: the invite (table or alias `invite`) still has its own advocate, so a resend has
    a link to send (one an undo took out has none)."""
    return f"EXISTS (SELECT 1 FROM advocate a WHERE {ITS_ADVOCATE.format(i=invite)})"
