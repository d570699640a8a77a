"""The public pages `serve` answers beside Slack: referral, unsubscribe, and Mailchimp's
sign-in (its start page and OAuth callback).

They are served in HTTP and Socket Mode alike, to anyone on the internet, so they reveal
nothing: an unknown code is a plain 404 (a deleted advocate's code a plain 410 Gone), a forged
unsubscribe token a plain 400, and a GET never unsubscribes (mail scanners follow links); only
the POST does (RFC 8058 one-click). A link whose contact was deleted since still unsubscribes
its address, found among those the workspace remembers (a campaign emailed it), so that no
later import brings it back subscribed; one whose address we don't know says only that its
contact was removed. A page about a contact we know speaks the invite's language; the others,
the language the visitor's browser asks for. Mailchimp's start page names a workspace and a
person only for a link the bot signed, and likewise only its POST goes on
(`bot/mailchimp/oauth.py`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from typing import Any, NamedTuple
from urllib.parse import quote, unquote_plus, urlencode, urlsplit, urlunsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import text
from yarl import URL

from bot.audit import CLI
from bot.campaigns.codes import could_be_code, normalise
from bot.campaigns.consent import (
    recipient_of,
    remembered_addresses,
    suppress,
    suppressed,
    unsubscribe,
)
from bot.campaigns.links import BadToken, UnsubscribeToken, read_unsubscribe_token
from bot.email.render import isolated
from bot.home_refresh import queue_home_refresh
from bot.hosts import ascii_host
from bot.mailchimp.accounts import Connection, ConnectionChanged, Seen, save
from bot.mailchimp.api import MailchimpError
from bot.mailchimp.oauth import (
    BROWSER_COOKIE,
    CALLBACK_PATH,
    CONNECT_PATH,
    COOKIE_PATH,
    STATE_TTL,
    BadState,
    Start,
    State,
    authorize_url,
    bind_state,
    claim_start,
    exchange,
    new_browser_id,
    read_bound_state,
    read_state,
    same_browser,
    start_status,
    used_key,
)
from bot.once import first_time, forget
from bot.settings import Settings
from bot.web_text import (
    CONTACT_GONE,
    LINK_BROKEN,
    LINK_GONE,
    LINK_NOT_FOUND,
    LINK_NOT_VALID,
    NOT_ALLOWED,
    NOT_FOUND,
    NOT_ON_LIST,
    TRY_AGAIN,
    UNSUBSCRIBE,
    PageText,
    UnsubscribeText,
    visitor_language,
)
from bot.words import quoted
from bot.workspaces import workspace_name
from models import Database

log = logging.getLogger(__name__)
_PAGES = Environment(loader=PackageLoader("bot", "pages"),
                     autoescape=select_autoescape(["html", "html.j2"]))  # fmt: skip

_CLICK = text("""
    UPDATE advocate SET clicks = clicks + 1 WHERE code = :code
    RETURNING (SELECT store_url FROM campaign WHERE campaign.id = advocate.campaign_id)
""")

_RETIRED = text("SELECT 1 FROM retired_code WHERE code = :code")
# A HEAD (link checkers, mail gateways) is answered as the GET would be, without a click
_LOOK = text("""
    SELECT (SELECT store_url FROM campaign WHERE campaign.id = advocate.campaign_id)
    FROM advocate WHERE code = :code
""")


def with_ref(store_url: str, code: str, visitor_query: str = "") -> str:
    """The store URL with `ref=<code>` in its query (replacing any `ref` already there), and
    before it the parameters the visitor's link came with (`/r/CODE?utm_source=newsletter`):
    dropped, they left the merchant's analytics no way to tell where the visit came from.

    The rest of the query stays as the merchant wrote it, byte for byte: decoding and encoding
    it again changed `a=1;b=2`, a bare `utm` and a Latin-1 `%E9` on the way to the store. The
    visitor's pieces go on as they came too (_visitors_pieces), only in the query: the store's
    scheme and host are the merchant's whatever the visitor sends."""
    parts = urlsplit(store_url)
    kept = [piece for piece in parts.query.split("&")
            if piece and piece != "ref" and not piece.startswith("ref=")]  # fmt: skip
    visitors = _visitors_pieces(visitor_query, kept)
    return urlunsplit(parts._replace(query="&".join([*kept, *visitors, f"ref={code}"])))


# The most of the visitor's query a redirect carries on: its utm_* and click ids take a few
# hundred characters; a query as long as a request line allows (8 KB) made a Location that
# proxies' header buffers (nginx: 4 KB by default) refuse.
MAX_VISITOR_QUERY = 1024


