"""Invite languages: people's spellings to BCP 47 tags, or None when we can't tell.

A locale column holds codes (`fr_FR`, `ZH-tw`, `pt-br`) and, from hand-made sheets, names
("French", "Français", "Brazilian Portuguese", "繁體中文"). Both are read from Babel's CLDR data
rather than from tables kept here, so a Babel upgrade brings new languages and spellings.

Codes are the common case and stay cheap: a regular expression and a set of language subtags.
Names need a lookup built from every locale Babel has data for; it is built once, at the first
value that isn't a code, so a file of codes never pays for it.
"""

from __future__ import annotations

import logging
import pickle
import re
import unicodedata
from collections import ChainMap
from collections.abc import Iterator, Mapping
from functools import cache, lru_cache

from babel import Locale, localedata
from babel.core import get_global, parse_locale

log = logging.getLogger(__name__)

_TAG = re.compile(
    r"(?P<lang>[a-z]{2,3})(?:[-_](?P<script>[a-z]{4}))?(?:[-_](?P<region>[a-z]{2}|\d{3}))?\Z",
    re.IGNORECASE,
)

# CLDR's "Unknown language", "Multiple languages" and "No linguistic content": codes it names
# but nobody can be invited in.
_NOT_LANGUAGES = frozenset({"und", "mul", "zxx"})

# Longer than any name Babel spells (the longest is under 100 characters): a longer cell is junk
# and is turned away before the name lookup is built or the cell folded.
MAX_NAME = 120

# One locale's (languages, scripts, territories) display names.
_Names = tuple[Mapping[str, str], Mapping[str, str], Mapping[str, str]]


@cache
def known_languages() -> frozenset[str]:
    """Language subtags Babel knows: every one CLDR names in English, and every one it has
    locale data for (a few, such as `apc`, have data but no English name yet).

    This replaced a hand-kept ISO 639-1 list and holds all of it but `bh` (Bihari languages, a
    collective code CLDR doesn't list). Loading the English data costs about 25 ms and 6 MB,
    once per process.
    """
    english = Locale("en").languages
    codes = {code for code in english if "_" not in code}
    codes.update(locale_id.partition("_")[0] for locale_id in localedata.locale_identifiers())
    return frozenset(codes - _NOT_LANGUAGES)


def _bcp47(locale_id: str) -> str:
    """Babel's `zh_Hant_TW` spelled as the BCP 47 tag `zh-Hant-TW`."""
    return locale_id.replace("_", "-")


def _own_data(locale_id: str) -> _Names:
    """The names one locale's own data file spells, without what it inherits.

    Read from Babel's file directly: `Locale(...).languages` would keep every locale's whole
    data (dates, currencies, units) in Babel's cache for the life of the process, some 150 MB
    for all of them, to use three small dicts once. A file that can't be read only loses that
    language's own spellings; its English names still resolve.
    """
    try:
        with open(localedata.resolve_locale_filename(locale_id), "rb") as file:
            data = pickle.load(file)  # Babel's own data files, shipped in its package
        return (data.get("languages", {}), data.get("scripts", {}), data.get("territories", {}))
    except (OSError, EOFError, pickle.UnpicklingError, ImportError, AttributeError,
            TypeError) as exc:  # fmt: skip
        log.warning("Babel's data for %s can't be read (%s): its own-language names are "
                    "left out", locale_id, exc)  # fmt: skip
        return ({}, {}, {})


def _merged(parent: _Names | None, child: _Names) -> _Names:
    """`child`'s names over `parent`'s, as views: the parent's hundreds of names aren't copied."""
    if parent is None:
        return child
    if not any(child):
        return parent
    return (ChainMap(dict(child[0]), parent[0]), ChainMap(dict(child[1]), parent[1]),
            ChainMap(dict(child[2]), parent[2]))  # fmt: skip


def _inherits_from_language(lang: str, script: str) -> bool:
    """Whether Babel fills `lang_Script`'s data from `lang` (`uz_Latn`), not from root
    (`zh_Hant`, `sr_Latn`: a script other than the language's usual one starts afresh)."""
    base = f"{lang}_{script}"
    parent = get_global("parent_exceptions").get(base)
    if parent is not None:
        return parent == lang
    likely = get_global("likely_subtags").get(lang)
    return likely is None or parse_locale(likely)[2] == script


def _parent(locale_id: str) -> str | None:
    """The locale Babel fills `locale_id`'s data from, None for root (which names nothing
    anyone writes): `nb` -> `no`, `zh_Hant_MO` -> `zh_Hant_HK`, `fr_CA` -> `fr`."""
    parent = get_global("parent_exceptions").get(locale_id)
    if parent is None:
        lang, region, script, _variant = parse_locale(locale_id)
        if region:
            parent = f"{lang}_{script}" if script else lang
        elif script and _inherits_from_language(lang, script):
            parent = lang
    return None if parent in (None, "root") else parent


