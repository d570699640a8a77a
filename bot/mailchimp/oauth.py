"""Connecting Mailchimp by OAuth 2: the start link, the authorize URL, a signed state bound to
the browser, the code exchange.

*Connect* in Slack opens our start page (CONNECT_PATH), not Mailchimp: a link sent on to
someone else would otherwise connect *their* Mailchimp account to the sender's workspace
(login CSRF). The start page names the workspace and the person, and its Continue (a POST, so
link previews can't spend it; `bot/web.py` refuses one posted from another site, which would
skip the question) gives the browser a random cookie (BROWSER_COOKIE) and sends it to
Mailchimp with a state that carries a hash of that cookie. The callback refuses a state
whose hash doesn't match the cookie the browser brings back, so the authorize URL (or the
callback) followed from another browser connects nothing.

The binding is stateless (the cookie's hash inside the signed state) because the state already
travels to Mailchimp and back, signed: nothing needs a table of its own, nor clean-up. The two
one-time facts are `seen_key` rows (team id on the row, as for other once-only things): the
start claimed by a browser (so a second browser opening the same Slack link is told to ask
for a new one; the first may continue again, after cancelling on Mailchimp, say), and the
state used at the callback (forgotten again when the exchange fails, so *Connect* works again
as the error page says). A forged, stale or replayed state gets an error page and no token
exchange happens. The start state and the bound state are signed for different purposes, so
neither passes for the other.

Mailchimp's tokens don't expire and have no scopes; the account's data centre and API
endpoint come from the metadata endpoint (`Authorization: OAuth <token>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.mailchimp.api import Credentials, MailchimpError
from models import Database, SeenKey
from models.clock import utcnow

log = logging.getLogger(__name__)

STATE_TTL = 600  # seconds from "Connect" shown to Continue, and from Continue to the callback
CONNECT_PATH = "/mailchimp/connect"  # the start page Slack's Connect button opens
CALLBACK_PATH = "/mailchimp/oauth/callback"
COOKIE_PATH = "/mailchimp"  # the cookie goes to the start page and the callback only
BROWSER_COOKIE = "mailchimp_browser"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")  # what new_browser_id makes
_START, _BOUND = b"mailchimp-start:", b"mailchimp-bound:"


class BadState(Exception):
    """The state wasn't made by us (for this step), or is too old."""


@dataclass(frozen=True, slots=True)
class State:
    team_id: str
    user_id: str
    nonce: str
    expires: int
    person: str = ""  # the start's: the person's name in Slack, for the start page
    browser: str = ""  # the bound one's: browser_hash of the cookie it was sent with
    # what Connect was drawn for (accounts.Seen's text): the callback replaces only that.
    # "" in a state made before states carried it: whatever is connected
    seen: str = ""


def _mac(secret: str, purpose: bytes, body: bytes) -> str:
    digest = hmac.new(secret.encode(), purpose + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _sign(secret: str, purpose: bytes, fields: list[str | int]) -> str:
    body = json.dumps(fields).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _mac(secret, purpose, body)


def _open(secret: str, purpose: bytes, state: str, now: float | None) -> list[Any]:
    try:
        encoded, mac = state.split(".", 1)
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, TypeError):
        raise BadState("malformed") from None
    # the signature before anything reads the body; compare_digest raises on non-ASCII str
    if not mac.isascii() or not hmac.compare_digest(mac, _mac(secret, purpose, body)):
        raise BadState("bad signature")
    try:
        fields = json.loads(body)
        # 5: a state made before they carried what Connect was drawn for (valid 10 minutes)
        if not isinstance(fields, list) or len(fields) not in (5, 6):
            raise ValueError
        expires = int(fields[2])
    except (ValueError, TypeError, RecursionError):
        raise BadState("malformed") from None
    if (now or time.time()) > expires:
        raise BadState("expired")
    return fields if len(fields) == 6 else [*fields, ""]


