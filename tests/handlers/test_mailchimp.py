"""Mailchimp in Slack as a user meets it: `/referral mailchimp`, connecting by API key or by
Mailchimp's sign-in, disconnecting, and audiences in the import modal, imported once.

Everything goes over HTTP: signed requests to the real app, Web API calls to the fake Slack,
and the real (synchronous, threaded) Mailchimp client to the fake Mailchimp, reached through
MAILCHIMP_API_URL set to the fake's base URL.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from aiohttp import ClientSession, CookieJar
from sqlalchemy import text

from bot.app import build_web_app, slack_client, tell_connected
from bot.imports.cancel import cancel_job
from bot.imports.review import load
from bot.jobs import queue
from bot.jobs.queue import claim, list_jobs
from bot.mailchimp import accounts, api
from bot.mailchimp.oauth import CALLBACK_PATH, CONNECT_PATH, read_state
from bot.web import public_routes
from bot.workspaces import ensure_workspace, workspace_name
from handlers import mailchimp as mailchimp_handlers
from handlers.ids import Action, BlockId, Callback
from handlers.messages import review_message
from models import Database
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.slack_api import find_element, serve
from tests.handlers.conftest import LEAD, REP, Harness, running_app
from tests.handlers.test_errors_and_retention import _dms, _purge_due
from tests.handlers.test_home import _open_home
from tests.handlers.test_import_flow import _count, _form, _review

TEAM = "T0001"
KEY = "0123456789abcdef0123456789abcdef-us21"
OTHER_KEY = "fedcba9876543210fedcba9876543210-us21"  # another account, in the same data centre
OTHER_LEAD = "U0ADMIN"  # a workspace admin, so a team lead Slack is asked about
SECRET_KEY = "test-secret"
Build = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
async def mc() -> AsyncIterator[FakeMailchimp]:
    """A Mailchimp account reachable by KEY with two overlapping audiences."""
    async with FakeMailchimp() as fake:
        account = fake.add_account(KEY, name="Northwind Coffee")
        customers = account.add_list("a1b2c3d4e5", "Customers")
        for email, status in (("ana@example.com", "subscribed"), ("bob@example.com", "subscribed"),
                              ("carl@example.com", "unsubscribed"),
                              ("dina@example.com", "cleaned")):  # fmt: skip
            customers.add_member(email, status, first_name=email[:3].title(), language="pt")
        newsletter = account.add_list("f6e5d4c3b2", "Newsletter <!channel>")
        for email, status in (("Ana@Example.com", "subscribed"), ("eve@example.com", "subscribed"),
                              ("bob@example.com", "pending"),
                              ("fred@example.com", "unsubscribed")):  # fmt: skip
            newsletter.add_member(email, status)
        yield fake


@pytest.fixture
def build(db: Database, mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> Build:  # fmt: skip
    """The real app like the `app` fixture's, with Mailchimp settings of the test's choosing.

    Its deadlines are every handler test's (the harness's generous_deadlines): a key's check
    (a ping in a thread, then a write) is answered in the form, as a test asserting the inline
    answer means, however loaded the machine; past serve's 1.5 s the form said "Checking…"
    instead. The slow path's tests set INLINE_WAIT themselves."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)

    @asynccontextmanager
    async def harness(**overrides: Any) -> AsyncIterator[Harness]:
        async with running_app(db, tmp_path, mailchimp_api_url=mc.base_url,
                               mailchimp_login_url=mc.login_url, **overrides) as app:
            yield app

    return harness


# ---- helpers --------------------------------------------------------------------------------


async def _status(app: Harness, user: str = LEAD) -> dict[str, Any]:
    """Type `/referral mailchimp`; returns what the bot answered through the response_url."""
    url = app.slack.new_response_url("C0001", user_id=user)
    reply = await app.requests.slash_command(text="mailchimp", user_id=user, response_url=url)
    assert reply.status == 200 and not reply.body  # acked at once, answered after
    await app.settle()
    answer = app.slack.responses[url][-1]
    assert answer["response_type"] == "ephemeral"
    return answer


async def _click(app: Harness, action: str, status: dict[str, Any],
                 user: str = LEAD) -> list[dict[str, Any]]:  # fmt: skip
    """Click a button of the (ephemeral) status; returns what was posted to that click's URL."""
    found = find_element(status["blocks"], action)
    assert found is not None, f"no {action} in {status['blocks']}"
    url = app.slack.new_response_url("C0001", user_id=user)
    await app.requests.block_action(action, found[1].get("value"), user_id=user,
                                    response_url=url,
                                    message={"blocks": status["blocks"]})  # fmt: skip
    await app.settle()
    return app.slack.responses[url]


def _key(key: str) -> dict[str, Any]:
    return {BlockId.MAILCHIMP_KEY: {Action.MAILCHIMP_KEY: {"type": "plain_text_input",
                                                          "value": key}}}  # fmt: skip


async def _submit_key(app: Harness, key: str) -> tuple[Any, str, list[dict[str, Any]]]:
    """A lead opens the key modal from the status and submits `key`: (the ack's body, the
    view id, what was posted to the Connect click's response_url, then and later)."""
    status = await _status(app)
    answers = await _click(app, Action.MAILCHIMP_CONNECT, status)
    modal = app.slack.open_views(LEAD)[-1]
    assert modal["callback_id"] == Callback.MAILCHIMP_KEY
    reply = await app.requests.view_submission(state_values=_key(key), view_id=modal["id"],
                                               user_id=LEAD)  # fmt: skip
    assert reply.status == 200
    await app.settle()
    return reply.body, modal["id"], answers


async def _stored(app: Harness) -> list[tuple[str, str]]:
    async with app.db.begin() as conn:
        rows = await conn.execute(text("SELECT auth, secret FROM mailchimp_account"))
        return [(str(r[0]), str(r[1])) for r in rows]


async def _connect(app: Harness) -> None:
    await ensure_workspace(app.db, TEAM)
    await accounts.connect_api_key(app.db, TEAM, KEY, user=LEAD, secret_key=SECRET_KEY,
                                   api_url=app.settings.mailchimp_api_url)  # fmt: skip


async def _import_modal(app: Harness, user: str = REP) -> dict[str, Any]:
    """`/referral import`; returns the modal once its Mailchimp part has been filled in."""
    await ensure_workspace(app.db, TEAM)
    reply = await app.requests.slash_command(text="import", user_id=user, channel_id="C0001")
    assert reply.status == 200
    await app.settle()
    opened = app.slack.calls_to("views.open")[-1].args["view"]
    assert "Looking up your Mailchimp lists" in json.dumps(opened)  # open first: 3 s triggers
    assert app.slack.calls_to("views.update"), "the Mailchimp part was never filled in"
    modal = app.slack.open_views(user)[-1]
    assert modal["callback_id"] == Callback.IMPORT
    return modal


def _everything_sent_to_slack(app: Harness) -> str:
    return json.dumps([c.args for c in app.slack.calls]) + json.dumps(app.slack.responses)


# ---- /referral mailchimp and connecting -----------------------------------------------------


async def test_not_connected_offers_connect(build: Build) -> None:
    async with build() as app:
        status = await _status(app)
        rendered = json.dumps(status["blocks"])
        assert "isn't connected" in rendered
        assert find_element(status["blocks"], Action.MAILCHIMP_CONNECT) is not None
        assert find_element(status["blocks"], Action.MAILCHIMP_DISCONNECT) is None
        help_reply = await app.requests.slash_command(text="help", user_id=REP)
        assert "/referral mailchimp" in json.dumps(help_reply.body)
        # it said CSV files only, though workbooks and ZIPs are imported and offered too
        assert "Upload a CSV, an Excel workbook or a ZIP of CSVs" in json.dumps(help_reply.body)
        assert app.slack.block_errors == []


