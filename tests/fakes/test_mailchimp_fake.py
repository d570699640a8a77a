"""FakeMailchimp behaves like Mailchimp's documented API, checked through the REAL client.

`mailchimp_marketing` is synchronous (module-level `requests`): every call runs in a thread,
never on the event loop that serves the fake.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import mailchimp_marketing as MailchimpMarketing
import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from tests.fakes.mailchimp import STATUSES, FakeList, FakeMailchimp, project, subscriber_hash

KEY = "abc123def456-us21"
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
LIST_ID = "a1b2c3d4e5"
MEMBER_FIELDS = [
    "members.email_address",
    "members.status",
    "members.merge_fields",
    "members.language",
    "total_items",
]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """requests honours *_PROXY variables: keep loopback calls off any proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking client call off the event loop (the fake lives on the loop)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def key_client(mc: FakeMailchimp, key: str = KEY, dc: str = "us21") -> Any:
    """What the bot does with an API key: set_config, then point host at the endpoint."""
    client = MailchimpMarketing.Client()
    client.set_config({"api_key": key, "server": dc})
    client.api_client.host = mc.api_host
    return client


def seeded_list(mc: FakeMailchimp) -> FakeList:
    account = mc.add_account(KEY)
    customers = account.add_list(LIST_ID, "Northwind Coffee — Customers")
    customers.add_member("ana.silva@example.com", "subscribed", "Ana", "Silva", "en")
    customers.add_member("Francois.Dupont@Example.org", "subscribed", "François", "Dupont", "fr")
    customers.add_member("juergen@example.net", "unsubscribed", "Jürgen", "Müller", "de")
    customers.add_member("maria@example.com", "cleaned", "María José", "García", "es_ES")
    customers.add_member("joao@example.com", "pending", "João", "Pereira", "pt")
    customers.add_member("chloe@example.org", "transactional", "Chloé", "Tremblay", "fr_CA")
    customers.add_member("old.customer@example.net", "archived")
    return customers


# ---- connecting and authenticating ----------------------------------------------------------


async def test_ping_with_an_api_key_goes_out_as_basic_auth() -> None:
    async with FakeMailchimp() as mc:
        account = mc.add_account(KEY)
        assert account.dc == "us21"
        assert mc.api_host == mc.base_url + "/3.0"
        assert "server" not in mc.api_host

        assert await call(key_client(mc).ping.get) == {"health_status": "Everything's Chimpy!"}

        (request,) = mc.requests
        assert (request.method, request.path, request.status) == ("GET", "/3.0/ping", 200)
        assert (request.auth, request.credential, request.account_id) == ("basic", KEY, account.id)


async def test_an_oauth_token_goes_out_as_bearer() -> None:
    async with FakeMailchimp() as mc:
        mc.add_account(token=TOKEN, dc="us6")
        client = MailchimpMarketing.Client()
        client.set_config({"access_token": TOKEN, "server": "us6"})
        client.api_client.host = mc.api_host

        assert (await call(client.ping.get))["health_status"] == "Everything's Chimpy!"
        assert (mc.requests[0].auth, mc.requests[0].credential) == ("bearer", TOKEN)


async def test_a_wrong_or_revoked_key_raises_a_401_with_problem_json_text() -> None:
    async with FakeMailchimp() as mc:
        mc.add_account(KEY, token=TOKEN)
        wrong = key_client(mc, "0000000000-us21")
        with pytest.raises(ApiClientError) as raised:
            await call(wrong.lists.get_all_lists)
        error = raised.value
        assert error.status_code == 401
        assert str(error) == ""  # the message is empty: read .status_code and .text
        assert isinstance(error.text, str)  # problem+json is not parsed by the client
        problem = json.loads(error.text)
        assert set(problem) == {"type", "title", "status", "detail", "instance"}
        assert (problem["status"], problem["title"]) == (401, "API Key Invalid")
        assert mc.requests[0].status == 401 and mc.requests[0].account_id is None

        # A token sent as an API key (Basic) is not an API key.
        with pytest.raises(ApiClientError) as raised:
            await call(key_client(mc, TOKEN).ping.get)
        assert raised.value.status_code == 401

        good = key_client(mc)
        assert await call(good.ping.get)
        mc.revoke(KEY)
        with pytest.raises(ApiClientError) as raised:
            await call(good.ping.get)
        assert raised.value.status_code == 401


async def test_no_authorization_header_is_api_key_missing() -> None:
    async with FakeMailchimp() as mc, aiohttp.ClientSession() as http:
        response = await http.get(f"{mc.api_host}/ping")
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert (await response.json(content_type=None))["title"] == "API Key Missing"


