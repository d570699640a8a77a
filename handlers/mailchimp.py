"""`/referral mailchimp`: the connection's status, *Connect* and *Disconnect*.

Anyone may look; only team leads connect or disconnect, and a click by someone else changes
nothing and says who can. *Connect* is Mailchimp's own sign-in when an OAuth app is configured
(MAILCHIMP_CLIENT_ID): a URL button to the bot's own start page (`bot/web.py`), carrying a
signed, single-use state made for the lead who asked, so the start page can say whose
workspace and sign-in it is before sending the browser on to Mailchimp (`bot/mailchimp/oauth.py`
says why). Otherwise it opens a modal for an API key. Home's *Connect Mailchimp* is the same
button without a status to put a link in: with an OAuth app it opens a modal holding the
sign-in link, made for the lead who clicked.

A saved connection is checked with one quick ping (after the ack) before the status is shown:
a token revoked or a key deleted in Mailchimp leaves it saved, and everything that uses it
says "reconnect Mailchimp with `/referral mailchimp`". The status then says Mailchimp refuses
the saved credentials (or that they can't be read, SECRET_KEY having changed) and offers
*Reconnect* beside *Disconnect*; connecting again replaces what was saved.

The key is checked with a ping before it is stored. A view_submission must be answered within
3 s, and a ping usually takes well under a second but can take far longer (Mailchimp's 429s
and 5xx are retried with backoff). So the ping starts before the ack and is given INLINE_WAIT:
a wrong key then gets an inline error on the field, the common case. If Mailchimp is slower
than that, the modal is answered with "Checking…" and `views.update` shows the result later
(the form again with the reason, or the connection). The key is never logged or shown back.

The status is ephemeral, so after a change it is replaced through the click's `response_url`
(the key modal carries that URL in its private_metadata).

*Disconnect* (or a key of another account) also takes the audiences out of the imports not
approved yet, and queues their reviews' redraw (`accounts.disconnect`, `accounts.save`): its
confirmation says so beside "Contacts already imported stay." Its button names the
connection the status was drawn for: clicked after another lead connected another account (or
disconnected), it disconnects nothing and says what is connected now, and by whom.
*Connect* likewise names what it was drawn for (nothing connected, or the connection to
reconnect): the key form keeps it in its metadata and the sign-in in its state, and either
replaces only that (`accounts.save`'s `seen`), so a form opened before another lead
connected an account says who connected which one instead of replacing it without a word.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.leads import Role
from bot.mailchimp.accounts import (
    KEY_REFUSED,
    Checked,
    Connection,
    ConnectionChanged,
    Health,
    Seen,
    check_credentials,
    connect_api_key,
    connection,
    disconnect,
)
from bot.mailchimp.api import MailchimpError, ReconnectNeeded
from bot.mailchimp.oauth import connect_url, make_state
from bot.mailchimp.secrets import SecretKeyMissing
from bot.workspaces import ensure_workspace, name_workspace
from handlers.context import (
    Deps,
    Refusal,
    deps,
    form_meta,
    is_lead,
    leads_only,
    not_a_lead,
    role_in,
    team_of,
    told_outsider,
)
from handlers.home_publish import refresh_for
from handlers.ids import Action, BlockId, Callback
from handlers.mailchimp_messages import (
    LEGACY_DISCONNECT,
    SECRET_KEY_MISSING,
    ConnectOffer,
    checking_modal,
    connected_modal,
    disconnected_note,
    key_modal,
    preparing_modal,
    refused_modal,
    shown_stamp,
    sign_in_modal,
    stale_connect_note,
    stale_disconnect_note,
    status_message,
)
from handlers.messages import esc, metadata
from handlers.people import person_name
from handlers.placeholder import open_modal
from handlers.respond import Click, ResponseUrlFailed, respond
from handlers.routes import Routes
from handlers.slack_errors import slack_error

log = logging.getLogger(__name__)
INLINE_WAIT = 1.5  # seconds the ping may take before the modal is answered "Checking…"
MAX_INLINE_ERROR = 250


# ---- answering through response_url ---------------------------------------------------------


async def _respond(client: AsyncWebClient, url: str, text: str, *, replace: bool,
                   blocks: list[Any] | None = None) -> None:  # fmt: skip
    """Replace the ephemeral status, or add an ephemeral note. Without a URL (or when Slack
    refuses it) the person is told through the global path instead."""
    try:
        await respond(client, url, text, replace=replace, blocks=blocks)
    except ResponseUrlFailed as exc:
        log.info("%s", exc)
        raise Refusal(text) from None


async def _offer(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, seen: Seen, *,
                 lead: bool | None = None) -> ConnectOffer:  # fmt: skip
    """What *Connect* does for this person (a sign-in URL is made for team leads only);
    `seen`: the connection it is shown for, which its sign-in replaces only (accounts.save);
    `lead`: whether they are one, when the caller asked already."""
    if lead is None:
        lead = await is_lead(d, client, team_id, user_id)
    if not d.settings.secret_key:
        return ConnectOffer(secret_key_missing=True, lead=lead)
    if not (lead and d.settings.mailchimp_client_id):
        return ConnectOffer(lead=lead)
    # the callback stores the account under this workspace: its row must exist by then
    workspace = await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    name = await _workspace_name(client, team_id)
    if name and name != workspace.name:  # the start page names the workspace
        await name_workspace(d.db, team_id, name)
    person = await person_name(client, user_id) or user_id  # Slack silent: named by their id
    state = make_state(d.settings.secret_key, team_id, user_id, person=person,
                       seen=seen.text())  # fmt: skip
    return ConnectOffer(sign_in_url=connect_url(d.settings.public_base, state), lead=True)


async def _workspace_name(client: AsyncWebClient, team_id: str) -> str:
    """The workspace's name (auth.test: no scope needed), if the bot's token is this
    workspace's (an org-wide install answers for the organisation)."""
    try:
        found = await client.auth_test()
    except Exception as exc:  # a name is nice to have: Connect works without it (a timeout too)
        log.warning("auth.test failed (team %s): %r", team_id, exc)
        return ""
    return str(found.get("team") or "") if found.get("team_id") == team_id else ""


