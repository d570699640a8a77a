"""Locale spellings: codes and language names to BCP 47 tags, from Babel's data."""

from __future__ import annotations

import io
import time

import pytest

from bot.imports import locales
from bot.imports.locales import normalize_locale
from bot.imports.reading import CsvReader
from bot.imports.rows import VALID, Classifier
from tests.imports import csv_samples as samples

# The hand-kept list Babel's data replaced (ISO 639-1 plus fil, haw, yue), minus `bh`
# (Bihari languages, a collective code CLDR doesn't list): every code people could use before
# must still be accepted.
_FORMER_LINES = (
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy",
    "da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht",
    "hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky",
    "la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny",
    "oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss",
    "st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo",
    "za zh zu fil haw yue",
)
FORMER_LANGUAGES = [code for line in _FORMER_LINES for code in line.split()]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("FR", "fr"),
        ("fr_ca", "fr-CA"),
        ("fr-CA", "fr-CA"),
        ("FR-fr", "fr-FR"),
        ("fr_FR", "fr-FR"),
        ("pt-br", "pt-BR"),
        ("zh_Hant_TW", "zh-Hant-TW"),
        ("zh_hant_tw", "zh-Hant-TW"),
        ("ZH_tw", "zh-TW"),  # kept as written: no script is guessed for a code
        ("en-us", "en-US"),
        ("EN", "en"),
        (" de ", "de"),
        ("es-419", "es-419"),
        ("tl", "tl"),  # no Babel locale (CLDR says fil), but CLDR names it: still a code
    ],
)
def test_codes_in_any_case_and_separator(raw: str, expected: str) -> None:
    assert normalize_locale(raw) == expected


@pytest.mark.parametrize("code", FORMER_LANGUAGES)
def test_every_code_the_hand_kept_list_had_is_still_known(code: str) -> None:
    assert normalize_locale(code) == code
    assert normalize_locale(code.upper()) == code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("French", "fr"),
        ("Français", "fr"),
        ("francais", "fr"),
        ("FRANÇAIS", "fr"),
        ("Deutsch", "de"),
        ("German", "de"),
        ("Spanish", "es"),
        ("Español", "es"),
        ("espanol", "es"),
        ("日本語", "ja"),
        ("Japanese", "ja"),
        ("english", "en"),
        ("Portuguese (Brazil)", "pt-BR"),
        ("portuguese brazil", "pt-BR"),
        ("Brazilian Portuguese", "pt-BR"),
        ("Português (Brasil)", "pt-BR"),
        ("portugues (brasil)", "pt-BR"),
        ("English (United States)", "en-US"),
        ("American English", "en-US"),
        ("Chinese (Traditional)", "zh-Hant"),
        ("繁體中文", "zh-Hant"),
        ("中文（繁體）", "zh-Hant"),  # fullwidth brackets, as Chinese text writes them
        ("Simplified Chinese", "zh-Hans"),
        ("Chinese (Traditional, Taiwan)", "zh-Hant-TW"),
        ("Latin American Spanish", "es-419"),
        ("  Canadian   French ", "fr-CA"),
        ("français canadien", "fr-CA"),
        ("Filipino", "fil"),
    ],
)
def test_language_names_in_english_or_their_own_language(raw: str, expected: str) -> None:
    assert normalize_locale(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Babel's nb and nn take their names from no's data (their own files have none)
        ("norsk bokmål", "nb"),
        ("Norsk bokmål (Norge)", "nb-NO"),
        ("norsk nynorsk", "nn"),
        ("norsk nynorsk (Noreg)", "nn-NO"),
        ("Norwegian Bokmål", "nb"),
        # zh_Hant_HK's own file spells Hong Kong and the script its own way
        ("中文 (繁體字, 中國香港特別行政區)", "zh-Hant-HK"),
        ("中文（繁體字，中國澳門特別行政區）", "zh-Hant-MO"),  # Macau inherits Hong Kong's
        ("中文 (繁體, 台灣)", "zh-Hant-TW"),
        ("한국어 (조선민주주의인민공화국)", "ko-KP"),
    ],
)
def test_a_language_named_as_its_own_data_inherits_it(raw: str, expected: str) -> None:
    """README promises names "in English or in the language itself": a sheet saying "norsk
    bokmål" got the workspace default language (Babel's nb data names nothing itself)."""
    assert normalize_locale(raw) == expected


def test_a_name_two_locales_share_is_neither() -> None:
    # South Ndebele (nr) and North Ndebele (nd) both call themselves isiNdebele.
    assert normalize_locale("isiNdebele") is None
    assert normalize_locale("IsiNdebele") is None
    assert (normalize_locale("South Ndebele"), normalize_locale("North Ndebele")) == ("nr", "nd")
    table, _separators = locales.name_table()
    assert table["isindebele"] is None


JUNK = ("English?", "n/a", "123", "x" * 500, "", "   ", "-", "klingon", "xx", "fr_FRANCE", "12",
        "English, French", "Frenchh", "allemand")  # fmt: skip


