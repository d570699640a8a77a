"""A PUBLIC_URL with a path (`https://shop.example/referrals`): a shared domain whose proxy
forwards `/referrals/*` to `serve` without taking the path off, or no proxy at all. The links
the bot writes carry the path; `serve` answers them there, and at the root as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from urllib.parse import urljoin

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from bot.app import build_web_app, quiet_access_log
from bot.campaigns.links import referral_link, unsubscribe_link
from bot.settings import load_settings
from bot.web import public_routes
from tests.campaigns.conftest import SECRET, TEAM, World, people
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackRequests
from tests.test_serve import free_port

KEY = "test-secret" * 3  # serve's SECRET_KEY: 33 characters
FORM = re.compile(r'<form method="post" action="([^"]*)">')


async def _advocates(world: World) -> list[tuple[str, int]]:
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    await world.target(await world.campaign(store_url="https://shop.example/spring"), "VIP")
    rows = await world.rows("SELECT a.code, a.contact_id FROM advocate a JOIN contact c "
                            "ON c.id = a.contact_id ORDER BY c.email_key")  # fmt: skip
    return [(str(code), int(contact)) for code, contact in rows]


async def _started(base: str, server: subprocess.Popen[str]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{base}/healthz") as response:
                    await response.read()
                    return
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.1)
    raise AssertionError("serve did not start: " + (server.stderr.read() if server.stderr else ""))


async def test_serve_answers_the_links_it_makes_under_public_urls_path(
    world: World, db_env: dict[str, str], slack: FakeSlack
) -> None:
    """PUBLIC_URL=https://shop.example/referrals made links to /referrals/r/CODE and
    /referrals/u/TOKEN, and serve answered /r/CODE and /u/TOKEN only: behind a proxy that
    forwards the path as it is, every referral and unsubscribe link was a 404. serve answers
    both now, Slack and /healthz too, and its access log keeps the secrets out under the
    path as at the root."""
    (code, ana), (_, ben) = await _advocates(world)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    public = f"{root}/referrals"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env.update(db_env)
    env.update({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret",
                "SECRET_KEY": KEY, "SLACK_API_URL": slack.api_url, "PORT": str(port),
                "HOST": "127.0.0.1", "PUBLIC_URL": public})  # fmt: skip
    settings = load_settings(public_url=public, secret_key=KEY, database_url=world.db.url)
    server = subprocess.Popen([sys.executable, "-m", "bot.launch", "serve", "--no-worker"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    unsubscribe = unsubscribe_link(settings.public_base, KEY, TEAM, ana, "a@example.com")
    token = unsubscribe.rsplit("/", 1)[1]
    try:
        await _started(root, server)
        async with aiohttp.ClientSession() as http:
            # the referral link as invites and Slack's contact card write it, and at the root
            for link in (referral_link(settings.public_base, code), f"{root}/r/{code}"):
                assert link.startswith(public) or link.startswith(f"{root}/r/")
                async with http.get(link, allow_redirects=False) as response:
                    assert response.status == 302, link
                    assert response.headers["Location"] == f"https://shop.example/spring?ref={code}"
            async with http.get(f"{public}/r/NOPE2345?utm_content=ada%40SECRET.example",
                                allow_redirects=False) as response:  # fmt: skip
                assert response.status == 404
            # the unsubscribe link, and its form's button as a browser sends it
            async with http.get(unsubscribe) as response:
                assert response.status == 200, await response.text()
                action = FORM.search(await response.text())
            assert action is not None
            async with http.post(urljoin(unsubscribe, action[1])) as response:
                assert response.status == 200 and "unsubscribed" in await response.text()
            # one-click (RFC 8058): the List-Unsubscribe URL, posted as it is
            one_click = unsubscribe_link(settings.public_base, KEY, TEAM, ben, "b@example.com")
            async with http.post(one_click, data={"List-Unsubscribe": "One-Click"}) as response:
                assert response.status == 200
            async with http.get(f"{public}/u/{token}/", allow_redirects=False) as response:
                assert response.status == 308 and response.headers["Location"] == f"../{token}"
            # the Mailchimp sign-in's callback: its redirect URI is PUBLIC_URL's
            async with http.get(f"{public}/mailchimp/oauth/callback",
                                params={"error": "access_denied"}) as response:  # fmt: skip
                assert response.status == 200 and "cancelled" in await response.text()
            async with http.get(f"{public}/mailchimp/oauth/callback?code=CODESECRET&"
                                "state=STATESECRET") as response:  # fmt: skip
                assert response.status == 400
            async with http.get(f"{public}/healthz") as response:
                assert response.status == 200 and (await response.json())["ok"] is True
            async with http.get(f"{public}/nowhere") as response:
                assert response.status == 404 and "<html" in await response.text()
        requests = SlackRequests(public, "s3cret", slack=slack)
        assert (await requests.slash_command(text="import")).status == 200
        await slack.wait_for("views.open", timeout=10)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(server.communicate, timeout=30)
    assert server.returncode == 0, err
    assert await world.scalar("SELECT COUNT(*) FROM contact WHERE subscribed") == 0
    assert await world.scalar("SELECT clicks FROM advocate WHERE code = :c", c=code) == 2
    assert "SECRET" not in err and token not in err, err
    assert '"GET /referrals/u/redacted HTTP/1.1" 200' in err, err
    assert '"POST /referrals/u/redacted HTTP/1.1" 200' in err, err
    assert "/referrals/mailchimp/oauth/callback?code=redacted&state=redacted" in err, err
    assert '"GET /referrals/r/NOPE2345 HTTP/1.1" 404' in err, err
    assert (f"listening on 127.0.0.1:{port} (Slack requests at /slack/events), and under "
            "PUBLIC_URL's path /referrals") in err, err
    assert "POST /referrals/slack/events" not in err, err  # answered: out of the access log


@contextlib.asynccontextmanager
async def _logged_site(app: web.Application, public_path: str) -> AsyncIterator[str]:
    """`app` on a loopback port with serve's own access log; yields its root URL."""
    runner = web.AppRunner(app, access_log_class=quiet_access_log(public_path),
                           shutdown_timeout=0.5)  # fmt: skip
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("public_url", "public_path"), [
    ("https://bücher.example/mein shop", "/mein%20shop"),
    ("https://shop.example/bücher/empfehlungen", "/b%C3%BCcher/empfehlungen"),
    ("https://shop.example/a:b{c}", "/a:b%7Bc%7D"),  # not read as a route's {variable}
    ("https://shop.example/u", "/u"),  # the unsubscribe links' own /u/
])  # fmt: skip
async def test_a_path_of_any_characters_is_answered_and_logged_without_secrets(
    world: World, caplog: pytest.LogCaptureFixture, public_url: str, public_path: str
) -> None:
    """aiohttp matches routes against the decoded path but keeps a route's own characters
    percent-encoded: a route under `/mein%20shop` (or `/mein shop`) matched no request. And
    the access log redacts an unsubscribe token under any of them."""
    (code, ana), _ = await _advocates(world)
    settings = load_settings(database_url=world.db.url, secret_key=SECRET, public_url=public_url)
    assert settings.public_path == public_path
    app = build_web_app(None, routes=public_routes(world.db, settings), public_path=public_path)
    unsubscribe = unsubscribe_link(settings.public_base, SECRET, TEAM, ana, "a@example.com")
    token = unsubscribe.rsplit("/", 1)[1]
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with _logged_site(app, public_path) as root, aiohttp.ClientSession() as http:
            site = root + public_path  # where the links lead, as they write it
            assert unsubscribe == f"{settings.public_base}/u/{token}"
            for url in (f"{site}/r/{code}?utm_content=SECRET", f"{root}/r/{code}"):
                async with http.get(URL(url, encoded=True), allow_redirects=False) as response:
                    assert response.status == 302, url
            async with http.get(URL(f"{site}/u/{token}", encoded=True)) as response:
                assert response.status == 200 and FORM.search(await response.text())
            async with http.post(URL(f"{site}/u/{token}", encoded=True)) as response:
                assert response.status == 200 and "unsubscribed" in await response.text()
            async with http.get(URL(f"{site}/no/where", encoded=True)) as response:
                assert response.status == 404
    logged = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(logged) == 5, logged
    assert not [line for line in logged if token in line or "SECRET" in line], logged
    shown = URL.build(path=public_path, encoded=True).path  # the log's, from request.path
    # under `/u`, /u/u/TOKEN reads as an unsubscribe link at the root: all of it redacted
    redacted = "/u/redacted" if public_path == "/u" else shown + "/u/redacted"
    assert f'"POST {URL.build(path=redacted)} HTTP/1.1" 200' in logged[3], logged
    assert await world.scalar("SELECT subscribed FROM contact WHERE id = :c", c=ana) in (0, False)