async def _show_status(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, url: str,
                       *, note: str = "", replace: bool, check: bool = True,
                       lead: bool | None = None) -> None:  # fmt: skip
    """The status; a saved connection is first checked with Mailchimp (`check`): one whose
    token was revoked or key deleted looked connected, with no way to reconnect. `lead`:
    whether the person is a team lead, when the caller asked Slack already."""
    conn = await connection(d.db, team_id)
    checked = Checked(Health.WORKING)
    if conn is not None and check:
        checked = await check_credentials(d.db, team_id, d.settings.secret_key)
        if checked.changed:  # refused since, or accepted again: Home says so now
            await refresh_for(d, client, team_id)
        if checked.health == Health.DISCONNECTED:  # a Disconnect since the read above
            conn = None
        elif checked.health in (Health.REFUSED, Health.UNREADABLE):
            log.info("Mailchimp's saved credentials can't be used (%s): team=%s",
                     checked.health, team_id)  # fmt: skip
    if lead is None:
        lead = await is_lead(d, client, team_id, user_id)
    if conn is None or checked.health in (Health.REFUSED, Health.UNREADABLE):
        # Connect, or Reconnect
        offer = await _offer(d, client, team_id, user_id, Seen.of(conn), lead=lead)
    else:
        offer = ConnectOffer(lead=lead)
    text, blocks = status_message(conn, offer, note, checked.health, checked.reason)
    await _respond(client, url, text, replace=replace, blocks=blocks)


