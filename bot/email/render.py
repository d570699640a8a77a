"""Invite emails rendered from per-locale Jinja templates.

Layout and share links live once in `templates/_layout/`; each locale folder holds its
translated strings (`messages.j2`), its subject line and two thin templates that extend the
layouts, so a translator edits words and never markup, and a link fix is made in one place.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from babel import negotiate_locale
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_FILES = ("invite.subject.j2", "invite.txt.j2", "invite.html.j2")
FALLBACK_LOCALE = "en"

# Tags Babel would get wrong or can't know: its alias for a bare "pt" is pt_PT, while shops
# (and Mailchimp) mean Brazilian Portuguese; Chinese is chosen by script, not by country.
_TRADITIONAL_CHINESE = {"hant", "tw", "hk", "mo"}


def _discover_locales(directory: Path) -> tuple[str, ...]:
    """Locale folders that hold all three invite templates (`_layout` and the like excluded)."""
    return tuple(
        sorted(
            entry.name
            for entry in directory.iterdir()
            if entry.is_dir()
            and not entry.name.startswith(("_", "."))
            and all((entry / name).is_file() for name in TEMPLATE_FILES)
        )
    )


TEMPLATE_LOCALES: tuple[str, ...] = _discover_locales(TEMPLATE_DIR)

# Only .html.j2 is autoescaped: the text and subject must show a name exactly as typed, and
# share.j2 builds plain URL strings that the HTML layout escapes when it prints them.
_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html", "html.j2"], default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
# What a value is without its isolates (`isolated`): in the share links a customer posts
# and the page title, which are not the email's prose
_env.filters["plain"] = lambda value: str(value).replace("\u2068", "").replace("\u2069", "")


def template_environment() -> Environment:
    """The shared Jinja environment (exposed so tests can check its escaping rules)."""
    return _env


def _preferences(tag: str) -> list[str]:
    """Locales to try for one tag, best first: itself, then its language (with our aliases)."""
    parts = tag.replace("_", "-").split("-")
    language = parts[0].lower()
    subtags = {part.lower() for part in parts[1:]}
    normalised = "-".join(parts)
    if language == "zh":  # the script, when given, over the country: zh-Hans-HK is Simplified
        traditional = "hant" in subtags or ("hans" not in subtags
                                            and bool(subtags & _TRADITIONAL_CHINESE))
        return [normalised, "zh-TW" if traditional else "zh-CN"]
    if language == "pt":
        return [normalised, "pt-BR"]
    if language in ("no", "nn"):  # Norwegian as most systems tag it, and Nynorsk: Bokmål
        return [normalised, "nb"]
    return [normalised, language]


def best_locale(tags: Iterable[str], available: Iterable[str]) -> str | None:
    """The locale of `available` serving the first of `tags` (best first) that one serves, as
    `available` spells it; None when none does. The same aliases as invites: a bare `pt` is
    Brazilian, Chinese goes by script, `no` and `nn` are Bokmål."""
    canonical = {locale.lower(): locale for locale in available}
    for tag in tags:
        if tag.strip():
            found = negotiate_locale(_preferences(tag.strip()), list(canonical.values()),
                                     sep="-")  # fmt: skip
            if found:
                return canonical.get(found.lower())
    return None


def _negotiate(tag: str | None) -> str | None:
    """The template locale for `tag`, or None when there is none (or no tag at all)."""
    return best_locale([tag], TEMPLATE_LOCALES) if tag else None


def choose_locale(contact_locale: str | None, default: str) -> tuple[str, bool]:
    """The template locale for a contact, and whether it fell back from what was asked for.

    The contact's locale wins (`fr-CA` is served by `fr`); without one, the workspace default
    is what was asked for. The flag is True when the invite goes out in another language than
    that (an unknown `xx`, or a default without templates, served in `en`), so callers can
    report "n invites sent in <fallback>" instead of hiding it.
    """
    if contact_locale and contact_locale.strip():
        chosen = _negotiate(contact_locale)
        if chosen:
            return chosen, False
        return _negotiate(default) or FALLBACK_LOCALE, True
    chosen = _negotiate(default)
    if chosen:
        return chosen, False
    return FALLBACK_LOCALE, True


@dataclass(frozen=True)
class Invite:
    """Everything one invite email needs, as plain values (no database rows, no Slack)."""

    to_email: str
    first_name: str
    locale: str | None  # the contact's own locale; None uses default_locale
    store_name: str
    store_url: str
    offer: str  # the campaign's offer as the merchant wrote it, e.g. "Give 10%, get $10"
    referral_link: str
    unsubscribe_url: str
    sender: str  # From header, e.g. "Shop <hello@shop.example>"
    message_key: str  # stable and unique per invite, e.g. "c12-a34": the Message-ID's root
    default_locale: str = FALLBACK_LOCALE


@dataclass(frozen=True)
class Rendered:
    """A rendered invite: one-line subject, text and HTML bodies, and the locale used."""

    subject: str
    text: str
    html: str
    locale: str
    fell_back: bool


def isolated(value: str) -> str:
    """`value` between Unicode's first-strong isolate and its end (U+2068, U+2069) when it
    holds right-to-left letters: a subject opening with "שרה" or "محمد" took its direction
    from it, and mail clients laid the whole sentence out right to left. Left-to-right
    values are left as they are."""
    if any(unicodedata.bidirectional(c) in ("R", "AL") for c in value):
        return f"\u2068{value}\u2069"
    return value


def render_invite(invite: Invite) -> Rendered:
    """Render the invite in the contact's language (or the fallback `choose_locale` picks)."""
    locale, fell_back = choose_locale(invite.locale, invite.default_locale)
    first_name = invite.first_name.strip() or invite.to_email.split("@", 1)[0]
    context = {
        "locale": locale,
        "first_name": isolated(first_name),
        "store_name": isolated(invite.store_name),
        "store_url": invite.store_url,
        "offer": invite.offer,
        "referral_link": invite.referral_link,
        "unsubscribe_url": invite.unsubscribe_url,
    }
    subject = _env.get_template(f"{locale}/invite.subject.j2").render(context)
    text = _env.get_template(f"{locale}/invite.txt.j2").render(context)
    html = _env.get_template(f"{locale}/invite.html.j2").render(context)
    return Rendered(
        # A header is one line: a name with a newline in it must not start a new header.
        subject=" ".join(subject.split()),
        text=text.strip() + "\n",
        html=html.strip() + "\n",
        locale=locale,
        fell_back=fell_back,
    )