# ---- lists ----------------------------------------------------------------------------------


async def test_lists_honour_fields_exclude_fields_and_paging() -> None:
    async with FakeMailchimp() as mc:
        customers = seeded_list(mc)
        account = mc.account(KEY)
        account.add_list("f6e5d4c3b2", "Newsletter (EN)").add_members(40)
        account.add_list("0c9b8a7d6e", "Wholesale partners")
        client = key_client(mc)

        fields = ["lists.id", "lists.name", "lists.stats.member_count", "total_items"]
        first = await call(client.lists.get_all_lists, fields=fields, count=2, offset=0)
        assert first == {
            "lists": [
                {
                    "id": LIST_ID,
                    "name": "Northwind Coffee — Customers",
                    "stats": {"member_count": 2},  # subscribed only, of 7 contacts
                },
                {"id": "f6e5d4c3b2", "name": "Newsletter (EN)", "stats": {"member_count": 28}},
            ],
            "total_items": 3,
        }
        second = await call(client.lists.get_all_lists, fields=fields, count=2, offset=2)
        assert [fl["id"] for fl in second["lists"]] == ["0c9b8a7d6e"]
        assert second["total_items"] == 3
        assert mc.requests[0].query["fields"] == ",".join(fields)

        full = await call(
            client.lists.get_list,
            LIST_ID,
            exclude_fields=["_links", "contact"],
            include_total_contacts=True,
        )
        assert "_links" not in full and "contact" not in full
        assert full["stats"]["member_count"] == 2
        assert full["stats"]["total_contacts"] == 7
        assert full["stats"]["unsubscribe_count"] == 1
        assert full["stats"]["cleaned_count"] == 1
        assert mc.requests[-1].query["include_total_contacts"] == "True"  # Python's bool
        without_total = await call(client.lists.get_list, LIST_ID)
        assert "total_contacts" not in without_total["stats"]
        assert customers.count("subscribed") == 2


async def test_an_unknown_list_is_a_404_problem() -> None:
    async with FakeMailchimp() as mc:
        seeded_list(mc)
        client = key_client(mc)
        for fn in (client.lists.get_list, client.lists.get_list_members_info):
            with pytest.raises(ApiClientError) as raised:
                await call(fn, "ffffffffff")
            assert raised.value.status_code == 404
            assert json.loads(raised.value.text)["title"] == "Resource Not Found"


# ---- members --------------------------------------------------------------------------------


async def test_members_page_by_1000_with_status_and_fields() -> None:
    async with FakeMailchimp() as mc:
        members = mc.add_account(KEY).add_list(LIST_ID, "Customers")
        # 2,500 subscribed members interleaved with 300 others (1 in 28 of each kind).
        members.add_members(
            2800, statuses=["subscribed"] * 25 + ["unsubscribed", "cleaned", "archived"]
        )
        assert members.count("subscribed") == 2500
        expected = [m.email_address for m in members.members if m.status == "subscribed"]
        client = key_client(mc)

        pages = []
        for offset in (0, 1000, 2000):
            pages.append(
                await call(
                    client.lists.get_list_members_info,
                    LIST_ID,
                    count=1000,
                    offset=offset,
                    status="subscribed",
                    fields=MEMBER_FIELDS,
                )
            )
        assert [len(p["members"]) for p in pages] == [1000, 1000, 500]
        assert [p["total_items"] for p in pages] == [2500, 2500, 2500]  # ignores paging
        got = [m for p in pages for m in p["members"]]
        assert [m["email_address"] for m in got] == expected
        for page in pages:
            assert set(page) == {"members", "total_items"}  # list_id and _links are gone
        for member in got:
            assert set(member) == {"email_address", "status", "merge_fields", "language"}
            assert member["status"] == "subscribed"
            assert {"FNAME", "LNAME"} <= set(member["merge_fields"])

        queries = [r.query for r in mc.requests]
        assert [q["offset"] for q in queries] == ["0", "1000", "2000"]
        assert all(q["count"] == "1000" and q["status"] == "subscribed" for q in queries)
        assert queries[0]["fields"] == ",".join(MEMBER_FIELDS)

        past_the_end = await call(
            client.lists.get_list_members_info, LIST_ID, count=1000, offset=3000
        )
        assert past_the_end["members"] == [] and past_the_end["total_items"] == 2800