def _visitors_pieces(query: str, store_pieces: list[str]) -> list[str]:
    """The pieces of the visitor's raw query that go on to the store, as written, in their
    order, those that fit in MAX_VISITOR_QUERY (whole: a piece cut short is another value).

    None that a server may read as `ref` (`%72ef=`, `REF=`, `ref[]=`, `a=1;ref=`): the code
    in the path names the advocate, never the visitor. Nor one named as a parameter of the
    store URL's own: the merchant's value stays the one the store reads (PHP reads the last
    of two). A `#` is encoded (`%23`): it would have ended the query and begun a fragment."""
    taken = {"ref", *(_name(sub) for piece in store_pieces for sub in piece.split(";"))}
    carried: list[str] = []
    room = MAX_VISITOR_QUERY
    for raw in query.split("&"):
        piece = quote(raw, safe=_IN_QUERY)
        if not piece or len(piece) + 1 > room:
            continue
        if any(_name(sub) in taken for sub in piece.split(";")):
            continue
        carried.append(piece)
        room -= len(piece) + 1
    return carried


def _name(piece: str) -> str:
    """A query piece's parameter name as some server may read it: decoded (`%72ef` is `ref`),
    in any case (ASP.NET's are case-insensitive), before a `[` (PHP and Rails read `ref[]` as
    `ref`) or a NUL, and without the spaces around it (PHP drops leading ones). ASP.NET's
    decoding reads `%u0072` as `r` too: `%u0072ef=` was carried on as no `ref`."""
    name = unquote_plus(_WIDE_ESCAPE.sub(_wide_char, piece.partition("=")[0]))
    return name.partition("[")[0].partition("\0")[0].strip().casefold()


# ASP.NET's (HttpUtility.UrlDecode's) escape of a UTF-16 code unit, beside `%XX`
_WIDE_ESCAPE = re.compile(r"%u([0-9a-f]{4})", re.IGNORECASE)


def _wide_char(match: re.Match[str]) -> str:
    """The character a `%uXXXX` escape names, as ASP.NET decodes it."""
    return chr(int(match[1], 16))


# Printable ASCII, kept as written in a Location; the rest (non-ASCII, spaces) is encoded.
_AS_WRITTEN = "".join(chr(c) for c in range(0x21, 0x7F))
_IN_QUERY = _AS_WRITTEN.replace("#", "")  # a visitor's piece: `#` would begin a fragment


