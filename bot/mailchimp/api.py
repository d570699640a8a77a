"""Mailchimp's Marketing API through the official client, made safe to use from asyncio.

The client is synchronous (module-level `requests`, one connection per call), so every call
runs in a thread. It raises `ApiClientError` for most HTTP errors but RETURNS a bare
`requests.Response` for an error with an empty body (Mailchimp's 429/403 under load) and for
a 204; every result is checked here. 429 and 5xx are retried with backoff; a 401 means the
token or key no longer works ("reconnect Mailchimp"); every call has a timeout.

What a failure says reaches Slack and the shell, so it is a sentence of ours: Mailchimp's own
words only from its JSON problem documents (`title`/`detail`); an HTML error page from its
front end, or the text of a `requests` exception (host names, pools, retries), is logged and
never shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from bot.causes import causes
from bot.mailchimp.member_store import MemberStore

if TYPE_CHECKING:
    from mailchimp_marketing.api_client import ApiClientError

log = logging.getLogger(__name__)
PAGE = 1000  # the most Mailchimp returns per page
MAX_IN_FLIGHT = 8  # pages fetched at once per account; Mailchimp allows 10 connections
# The client blocks, so calls run in threads: a pool of our own, because asyncio's default
# one has only cpu+4 threads (6 on two cores) and is shared with everything else.
_POOL = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="mailchimp")
TIMEOUT = 30.0  # seconds, for connecting and for each read
RETRIES = 5
QUICK_TIMEOUT = 3.0  # seconds, for a check someone is waiting for (quick_ping)
RETRY_DELAY = 1.0  # seconds before the first retry; it doubles, up to 30
READS = 3  # passes over a list that keeps changing while it is read, merged
# how much earlier than our clock a read is taken to begin, for Mailchimp's clock (a change
# just before the read only costs another read)
CLOCK_SLACK = timedelta(seconds=1)
MEMBER_FIELDS = ["members.email_address", "members.status", "members.merge_fields.FNAME",
                 "members.merge_fields.LNAME", "members.full_name", "members.language",
                 "total_items"]  # fmt: skip

T = TypeVar("T")


# 4xx answers that mean "ask again later", retried as a 5xx is: 403 bare is a busy
# Mailchimp's "too many connections"; 408 and 425 an edge's timeout and "too early"
_BUSY = frozenset({403, 408, 425, 429})


class MailchimpError(Exception):
    """Mailchimp can't be used as asked; the message is for people."""


class ReconnectNeeded(MailchimpError):
    """The stored token or key was refused (revoked, deleted or wrong)."""


class Refused(MailchimpError):
    """Mailchimp refused the request itself (a 4xx other than 401/403/404/429): asking again
    gets the same answer, so it is said at once instead of retried."""


class NotFound(MailchimpError):
    """What was asked for doesn't exist (an audience deleted since it was chosen): asking
    again won't help."""


class NoSuchHost(MailchimpError):
    """The API's host name doesn't exist (the resolver says so; not one it couldn't ask):
    for a key just pasted, a data centre mistyped after the dash (see call's
    `host_must_exist`)."""


class NoLookup(MailchimpError):
    """The API's host name couldn't be looked up at all (no network, or no DNS): raised at
    once for a key just pasted (see call's `host_must_exist`), whose check can't be made."""


def no_lookup(why: str) -> str:
    """What a key that couldn't be checked for want of the network or DNS is told: not that
    its data centre doesn't exist (offline, every name fails to resolve, a real one too)."""
    return (f"Couldn't reach Mailchimp (no network or DNS?): {why}, so the key wasn't "
            "checked or saved. Try again once the network is back.")


