"""Mailchimp through the real client against the fake: connect, read audiences, import."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import pytest
from sqlalchemy import text

from bot.app import build_web_app
from bot.imports.importer import import_files
from bot.mailchimp import accounts, api
from bot.mailchimp.oauth import (
    CALLBACK_PATH,
    CONNECT_PATH,
    STATE_TTL,
    bind_state,
    make_state,
    read_state,
)
from bot.settings import Settings, load_settings
from bot.web import public_routes
from bot.workspaces import ensure_workspace, name_workspace
from models import Database, HomeViewer
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.slack_api import serve

TEAM = "T0001"
KEY = "0123456789abcdef0123456789abcdef-us21"
SECRET = "test-secret"


@pytest.fixture
async def mc(db: Database) -> AsyncIterator[FakeMailchimp]:
    await ensure_workspace(db, TEAM)
    async with FakeMailchimp(client_id="cid", client_secret="csecret") as fake:
        account = fake.add_account(KEY)
        regulars = account.add_list("aud1", "Regulars")
        for email, status, lang in (("ana@example.com", "subscribed", "es_ES"),
                                    ("joao@example.com", "subscribed", "pt"),
                                    ("gone@example.com", "unsubscribed", ""),
                                    ("bounce@example.com", "cleaned", "")):  # fmt: skip
            regulars.add_member(email, status, first_name=email[:3].title(), language=lang)
        newsletter = account.add_list("aud2", "Newsletter")
        for email, status in (("Ana@Example.com", "subscribed"), ("new@example.com", "subscribed"),
                              ("maybe@example.com", "pending")):  # fmt: skip
            newsletter.add_member(email, status)
        yield fake


def _settings(db: Database, mc: FakeMailchimp, public_url: str = "https://bot.example"
              ) -> Settings:  # fmt: skip
    return load_settings(database_url=db.url, secret_key=SECRET, mailchimp_api_url=mc.base_url,
                         mailchimp_login_url=mc.login_url, mailchimp_client_id="cid",
                         mailchimp_client_secret="csecret", public_url=public_url)  # fmt: skip


async def test_an_api_key_is_checked_then_kept_sealed(db: Database, mc: FakeMailchimp,
                                                      tmp_path: Path) -> None:  # fmt: skip
    settings = _settings(db, mc)
    with pytest.raises(api.MailchimpError, match="doesn't look like"):
        await accounts.connect_api_key(db, TEAM, "no-dash-here!", user="U1", secret_key=SECRET,
                                       api_url=settings.mailchimp_api_url)  # fmt: skip
    with pytest.raises(api.ReconnectNeeded):
        await accounts.connect_api_key(db, TEAM, "ffff-us21", user="U1", secret_key=SECRET,
                                       api_url=settings.mailchimp_api_url)  # fmt: skip
    assert await accounts.connection(db, TEAM) is None
    found = await accounts.connect_api_key(db, TEAM, KEY, user="U1", secret_key=SECRET,
                                           api_url=settings.mailchimp_api_url)  # fmt: skip
    assert (found.dc, found.auth, found.connected_by) == ("us21", "api_key", "U1")
    async with db.begin() as conn:
        stored = (await conn.execute(text("SELECT secret FROM mailchimp_account"))).scalar_one()
    assert KEY not in stored and KEY.split("-")[0] not in stored
    if db.is_sqlite:  # not in the database file at all
        path = Path(db.url.split("///", 1)[1])
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                assert KEY.encode() not in part.read_bytes()
    creds = await accounts.credentials(db, TEAM, SECRET)
    assert creds.secret == KEY
    assert [(a.id, a.name, a.subscribed) for a in await api.audiences(creds)] == [
        ("aud1", "Regulars", 2), ("aud2", "Newsletter", 2)]  # fmt: skip
    assert await accounts.disconnect(db, TEAM) and await accounts.connection(db, TEAM) is None


async def _saved_beside_a_connection_under_way(db: Database,
                                               seen: accounts.Seen | None) -> None:  # fmt: skip
    """`accounts.save` of a key (user U1, `seen`) while another connection's row (the OAuth
    callback's: Shop, by U9) is inserted but not committed yet, then committed (PostgreSQL)."""
    from tests.waiting import backend_pid, until_waiting_or_done

    if db.dialect != "postgresql":
        pytest.skip("SQLite's one writer orders them already")
    await ensure_workspace(db, TEAM)
    other = await db.engine.connect()
    transaction = await other.begin()
    await other.execute(text(
        "INSERT INTO mailchimp_account (team_id, account_name, login_email, dc, api_endpoint, "
        "auth, secret, connected_by, connected_at) VALUES (:t, 'Shop', 'a@shop.example', "
        "'us1', 'https://us1.api.mailchimp.com', 'oauth', 'sealed', 'U9', CURRENT_TIMESTAMP)"
    ), {"t": TEAM})  # fmt: skip
    creds = api.Credentials("https://us21.api.mailchimp.com", "api_key", KEY)
    saving = asyncio.create_task(accounts.save(db, TEAM, creds, dc="us21", account_name="",
                                               login_email="", user="U1", secret_key=SECRET,
                                               seen=seen))  # fmt: skip
    await until_waiting_or_done(db, await backend_pid(other), saving)
    await transaction.commit()
    await other.close()
    await saving


async def test_two_connections_at_once_both_land_the_later_kept(db: Database) -> None:
    """PostgreSQL: another connection's row not committed yet (the OAuth callback, say) while
    a key is saved: the save used to read no row, insert, and fail on the primary key."""
    await _saved_beside_a_connection_under_way(db, None)
    kept = await accounts.connection(db, TEAM)
    assert kept is not None and (kept.dc, kept.auth, kept.connected_by) == ("us21", "api_key",
                                                                           "U1")  # fmt: skip
    assert (await accounts.credentials(db, TEAM, SECRET)).secret == KEY


async def test_a_connect_opened_on_nothing_waits_for_a_connection_under_way_and_keeps_it(
        db: Database) -> None:  # fmt: skip
    """PostgreSQL: another lead's connection not committed yet (the OAuth callback, say)
    while a key form opened on "not connected" is saved: the form's write waits for it, then
    replaces nothing and says what is connected (accounts.save's `seen`)."""
    with pytest.raises(accounts.ConnectionChanged) as refused:
        await _saved_beside_a_connection_under_way(db, accounts.Seen(None))
    assert refused.value.now is not None
    assert (refused.value.now.account_name, refused.value.now.connected_by) == ("Shop", "U9")
    kept = await accounts.connection(db, TEAM)
    assert kept is not None and (kept.auth, kept.connected_by) == ("oauth", "U9")


async def test_two_overlapping_audiences_import_their_subscribed_members_once(
    db: Database, mc: FakeMailchimp
) -> None:
    settings = _settings(db, mc)
    await accounts.connect_api_key(db, TEAM, KEY, user="U1", secret_key=SECRET,
                                   api_url=settings.mailchimp_api_url)  # fmt: skip
    creds = await accounts.credentials(db, TEAM, SECRET)
    chosen = await api.audiences(creds)
    result = await import_files(db, TEAM, [], segment="Mailchimp", create_segment=True,
                                mailchimp=(creds, chosen))  # fmt: skip
    assert (result.batch.valid, result.batch.duplicates, result.batch.new_contacts) == (3, 1, 3)
    assert result.skipped_by_status == {"unsubscribed": 1, "cleaned": 1, "pending": 1}
    async with db.begin() as conn:
        rows = dict((await conn.execute(text("SELECT email, locale FROM contact"))).all())
    assert rows == {"ana@example.com": "es-ES", "joao@example.com": "pt-BR",
                    "new@example.com": None}  # fmt: skip
    reads = mc.requests_to("/3.0/lists/aud1/members")
    fields = {r.query.get("fields") for r in reads if "since_last_changed" not in r.query}
    assert fields and all("members.email_address" in (f or "") for f in fields)
    checks = [r.query for r in reads if "since_last_changed" in r.query]  # anyone new since?
    assert [(q.get("fields"), q.get("count")) for q in checks] == [("total_items", "1")]