async def test_connect_with_an_api_key(build: Build, mc: FakeMailchimp,
                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    async with build() as app:
        ack, _, answers = await _submit_key(app, f"  {KEY} ")
        assert ack["response_action"] == "update"
        assert "Mailchimp is connected" in json.dumps(ack["view"])
        stored = await _stored(app)
        assert len(stored) == 1 and stored[0][0] == "api_key"
        assert KEY not in stored[0][1] and KEY.split("-")[0] not in stored[0][1]
        pings = mc.requests_to("/3.0/ping")
        assert [(p.auth, p.credential, p.status) for p in pings] == [("basic", KEY, 200)]
        found = await accounts.connection(app.db, TEAM)
        assert found is not None and (found.dc, found.connected_by) == ("us21", LEAD)

        # the status it was opened from now says so, and offers Disconnect
        assert answers[-1].get("replace_original") is True
        assert "Mailchimp is connected" in json.dumps(answers[-1]["blocks"])
        status = await _status(app)
        assert find_element(status["blocks"], Action.MAILCHIMP_DISCONNECT) is not None
        assert f"<@{LEAD}>" in json.dumps(status["blocks"])
        assert "with an API key" in json.dumps(status["blocks"])
        # never shown back, never logged
        assert KEY.split("-")[0] not in _everything_sent_to_slack(app)
        assert KEY.split("-")[0] not in caplog.text
        assert app.slack.block_errors == []


async def test_a_wrong_key_is_refused_inline(build: Build, mc: FakeMailchimp) -> None:
    async with build() as app:
        ack, _, _ = await _submit_key(app, "ffffffffffffffffffffffffffffffff-us21")
        assert ack["response_action"] == "errors"
        assert "didn't accept this key" in ack["errors"][BlockId.MAILCHIMP_KEY]
        ack, _, _ = await _submit_key(app, "not a key")
        assert "doesn't look like a Mailchimp API key" in ack["errors"][BlockId.MAILCHIMP_KEY]
        assert await _stored(app) == []
        assert app.slack.block_errors == []  # errors were keyed by the input's block id


async def test_a_slow_mailchimp_is_answered_after_the_ack(build: Build, mc: FakeMailchimp,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:  # fmt: skip
    """Slack wants the submission answered in 3 s: past INLINE_WAIT the modal says "Checking…"
    and is updated with the outcome."""
    monkeypatch.setattr(mailchimp_handlers, "INLINE_WAIT", 0.05)
    async with build() as app:
        mc.slow("/3.0/ping", 0.5)
        ack, view_id, _ = await _submit_key(app, "ffffffffffffffffffffffffffffffff-us21")
        assert ack["response_action"] == "update" and "Checking" in json.dumps(ack["view"])
        modal = app.slack.views[view_id]  # the form again, with the reason
        assert modal["callback_id"] == Callback.MAILCHIMP_KEY
        assert "didn't accept this key" in json.dumps(modal["blocks"])
        assert await _stored(app) == []

        mc.slow("/3.0/ping", 0.5)
        ack, view_id, answers = await _submit_key(app, KEY)
        assert "Checking" in json.dumps(ack["view"])
        assert "Mailchimp is connected" in json.dumps(app.slack.views[view_id]["blocks"])
        assert len(await _stored(app)) == 1
        assert "Mailchimp is connected" in json.dumps(answers[-1]["blocks"])
        assert app.slack.block_errors == []


async def test_disconnect(build: Build) -> None:
    async with build() as app:
        await _connect(app)
        status = await _status(app)
        answers = await _click(app, Action.MAILCHIMP_DISCONNECT, status)
        assert "disconnected Mailchimp" in json.dumps(answers[-1]["blocks"])
        assert answers[-1].get("replace_original") is True
        assert find_element(answers[-1]["blocks"], Action.MAILCHIMP_CONNECT) is not None
        assert await _stored(app) == []
        again = await _click(app, Action.MAILCHIMP_DISCONNECT, status)  # a stale second click
        assert "disconnected it already" in json.dumps(again[-1]["blocks"])


async def test_a_stale_disconnect_leaves_an_account_connected_since_alone(
        build: Build, mc: FakeMailchimp) -> None:  # fmt: skip
    """LEAD is shown Northwind Coffee with Disconnect; OTHER_LEAD then connects another
    account; LEAD confirms: the other account went (and its audiences from every draft), and
    LEAD was told "<@LEAD> disconnected Mailchimp". The button names the connection it was
    drawn for and only that one goes: LEAD is told what is connected now, and by whom."""
    mc.add_account(OTHER_KEY, name="Other Shop")
    async with build() as app:
        app.slack.users[OTHER_LEAD] = {"is_admin": True}
        await _connect(app)  # account A (Northwind Coffee)
        shown = await _status(app)  # LEAD sees A, with Disconnect
        assert "Disconnect" in json.dumps(shown["blocks"])
        await accounts.connect_api_key(app.db, TEAM, OTHER_KEY, user=OTHER_LEAD,
                                       secret_key=SECRET_KEY,
                                       api_url=app.settings.mailchimp_api_url)  # fmt: skip
        answers = await _click(app, Action.MAILCHIMP_DISCONNECT, shown)
        said = json.dumps(answers[-1]["blocks"])
        kept = await accounts.connection(app.db, TEAM)
        assert kept is not None, f"B, connected after the status was shown, went: {said}"
        assert kept.connected_by == OTHER_LEAD
        assert (f"Mailchimp was connected to the account in data centre `us21` by "
                f"<@{OTHER_LEAD}> since this was shown: nothing was disconnected") in said, said
        assert f"<@{LEAD}> disconnected" not in said
        assert find_element(answers[-1]["blocks"], Action.MAILCHIMP_DISCONNECT) is not None
        assert answers[-1].get("replace_original") is True  # the status as it is now
        async with app.db.begin() as conn:
            assert (await conn.execute(text("SELECT COUNT(*) FROM audit_entry WHERE action = "
                                            "'mailchimp.disconnected'"))).scalar_one() == 0

        # the status now shown is of B's connection: its Disconnect disconnects it
        answers = await _click(app, Action.MAILCHIMP_DISCONNECT, answers[-1])
        said = json.dumps(answers[-1]["blocks"])
        assert (f"<@{LEAD}> disconnected Mailchimp from the account in data centre `us21`, "
                f"connected by <@{OTHER_LEAD}>") in said, said
        assert await accounts.connection(app.db, TEAM) is None
        again = await _click(app, Action.MAILCHIMP_DISCONNECT, shown)  # the first, once more
        said = json.dumps(again[-1]["blocks"])
        assert "Mailchimp isn't connected any more" in said and "nothing was disconnected" in said
        assert find_element(again[-1]["blocks"], Action.MAILCHIMP_CONNECT) is not None
        assert app.slack.block_errors == []


async def test_a_disconnect_drawn_before_buttons_named_their_connection_names_what_went(
        build: Build, mc: FakeMailchimp) -> None:  # fmt: skip
    """A status drawn by the release before (its button's value "disconnect", naming no
    connection) disconnects what is connected now, as `mailchimp disconnect` in the shell
    does, and says which account that was and who had connected it."""
    mc.add_account(OTHER_KEY, name="Other Shop")
    async with build() as app:
        await _connect(app)
        await accounts.connect_api_key(app.db, TEAM, OTHER_KEY, user=OTHER_LEAD,
                                       secret_key=SECRET_KEY,
                                       api_url=app.settings.mailchimp_api_url)  # fmt: skip
        url = app.slack.new_response_url("C0001", user_id=LEAD)
        await app.requests.block_action(Action.MAILCHIMP_DISCONNECT, "disconnect", user_id=LEAD,
                                        response_url=url)  # fmt: skip
        await app.settle()
        said = json.dumps(app.slack.responses[url][-1]["blocks"])
        assert (f"<@{LEAD}> disconnected Mailchimp from the account in data centre `us21`, "
                f"connected by <@{OTHER_LEAD}>") in said, said
        assert await accounts.connection(app.db, TEAM) is None


async def test_a_rep_can_look_but_not_connect_or_disconnect(build: Build,
                                                            mc: FakeMailchimp) -> None:
    async with build() as app:
        status = await _status(app, REP)
        assert "Only team leads can connect or disconnect" in json.dumps(status["blocks"])
        await _click(app, Action.MAILCHIMP_CONNECT, status, REP)
        modal = app.slack.open_views(REP)[-1]  # the key form, replaced by the refusal
        assert modal["callback_id"] != Callback.MAILCHIMP_KEY
        assert "Only team leads can connect Mailchimp" in json.dumps(modal["blocks"])
        forged = await app.requests.view_submission(Callback.MAILCHIMP_KEY, _key(KEY),
                                                    user_id=REP)  # fmt: skip
        assert forged.body["response_action"] == "update"
        assert "Only team leads" in json.dumps(forged.body["view"])
        assert await _stored(app) == []
        assert mc.requests_to("/3.0/ping") == []  # the key wasn't even tried

        await _connect(app)
        status = await _status(app, REP)
        answers = await _click(app, Action.MAILCHIMP_DISCONNECT, status, REP)
        assert "Only team leads can disconnect Mailchimp" in answers[-1]["text"]
        assert len(await _stored(app)) == 1


@pytest.mark.parametrize("oauth", [False, True])
async def test_a_member_of_another_organisation_is_not_told_who_the_leads_are(
    build: Build, mc: FakeMailchimp, oauth: bool
) -> None:
    """C0001 is shared with another organisation (Slack Connect). One of its members types
    `/referral mailchimp` there (not connected: the status shows *Connect*) and clicks
    *Connect*, or submits the key form: each refusal named this workspace's team leads
    ("Ask <@U0002>"), which every other lead-only button and `/referral leads` refuse them."""
    outsider, other_org = "U0EXT", "T0EXT"
    settings = {"mailchimp_client_id": "cid-123", "mailchimp_client_secret": "cs"} if oauth else {}
    async with build(**settings) as app:
        app.slack.users[outsider] = {"team_id": other_org}
        status = await _status(app, outsider)
        await _click(app, Action.MAILCHIMP_CONNECT, status, outsider)
        modal = app.slack.open_views(outsider)[-1]
        forged = await app.requests.view_submission(Callback.MAILCHIMP_KEY, _key(KEY),
                                                    user_id=outsider)  # fmt: skip
        shown = json.dumps([status["blocks"], modal["blocks"], forged.body])
        assert f"<@{LEAD}>" not in shown, shown
        assert "Only members of this workspace" in json.dumps(modal["blocks"])
        assert "Only members of this workspace" in json.dumps(forged.body)
        assert await _stored(app) == []


async def test_the_key_form_asks_slack_once_before_its_answer(build: Build) -> None:
    """A member who isn't a lead submits the key form: the refusal is the ack (due in 3 s),
    and one question to Slack (role_in: one users.info) tells lead, member or outsider;
    is_lead asked it, then not_a_lead asked the same again."""
    async with build() as app:
        before = len(app.slack.calls_to("users.info"))
        forged = await app.requests.view_submission(Callback.MAILCHIMP_KEY, _key(KEY),
                                                    user_id=REP)  # fmt: skip
        assert "Only team leads" in json.dumps(forged.body["view"])
        assert len(app.slack.calls_to("users.info")) - before == 1


async def test_without_secret_key_it_says_to_set_it(build: Build) -> None:
    async with build(secret_key="") as app:
        status = await _status(app)
        assert "Set `SECRET_KEY`" in json.dumps(status["blocks"])
        assert find_element(status["blocks"], Action.MAILCHIMP_CONNECT) is None


async def test_credentials_saved_under_another_secret_key_are_said_so_and_logged(
    build: Build, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """SECRET_KEY changed after Mailchimp was connected: the form says so (not that Mailchimp
    refused us: it wasn't asked) and the log tells the operator."""
    async with build() as app:
        await _connect(app)
    async with build(secret_key="another-secret") as app:
        modal = await _import_modal(app)
        shown = json.dumps(modal["blocks"])
        assert "`SECRET_KEY` changed" in shown and "no longer accepts" not in shown
        assert any("don't decrypt with this SECRET_KEY" in r.getMessage() and TEAM in
                   r.getMessage() for r in caplog.records)  # fmt: skip
        pings = len(mc.requests_to("/3.0/ping"))
        status = await _status(app)  # says so too, and offers to connect again
        shown = json.dumps(status["blocks"])
        assert "saved credentials can't be read" in shown and "refuses" not in shown
        assert find_element(status["blocks"], Action.MAILCHIMP_CONNECT) is not None
        assert len(mc.requests_to("/3.0/ping")) == pings  # Mailchimp wasn't asked


async def test_a_revoked_key_is_said_on_the_status_and_reconnecting_replaces_it(
    build: Build, mc: FakeMailchimp
) -> None:
    """The import form says "reconnect Mailchimp with `/referral mailchimp`", which said
    "Mailchimp is connected" with only *Disconnect*: no way to reconnect, no word that
    Mailchimp refuses the saved key. The status now asks Mailchimp (one ping) and says so,
    with *Reconnect* beside *Disconnect*; the new key replaces the refused one."""
    new_key = "fedcba9876543210fedcba9876543210-us21"
    mc.account(KEY).api_keys.append(new_key)  # the same account's next key
    async with build() as app:
        await _connect(app)
        mc.revoke(KEY)
        modal = await _import_modal(app)
        assert "reconnect Mailchimp with `/referral mailchimp`" in json.dumps(modal["blocks"])
        status = await _status(app)  # the lead does as told
        shown = json.dumps(status["blocks"])
        assert "Mailchimp refuses the saved credentials" in shown, shown
        assert "*Mailchimp is connected*" not in shown
        assert find_element(status["blocks"], Action.MAILCHIMP_CONNECT) is not None
        assert find_element(status["blocks"], Action.MAILCHIMP_DISCONNECT) is not None
        rep_status = await _status(app, REP)  # others read it too, and who may reconnect
        assert "Mailchimp refuses the saved credentials" in json.dumps(rep_status["blocks"])
        assert "Only team leads can connect or disconnect" in json.dumps(rep_status["blocks"])
        refused = await _stored(app)

        ack, _, answers = await _submit_key(app, new_key)  # *Reconnect with an API key*
        assert ack["response_action"] == "update"
        assert "Mailchimp is connected" in json.dumps(answers[-1]["blocks"])
        stored = await _stored(app)
        assert len(stored) == 1 and stored != refused
        status = await _status(app)
        assert "refuses" not in json.dumps(status["blocks"])
        assert find_element(status["blocks"], Action.MAILCHIMP_CONNECT) is None
        modal = await _import_modal(app)
        assert find_element(modal["blocks"], Action.MAILCHIMP_LISTS) is not None
        assert app.slack.block_errors == []


async def test_home_says_mailchimp_refuses_the_credentials_once_it_was_seen(
    build: Build, mc: FakeMailchimp
) -> None:
    """A revoked key: `/referral mailchimp` said so and offered *Reconnect*, but App Home went
    on saying "Connected" (it doesn't ask Mailchimp each time it is drawn). What a check saw
    is kept: Home says it, with *Reconnect Mailchimp* for leads; reconnecting clears it."""
    from tests.handlers.test_home import _home_opened

    async def home(user: str) -> str:
        assert (await app.requests.event(_home_opened(user))).status == 200
        await app.settle()
        return json.dumps(app.slack.home_views[user]["blocks"])

    new_key = "fedcba9876543210fedcba9876543210-us21"
    mc.account(KEY).api_keys.append(new_key)
    async with build() as app:
        await _connect(app)
        assert "*Connected*" in await home(LEAD)
        mc.revoke(KEY)
        await _status(app)  # Mailchimp asked: it refuses, and Home is republished
        assert "Mailchimp refuses" in json.dumps(app.slack.home_views[LEAD]["blocks"])
        shown = await home(LEAD)
        assert "Mailchimp refuses the saved credentials" in shown and "*Connected*" not in shown
        assert find_element(app.slack.home_views[LEAD]["blocks"],
                            Action.MAILCHIMP_CONNECT) is not None  # fmt: skip
        rep = await home(REP)
        assert "A team lead can reconnect it" in rep
        assert find_element(app.slack.home_views[REP]["blocks"], Action.MAILCHIMP_CONNECT) is None

        await _submit_key(app, new_key)  # reconnected
        shown = await home(LEAD)
        assert "*Connected*" in shown and "refuses" not in shown
        assert app.slack.block_errors == []


@pytest.mark.parametrize("seen_by", ["the form's lists", "the form's submission",
                                     "the audience's import"])  # fmt: skip
async def test_a_refusal_the_import_sees_reaches_home(
    build: Build, mc: FakeMailchimp, seen_by: str
) -> None:
    """The import form's list of audiences, or an audience's import, found the key revoked
    and recorded it, but the Home tabs open went on saying "Connected" until the next change
    or open; the form's submission, checking the chosen lists, recorded nothing. Each records
    it now and queues the refresh of the open tabs, as a change from the shell does."""
    from tests.handlers.test_home_from_the_shell import _refresh_jobs, _run_due_jobs

    async with build() as app:
        await _connect(app)
        await _open_home(app, LEAD)
        assert "*Connected*" in json.dumps(app.slack.home_views[LEAD]["blocks"])
        if seen_by == "the form's lists":
            mc.revoke(KEY)
            modal = await _import_modal(app)
            assert find_element(modal["blocks"], Action.MAILCHIMP_LISTS) is None
        else:
            modal = await _import_modal(app)
            if seen_by == "the form's submission":
                mc.revoke(KEY)
            chosen = _form(segment="MC") | _chosen("a1b2c3d4e5")
            reply = await app.requests.view_submission(state_values=chosen, view_id=modal["id"],
                                                       user_id=REP)  # fmt: skip
            if seen_by == "the form's submission":
                assert reply.status == 200
                await app.settle()  # checked after the ack: told by direct message
                assert "Nothing was imported: Mailchimp refused" in _dms(app, REP)[-1]
            else:
                await app.later.drain()  # the audience's job is queued, not run
                mc.revoke(KEY)
                await app.settle()
                shown = json.dumps((await _review(app))["blocks"])
                assert "Mailchimp refused our credentials" in shown
        assert await _refresh_jobs(app.db) == [(TEAM, "queued")]
        await _run_due_jobs(app)
        shown = json.dumps(app.slack.home_views[LEAD]["blocks"])
        assert "Mailchimp refuses the saved credentials" in shown and "*Connected*" not in shown
        assert app.slack.block_errors == []


async def test_opening_home_asks_mailchimp_now_and_then(build: Build, mc: FakeMailchimp) -> None:
    """A key revoked since anyone last asked Mailchimp: Home said "Connected" to whoever
    opened it, until someone ran /referral mailchimp. Opening Home asks Mailchimp (beside the
    publish, at most every MAILCHIMP_LOOK_SECONDS a workspace) and republishes what changed."""
    async with build() as app:
        await _connect(app)
        mc.revoke(KEY)
        pings = len(mc.requests_to("/3.0/ping"))  # the connection's own
        await _open_home(app, REP)
        shown = json.dumps(app.slack.home_views[REP]["blocks"])
        assert "Mailchimp refuses the saved credentials" in shown and "*Connected*" not in shown
        assert "A team lead can reconnect it" in shown
        assert len(mc.requests_to("/3.0/ping")) == pings + 1

        await _open_home(app, LEAD)  # a moment later: Mailchimp isn't asked again
        assert len(mc.requests_to("/3.0/ping")) == pings + 1
        assert find_element(app.slack.home_views[LEAD]["blocks"],
                            Action.MAILCHIMP_CONNECT) is not None  # fmt: skip
        assert app.slack.block_errors == []


async def test_a_revoked_sign_in_offers_to_sign_in_again(build: Build, mc: FakeMailchimp) -> None:
    """With an OAuth app, *Reconnect* is Mailchimp's sign-in, made for the lead who asked."""
    mc.add_account(token="oauth-token", dc="us7", name="Bistro")
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        await ensure_workspace(app.db, TEAM)
        await accounts.save(app.db, TEAM, api.Credentials(mc.base_url, "oauth", "oauth-token"),
                            dc="us7", account_name="Bistro", login_email="", user=LEAD,
                            secret_key=SECRET_KEY)  # fmt: skip
        assert find_element((await _status(app))["blocks"], Action.MAILCHIMP_SIGN_IN) is None
        mc.revoke("oauth-token")
        status = await _status(app)
        assert "Mailchimp refuses the saved credentials" in json.dumps(status["blocks"])
        found = find_element(status["blocks"], Action.MAILCHIMP_SIGN_IN)
        assert found is not None and found[1]["text"]["text"] == "Reconnect Mailchimp"
        state = read_state(SECRET_KEY, parse_qs(urlsplit(found[1]["url"]).query)["state"][0])
        assert (state.team_id, state.user_id) == (TEAM, LEAD)
        assert find_element(status["blocks"], Action.MAILCHIMP_DISCONNECT) is not None
        rep_status = await _status(app, REP)  # no sign-in link is made for someone else
        assert find_element(rep_status["blocks"], Action.MAILCHIMP_SIGN_IN) is None
        assert app.slack.block_errors == []


async def test_a_mailchimp_that_doesnt_answer_the_check_isnt_called_a_refusal(
    build: Build, mc: FakeMailchimp
) -> None:
    async with build() as app:
        await _connect(app)
        mc.fail_next("/3.0/ping", 503, mc.problem(503, "Service Unavailable"))
        status = await _status(app)
        shown = json.dumps(status["blocks"])
        assert "Mailchimp is connected" in shown and "couldn't be checked" in shown
        assert "Mailchimp failed to answer a ping: it answered 503 (Service Unavailable)" in shown
        assert "refuses" not in shown
        assert find_element(status["blocks"], Action.MAILCHIMP_CONNECT) is None
        assert [p.status for p in mc.requests_to("/3.0/ping")][-1] == 503  # asked once


async def test_oauth_mode_shows_a_sign_in_button(build: Build, mc: FakeMailchimp) -> None:
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        app.slack.users[LEAD] = {"profile": {"real_name": "Dana Lead", "display_name": "dana"}}
        status = await _status(app)
        found = find_element(status["blocks"], Action.MAILCHIMP_SIGN_IN)
        assert found is not None
        url = urlsplit(found[1]["url"])  # the bot's start page, never Mailchimp's directly
        assert (url.scheme, url.netloc, url.path) == ("https", "bot.example", CONNECT_PATH)
        state = read_state(SECRET_KEY, parse_qs(url.query)["state"][0])
        # named as Slack shows them, by their display name (as the import form names people)
        assert (state.team_id, state.user_id, state.person) == (TEAM, LEAD, "dana")
        assert await workspace_name(app.db, TEAM) == "Acme"  # auth.test's, for the start page
        clicked = await app.requests.block_action(Action.MAILCHIMP_SIGN_IN, None, user_id=LEAD,
                                                  message={"blocks": status["blocks"]})
        assert clicked.status == 200  # a URL button's click is acknowledged, nothing more

        rep_status = await _status(app, REP)  # no sign-in link is made for someone else
        assert find_element(rep_status["blocks"], Action.MAILCHIMP_SIGN_IN) is None
        assert find_element(rep_status["blocks"], Action.MAILCHIMP_CONNECT) is not None
        assert app.slack.block_errors == []


async def test_the_start_page_names_a_person_without_a_display_name_by_their_full_name(
    build: Build, mc: FakeMailchimp
) -> None:
    """Display name, else full name, else username: the import form's order too."""
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        app.slack.users[LEAD] = {"profile": {"real_name": "Dana Lead", "display_name": ""}}
        found = find_element((await _status(app))["blocks"], Action.MAILCHIMP_SIGN_IN)
        assert found is not None
        state = read_state(SECRET_KEY, parse_qs(urlsplit(found[1]["url"]).query)["state"][0])
        assert state.person == "Dana Lead"


async def test_oauth_sign_in_button_survives_slack_not_answering_for_names(
    build: Build, mc: FakeMailchimp
) -> None:
    """The start page's names are nice to have: auth.test and users.info dropped (a network
    error in the client, not a Slack error answer) still show Connect, naming the lead by id."""
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        await _status(app)  # bolt's own auth.test (its authorization, kept) comes first
        app.slack.outage("auth.test", times=10)
        app.slack.outage("users.info", times=10)
        status = await _status(app)
        found = find_element(status["blocks"], Action.MAILCHIMP_SIGN_IN)
        assert found is not None, status
        state = read_state(SECRET_KEY, parse_qs(urlsplit(found[1]["url"]).query)["state"][0])
        assert (state.user_id, state.person) == (LEAD, LEAD)


@asynccontextmanager
async def _browsing_serves_pages(app: Harness) -> AsyncIterator[tuple[str, ClientSession]]:
    """serve's public pages (the sign-in's start and callback) on loopback, and a browser
    keeping their cookies: (the site's base URL, the browser)."""
    routes = public_routes(app.db, app.settings,
                           on_connected=tell_connected(slack_client(app.settings)))
    async with (serve(build_web_app(None, routes=routes)) as site,
                ClientSession(cookie_jar=CookieJar(unsafe=True,
                                                   treat_as_secure_origin=site)) as browser):
        yield site, browser


async def test_oauth_sign_in_from_slack_to_the_dm(build: Build, mc: FakeMailchimp) -> None:
    """Connect in Slack -> the start page -> Continue -> Mailchimp -> the callback, in one
    browser; the lead is told in a DM."""
    mc.add_account(token="oauth-token", dc="us7", name="Northwind Coffee")
    mc.issue_code("code-1", "oauth-token", "oauth-token")
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        found = find_element((await _status(app))["blocks"], Action.MAILCHIMP_SIGN_IN)
        assert found is not None
        link = urlsplit(found[1]["url"])
        async with _browsing_serves_pages(app) as (site, browser):
            async with browser.get(f"{site}{link.path}?{link.query}") as response:
                page = await response.text()
                assert response.status == 200 and "workspace “Acme”" in page
                action = re.search(r'action="([^"]+)"', page)
                assert action is not None
            async with browser.post(urljoin(str(response.url), html.unescape(action[1]))
                                    ) as response:  # fmt: skip
                assert response.status == 200 and [r.status for r in response.history] == [303]
            query = {"code": "code-1", "state": mc.authorize_requests[-1]["state"]}
            async with browser.get(f"{site}{CALLBACK_PATH}", params=query) as response:
                assert response.status == 200, await response.text()
        dm = app.slack.messages_in(app.slack.dm_channels[LEAD])
        assert dm[-1]["text"] == (":white_check_mark: Mailchimp is connected: *Northwind "
                                  "Coffee*. Its audiences can now be added to imports.")
        connected = await accounts.connection(app.db, TEAM)
        assert connected is not None and connected.connected_by == LEAD


async def test_connect_on_home_is_the_sign_in_when_an_oauth_app_is_configured(
    build: Build, mc: FakeMailchimp
) -> None:
    """Home's *Connect Mailchimp* always opened the API key form, though `/referral
    mailchimp` offers Mailchimp's sign-in (the key form is for workspaces without an OAuth
    app): it opens the same sign-in, a link made for the lead who clicked."""
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        home = await _open_home(app, LEAD)
        assert find_element(home["blocks"], Action.MAILCHIMP_CONNECT) is not None
        await app.requests.block_action(Action.MAILCHIMP_CONNECT, "connect", user_id=LEAD,
                                        view={"type": "home", "id": "VHOME"})  # fmt: skip
        await app.settle()
        opened = app.slack.open_views(LEAD)[-1]
        assert opened["callback_id"] != Callback.MAILCHIMP_KEY
        assert find_element(opened["blocks"], Action.MAILCHIMP_KEY) is None
        found = find_element(opened["blocks"], Action.MAILCHIMP_SIGN_IN)
        assert found is not None, opened["blocks"]
        url = urlsplit(found[1]["url"])
        assert (url.scheme, url.netloc, url.path) == ("https", "bot.example", CONNECT_PATH)
        state = read_state(SECRET_KEY, parse_qs(url.query)["state"][0])
        assert (state.team_id, state.user_id) == (TEAM, LEAD)

        # a click by someone else (a stale Home, a forged request) makes no link for them
        await app.requests.block_action(Action.MAILCHIMP_CONNECT, "connect", user_id=REP,
                                        view={"type": "home", "id": "VHOME2"})  # fmt: skip
        await app.settle()
        refused = app.slack.open_views(REP)[-1]
        assert "Only team leads can connect Mailchimp" in json.dumps(refused["blocks"])
        assert find_element(refused["blocks"], Action.MAILCHIMP_SIGN_IN) is None
        assert app.slack.block_errors == []


async def test_the_sign_in_on_home_asks_slack_who_clicked_once(
    build: Build, mc: FakeMailchimp
) -> None:
    """Connect on Home with an OAuth app asked `users.info` whether the person was a lead
    twice (may they connect? then again for the link), before the once for their name."""
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        app.slack.users["U0ADMIN"] = {"is_admin": True}  # a lead Slack must be asked about
        await _open_home(app, "U0ADMIN")
        before = len(app.slack.calls_to("users.info"))
        await app.requests.block_action(Action.MAILCHIMP_CONNECT, "connect", user_id="U0ADMIN",
                                        view={"type": "home", "id": "VHOME"})  # fmt: skip
        await app.settle()
        assert find_element(app.slack.open_views("U0ADMIN")[-1]["blocks"],
                            Action.MAILCHIMP_SIGN_IN) is not None  # fmt: skip
        assert len(app.slack.calls_to("users.info")) - before == 2  # a lead? their name


async def test_the_status_asks_slack_who_typed_it_once(build: Build, mc: FakeMailchimp) -> None:
    """`/referral mailchimp` of a connected workspace asked `users.info` twice: a member of
    this workspace? then a lead?"""
    async with build() as app:
        await _connect(app)
        app.slack.users["U0ADMIN"] = {"is_admin": True}
        before = len(app.slack.calls_to("users.info"))
        status = await _status(app, "U0ADMIN")
        assert find_element(status["blocks"], Action.MAILCHIMP_DISCONNECT) is not None  # a lead's
        assert len(app.slack.calls_to("users.info")) - before == 1


# ---- audiences in the import modal ----------------------------------------------------------


async def test_import_modal_lists_the_audiences(build: Build) -> None:
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        found = find_element(modal["blocks"], Action.MAILCHIMP_LISTS)
        assert found is not None and found[0] == BlockId.MAILCHIMP_LISTS
        options = [(o["value"], o["text"]["text"]) for o in found[1]["options"]]
        assert options == [("a1b2c3d4e5", "Customers (2 subscribed)"),
                           ("f6e5d4c3b2", "Newsletter <!channel> (2 subscribed)")]  # fmt: skip
        assert app.slack.block_errors == []


async def test_every_audience_of_an_account_with_many_can_be_chosen(
    build: Build, mc: FakeMailchimp
) -> None:
    """An agency's account with 130 audiences: the modal offered the first 100 in
    Mailchimp's order (the oldest) and said so; the 30 newest couldn't be imported from Slack
    at all. Past 100 they come by name, in option groups of 100 (Slack's limits)."""
    account = mc.account(KEY)
    for i in range(3, 131):
        account.add_list(f"aud{i:03d}", f"Store {i:03d}")
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        found = find_element(modal["blocks"], Action.MAILCHIMP_LISTS)
        assert found is not None and "options" not in found[1]
        groups = found[1]["option_groups"]
        assert [(g["label"]["text"], len(g["options"])) for g in groups] == [
            ("Customers – Store 100", 100), ("Store 101 – Store 130", 30)]
        offered = [o["value"] for g in groups for o in g["options"]]
        assert len(set(offered)) == 130 and offered[-1] == "aud130"
        assert "Showing the first" not in json.dumps(modal["blocks"])
        assert app.slack.block_errors == []


async def test_an_account_with_thousands_of_audiences_still_gets_the_import_form(
    build: Build, mc: FakeMailchimp
) -> None:
    """An agency's account with 2,500 audiences: the form offered them in option groups (up
    to 10,000), but every option is some 130 bytes of the view's JSON and Slack refuses a
    view over 250 KB (view_too_large): the person got no import form at all, not even for a
    CSV. As many as fit are offered, and the form says where the rest are."""
    account = mc.account(KEY)
    for i in range(3, 2_501):
        account.add_list(f"aud{i:05d}", f"Store {i:04d} newsletter subscribers")
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        assert app.slack.block_errors == []
        assert modal["callback_id"] == Callback.IMPORT
        found = find_element(modal["blocks"], Action.MAILCHIMP_LISTS)
        assert found is not None
        offered = [o["value"] for g in found[1]["option_groups"] for o in g["options"]]
        rendered = json.dumps(modal["blocks"])
        assert f"Showing the first {len(offered):,} of 2,500 audiences by name" in rendered
        assert "referral-bot import --mailchimp-list" in rendered
        assert len(offered) > 1_000


async def test_import_modal_says_how_to_connect(build: Build) -> None:
    async with build() as app:
        modal = await _import_modal(app)
        rendered = json.dumps(modal["blocks"])
        assert "connects Mailchimp with `/referral mailchimp`" in rendered
        assert find_element(modal["blocks"], Action.MAILCHIMP_LISTS) is None


async def test_a_revoked_key_says_reconnect(build: Build, mc: FakeMailchimp) -> None:
    async with build() as app:
        await _connect(app)
        mc.revoke(KEY)
        modal = await _import_modal(app)
        assert "reconnect Mailchimp" in json.dumps(modal["blocks"])
        assert find_element(modal["blocks"], Action.MAILCHIMP_LISTS) is None
        assert modal["callback_id"] == Callback.IMPORT  # the rest of the form still works
        # and App Home says so from then on (it doesn't ask Mailchimp each time it is drawn)
        refused = await accounts.connection(app.db, TEAM)
        assert refused is not None and refused.refused_at is not None


def _chosen(*ids: str) -> dict[str, Any]:
    options = [{"text": {"type": "plain_text", "text": i}, "value": i} for i in ids]
    return {BlockId.MAILCHIMP_LISTS: {Action.MAILCHIMP_LISTS: {
        "type": "multi_static_select", "selected_options": options}}}  # fmt: skip


async def test_two_overlapping_audiences_import_subscribed_members_once(build: Build) -> None:
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        values = _form(segment="From Mailchimp") | _chosen("a1b2c3d4e5", "f6e5d4c3b2")
        reply = await app.requests.view_submission(state_values=values, view_id=modal["id"],
                                                   user_id=REP)  # fmt: skip
        assert reply.status == 200 and not reply.body  # lists alone are a valid form
        await app.settle()
        message = await _review(app)
        rendered = json.dumps(message["blocks"])
        assert "Customers" in rendered and "Newsletter &lt;!channel&gt;" in rendered
        assert "<!channel>" not in rendered
        assert "skipped: 1 cleaned, 1 unsubscribed" in rendered
        assert "skipped: 1 pending, 1 unsubscribed" in rendered
        assert "3 to import" in rendered and "1 duplicate " in rendered

        batch_id = find_element(message["blocks"], Action.APPROVE)[1]["value"]  # type: ignore[index]
        await app.requests.block_action(Action.APPROVE, batch_id, user_id=LEAD,
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
        assert await _count(app, "SELECT COUNT(*) FROM contact") == 3
        async with app.db.begin() as conn:
            emails = sorted(r[0] for r in await conn.execute(text("SELECT email FROM contact")))
        assert emails == ["ana@example.com", "bob@example.com", "eve@example.com"]
        thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
        assert any("Imported into *From Mailchimp*" in t and "3 new contacts" in t for t in thread)
        assert app.slack.block_errors == []


async def test_an_audience_the_draft_has_already_is_not_added_again(build: Build) -> None:
    """*Add more* on a review that reads Customers, choosing Customers again (and the
    Newsletter): Customers was read twice and its members counted twice."""
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        await app.requests.view_submission(
            state_values=_form(segment="From Mailchimp") | _chosen("a1b2c3d4e5"),
            view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.settle()
        message = await _review(app)
        batch = find_element(message["blocks"], Action.ADD_MORE)[1]["value"]  # type: ignore[index]
        await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP,
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
        modal = app.slack.open_views(REP)[-1]
        await app.requests.view_submission(
            state_values=_chosen("a1b2c3d4e5", "f6e5d4c3b2"), view_id=modal["id"], user_id=REP)
        await app.settle()
        refs = await _count(app, "SELECT COUNT(*) FROM import_source WHERE ref = 'a1b2c3d4e5'")
        assert (refs, await _count(app, "SELECT COUNT(*) FROM import_source")) == (1, 2)
        rendered = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
        assert "3 to import" in rendered and "1 duplicate " in rendered
        assert "skipped: 1 cleaned, 1 unsubscribed" in rendered
        # Customers alone again: refused on the form, as a file added again is (the form
        # closed, and nothing was said anywhere)
        await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP,
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
        reply = await app.requests.view_submission(
            state_values=_chosen("a1b2c3d4e5"), view_id=app.slack.open_views(REP)[-1]["id"],
            user_id=REP)  # fmt: skip
        assert (reply.body or {}).get("response_action") == "errors", reply.body
        assert reply.body["errors"][BlockId.MAILCHIMP_LISTS] == (
            "That list is already in this import: choose another, or close this form.")


async def test_lists_chosen_after_a_disconnect_are_refused_inline(build: Build) -> None:
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        await accounts.disconnect(app.db, TEAM)
        values = _form(segment="From Mailchimp") | _chosen("a1b2c3d4e5")
        reply = await app.requests.view_submission(state_values=values, view_id=modal["id"],
                                                   user_id=REP)  # fmt: skip
        assert "disconnected" in reply.body["errors"][BlockId.MAILCHIMP_LISTS]
        assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


async def test_an_audience_mailchimp_refuses_to_read_says_so_at_once(
    build: Build, mc: FakeMailchimp
) -> None:
    """A 400 while reading the members was retried like a busy Mailchimp: the source said
    "Reading…" through every attempt of the job (minutes of backoff) before the refusal."""
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        mc.fail_next("/3.0/lists/a1b2c3d4e5/members", 400,
                     {"title": "Invalid Resource", "detail": "The list is being rebuilt."})
        await app.requests.view_submission(state_values=_form(segment="MC") | _chosen(
            "a1b2c3d4e5"), view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.settle()
        rendered = json.dumps((await _review(app))["blocks"])
        assert "Mailchimp refused to" in rendered and "The list is being rebuilt." in rendered
        job = next(j for j in await list_jobs(app.db, TEAM) if j.kind == "mailchimp_list")
        assert (job.state, job.attempts) == ("done", 1)
        assert app.slack.block_errors == []


async def test_an_audience_that_kills_every_worker_reading_it_shows_as_unread(
    build: Build,
) -> None:
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        await app.requests.view_submission(state_values=_form(segment="MC") | _chosen(
            "a1b2c3d4e5"), view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.later.drain()
        job = next(j for j in await list_jobs(app.db, TEAM) if j.kind == "mailchimp_list")
        for attempt in range(job.max_attempts):  # each worker dies; its lease runs out
            assert await claim(app.db, f"killed-{attempt}", lease_seconds=-1) is not None
        await app.settle()
        rendered = json.dumps((await _review(app))["blocks"])
        assert "Could not read the audience: gave up: the worker running it stopped" in rendered
        assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0
        assert (await queue.get_job(app.db, TEAM, job.id or 0)).state == "failed"  # type: ignore[union-attr]


async def test_cancelling_the_job_reading_an_audience_marks_it_cancelled(build: Build) -> None:
    """`referral-bot jobs cancel ID` on the job reading an audience: the job was cancelled
    but its audience said "Reading…" for good, and Approve answered "Some files are still
    being read" (a file's reading job marked its file failed; an audience's did not)."""
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        await app.requests.view_submission(state_values=_form(segment="MC") | _chosen(
            "a1b2c3d4e5"), view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.later.drain()  # the audience's job is queued, not run
        job = next(j for j in await list_jobs(app.db, TEAM) if j.kind == "mailchimp_list")
        cancelled = await cancel_job(app.db, TEAM, job.id or 0)
        assert cancelled is not None and cancelled.state == "cancelled"
        await app.settle()
        message = await _review(app)
        rendered = json.dumps(message["blocks"])
        assert "Reading this audience was cancelled." in rendered and "Reading…" not in rendered
        batch_id = find_element(message["blocks"], Action.APPROVE)[1]["value"]  # type: ignore[index]
        await app.requests.block_action(Action.APPROVE, batch_id, user_id=LEAD,
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
        refused = app.slack.ephemerals[-1]["text"]
        assert "nothing valid to import" in refused and "still being read" not in refused
        assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0


async def _customers_in_review(app: Harness) -> dict[str, Any]:
    """Mailchimp connected, and its Customers audience read into a draft of segment MC: the
    review message."""
    await _connect(app)
    modal = await _import_modal(app)
    await app.requests.view_submission(state_values=_form(segment="MC") | _chosen(
        "a1b2c3d4e5"), view_id=modal["id"], user_id=REP)  # fmt: skip
    await app.settle()
    return await _review(app)


async def test_members_skipped_by_status_are_still_counted_so_after_approval(
    build: Build,
) -> None:
    """The review said "skipped: 1 cleaned, 1 unsubscribed"; approving redrew it as
    "2 rejected". Once the import's staged rows are purged (its retention), the line says
    how many were skipped, not why: that went with the rows."""
    async with build() as app:
        message = await _customers_in_review(app)
        assert "skipped: 1 cleaned, 1 unsubscribed" in json.dumps(message["blocks"])
        batch_id = find_element(message["blocks"], Action.APPROVE)[1]["value"]  # type: ignore[index]
        await app.requests.block_action(Action.APPROVE, batch_id, user_id=LEAD,
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
        after = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
        assert "imported (approved by" in after
        assert "skipped: 1 cleaned, 1 unsubscribed" in after  # not "2 rejected"

        await _purge_due(app, finished_days_ago=31)
        assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0
        _, blocks = review_message(await load(app.db, TEAM, int(batch_id)))
        purged = json.dumps([b.to_dict() for b in blocks])
        assert "skipped: 2 (not subscribed, or without a valid address)" in purged
        assert "cleaned" not in purged and "2 valid" in purged


async def test_subscribed_members_without_a_valid_address_are_counted_as_invalid(
    build: Build, mc: FakeMailchimp
) -> None:
    """A subscribed member whose address fails validation was listed as if it were a
    status, with the validator's sentence: "skipped: 1 Invalid email: The part after the
    @-sign is not valid. It should have a period., 1 archived"."""
    odd = mc.account(KEY).add_list("0dd0dd0dd0", "Odd")
    odd.add_member("ok@example.com", "subscribed", first_name="Ok")
    odd.add_member("bad@localhost", "subscribed", first_name="Bad")
    odd.add_member("worse@localhost", "subscribed", first_name="Worse")
    odd.add_member("arch@example.com", "archived", first_name="Arch")
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        await app.requests.view_submission(state_values=_form(segment="MC") | _chosen(
            "0dd0dd0dd0"), view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.settle()
        rendered = json.dumps((await _review(app))["blocks"])
        assert "1 valid" in rendered and "skipped: 1 archived, 2 invalid email" in rendered
        assert "Invalid email:" not in rendered and "@-sign" not in rendered


async def test_a_member_of_another_organisation_is_not_shown_the_connection(
    build: Build,
) -> None:
    """C0001 is shared with another organisation (Slack Connect): its members typed
    `/referral mailchimp` there and were shown the connected account's name and login email."""
    async with build() as app:
        await _connect(app)
        outsider = "U0EXT"
        app.slack.users[outsider] = {"team_id": "T0EXT"}
        answer = await _status(app, user=outsider)
        assert answer["text"] == "Only members of this workspace can see its Mailchimp connection."
        assert "Bistro" not in json.dumps(answer) and "@" not in json.dumps(answer)
        assert "Mailchimp is connected" in json.dumps(await _status(app))  # members still do


@pytest.mark.parametrize("meta", ["garbage", "[]"])
async def test_a_key_form_whose_metadata_isnt_ours_is_told_to_reopen_before_saving(
    build: Callable[..., AbstractAsyncContextManager[Harness]],
    caplog: pytest.LogCaptureFixture, meta: str,
) -> None:  # fmt: skip
    """The key form read its metadata (an older release's shape, or forged) only after the
    key was checked and saved: the lead was told "Something went wrong… may not have gone
    through" of a connection made, and an ERROR was logged. Now the form says to open it
    again before anything is saved."""
    from tests.handlers.test_hostile import told_to_reopen

    async with build(secret_key="test-secret") as app:
        view = {"id": "V0META", "type": "modal", "callback_id": Callback.MAILCHIMP_KEY,
                "blocks": [], "private_metadata": meta, "state": {"values": _key(KEY)}}
        with caplog.at_level(logging.INFO):
            reply = await app.requests.view_submission(Callback.MAILCHIMP_KEY, _key(KEY),
                                                       view=view, user_id=LEAD)  # fmt: skip
            await app.settle()
        told_to_reopen(app, reply, caplog)
        assert await accounts.connection(app.db, "T0001") is None


# ---- the connection let go while drafts hold its audiences ---------------------------------


async def _shell(app: Harness, db_env: dict[str, str], mc: FakeMailchimp, *args: str) -> str:
    """`referral-bot mailchimp ARGS --team T0001`, as someone at the shell runs it: what it
    printed."""
    import asyncio

    from tests.shell import run

    env = {**db_env, "SECRET_KEY": SECRET_KEY, "MAILCHIMP_API_URL": mc.base_url}
    done = await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, *args)  # the fake
    assert done.returncode == 0, done.stderr  # is served by this loop meanwhile
    return done.stdout


@pytest.mark.parametrize("then", ["Disconnect", "another account's key in Reconnect",
                                  "mailchimp disconnect in the shell",
                                  "the same key again in the shell"])  # fmt: skip
async def test_a_draft_loses_its_audiences_when_their_account_is_let_go(
    build: Build, mc: FakeMailchimp, db_env: dict[str, str], then: str
) -> None:
    """Customers read into a draft, then a lead disconnects Mailchimp (or connects another
    account): the review went on showing the audience with no warning, and Approve imported
    its members. They go with the connection, the review is redrawn saying so, and Approve
    has nothing of them to import; connecting the same account again keeps them."""
    from bot.mailchimp.accounts import DROPPED

    mc.add_account(OTHER_KEY, name="Another shop")
    async with build() as app:
        message = await _customers_in_review(app)
        assert "2 to import" in json.dumps(message["blocks"])
        if then == "Disconnect":
            status = await _status(app)
            button = find_element(status["blocks"], Action.MAILCHIMP_DISCONNECT)
            assert button is not None
            assert "An import not approved yet loses the audiences it has from this account" \
                in button[1]["confirm"]["text"]["text"]  # fmt: skip
            answers = await _click(app, Action.MAILCHIMP_DISCONNECT, status)
            assert "an import not approved yet loses the audiences" in json.dumps(
                answers[-1]["blocks"])  # fmt: skip
            async with app.db.begin() as conn:  # and the audit log says which
                said = (await conn.execute(text("SELECT detail FROM audit_entry WHERE action "
                                                "= 'mailchimp.disconnected'"))).scalar_one()
            assert said == "audiences taken out of import #1"
        elif then == "another account's key in Reconnect":
            mc.revoke(KEY)  # the status offers Reconnect
            ack, _, _ = await _submit_key(app, OTHER_KEY)
            assert "Mailchimp is connected" in json.dumps(ack["view"])
        elif then == "mailchimp disconnect in the shell":
            said = await _shell(app, db_env, mc, "disconnect")  # what is connected now
            assert re.fullmatch(r"Mailchimp disconnected: the account in data centre us21, "
                                rf"connected by {LEAD} on \d{{4}}-\d\d-\d\d \d\d:\d\d UTC\.\n",
                                said), said  # fmt: skip
            assert "wasn't connected: nothing was disconnected" in await _shell(
                app, db_env, mc, "disconnect")  # fmt: skip
        else:
            await _shell(app, db_env, mc, "connect", "--api-key", KEY)
        await app.settle()  # the review's redraw was queued with the change
        shown = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
        kept = then == "the same key again in the shell"
        assert (DROPPED in shown, "2 to import" in shown) == (not kept, kept), shown
        await app.requests.block_action(Action.APPROVE, find_element(
            message["blocks"], Action.APPROVE)[1]["value"], user_id=LEAD,  # type: ignore[index]
            message_ts=message["ts"])  # fmt: skip
        await app.settle()
        if kept:
            assert await _count(app, "SELECT COUNT(*) FROM contact") == 2
        else:
            assert "nothing valid to import" in app.slack.ephemerals[-1]["text"]
            assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
            assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0
        assert app.slack.block_errors == []


# ---- what Mailchimp's failures say ------------------------------------------------------------


@pytest.mark.parametrize("failure", ["an error page", "no answer in time", "no connection"])
async def test_mailchimp_failing_is_said_in_words_and_its_raw_answer_only_logged(
    build: Build, mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, failure: str,
) -> None:  # fmt: skip
    """The status showed what the client had: "(503 <!DOCTYPE html>…)" for Mailchimp's
    maintenance page, "(network error HTTPConnectionPool(host=…): Read timed out…)" for a
    timeout, urllib3's retries and pools for a host that can't be reached."""
    caplog.set_level(logging.INFO, logger="bot")
    monkeypatch.setattr(api, "QUICK_TIMEOUT", 0.3)
    page = "<!DOCTYPE html><html><body><h1>Mailchimp is down for maintenance</h1></body></html>"
    async with build() as app:
        await _connect(app)
        if failure == "an error page":
            mc.fail_next("/3.0/ping", 503, page)
            said = "it answered with an error page (503)"
        elif failure == "no answer in time":
            mc.slow("/3.0/ping", 1.0)
            said = "it didn't answer within 0.3 s"
        else:  # a port nobody listens on
            await accounts.save(app.db, TEAM, api.Credentials("http://127.0.0.1:9", "api_key",
                                                              KEY), dc="us21", account_name="",
                                login_email="", user=LEAD, secret_key=SECRET_KEY)  # fmt: skip
            said = "it couldn't be reached"
        shown = json.dumps((await _status(app))["blocks"])
        assert f"Mailchimp failed to answer a ping: {said}. Try again later." in shown, shown
        for raw in ("DOCTYPE", "html", "HTTPConnectionPool", "Max retries", "timed out",
                    "Error("):  # fmt: skip
            assert raw not in shown, raw
        if failure == "an error page":  # what it was, for whoever runs the bot
            assert "Mailchimp is down for maintenance" in caplog.text
        assert app.slack.block_errors == []


async def test_a_key_whose_data_centre_doesnt_exist_is_said_so_at_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key ending in a data centre Mailchimp hasn't (a typo after the dash): its host's
    name doesn't resolve, which was retried for 15 s as if Mailchimp were down, then said
    "try again later" with urllib3's NameResolutionError cut at 200 characters. The host is
    really looked up: `.invalid` names never resolve (RFC 6761)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(mailchimp_handlers, "INLINE_WAIT", 10.0)  # answered in the form
    async with running_app(db, tmp_path, mailchimp_api_url="http://{dc}.api.invalid") as app:
        ack, _, _ = await _submit_key(app, "0123456789abcdef0123456789abcdef-us99x")
        assert ack["response_action"] == "errors", ack
        assert ack["errors"][BlockId.MAILCHIMP_KEY] == (
            "There's no Mailchimp data centre 'us99x': check the part of the key after the "
            "dash.")  # fmt: skip
        assert await _stored(app) == []


async def test_an_answer_nobody_foresaw_is_not_shown_as_python_said_it(
    build: Build, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """Members that aren't objects failed every attempt of the job reading them, and the
    review said "Could not read the audience: AttributeError: 'str' object has no attribute
    'get'". It says that something went wrong on our side; the log says what."""
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        mc.fail_next("/3.0/lists/a1b2c3d4e5/members", 200, '{"members": ["?"], "total_items": 1}',
                     times=100, content_type="application/json")  # fmt: skip
        await app.requests.view_submission(state_values=_form(segment="MC") | _chosen(
            "a1b2c3d4e5"), view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.settle()
        job = next(j for j in await list_jobs(app.db, TEAM) if j.kind == "mailchimp_list")
        assert job.state == "failed"
        shown = json.dumps((await _review(app))["blocks"])
        assert "Could not read the audience: something went wrong on our side" in shown, shown
        assert "Error" not in shown and "attribute" not in shown
        assert "AttributeError" in caplog.text  # for whoever runs the bot
        assert app.slack.block_errors == []


async def test_approve_after_a_disconnect_dropped_an_audience_is_refused_as_changed(
    build: Build,
) -> None:  # fmt: skip
    """The review shows the Customers audience (2) and one typed contact: "*3 to import*".
    Another lead disconnects Mailchimp (Slack or the shell): the audience's members are
    taken out of the draft, but its revision isn't counted up, only a redraw queued for a
    worker. Approve on the message the lead is looking at ("3 to import") then imports 1,
    with no word: README says every change to a draft counts the revision up, and an
    approval of a review that changed since it was drawn imports nothing and says so."""
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        await app.requests.view_submission(
            state_values=_form(segment="MC", email="zed@example.com") | _chosen("a1b2c3d4e5"),
            view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.settle()
        message = await _review(app)
        assert "*3 to import*" in json.dumps(message["blocks"])
        await accounts.disconnect(app.db, TEAM, user="U0ADMIN")
        approve = find_element(message["blocks"], Action.APPROVE)
        assert approve is not None
        await app.requests.block_action(Action.APPROVE, approve[1]["value"], user_id=LEAD,
                                        message_ts=message["ts"],
                                        block_id=message["blocks"][-1]["block_id"])  # fmt: skip
        await app.done()  # the click's own work (the queued redraw and the import wait)
        async with app.db.begin() as conn:
            status, valid = (await conn.execute(text(
                "SELECT status, valid FROM import_batch"))).one()  # fmt: skip
        told = [e["text"] for e in app.slack.ephemerals if e["user"] == LEAD]
        assert status == "draft", (status, valid, told)
        assert any("changed after the message you clicked" in t for t in told), told


async def test_home_doesnt_call_credentials_it_cant_read_connected(
    build: Build, mc: FakeMailchimp
) -> None:
    """SECRET_KEY changed since Mailchimp was connected: `/referral mailchimp` says the saved
    credentials can't be read and offers Reconnect, the import form says so too, but App Home
    (opened, and checked with Mailchimp as it opens) says "✅ Connected" with no Reconnect."""
    async with build() as app:
        await _connect(app)
    async with build(secret_key="another-secret") as app:
        status = await _status(app)
        assert "saved credentials can't be read" in json.dumps(status["blocks"])
        home = await _open_home(app, LEAD)
        shown = json.dumps(home["blocks"])
        assert "*Connected*" not in shown, shown
        assert "saved credentials can't be read* with this bot's SECRET_KEY" in shown, shown
        assert find_element(home["blocks"], Action.MAILCHIMP_CONNECT) is not None
    async with build() as app:  # under the key they were saved with: connected
        home = await _open_home(app, LEAD)
        assert "*Connected*" in json.dumps(home["blocks"])


async def test_an_audience_added_twice_at_once_with_add_more_is_read_once(
    build: Build, mc: FakeMailchimp
) -> None:
    """Two *Add more* forms (two people, or one opened twice) both choosing Newsletter,
    submitted together: each checked the draft's audiences before either had queued it."""
    async with build() as app:
        message = await _customers_in_review(app)
        batch = find_element(message["blocks"], Action.ADD_MORE)[1]["value"]  # type: ignore[index]
        views = []
        for user in (REP, LEAD):
            await app.requests.block_action(Action.ADD_MORE, batch, user_id=user,
                                            message_ts=message["ts"])  # fmt: skip
            await app.settle()
            views.append((user, app.slack.open_views(user)[-1]["id"]))
        mc.slow("/3.0/lists", 0.3, times=2)  # both forms' check of the chosen lists
        for user, view_id in views:
            await app.requests.view_submission(state_values=_chosen("f6e5d4c3b2"),
                                               view_id=view_id, user_id=user)  # fmt: skip
        await app.settle()
        refs = await _count(app, "SELECT COUNT(*) FROM import_source WHERE ref = 'f6e5d4c3b2'")
        rendered = json.dumps((await _review(app))["blocks"])
        # it showed "*Newsletter &lt;!channel&gt; (2)* (Mailchimp list) 0 valid · 2 duplicates"
        # and a total of "12 rows · 3 to import · 3 duplicates · 6 rejected"
        assert "(2)* (Mailchimp list)" not in rendered, rendered
        assert refs == 1 and "3 to import" in rendered and "6 rejected" not in rendered


# ---- a Connect shown before another lead connected -----------------------------------------

OTHERS_ACCOUNT = "Bistro <!channel> & Co"
# what a lead whose Connect went stale is told: the account, escaped, and who connected it
OTHERS_SAID = (f"Mailchimp was connected to *Bistro &lt;!channel&gt; &amp; Co* "
               f"(ops@bistro.example) by <@{OTHER_LEAD}> in the meantime")  # fmt: skip


async def _other_lead_signs_in(app: Harness, mc: FakeMailchimp) -> None:
    """OTHER_LEAD connects another account by Mailchimp's sign-in (what its callback saves)."""
    mc.add_account(token="other-token", dc="us7", name=OTHERS_ACCOUNT,
                   login_email="ops@bistro.example")  # fmt: skip
    await accounts.save(app.db, TEAM, api.Credentials(mc.base_url, "oauth", "other-token"),
                        dc="us7", account_name=OTHERS_ACCOUNT, login_email="ops@bistro.example",
                        user=OTHER_LEAD, secret_key=SECRET_KEY)  # fmt: skip


async def _connections_recorded(app: Harness) -> int:
    async with app.db.begin() as conn:
        return int((await conn.execute(text("SELECT COUNT(*) FROM audit_entry WHERE action = "
                                             "'mailchimp.connected'"))).scalar_one())  # fmt: skip


async def _others_kept(app: Harness, said: str) -> None:
    """OTHER_LEAD's connection is the workspace's still, and nothing else was recorded."""
    kept = await accounts.connection(app.db, TEAM)
    assert kept is not None, f"nothing is connected: {said}"
    assert (kept.auth, kept.account_name, kept.connected_by) == (
        "oauth", OTHERS_ACCOUNT, OTHER_LEAD), f"OTHER_LEAD's account was replaced: {said}"
    assert (await accounts.credentials(app.db, TEAM, SECRET_KEY)).secret == "other-token"


@pytest.mark.parametrize("when", ["after the form opened", "after the status was shown"])
async def test_a_stale_key_form_leaves_an_account_connected_since_alone(
        build: Build, mc: FakeMailchimp, when: str) -> None:  # fmt: skip
    """LEAD is shown "Mailchimp isn't connected" and opens the key form; OTHER_LEAD signs in
    to another account before LEAD submits. LEAD's key replaced it without a word (the form
    said "Mailchimp is connected": LEAD's account). The form remembers what it was opened on
    (the status's button, what that was drawn for): nothing is replaced, and LEAD is told,
    in the form, who connected which account and that it is disconnected first."""
    async with build() as app:
        app.slack.users[OTHER_LEAD] = {"is_admin": True}
        await ensure_workspace(app.db, TEAM)
        status = await _status(app)
        if when == "after the status was shown":
            await _other_lead_signs_in(app, mc)
        answers = await _click(app, Action.MAILCHIMP_CONNECT, status)
        modal = app.slack.open_views(LEAD)[-1]
        assert modal["callback_id"] == Callback.MAILCHIMP_KEY
        if when == "after the form opened":
            await _other_lead_signs_in(app, mc)
        reply = await app.requests.view_submission(state_values=_key(KEY), view_id=modal["id"],
                                                   user_id=LEAD)  # fmt: skip
        await app.settle()
        said = json.dumps(reply.body)
        await _others_kept(app, said)
        assert reply.body["response_action"] == "update", said
        assert OTHERS_SAID in said, said
        assert "nothing was replaced" in said and "disconnect that account first" in said, said
        assert "`/referral mailchimp`" in said, said
        assert await _connections_recorded(app) == 1  # OTHER_LEAD's only
        # the status the form was opened from shows what is connected now, with Disconnect
        assert answers and answers[-1].get("replace_original") is True
        assert "Bistro &lt;!channel&gt; &amp; Co" in json.dumps(answers[-1]["blocks"])
        assert find_element(answers[-1]["blocks"], Action.MAILCHIMP_DISCONNECT) is not None
        assert app.slack.block_errors == []


@pytest.mark.parametrize("then", ["another account signed in", "disconnected"])
async def test_a_stale_reconnect_checked_after_the_ack_replaces_nothing(
        build: Build, mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch,
        then: str) -> None:  # fmt: skip
    """*Reconnect with an API key* on a key Mailchimp refuses, the key checked after the
    ack ("Checking…"): the connection it was opened on was replaced by OTHER_LEAD's sign-in
    (or disconnected) meanwhile. The form says so once the key is checked, and nothing is
    replaced."""
    monkeypatch.setattr(mailchimp_handlers, "INLINE_WAIT", 0.05)
    new_key = OTHER_KEY
    mc.account(KEY).api_keys.append(new_key)  # the revoked key's account's next key
    async with build() as app:
        app.slack.users[OTHER_LEAD] = {"is_admin": True}
        await _connect(app)
        mc.revoke(KEY)
        status = await _status(app)
        assert "Mailchimp refuses the saved credentials" in json.dumps(status["blocks"])
        await _click(app, Action.MAILCHIMP_CONNECT, status)
        modal = app.slack.open_views(LEAD)[-1]
        if then == "disconnected":
            assert await accounts.disconnect(app.db, TEAM, user=OTHER_LEAD) is not None
        else:
            await _other_lead_signs_in(app, mc)
        mc.slow("/3.0/ping", 0.5)
        reply = await app.requests.view_submission(state_values=_key(new_key),
                                                   view_id=modal["id"], user_id=LEAD)
        await app.settle()
        assert "Checking" in json.dumps(reply.body["view"])
        said = json.dumps(app.slack.views[modal["id"]]["blocks"])
        if then == "disconnected":
            assert await accounts.connection(app.db, TEAM) is None, said
            assert ("Mailchimp was disconnected in the meantime, so this key wasn't saved"
                    in said), said
        else:
            await _others_kept(app, said)
            assert OTHERS_SAID in said and "nothing was replaced" in said, said
        assert await _connections_recorded(app) == 1 + (then != "disconnected")
        assert app.slack.block_errors == []


async def test_a_stale_sign_in_leaves_an_account_connected_since_alone(
        build: Build, mc: FakeMailchimp) -> None:  # fmt: skip
    """LEAD's status offers Mailchimp's sign-in (nothing connected); OTHER_LEAD connects a
    key meanwhile; LEAD signs in: the callback replaced OTHER_LEAD's account without a word.
    The sign-in's state carries what the status was drawn for: the page says what is
    connected, that nothing was replaced, and to disconnect it first; no DM says connected."""
    mc.add_account(token="oauth-token", dc="us7", name="Northwind Coffee")
    mc.issue_code("code-1", "oauth-token", "oauth-token")
    mc.add_account(OTHER_KEY, name="Other Shop")
    async with build(mailchimp_client_id="cid-123", mailchimp_client_secret="csecret") as app:
        found = find_element((await _status(app))["blocks"], Action.MAILCHIMP_SIGN_IN)
        assert found is not None
        link = urlsplit(found[1]["url"])
        await accounts.connect_api_key(app.db, TEAM, OTHER_KEY, user=OTHER_LEAD,
                                       secret_key=SECRET_KEY,
                                       api_url=app.settings.mailchimp_api_url)  # fmt: skip
        async with _browsing_serves_pages(app) as (site, browser):
            async with browser.get(f"{site}{link.path}?{link.query}") as response:
                action = re.search(r'action="([^"]+)"', await response.text())
                assert action is not None
            async with browser.post(urljoin(str(response.url), html.unescape(action[1]))
                                    ) as response:  # fmt: skip
                assert response.status == 200
            query = {"code": "code-1", "state": mc.authorize_requests[-1]["state"]}
            async with browser.get(f"{site}{CALLBACK_PATH}", params=query) as response:
                status, page = response.status, html.unescape(await response.text())
        kept = await accounts.connection(app.db, TEAM)
        assert kept is not None and (kept.auth, kept.connected_by) == ("api_key", OTHER_LEAD), page
        assert status == 409, page
        assert "Not connected" in page
        assert ("Another team lead connected a Mailchimp account (with an API key, data "
                "centre us21) while you were signing in, so nothing was replaced") in page, page
        assert "disconnect that account first" in page, page
        assert LEAD not in app.slack.dm_channels  # nobody was told "Mailchimp is connected"


@pytest.mark.parametrize("oauth", [False, True], ids=["key form", "sign-in"])
async def test_connect_on_a_home_drawn_before_another_lead_connected_replaces_nothing(
        build: Build, mc: FakeMailchimp, oauth: bool) -> None:  # fmt: skip
    """Home's *Connect Mailchimp* names what Home was drawn with (nothing connected): the key
    form, or the sign-in, it opens after OTHER_LEAD connected an account replaces nothing."""
    settings = {"mailchimp_client_id": "cid-123", "mailchimp_client_secret": "csecret"}
    async with build(**(settings if oauth else {})) as app:
        app.slack.users[OTHER_LEAD] = {"is_admin": True}
        await ensure_workspace(app.db, TEAM)
        home = await _open_home(app, LEAD)
        found = find_element(home["blocks"], Action.MAILCHIMP_CONNECT)
        assert found is not None
        await _other_lead_signs_in(app, mc)
        await app.requests.block_action(Action.MAILCHIMP_CONNECT, found[1]["value"],
                                        user_id=LEAD,
                                        view={"type": "home", "id": "VHOME"})  # fmt: skip
        await app.settle()
        opened = app.slack.open_views(LEAD)[-1]
        if oauth:  # its sign-in's state says what it was drawn for: nothing connected
            link = find_element(opened["blocks"], Action.MAILCHIMP_SIGN_IN)
            assert link is not None
            state = read_state(SECRET_KEY, parse_qs(urlsplit(link[1]["url"]).query)["state"][0])
            assert accounts.Seen.read(state.seen) == accounts.Seen(None)
            return
        reply = await app.requests.view_submission(state_values=_key(KEY), view_id=opened["id"],
                                                   user_id=LEAD)  # fmt: skip
        await app.settle()
        said = json.dumps(reply.body)
        await _others_kept(app, said)
        assert OTHERS_SAID in said and "nothing was replaced" in said, said


async def test_a_key_form_opened_on_nothing_connects_the_account_connected_since_again(
        build: Build, mc: FakeMailchimp) -> None:  # fmt: skip
    """LEAD opens the key form on "Mailchimp isn't connected"; OTHER_LEAD connects the same
    account (the same key) meanwhile. LEAD's key replaces nobody's account: it is the same
    connection, its credentials saved again. It was refused, LEAD told that OTHER_LEAD had
    connected "an account" and to disconnect it first to connect "this key's account",
    which is that very account."""
    async with build() as app:
        app.slack.users[OTHER_LEAD] = {"is_admin": True}
        await ensure_workspace(app.db, TEAM)
        status = await _status(app)
        await _click(app, Action.MAILCHIMP_CONNECT, status)
        modal = app.slack.open_views(LEAD)[-1]
        await accounts.connect_api_key(app.db, TEAM, KEY, user=OTHER_LEAD, secret_key=SECRET_KEY,
                                       api_url=app.settings.mailchimp_api_url)  # fmt: skip
        before = await accounts.connection(app.db, TEAM)
        reply = await app.requests.view_submission(state_values=_key(KEY), view_id=modal["id"],
                                                   user_id=LEAD)  # fmt: skip
        await app.settle()
        said = json.dumps(reply.body)
        assert "nothing was replaced" not in said and "disconnect" not in said, said
        assert reply.body.get("response_action") != "errors", said
        assert await _connections_recorded(app) == 2, said  # saved again, and recorded
        now = await accounts.connection(app.db, TEAM)
        assert now is not None and before is not None and now.stamp == before.stamp
        assert app.slack.block_errors == []