async def test_full_member_shape_and_subscriber_hash() -> None:
    async with FakeMailchimp() as mc:
        seeded_list(mc)
        page = await call(key_client(mc).lists.get_list_members_info, LIST_ID, count=5)
        assert page["total_items"] == 7 and len(page["members"]) == 5
        assert page["list_id"] == LIST_ID
        francois = page["members"][1]
        assert francois["email_address"] == "Francois.Dupont@Example.org"  # case kept
        expected_id = hashlib.md5(b"francois.dupont@example.org").hexdigest()
        assert francois["id"] == expected_id == subscriber_hash("FRANCOIS.dupont@example.ORG")
        assert francois["merge_fields"]["FNAME"] == "François"
        assert francois["language"] == "fr"
        assert francois["timestamp_signup"] == ""  # empty string, not null
        assert page["members"][2]["unsubscribe_reason"]
        assert {m["status"] for m in page["members"]} == set(STATUSES[:4])

        one = await call(key_client(mc).lists.get_list_member, LIST_ID, expected_id)
        assert one["email_address"] == "Francois.Dupont@Example.org"


async def test_an_unknown_status_or_a_big_count_is_a_400() -> None:
    async with FakeMailchimp() as mc:
        seeded_list(mc)
        client = key_client(mc)
        with pytest.raises(ApiClientError) as raised:
            await call(client.lists.get_list_members_info, LIST_ID, status="subscribed,pending")
        assert raised.value.status_code == 400

        # The client refuses count > 1000 itself, before any request.
        with pytest.raises(ValueError, match="1000"):
            await call(client.lists.get_list_members_info, LIST_ID, count=1001)
        assert len(mc.requests) == 1


async def test_generated_members_are_mixed() -> None:
    async with FakeMailchimp() as mc:
        big = mc.add_account(KEY).add_list(LIST_ID, "Big")
        big.add_members(100_000)  # speed: bench/mailchimp.py, not a timed test
        counts = {status: big.count(status) for status in STATUSES}
        assert counts == {
            "subscribed": 70_000,
            "unsubscribed": 10_000,
            "cleaned": 5_000,
            "pending": 5_000,
            "transactional": 5_000,
            "archived": 5_000,
        }
        assert {m.language for m in big.members[:8]} == {
            "", "en", "fr", "es_ES", "pt", "de", "fr_CA", "ja"
        }  # fmt: skip
        capitalised = big.members[50]
        assert capitalised.email_address == "Member000050@Example.com"
        assert capitalised.id == hashlib.md5(b"member000050@example.com").hexdigest()
        assert big.member("member000050@example.com") is capitalised
        with pytest.raises(ValueError):
            big.add_member("MEMBER000001@example.com")  # already there, case aside

        page = await call(
            key_client(mc).lists.get_list_members_info,
            LIST_ID,
            count=1000,
            offset=69_000,
            status="subscribed",
            fields=MEMBER_FIELDS,
        )
        assert len(page["members"]) == 1000 and page["total_items"] == 70_000
        summary = await call(key_client(mc).lists.get_list, LIST_ID, fields=["stats"])
        assert summary["stats"]["member_count"] == 70_000
        assert summary["stats"]["unsubscribe_count"] == 10_000


# ---- load and failure behaviour -------------------------------------------------------------


async def test_a_bare_429_or_403_is_returned_not_raised() -> None:
    async with FakeMailchimp() as mc:
        seeded_list(mc)
        client = key_client(mc)
        mc.fail_next("/3.0/lists", 429)  # empty body, like Mailchimp under load
        mc.fail_next("/3.0/lists", 403)

        first = await call(client.lists.get_list_members_info, LIST_ID)
        assert isinstance(first, requests.Response)  # NOT an exception: callers must check
        assert (first.status_code, first.text) == (429, "")
        second = await call(client.lists.get_list_members_info, LIST_ID)
        assert isinstance(second, requests.Response) and second.status_code == 403
        third = await call(client.lists.get_list_members_info, LIST_ID)
        assert third["total_items"] == 7  # the faults were used up
        assert [r.status for r in mc.requests] == [429, 403, 200]


async def test_an_error_with_a_body_is_raised() -> None:
    async with FakeMailchimp() as mc:
        seeded_list(mc)
        client = key_client(mc)
        mc.fail_next("/3.0/lists/", 503, "<html>Service Unavailable</html>")
        mc.fail_next("/3.0/ping", 500, mc.problem(500, "Internal Server Error"), times=2)

        with pytest.raises(ApiClientError) as raised:
            await call(client.lists.get_list, LIST_ID)
        assert raised.value.status_code == 503
        assert "Service Unavailable" in raised.value.text
        for _ in range(2):
            with pytest.raises(ApiClientError) as raised:
                await call(client.ping.get)
            assert json.loads(raised.value.text)["status"] == 500
        assert await call(client.ping.get)


