"""Work a listener does after ack(), and telling people when something fails.

Slack only needs the acknowledgement; the rest of a click (database, Web API calls) runs as
a task this object keeps, so shutdown can wait for it, and a failure still reaches the
person who clicked. Work that must survive a crash is a job instead.

At most `RUNNING` pieces of work run at once; the others wait their turn in order. A burst
of clicks otherwise starts a task each, and hundreds of them queue for the database pool's
connections with their timers, frames and objects on the one event loop that acks Slack:
with 20 requests in flight (bench/ack_latency.py) the acks' p99 fell by about half in most
runs with the bound, the process used ~20% less CPU, and the work itself finished sooner.
Work that opens a modal is `prompt`: it starts at once, because Slack's trigger id lives 3
seconds. Work a web page started without waiting for it (the DM after a Mailchimp sign-in) is
`background`: kept here too, so that shutdown waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import warnings
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import OperationalError

from bot.campaigns.service import CampaignError
from bot.contact_admin import ContactError
from bot.imports.review import ReviewError
from bot.mailchimp.api import MailchimpError
from bot.mailchimp.secrets import CredentialsUnreadable, SecretKeyMissing
from bot.workspaces import WorkspaceError
from handlers.context import Refusal
from handlers.messages import esc
from handlers.placeholder import show_failure, track
from handlers.slack_errors import slack_error

log = logging.getLogger(__name__)
SORRY = ("Something went wrong on our side, so this may not have gone through. Try again in a "
         "moment; if it keeps happening, give your Slack admin this reference: {ref}")  # fmt: skip
# A service's refusal is meant for people: told as it is (escaped), never as "went wrong".
SERVICE_ERRORS = (WorkspaceError, CampaignError, MailchimpError, SecretKeyMissing,
                  CredentialsUnreadable, ContactError)  # fmt: skip
BUSY = ("Nothing was changed: the database is busy writing a big import right now. Try again "
        "in a minute.")
GONE = "That no longer exists (it may have been removed): refresh and try again."
# views.open got a trigger id Slack no longer honours (more than 3 s old, or used once)
LATE = ("Slack gave me too little time to open that form (its 3 seconds ran out). Nothing "
        "changed: click again.")
# Slack's `missing_scope`: the app was installed without a scope manifest.yml asks for. Said
# as what to do: "Something went wrong ... this reference" gave the admin nothing to act on.
MISSING_SCOPE = ("The app is missing a Slack permission this needs{scope}, so nothing was "
                 "done. Ask your Slack admin to add it from manifest.yml (OAuth & Permissions) "
                 "and reinstall the app.")  # fmt: skip
_LATE_TRIGGER = frozenset({"expired_trigger_id", "exchanged_trigger_id", "invalid_trigger_id"})


class DeliverAgain(Exception):
    """An event whose work must not be lost failed before its ack: answered 503, not the 200
    a failure that has been told to someone gets, so Slack delivers the event again (over
    HTTP its three retries, after 3 s, 1 min and 5 min; over Socket Mode, an
    envelope left unacknowledged). A failure past the last retry is lost, logged each time."""


def who_and_what(body: dict[str, Any]) -> dict[str, str]:
    """Team, user, channel and action of any payload, for logs and for replying."""
    actions = body.get("actions") or [{}]
    view = body.get("view") or {}
    event = body.get("event") or {}
    return {
        "team": str((body.get("team") or {}).get("id") or body.get("team_id") or ""),
        "user": str((body.get("user") or {}).get("id") or body.get("user_id") or ""),
        "channel": str((body.get("channel") or {}).get("id") or body.get("channel_id") or ""),
        "action": str(actions[0].get("action_id") or view.get("callback_id")
                      or body.get("command") or event.get("type") or body.get("type") or ""),
        "file": str(event.get("file_id") or ""),  # an upload's offer: which file it was
    }  # fmt: skip


def thread_of(body: dict[str, Any]) -> str | None:
    """The thread a button was clicked in (an import's thread: Target, Retry sending...),
    where a refusal is said: in the channel, it was out of sight of whoever reads the thread
    (on a phone, the thread fills the screen).

    None for a click on a thread's parent (the review message once it has replies): Slack
    gives a parent `thread_ts` equal to its own `ts`, and a refusal sent there went into the
    thread, out of sight of whoever clicked in the channel."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    thread = container.get("thread_ts") or message.get("thread_ts")
    clicked = container.get("message_ts") or message.get("ts")
    return thread if thread and thread != clicked else None


def context_of(where: dict[str, str]) -> str:
    """A failure's context for the log: "team=T1 user=U2 batch=3"."""
    return " ".join(f"{k}={v}" for k, v in where.items() if v)


async def or_log(step: Awaitable[object], what: str, where: dict[str, str],
                 logger: logging.Logger = log) -> None:  # fmt: skip
    """A step after the person's work is done (the review posted, the undo asked for): its
    failure is logged with its context (with the traceback unless the database was only
    busy) and not raised, since telling them their work may have failed would be untrue."""
    try:
        await step
    except Exception as exc:
        if is_busy(exc):
            logger.warning("%s (%s): the database is busy (%s)", what, context_of(where), exc)
        else:
            logger.error("%s (%s)", what, context_of(where), exc_info=exc)


def message_for(error: BaseException, where: dict[str, str]) -> str:
    """What to tell the person; every failure is logged with its context either way."""
    context = context_of(where)
    if isinstance(error, Refusal | ReviewError):  # written for Slack (they may @-mention)
        log.info("refused (%s): %s", context, error)
        return str(error)
    if isinstance(error, SERVICE_ERRORS):  # services know nothing of Slack: names quoted raw
        log.info("refused (%s): %s", context, error)
        return esc(str(error))
    if isinstance(error, LookupError) and not isinstance(error, KeyError | IndexError):
        # a lookup of ours, said in words; a KeyError is a bug, not a sentence
        log.info("not found (%s): %s", context, error)
        return str(error.args[0]) if error.args and isinstance(error.args[0], str) else GONE
    if is_busy(error):  # SQLite's name for it says which: waited out, or a stale snapshot
        log.warning("database busy (%s, %s): %s", context, _sqlite_name(error), error)
        return BUSY
    if isinstance(error, SlackApiError) and slack_error(error) in _LATE_TRIGGER:
        log.warning("form not opened (%s): %s", context, slack_error(error))
        return LATE
    if (lacking := missing_scope(error)) is not None:
        log.error("the bot token lacks a scope (%s): %s", context, lacking or "not named")
        return MISSING_SCOPE.format(scope=f" (`{esc(lacking)}`)" if lacking else "")
    ref = uuid.uuid4().hex[:8]
    log.error("listener failed (%s ref=%s)", context, ref, exc_info=error)
    return SORRY.format(ref=ref)


def missing_scope(error: BaseException) -> str | None:
    """The scope Slack said a call lacks ("" when it named none), or None when `error` is no
    `missing_scope` answer."""
    if not isinstance(error, SlackApiError) or slack_error(error) != "missing_scope":
        return None
    return str(error.response.get("needed") or "")


def _sqlite_name(error: BaseException) -> str:
    """SQLite's extended error name (SQLITE_BUSY: the busy timeout ran out; SQLITE_BUSY_SNAPSHOT:
    a transaction that had read could not write after another's commit, which no wait helps)."""
    return str(getattr(getattr(error, "orig", None), "sqlite_errorname", "") or "?")


def is_busy(error: BaseException) -> bool:
    """SQLite's one writer was busy for longer than its busy timeout (a big file being staged
    by a worker holds it): nothing was changed, and trying again later works."""
    return isinstance(error, OperationalError) and "database is locked" in str(error)


async def tell(client: AsyncWebClient, body: dict[str, Any], error: BaseException, *,
               opened: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
    """A note to whoever acted: in the modal the work opened (`opened`, see
    handlers/placeholder.py), else ephemeral where they acted, else a direct message."""
    where = who_and_what(body)
    text = message_for(error, where)
    if opened and await show_failure(client, opened[-1], text):
        return
    user, channel = where["user"], where["channel"]
    if not user:
        return
    if channel:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text,
                                            thread_ts=thread_of(body))  # fmt: skip
            return
        except Exception:
            log.warning("could not reply in %s; sending a direct message", channel)
    dm = await client.conversations_open(users=user)
    await client.chat_postMessage(channel=dm["channel"]["id"], text=text)


RUNNING = 8  # above the database pool's 5 steady connections, below its 15 at most
# What a stop that gives work up waits for it to end once cancelled (its failure handling).
GIVE_UP_SECONDS = 1.0


class Later:
    def __init__(self, running: int = RUNNING) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns = asyncio.Semaphore(running)
        self._stopping = False  # serve's stop: new work is refused (`stop`)

    def run(self, work: Coroutine[Any, Any, None], client: AsyncWebClient,
            body: dict[str, Any], *, prompt: bool = False) -> None:  # fmt: skip
        """Run `work` after the ack; `prompt` (opening a modal) skips the queue. Named by
        its context ("team=T1 user=U2 action=approve"), which a stop that gives it up logs."""
        name = context_of(who_and_what(body)) or None
        if self._refused(work, name):
            return
        self._keep(asyncio.create_task(self._guarded(work, client, body, prompt), name=name))

    def background(self, work: Coroutine[Any, Any, None], name: str = "") -> None:
        """Run `work` now, kept with the listeners' work so that drain() (serve stopping)
        waits for it too: work a web page started and no longer waits for (the Slack DM
        after a Mailchimp sign-in, bot/web.py). It logs its own failures, with its context,
        so nobody is told of them in Slack; one it lets through is logged here, not left
        to asyncio's "exception was never retrieved". Not queued behind the listeners'
        turns: it is one or two Slack calls, no database connection. `name`: what it is,
        for the log of a stop that gives it up."""
        if self._refused(work, name):
            return
        self._keep(asyncio.create_task(self._logged(work), name=name or None))

    def _refused(self, work: Coroutine[Any, Any, None], name: str | None) -> bool:
        """Work that comes once serve's stop has begun waiting (a listener past its grace
        queueing more): not started, and said, since nothing would wait for it."""
        if not self._stopping:
            return False
        discard(work)
        log.warning("serve is stopping: work after an ack or a sign-in not started (%s)",
                    name or "unnamed")  # fmt: skip
        return True

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold `task` until it ends: drain() waits for it, and the loop's weak reference
        alone would let it be collected mid-way."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        """`work`, whose failure nobody awaits: logged, as a task's would otherwise be only
        when it is collected, without context."""
        try:
            await work
        except Exception:
            log.exception("work in the background failed")

    async def _guarded(self, work: Coroutine[Any, Any, None], client: AsyncWebClient,
                       body: dict[str, Any], prompt: bool) -> None:  # fmt: skip
        opened = track()  # the modals `work` opens: a failure is shown in the last one
        try:
            if prompt:
                await work
            else:
                async with self._turns:
                    await work
        except Exception as exc:
            try:
                await tell(client, body, exc, opened=opened)
            except Exception:
                log.exception("could not tell the user about a failure (%s)", who_and_what(body))
        finally:
            discard(work)  # cancelled while waiting its turn: never started, and never will

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def stop(self, seconds: float) -> None:
        """serve's stop: wait for the work under way for `seconds` at most, counting the
        give-up's own wait; no new work is started meanwhile or after."""
        self._stopping = True
        await self.drain(timeout=max(0.0, seconds - GIVE_UP_SECONDS))

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for the work in flight (shutdown, tests); True if there was any. Said in the
        log: a stop that waits (for a Slack slow to answer) says what it is waiting for.

        `timeout` (serve's stop): the work still under way then is cancelled, and logged by
        name. Without it, a Slack that accepted the calls and stayed silent held the stop
        for its session's timeouts, two calls of two tries of 40 s each, long after an
        orchestrator's grace (Docker's 10 s, Kubernetes' 30) had killed the process with
        nothing said of what was lost."""
        busy = bool(self._tasks)
        if busy:
            log.info("waiting for %d piece(s) of work under way (Slack calls after an ack "
                     "or a sign-in) before stopping", len(self._tasks))  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if timeout is None else started + timeout
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                await self._give_up(loop.time() - started)
                break
            await asyncio.wait(set(self._tasks), timeout=left)
        return busy

    async def _give_up(self, waited: float) -> None:
        """Cancel the work still under way, saying which (each piece's failure handling
        sees the cancellation: a sign-in's DM logs that its person wasn't told), and which
        of it had not ended GIVE_UP_SECONDS later."""
        left = sorted(self._tasks, key=lambda task: task.get_name())
        log.warning("stopping with %d piece(s) of work still under way after %.1f s, given "
                    "up: %s", len(left), waited, _names(left))  # fmt: skip
        for task in left:
            task.cancel()
        _, pending = await asyncio.wait(left, timeout=GIVE_UP_SECONDS)
        if pending:
            log.warning("%d piece(s) of work given up had not ended %g s later: %s",
                        len(pending), GIVE_UP_SECONDS, _names(pending))  # fmt: skip


def discard(work: Coroutine[Any, Any, None]) -> None:
    """Close `work` without running it (a no-op once it has run). Its arguments may be
    coroutines too (`once_per_view(..., _create(...))`), which Python, freeing them with it, reports
    as "never awaited": true, and meant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        work.close()


def _names(tasks: Iterable[asyncio.Task[None]]) -> str:
    return "; ".join(sorted(task.get_name() for task in tasks))