async def status_command(ack: Any, command: dict[str, Any], client: AsyncWebClient,
                         context: dict[str, Any]) -> None:  # fmt: skip
    """`/referral mailchimp`: ack at once, then answer with the status through response_url."""
    await ack()
    d = deps(context)

    async def work() -> None:
        team_id, user_id, url = command["team_id"], command["user_id"], command["response_url"]
        role = await role_in(d.db, d.settings.team_leads, client, team_id, user_id)  # once
        if role is Role.OUTSIDER and await connection(d.db, team_id) is not None:
            # typed in a channel shared with another organisation, the status showed its
            # members the account's name and login email (not connected, it shows nothing
            # of the workspace's: Connect itself is for leads)
            refused = told_outsider(team_id, user_id, what="see its Mailchimp connection")
            await _respond(client, url, refused, replace=False)
            return
        await _show_status(d, client, team_id, user_id, url, replace=False,
                           lead=role is Role.LEAD)  # fmt: skip

    d.later.run(work(), client, command)


# ---- Connect with an API key ----------------------------------------------------------------


async def _why_not(d: Deps, client: AsyncWebClient, team_id: str, user_id: str) -> str:
    """Why this person can't connect Mailchimp now (mrkdwn; "" when they can, who is then a
    team lead): one users.info at most (role_in), as the key form's answer is its ack. A
    member of another organisation (a shared channel's) is refused as one, never told who
    the leads are: "Ask <@U…>" named them."""
    role = await role_in(d.db, d.settings.team_leads, client, team_id, user_id)
    if role is Role.OUTSIDER:
        return told_outsider(team_id, user_id, "connect Mailchimp")
    if role is not Role.LEAD:
        return str(await leads_only(d, team_id, "connect Mailchimp"))
    return SECRET_KEY_MISSING if not d.settings.secret_key else ""


async def _replace_modal(client: AsyncWebClient, view_id: str, modal: View,
                         view_hash: str | None = None) -> bool:  # fmt: skip
    """Show `modal` in place of the open one; False when the person closed it already."""
    try:
        await client.views_update(view_id=view_id, hash=view_hash, view=modal)
    except SlackApiError as exc:
        if slack_error(exc) not in ("not_found", "hash_conflict"):
            raise
        log.info("the Mailchimp modal was closed or changed before it was updated")
        return False
    return True


async def _seen(d: Deps, click: Click) -> Seen:
    """What a *Connect* click is for: the connection its button was drawn for, or for a
    button drawn before they named it (an older release's), the one connected now."""
    shown = Seen.read(click.value)
    return shown if shown is not None else Seen.of(await connection(d.db, click.team_id))


async def _open_key_modal(d: Deps, client: AsyncWebClient, click: Click, trigger_id: str) -> None:
    """Open the form first (trigger ids live 3 s); someone who can't connect then sees why.
    It remembers the connection it was opened for (`seen`): its key replaces only that."""
    seen = await _seen(d, click)
    opened = (await open_modal(client, trigger_id, key_modal(
        metadata(url=click.response_url, seen=seen.text()))))["view"]  # fmt: skip
    refusal = await _why_not(d, client, click.team_id, click.user_id)
    if refusal:
        await _replace_modal(client, opened["id"], refused_modal(refusal), opened["hash"])


async def _open_sign_in(d: Deps, client: AsyncWebClient, click: Click, trigger_id: str) -> None:
    """With an OAuth app, *Connect* clicked outside the status (Home's) is its sign-in too:
    a modal opens at once (trigger ids live 3 s), then holds a link made for the lead who
    clicked, or says why they can't connect."""
    opened = (await open_modal(client, trigger_id, preparing_modal()))["view"]
    refusal = await _why_not(d, client, click.team_id, click.user_id)  # one users.info
    if refusal:
        modal = refused_modal(refusal)
    else:  # a lead, SECRET_KEY set and an OAuth app: _offer makes the link
        modal = sign_in_modal(await _offer(d, client, click.team_id, click.user_id,
                                           await _seen(d, click), lead=True))  # fmt: skip
    await _replace_modal(client, opened["id"], modal, opened["hash"])


async def on_connect(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                     context: dict[str, Any]) -> None:  # fmt: skip
    """*Connect* (on Home, or the status's for someone who isn't a lead, or with an API key):
    Mailchimp's sign-in when an OAuth app is configured, otherwise the API key form."""
    await ack()
    d, click = deps(context), Click.of(body)
    opener = _open_sign_in if d.settings.mailchimp_client_id else _open_key_modal
    d.later.run(opener(d, client, click, body["trigger_id"]), client, body, prompt=True)


