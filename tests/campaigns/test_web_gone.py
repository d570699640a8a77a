"""A deleted contact's referral links answer 410 Gone; others keep working, unknown codes 404."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.app import build_web_app
from bot.contact_admin import delete_contact, find_by_email
from bot.settings import load_settings
from bot.web import public_routes
from tests.campaigns.conftest import SECRET, TEAM, World, people
from tests.fakes.slack_api import serve


@pytest.fixture
async def site(world: World) -> AsyncIterator[str]:
    settings = load_settings(database_url=world.db.url, secret_key=SECRET)
    async with serve(build_web_app(None, routes=public_routes(world.db, settings))) as url:
        yield url


async def test_a_deleted_contacts_links_are_gone_and_the_rest_still_work(
    world: World, site: str
) -> None:
    await world.import_csv("VIP", people("ada@example.com,Ada", "bob@example.com,Bob"))
    await world.target(await world.campaign("Spring", store_url="https://shop.example/"), "VIP")
    await world.target(await world.campaign("Autumn", store_url="https://shop.example/"), "VIP")
    codes = dict(await world.rows("SELECT a.code, c.email FROM advocate a "
                                  "JOIN contact c ON c.id = a.contact_id"))  # fmt: skip
    ada_codes = [code for code, email in codes.items() if email == "ada@example.com"]
    bob_code = next(code for code, email in codes.items() if email == "bob@example.com")
    assert len(ada_codes) == 2

    await delete_contact(world.db, TEAM, await find_by_email(world.db, TEAM, "ada@example.com"),
                         "U0002")  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for code in (*ada_codes, ada_codes[0].lower()):
            async with http.get(f"{site}/r/{code}", allow_redirects=False) as response:
                assert response.status == 410, code
                page = await response.text()
                assert "doesn&#39;t work any more" in page and "ada" not in page
        async with http.get(f"{site}/r/{bob_code}", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == f"https://shop.example/?ref={bob_code}"
        async with http.get(f"{site}/r/NOPE2345", allow_redirects=False) as response:
            assert response.status == 404
