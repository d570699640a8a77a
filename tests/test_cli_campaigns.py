"""The campaign path from the shell, without Slack: create, target, import, send, advocates.

Commands run through the real entry point in this process (tests/shell.py); the worker that
sends the invites is a real `referral-bot worker` process, stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns import service
from models import CampaignState, Database
from tests.conftest import BACKEND
from tests.shell import CLI, environment, run


def _json(env: dict[str, str], *args: str) -> dict | list:
    result = run(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _live_targeting_vip(env: dict[str, str], tmp_path: Path, campaign: str, *emails: str,
                        hold: bool = False) -> Any:  # fmt: skip
    """`emails` imported into a new segment VIP, a new live `campaign` targeting it (with
    `--hold`: its invites held); what the targeting printed."""
    people = tmp_path / "people.csv"
    people.write_text("email\n" + "".join(f"{e}\n" for e in emails), encoding="utf-8")
    assert run(env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(env, "campaign", "create", campaign, "--store-url", "https://shop.example",
               "--live").returncode == 0  # fmt: skip
    targeted = run(env, "campaign", "target", campaign, "--segment", "VIP",
                   *(["--hold"] if hold else []))  # fmt: skip
    assert targeted.returncode == 0, targeted.stderr
    return targeted


def test_the_whole_campaign_path_from_the_shell(db_env: dict[str, str], tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text("email,first_name,locale,Accepts Email Marketing\n"
                      "ana@example.com,Ana,es,yes\nbo@example.com,Bo,sv,no\n"
                      "staff@example.com,Staff,,yes\n", encoding="utf-8")  # fmt: skip
    staff = tmp_path / "staff.csv"
    staff.write_text("email\nstaff@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(db_env, "import", str(staff), "--segment", "Staff",
               "--create-segment").returncode == 0  # fmt: skip

    created = _json(db_env, "campaign", "create", "Spring", "--store-url",
                    "https://shop.example", "--sender", "Shop <hello@shop.example>",
                    "--offer", "Give 10%, get $10")  # fmt: skip
    assert created == {"id": 1, "name": "Spring", "state": "draft"}
    assert _json(db_env, "campaign", "exclude", "Spring", "--segment", "Staff") == {
        "campaign": "Spring", "segment": "Staff", "previous_role": None, "advocates_staying": 0,
        "invites_cancelled": 0}  # fmt: skip
    draft = _json(db_env, "campaign", "target", "spring", "--segment", "VIP")
    assert draft["enrolled"] == 0  # a draft campaign enrolls nobody yet
    # a draft was never live: nothing to pause (the shell made it "paused", Slack refused)
    paused = run(db_env, "campaign", "pause", "Spring")
    assert paused.returncode == 1 and "is a draft: it isn't live" in paused.stderr, paused
    assert _json(db_env, "campaign", "list")[0]["state"] == "draft"
    live = _json(db_env, "campaign", "live", "Spring")
    assert live == {"campaign": "Spring", "enrolled": 2, "already_advocates": 0, "excluded": 1,
                    "invites_queued": 1, "not_emailed": {"not subscribed": 1},
                    "enrolling": None}  # fmt: skip
    # live again: the same keys (it was {"campaign": "Spring"} alone)
    assert _json(db_env, "campaign", "live", "Spring") == {
        **live, "enrolled": 0, "excluded": 0, "invites_queued": 0, "not_emailed": {}}
    again = _json(db_env, "campaign", "target", "Spring", "--segment", "VIP")
    assert (again["enrolled"], again["already_advocates"]) == (0, 2)

    later = tmp_path / "later.csv"
    later.write_text("email,first_name\nnew@example.com,New\n", encoding="utf-8")
    imported = _json(db_env, "import", str(later), "--segment", "VIP")
    assert (imported["enrolled"], imported["invites_queued"]) == (1, 1)

    listing = _json(db_env, "campaign", "list")
    assert listing[0]["name"] == "Spring" and listing[0]["state"] == "live"
    assert listing[0]["targets"] == ["VIP"] and listing[0]["excluded"] == ["Staff"]
    assert listing[0]["advocates"] == 3 and listing[0]["invite_email"] is True

    outbox = tmp_path / "outbox"
    worker_env = {**db_env, "SECRET_KEY": "s" * 32, "OUTBOX_DIR": str(outbox),
                  "PUBLIC_URL": "https://r.example", "WORKER_POLL_SECONDS": "0.1"}  # fmt: skip
    _drain(worker_env)
    sent = sorted(outbox.glob("*.eml"))
    assert len(sent) == 2
    recipients = {str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["To"])
                  for p in sent}  # fmt: skip
    assert recipients == {"ana@example.com", "new@example.com"}

    advocates = _json(db_env, "advocates", "--campaign", "Spring")
    by_email = {a["email"]: a for a in advocates}
    assert set(by_email) == {"ana@example.com", "bo@example.com", "new@example.com"}
    assert by_email["bo@example.com"]["invite"] == "not_emailed"
    assert by_email["bo@example.com"]["subscribed"] is False
    assert by_email["bo@example.com"]["unsubscribed"] is False  # never said yes; said no to none
    assert by_email["ana@example.com"]["invite"] == "sent"
    assert by_email["ana@example.com"]["link"].startswith("http")
    # who never subscribed isn't "unsubscribed" (`contacts` says "not subscribed" of them)
    (bo,) = [line for line in run(db_env, "advocates", "--campaign", "Spring").stdout.splitlines()
             if line.startswith("bo@example.com")]  # fmt: skip
    assert bo.endswith("  not_emailed (not subscribed)  clicks 0"), bo  # said once

    paused = run(db_env, "campaign", "pause", "Spring")
    assert paused.returncode == 0 and paused.stdout == "Campaign 'Spring' is paused.\n"
    again = run(db_env, "campaign", "pause", "Spring")  # said "pause done." again
    assert again.returncode == 0 and again.stdout == "Campaign 'Spring' was paused already.\n"
    missing = run(db_env, "campaign", "target", "Nope", "--segment", "VIP", "--json")
    assert missing.returncode == 1 and "No campaign named 'Nope'" in json.loads(missing.stdout)[
        "error"]  # fmt: skip


def test_live_pause_and_target_say_what_the_campaign_is_now(db_env: dict[str, str],
                                                            tmp_path: Path) -> None:  # fmt: skip
    """`campaign live` and `pause` said "Campaign 'Spring': live done." and "pause done.",
    and nothing of a live campaign without a target enrolling nobody; `target` of a paused
    campaign said its contacts are enrolled "when it goes live", where the segments' list
    says "when it resumes"."""
    def said(*args: str) -> str:
        done = run(db_env, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    _json(db_env, "campaign", "create", "Spring Sale", "--store-url", "https://shop.example")
    _json(db_env, "campaign", "create", "Summer", "--store-url", "https://shop.example")
    assert said("campaign", "live", "Spring Sale") == (
        "Campaign 'Spring Sale' is live. No segment is targeted yet, so nobody was enrolled: "
        "referral-bot campaign target 'Spring Sale' --segment NAME enrolls a segment's "
        "contacts.\n")  # fmt: skip
    assert said("campaign", "pause", "Spring Sale") == "Campaign 'Spring Sale' is paused.\n"
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    assert said("campaign", "target", "Spring Sale", "--segment", "VIP") == (
        "'VIP' is now a target of 'Spring Sale', a paused campaign: its contacts will be "
        "enrolled when it resumes (referral-bot campaign live 'Spring Sale').\n")  # fmt: skip
    assert said("campaign", "target", "Summer", "--segment", "VIP") == (
        "'VIP' is now a target of 'Summer', a draft campaign: its contacts will be enrolled "
        "when it goes live (referral-bot campaign live Summer).\n")  # fmt: skip
    assert said("campaign", "target", "Summer", "--segment", "VIP").startswith(
        "'VIP' was already a target of 'Summer'")  # it said "is now", as if new
    assert said("campaign", "live", "Spring Sale").startswith("Enrolled 1 new advocate")
    assert said("campaign", "live", "Spring Sale") == (
        "Campaign 'Spring Sale' was live already.\n")  # fmt: skip


def test_campaign_create_refuses_a_bad_store_url(db_env: dict[str, str]) -> None:
    result = run(db_env, "campaign", "create", "X", "--store-url", "shop.example")
    assert result.returncode == 1 and "web address" in result.stderr


@pytest.mark.parametrize(("url", "why"), [
    ("shop.example", "start with https://"),
    ("https://shop@evil.example/", "leave out the part before @"),
    ("https://shop.example:99999/", "port doesn't exist"),
    ("https://my shop.example/", "no spaces"),
    ("https://shop..example/", "host name isn't one"),
    ("http://localhost:3000", "leads to localhost"),
])  # fmt: skip
def test_a_refused_store_url_says_why(db_env: dict[str, str], url: str, why: str) -> None:
    """Every refusal read "Use the store's web address": nobody could tell what was wrong."""
    result = run(db_env, "campaign", "create", "X", "--store-url", url)
    assert result.returncode == 1 and why in result.stderr, result.stderr


def test_campaign_edit_refuses_a_store_url_on_localhost(db_env: dict[str, str]) -> None:
    """`campaign edit --store-url http://localhost:3000` (the store as a developer runs it) was
    saved: every referral link in the invites then sent customers' browsers to their own
    computers."""
    assert run(db_env, "campaign", "create", "Spring", "--store-url",
               "https://shop.example").returncode == 0  # fmt: skip
    edited = run(db_env, "campaign", "edit", "Spring", "--store-url", "http://localhost:3000")
    assert edited.returncode == 1, edited.stdout
    assert ("--store-url: it leads to localhost, the computer the link is opened on: every "
            "customer would be sent to their own computer, not the store. Use the store's web "
            "address, e.g. https://shop.example.com") in edited.stderr, edited.stderr  # fmt: skip
    [row] = _json(db_env, "campaign", "list")
    assert row["store_url"] == "https://shop.example"


LOOPBACK = ["http://localhost", "https://LOCALHOST.:8443/shop", "http://shop.localhost/",
            "http://127.0.0.1:8080", "http://127.10.0.3/", "http://[::1]:3000/",
            "http://0.0.0.0:3000", "http://[::]/", "http://[::ffff:127.0.0.1]/",
            # what a browser reads as 127.0.0.1 (or 0.0.0.0): the WHATWG URL standard's
            # numbers
            "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/",
            "http://0/",
            # a letter IDNA 2003 left alone and browsers (IDNA 2008, UTS 46) read as "L"
            "https://\u1d38ocalhost/shop"]  # fmt: skip
# on a network of their own (an office's, a VPN's) these reach a store; localhost never does
ELSEWHERE = ["http://10.0.0.5/", "http://192.168.1.20:8080/", "http://172.16.4.1/",
             "http://[fd00::1]/", "https://localhost.example.com/", "https://mylocalhost.shop/",
             "https://127.example.com/", "https://shop.example.127x/"]  # fmt: skip


@pytest.mark.parametrize("url", LOOPBACK)
def test_a_store_url_on_localhost_is_refused_however_written(url: str) -> None:
    problems = service.check_fields(store_url=url)
    assert problems.get("store_url", "").startswith("It leads to localhost"), problems


@pytest.mark.parametrize("url", ELSEWHERE)
def test_a_store_url_on_a_private_network_or_named_like_localhost_is_kept(url: str) -> None:
    assert service.check_fields(store_url=url) == {}


def test_campaign_create_refuses_an_offer_longer_than_its_column(db_env: dict[str, str]) -> None:
    result = run(db_env, "campaign", "create", "X", "--store-url", "https://shop.example",
                 "--offer", "x" * 201)  # fmt: skip
    assert result.returncode == 1, result
    assert result.stderr == "referral-bot: --offer: the offer is at most 200 characters.\n"
    assert "Traceback" not in result.stderr
    assert json.loads(run(db_env, "campaign", "list", "--json").stdout) == []


def test_campaign_create_refuses_a_name_of_characters_that_show_nothing(
    db_env: dict[str, str]
) -> None:
    """Only spaces were refused: a name of a left-to-right mark (pasted from RTL text) or a
    zero-width space alone made a campaign with no name, listed blank. Refused as an empty
    name is (segment names already ignore such characters)."""
    for name in (" ", "\u200e", " \u200b\u2063 "):
        result = run(db_env, "campaign", "create", name, "--store-url", "https://shop.example")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "referral-bot: A campaign needs a name.\n"
    assert json.loads(run(db_env, "campaign", "list", "--json").stdout) == []


def _drain(env: dict[str, str]) -> str:
    """Run a worker until the queue has nothing due (SIGTERM after a short quiet spell);
    what it logged."""
    import signal
    import subprocess
    import time

    worker = subprocess.Popen([*CLI, "worker"], env=environment(env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
            jobs = json.loads(run(env, "jobs", "--json").stdout)
            if not [j for j in jobs if j["state"] in ("queued", "running")
                    and j["kind"] in ("send_invites", "enroll")]:  # fmt: skip
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    return err


def test_job_max_attempts_applies_to_every_job_kind(db_env: dict[str, str], tmp_path: Path
                                                    ) -> None:  # fmt: skip
    env = {**db_env, "JOB_MAX_ATTEMPTS": "2"}
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    assert run(env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--live").returncode == 0  # fmt: skip
    assert run(env, "import", str(people), "--segment", "VIP", "--create-segment"
               ).returncode == 0  # fmt: skip
    assert run(env, "campaign", "target", "Spring", "--segment", "VIP").returncode == 0
    jobs = _json(env, "jobs", "--json")
    assert {j["kind"] for j in jobs} >= {"send_invites", "purge_staged"}, jobs
    assert {j["max_attempts"] for j in jobs} == {2}, jobs


def _import_jean(env: dict[str, str], tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text("email,first_name\njean@example.com,Jean\n", encoding="utf-8")
    assert run(env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip


def _printemps_sent(env: dict[str, str], tmp_path: Path) -> list[Path]:
    """Target VIP with a new live campaign, Printemps, and send its invites to the outbox:
    the messages."""
    env = {**env, "SECRET_KEY": "s" * 32, "PUBLIC_URL": "https://r.example",
           "OUTBOX_DIR": str(tmp_path / "outbox"), "WORKER_POLL_SECONDS": "0.1"}  # fmt: skip
    assert run(env, "campaign", "create", "Printemps", "--store-url", "https://shop.example",
               "--live").returncode == 0  # fmt: skip
    assert run(env, "campaign", "target", "Printemps", "--segment", "VIP").returncode == 0
    _drain(env)
    return list((tmp_path / "outbox").glob("*.eml"))


def _invite_language(env: dict[str, str], tmp_path: Path) -> str:
    """Target VIP with a new live campaign, send its invite to the outbox: its language."""
    [sent] = _printemps_sent(env, tmp_path)
    return str(email.message_from_bytes(sent.read_bytes(),
                                        policy=email.policy.default)["Content-Language"])


def test_default_locale_applies_to_a_workspace_made_before_it_was_set(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    _import_jean(db_env, tmp_path)  # the first import, before DEFAULT_LOCALE was set
    assert _invite_language({**db_env, "DEFAULT_LOCALE": "fr"}, tmp_path) == "fr"


def test_a_command_run_without_default_locale_leaves_the_workspaces_as_they_are(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """An operator's shell without the deployment's .env ran `jobs`, and every workspace's
    invites switched to the default English."""
    _import_jean({**db_env, "DEFAULT_LOCALE": "fr"}, tmp_path)
    assert run(db_env, "jobs").returncode == 0  # DEFAULT_LOCALE not set here
    assert _invite_language(db_env, tmp_path) == "fr"


def test_advocates_says_an_invite_went_in_another_language_for_want_of_a_template(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """Slack's report said "sent in en: no template in their language"; the shell's
    `advocates` said "sent" alone of a Korean customer emailed in English."""
    people = tmp_path / "people.csv"
    people.write_text("email,first_name,locale\nkim@example.com,Kim,ko\n"
                      "jean@example.com,Jean,fr\n", encoding="utf-8")  # fmt: skip
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    assert len(_printemps_sent(db_env, tmp_path)) == 2
    lines = run(db_env, "advocates", "--campaign", "Printemps").stdout.splitlines()
    (kim,) = [line for line in lines if line.startswith("kim@")]
    (jean,) = [line for line in lines if line.startswith("jean@")]
    assert "  sent in en: no template in their language (ko)  clicks 0" in kim, kim
    assert "  sent  clicks 0" in jean, jean  # a template of its own: nothing to say
    by_email = {a["email"]: a for a in _json(db_env, "advocates", "--campaign", "Printemps")}
    assert (by_email["kim@example.com"]["fell_back_to"], by_email["kim@example.com"]["locale"]
            ) == ("en", "ko")  # fmt: skip
    assert by_email["jean@example.com"]["fell_back_to"] is None


def test_campaign_list_prints_the_delay_and_the_invites_sent(db_env: dict[str, str],
                                                             tmp_path: Path) -> None:  # fmt: skip
    """As the README's table promises (and `--json` and Slack's list show): the text listing
    printed neither, so a merchant in the shell couldn't tell a delayed campaign from one
    that sends nothing, nor how many invites went out."""
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\nbo@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    for name, delay in (("Spring", "0"), ("Later", "3")):
        assert run(db_env, "campaign", "create", name, "--store-url", "https://shop.example",
                   "--invite-delay-days", delay, "--live").returncode == 0  # fmt: skip
        assert run(db_env, "campaign", "target", name, "--segment", "VIP").returncode == 0
        if name == "Spring":  # Later's invites wait three days
            _drain({**db_env, "SECRET_KEY": "s" * 32, "OUTBOX_DIR": str(tmp_path / "outbox"),
                    "PUBLIC_URL": "https://r.example", "WORKER_POLL_SECONDS": "0.1"})  # fmt: skip
    lines = run(db_env, "campaign", "list").stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["Later", "Spring"]
    assert "invite email on after 3 days" in lines[0] and "invites sent: 0" in lines[0]
    assert "invite email on " in lines[1] and "invites sent: 2" in lines[1]
    assert "advocates: 2" in lines[0] and "advocates: 2" in lines[1]
    later = run(db_env, "advocates", "--campaign", "Later").stdout.splitlines()
    assert len(later) == 2 and all(" queued (due 20" in line for line in later), later


def test_sending_stopped_shows_in_campaign_list_and_retry_sending_sends(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """An enrollment from the shell has no Slack thread to report in: `campaign list` says
    its sending stopped, and `campaign retry-sending` sends once the mail settings work."""
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**db_env, "SECRET_KEY": "s" * 32, "PUBLIC_URL": "https://r.example",
           "WORKER_POLL_SECONDS": "0.1", "JOB_MAX_ATTEMPTS": "1",
           "OUTBOX_DIR": str(tmp_path / "outbox")}  # fmt: skip
    _import_jean(env, tmp_path)
    assert run(env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--live").returncode == 0  # fmt: skip
    assert run(env, "campaign", "target", "Spring", "--segment", "VIP").returncode == 0
    logged = _drain({**env, "SMTP_URL": f"smtp://127.0.0.1:{port}?timeout=2"})
    # said in a line: each attempt logged three chained tracebacks to say no more than this
    assert "Traceback" not in logged and "could not connect to smtp://127.0.0.1" in logged, (
        logged)
    [row] = _json(env, "campaign", "list")
    assert "could not connect" in (row["sending_stopped"] or ""), row
    listed = run(env, "campaign", "list")
    assert "sending stopped: could not connect" in listed.stdout
    assert "referral-bot campaign retry-sending Spring" in listed.stdout
    # paused, its invites wait for it to be live again: it said "Sending ... again"
    assert run(env, "campaign", "pause", "Spring").returncode == 0
    retried = run(env, "campaign", "retry-sending", "Spring")
    assert retried.stdout == ("The invites of 'Spring' are queued: they go once 'Spring' is "
                              "live again (referral-bot campaign live Spring).\n"), retried
    again = _json(env, "campaign", "retry-sending", "Spring")  # the retry is queued already
    assert (again["campaign"], again["restarted"], len(again["retry_jobs"])) == (
        "Spring", 0, 1)  # fmt: skip
    assert "is queued already" in run(env, "campaign", "retry-sending", "Spring").stdout
    _drain(env)  # SMTP_URL put right (here: the outbox directory)
    assert list((tmp_path / "outbox").glob("*.eml")) == []  # paused
    assert run(env, "campaign", "live", "Spring", "--yes").returncode == 0
    _drain(env)
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert _json(env, "campaign", "list")[0]["sending_stopped"] is None
    done = run(env, "campaign", "retry-sending", "Spring")  # sent: nothing left to retry
    assert done.stdout == "No invites of 'Spring' stopped sending: nothing to retry.\n", done


async def test_invites_that_may_not_have_arrived_are_listed_and_resent_from_the_shell(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """An enrollment from the shell has no Slack report, whose *Resend uncertain* was the only
    way on for an invite the mail server took and then didn't answer for: `campaign list`
    said only how many were sent, and the invite stayed uncertain for good."""
    from tests.email.smtp_server import Handler, smtp_server

    env = {**db_env, "SECRET_KEY": "s" * 32, "PUBLIC_URL": "https://r.example",
           "WORKER_POLL_SECONDS": "0.1"}  # fmt: skip
    _live_targeting_vip(env, tmp_path, "Spring", "ana@example.com", "bo@example.com")
    # the second message taken, its reply lost: the run stops there, nothing left to send
    async with smtp_server(Handler(drop_at={"DATA": {2}})) as server:
        sending = {**env, "SMTP_URL": f"{server.url}?timeout=2"}
        await asyncio.to_thread(_drain, sending)
        [row] = _json(env, "campaign", "list")
        assert (row["invites_sent"], row["invites_failed"], row["invites_uncertain"]) == (1, 0, 1)
        listed = run(env, "campaign", "list").stdout
        assert ("1 invite may not have arrived (no answer came once it went to the mail "
                "server): referral-bot campaign resend-uncertain Spring sends it again"
                ) in listed, listed  # fmt: skip
        # which one, and why (the list said `uncertain`, the advocates never said why)
        shown = run(env, "advocates", "--campaign", "Spring").stdout
        assert "  uncertain (may have been delivered: no reply after the end of DATA" in shown
        assert _json(env, "campaign", "resend-uncertain", "Spring") == {
            "campaign": "Spring", "queued": 1, "waiting_for_retry": 0}  # fmt: skip
        await asyncio.to_thread(_drain, sending)
    assert len(server.handler.messages) == 3  # the uncertain one went again, as asked
    [row] = _json(env, "campaign", "list")
    assert (row["invites_sent"], row["invites_uncertain"]) == (2, 0)
    assert "may not have arrived" not in run(env, "campaign", "list").stdout
    again = run(env, "campaign", "resend-uncertain", "Spring")
    assert again.stdout == "No invite of 'Spring' is left to resend.\n", again


def test_campaign_edit_turns_the_invite_email_off_and_on_and_email_unsent_sends_once(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """From the shell a campaign couldn't be changed once created: a merchant moving to
    Klaviyo couldn't turn its invite email off, nor on again, nor send what it held back."""
    env = {**db_env, "SECRET_KEY": "s" * 32, "PUBLIC_URL": "https://r.example",
           "WORKER_POLL_SECONDS": "0.1", "OUTBOX_DIR": str(tmp_path / "outbox")}  # fmt: skip
    _import_jean(env, tmp_path)
    assert run(env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--live").returncode == 0  # fmt: skip
    assert run(env, "campaign", "target", "Spring", "--segment", "VIP").returncode == 0
    nothing = run(env, "campaign", "edit", "Spring")
    assert nothing.returncode == 1 and "Nothing to change" in nothing.stderr
    off = _json(env, "campaign", "edit", "Spring", "--invite-email", "off", "--offer", "10%",
                "--invite-delay-days", "2")  # fmt: skip
    assert off == {"campaign": "Spring", "invite_email": False, "invite_delay_days": 2,
                   "unsent_while_off": 0}  # fmt: skip
    # off: a refusal (it said "No invite … is left unsent …, which is off", exit 0, and its
    # JSON read as "nothing to send")
    refused = run(env, "campaign", "email-unsent", "Spring")
    assert refused.returncode == 1 and refused.stdout == "", refused
    assert ("The invite email of 'Spring' is off: nobody was emailed. Turn it on first "
            "(referral-bot campaign edit Spring --invite-email on).") in refused.stderr, refused
    assert "is off" in json.loads(run(env, "campaign", "email-unsent", "Spring",
                                      "--json").stdout)["error"]  # fmt: skip
    on = run(env, "campaign", "edit", "Spring", "--invite-email", "on", "--invite-delay-days",
             "0", "--rename", "Spring 2027")  # fmt: skip
    assert on.returncode == 0, on.stderr
    assert "Campaign 'Spring 2027' saved (invite email on)." in on.stdout
    assert "1 invite went unsent while the invite email was off" in on.stdout
    assert "referral-bot campaign email-unsent 'Spring 2027'" in on.stdout
    _drain(env)
    assert list((tmp_path / "outbox").glob("*.eml")) == []  # on again: nobody emailed by it
    assert _json(env, "campaign", "list")[0]["unsent_while_off"] == 1
    # another edit doesn't say it again (a new store URL repeated the hint of turning it on)
    edited = run(env, "campaign", "edit", "Spring 2027", "--offer", "10% off")
    assert edited.stdout == "Campaign 'Spring 2027' saved (invite email on).\n", edited.stdout
    assert ("1 invite went unsent while the invite email was off (referral-bot campaign "
            "email-unsent 'Spring 2027')") in run(env, "campaign", "list").stdout
    # paused, its invites are queued until it is live again: it said "Sending 1 invite"
    assert run(env, "campaign", "pause", "Spring 2027").returncode == 0
    paused = run(env, "campaign", "email-unsent", "Spring 2027")
    assert paused.stdout == ("1 invite of 'Spring 2027' is queued: it goes once 'Spring 2027' "
                             "is live again (referral-bot campaign live 'Spring 2027').\n"), paused
    assert _json(env, "campaign", "email-unsent", "Spring 2027") == {
        "campaign": "Spring 2027", "queued": 0, "invited_before": 0,
        "no_longer_subscribed": 0}  # fmt: skip
    again = run(env, "campaign", "email-unsent", "Spring 2027")
    assert again.returncode == 0 and "is left unsent" in again.stdout
    _drain(env)
    assert list((tmp_path / "outbox").glob("*.eml")) == []
    assert run(env, "campaign", "live", "Spring 2027", "--yes").returncode == 0
    _drain(env)
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    [row] = _json(env, "campaign", "list")
    assert (row["name"], row["invites_sent"], row["unsent_while_off"]) == ("Spring 2027", 1, 0)
    bad = run(env, "campaign", "edit", "Spring 2027", "--store-url", "shop.example")
    assert bad.returncode == 1 and "web address" in bad.stderr


def _worker_for(env: dict[str, str], seconds: float,
                until: Callable[[], bool] | None = None) -> str:
    """`referral-bot worker` once it waits for jobs: for `seconds` (it polls every 0.1 s), or
    `until` holds (within `seconds`); then Ctrl-C; what it said."""
    import signal
    import subprocess
    import tempfile
    import time

    # stderr into a file of its own (appended to), read whole at the end: lines read from a
    # pipe up to "waiting for jobs" left those after it in the reader's buffer, which
    # communicate() never saw; and a file shared with the reader's position could be written
    # over where the reader had sought
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "worker.log"
        with path.open("a") as log:
            worker = subprocess.Popen([*CLI, "worker"],
                                      env=environment({**env, "WORKER_POLL_SECONDS": "0.1"}),
                                      stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        try:
            started = time.monotonic() + 60
            while "waiting for jobs" not in path.read_text():  # its start-up lines
                assert time.monotonic() < started and worker.poll() is None, "it never started"
                time.sleep(0.05)
            deadline = time.monotonic() + seconds
            if until is None:
                time.sleep(seconds)
            else:
                while not until():
                    assert time.monotonic() < deadline and worker.poll() is None, "never happened"
                    time.sleep(0.1)
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=30)
        finally:  # a test that fails leaves no worker polling its database
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        said = path.read_text()
    assert worker.returncode == 0, said
    return said


@pytest.mark.parametrize("lacking", ["SMTP_URL", "SECRET_KEY", "PUBLIC_URL"])
def test_a_worker_that_cant_send_leaves_the_invites_queued_and_says_so(
    db_env: dict[str, str], tmp_path: Path, lacking: str
) -> None:
    """A worker without SMTP_URL wrote a campaign's invites into ./outbox and marked them
    sent while the campaign sent by SMTP through serve's worker (never emailed); one without
    SECRET_KEY failed the send job for good; one without PUBLIC_URL stopped the sending.
    Each now leaves the send job queued for a worker that can, and `jobs` says what it needs;
    writing invites as files is OUTBOX_DIR's choice only."""
    people = tmp_path / "people.csv"
    people.write_text("email,first_name\njean@example.com,Jean\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--live").returncode == 0
    assert run(db_env, "campaign", "target", "Spring", "--segment", "VIP").returncode == 0
    settings = {"SMTP_URL": "smtp://127.0.0.1:9?timeout=2", "SECRET_KEY": "s" * 32,
                "PUBLIC_URL": "https://r.example"}
    settings[lacking] = ""
    logged = _worker_for({**db_env, **settings}, 1.5)  # 15 polls: the job is left queued
    assert "0 jobs done" in logged or "Worker stopped" in logged, logged
    # what is missing is said once (each was said twice at start)
    assert logged.count(f"{lacking} is not set") + logged.count(f"you set {lacking}") == 1, (
        logged)
    [send] = [j for j in _json(db_env, "jobs") if j["kind"] == "send_invites"]
    assert (send["state"], send["attempts"], send["waiting_for_worker"]) == ("queued", 0, True)
    line = next(x for x in run(db_env, "jobs").stdout.splitlines() if "send_invites" in x)
    assert "waiting for a worker that can run it (start one with SMTP_URL and PUBLIC_URL" in line
    [adv] = _json(db_env, "advocates", "--campaign", "Spring")
    assert adv["invite"] == "queued"
    assert not (tmp_path / "outbox").exists() and not Path("outbox").exists()
    # a worker with OUTBOX_DIR writes it as a file
    def sent() -> bool:
        return [j["state"] for j in _json(db_env, "jobs") if j["kind"] == "send_invites"] == [
            "done"]

    _worker_for({**db_env, "SECRET_KEY": "s" * 32, "OUTBOX_DIR": str(tmp_path / "files")}, 60,
                until=sent)  # fmt: skip
    assert len(list((tmp_path / "files").glob("*.eml"))) == 1


async def test_going_live_again_finishes_an_enrollment_cut_short(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`campaign live` cut short (Ctrl-C, kill -9) after the campaign went live: its
    enrollment had no job, so nothing ever ran it, and `campaign live` again said "live done."
    with nobody enrolled. Now it runs the enrollment, whether its job was never made (the
    shell before), handed back (Ctrl-C) or held by a process that died (its lease lapsed)."""
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\nbo@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    for name in ("Spring", "Summer"):
        _json(db_env, "campaign", "create", name, "--store-url", "https://shop.example")
        _json(db_env, "campaign", "target", name, "--segment", "VIP")
    spring = await service.find_campaign(db, "local", "Spring")
    await service.set_state(db, "local", spring.id or 0, CampaignState.LIVE, requested_by="cli",
                            queue_job=False)  # fmt: skip
    summer = await service.find_campaign(db, "local", "Summer")
    await service.set_state(db, "local", summer.id or 0, CampaignState.LIVE, requested_by="cli")
    async with db.begin() as conn:  # its runner died: running, under a lease that lapsed
        await conn.execute(text("UPDATE job SET state = 'running', lease_owner = 'gone', "
                                "lease_expires_at = '2000-01-01 00:00:00' WHERE kind = 'enroll'"))
    for name in ("Spring", "Summer"):
        assert _json(db_env, "campaign", "live", name)["enrolled"] == 2
    assert [c["advocates"] for c in _json(db_env, "campaign", "list")] == [2, 2]
    assert _json(db_env, "campaign", "live", "Spring") == {  # done already: nobody enrolled
        "campaign": "Spring", "enrolled": 0, "already_advocates": 0, "excluded": 0,
        "invites_queued": 0, "not_emailed": {}, "enrolling": None}  # fmt: skip


async def test_going_live_again_runs_an_enrollment_whose_job_was_cancelled(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`jobs cancel` of an enroll job left its enrollment pending: every later `campaign live`
    said "A worker is enrolling the contacts" and nothing ever ran it."""
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\nbo@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    _json(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example")
    _json(db_env, "campaign", "target", "Spring", "--segment", "VIP")
    spring = await service.find_campaign(db, "local", "Spring")
    await service.set_state(db, "local", spring.id or 0, CampaignState.LIVE, requested_by="U1")
    async with db.begin() as conn:
        job = (await conn.execute(text("SELECT id FROM job WHERE kind = 'enroll'"))).scalar()
    assert run(db_env, "jobs", "cancel", str(job)).returncode == 0
    again = run(db_env, "jobs", "cancel", str(job))  # again: still cancelled, and said so
    assert again.returncode == 0 and again.stdout == f"Job {job} was cancelled already.\n", (
        again.stdout)
    # a job that ended is a failure as every other, on stderr and as {"error"}: it was the
    # job on stdout, with exit status 1
    async with db.begin() as conn:
        done = (await conn.execute(text("SELECT id FROM job WHERE state = 'done'"))).scalar()
    refused = run(db_env, "jobs", "cancel", str(done))
    assert refused.returncode == 1 and refused.stdout == "", refused
    assert refused.stderr.strip().endswith(
        f"Job {done} is done: only a queued or running job can be cancelled."), refused
    told = run(db_env, "jobs", "cancel", str(done), "--json")
    assert told.returncode == 1 and "is done" in json.loads(told.stdout)["error"], told
    assert _json(db_env, "campaign", "live", "Spring")["enrolled"] == 2


async def test_target_hold_is_kept_for_a_worker_that_runs_the_enrollment(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """Without a thread an enrollment's invites aren't held (no Cancel invites button), but
    `campaign target --hold` asks for it: a worker running that enrollment dropped it."""
    _ana_in_vip_and_live_spring(db_env, tmp_path)
    spring = await service.find_campaign(db, "local", "Spring")
    vip = await service.get_segment(db, "local", int(str(await _scalar(
        db, "SELECT id FROM segment WHERE name = 'VIP'"))))  # fmt: skip
    for hold, held in ((True, True), (None, False)):
        async with db.begin() as conn:
            await conn.execute(text("DELETE FROM campaign_segment"))
            await conn.execute(text("UPDATE enrollment SET status = 'done'"))
        await service.target(db, "local", spring.id or 0, vip.id or 0, requested_by="cli",
                             hold=hold)  # fmt: skip
        payload = await _scalar(db, "SELECT payload FROM job WHERE kind = 'enroll' "
                                    "ORDER BY id DESC LIMIT 1")  # fmt: skip
        assert json.loads(str(payload))["hold"] is held


async def _scalar(db: Database, sql: str) -> object:
    async with db.begin() as conn:
        return (await conn.execute(text(sql))).scalar()


def test_a_cancelled_send_job_is_not_blamed_on_the_mail_settings(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`jobs cancel` of a send job: the campaign list said to fix the mail settings."""
    _ana_in_vip_and_live_spring(db_env, tmp_path)
    assert _json(db_env, "campaign", "target", "Spring", "--segment", "VIP")["enrolled"] == 1
    (send,) = [j["id"] for j in _json(db_env, "jobs") if j["kind"] == "send_invites"]
    assert run(db_env, "jobs", "cancel", str(send)).returncode == 0
    listed = run(db_env, "campaign", "list")
    assert "sending stopped: its send job was cancelled. (referral-bot campaign retry-sending " \
           "Spring)" in listed.stdout, listed.stdout


def _ana_in_vip_and_live_spring(db_env: dict[str, str], tmp_path: Path) -> None:
    """ana imported into VIP; Spring created live (targeting nothing yet)."""
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    _json(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
          "--live")  # fmt: skip


# a stop saved by the release before said "for about two hours"
@pytest.mark.parametrize("saved", ["now",
                                   "the mail server turned the bot away for about two hours"])
def test_a_server_that_turned_the_bot_away_is_not_blamed_on_the_mail_settings(
    db_env: dict[str, str], tmp_path: Path, saved: str
) -> None:
    """Sending stopped after two hours of a provider's throttle: the campaign list (CLI and
    Slack) told the person to fix the mail settings, which were fine (and so again of a stop
    saved before the reason was reworded)."""
    from bot.campaigns.invites import _TURNED_AWAY
    from bot.campaigns.service import list_campaigns
    from handlers.campaign_messages import _campaign_text

    _ana_in_vip_and_live_spring(db_env, tmp_path)
    assert _json(db_env, "campaign", "target", "Spring", "--segment", "VIP")["enrolled"] == 1
    why = f"{_TURNED_AWAY if saved == 'now' else saved}: 451 4.7.1 Rate limited, try later"

    async def stop_and_summarise() -> str:
        db = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))
        try:
            async with db.begin() as conn:
                await conn.execute(text("UPDATE enrollment SET send_error = :w"), {"w": why})
            (summary,) = await list_campaigns(db, "local")
            return _campaign_text(summary)
        finally:
            await db.dispose()

    shown = asyncio.run(stop_and_summarise())
    listed = run(db_env, "campaign", "list").stdout

    assert "check the mail provider's sending limits" in shown and "Fix the bot's" not in shown
    assert "turned the bot away: check the provider's sending limits" in listed, listed
    assert "fix the mail settings" not in listed


def test_enrolling_one_contact_is_said_in_the_singular(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """"Enrolled 1 new advocates (0 already were, 0 excluded)." and "1 invites queued"; the
    second targeting "(1 already were, …)"."""
    one = tmp_path / "one.csv"
    one.write_text("email\na@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(one), "--segment", "VIP", "--create-segment").returncode == 0
    assert run(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--live").returncode == 0  # fmt: skip
    first = run(db_env, "campaign", "target", "Spring", "--segment", "VIP")
    again = run(db_env, "campaign", "target", "Spring", "--segment", "VIP")
    assert "Enrolled 1 new advocate (0 already were, 0 excluded)." in first.stdout, first.stdout
    assert "1 invite queued: a worker sends it " in first.stdout, first.stdout
    assert "(1 already was, 0 excluded)" in again.stdout, again.stdout
    assert "queued" not in again.stdout  # it said "0 invites queued: a worker sends them"


def test_a_targeting_that_runs_a_waiting_enrollment_of_every_target_says_so(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`campaign target Spring --segment Winter` (3 contacts) said "Enrolled 3 new advocates
    (8 already were, 0 excluded)": an undo of an import into an excluded segment had queued
    an enrollment of every target, which the targeting ran (it takes Winter in), and its
    counts, of all the targets, were said as if of Winter."""
    def csv(name: str, count: int) -> str:
        path = tmp_path / f"{name}.csv"
        rows = "".join(f"{name}{i}@example.com\n" for i in range(count))
        path.write_text(f"email\n{rows}", encoding="utf-8")
        return str(path)

    for name, count in (("big", 8), ("winter", 3)):
        assert run(db_env, "import", csv(name, count), "--segment", name.title(),
                   "--create-segment").returncode == 0  # fmt: skip
    assert run(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--no-invite-email").returncode == 0  # fmt: skip
    assert run(db_env, "campaign", "target", "Spring", "--segment", "Big").returncode == 0
    assert run(db_env, "campaign", "live", "Spring", "--yes").returncode == 0
    staff = _json(db_env, "import", csv("staff", 1), "--segment", "Staff", "--create-segment")
    assert run(db_env, "campaign", "exclude", "Spring", "--segment", "Staff").returncode == 0
    assert run(db_env, "undo", str(staff["import_id"])).returncode == 0

    targeted = run(db_env, "campaign", "target", "Spring", "--segment", "Winter")
    assert targeted.returncode == 0, targeted.stderr
    assert targeted.stdout.splitlines()[0] == (
        "Enrolled 3 new advocates from every target of 'Spring', 'Winter' now among them "
        "(8 already were, 0 excluded): an enrollment of them all was waiting."), targeted.stdout
    again = _json(db_env, "campaign", "target", "Spring", "--segment", "Winter")
    assert (again["enrolled"], again["already_advocates"], again["of_every_target"]) == (
        0, 3, False)
    staff = _json(db_env, "import", csv("staff", 1), "--segment", "Staff")
    assert run(db_env, "undo", str(staff["import_id"])).returncode == 0
    targeted = run(db_env, "campaign", "target", "Spring", "--segment", "Winter")
    assert targeted.stdout.splitlines()[0] == (  # a target already: not "now among them"
        "Enrolled 0 new advocates from every target of 'Spring', 'Winter' among them "
        "(11 already were, 0 excluded): an enrollment of them all was waiting."), targeted.stdout


def test_an_import_says_why_the_advocates_it_enrolled_were_not_emailed(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """An import into a segment a live campaign targets said "2 enrolled as advocates of live
    campaigns (0 invites queued for the worker)", and not why nobody was to be emailed."""
    people = tmp_path / "people.csv"
    people.write_text("email,Accepts Email Marketing\na@example.com,yes\nb@example.com,no\n"
                      "c@example.com,yes\n", encoding="utf-8")  # fmt: skip
    first = tmp_path / "first.csv"
    first.write_text("email\nfirst@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(first), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    for name, *invite in (("Spring",), ("Quiet", "--no-invite-email")):
        assert run(db_env, "campaign", "create", name, "--store-url", "https://shop.example",
                   *invite, "--live").returncode == 0  # fmt: skip
        assert run(db_env, "campaign", "target", name, "--segment", "VIP").returncode == 0
    imported = run(db_env, "import", str(people), "--segment", "VIP")
    assert imported.returncode == 0, imported.stderr
    assert ("6 enrolled as advocates of live campaigns (2 invites queued for the worker; "
            "not emailed: 2 invite email off, 2 not subscribed)") in imported.stdout, (
        imported.stdout)
    again = _json(db_env, "import", str(people), "--segment", "VIP")
    assert (again["enrolled"], again["invites_queued"], again["not_emailed"]) == (0, 0, {})


def test_contacts_not_subscribed_are_not_counted_as_left_unsent_by_the_invite_email_off(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """With the invite email off, every enrolled contact's invite was recorded "invite email
    off", those not subscribed too: "3 invites went unsent while the invite email was off",
    and `email-unsent` said "Sending 3 invites" of which one could never go. Consent comes
    first, as each invite's start checks it; one withdrawn after the enrollment is said."""
    env = {**db_env, "SECRET_KEY": "s" * 32, "PUBLIC_URL": "https://r.example"}
    people = tmp_path / "people.csv"
    people.write_text("email,Accepts Email Marketing\na@example.com,yes\nb@example.com,no\n"
                      "c@example.com,yes\n", encoding="utf-8")  # fmt: skip
    assert run(env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--no-invite-email", "--live").returncode == 0  # fmt: skip
    targeted = _json(env, "campaign", "target", "Spring", "--segment", "VIP")
    assert targeted["not_emailed"] == {"invite email off": 2, "not subscribed": 1}, targeted
    withdrawn = tmp_path / "withdrawn.csv"
    withdrawn.write_text("email,Accepts Email Marketing\nc@example.com,no\n", encoding="utf-8")
    assert run(env, "import", str(withdrawn), "--segment", "VIP",
               "--update-existing").returncode == 0  # fmt: skip
    on = run(env, "campaign", "edit", "Spring", "--invite-email", "on")
    assert "2 invites went unsent while the invite email was off" in on.stdout, on.stdout
    sent = _json(env, "campaign", "email-unsent", "Spring")
    assert sent == {"campaign": "Spring", "queued": 1, "invited_before": 0,
                    "no_longer_subscribed": 1}, sent  # fmt: skip
    again = run(env, "campaign", "email-unsent", "Spring")
    assert again.stdout == "No invite of 'Spring' is left unsent by the invite email being off.\n"


def test_target_with_hold_says_the_invites_are_held_and_what_keeps_them_back(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`campaign target --hold` said "2 invites queued: a worker sends them", as if at once,
    while `advocates` showed them held for INVITE_HOLD_SECONDS."""
    env = {**db_env, "INVITE_HOLD_SECONDS": "300"}
    held = _live_targeting_vip(env, tmp_path, "Spring 2027", "a@example.com", "b@example.com",
                               hold=True)  # fmt: skip
    assert held.stdout.splitlines()[1] == (
        "2 invites held for 5 minutes: a worker sends them then (`referral-bot advocates "
        "--campaign 'Spring 2027'` says when; `referral-bot campaign pause 'Spring 2027'` "
        "keeps them back)."), held.stdout
    advocates = _json(env, "advocates", "--campaign", "Spring 2027")
    assert [a["invite"] for a in advocates] == ["held", "held"], advocates  # type: ignore[index]
    # an invite delay outlasts the hold: said, not "held for 5 minutes" of invites due in 3 days
    assert run(env, "campaign", "create", "Later", "--store-url", "https://shop.example",
               "--invite-delay-days", "3", "--live").returncode == 0  # fmt: skip
    for n, hold in enumerate(([], ["--hold"])):
        more = tmp_path / f"more{n}.csv"
        more.write_text(f"email\nm{n}@example.com\n", encoding="utf-8")
        assert run(env, "import", str(more), "--segment", f"More {n}",
                   "--create-segment").returncode == 0  # fmt: skip
        later = run(env, "campaign", "target", "Later", "--segment", f"More {n}", *hold)
        assert "1 invite due in 3 days: a worker sends it then (" in later.stdout, later


def test_live_twice_says_the_second_time_it_was_live_already(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """A second `campaign live` said "Campaign 'Spring' is live." as the first did, where a
    second `pause` says "was paused already"."""
    first = run(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example")
    assert first.returncode == 0, first.stderr
    live = run(db_env, "campaign", "live", "Spring")
    assert live.stdout.startswith("Campaign 'Spring' is live. No segment is targeted yet"), live
    again = run(db_env, "campaign", "live", "Spring")
    assert again.stdout.startswith("Campaign 'Spring' was live already. No segment is "), again


def test_excluding_a_segment_the_campaign_targets_says_it_is_no_longer_a_target(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`campaign exclude` on a target switched it from targeted to excluded and said only
    "exclude done.": its contacts were left out of every target, its waiting invites
    cancelled, with no word of it. There is no untargeting, so it still switches, and says so
    (and how to target it again); --json gives the segment's role before."""
    _ana_in_vip_and_live_spring(db_env, tmp_path)
    assert _json(db_env, "campaign", "target", "Spring", "--segment", "VIP")["enrolled"] == 1

    excluded = run(db_env, "campaign", "exclude", "Spring", "--segment", "vip")
    assert (excluded.returncode, excluded.stderr) == (0, "")
    assert excluded.stdout.splitlines() == [
        "'VIP' was a target of 'Spring'; it is now excluded instead: no contact of it is "
        "enrolled, even one in another target.",
        "1 contact of it is an advocate already and stays one, links and all.",
        "1 waiting invite to its contacts was cancelled.",
        "To target it again: referral-bot campaign target Spring --segment VIP"]  # fmt: skip
    (listed,) = _json(db_env, "campaign", "list")
    assert (listed["targets"], listed["excluded"], listed["advocates"]) == ([], ["VIP"], 1)
    assert [a["invite"] for a in _json(db_env, "advocates", "--campaign", "Spring")] == [
        "cancelled"]  # fmt: skip
    assert _json(db_env, "campaign", "exclude", "Spring", "--segment", "VIP") == {
        "campaign": "Spring", "segment": "VIP", "previous_role": "exclude",
        "advocates_staying": 1, "invites_cancelled": 0}  # fmt: skip
    again = run(db_env, "campaign", "exclude", "Spring", "--segment", "VIP")
    assert again.stdout.splitlines() == [
        "'VIP' was already excluded from 'Spring'.",
        "1 contact of it is an advocate already and stays one, links and all."]  # fmt: skip


def test_targeting_a_segment_the_campaign_excludes_says_it_is_a_target_instead(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`campaign target` on a segment the campaign excluded switched it to a target and
    enrolled its contacts, saying only "Enrolled 1 new advocate": someone had left them out
    on purpose. It still switches (a campaign gives a segment one role), and says so first
    (and how to exclude it again); --json gives the segment's role before."""
    _ana_in_vip_and_live_spring(db_env, tmp_path)
    assert _json(db_env, "campaign", "exclude", "Spring", "--segment", "VIP")[
        "previous_role"] is None  # fmt: skip

    targeted = run(db_env, "campaign", "target", "Spring", "--segment", "vip")
    assert (targeted.returncode, targeted.stderr) == (0, "")
    lines = targeted.stdout.splitlines()
    assert lines[0] == "'VIP' was excluded from 'Spring'; it is now a target instead."
    assert lines[1] == "Enrolled 1 new advocate (0 already were, 0 excluded)."
    assert lines[-1] == "To exclude it again: referral-bot campaign exclude Spring --segment VIP"
    (listed,) = _json(db_env, "campaign", "list")
    assert (listed["targets"], listed["excluded"], listed["advocates"]) == (["VIP"], [], 1)
    again = _json(db_env, "campaign", "target", "Spring", "--segment", "VIP")
    assert (again["segment"], again["previous_role"], again["already_advocates"]) == (
        "VIP", "target", 1)  # fmt: skip
    assert "was excluded" not in run(db_env, "campaign", "target", "Spring",
                                     "--segment", "VIP").stdout  # fmt: skip
    _json(db_env, "campaign", "exclude", "Spring", "--segment", "VIP")
    assert _json(db_env, "campaign", "target", "Spring", "--segment", "VIP")[
        "previous_role"] == "exclude"  # fmt: skip


def test_jobs_says_when_a_delayed_send_is_due(db_env: dict[str, str], tmp_path: Path) -> None:
    """A campaign's invite delay holds its send job back: `jobs` listed it as queued and
    "waiting for a worker that can run it" with no word of when, so it looked stuck."""
    _import_jean(db_env, tmp_path)
    assert run(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--invite-delay-days", "2", "--live").returncode == 0  # fmt: skip
    assert run(db_env, "campaign", "target", "Spring", "--segment", "VIP").returncode == 0
    (send,) = [j for j in _json(db_env, "jobs") if j["kind"] == "send_invites"]
    due = datetime.fromisoformat(send["run_after"])
    assert timedelta(days=1, hours=23) < due - datetime.now(UTC) <= timedelta(days=2), due
    (line,) = [line for line in run(db_env, "jobs").stdout.splitlines()
               if line.split()[:1] == [str(send["id"])]]  # fmt: skip
    assert f"  due {due:%Y-%m-%d %H:%M} UTC" in line, line
    # no worker runs here: it waits for its time first, then for one (it said "waiting for
    # a worker" of a job two days from due)
    assert "waiting for a worker" not in line and "; no running worker could run it now" in line


@pytest.mark.skipif(BACKEND != "postgres", reason="needs two writers at once: row locks")
@pytest.mark.parametrize("command", [("target", "Spring", "--segment", "VIP"),
                                     ("live", "Spring")], ids=["target", "live"])
async def test_jobs_cancel_while_a_shell_enrollment_waits_enrolls_nobody_and_says_so(
    db: Database, db_env: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`jobs cancel` of the job of `campaign target` or `live` (the shell runs its enrollment
    itself) while the run waits for a lock (here the workspace's contacts lock, which a
    contact's deletion holds): the shell's run didn't say which job it was, so it never saw
    the cancel, enrolled everyone, queued their invites and printed "Enrolled 1 new
    advocate". A worker's run stops
    (test_jobs_cancel_while_an_enrollment_waits_for_its_campaign_enrolls_nobody); the
    shell's does now, and says so, exit 1 (as `import` and `undo` stopped by `jobs cancel`
    do); the same command again enrolls them."""
    from bot.imports.cancel import cancel_job
    from bot.workspaces import ensure_workspace
    from models.locks import lock_contacts
    from tests.waiting import backend_pid, until_waiting_or_done

    # a workspace of its own: the contacts lock is the server's, keyed by the workspace, and
    # other tests' shells run in "local" meanwhile
    team = f"T{uuid.uuid4().hex[:12]}"
    await ensure_workspace(db, team)
    people = tmp_path / "people.csv"
    people.write_text("email\nana@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP", "--create-segment",
               "--team", team).returncode == 0  # fmt: skip
    _json(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
          "--team", team, *(["--live"] if command[0] == "target" else []))  # fmt: skip
    if command[0] == "live":  # a draft's target: enrolled when it goes live
        _json(db_env, "campaign", "target", "Spring", "--segment", "VIP", "--team", team)
    async with db.engine.connect() as blocker:
        await blocker.begin()  # as delete_contact does: enrollments wait for it
        await lock_contacts(blocker, team, exclusive=True)
        enrolling = asyncio.create_task(asyncio.to_thread(run, db_env, "campaign", *command,
                                                          "--team", team))  # fmt: skip
        assert await until_waiting_or_done(db, await backend_pid(blocker), enrolling)
        job = int(str(await _scalar(db, "SELECT id FROM job WHERE kind = 'enroll'")))
        cancelled = await cancel_job(db, team, job)  # `referral-bot jobs cancel`
        assert cancelled is not None and cancelled.state == "cancelled"
        await blocker.rollback()
        told = await enrolling
    assert told.returncode == 1 and told.stdout == "", told
    said = ("'VIP' is a target of 'Spring', but the job enrolling its contacts was cancelled "
            "(`referral-bot jobs cancel`) before it enrolled anyone. To enroll them: "
            "referral-bot campaign target Spring --segment VIP" if command[0] == "target" else
            "Campaign 'Spring' is live, but the job enrolling its targets was cancelled "
            "(`referral-bot jobs cancel`) before it enrolled anyone. To enroll them: "
            "referral-bot campaign live Spring")  # fmt: skip
    assert said in told.stderr, told.stderr
    assert await _scalar(db, "SELECT COUNT(*) FROM advocate") == 0
    assert await _scalar(db, "SELECT COUNT(*) FROM job WHERE kind = 'send_invites'") == 0
    again = _json(db_env, "campaign", *command, "--team", team)  # the same command again
    assert again["enrolled"] == 1


SENDER_HOW = 'referral-bot campaign edit Spring --sender "Shop <hello@shop.example>"'
FROM_AN_IP = ("Invites of 'Spring' will come from \"shop.example\" <invites@127.0.0.1>: no "
              "sender is set, so the address is made from the bot's PUBLIC_URL, and 127.0.0.1 "
              "is an IP address: mail from it won't be delivered. Set the shop's own sender: "
              f"{SENDER_HOW}\n")  # fmt: skip


def test_a_campaign_that_emails_without_a_sender_says_where_invites_come_from(
    db_env: dict[str, str]
) -> None:
    """Without --sender, invites come from invites@<PUBLIC_URL's host>: `"shop.example"
    <invites@127.0.0.1>` in the walkthrough, no mail domain at all, and in production the
    bot's domain, not the shop's. `create`, `edit` and `live` said nothing of it; they warn
    now (on stderr: --json's output stays JSON), naming the address and how to set one."""
    env = {**db_env, "PUBLIC_URL": "http://127.0.0.1:3999"}
    created = run(env, "campaign", "create", "Spring", "--store-url", "https://shop.example")
    assert (created.returncode, created.stdout, created.stderr) == (
        0, "Campaign 'Spring' created (draft).\n", FROM_AN_IP)  # fmt: skip
    live = run(env, "campaign", "live", "Spring", "--json")
    assert live.returncode == 0 and json.loads(live.stdout)["campaign"] == "Spring"
    assert live.stderr == FROM_AN_IP
    assert run(env, "campaign", "edit", "Spring", "--offer", "10%").stderr == FROM_AN_IP
    # live already: this run put nothing live, so it says nothing of the sender
    assert run(env, "campaign", "live", "Spring").stderr == ""
    # the bot's own domain: mail goes, but from the bot's domain, not the shop's (paused
    # first: `live` warns on the run that puts the campaign live)
    assert run(env, "campaign", "pause", "Spring").returncode == 0
    told = run({**db_env, "PUBLIC_URL": "https://referrals.example"}, "campaign", "live",
               "Spring").stderr  # fmt: skip
    assert told == ("Invites of 'Spring' will come from \"shop.example\" "
                    "<invites@referrals.example>: no sender is set, so the address is made from "
                    "the bot's PUBLIC_URL, the bot's domain rather than the shop's: mail from "
                    "the shop's own domain is more likely to reach inboxes. Set one: "
                    f"{SENDER_HOW}\n")  # fmt: skip
    assert run(env, "campaign", "pause", "Spring").returncode == 0
    local = run({**db_env, "PUBLIC_URL": ""}, "campaign", "live", "Spring").stderr
    assert ("<invites@localhost>: no sender is set, so the address is made from the bot's "
            "PUBLIC_URL, and localhost is this computer, not a mail domain: mail from it "
            "won't be delivered.") in local, local  # fmt: skip
    # a sender set, or no invite email: nothing to warn of
    given = run(env, "campaign", "edit", "Spring", "--sender", "Shop <hello@shop.example>")
    assert (given.returncode, given.stderr) == (0, "")
    assert run(env, "campaign", "live", "Spring").stderr == ""
    assert run(env, "campaign", "edit", "Spring", "--sender", "").stderr == FROM_AN_IP
    quiet = run(env, "campaign", "create", "Klaviyo", "--store-url", "https://shop.example",
                "--no-invite-email", "--live")  # fmt: skip
    assert (quiet.returncode, quiet.stderr) == (0, "")
    off = run(env, "campaign", "edit", "Spring", "--invite-email", "off")
    assert (off.returncode, off.stderr) == (0, "")


def test_campaign_refusals_name_the_option_and_where_the_names_are(
    db_env: dict[str, str]
) -> None:
    """A segment or campaign not found didn't say where the names are (`segments rename`,
    `delete` and `export` do); "It needs to start with https://" and "Between 0 (at once)
    and 365 days." named no option; "already exists" echoed the name as typed."""
    for name in ("Spring", "Autumn"):
        assert run(db_env, "campaign", "create", name, "--store-url", "https://shop.example",
                   "--no-invite-email").returncode == 0  # fmt: skip

    def refused(*args: str) -> str:
        done = run(db_env, *args)
        assert (done.returncode, done.stdout) == (1, ""), done
        return done.stderr

    no_segment = ("referral-bot: No segment named 'Nope' in this workspace (`referral-bot "
                  "segments` lists them).\n")  # fmt: skip
    assert refused("campaign", "target", "Spring", "--segment", "Nope") == no_segment
    assert refused("campaign", "exclude", "Spring", "--segment", "Nope") == no_segment
    assert refused("campaign", "live", "Winter") == (
        "referral-bot: No campaign named 'Winter' in this workspace (`referral-bot campaign "
        "list` lists them).\n")  # fmt: skip
    assert refused("campaign", "create", "X", "--store-url", "shop.example") == (
        "referral-bot: --store-url: it needs to start with https:// (or http://). Use the "
        "store's web address, e.g. https://shop.example.com\n")  # fmt: skip
    delay = "referral-bot: --invite-delay-days: between 0 (at once) and 365 days.\n"
    assert refused("campaign", "edit", "Spring", "--invite-delay-days", "400") == delay
    assert refused("campaign", "create", "X", "--store-url", "https://shop.example",
                   "--invite-delay-days", "366") == delay  # fmt: skip
    assert refused("campaign", "create", "X", "--store-url", "https://my shop.example",
                   "--sender", "Acme, Inc <hi@acme.example>").splitlines() == [
        "referral-bot: --store-url: a web address has no spaces. Use the store's web "
        "address, e.g. https://shop.example.com",
        "--sender: put a name with a comma, colon or semicolon in double quotes: "
        '"Acme, Inc" <hi@acme.example>',
    ]  # fmt: skip
    taken = "referral-bot: A campaign named 'Spring' already exists.\n"
    assert refused("campaign", "create", "SPRING", "--store-url", "https://shop.example") == taken
    assert refused("campaign", "edit", "Autumn", "--rename", " spring") == taken
    assert [c["name"] for c in _json(db_env, "campaign", "list")] == ["Autumn", "Spring"]


def test_campaign_changes_from_the_shell_are_in_the_audit_log(db_env: dict[str, str],
                                                              tmp_path: Path) -> None:  # fmt: skip
    """Creating, editing, targeting, excluding, going live and pausing (what decides whom
    the bot emails) weren't in the audit log. Each leaves one entry, by the command line."""
    _import_jean(db_env, tmp_path)
    staff = tmp_path / "staff.csv"
    staff.write_text("email\nsam@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(staff), "--segment", "Staff",
               "--create-segment").returncode == 0  # fmt: skip
    steps = [
        (("create", "Spring", "--store-url", "https://shop.example", "--sender",
          "Shop <hello@shop.example>"),
         "created the campaign Spring (store URL https://shop.example; invite email on; sender "
         "Shop <hello@shop.example>)"),
        (("edit", "Spring", "--rename", "Spring Sale", "--invite-email", "off"),
         "edited the campaign Spring Sale (renamed from 'Spring'; invite email off)"),
        (("target", "Spring Sale", "--segment", "VIP"),
         "made a segment a target of the campaign Spring Sale (VIP)"),
        (("exclude", "Spring Sale", "--segment", "staff"),
         "excluded a segment from the campaign Spring Sale (Staff)"),
        (("live", "Spring Sale"), "put the campaign Spring Sale live"),
        (("pause", "Spring Sale"), "paused the campaign Spring Sale"),
        (("pause", "Spring Sale"), None),  # paused already: nothing changed
    ]  # fmt: skip
    for argv, said in steps:
        before = len(_json(db_env, "audit"))
        done = run(db_env, "campaign", *argv)
        assert done.returncode == 0, done.stderr
        entries = _json(db_env, "audit")
        assert len(entries) == before + (said is not None), (argv, entries[:2])
        if said is not None:
            assert (entries[0]["actor"], entries[0]["action"].split(".")[0]) == ("cli",
                                                                                "campaign")
            shown = run(db_env, "audit", "--limit", "1").stdout.splitlines()[0]
            assert shown.endswith(f"  command line  {said}"), shown


def _people(tmp_path: Path, count: int) -> Path:
    path = tmp_path / f"people{count}.csv"
    path.write_text("email\n" + "".join(f"p{i}@example.com\n" for i in range(count)),
                    encoding="utf-8")  # fmt: skip
    return path


def test_a_retry_asked_for_twice_says_the_first_is_queued(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The second `campaign retry-sending` said "No invites … stopped sending: nothing to
    retry." while the first one's run waited in the queue: it says that run is queued (or
    running, on which worker)."""
    _ana_in_vip_and_live_spring(db_env, tmp_path)
    assert run(db_env, "campaign", "target", "Spring", "--segment", "VIP").returncode == 0
    asyncio.run(_execute(db_env, "UPDATE enrollment SET send_error = 'could not connect'"))
    first = _json(db_env, "campaign", "retry-sending", "Spring")
    assert (first["restarted"], len(first["retry_jobs"])) == (1, 1), first
    (job,) = first["retry_jobs"]
    again = run(db_env, "campaign", "retry-sending", "Spring")
    at = asyncio.run(_execute(db_env, f"SELECT created_at FROM job WHERE id = {job}"))
    assert again.stdout == (
        f"A retry of sending the invites of 'Spring' is queued already (job {job}, queued at "
        f"{at:%Y-%m-%d %H:%M} UTC): a worker sends them (`referral-bot jobs` shows it).\n")
    assert _json(db_env, "campaign", "retry-sending", "Spring") == {
        "campaign": "Spring", "restarted": 0, "retry_jobs": [job]}  # fmt: skip
    asyncio.run(_execute(db_env, "UPDATE job SET state = 'running', lease_owner = "
                                 f"'box:41:a1b2c3#now2' WHERE id = {job}"))  # fmt: skip
    running = run(db_env, "campaign", "retry-sending", "Spring")
    assert running.stdout == (
        f"A retry of sending the invites of 'Spring' is under way already (job {job}, run by "
        "worker box:41:a1b2c3): a worker sends them (`referral-bot jobs` shows it).\n")
    asyncio.run(_execute(db_env, f"UPDATE job SET state = 'done' WHERE id = {job}"))
    assert run(db_env, "campaign", "retry-sending", "Spring").stdout == (
        "No invites of 'Spring' stopped sending: nothing to retry.\n")  # fmt: skip


async def _execute(db_env: dict[str, str], sql: str) -> Any:
    """`sql` run on the test's database from a test without its event loop; a SELECT's
    first value (a timestamp as the UTC datetime it stands for)."""
    db = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))
    try:
        async with db.begin() as conn:
            if not sql.startswith("SELECT"):
                await conn.execute(text(sql))
                return None
            return (await conn.execute(text(sql).columns(created_at=UTCDateTime()))).scalar()
    finally:
        await db.dispose()


NOT_ASKED = "there is no terminal to ask on"


def test_enrolling_more_than_a_thousand_at_once_needs_yes_without_a_terminal(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`campaign live` of a campaign targeting All Customers queued an invite to each of
    294,125 contacts without a word. Targeting a segment of a live campaign, or going live,
    that would enroll more than 1,000 contacts into a campaign that emails them asks first;
    with no terminal to ask on and no --yes, nothing changes."""
    assert run(db_env, "import", str(_people(tmp_path, 1001)), "--segment", "Big",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(db_env, "import", str(_people(tmp_path, 1000)), "--segment", "Thousand",
               "--create-segment").returncode == 0  # fmt: skip
    for name in ("Spring", "Summer", "Klaviyo"):
        assert run(db_env, "campaign", "create", name, "--store-url", "https://shop.example",
                   "--sender", "Shop <hello@shop.example>",
                   *(["--no-invite-email"] if name == "Klaviyo" else [])).returncode == 0

    # a draft's target enrolls nobody yet: nothing to ask; its going live does
    assert run(db_env, "campaign", "target", "Spring", "--segment", "All Customers"
               ).returncode == 0  # fmt: skip
    refused = run(db_env, "campaign", "live", "Spring")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        "referral-bot: Nothing changed: going live would enroll 1,001 contacts in 'Spring' at "
        "once, and a worker would email an invite to the 1,001 of them who are subscribed. Add "
        f"--yes to do it without being asked ({NOT_ASKED}).\n")  # fmt: skip
    assert "Add --yes" in json.loads(run(db_env, "campaign", "live", "Spring",
                                         "--json").stdout)["error"]  # fmt: skip
    assert _json(db_env, "campaign", "list")[1]["state"] == "draft"
    assert _json(db_env, "campaign", "live", "Spring", "--yes")["enrolled"] == 1001

    # a live campaign: targeting enrolls at once
    assert _json(db_env, "campaign", "live", "Summer")["enrolled"] == 0  # no target yet
    told = run(db_env, "campaign", "target", "Summer", "--segment", "big")
    assert (told.returncode, told.stdout) == (1, ""), told
    assert told.stderr == (
        "referral-bot: Nothing changed: targeting 'Big' would enroll 1,001 contacts in "
        "'Summer' at once, and a worker would email an invite to the 1,001 of them who are "
        f"subscribed. Add --yes to do it without being asked ({NOT_ASKED}).\n")  # fmt: skip
    summer = next(c for c in _json(db_env, "campaign", "list") if c["name"] == "Summer")
    assert (summer["targets"], summer["advocates"]) == ([], 0)
    # 1,000 at most: not asked
    assert _json(db_env, "campaign", "target", "Summer", "--segment", "Thousand")[
        "enrolled"] == 1000  # fmt: skip
    # Big's other contact only is new now
    assert _json(db_env, "campaign", "target", "Summer", "--segment", "Big")["enrolled"] == 1
    # nobody emailed: not asked
    assert run(db_env, "campaign", "live", "Klaviyo").returncode == 0
    assert _json(db_env, "campaign", "target", "Klaviyo", "--segment", "Big")[
        "enrolled"] == 1001  # fmt: skip


@pytest.mark.parametrize("answer", ["n", "y"])
def test_enrolling_more_than_a_thousand_on_a_terminal_asks_first(
    db_env: dict[str, str], tmp_path: Path, answer: str
) -> None:
    """On a terminal `campaign live` says whom it would enroll and email, then asks; anything
    but y changes nothing."""
    import os
    import pty
    import subprocess

    assert run(db_env, "import", str(_people(tmp_path, 1001)), "--segment", "Big",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(db_env, "campaign", "create", "Spring", "--store-url", "https://shop.example",
               "--sender", "Shop <hello@shop.example>", "--invite-delay-days", "2"
               ).returncode == 0  # fmt: skip
    assert run(db_env, "campaign", "target", "Spring", "--segment", "Big").returncode == 0
    terminal, keyboard = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, "campaign", "live", "Spring"],
                                env=environment(db_env), stdin=keyboard,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)  # fmt: skip
        os.write(terminal, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(terminal)
        os.close(keyboard)
    assert err.startswith(
        "Going live would enroll 1,001 contacts in 'Spring' at once, and a worker would email "
        "an invite to the 1,001 of them who are subscribed, 2 days later.\n"
        "Put 'Spring' live? [y/N] "), err
    [spring] = _json(db_env, "campaign", "list")
    if answer == "n":
        assert (proc.returncode, out) == (1, "")
        assert err.endswith("referral-bot: Nothing changed: 'Spring' stays a draft.\n"), err
        assert (spring["state"], spring["advocates"]) == ("draft", 0)
    else:
        assert proc.returncode == 0, err
        assert out.startswith("Enrolled 1,001 new advocates"), out
        assert (spring["state"], spring["advocates"]) == ("live", 1001)


def test_a_dry_run_says_what_each_live_campaign_would_do_as_the_review_does(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The shell said only "1 would be invited by live campaign 'Spring'": not who it would
    enroll without an email, or had already (`--json` had them, as Slack's review)."""
    _live_targeting_vip(db_env, tmp_path, "Spring", "ana@example.com")
    more = tmp_path / "more.csv"
    more.write_text("email,Accepts Email Marketing\nana@example.com,yes\nbo@example.com,no\n"
                    "cy@example.com,maybe\ndee@example.com,yes\n", encoding="utf-8")  # fmt: skip
    dry = run(db_env, "import", "--dry-run", str(more), "--segment", "VIP")
    assert dry.returncode == 0, dry.stderr
    assert ("           1 would be invited by live campaign 'Spring': 2 enrolled without an "
            "email (not subscribed), 1 already an advocate\n") in dry.stdout, dry.stdout
    summary = json.loads(run(db_env, "import", "--dry-run", str(more), "--segment", "VIP",
                             "--json").stdout)  # fmt: skip
    assert summary["campaigns"] == [{"campaign": "Spring", "will_invite": 1,
                                     "without_email": {"not subscribed": 2},
                                     "already_advocates": 1, "excluded": 0}]  # fmt: skip


def test_a_campaign_name_on_stderr_cant_drive_the_terminal(db_env: dict[str, str],
                                                           tmp_path: Path) -> None:  # fmt: skip
    """stderr quotes names, escaping them: a campaign's name reached it raw in the sender
    warning's suggested command (shlex.quote keeps an escape character), in pause's refusal
    and in what `segments delete` says the campaign would lose."""
    name = "Spr\x1b[2Jing"  # would clear the screen
    created = run(db_env, "campaign", "create", name, "--store-url", "https://shop.example.com")
    assert created.returncode == 0, created.stderr
    paused = run(db_env, "campaign", "pause", name)
    assert paused.returncode == 1
    people = tmp_path / "people.csv"
    people.write_text("email\na@example.com\n", encoding="utf-8")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(db_env, "campaign", "target", name, "--segment", "VIP").returncode == 0
    deleting = run(db_env, "segments", "delete", "VIP")
    assert deleting.returncode == 1 and "Spr\\x1b[2Jing" in deleting.stderr, deleting.stderr
    raw = [said for said in (created.stderr, paused.stderr, deleting.stderr) if "\x1b" in said]
    assert raw == [], raw


def test_campaign_edit_saves_the_store_url_sender_and_offer_trimmed_as_create_does(
        db_env: dict[str, str]) -> None:  # fmt: skip
    """`campaign create` strips what it saves; `campaign edit` saved
    "https://shop.example/spring " with its pasted trailing space, and every referral link
    then led to /spring%20."""
    from bot.web import location, with_ref

    assert run(db_env, "campaign", "create", "Spring", "--store-url",
               "https://shop.example").returncode == 0  # fmt: skip
    edited = run(db_env, "campaign", "edit", "Spring", "--store-url",
                 "https://shop.example/spring ", "--offer", " 10% off ")  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    [row] = _json(db_env, "campaign", "list")
    assert row["store_url"] == "https://shop.example/spring"
    assert str(location(with_ref(row["store_url"], "AB"))) == "https://shop.example/spring?ref=AB"


def test_the_sender_warning_of_a_store_with_an_accented_host_shows_its_name_as_written(
    db_env: dict[str, str]
) -> None:
    """Without --sender, invites come from the store's host name ("bücher.de"
    <invites@…>). The warning wrote that address as an RFC 2047 encoded word: the merchant
    was told their invites would come from =?utf-8?q?b=C3=BCcher=2Ede?= <invites@…>."""
    env = {**db_env, "PUBLIC_URL": "https://referrals.example"}
    created = run(env, "campaign", "create", "Spring", "--store-url", "https://bücher.de/")
    assert created.returncode == 0, created.stderr
    assert "=?utf-8?" not in created.stderr, created.stderr
    assert 'will come from "bücher.de" <invites@referrals.example>' in created.stderr, (
        created.stderr)  # fmt: skip