async def resolves(host: str, timeout: float = QUICK_TIMEOUT) -> bool:
    """Whether the resolver finds `host` now (within `timeout` seconds), asked as the client
    asks it (socket.getaddrinfo in a thread; uvloop's own lookup may answer otherwise)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(socket.getaddrinfo, host, 443, 0,
                                                 socket.SOCK_STREAM), timeout)  # fmt: skip
    except (OSError, TimeoutError):  # socket.gaierror is an OSError
        return False
    return True


@dataclass(frozen=True, slots=True)
class Credentials:
    api_endpoint: str  # e.g. https://us21.api.mailchimp.com
    auth: str  # "oauth" or "api_key"
    secret: str


@dataclass(frozen=True, slots=True)
class Audience:
    id: str
    name: str
    subscribed: int


def data_centre(api_key: str) -> str | None:
    """`abc123-us21` -> `us21` (the data centre is after the dash); None if it isn't a key
    (keys are ASCII letters and digits: one with a pasted zero-width space can't even be
    sent in a header)."""
    key, dash, dc = api_key.strip().rpartition("-")
    plain = key.isascii() and key.isalnum() and dc.isascii() and dc.isalnum()
    return dc if dash and plain else None


def _client(creds: Credentials, timeout: float = TIMEOUT) -> Any:
    # loaded on the first call, as in call(): the client and `requests` under it are 19 MB
    # and 60 ms of start-up that commands and imports without Mailchimp never use
    import mailchimp_marketing

    client = mailchimp_marketing.Client()
    if creds.auth == "oauth":
        client.set_config({"access_token": creds.secret, "server": "", "timeout": timeout})
    else:
        client.set_config({"api_key": creds.secret, "server": "", "timeout": timeout})
    # The host from the account's metadata (or key); the client's own "server" substitution
    # is off (server ""), so nothing in a URL gets rewritten.
    client.api_client.host = creds.api_endpoint.rstrip("/") + "/3.0"
    # the last response kept: the client's errors carry its status and body, not the
    # Retry-After a 429 names (call() waits for it)
    send = client.api_client.request

    def request(*args: Any, **kwargs: Any) -> Any:
        client.last_response = send(*args, **kwargs)
        return client.last_response

    client.api_client.request = request
    client.last_response = None
    return client


MAX_RETRY_AFTER = 120.0  # seconds: a longer wait asked for is cut to this


def _retry_after(client: Any) -> float:
    """The seconds the last response's Retry-After asked to wait (0: none, or a date)."""
    response = getattr(client, "last_response", None)
    value = str(getattr(response, "headers", {}).get("Retry-After") or "").strip()
    return min(float(value), MAX_RETRY_AFTER) if value.isdigit() else 0.0


def _status(exc: ApiClientError) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


MAX_DETAIL = 300  # characters of Mailchimp's own `detail` shown


def _detail(text: object) -> str:
    """Mailchimp's words from a JSON problem document (`detail`, else `title`); "" for any
    other body (an HTML error page, a proxy's text), which is for the log only (`_body`)."""
    try:
        body = json.loads(text) if isinstance(text, (str, bytes)) else text
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    said = " ".join(str(body.get("detail") or body.get("title") or "").split())
    return said if len(said) <= MAX_DETAIL else said[: MAX_DETAIL - 1] + "…"


def _body(text: object) -> str:
    """The start of an error's body, for the log."""
    return " ".join(str(text or "").split())[:500]


# what the resolver says of a name that doesn't exist (EAI_AGAIN, a resolver out of reach,
# is an outage: retried as any other network error)
_NO_SUCH_NAME = {socket.EAI_NONAME, *([socket.EAI_NODATA] if hasattr(socket, "EAI_NODATA")
                                      else [])}  # fmt: skip


def _unknown_host(error: BaseException) -> bool:
    return any(isinstance(e, socket.gaierror) and e.errno in _NO_SUCH_NAME
               for e in causes(error))  # fmt: skip


def _lookup_failed(error: BaseException) -> bool:
    """The host name couldn't be looked up, the resolver not saying it doesn't exist
    (EAI_AGAIN: it was out of reach, or didn't answer in time)."""
    return any(isinstance(e, socket.gaierror) for e in causes(error))


def _host(creds: Credentials) -> str:
    """The API's host name, as a lookup of it names it."""
    return urlsplit(creds.api_endpoint).hostname or creds.api_endpoint


def _network_reason(error: BaseException, timeout: float) -> str:
    """A request that got no HTTP answer, in words (its text names pools and retries)."""
    import requests

    if any(isinstance(e, (requests.Timeout, TimeoutError)) for e in causes(error)):
        return f"it didn't answer within {timeout:g} s"
    return "it couldn't be reached"


def _failure(exc: ApiClientError, creds: Credentials, what: str, timeout: float,
             host_must_exist: bool) -> str:  # fmt: skip
    """What an error the client raised means: raised at once when asking again won't help
    (ReconnectNeeded, NotFound, Refused, NoSuchHost), else why to ask again, in words. A body
    that isn't Mailchimp's problem document (an HTML page), or the exception of a request
    that got no answer, is logged for whoever runs the bot, never put in the words."""
    status, detail = _status(exc), _detail(exc.text)
    if not detail:
        log.info("Mailchimp at %s, asked to %s, answered %s: %s", creds.api_endpoint, what,
                 status or "nothing", _body(exc.text))  # fmt: skip
    if not status:  # no HTTP answer at all: the text is requests' exception
        error = exc.text if isinstance(exc.text, BaseException) else exc
        if host_must_exist and _unknown_host(error):
            raise NoSuchHost(f"Mailchimp's host {creds.api_endpoint} doesn't exist.") from None
        if host_must_exist and _lookup_failed(error):  # at once: asked again, 15 s or more
            # went by before "try again later", the resolver's timeouts each time
            raise NoLookup(no_lookup(f"looking up {_host(creds)} failed")) from None
        return _network_reason(error, timeout)
    if status in (401, 403):
        said = f" ({detail})" if detail else ""
        raise ReconnectNeeded(f"Mailchimp refused our credentials{said}: reconnect Mailchimp "
                              "with /referral mailchimp.") from None  # fmt: skip
    if status == 404:
        raise NotFound(f"Mailchimp couldn't {what}: it doesn't exist (any more).") from None
    page = f"it answered with an error page ({status})"
    if status not in _BUSY and status < 500:
        raise Refused(f"Mailchimp refused to {what}: {detail or page}") from None
    return f"it answered {status} ({detail})" if detail else page