async def test_pages_are_fetched_a_few_at_a_time_and_busy_answers_retried(
    db: Database, mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = mc.account(KEY).add_list("big", "Big")
    big.add_members(2_600)
    mc.fail_next("/3.0/lists/big/members", 429, times=1)  # Mailchimp's bare 429: no body
    mc.fail_next("/3.0/lists/big/members", 503, body={"title": "Busy"}, times=1)
    mc.slow("/3.0/lists/big/members", 0.3)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    with await api.members(creds, "big") as members:
        assert len(members) == 2_600 and len({m["email_address"] for m in members}) == 2_600
    statuses = [r.status for r in mc.requests_to("/3.0/lists/big/members")]
    assert statuses.count(429) == 1 and statuses.count(503) == 1 and mc.violations == []
    assert mc.peak_concurrency <= api.MAX_IN_FLIGHT


@pytest.mark.parametrize(("status", "error", "said"), [
    (404, api.NotFound, "it doesn't exist (any more)"),
    (400, api.Refused, "it answered 400 with no body"),
])
async def test_a_bare_4xx_is_said_at_once_not_retried(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch, status: int, error: type, said: str
) -> None:
    """A 404 (or 400) with no body, as a proxy or a deleted audience may answer: asked again
    it is the same, but it was retried five times and then called "try again later"."""
    mc.fail_next("/3.0/lists/aud1/members", status, times=5)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    with pytest.raises(error, match=re.escape(said)) as raised:
        await api.members(creds, "aud1")
    assert "Try again later" not in str(raised.value)
    assert [r.status for r in mc.requests_to("/3.0/lists/aud1/members")] == [status]


@pytest.mark.parametrize("status", [408, 425])
async def test_a_bare_408_or_425_is_asked_again(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """An edge's request timeout (408) or "too early" (425) means ask again: refused at
    once, the audience's read failed for what a retry gets through."""
    mc.fail_next("/3.0/lists/aud1/members", status, times=1)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    with await api.members(creds, "aud1") as members:
        assert len(members) > 0
    assert mc.requests_to("/3.0/lists/aud1/members")[0].status == status


async def test_a_revoked_key_says_reconnect(db: Database, mc: FakeMailchimp) -> None:
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    mc.revoke(KEY)
    with pytest.raises(api.ReconnectNeeded, match="reconnect Mailchimp"):
        await api.members(creds, "aud1")


def _browser(site: str) -> aiohttp.ClientSession:
    """A browser: its own cookie jar (for a loopback IP; Secure cookies go to the test site,
    as to the https PUBLIC_URL it stands for)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True,
                                                              treat_as_secure_origin=site))


async def _continue(browser: aiohttp.ClientSession, site: str, mc: FakeMailchimp,
                    state: str) -> dict[str, str]:  # fmt: skip
    """Open Slack's Connect link (the start page) and press Continue, as a browser does:
    returns the query Mailchimp's authorize page got (its login page was shown)."""
    async with browser.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
        assert response.status == 200, await response.text()
        found = re.search(r'<form method="post" action="([^"]+)"', await response.text())
        assert found is not None
        form = urljoin(str(response.url), html.unescape(found[1]))
    same = {"Origin": site, "Sec-Fetch-Site": "same-origin"}  # what a browser says of our form
    async with browser.post(form, headers=same) as response:  # 303 to Mailchimp
        assert [r.status for r in response.history] == [303]
        assert response.status == 200 and "Log in to authorize" in await response.text()
    return mc.authorize_requests[-1]


async def _back_from_mailchimp(browser: aiohttp.ClientSession, site: str, code: str,
                               authorize: dict[str, str]) -> tuple[int, str]:  # fmt: skip
    """Mailchimp sends the browser to the redirect URI with the code and the state it got."""
    assert authorize["redirect_uri"] == "https://bot.example" + CALLBACK_PATH
    params = {"code": code, "state": authorize["state"]}
    async with browser.get(f"{site}{CALLBACK_PATH}", params=params) as response:
        return response.status, await response.text()


async def test_oauth_connects_once_and_refuses_forged_or_reused_states(
    db: Database, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    settings = _settings(db, mc)
    connected: list[tuple[str, str, str]] = []

    async def tell(team: str, user: str, account: str) -> None:
        connected.append((team, user, account))

    token = "oauth-token-1"
    mc.add_account(token=token, dc="us7", name="Northwind Coffee")
    mc.issue_code("code-1", token, token)
    async with db.session() as session:  # someone has Home open: it must show the connection
        session.add(HomeViewer(team_id=TEAM, user_id="U0003"))
        await session.commit()
    routes = public_routes(db, settings, on_connected=tell)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002", person="Dana")
        forged = make_state("another-key", TEAM, "U0002")
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": forged}) as response:
            assert response.status == 400 and "run /referral mailchimp" in await response.text()
        async with http.post(f"{site}{CONNECT_PATH}", params={"state": forged}) as response:
            assert response.status == 400
        assert mc.authorize_requests == []
        authorize = await _continue(http, site, mc, state)
        assert (authorize["response_type"], authorize["client_id"]) == ("code", "cid")
        callback = f"{site}{CALLBACK_PATH}"
        # the start link's state isn't the callback's: it was never bound to a browser
        for wrong in (forged, state, bind_state("another-key", read_state(SECRET, state), "x")):
            async with http.get(callback, params={"code": "code-1", "state": wrong}) as response:
                assert response.status == 400
        assert mc.token_requests == []  # no exchange for a forged state
        status, page = await _back_from_mailchimp(http, site, "code-1", authorize)
        assert status == 200 and "connected" in page
        status, page = await _back_from_mailchimp(http, site, "code-1", authorize)
        assert status == 400 and "already used" in page
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
            assert response.status == 400 and "already used" in await response.text()
    assert len(mc.token_requests) == 1
    # whose sign-in it was, in the log: connected, then a link used again
    said = [r.getMessage() for r in caplog.records if f"team {TEAM}, user U0002" in r.getMessage()]
    assert "connected" in said[0] and "used before" in said[1], said
    assert connected == [(TEAM, "U0002", "Northwind Coffee")]
    async with db.begin() as conn:
        refreshes = (await conn.execute(text(
            "SELECT state FROM job WHERE kind = 'home_refresh' AND team_id = :t"), {"t": TEAM}
        )).scalars().all()  # fmt: skip
    assert refreshes == ["queued"]
    found = await accounts.connection(db, TEAM)
    assert found is not None and (found.auth, found.dc) == ("oauth", "us7")
    creds = await accounts.credentials(db, TEAM, SECRET)
    assert creds.api_endpoint == mc.base_url and creds.secret == token
    assert [a.id for a in await api.audiences(creds)] == []  # the OAuth account has no lists


@pytest.mark.parametrize(("error", "status", "said"), [
    ("access_denied", 200, "Mailchimp sign-in was cancelled; nothing changed."),
    ("temporarily_unavailable", 502, "Try again in a few minutes"),
    ("invalid_scope", 502, "Mailchimp refused this sign-in, so nothing changed."),
])
async def test_mailchimps_refusal_on_the_callback_isnt_told_as_a_cancellation(
    db: Database, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture, error: str, status: int,
    said: str,
) -> None:
    """Mailchimp sends the browser back with `?error=` when the person cancels
    (access_denied), and also when it refuses the bot's request or is down: each was told
    "sign-in was cancelled", and nobody learned why."""
    settings = _settings(db, mc)
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        query = {"error": error, "error_description": "Scope <b>x</b>", "state": "s"}
        async with http.get(f"{site}{CALLBACK_PATH}", params=query) as response:
            assert response.status == status
            page = await response.text()
    assert said in page, page
    assert ("cancelled" in page) is (error == "access_denied")
    assert "<b>x</b>" not in page
    logged = [r.getMessage() for r in caplog.records if "refused a sign-in" in r.getMessage()]
    assert logged == ([] if error == "access_denied" else [
        f"Mailchimp refused a sign-in: error '{error}', 'Scope <b>x</b>', from 127.0.0.1"])
    assert mc.token_requests == []


@pytest.mark.parametrize(("public_url", "path", "secure"), [
    ("https://bot.example", "/mailchimp", True),
    ("http://localhost:8080/referral/", "/referral/mailchimp", False),  # trying it out
])  # fmt: skip
async def test_continue_binds_the_browser_with_a_cookie_only_the_sign_in_sees(
    db: Database, mc: FakeMailchimp, public_url: str, path: str, secure: bool
) -> None:
    settings = _settings(db, mc, public_url)
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002")
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
            assert not response.cookies  # looking sets nothing (link previews look)
        async with http.post(f"{site}{CONNECT_PATH}", params={"state": state},
                             allow_redirects=False) as response:  # fmt: skip
            assert response.status == 303
            location = urlsplit(response.headers["Location"])
            cookie = response.cookies["mailchimp_browser"]
    assert f"{location.scheme}://{location.netloc}{location.path}" == mc.authorize_url
    assert parse_qs(location.query)["redirect_uri"] == [settings.public_base + CALLBACK_PATH]
    assert len(cookie.value) >= 43 and cookie.value not in location.query
    assert (cookie["path"], cookie["httponly"], cookie["samesite"], cookie["max-age"]) == (
        path, True, "Lax", str(STATE_TTL))  # fmt: skip
    assert bool(cookie["secure"]) is secure


async def test_a_start_page_opened_with_a_cookie_we_never_made_is_shown(
    db: Database, mc: FakeMailchimp
) -> None:
    """A mailchimp_browser cookie of bytes that aren't UTF-8 (set by nothing of ours) made the
    start page a bare 500: it was hashed as it came, unlike in the Continue and the callback."""
    settings = _settings(db, mc)
    state = make_state(SECRET, TEAM, "U0002")
    async with serve(build_web_app(None, routes=public_routes(db, settings))) as site:
        host, port = site.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {CONNECT_PATH}?state={state} HTTP/1.1\r\nHost: bot.example\r\n"
                     .encode() + b"Cookie: mailchimp_browser=\xff\xfe\r\n"
                     b"Connection: close\r\n\r\n")  # fmt: skip
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connect Mailchimp?" in answer, answer[:200]


async def test_a_sign_in_finished_in_another_browser_connects_nothing(
    db: Database, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """Login CSRF: a lead goes as far as Mailchimp, then sends the authorize URL (or the
    callback) to someone else. Their Mailchimp account used to be connected to the lead's
    workspace, whose audiences the lead could then import."""
    settings = _settings(db, mc)
    connected: list[tuple[str, str, str]] = []

    async def tell(team: str, user: str, account: str) -> None:
        connected.append((team, user, account))

    mc.add_account(token="victim-token", dc="us9", name="Someone Else's Shop")
    mc.issue_code("victim-code", "victim-token", "victim-token")
    mc.add_account(token="lead-token", dc="us7", name="Northwind Coffee")
    mc.issue_code("lead-code", "lead-token", "lead-token")
    routes = public_routes(db, settings, on_connected=tell)
    async with (serve(build_web_app(None, routes=routes)) as site, _browser(site) as lead,
                _browser(site) as victim):  # fmt: skip
        authorize = await _continue(lead, site, mc, make_state(SECRET, TEAM, "U0002"))
        async with victim.get(mc.authorize_url, params=authorize) as response:
            assert response.status == 200  # Mailchimp's login page: the victim signs in
        status, page = await _back_from_mailchimp(victim, site, "victim-code", authorize)
        assert status == 403
        assert "started in another browser" in page and "nothing was connected" in page
        # not "the Connect button again": its start link is the other browser's now
        assert "run /referral mailchimp in Slack for a new Connect button" in page
        assert mc.token_requests == [] and connected == []
        assert await accounts.connection(db, TEAM) is None
        # the lead's own browser still finishes with it: the refusal spent nothing
        status, page = await _back_from_mailchimp(lead, site, "lead-code", authorize)
        assert status == 200 and "Northwind Coffee is connected" in page
    assert f"browser that didn't start it (team {TEAM}, user U0002)" in caplog.text
    found = await accounts.connection(db, TEAM)
    assert found is not None and found.account_name == "Northwind Coffee"
    assert connected == [(TEAM, "U0002", "Northwind Coffee")]


async def test_the_start_page_names_the_workspace_and_person_as_text(
    db: Database, mc: FakeMailchimp
) -> None:
    settings = _settings(db, mc)
    await name_workspace(db, TEAM, "<script>alert(1)</script> & <!channel>")
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002", person="<b>Eve</b>")
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            page = await response.text()
    assert ("the Slack workspace “&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt;”"
            in page)  # fmt: skip
    assert "&lt;b&gt;Eve&lt;/b&gt; asked to connect" in page
    assert "<script>" not in page and "<b>" not in page and "<!channel>" not in page
    assert "If someone sent you this link, close this page" in page
    assert '<form method="post" action="connect?state=' in page and "Continue to Mailchimp" in page
    assert mc.authorize_requests == []


async def test_bidi_controls_in_the_names_never_turn_the_start_pages_warning_around(
    db: Database, mc: FakeMailchimp
) -> None:
    """A right-to-left override in a Slack display name reversed the rest of the start
    page's sentence, its "Continue only if you are …" with it, for whoever was sent the link;
    a stray PDI in a Hebrew workspace name ended its isolate early. The names are isolated
    as the invites' are; so is the account's name on the page that says it is connected."""
    settings = _settings(db, mc)
    await name_workspace(db, TEAM, "חנות\u2069 Shop")
    mc.add_account(token="oauth-token-1", dc="us7", name="\u202eNorthwind")
    mc.issue_code("code-1", "oauth-token-1", "oauth-token-1")
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002", person="\u202eEve")
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
            page = await response.text()
        authorize = await _continue(http, site, mc, state)
        status, connected = await _back_from_mailchimp(http, site, "code-1", authorize)
    assert "\u202e" not in page
    assert "Eve asked to connect" in page and "Continue only if you are Eve and" in page
    assert "the Slack workspace “\u2068חנות Shop\u2069”." in page
    assert status == 200 and "<p>Northwind is connected." in connected, connected


async def test_a_start_link_opened_in_a_second_browser_is_told_to_connect_again(
    db: Database, mc: FakeMailchimp
) -> None:
    """The start works once: the first browser to continue claims it (and may continue
    again, back from Mailchimp's login page, say); any other is told to ask Slack again."""
    settings = _settings(db, mc)
    routes = public_routes(db, settings)
    async with (serve(build_web_app(None, routes=routes)) as site, _browser(site) as first,
                _browser(site) as second):  # fmt: skip
        state = make_state(SECRET, TEAM, "U0002")
        await _continue(first, site, mc, state)
        for method in ("GET", "POST"):
            async with second.request(method, f"{site}{CONNECT_PATH}",
                                      params={"state": state}) as response:  # fmt: skip
                assert response.status == 400 and not response.history
                page = await response.text()
                assert "already opened in another browser" in page
                assert "click Connect Mailchimp again" in page
        assert len(mc.authorize_requests) == 1  # the second browser never got to Mailchimp
        await _continue(first, site, mc, state)  # the first comes back and goes on again
    assert len(mc.authorize_requests) == 2


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Origin": "https://evil.example"},  # a browser without Sec-Fetch-*
    {"Sec-Fetch-Site": "same-site"},  # another host under the same domain
])  # fmt: skip
async def test_a_continue_posted_from_another_site_does_nothing(
    db: Database, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    """An auto-submitting form on another site would skip the start page's question and
    take the visitor's browser to Mailchimp bound to the sender's sign-in."""
    settings = _settings(db, mc)
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002")
        async with http.post(f"{site}{CONNECT_PATH}", params={"state": state},
                             headers=headers) as response:  # fmt: skip
            assert response.status == 403 and not response.history
            assert "sent from another website" in await response.text()
            assert not response.cookies
        assert mc.authorize_requests == []
        await _continue(http, site, mc, state)  # claimed nothing: the lead's own click works
    assert f"posted from another site (team {TEAM}, user U0002" in caplog.text


@pytest.mark.parametrize("public_url", ["https://Bot.Example", "https://bot.example:443/"])
async def test_a_continue_from_our_own_page_is_ours_however_public_url_is_written(
    db: Database, mc: FakeMailchimp, public_url: str
) -> None:
    """A browser without Sec-Fetch-* (Safari before 16.4) behind an HTTPS proxy sends only
    `Origin: https://bot.example`, in lower case and without the default port: with
    PUBLIC_URL written with capitals or :443 the lead's own Continue was refused as "sent from
    another website"."""
    settings = _settings(db, mc, public_url=public_url)
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002")
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
            assert response.status == 200
        async with http.post(f"{site}{CONNECT_PATH}", params={"state": state},
                             headers={"Origin": "https://bot.example"}) as response:  # fmt: skip
            assert response.status == 200 and "Log in to authorize" in await response.text()
    assert len(mc.authorize_requests) == 1


async def test_the_sign_in_goes_through_under_public_urls_path(
    db: Database, mc: FakeMailchimp
) -> None:
    """PUBLIC_URL=https://bot.example/referrals (a proxy forwarding /referrals/* as it is):
    Slack's Connect link and Mailchimp's redirect URI name /referrals/mailchimp/..., which
    were 404s. The start page, its Continue (our own origin: the path is no part of it; another
    site's still refused) and the callback, with the browser's cookie, answer there now."""
    token = "oauth-token-1"
    mc.add_account(token=token, dc="us7", name="Northwind Coffee")
    mc.issue_code("code-1", token, token)
    settings = _settings(db, mc, public_url="https://bot.example/referrals")
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as root, _browser(root) as http:
        site = f"{root}/referrals"
        state = make_state(SECRET, TEAM, "U0002")
        async with http.post(f"{site}{CONNECT_PATH}", params={"state": state},
                             headers={"Origin": "https://evil.example"}) as response:  # fmt: skip
            assert response.status == 403 and "sent from another website" in await response.text()
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
            assert response.status == 200
            found = re.search(r'<form method="post" action="([^"]+)"', await response.text())
            assert found is not None
            form = urljoin(str(response.url), html.unescape(found[1]))
        assert form.startswith(f"{site}{CONNECT_PATH}?")
        async with http.post(form, headers={"Origin": "https://bot.example"}) as response:
            assert response.status == 200 and "Log in to authorize" in await response.text()
        authorize = mc.authorize_requests[-1]
        assert authorize["redirect_uri"] == "https://bot.example/referrals" + CALLBACK_PATH
        params = {"code": "code-1", "state": authorize["state"]}
        async with http.get(f"{site}{CALLBACK_PATH}", params=params) as response:
            assert response.status == 200, await response.text()
            assert "Northwind Coffee is connected" in await response.text()
    assert mc.token_requests[-1]["redirect_uri"] == authorize["redirect_uri"]
    found = await accounts.connection(db, TEAM)
    assert found is not None and found.account_name == "Northwind Coffee"


async def test_an_oauth_exchange_mailchimp_answers_badly_says_not_connected(
    db: Database, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(db, mc)
    mc.fail_next("/oauth2/token", 503, "<html>Service Unavailable</html>")
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        authorize = await _continue(http, site, mc, make_state(SECRET, TEAM, "U0002"))
        status, page = await _back_from_mailchimp(http, site, "code-1", authorize)
        assert status == 502 and "was unavailable (503) while finishing the sign-in" in page
        assert "Error)" not in page  # it said "(ContentTypeError)"
    assert await accounts.connection(db, TEAM) is None
    assert f"exchange failed (team {TEAM}, user U0002)" in caplog.text


async def test_the_cli_connects_lists_and_imports(db: Database, db_env: dict[str, str],
                                                  mc: FakeMailchimp) -> None:  # fmt: skip
    import asyncio

    from tests.shell import run

    env = {**db_env, "SECRET_KEY": SECRET, "MAILCHIMP_API_URL": mc.base_url}

    async def cli(*args: str) -> str:
        result = await asyncio.to_thread(run, env, *args)  # this loop serves the fake
        assert result.returncode == 0, result.stderr
        return result.stdout

    # the same keys connected or not (not connected was {"connected": false} alone), and
    # connected_at in ISO 8601 as every other --json date
    keys = {"connected", "account", "dc", "auth", "connected_by", "connected_at", "health",
            "problem"}  # fmt: skip
    before = json.loads(await cli("mailchimp", "--team", TEAM, "status", "--json"))
    assert set(before) == keys and before["connected"] is False and before["health"] is None
    await cli("mailchimp", "--team", TEAM, "connect", "--api-key", KEY)
    status = json.loads(await cli("mailchimp", "--team", TEAM, "status", "--json"))
    assert set(status) == keys and status["connected"] is True
    assert datetime.fromisoformat(status["connected_at"]).tzinfo is not None
    assert "T" in status["connected_at"]
    lists = json.loads(await cli("mailchimp", "--team", TEAM, "lists", "--json"))
    assert [x["name"] for x in lists] == ["Regulars", "Newsletter"]
    out = json.loads(await cli("import", "--mailchimp-list", "aud1", "--mailchimp-list",
                               "newsletter", "--segment", "MC", "--create-segment", "--json",
                               "--team", TEAM))  # fmt: skip
    assert (out["valid"], out["duplicates"]) == (3, 1)
    assert out["skipped_by_status"] == {"unsubscribed": 1, "cleaned": 1, "pending": 1}



async def test_the_cli_status_asks_mailchimp_whether_the_key_still_works(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """A key deleted in Mailchimp stays saved: `mailchimp status` said "connected" (Slack's
    /referral mailchimp asks Mailchimp and offers to reconnect)."""
    import asyncio

    from tests.shell import run

    env = {**db_env, "SECRET_KEY": SECRET, "MAILCHIMP_API_URL": mc.base_url}

    async def status(*args: str) -> str:
        result = await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, "status", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert (await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, "connect",
                                    "--api-key", KEY)).returncode == 0  # fmt: skip
    assert json.loads(await status("--json"))["health"] == "working"
    said = await status()
    # in the words `mailchimp disconnect` uses for it (it said "by cli")
    assert "refuses" not in said and ", from the command line on " in said, said
    from bot.home_refresh import HOME_REFRESH_JOB
    from models import HomeViewer
    from models.clock import utcnow

    async with db.session() as session:  # someone looks at App Home
        session.add(HomeViewer(team_id=TEAM, user_id="U0002", opened_at=utcnow()))
        await session.commit()
    mc.revoke(KEY)
    out = json.loads(await status("--json"))
    assert (out["connected"], out["health"]) == (True, "refused")
    async with db.begin() as conn:  # Home says so: serve's worker republishes it
        kinds = (await conn.execute(text("SELECT kind FROM job"))).scalars().all()
    assert kinds == [HOME_REFRESH_JOB]
    said = await status()
    assert "But Mailchimp refuses its credentials (revoked, or the key deleted): connect " \
           "again: referral-bot mailchimp connect --team T0001 (it asks for the key)" in said, (
        said)  # the workspace it was asked of, named as it was (0b114da)
    assert "--api-key KEY" not in said  # a key typed there stays in the shell's history


async def test_a_cli_import_whose_audience_mailchimp_wont_serve_fails_in_words(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Out of retries reading the audience: one line saying so, and no draft left behind
    (one kept its segment from ever being deleted)."""
    import asyncio

    from tests.shell import run

    env = {**db_env, "SECRET_KEY": SECRET, "MAILCHIMP_API_URL": mc.base_url}
    assert (await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, "connect",
                                    "--api-key", KEY)).returncode == 0  # fmt: skip
    mc.fail_next("/3.0/lists/aud1/members", 503, body={"title": "Busy"}, times=1000)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    failed = await asyncio.to_thread(run, env, "import", "--mailchimp-list", "aud1",
                                     "--segment", "MC", "--create-segment", "--team", TEAM)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert "Mailchimp kept failing" in failed.stderr and "Nothing was imported." in failed.stderr
    async with db.begin() as conn:
        statuses = (await conn.execute(text("SELECT status FROM import_batch"))).scalars().all()
    assert statuses == ["cancelled"]
    # the segment --create-segment made for it is gone again (nothing was imported into it)
    listed = await asyncio.to_thread(run, env, "segments", "--json", "--team", TEAM)
    assert "MC" not in {s["name"] for s in json.loads(listed.stdout)}, listed.stdout


async def test_a_retried_page_is_logged_with_its_audience(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Several workspaces' reads may be retrying at once: each warning says whose list."""
    mc.account(KEY).add_list("big", "Big").add_members(1_500)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    mc.fail_next("/3.0/lists/big/members", 503, body={"title": "Busy"})
    with await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big") as found:
        assert len(found) == 1_500
    said = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert said and "audience big" in said[0] and mc.base_url in said[0], said


@pytest.mark.parametrize(("body", "content_type"), [
    ('{"members": [{"email_addr', "application/json"),  # a JSON reply cut off part way
    ("<html>Be right back</html>", "text/html"),  # a maintenance page with a 200
])  # fmt: skip
async def test_a_page_that_isnt_json_is_read_again_not_taken_as_empty(
    db: Database, mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch, body: str,
    content_type: str,
) -> None:  # fmt: skip
    mc.account(KEY).add_list("big", "Big").add_members(2_500)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    mc.fail_next("/3.0/lists/big/members", 200, body, times=2, content_type=content_type)
    with await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big") as members:
        assert len({m["email_address"] for m in members}) == 2_500
    mc.fail_next("/3.0/lists/big/members", 200, body, times=api.RETRIES, content_type=content_type)
    with pytest.raises(api.MailchimpError, match="isn't JSON"):
        await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big")


async def test_a_page_failing_for_good_stops_the_other_pages(
    db: Database, mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch
) -> None:
    mc.account(KEY).add_list("huge", "Huge").add_members(20_000)
    mc.slow("/3.0/lists/huge/members", 0.2, times=1000)
    real = api._page

    async def page(creds: api.Credentials, list_id: str, offset: int) -> dict[str, Any]:
        if offset == 1000:
            mc.fail_next("/3.0/lists/huge/members", 400, {"title": "Invalid Resource"})
        return await real(creds, list_id, offset)

    monkeypatch.setattr(api, "_page", page)
    with pytest.raises(api.MailchimpError, match="refused"):
        await api.members(api.Credentials(mc.base_url, "api_key", KEY), "huge")
    started = len(mc.requests_to("/3.0/lists/huge/members"))
    await asyncio.sleep(1)  # pages already running in threads finish; no new one starts
    assert len(mc.requests_to("/3.0/lists/huge/members")) <= started + api.MAX_IN_FLIGHT
    assert len(mc.requests_to("/3.0/lists/huge/members")) < 20


async def test_a_slow_first_page_is_waited_for_not_spun_on(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the oldest page held slow (a Retry-After, a retry's backoff) and later ones done,
    the reader waited on the done ones too, which returned at once: a busy loop burning a
    core (28,068 waits for one read) until the slow page came."""
    mc.account(KEY).add_list("big", "Big").add_members(8_000)
    real_page, real_wait = api._page, asyncio.wait
    waits = 0

    async def page(creds: api.Credentials, list_id: str, offset: int) -> dict[str, Any]:
        if offset == 1000:
            await asyncio.sleep(1)
        return await real_page(creds, list_id, offset)

    async def wait(*args: Any, **kwargs: Any) -> Any:
        nonlocal waits
        waits += 1
        return await real_wait(*args, **kwargs)

    monkeypatch.setattr(api, "_page", page)
    monkeypatch.setattr(api.asyncio, "wait", wait)
    with await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big") as found:
        assert len(found) == 8_000
    assert waits <= 20, f"{waits} waits for 8 pages"


async def test_an_audience_deleted_since_is_said_so_in_words_once(
    db: Database, mc: FakeMailchimp
) -> None:
    with pytest.raises(api.NotFound) as gone:
        await api.members(api.Credentials(mc.base_url, "api_key", KEY), "deleted-list")
    assert str(gone.value) == "Mailchimp couldn't read that audience: it doesn't exist (any more)."
    assert [r.status for r in mc.requests_to("/3.0/lists/deleted-list")] == [404]


async def test_a_key_with_a_pasted_invisible_character_is_not_a_key(
    db: Database, mc: FakeMailchimp
) -> None:
    with pytest.raises(api.MailchimpError, match="doesn't look like a Mailchimp API key"):
        await accounts.connect_api_key(db, TEAM, "0123456789abcdef\u200b0123-us21", user="U1",
                                       secret_key=SECRET, api_url=mc.base_url)  # fmt: skip
    assert mc.requests == []


@pytest.mark.parametrize("change", ["deleted", "moved to the end", "one left, one joined"])
async def test_a_list_changing_while_it_is_read_loses_nobody_and_doubles_nobody(
    db: Database, mc: FakeMailchimp, change: str
) -> None:
    """Pages are read by offset: ten members leaving the first page after it was read moved
    the first ten of the second page into the first, read already, and they were never
    imported. Ten moving to the end (Mailchimp orders by a field that changed) were also
    counted as duplicates of themselves. One leaving and one joining keeps the count: the
    member shifted back into the first page was lost, unseen."""
    busy = mc.account(KEY).add_list("busy", "Busy")
    busy.add_members(2_500, statuses=("subscribed",))
    everyone = {m.email_address.lower() for m in busy.members}

    def edit() -> None:
        if change == "one left, one joined":
            gone = busy.members.pop(5)
            busy._index.pop(gone.id, None)
            busy.add_member("newbie@example.com", changed_now=True)
            return
        first_ten = busy.members[:10]
        del busy.members[:10]
        if change == "moved to the end":
            busy.members.extend(first_ten)

    mc.after("/3.0/lists/busy/members", edit)  # once the first page went out
    chosen = (api.Credentials(mc.base_url, "api_key", KEY), [api.Audience("busy", "Busy", 2_500)])
    result = await import_files(db, TEAM, [], segment="Busy", create_segment=True,
                                mailchimp=chosen)
    async with db.begin() as conn:
        imported = set((await conn.execute(text("SELECT lower(email) FROM contact"))).scalars())
    if change == "one left, one joined":
        everyone.add("newbie@example.com")
    assert imported == everyone  # those deleted were members when the import started
    assert (result.batch.valid, result.batch.duplicates) == (len(everyone), 0)


async def test_an_audience_read_again_keeps_its_order_in_the_skipped_rows_csv(
    db: Database, mc: FakeMailchimp
) -> None:
    """A list that changed while it was read is read again, the reads merged: each member
    came out at its last sighting, so one deleted from the first page (seen by the first
    read only) came first and every member before it moved a line down: the skipped-rows
    CSV said line 11 for the audience's 10th member. Lines are the audience's order now, as
    when it is read once, with what the last read said of each member."""
    import csv
    import io

    busy = mc.account(KEY).add_list("busy", "Busy")
    for n in range(1, 2_501):
        busy.add_member(f"m{n:04d}@example.com",
                        "unsubscribed" if n in (10, 950, 990) else "subscribed")  # fmt: skip

    def edit() -> None:  # once the first page (members 1 to 1,000) went out
        busy.members.pop(989)  # the 990th leaves: the list is read again
        changed = busy.member("m0020@example.com")  # and the 20th unsubscribes
        changed.status = "unsubscribed"
        changed.last_changed = datetime.now().astimezone().isoformat(timespec="seconds")

    mc.after("/3.0/lists/busy/members", edit)
    rejects = io.StringIO()
    chosen = (api.Credentials(mc.base_url, "api_key", KEY), [api.Audience("busy", "Busy", 2_500)])
    result = await import_files(db, TEAM, [], segment="Busy", create_segment=True,
                                rejects=rejects, mailchimp=chosen)  # fmt: skip
    assert len([r for r in mc.requests_to("/3.0/lists/busy/members")
                if "since_last_changed" not in r.query]) > 3  # read twice  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(rejects.getvalue())))
    assert [(r["line"], r["email"], r["reason"]) for r in rows] == [
        ("10", "m0010@example.com", "unsubscribed in Mailchimp"),
        ("20", "m0020@example.com", "unsubscribed in Mailchimp"),  # as the second read said
        ("950", "m0950@example.com", "unsubscribed in Mailchimp"),
        ("990", "m0990@example.com", "unsubscribed in Mailchimp"),  # a member when it began
    ]  # fmt: skip
    assert (result.batch.valid, result.batch.rejected) == (2_496, 4)


async def test_connect_again_after_a_failed_sign_in_works_as_the_page_says(
    db: Database, mc: FakeMailchimp
) -> None:
    """The error page says "try Connect again", and Connect in Slack is the same start link:
    its state was spent on the failed exchange, so that answered "Link already used"."""
    settings = _settings(db, mc)
    token = "oauth-token-2"
    mc.add_account(token=token, dc="us7", name="Northwind Coffee")
    mc.issue_code("code-2", token, token)
    mc.fail_next("/oauth2/token", 503, "<html>Service Unavailable</html>")
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002")  # the Connect button's, clicked twice
        authorize = await _continue(http, site, mc, state)
        status, page = await _back_from_mailchimp(http, site, "code-1", authorize)
        assert status == 502 and "try Connect again" in page
        assert "Mailchimp was unavailable (503) while finishing the sign-in" in page
        assert await accounts.connection(db, TEAM) is None
        authorize = await _continue(http, site, mc, state)
        status, page = await _back_from_mailchimp(http, site, "code-2", authorize)
        assert status == 200, page
        status, page = await _back_from_mailchimp(http, site, "code-2", authorize)
        assert status == 400 and "already used" in page
    found = await accounts.connection(db, TEAM)
    assert found is not None and found.dc == "us7"


async def test_an_audience_name_two_audiences_share_is_refused_not_guessed(
    db: Database, mc: FakeMailchimp
) -> None:
    """Mailchimp lets two audiences have one name: `--mailchimp-list Newsletter` imported
    whichever came first, perhaps the other shop's customers, and said nothing."""
    from bot.cli_mailchimp import MailchimpCliError, resolve_audiences

    settings = _settings(db, mc)
    await accounts.connect_api_key(db, TEAM, KEY, user="U1", secret_key=SECRET,
                                   api_url=settings.mailchimp_api_url)  # fmt: skip
    mc.account(KEY).add_list("aud3", "newsletter")
    with pytest.raises(MailchimpCliError, match=r"2 audiences are named 'Newsletter'.*aud2.*aud3"):
        await resolve_audiences(db, TEAM, settings, ["Newsletter"])
    _, chosen = await resolve_audiences(db, TEAM, settings, ["aud3", "Regulars"])
    assert [a.id for a in chosen] == ["aud3", "aud1"]


async def test_one_audience_named_twice_is_read_and_counted_once(
    db: Database, mc: FakeMailchimp
) -> None:
    """`import --mailchimp-list aud1 --mailchimp-list Regulars` (its id, then its name): the
    audience was read twice, its members counted as duplicates of themselves and its one
    unsubscribed member reported as two."""
    from bot.cli_mailchimp import resolve_audiences

    settings = _settings(db, mc)
    await accounts.connect_api_key(db, TEAM, KEY, user="U1", secret_key=SECRET,
                                   api_url=settings.mailchimp_api_url)  # fmt: skip
    chosen = await resolve_audiences(db, TEAM, settings, ["aud1", "Regulars", "newsletter", "aud2"])
    assert [a.id for a in chosen[1]] == ["aud1", "aud2"]
    result = await import_files(db, TEAM, [], segment="MC", create_segment=True,
                                mailchimp=chosen)  # fmt: skip
    assert result.skipped_by_status == {"unsubscribed": 1, "cleaned": 1, "pending": 1}
    assert (result.batch.valid, result.batch.duplicates) == (3, 1)


async def test_an_empty_audience_is_said_to_have_no_members(
    db: Database, mc: FakeMailchimp
) -> None:
    """It said "the files have a header but no rows", of an import with no file at all."""
    from bot.imports.importer import ImportFailed

    mc.account(KEY).add_list("empty", "Empty")
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    with pytest.raises(ImportFailed) as failed:
        await import_files(db, TEAM, [], segment="E", create_segment=True,
                           mailchimp=(creds, [api.Audience("empty", "Empty", 0)]))  # fmt: skip
    assert str(failed.value) == ("Nothing to import: the Mailchimp audience Empty has no members. "
                                 "Nothing was imported.")  # fmt: skip


async def test_an_audience_with_renamed_name_tags_keeps_its_members_names(
    db: Database, mc: FakeMailchimp
) -> None:
    """An audience whose merge tags are FIRSTNAME / SURNAME, not FNAME / LNAME: every member
    was imported without a name, and invites said "Hi bob,". Mailchimp's own `full_name`
    gives it now; FNAME and LNAME still come first."""
    account = mc.accounts[0]
    shop = account.add_list("aud9", "Shop")
    shop.add_member("bob@example.com", merge_fields={"FIRSTNAME": "Bob", "SURNAME": "Smith"},
                    full_name="Bob Smith")  # fmt: skip
    shop.add_member("ann@example.com", first_name="Ann", last_name="Lee", full_name="A. Lee")
    settings = _settings(db, mc)
    await accounts.connect_api_key(db, TEAM, KEY, user="U1", secret_key=SECRET,
                                   api_url=settings.mailchimp_api_url)  # fmt: skip
    creds = await accounts.credentials(db, TEAM, SECRET)
    chosen = [a for a in await api.audiences(creds) if a.id == "aud9"]
    await import_files(db, TEAM, [], segment="Shop", create_segment=True,
                       mailchimp=(creds, chosen))  # fmt: skip
    async with db.begin() as conn:
        rows = (await conn.execute(text("SELECT email, first_name, last_name FROM contact "
                                        "ORDER BY email"))).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [("ann@example.com", "Ann", "Lee"),
                                        ("bob@example.com", "Bob", "Smith")]  # fmt: skip


_REFUSE_SAVES = {  # the database refusing to store the account (as a locked one does)
    "sqlite": ["CREATE TRIGGER refuse_save BEFORE INSERT ON mailchimp_account "
               "BEGIN SELECT RAISE(ABORT, 'database is locked'); END"],
    "postgresql": ["CREATE FUNCTION refuse_save() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'could not write'; END $$",
                   "CREATE TRIGGER refuse_save BEFORE INSERT ON mailchimp_account "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_save()"],
}  # fmt: skip


async def test_a_sign_in_the_database_failed_to_save_can_be_connected_again(
    db: Database, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """The database failed while the account was saved: a bare 500, and Connect in Slack (the
    same start link) then said "already used to sign in". Once saved, a failing message in
    Slack turned the connection made into a 500 too."""

    async def slack_down(team_id: str, user_id: str, account: str) -> None:
        raise ConnectionError("slack.com unreachable")

    settings = _settings(db, mc)
    mc.add_account(token="t1", dc="us7", name="Northwind Coffee")
    mc.issue_code("code-1", "t1", "t1")
    mc.issue_code("code-2", "t1", "t1")
    routes = public_routes(db, settings, on_connected=slack_down)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002")  # the Connect button's, clicked twice
        async with db.begin() as conn:
            for statement in _REFUSE_SAVES[db.dialect]:
                await conn.execute(text(statement))
        authorize = await _continue(http, site, mc, state)
        status, page = await _back_from_mailchimp(http, site, "code-1", authorize)
        assert status == 500 and "Not connected" in page and "try Connect again" in page
        assert await accounts.connection(db, TEAM) is None
        async with db.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_save" + (
                " ON mailchimp_account" if db.dialect == "postgresql" else "")))
        authorize = await _continue(http, site, mc, state)
        status, page = await _back_from_mailchimp(http, site, "code-2", authorize)
        assert status == 200 and "Northwind Coffee is connected" in page, page
    assert await accounts.connection(db, TEAM) is not None
    assert f"failed before the account was saved (team {TEAM}, user U0002)" in caplog.text
    assert "wasn't told in Slack" in caplog.text


async def _consent(db: Database) -> dict[str, bool]:
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT email, subscribed FROM contact"))
        return {email: bool(subscribed) for email, subscribed in rows}


_SHOP = (b"Email,First Name,Accepts Email Marketing\ngone@example.com,Gone,yes\n"
         b"bounce@example.com,Bounce,yes\nnever@example.com,Never,yes\n")  # fmt: skip


async def test_an_audience_unsubscribe_in_the_same_import_is_heeded_like_the_exports(
    db: Database, mc: FakeMailchimp
) -> None:
    """The shop's customer list (accepts marketing: yes) and the connected audience in one
    import, Mailchimp saying gone@ unsubscribed: the review said "skipped: 1 unsubscribed"
    and gone@ was imported subscribed and invited. Mailchimp's export of the same audience
    was heeded. A cleaned member (bounce@: the address bounced) is heeded the same way: its
    invite would bounce again."""
    import io

    mc.account(KEY).get_list("aud1").add_member("never@example.com", "transactional")
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    result = await import_files(db, TEAM, [("customers.csv", io.BytesIO(_SHOP))],
                                segment="Shop", create_segment=True,
                                mailchimp=(creds, [api.Audience("aud1", "Regulars", 2)]))
    assert result.skipped_by_status == {"unsubscribed": 1, "cleaned": 1, "transactional": 1}
    assert (result.batch.valid, result.batch.new_contacts) == (5, 5)
    assert await _consent(db) == {"gone@example.com": False, "bounce@example.com": False,
                                  "never@example.com": False, "ana@example.com": True,
                                  "joao@example.com": True}  # fmt: skip


async def test_a_known_contact_unsubscribed_in_the_audience_stops_being_invited(
    db: Database, mc: FakeMailchimp
) -> None:
    """gone@ was imported from the shop's list last week and has unsubscribed in Mailchimp
    since: importing the audience left them subscribed (Mailchimp's unsubscribed export
    withdraws their consent). Their skipped row creates no contact. So does bounce@'s, cleaned
    in the audience (the address bounced): no invite to it."""
    import io

    await import_files(db, TEAM, [("customers.csv", io.BytesIO(_SHOP))], segment="Shop",
                       create_segment=True)  # fmt: skip
    mc.account(KEY).get_list("aud1").add_member("never@example.com", "transactional")
    mc.account(KEY).get_list("aud1").add_member("other@example.com", "unsubscribed")
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    await import_files(db, TEAM, [], segment="Shop",
                       mailchimp=(creds, [api.Audience("aud1", "Regulars", 2)]))  # fmt: skip
    assert await _consent(db) == {"gone@example.com": False, "bounce@example.com": False,
                                  "never@example.com": False, "ana@example.com": True,
                                  "joao@example.com": True}  # fmt: skip


class _Reads:
    """An ImportNotifier that only remembers the sources it was told were read."""

    def __init__(self) -> None:
        self.read: list[int] = []

    async def source_read(self, team_id: str, batch_id: int, source_id: int) -> None:
        self.read.append(source_id)


@pytest.mark.parametrize("then", ["disconnect", "another account", "the same key again"])
async def test_a_disconnect_while_an_audience_is_read_stages_none_of_its_members(
    db: Database, mc: FakeMailchimp, then: str
) -> None:
    """A lead connected the wrong account (an agency's: another client's audience in the
    import) and clicks Disconnect, or connects the right one, while the audience is read:
    the read went on with the credentials it had, and the other account's members landed in
    the review to be approved. The same key saved again (a Reconnect after a check Mailchimp
    didn't answer, or `mailchimp connect` in the shell) is the same connection: its read
    goes on (it failed as disconnected, though README says the same key keeps them)."""
    from bot.imports.batches import create_batch
    from bot.jobs.queue import list_jobs
    from bot.jobs.worker import JobContext
    from bot.mailchimp.importing import DISCONNECTED
    from bot.mailchimp.jobs import MAILCHIMP_JOB, mailchimp_handler, queue_audiences
    from bot.workspaces import create_segment
    from models import ImportSource

    settings = _settings(db, mc)
    await accounts.connect_api_key(db, TEAM, KEY, user="U1", secret_key=SECRET,
                                   api_url=settings.mailchimp_api_url)  # fmt: skip
    other_key = "fedcba9876543210fedcba9876543210-us21"
    mc.add_account(other_key, name="The right shop")
    segment = await create_segment(db, TEAM, "From MC", actor="U1")
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    (source_id,) = await queue_audiences(db, TEAM, batch.id or 0,
                                         [api.Audience("aud1", "Regulars", 2)])  # fmt: skip
    job = next(j for j in await list_jobs(db, TEAM) if j.kind == MAILCHIMP_JOB)
    job.attempts = 1
    mc.slow("/3.0/lists/aud1/members", 0.5)  # the first page takes a moment
    ctx = JobContext(db, job, "w1", json.loads(job.payload), asyncio.Event())
    notifier = _Reads()
    reading = asyncio.create_task(mailchimp_handler(settings, notifier)(ctx))  # type: ignore[arg-type]
    while not mc.requests_to("/3.0/lists/aud1/members"):
        await asyncio.sleep(0.01)
    if then == "disconnect":
        assert await accounts.disconnect(db, TEAM, user="U1")
    else:
        await asyncio.sleep(0.05)  # not the same clock tick as the first connection
        key = KEY if then == "the same key again" else other_key
        await accounts.connect_api_key(db, TEAM, key, user="U2", secret_key=SECRET,
                                       api_url=settings.mailchimp_api_url)  # fmt: skip
    await reading
    async with db.session() as session:
        source = await session.get(ImportSource, source_id)
    async with db.begin() as conn:
        staged = (await conn.execute(text("SELECT COUNT(*) FROM staged_row WHERE source_id = :s"),
                                     {"s": source_id})).scalar()  # fmt: skip
    assert source is not None
    if then == "the same key again":
        assert (source.status, source.error, staged) == ("parsed", None, 4), source.error
    else:
        assert (source.status, source.error, staged) == ("failed", DISCONNECTED, 0)
    assert notifier.read == [source_id]  # the thread is told


async def test_subscribed_members_without_a_valid_address_are_counted_together(
    db: Database, mc: FakeMailchimp
) -> None:
    """`referral-bot import --mailchimp-list`'s `skipped_by_status` had a key per validator
    sentence ("Invalid email: The part after the @-sign is not valid. ...") beside the
    statuses; they are one "invalid email" count now."""
    odd = mc.account(KEY).add_list("odd", "Odd")
    odd.add_member("ok@example.com", "subscribed")
    odd.add_member("bad@localhost", "subscribed")
    odd.add_member("worse@@example.com", "subscribed")
    odd.add_member("arch@example.com", "archived")
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    result = await import_files(db, TEAM, [], segment="Odd", create_segment=True,
                                mailchimp=(creds, [api.Audience("odd", "Odd", 3)]))  # fmt: skip
    assert result.skipped_by_status == {"archived": 1, "invalid email": 2}
    assert (result.batch.valid, result.batch.rejected) == (1, 3)


async def _names_of(db: Database) -> list[tuple[str, str, str]]:
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT email, first_name, last_name FROM contact "
                                       "ORDER BY email"))  # fmt: skip
        return [tuple(r) for r in rows]


async def test_renamed_name_tags_give_first_and_last_names_as_mailchimp_wrote_them(
    db: Database, mc: FakeMailchimp,
) -> None:  # fmt: skip
    """Mailchimp's whole name is FNAME then LNAME in every script: an audience that renamed
    both tags had 悠斗 田中 stored as first name 田中 (split as a CJK whole-name column is,
    family name first); one that renamed only FNAME lost the first name ("Hi bob," from the
    address)."""
    shop = mc.account(KEY).add_list("aud9", "Shop")
    shop.add_member("haruto@example.com", merge_fields={"FIRSTNAME": "悠斗", "SURNAME": "田中"},
                    full_name="悠斗 田中")  # fmt: skip
    shop.add_member("bob@example.com", last_name="Smith", merge_fields={"FIRSTNAME": "Bob"},
                    full_name="Bob Smith")  # fmt: skip
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    await import_files(db, TEAM, [], segment="Shop", create_segment=True,
                       mailchimp=(creds, [api.Audience("aud9", "Shop", 2)]))  # fmt: skip
    assert await _names_of(db) == [("bob@example.com", "Bob", "Smith"),
                                   ("haruto@example.com", "悠斗", "田中")]  # fmt: skip


async def test_a_200_with_no_body_is_read_again_not_an_empty_audience(
    db: Database, mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A members page answered 200 with an empty body (cut off before it) was taken as no
    members: "the Mailchimp audience Big has no members. Nothing was imported."."""
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    big = mc.account(KEY).add_list("big", "Big")
    big.add_members(50, statuses=("subscribed",))
    mc.fail_next("/3.0/lists/big/members", 200, times=1)  # no body
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    result = await import_files(db, TEAM, [], segment="Big", create_segment=True,
                                mailchimp=(creds, [api.Audience("big", "Big", 50)]))  # fmt: skip
    assert result.batch.valid == 50


async def test_a_429_is_retried_when_its_retry_after_says(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A 429 naming its Retry-After was retried after our own backoff (1, 2, 4 … s): under
    a sustained limit the five tries were spent in about 15 s, and the import failed though
    Mailchimp had said when to come back."""
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    mc.fail_next("/3.0/lists/aud1/members", 429,
                 mc.problem(429, "Too Many Requests", "You have exceeded the limit of 10 "
                            "simultaneous connections."),
                 headers={"Retry-After": "2"})  # fmt: skip
    with await api.members(api.Credentials(mc.base_url, "api_key", KEY), "aud1") as found:
        assert len(found) == 4
    reads = [r for r in mc.requests_to("/3.0/lists/aud1/members")
             if "since_last_changed" not in r.query]  # fmt: skip
    assert [r.status for r in reads[:2]] == [429, 200]
    assert reads[1].started - (reads[0].finished or 0) >= 2.0


async def test_a_big_audience_is_read_in_bounded_memory(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every member was held as the client's parsed dict (~1.2 KB each) until the whole
    audience was read: a million-member audience took over a gigabyte. Pages now go to disk
    as they come, and only a hash per address stays in memory (the peak here counts the
    fake's rendering of pages too)."""
    import tracemalloc

    members = 20_000
    mc.account(KEY).add_list("big", "Big").add_members(members)
    monkeypatch.setattr(api, "MAX_IN_FLIGHT", 2)  # fewer pages held at once: less noise
    tracemalloc.start()
    try:
        found = await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 800 * members, f"{peak / 1e6:.1f} MB to read {members:,} members"  # 22 MB before
    with found:
        assert len(found) == members
        assert len({m["email_address"].lower() for m in found}) == members


async def test_a_sign_in_continued_late_in_its_links_life_has_its_own_ten_minutes(
    db: Database, mc: FakeMailchimp
) -> None:
    """The state sent to Mailchimp kept the start link's expiry, though the cookie set at
    Continue lives STATE_TTL from then: a lead who continued at the link's 8th minute and
    spent 3 on Mailchimp's login was told the sign-in "isn't valid or has expired". Here:
    Continue in the link's last seconds, back from Mailchimp after the link expired."""
    import time

    from bot.mailchimp.oauth import BadState, read_bound_state

    token = "oauth-token-late"
    mc.add_account(token=token, dc="us7", name="Late Shop")
    mc.issue_code("code-late", token, token)
    routes = public_routes(db, _settings(db, mc))
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        state = make_state(SECRET, TEAM, "U0002", now=time.time() - STATE_TTL + 2)
        link_expires = read_state(SECRET, state).expires
        continued = time.time()
        authorize = await _continue(http, site, mc, state)
        bound = read_bound_state(SECRET, authorize["state"])
        assert int(continued) + STATE_TTL <= bound.expires <= time.time() + STATE_TTL
        with pytest.raises(BadState):  # and not valid for ever either
            read_bound_state(SECRET, authorize["state"], now=bound.expires + 1)
        await asyncio.sleep(link_expires - time.time() + 1.1)  # signing in on Mailchimp
        async with http.get(f"{site}{CONNECT_PATH}", params={"state": state}) as response:
            assert response.status == 400  # the start link itself has expired
        status, page = await _back_from_mailchimp(http, site, "code-late", authorize)
        assert status == 200 and "connected" in page, page
    found = await accounts.connection(db, TEAM)
    assert found is not None and found.account_name == "Late Shop"


async def test_a_disconnect_during_a_shell_imports_read_imports_nothing_of_it(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp
) -> None:
    """`referral-bot import --mailchimp-list` read its audiences without the connection they
    came from: a Disconnect in Slack during a long read went unnoticed, and the members of
    the account the workspace let go were imported."""
    from tests.shell import run

    env = {**db_env, "SECRET_KEY": SECRET, "MAILCHIMP_API_URL": mc.base_url}
    assert (await asyncio.to_thread(run, env, "mailchimp", "--team", TEAM, "connect",
                                    "--api-key", KEY)).returncode == 0  # fmt: skip
    mc.slow("/3.0/lists/aud1/members", 1.0)  # the first page takes a moment
    importing = asyncio.create_task(asyncio.to_thread(
        run, env, "import", "--mailchimp-list", "Regulars", "--segment", "MC",
        "--create-segment", "--team", TEAM))  # fmt: skip
    while not mc.requests_to("/3.0/lists/aud1/members"):
        await asyncio.sleep(0.01)
    assert await accounts.disconnect(db, TEAM, user="U0001")  # a lead, in Slack
    done = await importing
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "Mailchimp audience 'Regulars': Mailchimp was disconnected" in done.stderr, done.stderr
    assert "Nothing was imported." in done.stderr
    async with db.begin() as conn:
        contacts = (await conn.execute(text("SELECT COUNT(*) FROM contact"))).scalar()
        batches = (await conn.execute(text("SELECT status FROM import_batch"))).scalars().all()
    assert (contacts, batches) == (0, ["cancelled"])


async def test_an_error_page_mailchimp_refuses_with_is_said_in_words(
    mc: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    """A 4xx whose body is no problem document (a front end's HTML) was shown as it came."""
    caplog.set_level(logging.INFO, logger="bot")
    mc.fail_next("/3.0/lists/aud1/members", 400, "<html><body>Bad Request</body></html>")
    with pytest.raises(api.Refused) as refused:
        await api.members(api.Credentials(mc.base_url, "api_key", KEY), "aud1")
    assert str(refused.value) == ("Mailchimp refused to read that audience: it answered with an "
                                  "error page (400)")  # fmt: skip
    assert "<html><body>Bad Request</body></html>" in caplog.text
    mc.fail_next("/3.0/lists/aud1/members", 401, "<html>Unauthorized</html>")
    with pytest.raises(api.ReconnectNeeded) as refused_key:
        await api.members(api.Credentials(mc.base_url, "api_key", KEY), "aud1")
    assert str(refused_key.value) == ("Mailchimp refused our credentials: reconnect Mailchimp "
                                      "with /referral mailchimp.")  # fmt: skip


@pytest.mark.parametrize("how", ["piped", "dash"])
async def test_an_api_key_can_be_given_on_stdin_kept_out_of_shell_history(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, how: str
) -> None:
    """`connect --api-key KEY` was the only way: the key went into the shell's history and
    the process list. Without --api-key (or with `--api-key -`) it is read from stdin, or
    asked for without echo on a terminal."""
    import subprocess

    from tests.shell import CLI, environment

    env = {**db_env, "SECRET_KEY": SECRET, "MAILCHIMP_API_URL": mc.base_url}
    args = ["mailchimp", "--team", TEAM, "connect"] + (["--api-key", "-"] if how == "dash" else [])
    done = await asyncio.to_thread(
        subprocess.run, [*CLI, *args], env=environment(env), input=f"{KEY}\n",
        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Mailchimp connected"), done.stdout
    assert KEY not in done.stdout + done.stderr
    empty = await asyncio.to_thread(
        subprocess.run, [*CLI, *args], env=environment(env), input="\n", capture_output=True,
        text=True, timeout=120)  # fmt: skip
    assert empty.returncode == 1
    assert "No API key given" in empty.stderr, empty.stderr


async def test_the_same_key_saved_again_is_the_same_connection(
    db: Database, mc: FakeMailchimp
) -> None:
    """Whether or not an import reads from it: who connected it and when stay (the audit log
    records the save again)."""
    settings = _settings(db, mc)
    for user in ("U1", "U2"):
        await accounts.connect_api_key(db, TEAM, KEY, user=user, secret_key=SECRET,
                                       api_url=settings.mailchimp_api_url)  # fmt: skip
    found = await accounts.connection(db, TEAM)
    assert found is not None and found.connected_by == "U1"


def test_a_state_signed_before_states_said_what_connect_was_drawn_for_still_reads() -> None:
    """A Connect link shown by the release before (five fields, valid 10 minutes) still
    works after an upgrade: it names no connection, so it replaces whatever is connected,
    as it did then."""
    import time

    from bot.mailchimp import oauth

    legacy = oauth._sign(SECRET, oauth._START, [TEAM, "U0002", int(time.time()) + 60,
                                                "nonce", "Dana"])  # fmt: skip
    start = read_state(SECRET, legacy)
    assert (start.team_id, start.user_id, start.person, start.seen) == (TEAM, "U0002", "Dana", "")
    bound = oauth.read_bound_state(SECRET, bind_state(SECRET, start, "x" * 43))
    assert bound.seen == "" and accounts.Seen.read(bound.seen) is None
    drawn = read_state(SECRET, make_state(SECRET, TEAM, "U0002", seen="none"))
    assert accounts.Seen.read(drawn.seen) == accounts.Seen(None)