async def test_more_than_10_simultaneous_requests_get_429_and_a_violation() -> None:
    async with FakeMailchimp(latency=0.3) as mc:
        seeded_list(mc)
        loop = asyncio.get_running_loop()

        def ping() -> Any:
            try:
                return key_client(mc).ping.get()
            except ApiClientError as exc:
                return exc

        # asyncio.to_thread's default pool has only min(32, cpus + 4) threads: use our own.
        with ThreadPoolExecutor(max_workers=11) as pool:
            results = await asyncio.gather(*(loop.run_in_executor(pool, ping) for _ in range(11)))
        errors = [r for r in results if isinstance(r, ApiClientError)]
        assert len(errors) == 1 and errors[0].status_code == 429
        assert json.loads(errors[0].text)["title"] == "Too Many Requests"
        assert len(mc.violations) == 1
        assert mc.violations[0].open_requests == 11
        assert mc.peak_concurrency == 11 == mc.account(KEY).peak_concurrency
        assert mc.account(KEY).open_requests == 0


async def test_ten_simultaneous_requests_are_fine() -> None:
    async with FakeMailchimp(latency=0.2) as mc:
        seeded_list(mc)
        mc.add_account("fedcba987654-us6")  # another account has its own 10
        loop = asyncio.get_running_loop()
        calls = [functools.partial(key_client(mc).ping.get) for _ in range(10)]
        calls += [functools.partial(key_client(mc, "fedcba987654-us6", "us6").ping.get)] * 5
        with ThreadPoolExecutor(max_workers=15) as pool:
            results = await asyncio.gather(*(loop.run_in_executor(pool, fn) for fn in calls))
        assert all(r == {"health_status": "Everything's Chimpy!"} for r in results)
        assert mc.violations == []
        assert mc.account(KEY).peak_concurrency == 10
        assert mc.account("fedcba987654-us6").peak_concurrency == 5


async def test_latency_and_one_slow_page() -> None:
    async with FakeMailchimp() as mc:
        seeded_list(mc)
        client = key_client(mc)
        mc.latency = 0.05
        started = time.perf_counter()
        for _ in range(4):
            await call(client.ping.get)
        assert time.perf_counter() - started >= 0.2
        assert all(r.duration is not None and r.duration >= 0.05 for r in mc.requests)

        mc.latency = 0.0
        mc.slow(f"/3.0/lists/{LIST_ID}/members", 0.3)
        started = time.perf_counter()
        await call(client.lists.get_list_members_info, LIST_ID)
        assert time.perf_counter() - started >= 0.3
        started = time.perf_counter()
        await call(client.lists.get_list_members_info, LIST_ID)
        assert time.perf_counter() - started < 0.3


# ---- OAuth ----------------------------------------------------------------------------------


async def test_oauth_code_for_token_then_metadata_then_api() -> None:
    async with (
        FakeMailchimp(client_id="client-1", client_secret="secret-1") as mc,
        aiohttp.ClientSession() as http,
    ):
        account = mc.add_account(name="Northwind Coffee", dc="us21")
        account.add_list(LIST_ID, "Customers").add_member("ana@example.com")
        redirect = "https://bot.example.com/mailchimp/callback"
        mc.issue_code("code-1", TOKEN, account, redirect_uri=redirect)

        authorize = {
            "response_type": "code",
            "client_id": "client-1",
            "redirect_uri": redirect,
            "state": "s1",
        }
        async with http.get(mc.authorize_url, params=authorize) as response:
            assert response.status == 200 and response.content_type == "text/html"
        assert mc.authorize_requests == [authorize]

        form = {
            "grant_type": "authorization_code",
            "client_id": "client-1",
            "client_secret": "secret-1",
            "redirect_uri": redirect,
            "code": "code-1",
        }
        async with http.post(f"{mc.login_url}/oauth2/token", data=form) as response:
            assert response.status == 200
            assert await response.json() == {"access_token": TOKEN, "expires_in": 0, "scope": None}
        assert mc.token_requests == [form]

        # The same code a second time fails (codes work once).
        async with http.post(mc.token_url, data=form) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "invalid_grant"

        headers = {"Authorization": f"OAuth {TOKEN}"}
        async with http.get(f"{mc.login_url}/oauth2/metadata", headers=headers) as response:
            assert response.status == 200
            metadata = await response.json()
        assert metadata["dc"] == "us21"
        assert metadata["api_endpoint"] == mc.base_url
        assert metadata["accountname"] == "Northwind Coffee"
        assert metadata["login"]["login_email"] == "owner@example.com"

        client = MailchimpMarketing.Client()
        client.set_config({"access_token": TOKEN, "server": metadata["dc"]})
        client.api_client.host = metadata["api_endpoint"] + "/3.0"
        page = await call(client.lists.get_list_members_info, LIST_ID, fields=MEMBER_FIELDS)
        assert page["members"][0]["email_address"] == "ana@example.com"
        assert mc.requests[-1].auth == "bearer"

        # Metadata wants the OAuth scheme, not Bearer; a revoked token stops working.
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(mc.metadata_url, headers=bearer) as response:
            assert response.status == 401
        mc.revoke(TOKEN)
        async with http.get(mc.metadata_url, headers=headers) as response:
            assert response.status == 401
        with pytest.raises(ApiClientError) as raised:
            await call(client.ping.get)
        assert raised.value.status_code == 401