def read_key(values: dict[str, dict[str, Any]]) -> str:
    entered = ((values.get(BlockId.MAILCHIMP_KEY) or {}).get(Action.MAILCHIMP_KEY) or {})
    return str(entered.get("value") or "").strip()


# what a key form's submit came to: connected, why not (for the key field), or another
# connection made (or none left) since the form was opened
KeyOutcome = Connection | str | ConnectionChanged


async def _check_key(d: Deps, team_id: str, user_id: str, key: str,
                     seen: Seen | None) -> KeyOutcome:  # fmt: skip
    """Ping Mailchimp with the key and keep it (sealed) in place of the connection the form
    was opened for (`seen`; None: a form opened before forms said, whatever is connected);
    or why not, in words for the form."""
    try:
        conn = await connect_api_key(d.db, team_id, key, user=user_id,
                                     secret_key=d.settings.secret_key,
                                     api_url=d.settings.mailchimp_api_url,
                                     seen=seen)  # fmt: skip
    except ConnectionChanged as changed:
        log.info("a Mailchimp key form opened before Mailchimp was connected or disconnected "
                 "again replaced nothing: team=%s user=%s", team_id, user_id)  # fmt: skip
        return changed
    except ReconnectNeeded:
        return KEY_REFUSED
    except (MailchimpError, SecretKeyMissing) as exc:  # not a key's shape, or Mailchimp is down
        return str(exc)[:MAX_INLINE_ERROR]
    log.info("Mailchimp connected with an API key: team=%s user=%s dc=%s", team_id, user_id,
             conn.dc)  # fmt: skip
    return conn


async def _after_key(d: Deps, client: AsyncWebClient, team_id: str, user_id: str, url: str,
                    *, connected: bool) -> None:  # fmt: skip
    """The status the key form was opened from (`url`; Home's form has none), shown again
    as the modal itself just said: `connected`, saying so, with no second ping (the key was
    just checked), Home refreshed first; else the form went stale (another connection
    since), and the status shows what is connected now, Disconnect with it."""
    if connected:
        await refresh_for(d, client, team_id)
    if not url:
        return
    note = ":white_check_mark: Mailchimp is connected." if connected else ""
    try:
        await _show_status(d, client, team_id, user_id, url, replace=True,
                           check=not connected, note=note)  # fmt: skip
    except Refusal:
        log.info("could not refresh the Mailchimp status (no usable response_url)")


async def _finish_check(d: Deps, client: AsyncWebClient, checking: asyncio.Task[Any],
                        view_id: str, team_id: str, user_id: str, meta: str,
                        url: str) -> None:  # fmt: skip
    """The slow path: the modal says "Checking…" until the ping answers, then the result."""
    outcome: KeyOutcome = await checking
    if isinstance(outcome, ConnectionChanged):
        note = stale_connect_note(outcome.now)
        if not await _replace_modal(client, view_id, refused_modal(note)):
            raise Refusal(note)  # closed: told by DM
        await _after_key(d, client, team_id, user_id, url, connected=False)
        return
    if isinstance(outcome, str):
        if not await _replace_modal(client, view_id, key_modal(meta, problem=outcome)):
            raise Refusal(f"Mailchimp wasn't connected: {esc(outcome)}")  # closed: told by DM
        return
    await _replace_modal(client, view_id, connected_modal(outcome))
    await _after_key(d, client, team_id, user_id, url, connected=True)


