"""manifest.yml against the code: the scopes its Web API calls need (and no more), the events
and slash command it listens to, every button's listener, and the fake Slack's token (and the
start's scope check) granted what the manifest asks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.app import BOT_SCOPES
from handlers import SURFACES
from handlers.ids import Action
from handlers.routes import Routes
from tests.fakes.slack_api import DEFAULT_SCOPES, NEEDED_SCOPES

ROOT = Path(__file__).parents[1]
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())
SCOPES = set(MANIFEST["oauth_config"]["scopes"]["bot"])
EVENTS = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
# methods that need no bot token scope (views.*, auth.test), or the app-level token's
NO_SCOPE = {"views_open", "views_update", "views_push", "views_publish", "auth_test",
            "apps_connections_open"}  # fmt: skip
CALL = re.compile(r"\.((?:chat|conversations|users|files|views|reactions|apps|auth|team|"
                  r"pins|bots|usergroups)_[A-Za-z0-9_]+)\(")  # fmt: skip
# the SDK's files_upload_v2 is files.getUploadURLExternal then files.completeUploadExternal
SDK_CALLS = {"files_upload_v2": ("files_getUploadURLExternal", "files_completeUploadExternal")}


def _called() -> set[str]:
    found: set[str] = set()
    for path in [*(ROOT / "handlers").rglob("*.py"), *(ROOT / "bot").rglob("*.py")]:
        found |= set(CALL.findall(path.read_text()))
    return {m for call in found for m in SDK_CALLS.get(call, (call,))}


def _routes() -> Routes:
    routes = Routes(None)  # type: ignore[arg-type]
    for module in SURFACES:
        module.register(routes)
    return routes


def test_every_web_api_method_called_has_its_scope_and_every_scope_is_used() -> None:
    needs = {method.replace(".", "_"): scope for method, scope in NEEDED_SCOPES.items()}
    called = _called()
    unknown = called - set(needs) - NO_SCOPE
    assert not unknown, f"add these methods' scopes to NEEDED_SCOPES (and manifest.yml): {unknown}"
    needed = {needs[m] for m in called if m in needs} | {"commands"}  # /referral
    needed |= {"files:read"} if "file_shared" in EVENTS else set()  # the events' own scopes
    needed |= {"users:read"} if "user_change" in EVENTS else set()
    assert needed <= SCOPES, f"missing from manifest.yml: {needed - SCOPES}"
    assert needed >= SCOPES, f"asked for but unused (least privilege): {SCOPES - needed}"


def test_the_fake_slacks_token_and_the_start_check_have_the_manifests_scopes() -> None:
    """Tests run against a token granted what an install from manifest.yml grants, and
    `serve` checks the token for the same."""
    assert set(DEFAULT_SCOPES.split(",")) == SCOPES
    assert set(BOT_SCOPES) == SCOPES


def test_every_event_and_command_listened_to_is_in_the_manifest() -> None:
    routes = _routes()
    events = {name for kind, name, _ in routes.direct if kind == "event"} - {"message"}  # no-op
    assert events == EVENTS
    commands = {name for kind, name, _ in routes.direct if kind == "command"}
    listed = MANIFEST["features"]["slash_commands"]
    assert commands == {c["command"] for c in listed}
    url = MANIFEST["settings"]["event_subscriptions"]["request_url"]
    assert all(c["url"] == url for c in listed) and url.endswith("/slack/events")
    interactivity = MANIFEST["settings"]["interactivity"]
    assert interactivity["is_enabled"] and interactivity["request_url"] == url
    assert interactivity["message_menu_options_url"] == url  # external_select menus
    assert MANIFEST["features"]["app_home"]["home_tab_enabled"] == ("app_home_opened" in EVENTS)


# elements inside input blocks without dispatch_action: Slack sends no block_actions for them
INPUT_ONLY = {"CAMPAIGN_DELAY", "CAMPAIGN_INVITE", "CAMPAIGN_NAME", "CAMPAIGN_OFFER",
              "CAMPAIGN_SENDER", "CAMPAIGN_STORE_URL", "CONSENT", "CONTACT_QUERY", "FILES",
              "EMAIL", "FIRST_NAME", "LAST_NAME", "LOCALE", "MAILCHIMP_KEY", "MAILCHIMP_LISTS",
              "MAP_FIELD", "NEW_SEGMENT", "REVIEW_CHANNEL", "SEGMENT_NAME", "SEGMENT",
              "UNDO_ADVOCATES"}  # fmt: skip


def test_every_interactive_element_the_builders_emit_has_a_listener() -> None:
    """A button or menu no listener matches gets bolt's 404: Slack shows a warning sign."""
    emitted: set[str] = set()
    for path in (ROOT / "handlers").glob("*.py"):
        emitted |= set(re.findall(r"action_id=Action\.([A-Z_]+)", path.read_text()))
    assert emitted, "no builder found"
    routes = _routes()
    unheard = {n for n in emitted - INPUT_ONLY if routes.actions.find(Action[n].value) is None}
    assert not unheard
    assert routes.actions.find(f"{Action.PAGE}_next") is not None
    assert routes.actions.find(f"{Action.PAGE}_nextx") is None  # the pattern is anchored
    for select in ("SEGMENT", "UPLOAD_SEGMENT", "TARGET_CHOICE"):  # external_select menus
        assert routes.suggestions.find(Action[select].value) is not None
