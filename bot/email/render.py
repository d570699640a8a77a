"""Invite emails rendered from per-locale Jinja templates.

Layout and share links live once in `templates/_layout/`; each locale folder holds its
translated strings (`messages.j2`), its subject line and two thin templates that extend the
layouts, so a translator edits words and never markup, and a link fix is made in one place.
"""

from __future__ import annotations

import functools
import re
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


@functools.lru_cache(maxsize=1024)
def _negotiate(tag: str | None) -> str | None:
    """The template locale for `tag`, or None when there is none (or no tag at all). Cached:
    asked per invite, twice for a bare language (_workspace_variant), of a few tags."""
    return best_locale([tag], TEMPLATE_LOCALES) if tag else None


def _workspace_variant(asked: str, chosen: str, default: str) -> str:
    """A contact's bare language ("zh", as Mailchimp and "Chinese" give it) served in the
    workspace default's variant of it when it has one: a Taiwanese shop (DEFAULT_LOCALE=
    zh-TW) invited its "zh" customers in Simplified Chinese, the first template of the
    language. A locale naming its script or region keeps its own."""
    if "-" in asked.strip().replace("_", "-"):
        return chosen
    preferred = _negotiate(default)
    if preferred and preferred.split("-")[0] == chosen.split("-")[0]:
        return preferred
    return chosen


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
            return _workspace_variant(contact_locale, chosen, default), False
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
    last_name: str = ""  # the family name: Japanese and Chinese invites greet by it (full_name)


@dataclass(frozen=True)
class Rendered:
    """A rendered invite: one-line subject, text and HTML bodies, and the locale used."""

    subject: str
    text: str
    html: str
    locale: str
    fell_back: bool


# The bidi controls that open or close a scope: embeddings and overrides (LRE, RLE, PDF,
# LRO, RLO) and isolates (LRI, RLI, FSI, PDI). In a name they reach past it: "\u202eevil"
# (no right-to-left letter, so never isolated) reversed the rest of the subject, and a stray
# PDI in a Hebrew name closed our isolate early. The marks LRM, RLM and ALM stay: each is one
# strong character with no scope, held inside the isolate like a letter (RLM or ALM is
# right-to-left and gets its value isolated), and right-to-left names use them to place
# punctuation.
_BIDI_SCOPES = re.compile("[\u202a-\u202e\u2066-\u2069]")
# The control characters that aren't white space (C0 but tab, line breaks and the separators
# str.split takes as spaces; DEL; C1 but NEL): a name from a spreadsheet or Mailchimp with ESC
# or SOH in it went into the Subject and From as raw bytes, where RFC 5322 allows only
# visible characters and spaces (a terminal mail reader ran "\x1b[31m"), and into the bodies.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


def one_line(value: str) -> str:
    """`value` on one line, without control characters: white space (a CR or LF too, which
    must never start a header of its own) as single spaces, other controls dropped."""
    return " ".join(_CONTROLS.sub("", value).split())


def without_scopes(value: str) -> str:
    """`value` without the bidi controls that open or close a scope (_BIDI_SCOPES)."""
    return _BIDI_SCOPES.sub("", value)


def isolated(value: str) -> str:
    """`value` between Unicode's first-strong isolate and its end (U+2068, U+2069) when it
    holds right-to-left letters: a subject opening with "שרה" or "محمد" took its direction
    from it, and mail clients laid the whole sentence out right to left. Left-to-right
    values are left as they are. Bidi controls with a scope are dropped first (_BIDI_SCOPES):
    a value must not reorder the sentence around it, nor end the isolate that holds it."""
    value = without_scopes(value)
    if any(unicodedata.bidirectional(c) in ("R", "AL") for c in value):
        return f"\u2068{value}\u2069"
    return value


# Han, kana (with 々 and halfwidth katakana) and Hangul: the scripts whose names are written
# family name first, as bot/imports/rows.py reads a whole-name column (kept here as well:
# bot.email stands alone, without the import code)
_CJK = ("\u1100-\u11ff\u3005-\u3007\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
        "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_CJK_LETTER = re.compile(f"[{_CJK}]")
_OTHER_LETTER = re.compile(f"[^\\W\\d_{_CJK}]")


def _cjk_only(name: str) -> bool:
    """Whether `name` has CJK letters and no letter of another script."""
    return _CJK_LETTER.search(name) is not None and _OTHER_LETTER.search(name) is None


def full_name(first_name: str, last_name: str) -> str:
    """The customer's whole name as Japanese and Chinese invites address them (様, 您好).

    Greeting a customer by their given name alone is over-familiar in those languages; the
    polite form is the family name, or the whole name with the family name first. So a name
    written in CJK letters only goes family name first with no space, as these languages
    write it: 佐藤 + 悠斗 is "佐藤悠斗" (様 follows it directly), 王 + 小明 "王小明".

    A name with a letter of another script keeps the order of its own writing, given name
    first with a space: "John Smith", not "Smith John". That is how Japanese and Chinese text
    shows a Latin-script name, how its owner typed it into the shop's first and last name
    fields, and how the import reads "Ada 田中" back (bot/imports/rows.py, split_full_name).

    Without a family name the given name alone; without a given name the family name alone
    (佐藤様 is as polite as the whole name); "" without either (the caller's fallback)."""
    first, last = " ".join(first_name.split()), " ".join(last_name.split())
    if not (first and last):
        return first or last
    if _cjk_only(first + last):
        return f"{last}{first}"
    return f"{first} {last}"


def _stand_in(email: str) -> str:
    """The first name an import gives a contact without one: its address's part before `@`,
    without a `+tag` (bot/imports/rows.py, first_name_of)."""
    local = email.rpartition("@")[0]
    return local.partition("+")[0] or local


def render_invite(invite: Invite) -> Rendered:
    """Render the invite in the contact's language (or the fallback `choose_locale` picks).

    Templates get `first_name` (most languages greet by it) and `full_name` (Japanese and
    Chinese address the family name: see `full_name`); without any name, both are the start
    of the address. A first name that is the import's stand-in for none ("yuto.sato") is no
    part of a whole name: a 佐藤 imported without a first name is "佐藤様", not
    "yuto.sato 佐藤様"."""
    locale, fell_back = choose_locale(invite.locale, invite.default_locale)
    typed = one_line(invite.first_name)
    first_name = typed or invite.to_email.split("@", 1)[0]
    given = "" if typed == _stand_in(invite.to_email) else typed
    context = {
        "locale": locale,
        "first_name": isolated(first_name),
        "full_name": isolated(full_name(given, one_line(invite.last_name)) or first_name),
        "store_name": isolated(one_line(invite.store_name)),
        "store_url": invite.store_url,
        "offer": _CONTROLS.sub("", invite.offer),
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