async def on_key_submit(ack: Any, body: dict[str, Any], view: dict[str, Any],
                        client: AsyncWebClient, context: dict[str, Any]) -> None:  # fmt: skip
    """Check who, then the key (inline error if Mailchimp answers in time), then save."""
    d = deps(context)
    team_id, user_id = team_of(body), body["user"]["id"]
    # read before anything: metadata of another shape (an older release's form, forged)
    # failed after the key was saved, the person told "Something went wrong" though connected
    read = await form_meta(ack, view, "Mailchimp")
    if read is None:
        return
    meta, url = view.get("private_metadata") or "{}", str(read.get("url") or "")
    refusal = await _why_not(d, client, team_id, user_id)
    if refusal:
        await ack(response_action="update", view=refused_modal(refusal).to_dict())
        return
    key = read_key(view["state"]["values"])
    if not key:
        await ack(response_action="errors", errors={BlockId.MAILCHIMP_KEY: "Paste the API key."})
        return
    await ensure_workspace(d.db, team_id, default_locale=d.settings.default_locale)
    seen = Seen.read(read.get("seen"))
    checking = asyncio.create_task(_check_key(d, team_id, user_id, key, seen))
    done, _ = await asyncio.wait({checking}, timeout=INLINE_WAIT)
    if not done:
        await ack(response_action="update", view=checking_modal().to_dict())
        d.later.run(_finish_check(d, client, checking, view["id"], team_id, user_id, meta,
                                  url), client, body)  # fmt: skip
        return
    outcome = checking.result()
    if isinstance(outcome, ConnectionChanged):
        note = stale_connect_note(outcome.now)
        await ack(response_action="update", view=refused_modal(note).to_dict())
        d.later.run(_after_key(d, client, team_id, user_id, url, connected=False), client,
                    body)  # fmt: skip
        return
    if isinstance(outcome, str):
        await ack(response_action="errors", errors={BlockId.MAILCHIMP_KEY: outcome})
        return
    await ack(response_action="update", view=connected_modal(outcome).to_dict())
    d.later.run(_after_key(d, client, team_id, user_id, url, connected=True), client, body)


# ---- Disconnect -----------------------------------------------------------------------------


async def _disconnect(d: Deps, client: AsyncWebClient, click: Click) -> None:
    """Disconnect the connection the button was drawn for, only if it is still the one
    connected: a stale status's click disconnected an account another lead connected since,
    and said "<@you> disconnected Mailchimp". Otherwise the lead is told what is connected."""
    if not await is_lead(d, client, click.team_id, click.user_id):
        text = str(await not_a_lead(d, client, click.team_id, click.user_id,
                                     "disconnect Mailchimp"))
        await _respond(client, click.response_url, text, replace=False)
        return
    gone = await _disconnect_shown(d, click)
    if gone is not None:
        log.info("Mailchimp disconnected: team=%s user=%s", click.team_id, click.user_id)
        await refresh_for(d, client, click.team_id)
        note = disconnected_note(click.user_id, gone)
    else:
        note = stale_disconnect_note(await connection(d.db, click.team_id))
    await _show_status(d, client, click.team_id, click.user_id, click.response_url, note=note,
                       replace=True)  # fmt: skip


async def _disconnect_shown(d: Deps, click: Click) -> Connection | None:
    """What the click disconnected: the connection its button names, if still connected; a
    button drawn before they named one (LEGACY_DISCONNECT), what is connected now, as the
    shell's `mailchimp disconnect` (its note names the account, so a lead who meant another
    sees which went); a value naming nothing we know of, nothing."""
    if click.value == LEGACY_DISCONNECT:
        return await disconnect(d.db, click.team_id, user=click.user_id)
    shown = shown_stamp(click.value)
    if shown is None:
        log.warning("a Disconnect naming no connection: team=%s", click.team_id)
        return None
    return await disconnect(d.db, click.team_id, user=click.user_id, only=shown)


async def on_disconnect(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                        context: dict[str, Any]) -> None:  # fmt: skip
    await ack()
    d = deps(context)
    d.later.run(_disconnect(d, client, Click.of(body)), client, body)


async def on_sign_in(ack: Any) -> None:
    """A URL button still sends its click to the app; the browser does the rest."""
    await ack()


def register(app: Routes) -> None:
    app.action(Action.MAILCHIMP_CONNECT)(on_connect)
    app.action(Action.MAILCHIMP_SIGN_IN)(on_sign_in)
    app.action(Action.MAILCHIMP_DISCONNECT)(on_disconnect)
    app.view(Callback.MAILCHIMP_KEY)(on_key_submit)
