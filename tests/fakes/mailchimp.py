"""A fake Mailchimp Marketing API 3.0 (plus its OAuth 2 login endpoints) served on 127.0.0.1.

The bot talks to Mailchimp through the real, synchronous `mailchimp_marketing` client (run in
threads with `asyncio.to_thread`), so the fake is a real HTTP server the client is pointed at
with `client.api_client.host = fake.api_host`. It keeps the behaviours that matter to an
importer: Basic (API key) / Bearer (OAuth token) auth, `count`/`offset` paging with
`total_items` ignoring paging, partial responses (`fields` / `exclude_fields`), one `status`
filter, `application/problem+json` errors, the 10-simultaneous-connections limit per account,
and the one-shot OAuth code exchange + metadata lookup.

Never call the client on the event loop thread that runs the fake: the client blocks, so the
fake could not answer.

    async with FakeMailchimp() as mc:
        account = mc.add_account("abc123-us21")
        customers = account.add_list("a1b2c3d4e5", "Customers")
        customers.add_member("ana@example.com", first_name="Ana", language="pt")
        customers.add_members(100_000)
        client = mc.client("abc123-us21")  # or configure MailchimpMarketing.Client yourself
        page = await asyncio.to_thread(client.lists.get_list_members_info, "a1b2c3d4e5")

Ids generated here are hex and fake host names are 127.0.0.1: the client replaces the word
"server" anywhere in a URL with the data-centre prefix, so seeded ids must not contain it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from tests.fakes.slack_api import Served

__all__ = [
    "DEFAULT_LANGUAGE_CYCLE",
    "DEFAULT_STATUS_CYCLE",
    "STATUSES",
    "ConcurrencyViolation",
    "FakeAccount",
    "FakeList",
    "FakeMailchimp",
    "FakeMember",
    "MailchimpRequest",
    "project",
    "subscriber_hash",
]

AuthKind = Literal["basic", "bearer", "oauth", "other"]

STATUSES: tuple[str, ...] = (
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
    "archived",
)
# 20 statuses cycled by `add_members`: 14 subscribed (70%), 2 unsubscribed, 1 of each other.
DEFAULT_STATUS_CYCLE: tuple[str, ...] = (
    *("subscribed",) * 4,
    "unsubscribed",
    *("subscribed",) * 3,
    "cleaned",
    *("subscribed",) * 3,
    "pending",
    "subscribed",
    "transactional",
    "subscribed",
    "unsubscribed",
    "subscribed",
    "archived",
    "subscribed",
)
# 8 languages cycled by `add_members` (bare "pt" is Brazilian Portuguese at Mailchimp).
DEFAULT_LANGUAGE_CYCLE: tuple[str, ...] = ("", "en", "fr", "es_ES", "pt", "de", "fr_CA", "ja")
_FIRST_NAMES = ("Ana", "François", "Jürgen", "María José", "João", "Chloé", "悠斗", "Olivia", "")
_LAST_NAMES = ("Silva", "Dupont", "Müller", "García", "Pereira", "Tremblay", "田中", "", "Smith")

MAX_COUNT = 1000
DEFAULT_COUNT = 10
PROBLEM_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
JSON_TYPE = "application/json"
PROBLEM_JSON_TYPE = "application/problem+json"

AUTHORIZE_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Log in | Mailchimp</title></head>
<body><h1>Log in to authorize this app</h1>
<form method="post"><input name="username"><input name="password" type="password"></form>
</body>
</html>
"""


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased email address."""
    return hashlib.md5(email.lower().encode("utf-8")).hexdigest()


def _check_no_server(value: str, what: str) -> None:
    if "server" in value.lower():
        raise ValueError(
            f"{what} {value!r} contains 'server': mailchimp_marketing replaces that word in "
            "every URL with the data-centre prefix"
        )


# --------------------------------------------------------------------------------------------
# Partial responses: fields / exclude_fields with dotted paths
# --------------------------------------------------------------------------------------------

_WHOLE: Any = None  # a tree leaf: keep (or drop) the whole value


def _field_tree(paths: Iterable[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        parts = [p for p in path.strip().split(".") if p]
        node = tree
        for depth, part in enumerate(parts):
            if part in node and node[part] is _WHOLE:
                break  # a shorter path already names the whole value
            if depth == len(parts) - 1:
                node[part] = _WHOLE
            else:
                node = node.setdefault(part, {})
    return tree


def _include(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_include(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        key: item if tree[key] is _WHOLE else _include(item, tree[key])
        for key, item in value.items()
        if key in tree
    }


def _exclude(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_exclude(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key not in tree:
            out[key] = item
        elif tree[key] is not _WHOLE:
            out[key] = _exclude(item, tree[key])
    return out


def project(
    body: dict[str, Any],
    fields: Sequence[str] | str | None = None,
    exclude_fields: Sequence[str] | str | None = None,
) -> dict[str, Any]:
    """Apply Mailchimp's partial-response rules (comma-separated strings or lists of paths).

    `fields=members.email_address,total_items` keeps only those keys (through lists: each
    member keeps only `email_address`); `exclude_fields` drops the named keys.
    """
    if isinstance(fields, str):
        fields = fields.split(",")
    if isinstance(exclude_fields, str):
        exclude_fields = exclude_fields.split(",")
    if fields and (tree := _field_tree(fields)):
        body = _include(body, tree)
    if exclude_fields and (tree := _field_tree(exclude_fields)):
        body = _exclude(body, tree)
    return body


# --------------------------------------------------------------------------------------------
# Seeded state
# --------------------------------------------------------------------------------------------


OLD_CHANGE = "2024-11-03T17:40:11+00:00"  # members seeded in bulk changed long ago


@dataclass(slots=True)
class FakeMember:
    """One audience member, stored compactly (100,000 of them are cheap) and rendered on demand.

    `extra` overrides keys of the rendered member object (e.g. `{"vip": True}`);
    `merge_extra` adds merge fields beside FNAME/LNAME.
    """

    email_address: str
    status: str = "subscribed"
    first_name: str = ""
    last_name: str = ""
    language: str = ""
    web_id: int = 0
    extra: dict[str, Any] | None = None
    merge_extra: dict[str, Any] | None = None
    # when it was added or changed, as Mailchimp writes it (`since_last_changed` filters on
    # it): long ago unless a test says otherwise (`add_member(..., changed_now=True)`)
    last_changed: str = OLD_CHANGE

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)

    @property
    def merge_fields(self) -> dict[str, Any]:
        return {
            "FNAME": self.first_name,
            "LNAME": self.last_name,
            "ADDRESS": "",
            "PHONE": "",
            "BIRTHDAY": "",
            **(self.merge_extra or {}),
        }

    def to_api(self, list_id: str, dc: str) -> dict[str, Any]:
        """The member as GET /3.0/lists/{list_id}/members returns it (before `fields`)."""
        member_id = self.id
        href = f"https://{dc}.api.mailchimp.com/3.0/lists/{list_id}/members/{member_id}"
        body: dict[str, Any] = {
            "id": member_id,
            "email_address": self.email_address,
            "unique_email_id": member_id[-10:],
            "contact_id": member_id[::-1],
            "full_name": f"{self.first_name} {self.last_name}".strip(),
            "web_id": self.web_id,
            "email_type": "html",
            "status": self.status,
        }
        if self.status == "unsubscribed":
            body["unsubscribe_reason"] = "N/A (Unsubscribed by an admin)"
        body |= {
            "consents_to_one_to_one_messaging": True,
            "merge_fields": self.merge_fields,
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": "",
            "timestamp_signup": "",
            "ip_opt": "",
            "timestamp_opt": "2024-01-15T09:00:00+00:00" if self.status != "pending" else "",
            "member_rating": 2,
            "last_changed": self.last_changed,
            "language": self.language,
            "vip": False,
            "email_client": "",
            "location": {
                "latitude": 0,
                "longitude": 0,
                "gmtoff": 0,
                "dstoff": 0,
                "country_code": "",
                "timezone": "",
                "region": "",
            },
            "source": "Import",
            "tags_count": 0,
            "tags": [],
            "list_id": list_id,
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "parent", "href": href.rsplit("/", 1)[0], "method": "GET"},
            ],
        }
        if self.extra:
            body |= self.extra
        return body


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(repr=False)
class FakeList:
    """An audience. `stats` are computed from `members` (member_count = subscribed only);
    `overrides` are deep-merged into the rendered list (e.g. `{"stats": {"campaign_count": 3}}`).
    """

    id: str
    name: str
    dc: str
    web_id: int = 0
    members: list[FakeMember] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, FakeMember] = field(default_factory=dict)
    _generated: int = 0

    def __repr__(self) -> str:
        return f"FakeList(id={self.id!r}, name={self.name!r}, members={len(self.members)})"

    def add_member(
        self,
        email: str,
        status: str = "subscribed",
        first_name: str = "",
        last_name: str = "",
        language: str = "",
        *,
        merge_fields: Mapping[str, Any] | None = None,
        changed_now: bool = False,
        **extra: Any,
    ) -> FakeMember:
        """Add one member; `extra` overrides keys of the rendered member (e.g. `vip=True`);
        `changed_now`: it joins now (while the list is being read), not long ago."""
        if status not in STATUSES:
            raise ValueError(f"unknown member status {status!r}; one of {STATUSES}")
        member = FakeMember(
            email,
            status,
            first_name,
            last_name,
            language,
            web_id=len(self.members) + 1,
            extra=extra or None,
            merge_extra=dict(merge_fields) if merge_fields else None,
            last_changed=(datetime.now(UTC).isoformat(timespec="seconds") if changed_now
                          else OLD_CHANGE),
        )
        self._insert(member)
        return member

    def add_members(
        self,
        n: int,
        *,
        statuses: Sequence[str] = DEFAULT_STATUS_CYCLE,
        languages: Sequence[str] = DEFAULT_LANGUAGE_CYCLE,
        prefix: str = "member",
        domain: str = "example.com",
        mixed_case_every: int = 50,
    ) -> list[FakeMember]:
        """Add `n` generated members quickly (100,000 in well under a second), deterministically.

        Member i (counting across calls) is `{prefix}{i:06d}@{domain}`, with status
        `statuses[i % len]` and language `languages[i % len]`; every `mixed_case_every`-th
        address is capitalised (`Member000050@Example.com`, 0 to disable) so its id still has to
        be the MD5 of the lower-cased address. Names cycle through a few, some non-ASCII or empty.
        """
        if unknown := set(statuses) - set(STATUSES):
            raise ValueError(f"unknown member statuses {sorted(unknown)}")
        if not statuses or not languages:
            raise ValueError("statuses and languages must not be empty")
        start = self._generated
        self._generated += n
        first_web_id = len(self.members) + 1
        created = []
        n_status, n_lang = len(statuses), len(languages)
        n_first, n_last = len(_FIRST_NAMES), len(_LAST_NAMES)
        for offset, i in enumerate(range(start, start + n)):
            email = f"{prefix}{i:06d}@{domain}"
            if mixed_case_every and i % mixed_case_every == 0:
                email = email.capitalize().replace(f"@{domain}", f"@{domain.capitalize()}")
            created.append(
                FakeMember(
                    email,
                    statuses[i % n_status],
                    _FIRST_NAMES[i % n_first],
                    _LAST_NAMES[(i // 3) % n_last],
                    languages[i % n_lang],
                    first_web_id + offset,
                )
            )
        self._sync_index()
        for member in created:
            key = member.id
            if key in self._index:
                raise ValueError(f"{member.email_address} is already a member of {self.id}")
            self._index[key] = member
        self.members.extend(created)
        return created

    def member(self, email_or_id: str) -> FakeMember:
        """A member by email (any case) or subscriber hash; KeyError when absent."""
        self._sync_index()
        key = email_or_id if "@" not in email_or_id else subscriber_hash(email_or_id)
        return self._index[key.lower()]

    def count(self, status: str | None = None) -> int:
        """Members with this status (all members when None): what `total_items` reports."""
        if status is None:
            return len(self.members)
        return sum(1 for m in self.members if m.status == status)

    def stats(self, include_total_contacts: bool = False) -> dict[str, Any]:
        counts = Counter(m.status for m in self.members)
        stats: dict[str, Any] = {"member_count": counts["subscribed"]}
        if include_total_contacts:
            stats["total_contacts"] = len(self.members)
        stats |= {
            "unsubscribe_count": counts["unsubscribed"],
            "cleaned_count": counts["cleaned"],
            "member_count_since_send": 0,
            "unsubscribe_count_since_send": 0,
            "cleaned_count_since_send": 0,
            "campaign_count": 0,
            "campaign_last_sent": "",
            "merge_field_count": 4,
            "avg_sub_rate": 0,
            "avg_unsub_rate": 0,
            "target_sub_rate": 0,
            "open_rate": 0,
            "click_rate": 0,
            "last_sub_date": "",
            "last_unsub_date": "",
        }
        return stats

    def to_api(self, include_total_contacts: bool = False) -> dict[str, Any]:
        """The list as GET /3.0/lists/{id} returns it (before `fields`)."""
        href = f"https://{self.dc}.api.mailchimp.com/3.0/lists/{self.id}"
        body: dict[str, Any] = {
            "id": self.id,
            "web_id": self.web_id,
            "name": self.name,
            "contact": {
                "company": "Northwind Coffee",
                "address1": "100 Example Street",
                "address2": "",
                "city": "Portland",
                "state": "OR",
                "zip": "97201",
                "country": "US",
                "phone": "",
            },
            "permission_reminder": "You signed up on our website.",
            "use_archive_bar": True,
            "campaign_defaults": {
                "from_name": "Northwind Coffee",
                "from_email": "hello@example.com",
                "subject": "",
                "language": "en",
            },
            "notify_on_subscribe": "",
            "notify_on_unsubscribe": "",
            "date_created": "2019-05-05T05:00:00+00:00",
            "list_rating": 3,
            "email_type_option": False,
            "subscribe_url_short": f"http://eepurl.com/{self.id[:6]}",
            "subscribe_url_long": (
                f"https://example.{self.dc}.list-manage.com/subscribe?u=0123456789abcdef&id={self.id}"
            ),
            "beamer_address": f"{self.dc}-0123456789-{self.id}@inbound.mailchimp.com",
            "visibility": "prv",
            "double_optin": False,
            "has_welcome": False,
            "marketing_permissions": False,
            "modules": [],
            "stats": self.stats(include_total_contacts),
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "members", "href": f"{href}/members", "method": "GET"},
            ],
        }
        return _merge(body, self.overrides) if self.overrides else body

    def _insert(self, member: FakeMember) -> None:
        self._sync_index()
        key = member.id
        if key in self._index:
            raise ValueError(f"{member.email_address} is already a member of {self.id}")
        self._index[key] = member
        self.members.append(member)

    def _sync_index(self) -> None:
        """Tests may edit `members` directly: rebuild the id index when it drifted."""
        if len(self._index) != len(self.members):
            self._index = {m.id: m for m in self.members}


@dataclass(repr=False)
class FakeAccount:
    """A Mailchimp account (one data centre), reachable by its API keys and OAuth tokens."""

    id: str
    dc: str
    name: str = "Northwind Coffee"
    login_email: str = "owner@example.com"
    role: str = "owner"
    user_id: int = 123456789
    api_keys: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lists: dict[str, FakeList] = field(default_factory=dict)
    open_requests: int = 0  # API requests being answered right now
    peak_concurrency: int = 0  # most simultaneous API requests seen (over-limit ones included)
    _list_ids: Any = field(default_factory=lambda: itertools.count(1))

    def __repr__(self) -> str:
        return f"FakeAccount(id={self.id!r}, dc={self.dc!r}, lists={list(self.lists)})"

    def add_list(
        self, list_id: str | None = None, name: str = "Customers", **overrides: Any
    ) -> FakeList:
        """Add an audience; `overrides` are deep-merged into its rendered object."""
        list_id = list_id or f"{next(self._list_ids):04x}{self.id[:6]}"
        _check_no_server(list_id, "list id")
        if list_id in self.lists:
            raise ValueError(f"list {list_id} already exists")
        fake_list = FakeList(list_id, name, self.dc, web_id=100_000 + len(self.lists) + 1)
        fake_list.overrides = overrides
        self.lists[list_id] = fake_list
        return fake_list

    def get_list(self, list_id: str) -> FakeList:
        return self.lists[list_id]


# --------------------------------------------------------------------------------------------
# Records a test can assert on
# --------------------------------------------------------------------------------------------


@dataclass
class MailchimpRequest:
    """One request the fake received (API or OAuth), with the answer's status once sent."""

    method: str
    path: str
    query: dict[str, str]
    auth: AuthKind | None  # kind of Authorization header sent (None: no header)
    credential: str | None  # the API key or token it carried
    account_id: str | None = None  # the account it authenticated as
    status: int | None = None
    started: float = 0.0  # time.monotonic()
    finished: float | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