class _Inherited:
    """Each locale's names with those it inherits, as Babel resolves them (`nb`'s file names
    nothing: all comes from `no`; `zh_Hant_HK` respells a few of `zh_Hant`'s). Files are
    kept until `forget`, called between languages: keeping all ~1,100 peaked at 28 MB."""

    def __init__(self) -> None:
        self._own: dict[str, _Names] = {}
        self._resolved: dict[str, _Names] = {}

    def forget(self) -> None:
        self._own.clear()
        self._resolved.clear()

    def own(self, locale_id: str) -> _Names:
        if locale_id not in self._own:
            self._own[locale_id] = _own_data(locale_id)
        return self._own[locale_id]

    def names(self, locale_id: str) -> _Names:
        if locale_id not in self._resolved:
            parent = _parent(locale_id)
            self._resolved[locale_id] = _merged(self.names(parent) if parent else None,
                                                self.own(locale_id))  # fmt: skip
        return self._resolved[locale_id]

    def spellers(self, locale_id: str) -> Iterator[_Names]:
        """The names of `locale_id` and of each locale it inherits from: `zh_Hant_HK` is
        "中文 (繁體字, 中國香港特別行政區)" in its own data, "中文 (繁體, 中國香港特別行政區)" in
        `zh_Hant`'s, and people may write either."""
        at: str | None = locale_id
        while at is not None:
            yield self.names(at)
            at = _parent(at)


def _display_name(lang: str, script: str | None, region: str | None, names: _Names) -> str | None:
    """`Locale.get_display_name`'s spelling, "Chinese (Traditional, Taiwan)", from `names`.

    None when `names` lacks a part: unlike Babel, which would call `ann_NG` plain "Obolo" when
    Obolo's data has no name for Nigeria, and so make "Obolo" ambiguous with `ann` itself.
    """
    languages, scripts, territories = names
    name = languages.get(lang)
    details: list[str] = []
    for code, spellings in ((script, scripts), (region, territories)):
        if code:
            detail = spellings.get(code)
            if not detail:
                return None
            details.append(detail)
    if not name:
        return None
    return f"{name} ({', '.join(details)})" if details else name


def _spellings() -> Iterator[tuple[str, str]]:
    """(name, BCP 47 tag) for every locale Babel has data for, in English and in its own
    language, plus the names CLDR gives some of them ("Brazilian Portuguese", "繁體中文")."""
    known = known_languages()
    english = Locale("en")
    english_names: _Names = (english.languages, english.scripts, english.territories)
    for key, name in english.languages.items():
        if "_" in key and key.partition("_")[0] in known:
            yield name, _bcp47(key)

    inherited = _Inherited()
    last_lang = ""
    # sorted, each language's locales come together ("ff", "ff_Latn_SN", then "ffm")
    for locale_id in sorted(i for i in localedata.locale_identifiers() if _TAG.match(i)):
        lang, region, script, _variant = parse_locale(locale_id)
        if lang != last_lang:
            inherited.forget()
            last_lang = lang
        for key, name in inherited.own(locale_id)[0].items():  # "繁體中文", "français canadien"
            if key.startswith(f"{lang}_"):
                yield name, _bcp47(key)
        tag = _bcp47(locale_id)
        for names in (english_names, *inherited.spellers(locale_id)):
            name = _display_name(lang, script, region, names)
            if name:
                yield name, tag


def _fold(text: str, separators: frozenset[str] | None) -> str:
    """`text` as a lookup key: casefolded, accents and other marks dropped (NFKD), separators
    squashed. With `separators` None, every character that is no letter or digit is one."""
    kept = []
    for char in unicodedata.normalize("NFKD", text.casefold()):
        if char.isalnum():
            kept.append(char)
        elif unicodedata.category(char)[0] == "M" or separators is None or char in separators:
            continue
        else:
            kept.append(char)  # "English?": a character no name has keeps it from matching
    return "".join(kept)


@cache
def name_table() -> tuple[Mapping[str, str | None], frozenset[str]]:
    """(folded name -> BCP 47 tag, or None where two locales share it; separators).

    The separators are the characters that are no letter or digit in Babel's names (spaces,
    brackets, commas, the Tibetan tsheg...): squashing exactly those lets "chinese traditional"
    match "Chinese (Traditional)" while "English?" stays unknown.

    Built once per process, at the first value that is no code: 0.25-0.4 s (unpickling the
    ~1,100 data files Babel has), 2.4 MB at its peak and 0.3 MB kept for ~2,000 names. Going
    through `Locale(...).get_display_name` for all 1,100 locales took 5 s and kept 200 MB.
    """
    table: dict[str, str | None] = {}
    separators: set[str] = set()
    for name, tag in _spellings():
        key = _fold(name, None)
        if not key:
            continue
        separators.update(
            c
            for c in unicodedata.normalize("NFKD", name.casefold())
            if not c.isalnum() and unicodedata.category(c)[0] != "M"
        )
        table[key] = tag if table.get(key, tag) == tag else None
    return table, frozenset(separators)


