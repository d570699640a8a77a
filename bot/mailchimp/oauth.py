"""Connecting Mailchimp by OAuth 2: the authorize URL, a signed state, the code exchange.

The state names the workspace and the person, expires after STATE_TTL and works once (its
nonce is recorded when used, and forgotten again when the exchange fails, so *Connect* works
again as the error page says), so a forged, stale or replayed callback gets an error page and
no token exchange happens. Mailchimp's tokens don't expire and have no scopes; the account's
data centre and API endpoint come from the metadata endpoint (`Authorization: OAuth <token>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp

from bot.mailchimp.api import Credentials, MailchimpError

STATE_TTL = 600  # seconds between "Connect" and the callback
CALLBACK_PATH = "/mailchimp/oauth/callback"


class BadState(Exception):
    """The callback's state wasn't made by us, or is too old."""


@dataclass(frozen=True, slots=True)
class State:
    team_id: str
    user_id: str
    nonce: str


def _mac(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"mailchimp-oauth:" + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def make_state(secret: str, team_id: str, user_id: str, *, now: float | None = None) -> str:
    body = json.dumps([team_id, user_id, int((now or time.time()) + STATE_TTL),
                       secrets.token_urlsafe(12)]).encode()  # fmt: skip
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _mac(secret, body)


def read_state(secret: str, state: str, *, now: float | None = None) -> State:
    try:
        encoded, mac = state.split(".", 1)
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, TypeError):
        raise BadState("malformed") from None
    # the signature before anything reads the body; compare_digest raises on non-ASCII str
    if not mac.isascii() or not hmac.compare_digest(mac, _mac(secret, body)):
        raise BadState("bad signature")
    try:
        team_id, user_id, expires, nonce = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        raise BadState("malformed") from None
    if (now or time.time()) > float(expires):
        raise BadState("expired")
    return State(str(team_id), str(user_id), str(nonce))


def authorize_url(login_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"response_type": "code", "client_id": client_id,
                       "redirect_uri": redirect_uri, "state": state})  # fmt: skip
    return f"{login_url.rstrip('/')}/oauth2/authorize?{query}"


@dataclass(frozen=True, slots=True)
class Account:
    creds: Credentials
    dc: str
    account_name: str
    login_email: str


async def exchange(login_url: str, client_id: str, client_secret: str, redirect_uri: str,
                   code: str) -> Account:  # fmt: skip
    """Code -> token -> metadata (data centre and API endpoint). MailchimpError for whatever
    goes wrong on the way: Mailchimp unreachable, slow, or answering something else than
    the JSON objects it documents (an HTML error page from its front end, say)."""
    try:
        return await _exchange(login_url, client_id, client_secret, redirect_uri, code)
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as exc:
        raise MailchimpError("Mailchimp couldn't be reached to finish the sign-in "
                             f"({type(exc).__name__}): try Connect again.") from exc


async def _exchange(login_url: str, client_id: str, client_secret: str, redirect_uri: str,
                    code: str) -> Account:  # fmt: skip
    base = login_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as http:
        async with http.post(f"{base}/oauth2/token", data={
            "grant_type": "authorization_code", "client_id": client_id,
            "client_secret": client_secret, "redirect_uri": redirect_uri, "code": code,
        }) as response:  # fmt: skip
            body = await response.json(content_type=None)
            if response.status != 200 or not body.get("access_token"):
                raise MailchimpError("Mailchimp didn't accept this sign-in (it may have been "
                                     "used already): try Connect again.")  # fmt: skip
            token = str(body["access_token"])
        async with http.get(f"{base}/oauth2/metadata",
                            headers={"Authorization": f"OAuth {token}"}) as response:  # fmt: skip
            meta = await response.json(content_type=None)
            if response.status != 200 or not meta.get("api_endpoint"):
                raise MailchimpError("Mailchimp didn't say which account this is: try again.")
    login = meta.get("login") or {}
    return Account(Credentials(str(meta["api_endpoint"]), "oauth", token), str(meta.get("dc")),
                   str(meta.get("accountname") or ""), str(login.get("email") or ""))  # fmt: skip