def location(url: str) -> URL:
    """`url` for a Location header as written: handed over as a string, aiohttp parsed it
    (yarl), decoding and encoding it again (`%2F` to `/`, `%3F` to `?`, `%e9` to `%E9`), so
    a store URL signed over its exact query, or whose `;` means something, was another URL.
    Only the host goes to its ASCII form and non-ASCII characters are percent-encoded.
    ValueError: no URL a browser can follow (a port of 99999)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():  # the host as campaigns' check reads it (bot.hosts): yarl
        # refused a soft hyphen or a zero-width character the check had let through
        host = ascii_host(parts.hostname or "")
        if host is None:
            # the host alone: `url` may carry a visitor's query, which no log shows
            raise ValueError(f"no host name in {parts.netloc!r}")
        netloc = host + (f":{parts.port}" if parts.port else "")
    authority = URL(f"{parts.scheme}://{netloc}").raw_authority
    path, query, fragment = (quote(piece, safe=_AS_WRITTEN)
                             for piece in (parts.path, parts.query, parts.fragment))  # fmt: skip
    return URL(urlunsplit((parts.scheme, authority, path, query, fragment)), encoded=True)


def page(title: str, message: str, *, status: int = 200, action: str | None = None,
         button: str = "", lang: str = "en", address: str = "") -> web.Response:  # fmt: skip
    """Our page (escaped by its template); `address`, if any, on its own line under the
    message: the words stay one sentence per language, the address in none of them."""
    body = _PAGES.get_template("page.html.j2").render(title=title, message=message, action=action,
                                                      button=button, lang=lang,
                                                      address=address)  # fmt: skip
    return web.Response(text=body, status=status, content_type="text/html",
                        headers={**_HEADERS, "Content-Language": lang})  # fmt: skip


def visitor_page(request: web.Request, words: dict[str, PageText], *, status: int,
                 headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    """A page for a visitor we know nothing of, in the language their browser asks for."""
    lang = visitor_language(request.headers.get("Accept-Language"))
    response = page(*words[lang], status=status, lang=lang)
    response.headers.update({**(headers or {}), "Vary": "Accept-Language"})
    return response


def own_error_pages(untouched: Collection[str], prefix: str = "") -> Middleware:
    """Middleware of everything `serve` answers on its port.

    An address that is no route (404), or a route asked with a method it doesn't take (405),
    gets our page in the visitor's language instead of aiohttp's bare "404: Not Found". Paths
    in `untouched` (Slack's endpoint, /healthz: machines read them) keep aiohttp's answers, and
    so does a 404 or 405 a handler raises itself. `prefix`: PUBLIC_URL's path as request.path
    reads it (requested_path), under which a failure's log line redacts secrets too.

    And every answer, raised or returned, says `Referrer-Policy: no-referrer` (_no_referrer).
    It is here, in the one middleware `build_web_app` installs, so that no route can miss it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return _no_referrer(await _own_error_page(request, handler, untouched, prefix))
        except web.HTTPException as exc:  # a redirect, or a 404 or 405 left to aiohttp
            _no_referrer(exc)
            raise

    return middleware


async def _own_error_page(request: web.Request, handler: Handler, untouched: Collection[str],
                          prefix: str) -> web.StreamResponse:  # fmt: skip
    """`handler`'s answer, or our page for a 404 or 405 aiohttp raised (own_error_pages)."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if request.path in untouched or request.match_info.http_exception is None:
            raise
        if isinstance(exc, web.HTTPMethodNotAllowed):
            return visitor_page(request, NOT_ALLOWED, status=exc.status,
                                headers={"Allow": exc.headers["Allow"]})  # fmt: skip
        return visitor_page(request, NOT_FOUND, status=exc.status)
    except web.HTTPException:
        raise
    except Exception:  # the database out of reach, or a bug: logged, and our page, not a 500
        if request.path in untouched:
            raise
        log.exception("%s %s failed; answered 503", request.method,
                      logged_path(request.path, prefix)[:200])  # fmt: skip
        return visitor_page(request, TRY_AGAIN, status=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip


RETRY_AFTER_SECONDS = 30


# Paths whose last part, and queries whose values, are secrets: an unsubscribe link's token
# never expires (whoever read the log could unsubscribe anyone), and the Mailchimp sign-in's
# code and state are bearer secrets for a few minutes. Logs show them as REDACTED.
SECRET_PATH = "/u/"
SECRET_QUERY = "/mailchimp/"
REDACTED = "redacted"
# A referral link's query is the visitor's own (an address in `utm_content`, a mail tool's
# subscriber id): the redirect carries it to the store, and logs show the path alone.
REFERRAL_PATH = "/r/"


def logged_path(path: str, prefix: str = "") -> str:
    """`path` as a log may show it (a path alone: no query): an unsubscribe link's token
    redacted, as the access log shows it (bot.app._without_secrets), at the root or under
    PUBLIC_URL's path (`prefix`, as request.path reads it: requested_path)."""
    head = public_head(path, SECRET_PATH, prefix)
    return path if head is None else head + SECRET_PATH + REDACTED


def public_head(path: str, start: str, prefix: str = "") -> str | None:
    """What comes before `start` (SECRET_PATH, REFERRAL_PATH, SECRET_QUERY) in `path`, a
    public page's: "" at the root, `prefix` under PUBLIC_URL's path; None if neither. The
    root first: it redacts at least as much (`/u/u/TOKEN` under a PUBLIC_URL path of `/u`)."""
    for head in ("", prefix) if prefix else ("",):
        if path.startswith(head + start):
            return head
    return None


def requested_path(public_path: str) -> str:
    """PUBLIC_URL's path (as links carry it: `/mein%20shop`) as aiohttp's request.path reads
    a request's, decoded (`/mein shop`): what paths are compared with."""
    return URL.build(path=public_path, encoded=True).path if public_path else ""


PUBLIC_PATH_VAR = "public_path"  # the route variable PUBLIC_URL's path is matched as


def under_public_path(public_path: str, routes: Iterable[web.RouteDef]) -> list[web.RouteDef]:
    """`routes` again under PUBLIC_URL's path (Settings.public_path); none without one. The
    links the bot makes carry that path (`https://shop.example/referrals/r/CODE`), and a
    proxy forwarding `/referrals/*` as it came (or none) sent them all to a 404; a proxy
    that strips it still reaches the routes at the root.

    The path is a variable matching it exactly, not written out: aiohttp matches routes
    against the decoded path but keeps a route's own characters percent-encoded, so a route
    `/mein%20shop/r/...` (or `/mein shop/...`) matched no request at all."""
    if not public_path:
        return []
    wanted = URL.build(path=public_path, encoded=True).path_safe  # what aiohttp matches
    head = "/{" + PUBLIC_PATH_VAR + ":" + _exactly(wanted.removeprefix("/")) + "}"
    return [web.RouteDef(route.method, head + route.path, route.handler, route.kwargs)
            for route in routes]  # fmt: skip


def _exactly(text: str) -> str:
    """A regular expression matching `text` alone, written in letters, digits and escapes:
    a `{`, `}` or `:` would be read as aiohttp's route syntax."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\U{ord(c):08x}" for c in text)


def _no_referrer(response: web.StreamResponse) -> web.StreamResponse:
    """`response` telling the browser to send no Referer from it: an unsubscribe page's URL
    carries its signed token, which a browser sends on to any address the page loads,
    prefetches or links to. On the referral redirect it keeps the page the link was clicked
    on from the store, which learns the advocate from `ref=`. A response its handler has
    already sent (streamed) keeps the headers it went with."""
    if not response.prepared:
        response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


# Pages about someone's address or account: never cached, never framed (the unsubscribe
# button inside another site's page), never sniffed as another type.
_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff"}  # fmt: skip


Connected = Callable[[str, str, str], Awaitable[None]]  # (team, user, account name)
# Starts work a page doesn't wait for, kept where `serve` stopping waits for it (Later.background)
Background = Callable[[Coroutine[Any, Any, None], str], None]  # the work, and what it is


class _Addressee(NamedTuple):
    """The contact an unsubscribe link was made for, as its link was checked."""

    token: UnsubscribeToken
    email_key: str  # its address key then: what the unsubscribe matches too
    lang: str  # its invites' language, and the words of its pages in it
    words: UnsubscribeText
    unsubscribed: bool  # for good (`unsubscribed_at`), not only switched off by an import


class _Gone(NamedTuple):
    """An unsubscribe link whose contact is gone (deleted, or its import undone)."""

    team_id: str
    contact_id: int
    email_key: str | None  # the address it was made for, if the workspace remembers it
    token: UnsubscribeToken


def masked_address(email_key: str) -> str:
    """The address an unsubscribe page is about, as it shows it: the local part's first
    character, then "•••", then the domain whole ("a•••@example.com"). The question said
    only "this address": a friend reading a forwarded invite unsubscribed the advocate. This
    is enough for its owner to know it, and tells whoever holds a link little more than the
    domain. From the address key (case-folded, as the link was signed over it)."""
    local, at, domain = email_key.rpartition("@")
    if not at:  # no address key looks like this; show no more of it than of one that does
        local, domain = email_key, ""
    first, rest = local[:1], local[1:]
    while rest and unicodedata.combining(rest[0]):  # an accent typed as a character of its own
        first, rest = first + rest[0], rest[1:]
    return f"{first}•••{at}{domain}"


def changed_since(now: Connection | None, user_id: str) -> str:
    """The sign-in page's words when the workspace's connection changed while the person
    signed in (accounts.save's `seen`): what is connected now, and by whom, as far as a web
    page can name them, and that nothing was replaced."""
    if now is None:
        return ("Mailchimp was disconnected from this workspace while you were signing in, so "
                "nothing was saved. To connect this account, run /referral mailchimp in Slack "
                "and connect again.")  # fmt: skip
    if now.account_name:
        what = f"“{isolated(now.account_name)}”" + (
            f", {isolated(now.login_email)}" if now.login_email else "")  # fmt: skip
    else:
        what = f"with an API key, data centre {now.dc}"
    who = ("You" if now.connected_by == user_id
           else "Someone at the command line" if now.connected_by == CLI
           else "Another team lead")  # fmt: skip
    return (f"{who} connected a Mailchimp account ({what}) while you were signing in, so "
            "nothing was replaced. To connect the account you signed in to instead, "
            "disconnect that account first with /referral mailchimp in Slack, then connect "
            "again.")  # fmt: skip


def _cross_site(request: web.Request, public_base: str) -> bool:
    """A form on another site posted this: an auto-submitting one would take a browser past
    the start page's question, to Mailchimp with someone else's state bound to it. Browsers
    say so in Sec-Fetch-Site, older ones in Origin; a request with neither isn't a form's."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    # compared as origins (browsers send the host in lower case, without a default port):
    # PUBLIC_URL written https://Bot.Example or with :443 refused the lead's own Continue
    ours = {_origin(public_base), _origin(f"{request.scheme}://{request.host}")}
    return _origin(origin) not in ours


def _origin(url: str) -> str:
    """scheme://host[:port] of `url` as one origin is compared with another; "" if none."""
    try:
        return str(URL(url).origin())
    except ValueError:
        return ""


def public_routes(db: Database, settings: Settings, *, on_connected: Connected | None = None,
                  in_background: Background | None = None) -> list[web.RouteDef]:  # fmt: skip
    """The public pages' routes, at the root and under PUBLIC_URL's path (under_public_path):
    the pages' own links are relative, so each works by either. `on_connected` tells the
    person in Slack that Mailchimp is connected; `in_background` (serve: its Later's) runs
    that after the page is returned. Without it the page waits for Slack (routes built
    alone, as tests do)."""

    async def _retired(code: str) -> bool:
        """Its advocate was deleted (`/referral contacts`): 410 Gone rather than 404."""
        async with db.begin() as conn:
            return (await conn.execute(_RETIRED, {"code": code})).first() is not None

    async def referral(request: web.Request) -> web.StreamResponse:
        code = normalise(request.match_info["code"])
        if not could_be_code(code):
            return visitor_page(request, LINK_NOT_FOUND, status=404)
        async with db.begin() as conn:
            row = (await conn.execute(_LOOK if request.method == "HEAD" else _CLICK,
                                      {"code": code})).first()  # fmt: skip
        if row is None or not row[0]:
            if row is None and await _retired(code):
                return visitor_page(request, LINK_GONE, status=410)
            return visitor_page(request, LINK_NOT_FOUND, status=404)
        try:
            # the visitor's query as it came (raw): as written, like the store URL's own
            found = web.HTTPFound(location(with_ref(str(row[0]), code,
                                                    request.rel_url.raw_query_string)))  # fmt: skip
        except ValueError as exc:  # a store URL saved before it was checked (a port of 99999)
            log.warning("referral link %s: its campaign's store URL %r can't be redirected to "
                        "(%s)", code, str(row[0])[:200], exc)  # fmt: skip
            return visitor_page(request, LINK_BROKEN, status=502)
        # the browser's own default, not no-referrer (own_error_pages): the store may see
        # the site the link was shared on (its origin only); this address is no secret
        found.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
        raise found

    async def _contact(request: web.Request) -> _Addressee | _Gone | web.Response:
        """The contact an unsubscribe link is for, or the page to answer instead."""
        try:
            token = read_unsubscribe_token(request.match_info["token"])
        except BadToken as exc:
            log.warning("refused an unsubscribe token (%s) from %s", exc, request.remote)
            return visitor_page(request, LINK_NOT_VALID, status=400)
        if not token.genuine(settings.secret_key):
            log.warning("refused an unsubscribe token (bad signature) from %s", request.remote)
            return visitor_page(request, LINK_NOT_VALID, status=400)
        recipient = await recipient_of(db, token.team_id, token.contact_id)
        if recipient is None or not token.for_address(settings.secret_key, recipient.email_key):
            # its contact is gone (deleted, its import undone; SQLite may have given its id to
            # another contact since)
            return await _gone(token)
        lang = recipient.language()
        return _Addressee(token, recipient.email_key, lang,
                          UNSUBSCRIBE.get(lang, UNSUBSCRIBE["en"]), recipient.unsubscribed)

    async def _gone(token: UnsubscribeToken) -> _Gone:
        """A link whose contact is gone, with the address it was made for if the workspace
        remembers it: a campaign emailed it (how the link came), or it is suppressed."""
        keys = await remembered_addresses(db, token.team_id)
        # a signature per remembered address: off the event loop that acks Slack
        found = await asyncio.to_thread(token.made_for, settings.secret_key, keys)
        return _Gone(token.team_id, token.contact_id, found, token)

    def _gone_unknown(request: web.Request, gone: _Gone) -> web.Response:
        """Nothing to record the unsubscribe against: a link sent before links named their
        address, or a contact deleted before deletions kept the addresses campaigns emailed
        (migration 0020). Its invites went with it, but a new import may bring the address
        back: the page says so rather than promising it is off the list."""
        log.info("an unsubscribe link of a deleted contact (team %s, contact %s) names no "
                 "address we know: nothing recorded", gone.team_id, gone.contact_id)  # fmt: skip
        return visitor_page(request, CONTACT_GONE, status=200)

    async def unsubscribe_form(request: web.Request) -> web.Response:
        found = await _contact(request)
        if isinstance(found, web.Response):
            return found
        # relative: the form posts back to the link, whatever path PUBLIC_URL has. The token
        # as we wrote it, not the path as it came: that is percent-decoded, and `<token>%2F`
        # made the action `<token>/`, which a browser posts to /u/<token>/ (a 404)
        action = found.token.canonical
        if isinstance(found, _Gone):  # in the visitor's language: no invite's to go by
            if found.email_key is None:
                return _gone_unknown(request, found)
            if await suppressed(db, found.team_id, found.email_key):
                return visitor_page(request, NOT_ON_LIST, status=200)
            lang = visitor_language(request.headers.get("Accept-Language"))
            words = UNSUBSCRIBE[lang]
            response = page(words.title, words.question, action=action, button=words.button,
                            lang=lang, address=masked_address(found.email_key))  # fmt: skip
            response.headers["Vary"] = "Accept-Language"
            return response
        words, lang = found.words, found.lang
        # back to check it worked (or one-click did it): no question again. Not when an
        # import only switched consent off: the next may switch it on, and her click sticks
        if found.unsubscribed:
            return page(words.done_title, words.done, lang=lang)
        # which address: "this address" alone, and whoever a forwarded invite reached
        # unsubscribed the person it was sent to
        return page(words.title, words.question, action=action, button=words.button,
                    lang=lang, address=masked_address(found.email_key))  # fmt: skip

    async def unsubscribe_now(request: web.Request) -> web.Response:
        found = await _contact(request)
        if isinstance(found, web.Response):
            return found
        if isinstance(found, _Addressee):
            token = found.token
            if await unsubscribe(db, token.team_id, token.contact_id,
                                 found.email_key) is not None:  # fmt: skip
                return page(found.words.done_title, found.words.done, lang=found.lang)
            found = await _gone(token)  # deleted since it was checked
        if found.email_key is None:
            return _gone_unknown(request, found)
        await suppress(db, found.team_id, found.email_key)
        return visitor_page(request, NOT_ON_LIST, status=200)

    def _start(request: web.Request) -> State | web.Response:
        """The start link's state, or the page to answer instead."""
        try:
            return read_state(settings.secret_key, request.query.get("state", ""))
        except BadState as exc:
            log.warning("refused a Mailchimp start link (%s) from %s", exc, request.remote)
            return page("Link not valid", "This Connect link isn't valid or has expired: run "
                        "/referral mailchimp in Slack for a new one.", status=400)  # fmt: skip

    async def mailchimp_start(request: web.Request) -> web.Response:
        """Whose sign-in this is, before anything happens: a GET changes nothing."""
        state = _start(request)
        if isinstance(state, web.Response):
            return state
        status = await start_status(db, state, request.cookies.get(BROWSER_COOKIE))
        if status is not Start.OPEN:
            return _start_refused(state, status, request)
        # names as the invites show them (isolated): a bidi override in a Slack name turned
        # the rest of the warning around, "close this page" with it
        workspace = isolated(await workspace_name(db, state.team_id) or state.team_id)
        person = isolated(state.person or state.user_id)
        # relative: the form posts back to this page, whatever path PUBLIC_URL has
        return page("Connect Mailchimp?", f"{person} asked to connect a Mailchimp account to "
                    f"the Slack workspace “{workspace}”. Continue only if you are {person} and "
                    "clicked Connect Mailchimp in Slack just now. If someone sent you this link, "
                    "close this page: continuing would let them import your Mailchimp audiences.",
                    action="connect?" + urlencode({"state": request.query["state"]}),
                    button="Continue to Mailchimp")  # fmt: skip

    async def mailchimp_continue(request: web.Request) -> web.Response:
        """Bind this browser to the sign-in (a cookie, its hash in the state) and go to
        Mailchimp; the first browser to continue claims the start link."""
        state = _start(request)
        if isinstance(state, web.Response):
            return state
        if _cross_site(request, settings.public_base):
            log.warning("refused a Mailchimp Continue posted from another site (team %s, user "
                        "%s, origin %r) from %s", state.team_id, state.user_id,
                        request.headers.get("Origin"), request.remote)  # fmt: skip
            return page("Not connected", "This sign-in was sent from another website, so "
                        "nothing happened. To connect Mailchimp, click Connect Mailchimp in "
                        "Slack (/referral mailchimp shows it).", status=403)  # fmt: skip
        browser = new_browser_id(request.cookies.get(BROWSER_COOKIE))
        status = await claim_start(db, state, browser)
        if status is not Start.OPEN:
            return _start_refused(state, status, request)
        bound = bind_state(settings.secret_key, state, browser)
        response = web.Response(status=303, headers={**_HEADERS, "Location": authorize_url(
            settings.mailchimp_login_url, settings.mailchimp_client_id,
            settings.public_base + CALLBACK_PATH, bound)})  # fmt: skip
        response.set_cookie(BROWSER_COOKIE, browser, max_age=STATE_TTL, httponly=True,
                            samesite="Lax", path=urlsplit(settings.public_base).path + COOKIE_PATH,
                            secure=settings.public_base.startswith("https:"))  # fmt: skip
        return response

    def _start_refused(state: State, status: Start, request: web.Request) -> web.Response:
        log.warning("refused a Mailchimp start link %s (team %s, user %s) from %s",
                    "used before" if status is Start.USED else "opened in another browser",
                    state.team_id, state.user_id, request.remote)  # fmt: skip
        if status is Start.USED:
            return page("Link already used", "This Connect link was already used to sign in: "
                        "run /referral mailchimp in Slack for a new one.", status=400)  # fmt: skip
        return page("Link already used", "This Connect link was already opened in another "
                    "browser. Nothing was connected: run /referral mailchimp in Slack and click "
                    "Connect Mailchimp again, in the browser you sign in to Mailchimp with.",
                    status=400)  # fmt: skip

    async def mailchimp_callback(request: web.Request) -> web.Response:
        error = request.query.get("error")
        if error == "access_denied":  # the person chose not to allow it
            return page("Not connected", "Mailchimp sign-in was cancelled; nothing changed.")
        if error:  # Mailchimp's own refusal (RFC 6749 4.1.2.1): not the person's choice
            log.warning("Mailchimp refused a sign-in: error %r, %r, from %s", error[:100],
                        request.query.get("error_description", "")[:300], request.remote)
            if error in ("server_error", "temporarily_unavailable"):
                return page("Not connected", "Mailchimp couldn't finish the sign-in just now; "
                            "nothing changed. Try again in a few minutes from /referral "
                            "mailchimp in Slack.", status=502)  # fmt: skip
            return page("Not connected", "Mailchimp refused this sign-in, so nothing changed. "
                        "The bot's Mailchimp app settings may be wrong: whoever runs the bot "
                        "can see Mailchimp's reason in its log.", status=502)  # fmt: skip
        try:
            state = read_bound_state(settings.secret_key, request.query.get("state", ""))
        except BadState as exc:
            log.warning("refused a Mailchimp callback (%s) from %s", exc, request.remote)
            return page("Link not valid", "This sign-in link isn't valid or has expired: "
                        "start again from /referral mailchimp in Slack.", status=400)  # fmt: skip
        who = f"team {state.team_id}, user {state.user_id}"
        if not same_browser(state, request.cookies.get(BROWSER_COOKIE)):
            # before the state is spent: the browser it belongs to can still finish with it
            log.warning("refused a Mailchimp callback in a browser that didn't start it (%s) "
                        "from %s", who, request.remote)  # fmt: skip
            # the old button's start link is claimed by the other browser: ask for a new one
            return page("Not connected", "This Mailchimp sign-in was started in another "
                        "browser, so nothing was connected. If you are connecting Mailchimp for "
                        "your team, run /referral mailchimp in Slack for a new Connect button "
                        "and open it in this browser.", status=403)  # fmt: skip
        if not await first_time(db, state.team_id, used_key(state)):
            log.warning("refused a Mailchimp sign-in link used before (%s) from %s", who,
                        request.remote)  # fmt: skip
            return page("Link already used", "This sign-in link was already used: start again "
                        "from /referral mailchimp in Slack.", status=400)  # fmt: skip
        try:
            account = await exchange(settings.mailchimp_login_url, settings.mailchimp_client_id,
                                     settings.mailchimp_client_secret,
                                     settings.public_base + CALLBACK_PATH,
                                     request.query.get("code", ""))  # fmt: skip
            await save(db, state.team_id, account.creds, dc=account.dc,
                       account_name=account.account_name, login_email=account.login_email,
                       user=state.user_id, secret_key=settings.secret_key,
                       seen=Seen.read(state.seen))  # fmt: skip
        except ConnectionChanged as exc:  # not given back: its Connect was drawn for another
            log.warning("a Mailchimp sign-in started before Mailchimp was connected or "
                        "disconnected again replaced nothing (%s)", who)  # fmt: skip
            return page("Not connected", changed_since(exc.now, state.user_id), status=409)
        except MailchimpError as exc:
            log.warning("Mailchimp OAuth exchange failed (%s): %s", who, exc)
            await _give_back(state, who)
            return page("Not connected", str(exc), status=502)
        except Exception:  # ours (the database locked, say): nothing was connected either
            log.exception("Mailchimp sign-in failed before the account was saved (%s)", who)
            await _give_back(state, who)
            return page("Not connected", "Something went wrong on our side, so nothing was "
                        "connected: try Connect again.", status=500)  # fmt: skip
        log.info("Mailchimp account %r connected (%s)", account.account_name, who)
        await _refresh_homes(state, who)
        name = isolated(account.account_name or "") or "Your account"  # as the start page's
        told = _tell_in_slack(state, account.account_name, who)
        if in_background is not None:
            in_background(told, f"the Mailchimp sign-in's DM ({who})")
        else:
            await told
        return page("Mailchimp connected", f"{name} is connected. You can close this tab and go "
                    "back to Slack.")  # fmt: skip

    async def _give_back(state: State, who: str) -> None:
        """Nothing was connected: Connect in Slack (the same start link, claimed by this
        browser) may go through again, as the error page says."""
        try:
            await forget(db, state.team_id, used_key(state))
        except Exception:
            log.exception("a Mailchimp sign-in that connected nothing couldn't be given back "
                          "(%s): its Connect link now says it was used", who)  # fmt: skip

    async def _refresh_homes(state: State, who: str) -> None:
        """The account is saved: Home tabs open still offer Connect. A job (a quick insert),
        so before the page; failing, it mayn't turn the connection into an error page."""
        try:
            await queue_home_refresh(db, state.team_id)
        except Exception:
            log.exception("Mailchimp connected (%s), but Home tabs weren't refreshed", who)

    async def _tell_in_slack(state: State, account_name: str, who: str) -> None:
        """The person is told in Slack, beside the page (`in_background`), not before it: a
        slow Slack held the page (5 minutes for one that never answered, before serve's
        Slack session had timeouts), and `serve` stopping meanwhile cut the browser off with
        no page, though the account was connected. Nor after it in the same handler: aiohttp
        answers nothing more on that connection until the handler returns, and a proxy that
        keeps its connections to serve alive sent other requests (Slack's, with their 3 s)
        down one stuck behind the DM. `serve` stopping waits for it, as for listeners' work
        (Later.drain), for at most WORK_GRACE_SECONDS. Its failure is one line, with
        the workspace, the person and the account. Not a job: the page said it is
        connected, and Home and `/referral mailchimp` show it; the DM says it again."""
        if on_connected is None:
            return
        said = f"that Mailchimp account {quoted(account_name)} is connected"
        try:
            await on_connected(state.team_id, state.user_id, account_name)
        except asyncio.CancelledError:
            log.warning("Mailchimp connected (%s), but the person wasn't told in Slack %s: "
                        "cut off before Slack answered", who, said)  # fmt: skip
            raise
        except Exception:
            log.exception("Mailchimp connected (%s), but the person wasn't told in Slack %s",
                          who, said)  # fmt: skip

    async def to_the_link(request: web.Request) -> web.Response:
        """`/u/<token>/`, a slash a mail client or a paste added: a 404 it was. Not answered
        here (the form's relative action would post to /u/<token>/<token>): sent on to the
        link itself, relatively (PUBLIC_URL may have a path), a POST as a POST (308)."""
        try:
            token = read_unsubscribe_token(request.match_info["token"])
        except BadToken as exc:
            log.warning("refused an unsubscribe token (%s) from %s", exc, request.remote)
            return visitor_page(request, LINK_NOT_VALID, status=400)
        raise web.HTTPPermanentRedirect(f"../{token.canonical}")

    # no HEAD for the sign-in callback: a link checker's HEAD would spend its one-time code
    routes = [
        web.get(CALLBACK_PATH, mailchimp_callback, allow_head=False),
        web.get(CONNECT_PATH, mailchimp_start),  # a GET (a HEAD too) only shows whose it is
        web.post(CONNECT_PATH, mailchimp_continue),
        # "/r/ABCD2345/" too: a slash after the code is punctuation like "." (normalise)
        web.get("/r/{code:[^/]+/?}", referral),  # a HEAD counts no click (_LOOK)
        web.get("/u/{token}", unsubscribe_form),
        web.post("/u/{token}", unsubscribe_now),
        web.get("/u/{token}/", to_the_link),
        web.post("/u/{token}/", to_the_link),
    ]
    # where the links point (PUBLIC_URL's path), and at the root for a proxy that strips it
    return [*routes, *under_public_path(settings.public_path, routes)]
