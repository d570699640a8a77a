"""`campaign live` warns of the sender once: on the run that put the campaign live.

`referral-bot campaign live NAME` printed the sender warning (invites from the bot's default
address) on stderr on every run: a second run, or a script running it again each day, warned
of a campaign live for weeks as if this run had started its emails. Slack's Go live says it
only on the click that put the campaign live (service.change_state); the shell does now too.
What it prints on stdout is unchanged either way.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from bot.campaigns import service
from models import CampaignState, Database
from tests.shell import run

SENDER_HOW = 'referral-bot campaign edit Spring --sender "Shop <hello@shop.example>"'
FROM_AN_IP = ("Invites of 'Spring' will come from \"shop.example\" <invites@127.0.0.1>: no "
              "sender is set, so the address is made from the bot's PUBLIC_URL, and 127.0.0.1 "
              "is an IP address: mail from it won't be delivered. Set the shop's own sender: "
              f"{SENDER_HOW}\n")  # fmt: skip
NO_TARGET = ("Campaign 'Spring' is live. No segment is targeted yet, so nobody was enrolled: "
             "referral-bot campaign target Spring --segment NAME enrolls a segment's "
             "contacts.\n")  # fmt: skip


def _env(db_env: dict[str, str]) -> dict[str, str]:
    return {**db_env, "PUBLIC_URL": "http://127.0.0.1:3999"}


def _spring(env: dict[str, str]) -> None:
    """Spring, a draft that emails its invites, with no sender (`create` warned of it)."""
    created = run(env, "campaign", "create", "Spring", "--store-url", "https://shop.example")
    assert (created.returncode, created.stderr) == (0, FROM_AN_IP), created


def test_live_again_on_a_live_campaign_warns_no_more(db_env: dict[str, str]) -> None:
    env = _env(db_env)
    _spring(env)
    first = run(env, "campaign", "live", "Spring")
    assert (first.returncode, first.stdout, first.stderr) == (0, NO_TARGET, FROM_AN_IP), first
    again = run(env, "campaign", "live", "Spring")  # live already: this run put nothing live
    assert (again.returncode, again.stdout, again.stderr) == (
        0, NO_TARGET.replace("is live.", "was live already."), ""), again  # fmt: skip
    as_json = run(env, "campaign", "live", "Spring", "--json")
    assert (as_json.returncode, as_json.stderr) == (0, ""), as_json
    assert json.loads(as_json.stdout) == {
        "campaign": "Spring", "enrolled": 0, "already_advocates": 0, "excluded": 0,
        "invites_queued": 0, "not_emailed": {}, "enrolling": None}  # fmt: skip

    # paused, then live again: this run put it live, so it says what invites come from
    assert run(env, "campaign", "pause", "Spring").stderr == ""
    back = run(env, "campaign", "live", "Spring", "--json")
    assert (back.returncode, back.stderr) == (0, FROM_AN_IP), back
    assert json.loads(back.stdout)["campaign"] == "Spring"
    assert run(env, "campaign", "live", "Spring", "--json").stderr == ""


async def test_live_on_a_campaign_put_live_elsewhere_with_its_enrollment_unfinished_warns_not(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Put live outside this shell (Slack's Go live, say, which warned there), its enrollment
    still queued for a worker: `campaign live` returns that enrollment and runs it, saying
    what it enrolled, and puts nothing live (it warned of this before); run again, it says
    the campaign is live. Paused and put live by the shell, it warns."""
    env = _env(db_env)
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    assert run(env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    _spring(env)
    assert run(env, "campaign", "target", "Spring", "--segment", "VIP").stderr == ""
    campaign = await service.find_campaign(db, "local", "Spring")
    elsewhere = await service.change_state(db, "local", campaign.id or 0, CampaignState.LIVE,
                                           requested_by="U0002")  # fmt: skip
    assert elsewhere.went_live and elsewhere.enrollment is not None

    finishing = run(env, "campaign", "live", "Spring")  # runs that enrollment here
    assert (finishing.returncode, finishing.stdout.split("\n")[0], finishing.stderr) == (
        0, "Enrolled 1 new advocate (0 already were, 0 excluded).", ""), finishing  # fmt: skip
    again = run(env, "campaign", "live", "Spring")
    assert (again.returncode, again.stdout, again.stderr) == (
        0, "Campaign 'Spring' was live already.\n", ""), again  # fmt: skip

    assert run(env, "campaign", "pause", "Spring").stdout == "Campaign 'Spring' is paused.\n"
    back = run(env, "campaign", "live", "Spring")
    assert (back.returncode, back.stdout.split("\n")[0], back.stderr) == (
        0, "Enrolled 0 new advocates (1 already was, 0 excluded).", FROM_AN_IP), back


async def test_a_run_that_went_live_and_then_failed_still_warns(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """The run that put the campaign live failed enrolling (here the database refuses every
    advocate; Ctrl-C or an outage alike): the campaign is live all the same, so no later
    run, nor Slack's Go live, says where its invites come from. This one says it."""
    env = _env(db_env)
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    assert run(env, "import", str(people), "--segment", "VIP", "--create-segment").returncode == 0
    _spring(env)
    assert run(env, "campaign", "target", "Spring", "--segment", "VIP").returncode == 0
    async with db.begin() as conn:
        for statement in (
            ["CREATE TRIGGER refuse BEFORE INSERT ON advocate "
             "BEGIN SELECT RAISE(ABORT, 'refused by a check'); END"] if db.is_sqlite else
            ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "RAISE EXCEPTION 'refused by a check'; END $$",
             "CREATE TRIGGER refuse BEFORE INSERT ON advocate FOR EACH ROW "
             "EXECUTE FUNCTION refuse()"]):  # fmt: skip
            await conn.execute(text(statement))
    failed = run(env, "campaign", "live", "Spring")
    assert failed.returncode != 0, failed
    spring = await service.find_campaign(db, "local", "Spring")
    assert spring.state == CampaignState.LIVE
    assert FROM_AN_IP in failed.stderr, failed.stderr
