"""The shell's Mailchimp import and connect: errors in words, names escaped, refusals recorded."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.mailchimp import api
from models import Database
from tests.fakes.mailchimp import FakeMailchimp
from tests.mailchimp import test_mailchimp as shared
from tests.shell import run

TEAM, KEY, SECRET = shared.TEAM, shared.KEY, shared.SECRET
mc = shared.mc  # its account: Regulars (aud1) and Newsletter (aud2)


async def _connected(db_env: dict[str, str], mc: FakeMailchimp) -> dict[str, str]:
    env = {**db_env, "SECRET_KEY": SECRET, "MAILCHIMP_API_URL": mc.base_url}
    done = await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, "connect",
                                   "--api-key", KEY)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return env


@pytest.mark.parametrize("extra", [[], ["--json"], ["--dry-run"]])
async def test_an_import_whose_key_was_revoked_says_so_without_a_traceback(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, extra: list[str]
) -> None:
    """`import --mailchimp-list` with a key revoked (or Mailchimp down past its retries)
    while the audiences are listed: resolve_audiences lets api.MailchimpError through."""
    env = await _connected(db_env, mc)
    mc.revoke(KEY)
    done = await asyncio.to_thread(run, env, "import", "--mailchimp-list", "aud1",
                                   "--segment", "MC", "--create-segment", "--team", TEAM,
                                   *extra)  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "refused our credentials" in (done.stderr + done.stdout)


async def test_an_import_when_mailchimp_is_down_says_so_without_a_traceback(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await _connected(db_env, mc)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    mc.fail_next("/3.0/lists", 503, body={"title": "Busy"}, times=1000)
    done = await asyncio.to_thread(run, env, "import", "--mailchimp-list", "aud1",
                                   "--segment", "MC", "--create-segment", "--team", TEAM)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "Mailchimp kept failing to list the audiences" in done.stderr


async def test_audience_names_in_an_import_error_cant_drive_the_terminal(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """"No Mailchimp audience 'x'. Audiences: ..." lists the account's names raw on stderr:
    an escape sequence or a right-to-left override in an audience's name reaches the
    operator's terminal (bot.terminal escapes only stdout; stderr relies on quoted())."""
    mc.account(KEY).add_list("aud3", "Evil\x1b]0;pwned\x07\x1b[2J \u202eriah")
    env = await _connected(db_env, mc)
    done = await asyncio.to_thread(run, env, "import", "--mailchimp-list", "nope",
                                   "--segment", "MC", "--create-segment", "--team", TEAM)
    assert done.returncode == 1 and "No Mailchimp audience 'nope'" in done.stderr, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr, repr(done.stderr)
    assert "\u202e" not in done.stderr, repr(done.stderr)


async def test_an_audience_deleted_during_a_two_audience_import_is_named(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """One of two audiences gone (404) while the import reads it: the error said
    "Mailchimp couldn't read that audience: it doesn't exist (any more)." naming neither."""
    env = await _connected(db_env, mc)
    mc.fail_next("/3.0/lists/aud2/members", 404,
                 body=mc.problem(404, "Resource Not Found",
                                 "The requested resource could not be found."))  # fmt: skip
    done = await asyncio.to_thread(run, env, "import", "--mailchimp-list", "aud1",
                                   "--mailchimp-list", "aud2", "--segment", "MC",
                                   "--create-segment", "--team", TEAM)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "Newsletter" in done.stderr, done.stderr


async def test_connecting_a_key_mailchimp_refuses_doesnt_say_reconnect_in_slack(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """A wrong key given to `mailchimp connect` was told "reconnect Mailchimp with /referral
    mailchimp.": nothing was connected, and the fix is another key, here."""
    env = {**db_env, "SECRET_KEY": SECRET, "MAILCHIMP_API_URL": mc.base_url}
    done = await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, "connect",
                                   "--api-key", "ffffffffffffffffffffffffffffffff-us21")
    assert done.returncode == 1
    assert "/referral mailchimp" not in done.stderr, done.stderr
    assert "reconnect" not in done.stderr.lower(), done.stderr


async def test_a_dry_run_of_an_audience_counts_its_members_by_status_in_json(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """README: the import's JSON adds `skipped_by_status`; the dry run ("every count of
    importing now") has no such key, so a script can't preview the unsubscribed skipped."""
    env = await _connected(db_env, mc)
    done = await asyncio.to_thread(run, env, "import", "--mailchimp-list", "aud1",
                                   "--segment", "MC", "--create-segment", "--team", TEAM,
                                   "--dry-run", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out.get("skipped_by_status") == {"unsubscribed": 1, "cleaned": 1}, out


async def test_a_shell_import_mailchimp_refuses_marks_the_connection_refused(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """README (Managing from Slack): App Home says Mailchimp refuses the credentials once
    "/referral mailchimp, referral-bot mailchimp status, an import or opening Home saw it".
    A shell import refused (401) while reading an audience records nothing (refused_at)."""
    from sqlalchemy import text

    env = await _connected(db_env, mc)
    mc.fail_next("/3.0/lists/aud1/members", 401,
                 body=mc.problem(401, "API Key Invalid", "Your API key may be invalid."))
    done = await asyncio.to_thread(run, env, "import", "--mailchimp-list", "aud1",
                                   "--segment", "MC", "--create-segment", "--team", TEAM)
    assert done.returncode == 1 and "refused our credentials" in done.stderr, done.stderr
    async with db.begin() as conn:
        refused = (await conn.execute(text("SELECT refused_at FROM mailchimp_account"))).scalar()
    assert refused is not None


async def test_status_says_null_where_there_is_nothing_to_say_and_a_missing_key_is_named(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """`status --json` gave "" for an API key's account name and a healthy connection's
    problem (the README: null where there is nothing to say); and with SECRET_KEY unset, a
    connected workspace was told to set it "before connecting Mailchimp"."""
    env = await _connected(db_env, mc)
    done = await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, "status", "--json")
    out = json.loads(done.stdout)
    assert out["connected"] and out["health"] == "working", out
    assert out["account"] is None and out["problem"] is None, out
    unset = await asyncio.to_thread(run, {**env, "SECRET_KEY": ""}, "mailchimp", "--team", TEAM,
                                    "lists")  # fmt: skip
    assert unset.returncode == 1, unset
    assert "before connecting" not in unset.stderr, unset.stderr
    assert "SECRET_KEY to the one Mailchimp's credentials were saved with" in unset.stderr