async def call(creds: Credentials, fn: Callable[[Any], T], *, what: str, about: str = "",
               timeout: float = TIMEOUT, tries: int = RETRIES,
               host_must_exist: bool = False) -> T:  # fmt: skip
    """Run `fn(client)` in a thread; retry 429/5xx/network errors; classify the rest.
    `about`: which list, for the log (several workspaces' reads may be retrying at once).
    `timeout` and `tries`: a check someone waits for is asked once, briefly.
    `host_must_exist`: a host name the resolver says doesn't exist raises NoSuchHost at once
    (a key just pasted names its host; a saved one's that stops resolving is an outage)."""
    import requests
    from mailchimp_marketing.api_client import ApiClientError

    delay = RETRY_DELAY
    for attempt in range(1, tries + 1):
        client = _client(creds, timeout)
        try:
            result = await asyncio.get_running_loop().run_in_executor(_POOL, fn, client)
        except ApiClientError as exc:
            reason = _failure(exc, creds, what, timeout, host_must_exist)
        else:
            # The client hands back what it couldn't read as JSON: the body as a str (an HTML
            # page), or the bare response (a JSON reply cut off part way). Taken as {} that
            # read as an empty page, its members silently lost: retried instead.
            if isinstance(result, dict) or (result is not None and not isinstance(
                    result, (str, bytes, requests.Response))):  # fmt: skip
                return result
            if isinstance(result, (str, bytes)):
                reason = "it sent a reply that isn't JSON"
            elif result.status_code in (401,):
                raise ReconnectNeeded("Mailchimp refused our credentials: reconnect Mailchimp "
                                      "with /referral mailchimp.")  # fmt: skip
            elif result.status_code == 204:
                return {}  # type: ignore[return-value]  # nothing to read
            elif result.ok and not result.content:  # a 200 cut off before its body: taken
                reason = f"it answered {result.status_code} with no body (cut off?)"  # as {},
                # an audience read as having no members
            elif result.ok:
                reason = f"it answered {result.status_code} with a reply that isn't JSON (cut off?)"
            elif result.status_code == 404:  # as a 404 with its problem document: asked
                # again it is still gone (retried, then "try again later")
                raise NotFound(f"Mailchimp couldn't {what}: it doesn't exist (any more).")
            elif result.status_code < 500 and result.status_code not in _BUSY:
                raise Refused(f"Mailchimp refused to {what}: it answered {result.status_code} "
                              "with no body")  # fmt: skip
            else:  # a busy Mailchimp's bare 429/403, or a 5xx
                reason = f"it answered {result.status_code} with no body"
                if result.status_code == 403:
                    reason += " (too many connections?)"
        if attempt == tries:
            failed = "kept failing" if tries > 1 else "failed"
            raise MailchimpError(f"Mailchimp {failed} to {what}: {reason}. Try again later.")
        # as long as Mailchimp asked (a 429's Retry-After), if longer than our own backoff
        wait = max(delay, _retry_after(client))
        log.warning("Asking Mailchimp at %s to %s failed (%s%s), retrying in %.1f s",
                    creds.api_endpoint, what, reason, f" for {about}" if about else "",
                    wait)  # fmt: skip
        await asyncio.sleep(wait)
        delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


async def ping(creds: Credentials, *, host_must_exist: bool = False) -> None:
    """Whether Mailchimp takes the credentials (retried while it is busy or down);
    `host_must_exist`: see call."""
    await call(creds, lambda c: c.ping.get(), what="answer a ping",
               host_must_exist=host_must_exist)  # fmt: skip


async def quick_ping(creds: Credentials) -> None:
    """One ping that gives up after QUICK_TIMEOUT: whether the stored credentials still work,
    for someone waiting on an answer (ReconnectNeeded: they don't)."""
    await call(creds, lambda c: c.ping.get(), what="answer a ping", timeout=QUICK_TIMEOUT,
               tries=1)  # fmt: skip