def _code(raw: str) -> str | None:
    """`fr_fr` -> `fr-FR`, `zh_hant_tw` -> `zh-Hant-TW`; None when it is no language code."""
    match = _TAG.match(raw)
    if not match:
        return None
    lang = match["lang"].lower()
    script = match["script"]
    region = match["region"]
    if lang not in known_languages():
        # ISO 639-2 and retired codes as CLDR maps them ("deu", "fra", "jpn", "iw", "in"): they
        # were no language, and a German speaker exported as "deu" was invited in the default.
        # Only here, for codes Babel doesn't know, so a known code pays nothing for it.
        alias = _aliases().get(lang) if len(lang) == 3 or lang in _RETIRED else None
        if alias is None:
            return None
        # CLDR's alias may add a script (hbs -> sr_Latn) or a region (cnr -> sr_ME, prs ->
        # fa_AF), each kept in its own place; what the value spells itself wins (prs_AF, cnr_RS)
        lang, aliased_script, aliased_region = alias
        if lang not in known_languages():
            return None
        script = script or aliased_script
        region = region or aliased_region
    parts = [lang]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


_RETIRED = frozenset({"iw", "in", "ji", "jw"})  # Hebrew, Indonesian, Yiddish, Javanese's old codes


@lru_cache(maxsize=1)
def _aliases() -> dict[str, tuple[str, str | None, str | None]]:
    """CLDR's language aliases as (language, script, region), loaded once, when first needed.

    Parsed with Babel rather than split at "_": an alias names a script (`hbs` -> `sr_Latn`)
    or a region (`cnr` -> `sr_ME`), and reading "ME" as a script stored "sr-Me", a tag no BCP 47
    reader takes. An alias Babel can't parse is left out, so its code stays unknown.
    """
    aliases: dict[str, tuple[str, str | None, str | None]] = {}
    for code, alias in get_global("language_aliases").items():
        try:
            lang, region, script, _variant = parse_locale(alias)
        except ValueError:
            continue
        aliases[code] = (lang, script, region)
    return aliases


# A POSIX locale's codeset and modifier ("en_US.UTF-8", "de_DE@euro", as system tools write
# them): the tag before them is the language
_POSIX_TAIL = re.compile(r"(?<=[A-Za-z0-9])[.@][A-Za-z0-9_.@-]*\Z")

# The POSIX modifiers that name a script (glibc's sr_RS@latin, uz_UZ@cyrillic, sd_IN@devanagari):
# dropped with the codeset, sr_RS@latin became sr-RS, which CLDR reads as Cyrillic. Others
# (@euro, @valencia) say nothing of the language's script and are dropped.
_MODIFIER_SCRIPTS = {"latin": "Latn", "cyrillic": "Cyrl", "devanagari": "Deva"}


def _posix(text: str) -> str | None:
    """`en_US.UTF-8` -> `en-US`, `sr_RS@latin` -> `sr-Latn-RS`; None when `text` has no
    codeset or modifier, or what comes before them is no code.

    Only for a value that isn't a plain code, so codes pay nothing for the modifier. A script
    the code spells itself (`sr_Latn_RS@cyrillic`) or its alias adds wins over the modifier.
    """
    tail = _POSIX_TAIL.search(text)
    if tail is None:
        return None
    code = _code(text[: tail.start()])
    if code is None or "@" not in tail.group():
        return code
    script = _MODIFIER_SCRIPTS.get(tail.group().partition("@")[2].partition(".")[0].lower())
    lang, _, rest = code.partition("-")
    if script is None or len(rest.partition("-")[0]) == 4:  # no script named, or one spelled
        return code
    return "-".join((lang, script, rest)) if rest else f"{lang}-{script}"


@lru_cache(maxsize=4096)
def normalize_locale(raw: str) -> str | None:
    """A BCP 47 tag for a code (`FR`, `pt_br`) or a name ("Français", "Portuguese (Brazil)").

    None for anything else, and for a name two locales share: the caller then uses the
    workspace default and counts a warning, which beats inviting someone in a guessed language.
    """
    text = raw.strip()
    if len(text) > MAX_NAME:  # no code or name is this long; first, as _POSIX_TAIL costs the
        return None  # square of a long run of its characters (32 KB of "a.": 7 s a cell)
    code = _code(text) or _posix(text)
    if code is not None:
        return code
    if not any(c.isalpha() for c in text):
        return None
    table, separators = name_table()
    return table.get(_fold(text, separators))
