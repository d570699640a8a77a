"""Invite templates: every locale renders, HTML escapes, text doesn't, share links decode."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.email import TEMPLATE_LOCALES, choose_locale, render_invite
from bot.email.render import template_environment
from tests.email.invites import REFERRAL_LINK, make_invite

REQUIRED_LOCALES = {"en", "fr", "de", "es", "pt-BR", "ja", "zh-TW", "it", "nl", "sv", "da", "nb",
                    "ru"}  # fmt: skip


def share_links(text: str) -> dict[str, str]:
    """The share URLs of a rendered text body, by where they lead."""
    found = re.findall(
        r"(mailto:\S+|https://twitter\.com/\S+|https://www\.facebook\.com/\S+|"
        r"https://wa\.me/\S+)",
        text,
    )
    return {
        "email": next(u for u in found if u.startswith("mailto:")),
        "x": next(u for u in found if "twitter.com" in u),
        "facebook": next(u for u in found if "facebook.com" in u),
        "whatsapp": next(u for u in found if "wa.me" in u),
    }


def test_template_locales_are_discovered_from_the_folder() -> None:
    assert set(TEMPLATE_LOCALES) >= REQUIRED_LOCALES
    assert not any(locale.startswith("_") for locale in TEMPLATE_LOCALES)


@pytest.mark.parametrize("locale", TEMPLATE_LOCALES)
def test_every_locale_renders_everything_an_invite_needs(locale: str) -> None:
    invite = make_invite(locale=locale, first_name="Ana", store_name="Lumen")
    rendered = render_invite(invite)

    assert (rendered.locale, rendered.fell_back) == (locale, False)
    assert "\n" not in rendered.subject and "Ana" in rendered.subject
    assert "Lumen" in rendered.subject
    for body in (rendered.text, html.unescape(rendered.html)):
        for value in ("Ana", "Lumen", invite.offer, REFERRAL_LINK, invite.unsubscribe_url):
            assert value in body, (locale, value)
    assert f'<html lang="{locale}">' in rendered.html
    assert f'href="{html.escape(REFERRAL_LINK)}"' in rendered.html
    assert f'href="{html.escape(invite.unsubscribe_url)}"' in rendered.html
    links = share_links(rendered.text)
    for url in links.values():
        assert html.escape(url) in rendered.html  # the same link, escaped as an attribute


@pytest.mark.parametrize("locale", sorted(set(TEMPLATE_LOCALES) - {"en"}))
def test_every_locale_is_translated(locale: str) -> None:
    english = render_invite(make_invite(locale="en"))
    rendered = render_invite(make_invite(locale=locale))
    english_lines = set(english.text.splitlines())
    translated = [line for line in rendered.text.splitlines() if line in english_lines]
    # Only language-free lines (the offer, links, X/Facebook/WhatsApp) may match English.
    assert all(
        not line.strip() or "://" in line or "Give 10%" in line or line.startswith("--")
        for line in translated
    ), translated
    assert rendered.subject != english.subject


def test_html_escapes_names_and_the_text_keeps_them_as_typed() -> None:
    invite = make_invite(first_name="<script>x</script>", store_name="Ben & Jerry's")
    rendered = render_invite(invite)

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;x&lt;/script&gt;" in rendered.html
    assert "Ben &amp; Jerry&#39;s" in rendered.html
    assert "<script>x</script>" in rendered.text
    assert "Ben & Jerry's" in rendered.text
    assert rendered.subject.startswith("<script>x</script>")


def test_only_html_templates_are_autoescaped() -> None:
    autoescape = template_environment().autoescape
    assert callable(autoescape)
    assert autoescape("fr/invite.html.j2") is True
    assert autoescape("fr/invite.txt.j2") is False
    assert autoescape("fr/invite.subject.j2") is False
    assert autoescape("_layout/share.j2") is False


def test_share_links_are_url_encoded_and_decode_to_the_link() -> None:
    rendered = render_invite(make_invite(locale="en", store_name="Ben & Jerry's"))
    links = share_links(rendered.text)
    share_text = "I love Ben & Jerry's! Here's a treat for your first order:"

    mailto = urlsplit(links["email"])
    assert mailto.scheme == "mailto" and mailto.path == ""
    mail = parse_qs(mailto.query)
    assert mail["subject"] == ["A gift for you from Ben & Jerry's"]
    assert mail["body"] == [f"{share_text} {REFERRAL_LINK}"]
    assert "+" not in links["email"]  # mailto (RFC 6068) wants %20 for spaces

    tweet = parse_qs(urlsplit(links["x"]).query)
    assert tweet == {"text": [share_text], "url": [REFERRAL_LINK]}
    assert links["x"].startswith("https://twitter.com/intent/tweet?text=")

    facebook = urlsplit(links["facebook"])
    assert (facebook.netloc, facebook.path) == ("www.facebook.com", "/sharer/sharer.php")
    assert parse_qs(facebook.query) == {"u": [REFERRAL_LINK]}

    whatsapp = urlsplit(links["whatsapp"])
    assert (whatsapp.netloc, whatsapp.path) == ("wa.me", "/")
    assert parse_qs(whatsapp.query) == {"text": [f"{share_text} {REFERRAL_LINK}"]}


def test_non_ascii_share_text_is_percent_encoded_utf8() -> None:
    rendered = render_invite(make_invite(locale="ja", store_name="東京ストア"))
    tweet = share_links(rendered.text)["x"]
    assert tweet.isascii()
    assert parse_qs(urlsplit(tweet).query)["text"][0].startswith("東京ストア")


def test_subject_is_one_line_whatever_the_name() -> None:
    rendered = render_invite(make_invite(first_name="Ann\r\nBcc: victim@example.org"))
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_a_missing_first_name_becomes_the_start_of_the_address() -> None:
    rendered = render_invite(make_invite(first_name="  ", to_email="jo.smith@example.org"))
    assert rendered.text.startswith("Bonjour jo.smith,")


@pytest.mark.parametrize(
    ("contact", "default", "expected"),
    [
        ("fr", "en", ("fr", False)),
        ("fr-CA", "en", ("fr", False)),
        ("fr_FR", "de", ("fr", False)),
        ("EN-us", "fr", ("en", False)),
        ("pt", "en", ("pt-BR", False)),  # Babel alone would say pt_PT
        ("pt-br", "en", ("pt-BR", False)),
        ("zh-Hant", "en", ("zh-TW", False)),
        ("zh-HK", "en", ("zh-TW", False)),
        ("zh_TW", "en", ("zh-TW", False)),
        ("zh-Hans-HK", "en", ("zh-CN", False)),  # the script wins over the country
        ("zh_Hans_TW", "en", ("zh-CN", False)),
        ("zh-Hant-CN", "en", ("zh-TW", False)),
        ("ja-JP", "en", ("ja", False)),
        ("xx", "de", ("de", True)),
        ("xx", "fr-CA", ("fr", True)),
        (None, "de", ("de", False)),
        ("", "es", ("es", False)),
        (None, "pt", ("pt-BR", False)),
        ("sv", "ko", ("sv", False)),
        # Danish, Norwegian and Russian customers got English ("fell back"); "no" and
        # Nynorsk are served in Bokmål
        ("da-DK", "en", ("da", False)),
        ("no", "en", ("nb", False)),
        ("nn-NO", "en", ("nb", False)),
        ("ru_RU", "en", ("ru", False)),
        ("xx", "ko", ("en", True)),  # a default without templates: English
        (None, "ko", ("en", True)),
        # a bare language takes the workspace's variant of it (a Taiwanese shop's "zh"
        # customers got Simplified Chinese); one naming its script or region keeps its own
        ("zh", "zh-TW", ("zh-TW", False)),
        ("zh", "en", ("zh-CN", False)),
        ("zh-CN", "zh-TW", ("zh-CN", False)),
        ("zh-Hans", "zh-TW", ("zh-CN", False)),
        ("pt", "pt-BR", ("pt-BR", False)),
    ],
)
def test_choose_locale(contact: str | None, default: str, expected: tuple[str, bool]) -> None:
    assert choose_locale(contact, default) == expected


def test_an_unknown_locale_renders_in_the_default_and_says_so() -> None:
    rendered = render_invite(make_invite(locale="xx", default_locale="de"))
    assert (rendered.locale, rendered.fell_back) == ("de", True)
    assert rendered.text.startswith("Hallo François,")


@pytest.mark.parametrize("locale", TEMPLATE_LOCALES)
def test_an_invite_without_an_offer_promises_none(locale: str) -> None:
    """The offer is optional (the campaign form and `campaign create` leave it empty): the
    invite said "enjoy this offer:" over an empty box (an indented blank line in the text)."""
    with_offer = render_invite(make_invite(locale=locale, first_name="Ana", store_name="Lumen"))
    without = render_invite(make_invite(locale=locale, first_name="Ana", store_name="Lumen",
                                        offer=""))  # fmt: skip
    offer_intro = with_offer.text.splitlines()[2]  # greeting, blank line, intro
    intro = without.text.splitlines()[2]
    assert offer_intro not in without.text and html.escape(offer_intro) not in without.html
    assert "Lumen" in intro and html.escape(intro) in without.html
    assert "    \n" not in without.text and "#fef3c7" not in without.html  # no offer box
    assert without.text.splitlines()[4] == with_offer.text.splitlines()[6]  # the link label
    if locale != "en":  # translated
        assert intro != render_invite(make_invite(locale="en", offer="")).text.splitlines()[2]


@pytest.mark.parametrize("locale", ["en", "de", "ja", "ru"])
@pytest.mark.parametrize("name", ["שרה", "محمد"])
def test_a_right_to_left_first_name_doesnt_turn_the_subject_around(locale: str, name: str) -> None:
    """A subject line has no direction of its own: mail clients take the first strong
    letter's, and one opening with a Hebrew or Arabic name was laid out right to left,
    words and punctuation reordered. The name is isolated (U+2068 … U+2069)."""
    subject = render_invite(make_invite(locale=locale, first_name=name)).subject
    assert f"\u2068{name}\u2069" in subject
    assert render_invite(make_invite(locale=locale, first_name="Ana")).subject.count(
        "\u2068") == 0  # fmt: skip


@pytest.mark.parametrize(("locale", "unsubscribe"), [
    ("en", "Unsubscribe: https://"), ("fr", "Se désabonner : https://"),
    ("ja", "配信停止：https://"), ("zh-TW", "取消訂閱：https://"),
])  # fmt: skip
def test_the_text_part_puts_each_language_s_own_colon_after_its_labels(
    locale: str, unsubscribe: str
) -> None:
    """The text part's layout wrote an ASCII colon after two labels in every language:
    "Se désabonner: …" where French writes " :", "配信停止: …" where Japanese writes "："."""
    text = render_invite(make_invite(locale=locale)).text
    assert any(line.startswith(unsubscribe) for line in text.splitlines()), text


def test_an_isolated_name_stays_out_of_the_share_links_and_the_title() -> None:
    """A right-to-left store name's isolates went into the text a customer shares with
    friends ("I love \u2068חנות הספרים\u2069!") and into the page title."""
    rendered = render_invite(make_invite(store_name="חנות הספרים", locale="en"))
    for line in rendered.text.splitlines():
        if line.startswith("- "):
            assert "%E2%81%A8" not in line and "%E2%81%A9" not in line, line
    assert "<title>חנות הספרים</title>" in rendered.html


@pytest.mark.parametrize(("locale", "first", "last", "subject", "greeting"), [
    ("ja", "悠斗", "佐藤", "佐藤悠斗様、", "佐藤悠斗様"),
    ("zh-CN", "小明", "王", "王小明，与好友分享", "王小明，您好："),
    ("zh-TW", "小明", "王", "王小明，與好友分享", "王小明 您好："),
])  # fmt: skip
def test_japanese_and_chinese_invites_address_the_family_name_first(
    locale: str, first: str, last: str, subject: str, greeting: str
) -> None:
    """Japanese and Chinese invites greeted by the given name alone ("悠斗様"), which is
    over-familiar to a customer there: the family name goes first, as those languages write
    a name (no space between CJK names), in the subject, the text and the HTML."""
    rendered = render_invite(make_invite(locale=locale, first_name=first, last_name=last))

    assert rendered.subject.startswith(subject)
    assert rendered.text.splitlines()[0] == greeting
    assert f'<p style="margin:0 0 16px;">{greeting}</p>' in rendered.html


@pytest.mark.parametrize(("first", "last", "greeting"), [
    ("John", "Smith", "John Smith様"),  # a Latin-script name as its owner writes it
    ("Ada", "田中", "Ada 田中様"),  # not CJK only: as the import reads "Ada 田中" back
    ("悠斗", "", "悠斗様"),  # no family name: the given name
    ("", "佐藤", "佐藤様"),  # no given name: the family name (as polite)
    ("yuto.sato", "佐藤", "佐藤様"),  # the import's stand-in for no given name: the same
    (" ", " ", "yuto.sato様"),  # neither: the start of the address, as before
])  # fmt: skip
def test_a_japanese_greeting_without_a_whole_cjk_name(first: str, last: str,
                                                      greeting: str) -> None:  # fmt: skip
    rendered = render_invite(make_invite(locale="ja", to_email="yuto.sato@example.jp",
                                         first_name=first, last_name=last))  # fmt: skip
    assert rendered.text.splitlines()[0] == greeting
    assert rendered.subject.startswith(f"{greeting}、")


@pytest.mark.parametrize("locale", sorted(set(TEMPLATE_LOCALES) - {"ja", "zh-CN", "zh-TW"}))
def test_other_languages_still_greet_by_the_first_name(locale: str) -> None:
    """The family name is for the languages that address by it: the rest render as before."""
    with_last = render_invite(make_invite(locale=locale, last_name="Dupont"))
    assert with_last == render_invite(make_invite(locale=locale))
    assert "Dupont" not in with_last.text and "Dupont" not in with_last.subject


def test_a_right_to_left_whole_name_is_isolated_in_a_japanese_invite() -> None:
    """The whole name is isolated as one (its own order, a space between), as the first name
    was; the page title and share links still show no isolates."""
    rendered = render_invite(make_invite(locale="ja", first_name="שרה", last_name="כהן",
                                         store_name="חנות"))  # fmt: skip
    assert rendered.subject.startswith("\u2068שרה כהן\u2069様、")
    assert rendered.text.startswith("\u2068שרה כהן\u2069様\n")
    assert "\u2068שרה כהן\u2069様</p>" in rendered.html
    assert "<title>חנות</title>" in rendered.html
    assert all("%E2%81%A8" not in url for url in share_links(rendered.text).values())


_SCOPES = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_bidi_controls_in_a_name_never_reorder_the_rest_of_the_invite(locale: str) -> None:
    """A right-to-left override in a Latin name ("\u202eevil": no right-to-left letter, so
    never isolated) turned the rest of the subject and greeting around, and a stray PDI in a
    Hebrew name closed the isolate around it early. Scope-opening and closing controls are
    dropped from names; a right-to-left name is still isolated, as one."""
    rendered = render_invite(make_invite(locale=locale, first_name="\u202eevil",
                                         last_name="", store_name="Shop\u2066"))  # fmt: skip
    for part in (rendered.subject, rendered.text, rendered.html):
        assert not set(part) & set(_SCOPES), part
    assert "evil" in rendered.subject and "Shop" in rendered.subject

    hebrew = render_invite(make_invite(locale=locale, first_name="שרה\u2069 x\u202b",
                                       store_name="חנות\u2069\u202e"))  # fmt: skip
    assert "\u2068שרה x\u2069" in hebrew.subject and "\u2068חנות\u2069" in hebrew.subject
    for part in (hebrew.subject, hebrew.text, hebrew.html):
        # only our own isolates, each opened and closed once per value
        assert not set(part) & set(_SCOPES) - {"\u2068", "\u2069"}, part
        assert part.count("\u2068") == part.count("\u2069"), part
    assert "<title>חנות</title>" in hebrew.html  # the title and share links: no controls
    assert all("%E2%80%AE" not in line and "%E2%81%A9" not in line
               for line in hebrew.text.splitlines() if line.startswith("- "))  # fmt: skip


def test_a_right_to_left_mark_in_a_name_is_kept_inside_its_isolate() -> None:
    """RLM and LRM are strong characters without a scope: they can't reach past the isolate,
    and right-to-left names use them to place punctuation, so they stay."""
    subject = render_invite(make_invite(locale="en", first_name="Ana\u200f")).subject
    assert subject.startswith("\u2068Ana\u200f\u2069")