async def audiences(creds: Credentials) -> list[Audience]:
    """Every audience (list) of the account with its subscribed count."""
    out: list[Audience] = []
    offset = 0
    while True:
        page = await call(creds, lambda c, o=offset: c.lists.get_all_lists(
            fields=["lists.id", "lists.name", "lists.stats.member_count", "total_items"],
            count=PAGE, offset=o), what="list the audiences")  # fmt: skip
        lists = page.get("lists") or []
        out += [Audience(str(x["id"]), str(x.get("name") or x["id"]),
                         int((x.get("stats") or {}).get("member_count") or 0))
                for x in lists]  # fmt: skip
        offset += len(lists)
        if not lists or offset >= int(page.get("total_items") or 0):
            return out


async def members(creds: Credentials, list_id: str) -> MemberStore:
    """Every member of an audience (all statuses), once each, pages fetched a few at a time;
    kept on disk (member_store), so an audience of millions is read in bounded memory. The
    caller closes the store.

    Pages are read by offset, so a list that changes while it is read shifts members across
    pages: one deleted or archived moves every later member a place back, into a page read
    already (never imported), and one that moves to the end is read twice. So members are
    kept by address, once, and a read whose pages disagree on `total_items`, that found
    another number of members, or during which a member joined or changed (one deleted
    and one added keep the count, and lost the member shifted back) is followed by another,
    merged into it (at most READS). The store gives each member where it was first seen,
    with what the last read said of it: the audience's order, so the lines of the import's
    skipped rows are as after one read (but for a member the first read missed, shifted back
    into a page read already: it comes after, where a later read first saw it)."""
    found = MemberStore()
    try:
        for attempt in range(1, READS + 1):
            began = datetime.now(UTC) - CLOCK_SLACK
            totals = await _read(creds, list_id, found, attempt)
            this_read = found.found_in(attempt)
            if (len(set(totals)) == 1 and this_read == totals[0]
                    and not await _changed_since(creds, list_id, began)):  # fmt: skip
                break
            if attempt == READS:
                log.warning("Mailchimp audience %s still changed while it was read %d times: "
                            "importing the %d members found", list_id, READS, len(found))
            else:
                log.info("Mailchimp audience %s changed while it was read (%d members, totals "
                         "%s): reading it again", list_id, this_read, sorted(set(totals)))
    except BaseException:
        found.close()
        raise
    return found


async def _changed_since(creds: Credentials, list_id: str, began: datetime) -> bool:
    """Whether a member of the list was added or changed since `began` (one small request)."""
    since = began.isoformat(timespec="seconds")
    body = await call(creds, lambda c: c.lists.get_list_members_info(
        list_id, fields=["total_items"], count=1, since_last_changed=since),
        what="read that audience", about=f"audience {list_id}")  # fmt: skip
    return int(body.get("total_items") or 0) > 0


async def _read(creds: Credentials, list_id: str, into: MemberStore, read_no: int
                ) -> list[int]:  # fmt: skip
    """One pass over the pages into `into`, in page order: every page's `total_items`.

    At most MAX_IN_FLIGHT pages are fetched at once, and at most twice that many are held
    (fetched, or fetching, before an earlier page is stored): a slow page holds back the
    storing of the pages after it, not memory without end. One page failing for good stops
    the others at once."""
    first = await _page(creds, list_id, 0)
    total = int(first.get("total_items") or 0)
    into.add(first.get("members") or [], read_no)
    totals = [total]
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def page(offset: int) -> dict[str, Any]:
        async with gate:
            return await _page(creds, list_id, offset)

    offsets = iter(range(PAGE, total, PAGE))
    held: deque[asyncio.Future[dict[str, Any]]] = deque()
    try:
        while True:
            while len(held) < 2 * MAX_IN_FLIGHT and (offset := next(offsets, None)) is not None:
                held.append(asyncio.ensure_future(page(offset)))
            if not held:
                return totals
            # the pages still on their way: one done early waits for those before it
            # (waiting on it too returned at once, a busy loop for as long as the first
            # page held was slow: a Retry-After, a retry's backoff)
            await asyncio.wait([t for t in held if not t.done()],
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            failed = next((t for t in held if t.done() and t.exception() is not None), None)
            if failed is not None:
                failed.result()  # raises its exception
            while held and held[0].done():
                body = held.popleft().result()
                into.add(body.get("members") or [], read_no)
                totals.append(int(body.get("total_items") or 0))
    except BaseException:  # one page failed for good: don't go on reading the others
        for task in held:
            if not task.cancel() and not task.cancelled():
                task.exception()  # another that failed too: retrieved, not logged as lost
        raise


async def _page(creds: Credentials, list_id: str, offset: int) -> dict[str, Any]:
    return await call(creds, lambda c: c.lists.get_list_members_info(
        list_id, fields=MEMBER_FIELDS, count=PAGE, offset=offset),
        what="read that audience", about=f"audience {list_id}, offset {offset}")  # fmt: skip