def make_state(secret: str, team_id: str, user_id: str, *, person: str = "", seen: str = "",
               now: float | None = None) -> str:  # fmt: skip
    """The start link's state, made when Slack shows *Connect* to a team lead; `seen`: the
    connection it was shown for (accounts.Seen's text), which the callback replaces only."""
    return _sign(secret, _START, [team_id, user_id, int((now or time.time()) + STATE_TTL),
                                  secrets.token_urlsafe(12), person[:100], seen])  # fmt: skip


def read_state(secret: str, state: str, *, now: float | None = None) -> State:
    """The start link's state; BadState if forged, malformed or expired."""
    team_id, user_id, expires, nonce, person, seen = _open(secret, _START, state, now)
    return State(str(team_id), str(user_id), str(nonce), int(expires), person=str(person),
                 seen=str(seen))  # fmt: skip


def bind_state(secret: str, start: State, browser: str, *, now: float | None = None) -> str:
    """The state sent to Mailchimp at Continue: the start's (same nonce), bound to a browser,
    valid STATE_TTL from now, as the cookie set with it. With the start's expiry, a lead who
    continued at the start link's 8th minute had 2 minutes to sign in to Mailchimp, and was
    told the link "isn't valid or has expired" after the 3 it took. The start link lasts
    STATE_TTL from when Slack showed it, and is claimed by the first browser to continue."""
    expires = int((now or time.time()) + STATE_TTL)
    return _sign(secret, _BOUND, [start.team_id, start.user_id, expires, start.nonce,
                                  browser_hash(browser), start.seen])  # fmt: skip


def read_bound_state(secret: str, state: str, *, now: float | None = None) -> State:
    """The callback's state; BadState if forged (a start link's state too), or expired."""
    team_id, user_id, expires, nonce, browser, seen = _open(secret, _BOUND, state, now)
    return State(str(team_id), str(user_id), str(nonce), int(expires), browser=str(browser),
                 seen=str(seen))  # fmt: skip


def new_browser_id(cookie: str | None) -> str:
    """The browser's cookie value: the one it has (so two sign-ins in one browser don't
    unbind each other), else a new random one."""
    if cookie and _COOKIE_VALUE.fullmatch(cookie):
        return cookie
    return secrets.token_urlsafe(32)


def browser_hash(cookie: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(cookie.encode()).digest()[:16]).decode()[:22]


def same_browser(state: State, cookie: str | None) -> bool:
    """The callback came back to the browser that pressed Continue."""
    return bool(cookie and state.browser and _COOKIE_VALUE.fullmatch(cookie)
                and hmac.compare_digest(browser_hash(cookie), state.browser))  # fmt: skip


def connect_url(public_base: str, state: str) -> str:
    """What Slack's *Connect* button opens: our start page, never Mailchimp directly."""
    return f"{public_base.rstrip('/')}{CONNECT_PATH}?{urlencode({'state': state})}"


def authorize_url(login_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"response_type": "code", "client_id": client_id,
                       "redirect_uri": redirect_uri, "state": state})  # fmt: skip
    return f"{login_url.rstrip('/')}/oauth2/authorize?{query}"


# ---- once-only facts ------------------------------------------------------------------------


class Start(Enum):
    """Where a start link stands for one browser."""

    OPEN = "open"  # nobody continued yet, or this browser did
    TAKEN = "taken"  # another browser continued with it
    USED = "used"  # its sign-in finished (connected)


def used_key(state: State) -> str:
    """The seen_key of a state spent at the callback."""
    return f"mailchimp-oauth:{state.nonce}"


def _start_keys(state: State, browser: str | None) -> tuple[str, str]:
    """The start's claim, and this browser's share of it ("" without a cookie, or with one
    we never made: bytes that aren't UTF-8 can't even be hashed)."""
    claim = f"mailchimp-start:{state.nonce}"
    if not browser or not _COOKIE_VALUE.fullmatch(browser):
        return claim, ""
    return claim, f"{claim}:{browser_hash(browser)}"


async def start_status(db: Database, state: State, browser: str | None) -> Start:
    claim, mine = _start_keys(state, browser)
    async with db.session() as session:
        found = set((await session.exec(select(SeenKey.key).where(
            col(SeenKey.team_id) == state.team_id,
            col(SeenKey.key).in_([claim, mine, used_key(state)])))).all())  # fmt: skip
    if used_key(state) in found:
        return Start.USED
    return Start.TAKEN if claim in found and mine not in found else Start.OPEN