@pytest.mark.parametrize("raw", JUNK)
def test_anything_else_is_none(raw: str) -> None:
    assert normalize_locale(raw) is None


@pytest.mark.parametrize("raw", ["qq", "QQ-fr", "qq_FR", "und", "zxx", "mul", "bh"])
def test_codes_babel_does_not_know_are_none(raw: str) -> None:
    assert normalize_locale(raw) is None


def test_every_name_resolves_to_a_tag_that_is_itself_a_known_code() -> None:
    """What a name gives is stored and later read back as a code: it must still be one."""
    table, _separators = locales.name_table()
    tags = {tag for tag in table.values() if tag is not None}

    assert len(tags) > 1000
    assert [tag for tag in sorted(tags) if normalize_locale(tag) != tag] == []


def test_codes_do_not_build_the_name_table() -> None:
    locales.name_table.cache_clear()
    normalize_locale.cache_clear()
    try:
        assert [normalize_locale(c) for c in ("fr_FR", "EN", "pt-br")] == ["fr-FR", "en", "pt-BR"]
        assert locales.name_table.cache_info().currsize == 0
        assert normalize_locale("French") == "fr"
        assert locales.name_table.cache_info().currsize == 1
    finally:
        normalize_locale.cache_clear()


def test_a_csv_language_name_is_staged_as_its_code() -> None:
    data = samples.csv_bytes(
        [
            ["Email", "Preferred language"],
            ["ada@example.com", "French"],
            ["bob@example.com", "French"],  # the second time: from the classifier's cache
            ["cy@example.com", "Português (Brasil)"],
            ["dee@example.com", "Klingon"],
        ]
    )
    classifier = Classifier()

    with CsvReader(io.BytesIO(data)) as reader:
        staged = list(classifier.records(reader.records(), reader.columns))

    assert [(r[1], r[5], r[6], r[7]) for r in staged] == [
        ("ada@example.com", "fr", VALID, None),
        ("bob@example.com", "fr", VALID, None),
        ("cy@example.com", "pt-BR", VALID, None),
        ("dee@example.com", None, VALID,
         "Unknown locale 'Klingon': the workspace default is used"),
    ]  # fmt: skip
    assert classifier.tally.warnings == 1


@pytest.mark.parametrize(("raw", "expected"), [
    ("deu", "de"), ("ger", "de"), ("fra", "fr"), ("jpn", "ja"), ("nob", "nb"),
    ("cmn", "zh"), ("iw", "he"), ("in", "id"),
    ("en_US.UTF-8", "en-US"), ("fr_FR.UTF-8", "fr-FR"), ("de_DE@euro", "de-DE"),
    ("C", None), ("POSIX", None), ("und", None),
])  # fmt: skip
def test_three_letter_retired_and_posix_codes_are_read_as_their_language(
    raw: str, expected: str | None
) -> None:
    """ISO 639-2 ("deu", "jpn"), retired ("iw", "in") and POSIX ("en_US.UTF-8") codes, as
    other tools export them, were no language: the contact was invited in the workspace's
    default, and the import said "a locale we don't recognise"."""
    assert normalize_locale(raw) == expected


def test_a_long_cell_of_codeset_characters_costs_no_more_than_its_length() -> None:
    """A POSIX locale's tail ("en_US.UTF-8") was cut by a regex that tried again from every
    "." of a long run: 30 KB of "a." took 6-7 s of CPU per distinct cell, an import stalled by
    a hostile file. Bounded far above what a linear pass costs, so only the square fails it."""
    started = time.process_time()
    assert normalize_locale("a." * 15_000 + "!") is None
    assert time.process_time() - started < 1
    assert normalize_locale("en_US.UTF-8") == "en-US"
    assert normalize_locale("de_DE@euro") == "de-DE"


@pytest.mark.parametrize(("raw", "expected"), [
    ("cnr", "sr-ME"),  # Montenegrin: CLDR's alias is sr_ME, a region
    ("prs", "fa-AF"),  # Dari: fa_AF
    ("swc", "sw-CD"),  # Congo Swahili: sw_CD
    ("prs_AF", "fa-AF"),
])  # fmt: skip
def test_a_three_letter_code_whose_alias_names_a_region_keeps_it_a_region(
    raw: str, expected: str
) -> None:
    """CLDR aliases some codes to a language and a region (cnr -> sr_ME), not a script: the
    region was read as a script, "sr-Me", a tag no BCP 47 reader takes."""
    assert normalize_locale(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("sr_RS@latin", "sr-Latn-RS"),  # glibc's Serbian in Latin script
    ("sr_RS.UTF-8@latin", "sr-Latn-RS"),
    ("uz_UZ@cyrillic", "uz-Cyrl-UZ"),
])  # fmt: skip
def test_a_posix_script_modifier_is_the_script(raw: str, expected: str) -> None:
    """POSIX's @latin / @cyrillic modifier names the script: dropped with the codeset, a
    Latin-script Serbian contact was stored as sr-RS (Cyrillic, CLDR's default for sr)."""
    assert normalize_locale(raw) == expected