async def test_oauth_token_errors() -> None:
    async with (
        FakeMailchimp(oauth_base="/login", client_secret="secret-1") as mc,
        aiohttp.ClientSession() as http,
    ):
        assert mc.login_url == mc.base_url + "/login"
        account = mc.add_account("abc-us21")
        mc.issue_code("code-1", TOKEN, "abc-us21", redirect_uri="https://bot.example.com/cb")
        assert mc.account(TOKEN) is account
        form = {
            "grant_type": "authorization_code",
            "client_id": "any",
            "client_secret": "secret-1",
            "redirect_uri": "https://bot.example.com/cb",
            "code": "code-1",
        }
        cases = [
            ({"code": "never-issued"}, 400, "invalid_grant"),
            ({"redirect_uri": "https://elsewhere.example.com/cb"}, 400, "invalid_grant"),
            ({"client_secret": "wrong"}, 401, "invalid_client"),
            ({"grant_type": "refresh_token"}, 400, "unsupported_grant_type"),
            ({"redirect_uri": ""}, 400, "invalid_request"),
        ]
        for change, status, error in cases:
            async with http.post(mc.token_url, data=form | change) as response:
                assert (response.status, (await response.json())["error"]) == (status, error)
        async with http.post(mc.token_url, data=form) as response:  # still unused: works
            assert response.status == 200
        mc.fail_next("/login/oauth2/token", 503)
        async with http.post(mc.token_url, data=form) as response:
            assert response.status == 503


# ---- pure helpers and pitfalls of the real client -------------------------------------------


def test_project_keeps_and_drops_dotted_paths() -> None:
    body = {
        "members": [{"id": "1", "merge_fields": {"FNAME": "A", "LNAME": "B"}, "_links": []}],
        "total_items": 1,
        "_links": [],
    }
    assert project(body, "members.merge_fields.FNAME,total_items") == {
        "members": [{"merge_fields": {"FNAME": "A"}}],
        "total_items": 1,
    }
    assert project(body, ["members", "members.id"]) == {"members": body["members"]}
    assert project(body, exclude_fields="_links,members._links,members.merge_fields.LNAME") == {
        "members": [{"id": "1", "merge_fields": {"FNAME": "A"}}],
        "total_items": 1,
    }


def test_ids_with_server_in_them_are_refused() -> None:
    mc = FakeMailchimp()
    account = mc.add_account(KEY)
    with pytest.raises(ValueError, match="server"):
        account.add_list("webserver01")
    generated = account.add_list()
    assert len(generated.id) == 10 and "server" not in generated.id


async def test_fields_as_a_string_is_split_into_characters() -> None:
    """A pitfall of the client: `fields` must be a list. A string is sent as "t,o,t,a,l,...",
    which names nothing, so the 200 body is `{}`, and the client returns an empty-bodied
    result as a `requests.Response` instead of a dict."""
    async with FakeMailchimp() as mc:
        seeded_list(mc)
        result = await call(
            key_client(mc).lists.get_list_members_info, LIST_ID, fields="total_items"
        )
        assert mc.requests[0].query["fields"] == "t,o,t,a,l,_,i,t,e,m,s"
        assert isinstance(result, requests.Response) and result.json() == {}


async def test_the_client_sends_user_colon_key() -> None:
    async with FakeMailchimp() as mc, aiohttp.ClientSession() as http:
        mc.add_account(KEY)
        basic = base64.b64encode(f"anystring:{KEY}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        async with http.get(f"{mc.api_host}/ping", headers=headers) as response:
            assert response.status == 200  # any user name works with the key
        await call(key_client(mc).ping.get)
        assert [r.credential for r in mc.requests] == [KEY, KEY]