async def claim_start(db: Database, state: State, browser: str) -> Start:
    """Continue: the first browser claims the start link (one transaction, so of two at once
    exactly one does); OPEN if this browser may go on to Mailchimp."""
    claim, mine = _start_keys(state, browser)
    if await start_status(db, state, browser) is Start.USED:
        return Start.USED
    try:
        async with db.begin() as conn:
            await conn.execute(insert(SeenKey), [
                {"team_id": state.team_id, "key": key, "created_at": utcnow()}
                for key in (claim, mine)])  # fmt: skip
    except IntegrityError:  # claimed before: by this browser (Continue again) or another
        return await start_status(db, state, browser)
    return Start.OPEN


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
        # in words (the page said "(ContentTypeError)"); the caller logs the exception
        raise MailchimpError(f"{_exchange_failure(exc)}: try Connect again.") from exc


def _exchange_failure(exc: Exception) -> str:
    """What went wrong finishing the sign-in, as a person reads it."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "Mailchimp didn't answer in time while finishing the sign-in"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "Mailchimp couldn't be reached to finish the sign-in"
    return "Mailchimp answered something unexpected while finishing the sign-in"


def _token_refused(status: int, body: object) -> str:
    """Why Mailchimp's token endpoint refused the code, as the page says it: every refusal
    was "it may have been used already: try Connect again", which a wrong client secret
    (the bot's setting) or a rate limit answers again each time. Mailchimp's own words go
    to the log, for whoever runs the bot."""
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    detail = str(body.get("error_description") or "") if isinstance(body, dict) else ""
    log.warning("Mailchimp's token endpoint refused a sign-in: %s %r %r", status, error[:100],
                detail[:200])  # Mailchimp's words: repr, so no line of theirs forges one of ours
    if status == 429:
        return ("Mailchimp is busy (too many requests) and didn't finish the sign-in: try "
                "Connect again in a minute.")  # fmt: skip
    if status == 401 or error in ("invalid_client", "unauthorized_client"):
        return ("Mailchimp refused this bot's own app credentials (MAILCHIMP_CLIENT_ID or "
                "MAILCHIMP_CLIENT_SECRET is wrong, or was changed in Mailchimp): ask whoever "
                "runs the bot to check them. Trying again won't help until then.")
    return ("Mailchimp didn't accept this sign-in (it may have been used already, or taken "
            "too long): try Connect again.")


def _available(response: aiohttp.ClientResponse) -> None:
    """Mailchimp down (a 5xx, often an HTML page): said so, not as the page's failed parse."""
    if response.status >= 500:
        raise MailchimpError(f"Mailchimp was unavailable ({response.status}) while finishing the "
                             "sign-in: try Connect again.")  # fmt: skip


async def _exchange(login_url: str, client_id: str, client_secret: str, redirect_uri: str,
                    code: str) -> Account:  # fmt: skip
    base = login_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as http:
        async with http.post(f"{base}/oauth2/token", data={
            "grant_type": "authorization_code", "client_id": client_id,
            "client_secret": client_secret, "redirect_uri": redirect_uri, "code": code,
        }) as response:  # fmt: skip
            _available(response)
            body = await response.json(content_type=None)
            if response.status != 200 or not body.get("access_token"):
                raise MailchimpError(_token_refused(response.status, body))
            token = str(body["access_token"])
        async with http.get(f"{base}/oauth2/metadata",
                            headers={"Authorization": f"OAuth {token}"}) as response:  # fmt: skip
            _available(response)
            meta = await response.json(content_type=None)
            if response.status != 200 or not meta.get("api_endpoint"):
                raise MailchimpError("Mailchimp didn't say which account this is: try again.")
    login = meta.get("login") or {}
    return Account(Credentials(str(meta["api_endpoint"]), "oauth", token), str(meta.get("dc")),
                   str(meta.get("accountname") or ""), str(login.get("email") or ""))  # fmt: skip
