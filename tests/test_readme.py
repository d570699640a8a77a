"""README.md against the code a new user runs: the settings its Configuration table lists, the
scopes and events its Slack setup names, the commands its Commands table shows. Each was
checked by hand once; these keep them from drifting apart again (the Scopes section named two
of manifest.yml's five events, so an app made by hand from it missed uninstalls and leads'
deactivations)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from bot.cli import build_parser
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


def _section(title: str) -> str:
    """The README's text under `title` (a `## ` or `### ` heading), up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README, re.M | re.S)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def test_the_configuration_table_lists_every_setting_and_only_settings() -> None:
    rows = re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \|", _section("Configuration"), re.M)
    listed = {name for row in rows for name in re.findall(r"`([A-Z_]+)`", row)}
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - listed == set(), "settings the README's table doesn't list"
    assert listed - settings == set(), "the README's table lists what no setting reads"


def test_the_scopes_section_names_every_scope_and_event_of_the_manifest() -> None:
    section = _section("Scopes")
    named = set(re.findall(r"`([a-z_:.]+)`", section))
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert scopes - named == set(), "scopes manifest.yml asks for that README's Scopes omits"
    assert events - named == set(), "events manifest.yml subscribes that README's Scopes omits"


def _commands(parser: argparse.ArgumentParser, prefix: str = "referral-bot") -> set[str]:
    """Every command and subcommand the CLI takes, as typed after `referral-bot`."""
    found: set[str] = set()
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= {f"{prefix} {name}"} | _commands(sub, f"{prefix} {name}")
    return found


def _shown(section: str) -> set[str]:
    """The commands a section shows: each `referral-bot ...` in it, and in the Commands
    table's first column the ones a row names after a ` / ` without `referral-bot` again
    (`segments rename OLD NEW` / `segments delete NAME`)."""
    found = re.findall(r"`referral-bot ([a-z][a-z -]*)", section)
    for cell in re.findall(r"^\| (`referral-bot .*?`) \|", section, re.M):
        found += re.findall(r" / `([a-z][a-z -]*)", cell)
    return {"referral-bot " + " ".join(words.split()) for words in found}


def test_the_commands_table_shows_every_command_and_subcommand() -> None:
    shown = _shown(_section("Commands") + _section("Running the Slack app"))  # serve: there
    missing = {cmd for cmd in _commands(build_parser())
               if not any(s == cmd or s.startswith(cmd + " ") for s in shown)}  # fmt: skip
    assert missing == set(), "commands the README doesn't show"