@dataclass
class ConcurrencyViolation:
    """A request that arrived while the account already had `max_connections` open."""

    account_id: str
    method: str
    path: str
    open_requests: int  # including this one


@dataclass
class _Rule:
    prefix: str
    times: int
    status: int = 0
    body: bytes = b""
    content_type: str | None = None
    seconds: float = 0.0
    headers: Mapping[str, str] | None = None


@dataclass
class _After:
    prefix: str
    times: int
    action: Callable[[], None]


@dataclass
class _Code:
    token: str
    account: FakeAccount
    redirect_uri: str | None
    used: bool = False


class _Reply(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


# --------------------------------------------------------------------------------------------
# FakeMailchimp
# --------------------------------------------------------------------------------------------


class FakeMailchimp(Served):
    """Mailchimp's Marketing API 3.0 and OAuth login endpoints, in one local aiohttp server.

    Use as `async with FakeMailchimp() as mc:`; point the real client at `mc.api_host`, the
    OAuth flow at `mc.login_url`. State is public: seed it (`add_account`, `FakeAccount.add_list`,
    `FakeList.add_member(s)`, `issue_code`), script it (`fail_next`, `slow`, `latency`, `revoke`,
    `after`) and assert on it (`requests`, `violations`, `peak_concurrency`, `authorize_requests`,
    `token_requests`).
    """

    def __init__(
        self,
        *,
        oauth_base: str = "",
        client_id: str | None = None,
        client_secret: str | None = None,
        max_connections: int = 10,
        latency: float = 0.0,
    ) -> None:
        _check_no_server(oauth_base, "oauth_base")
        self.oauth_base = "/" + oauth_base.strip("/") if oauth_base.strip("/") else ""
        self.client_id = client_id  # None: any client_id is accepted at /oauth2/token
        self.client_secret = client_secret
        self.max_connections = max_connections
        self.latency = latency  # seconds added to every request
        self.accounts: list[FakeAccount] = []
        self.revoked: set[str] = set()
        self.requests: list[MailchimpRequest] = []
        self.violations: list[ConcurrencyViolation] = []
        self.authorize_requests: list[dict[str, str]] = []  # query of each GET /oauth2/authorize
        self.token_requests: list[dict[str, str]] = []  # form of each POST /oauth2/token
        self.open_requests = 0  # all requests being answered right now
        self._codes: dict[str, _Code] = {}
        self._faults: list[_Rule] = []
        self._slow: list[_Rule] = []
        self._after: list[_After] = []
        self._account_ids = itertools.count(1)
        self._base_url: str | None = None

    # ---- running ----------------------------------------------------------------------------

    @property
    def api_host(self) -> str:
        """What to set as `client.api_client.host`: `base_url + "/3.0"`."""
        return f"{self.base_url}/3.0"

    @property
    def login_url(self) -> str:
        """Stands in for https://login.mailchimp.com (`/oauth2/authorize|token|metadata`)."""
        return f"{self.base_url}{self.oauth_base}"

    @property
    def authorize_url(self) -> str:
        return f"{self.login_url}/oauth2/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.login_url}/oauth2/token"

    @property
    def metadata_url(self) -> str:
        return f"{self.login_url}/oauth2/metadata"

    # ---- seeding ----------------------------------------------------------------------------

    def add_account(
        self,
        api_key: str | None = None,
        *,
        token: str | None = None,
        dc: str | None = None,
        name: str = "Northwind Coffee",
        login_email: str = "owner@example.com",
        role: str = "owner",
    ) -> FakeAccount:
        """An account reachable by `api_key` ("<hex>-<dc>", dc after the dash) and/or `token`.

        More keys/tokens: append to `account.api_keys` / `account.tokens` (or `issue_code`).
        """
        if api_key is not None:
            key_dc = api_key.rsplit("-", 1)[1] if "-" in api_key else None
            if key_dc is None and dc is None:
                raise ValueError(f"API key {api_key!r} has no '-<dc>' suffix; pass dc=")
            dc = dc or key_dc
        dc = dc or "us21"
        for credential in (api_key, token):
            if credential is not None and self._find(credential) is not None:
                raise ValueError(f"{credential!r} already belongs to an account")
        n = next(self._account_ids)
        account = FakeAccount(
            id=f"{n:04x}{hashlib.md5(str(n).encode()).hexdigest()[:21]}",
            dc=dc,
            name=name,
            login_email=login_email,
            role=role,
            user_id=123456788 + n,
            api_keys=[api_key] if api_key else [],
            tokens=[token] if token else [],
        )
        self.accounts.append(account)
        return account

    def account(self, key_or_token: str) -> FakeAccount:
        """The account an API key or token belongs to (revoked ones included); KeyError if none."""
        account = self._find(key_or_token)
        if account is None:
            raise KeyError(key_or_token)
        return account

    def issue_code(
        self,
        code: str,
        token: str,
        account: FakeAccount | str,
        *,
        redirect_uri: str | None = None,
    ) -> None:
        """Make POST /oauth2/token exchange `code` (once) for `token`, a token of `account`.

        `account` is a FakeAccount or any of its keys/tokens. With `redirect_uri`, the token
        request must send the same one (as after an authorize call with it).
        """
        if isinstance(account, str):
            account = self.account(account)
        owner = self._find(token)
        if owner is not None and owner is not account:
            raise ValueError(f"token {token!r} belongs to another account")
        if owner is None:
            account.tokens.append(token)
        self._codes[code] = _Code(token, account, redirect_uri)

    def client(self, key_or_token: str) -> Any:
        """A real `mailchimp_marketing.Client` configured for this credential and this fake
        (what the bot does: set_config, then host = api_endpoint + "/3.0")."""
        import mailchimp_marketing

        account = self.account(key_or_token)
        client = mailchimp_marketing.Client()
        if key_or_token in account.api_keys:
            client.set_config({"api_key": key_or_token, "server": account.dc})
        else:
            client.set_config({"access_token": key_or_token, "server": account.dc})
        client.api_client.host = self.api_host
        return client

    # ---- scripting --------------------------------------------------------------------------

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        body: Mapping[str, Any] | str | bytes | None = None,
        times: int = 1,
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests whose path starts with `path_prefix` (e.g.
        "/3.0/lists", "/oauth2/token") with `status`, after auth and latency.

        `body=None` sends an EMPTY body (Mailchimp's bare 429/403 under load: the client returns
        it as a `requests.Response` instead of raising); a mapping is sent as
        `application/problem+json` (see `problem()`), str/bytes as `content_type` (text/html).
        `headers`: sent with it (a 429's `Retry-After`).
        """
        if isinstance(body, Mapping):
            raw = json.dumps(body).encode()
            content_type = content_type or PROBLEM_JSON_TYPE
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body or b""
        if raw and content_type is None:
            content_type = "text/html"
        self._faults.append(_Rule(self._prefix(path_prefix), times, status, raw, content_type,
                                  headers=headers))  # fmt: skip

    def slow(self, path_prefix: str, seconds: float, times: int = 1) -> None:
        """Delay the next `times` requests under `path_prefix` by `seconds` (plus `latency`)."""
        self._slow.append(_Rule(self._prefix(path_prefix), times, seconds=seconds))

    def after(self, path_prefix: str, action: Callable[[], None], times: int = 1) -> None:
        """Run `action()` (on the fake's loop) once each of the next `times` requests under
        `path_prefix` has been answered: the account changing while the bot reads it (a
        member deleted from a list between two pages, as a merchant or a sync may do)."""
        self._after.append(_After(self._prefix(path_prefix), times, action))

    def revoke(self, key_or_token: str) -> None:
        """The key or token stops working: API calls and /oauth2/metadata answer 401."""
        self.revoked.add(key_or_token)

    @staticmethod
    def problem(status: int, title: str, detail: str = "") -> dict[str, Any]:
        """A problem-detail document, as Mailchimp's error bodies."""
        return {
            "type": PROBLEM_TYPE,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": str(uuid.uuid4()),
        }

    # ---- queries ----------------------------------------------------------------------------

    @property
    def peak_concurrency(self) -> int:
        """The highest `peak_concurrency` of any account."""
        return max((a.peak_concurrency for a in self.accounts), default=0)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[MailchimpRequest]:
        """Requests whose path starts with `path_prefix`, oldest first."""
        prefix = self._prefix(path_prefix)
        return [
            r
            for r in self.requests
            if r.path.startswith(prefix) and (method is None or r.method == method)
        ]

    # ---- aiohttp plumbing -------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @staticmethod
    def _prefix(path_prefix: str) -> str:
        return "/" + path_prefix.lstrip("/")

    def _find(self, credential: str) -> FakeAccount | None:
        for account in self.accounts:
            if credential in account.api_keys or credential in account.tokens:
                return account
        return None

    @staticmethod
    def _parse_authorization(header: str) -> tuple[AuthKind | None, str | None]:
        if not header:
            return None, None
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("latin-1")
            except (binascii.Error, ValueError):
                return "basic", None
            return "basic", decoded.partition(":")[2] or None
        if scheme == "bearer":
            return "bearer", value or None
        if scheme == "oauth":
            return "oauth", value or None
        return "other", None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind, credential = self._parse_authorization(request.headers.get("Authorization", ""))
        record = MailchimpRequest(
            request.method,
            request.path,
            dict(request.query),
            kind,
            credential,
            started=time.monotonic(),
        )
        self.requests.append(record)
        self.open_requests += 1
        try:
            response = await self._dispatch(request, record)
        except _Reply as reply:
            response = reply.response
        finally:
            self.open_requests -= 1
        record.status = response.status
        record.finished = time.monotonic()
        for hook in [h for h in self._after if h.times > 0 and request.path.startswith(h.prefix)]:
            hook.times -= 1
            if hook.times == 0:
                self._after.remove(hook)
            hook.action()
        return response

    async def _dispatch(self, request: web.Request, record: MailchimpRequest) -> web.Response:
        path = request.path
        if path == "/3.0" or path.startswith("/3.0/"):
            return await self._api(request, record, path.removeprefix("/3.0"))
        oauth = f"{self.oauth_base}/oauth2/"
        if path.startswith(oauth):
            await self._delay(path)
            self._raise_fault(path)
            return await self._oauth(request, record, path.removeprefix(oauth))
        await self._delay(path)
        self._raise_fault(path)
        return web.Response(status=404, text="404 Not Found")

    async def _delay(self, path: str) -> None:
        seconds = self.latency
        if rule := self._take(self._slow, path):
            seconds += rule.seconds
        if seconds > 0:
            await asyncio.sleep(seconds)

    @staticmethod
    def _take(rules: list[_Rule], path: str) -> _Rule | None:
        for rule in rules:
            if rule.times > 0 and path.startswith(rule.prefix):
                rule.times -= 1
                if rule.times == 0:
                    rules.remove(rule)
                return rule
        return None

    def _raise_fault(self, path: str) -> None:
        if rule := self._take(self._faults, path):
            response = web.Response(status=rule.status, body=rule.body, headers=rule.headers)
            if rule.content_type:
                response.headers["Content-Type"] = rule.content_type
            raise _Reply(response)

    # ---- /3.0 -------------------------------------------------------------------------------

    def _authenticate(self, record: MailchimpRequest) -> FakeAccount:
        if record.auth is None:
            raise _Reply(
                self._problem(401, "API Key Missing", "Your request did not include an API key.")
            )
        account = self._find(record.credential) if record.credential else None
        kind_ok = account is not None and (
            (record.auth == "basic" and record.credential in account.api_keys)
            or (record.auth == "bearer" and record.credential in account.tokens)
        )
        if account is None or not kind_ok or record.credential in self.revoked:
            raise _Reply(
                self._problem(
                    401,
                    "API Key Invalid",
                    "Your API key may be invalid, or you've attempted to access the wrong "
                    "datacenter.",
                )
            )
        return account

    async def _api(self, request: web.Request, record: MailchimpRequest, path: str) -> web.Response:
        try:
            account = self._authenticate(record)
        except _Reply:
            await self._delay(request.path)
            self._raise_fault(request.path)
            raise
        record.account_id = account.id
        account.open_requests += 1
        try:
            account.peak_concurrency = max(account.peak_concurrency, account.open_requests)
            if account.open_requests > self.max_connections:
                self.violations.append(
                    ConcurrencyViolation(
                        account.id, request.method, request.path, account.open_requests
                    )
                )
                return self._problem(
                    429,
                    "Too Many Requests",
                    f"You have exceeded the limit of {self.max_connections} simultaneous "
                    "connections.",
                )
            await self._delay(request.path)
            self._raise_fault(request.path)
            return self._route_api(request, account, path)
        finally:
            account.open_requests -= 1

    def _route_api(self, request: web.Request, account: FakeAccount, path: str) -> web.Response:
        parts = [p for p in path.split("/") if p]
        query = request.query
        if request.method != "GET":
            return self._problem(405, "Method Not Allowed", "The fake answers only GET on /3.0.")
        if not parts:
            return self._json(self._root(account), query)
        if parts == ["ping"]:
            return self._json({"health_status": "Everything's Chimpy!"}, query)
        if parts[0] != "lists" or len(parts) > 4:
            return self._not_found()
        if len(parts) == 1:
            return self._lists(account, query)
        fake_list = account.lists.get(parts[1])
        if fake_list is None:
            return self._not_found()
        total_contacts = query.get("include_total_contacts", "").lower() == "true"
        if len(parts) == 2:
            return self._json(fake_list.to_api(total_contacts), query)
        if parts[2] != "members":
            return self._not_found()
        if len(parts) == 3:
            return self._members(fake_list, query)
        try:
            member = fake_list.member(parts[3])
        except KeyError:
            return self._not_found()
        return self._json(member.to_api(fake_list.id, fake_list.dc), query)

    def _root(self, account: FakeAccount) -> dict[str, Any]:
        return {
            "account_id": account.id,
            "login_id": str(account.user_id),
            "account_name": account.name,
            "email": account.login_email,
            "first_name": "",
            "last_name": "",
            "username": account.login_email,
            "avatar_url": "",
            "role": account.role,
            "member_since": "2019-05-05T05:00:00+00:00",
            "pricing_plan_type": "monthly",
            "account_timezone": "America/Los_Angeles",
            "account_industry": "eCommerce",
            "pro_enabled": False,
            "last_login": "2025-01-20T03:33:33+00:00",
            "total_subscribers": sum(l.count("subscribed") for l in account.lists.values()),  # noqa: E741
        }

    def _paging(self, query: Mapping[str, str]) -> tuple[int, int]:
        try:
            count = int(query.get("count", DEFAULT_COUNT))
            offset = int(query.get("offset", 0))
        except ValueError:
            raise _Reply(
                self._problem(400, "Invalid Resource", "count and offset must be integers.")
            ) from None
        if count < 0 or offset < 0 or count > MAX_COUNT:
            raise _Reply(
                self._problem(
                    400,
                    "Invalid Resource",
                    f"count must be between 0 and {MAX_COUNT}; offset must not be negative.",
                )
            )
        return count, offset

    def _lists(self, account: FakeAccount, query: Mapping[str, str]) -> web.Response:
        count, offset = self._paging(query)
        total_contacts = query.get("include_total_contacts", "").lower() == "true"
        lists = list(account.lists.values())
        body = {
            "lists": [fl.to_api(total_contacts) for fl in lists[offset : offset + count]],
            "total_items": len(lists),
            "constraints": {
                "may_create": True,
                "max_instances": -1,
                "current_total_instances": len(lists),
            },
            "_links": [
                {
                    "rel": "self",
                    "href": f"https://{account.dc}.api.mailchimp.com/3.0/lists",
                    "method": "GET",
                }
            ],
        }
        return self._json(body, query)

    def _members(self, fake_list: FakeList, query: Mapping[str, str]) -> web.Response:
        count, offset = self._paging(query)
        status = query.get("status")
        if status is not None and status not in STATUSES:
            return self._problem(
                400,
                "Invalid Resource",
                f"The status {status!r} is not one of {', '.join(STATUSES)} (one value only).",
            )
        members = fake_list.members
        if status is not None:
            members = [m for m in members if m.status == status]
        if (since := query.get("since_last_changed")) is not None:
            try:
                after = datetime.fromisoformat(since)
            except ValueError:
                return self._problem(400, "Invalid Resource",
                                     "since_last_changed must be an ISO 8601 time.")  # fmt: skip
            members = [m for m in members if datetime.fromisoformat(m.last_changed) >= after]
        page = members[offset : offset + count]
        href = f"https://{fake_list.dc}.api.mailchimp.com/3.0/lists/{fake_list.id}"
        body = {
            "members": [m.to_api(fake_list.id, fake_list.dc) for m in page],
            "list_id": fake_list.id,
            "total_items": len(members),
            "_links": [
                {"rel": "self", "href": f"{href}/members", "method": "GET"},
                {"rel": "parent", "href": href, "method": "GET"},
            ],
        }
        return self._json(body, query)

    # ---- OAuth ------------------------------------------------------------------------------

    async def _oauth(
        self, request: web.Request, record: MailchimpRequest, name: str
    ) -> web.Response:
        if name == "authorize" and request.method == "GET":
            self.authorize_requests.append(dict(request.query))
            return web.Response(text=AUTHORIZE_PAGE, content_type="text/html")
        if name == "token" and request.method == "POST":
            return await self._token(request, record)
        if name == "metadata" and request.method == "GET":
            return self._metadata(record)
        return web.Response(status=404, text="404 Not Found")

    async def _token(self, request: web.Request, record: MailchimpRequest) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.token_requests.append(form)

        def error(status: int, code: str, description: str) -> web.Response:
            return web.json_response(
                {"error": code, "error_description": description}, status=status
            )

        if form.get("grant_type") != "authorization_code":
            return error(400, "unsupported_grant_type", "grant_type must be authorization_code")
        missing = [
            k for k in ("client_id", "client_secret", "redirect_uri", "code") if not form.get(k)
        ]
        if missing:
            return error(400, "invalid_request", f"missing {', '.join(missing)}")
        if (self.client_id is not None and form["client_id"] != self.client_id) or (
            self.client_secret is not None and form["client_secret"] != self.client_secret
        ):
            return error(401, "invalid_client", "Invalid client_id or client_secret")
        code = self._codes.get(form["code"])
        if code is None or code.used:
            return error(400, "invalid_grant", "Invalid authorization code")
        if code.redirect_uri is not None and form["redirect_uri"] != code.redirect_uri:
            return error(400, "invalid_grant", "redirect_uri does not match")
        code.used = True
        record.account_id = code.account.id
        return web.json_response({"access_token": code.token, "expires_in": 0, "scope": None})

    def _metadata(self, record: MailchimpRequest) -> web.Response:
        account = self._find(record.credential) if record.credential else None
        if (
            record.auth != "oauth"
            or account is None
            or record.credential not in account.tokens
            or record.credential in self.revoked
        ):
            return web.json_response(
                {"error": "invalid_token", "error_description": "Invalid access token"},
                status=401,
            )
        record.account_id = account.id
        return web.json_response(
            {
                "dc": account.dc,
                "role": account.role,
                "accountname": account.name,
                "user_id": account.user_id,
                "login": {
                    "email": account.login_email,
                    "avatar": None,
                    "login_id": account.user_id + 864197532,
                    "login_name": account.login_email,
                    "login_email": account.login_email,
                },
                "login_url": self.login_url,
                "api_endpoint": self.base_url,
            }
        )

    # ---- responses --------------------------------------------------------------------------

    @staticmethod
    def _json(body: dict[str, Any], query: Mapping[str, str], status: int = 200) -> web.Response:
        body = project(body, query.get("fields") or None, query.get("exclude_fields") or None)
        return web.Response(
            status=status,
            text=json.dumps(body, ensure_ascii=False),
            content_type=JSON_TYPE,
            charset="utf-8",
        )

    def _problem(self, status: int, title: str, detail: str) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(self.problem(status, title, detail)),
            content_type=PROBLEM_JSON_TYPE,
            charset="utf-8",
        )

    def _not_found(self) -> web.Response:
        return self._problem(
            404, "Resource Not Found", "The requested resource could not be found."
        )
