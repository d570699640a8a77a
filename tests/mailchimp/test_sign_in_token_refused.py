"""The sign-in page's words when Mailchimp's token endpoint refuses the code."""

from __future__ import annotations

import logging

import pytest

from bot.app import build_web_app
from bot.mailchimp import accounts
from bot.mailchimp.oauth import make_state
from bot.settings import load_settings
from bot.web import public_routes
from models import Database
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.slack_api import serve
from tests.mailchimp.test_mailchimp import (
    SECRET,
    TEAM,
    _back_from_mailchimp,
    _browser,
    _continue,
    _settings,
    mc,  # noqa: F401  (fixture)
)


async def test_a_wrong_client_secret_isnt_told_as_a_used_sign_in(
    db: Database, mc: FakeMailchimp, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    """MAILCHIMP_CLIENT_SECRET mistyped (or rotated in Mailchimp): the token endpoint answers
    401 invalid_client. The page said "Mailchimp didn't accept this sign-in (it may have been
    used already): try Connect again", which fails the same way every time, and the log had
    only that sentence: nobody learns the app's secret is wrong."""
    caplog.set_level(logging.INFO, logger="bot")
    settings = load_settings(database_url=db.url, secret_key=SECRET,
                             mailchimp_api_url=mc.base_url, mailchimp_login_url=mc.login_url,
                             mailchimp_client_id="cid", mailchimp_client_secret="rotated",
                             public_url="https://bot.example")  # fmt: skip
    token = "oauth-token-9"
    mc.add_account(token=token, dc="us7", name="Northwind Coffee")
    mc.issue_code("code-9", token, token)
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        authorize = await _continue(http, site, mc, make_state(SECRET, TEAM, "U0002"))
        status, page = await _back_from_mailchimp(http, site, "code-9", authorize)
    assert status != 200 and await accounts.connection(db, TEAM) is None
    assert "used already" not in page, page  # it wasn't: trying again fails the same way
    assert "MAILCHIMP_CLIENT_SECRET is wrong" in page, page
    assert "invalid_client" in caplog.text, caplog.text  # the operator can tell what to fix


async def test_a_rate_limited_token_exchange_isnt_told_as_a_used_sign_in(
    db: Database, mc: FakeMailchimp  # noqa: F811
) -> None:
    """Mailchimp's token endpoint answering 429 (too many requests) was told as "Mailchimp
    didn't accept this sign-in (it may have been used already)"."""
    settings = _settings(db, mc)
    token = "oauth-token-8"
    mc.add_account(token=token, dc="us7", name="Northwind Coffee")
    mc.issue_code("code-8", token, token)
    mc.fail_next("/oauth2/token", 429, mc.problem(429, "Too Many Requests",
                                                  "You have exceeded the limit."))
    routes = public_routes(db, settings)
    async with serve(build_web_app(None, routes=routes)) as site, _browser(site) as http:
        authorize = await _continue(http, site, mc, make_state(SECRET, TEAM, "U0002"))
        status, page = await _back_from_mailchimp(http, site, "code-8", authorize)
    assert status != 200 and await accounts.connection(db, TEAM) is None
    assert "used already" not in page and "didn't accept this sign-in" not in page, page
    assert "try Connect again in a minute" in page, page
