"""Which legacy code page a CSV that isn't UTF-8 was written in.

A file that isn't UTF-8 was written in its computer's code page: Excel's "CSV" on Windows
writes the system's ANSI code page, old Mac tools Mac Roman, and the bytes alone don't say
which. reading.py hands the lines holding non-ASCII bytes to `legacy_encoding`, which reads
them in each candidate and keeps the reading whose words look like words.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.words import listed


class UnknownCodePage(ValueError):
    """No code page reads the file's words plausibly, or two do equally: the message says to
    save it as CSV UTF-8."""


# --- legacy code pages ---------------------------------------------------------------------
# A file that isn't UTF-8 was written in its computer's code page: Excel's "CSV" on Windows
# writes the system's ANSI code page (cp1252 in Western Europe and the Americas, Shift-JIS in
# Japan, GBK in China, cp1250 in Central Europe...), old Mac tools Mac Roman. The bytes alone
# don't say which; reading Japanese as cp1252 stored "悠斗" as "—I“l". So the lines holding
# non-ASCII bytes (EVIDENCE_BYTES of them, from the first) are read in each code page below,
# and the reading whose words look like words wins. charset-normalizer was tried first: on a
# few short names it took GBK for Korean and cp1252 for cp1250 or cp775, so the judgement is
# ours, and knows what names look like.

EVIDENCE_BYTES = 16 * 1024
# (codec, what a person calls it), most likely first: a tie between readings that differ only
# in Latin letters goes to the earliest (cp1252, as before: "Muñoz" is also cp1250's "Muńoz").
LEGACY_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("cp1252", "Western European (Windows-1252)"),
    ("cp1250", "Central European (Windows-1250)"),
    ("cp1254", "Turkish (Windows-1254)"),
    ("cp1257", "Baltic (Windows-1257)"),
    ("mac_roman", "Mac Roman"),
    ("cp1251", "Cyrillic (Windows-1251)"),
    ("cp1253", "Greek (Windows-1253)"),
    ("cp1255", "Hebrew (Windows-1255)"),
    ("cp1256", "Arabic (Windows-1256)"),
    ("cp874", "Thai (Windows-874)"),
    ("cp932", "Japanese (Shift-JIS)"),
    ("gb18030", "Simplified Chinese (GBK)"),
    ("big5", "Traditional Chinese (Big5)"),
    ("cp949", "Korean (EUC-KR)"),
)
_LATIN_READINGS = frozenset({"utf-8", "cp1252", "cp1250", "cp1254", "cp1257", "mac_roman"})
MIN_PLAUSIBLE = 0.5  # below this share of plausible words in every reading, we can't tell
_TIE = 0.02  # readings this close in score are as plausible as each other
_KOREAN_MIN_SYLLABLES = 8  # see _korean_over_lookalikes
# scripts with capitals and without, among the single-byte code pages': see
# _caseless_over_lowercase
_CASED = frozenset({"CYRILLIC", "GREEK"})
_CASELESS = frozenset({"HEBREW", "ARABIC", "THAI"})

SAVE_AS_UTF8 = "Save it as CSV UTF-8 (in Excel: File › Save As › CSV UTF-8) and import that."
UNREADABLE_ENCODING = (
    "This file is not UTF-8, and its accented or non-Latin characters don't read as words in "
    f"any encoding we know, so we won't guess. {SAVE_AS_UTF8}"
)


@dataclass(frozen=True, slots=True)
class _Alphabet:
    """How a language written in a Latin code page spells its words: its non-ASCII lowercase
    letters, the ASCII letters it doesn't write, and where some letters can't stand. What a
    code page misread gives breaks these: Czech's "Zdeněk" read as cp1252 is "Zdenìk", and no
    language writes both k and ì inside a word; Turkish's "Muş" is "Muþ", and Icelandic, the
    only language with þ, never ends a word with it."""

    letters: frozenset[str]
    pages: frozenset[str]  # the code pages its computers write ("CSV" in Excel on Windows)
    absent: frozenset[str] = frozenset()  # ASCII letters it doesn't write
    final: frozenset[str] = frozenset()  # letters it writes only at the end of a word
    not_initial: frozenset[str] = frozenset()  # letters no word starts with
    not_final: frozenset[str] = frozenset()  # letters no word ends with
    before_consonant: frozenset[str] = frozenset()  # letters never followed by a vowel

    def spells(self, word: str) -> bool:
        """Whether `word` (lowercase letters only, ASCII or not) is spelled in this alphabet."""
        for i, char in enumerate(word):
            if char.isascii():
                if char in self.absent:
                    return False
                continue
            if char not in self.letters:
                return False
            after = word[i + 1 : i + 2]
            if ((char in self.final and after) or (char in self.not_initial and not i)
                    or (char in self.not_final and not after)
                    or (char in self.before_consonant and after in _VOWELS)):  # fmt: skip
                return False
        return True


_WESTERN = "cp1252 mac_roman"
_CENTRAL = "cp1250"


def _alphabet(letters: str, pages: str, absent: str = "", **where: str) -> _Alphabet:
    return _Alphabet(frozenset(letters), frozenset(pages.split()), frozenset(absent),
                     **{k: frozenset(v) for k, v in where.items()})  # fmt: skip


_VOWELS = frozenset("aeiouıöüâîû")  # what Turkish's ğ follows; what no Western è precedes
# Languages written in Latin code pages. French, Catalan and Dutch write è before a
# consonant only (cp1250's "Kučera" read as cp1252 is "Kuèera"); Italian writes its accents
# on a word's last vowel; Icelandic (and Faroese) doesn't write c, q, w or z, starts no word
# with ð and ends none with þ; Turkish starts none with ğ, Czech none with ů (Gaelic's Ùig
# read as cp1250 is "Ůig"); Gaelic has eighteen letters.
_ALPHABETS = (
    _alphabet("àâæçéèêëîïôœùûüÿ", _WESTERN, before_consonant="è"),  # French
    _alphabet("äöüßé", _WESTERN),  # German
    _alphabet("áéíóúñüï", _WESTERN),  # Spanish, Galician
    _alphabet("áâãàçéêíóôõú", _WESTERN),  # Portuguese
    _alphabet("àèéìíîòóùú", _WESTERN, "jkwxy", final="àèéìíîòóùú"),  # Italian
    _alphabet("àçèéíïòóúü·", _WESTERN, before_consonant="è"),  # Catalan
    _alphabet("åäöæøéü", _WESTERN),  # Danish, Norwegian, Swedish, Finnish
    _alphabet("áðéíóúýþæö", _WESTERN, "cqwz", not_initial="ð", not_final="þ"),  # Icelandic
    _alphabet("éëïöüáèóêôûâ", _WESTERN, before_consonant="è"),  # Dutch, Afrikaans
    _alphabet("áéíóöőúüű", _CENTRAL),  # Hungarian
    _alphabet("ąćęłńóśźż", _CENTRAL, "qvx"),  # Polish
    _alphabet("áčďéěíňóřšťúůýž", _CENTRAL, not_initial="ů"),  # Czech
    _alphabet("áäčďéíĺľňóôŕšťúýž", _CENTRAL),  # Slovak
    _alphabet("čćđšž", _CENTRAL),  # Croatian, Slovene, Bosnian
    _alphabet("ăâîșşțţ", _CENTRAL),  # Romanian
    _alphabet("çğıöşü", "cp1254", "qwx", not_initial="ğ"),  # Turkish
    _alphabet("ąčęėįšųūž", "cp1257", "qwx"),  # Lithuanian
    _alphabet("āčēģīķļņšūž", "cp1257", "qwxy"),  # Latvian
    _alphabet("äõöüšž", "cp1257"),  # Estonian
    _alphabet("ëç", f"{_WESTERN} {_CENTRAL}"),  # Albanian
    _alphabet("àáèéìíòóùú", _WESTERN, "jkqvwxyz"),  # Scottish and Irish Gaelic
)
_NOT_LETTERS = re.compile(r"[^\w]|[\d_]")  # between the parts of a word ("Frýdek-Místek")
# Between words: spaces, the delimiters, ASCII and CJK punctuation (Japanese 、。「」, fullwidth).
_WORD_BREAK = re.compile(
    "[\\s,;|\"()\\[\\]{}<>/\\\\:=+*&^%$#!?~`@\u3000-\u303f\uff01-\uff0f\uff1a-\uff20"
    "\uff3b-\uff40\uff5b-\uff65]+"
)
_OPENERS = "“‘«¿¡„‚‹•–—…©'-."
_CLOSERS = "”’“‘»›•–—…™®©'-."  # “ and ‘ close German quotes („Stammkunde“)
_NUMERIC_SIGNS = frozenset("€£¥¢°²³¹½¼¾ºª×±")  # next to a digit, or ending a word (m², 5°)
_JOINERS = frozenset("’·–׳״")  # O’Brien, l·l, Mon–Fri, Hebrew's ג׳ורג׳ and ת״א
# Unicode calls them letters, but they are signs: a unit's ("5µg" in a notes column, which
# as a Greek letter made a whole file Big5) and the ordinals ("Nº 5", "4ºC", "1ª"; as letters
# of no alphabet they made a Spanish file Central European, Muñoz stored as Muńoz).
_SIGN_LETTERS = frozenset("µºª")
# Bytes misread are told apart by their words, so a mid-word dash ("Mon–Fri") counts against
# cp1252 as it does against any reading. Among the Latin code pages, which share most letters,
# a reading other than cp1252 wins when cp1252's is mostly implausible and it is nearly all
# words, or when it reads the words the two spell differently better (_outreads); otherwise
# the file stays cp1252, the reader's choice before code pages were told apart.
_LATIN_STAYS = 0.75
_LATIN_SWITCHES = 0.9
_DECISIVE_WORDS = 1  # see _outreads
_MIN_WORD = 3  # letters of a file's one word that may switch it to another Latin code page


@functools.lru_cache(maxsize=4096)
def _system(char: str) -> str:
    """The writing system of a letter: LATIN, CYRILLIC, Han, Kana, HANGUL, Fullwidth..."""
    name = unicodedata.name(char, "")
    first = name.partition(" ")[0]
    if first in ("HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA") or name.startswith(
        "HALFWIDTH KATAKANA"
    ):
        return "Kana"
    if first == "CJK" or name.startswith("IDEOGRAPHIC"):
        return "Han"
    if first in ("FULLWIDTH", "HALFWIDTH"):
        return "Fullwidth"
    return first


_CJK_SYSTEMS = frozenset({"Han", "Kana", "HANGUL", "Fullwidth"})
_JAPANESE = frozenset({"Han", "Kana", "Fullwidth"})
_CHINESE_OR_KOREAN = (frozenset({"Han", "Fullwidth"}), frozenset({"HANGUL", "Fullwidth"}))


def _code(char: str, encoding: str) -> int:
    """`char`'s code in a CJK standard, or 0 when the standard lacks it."""
    try:
        return int.from_bytes(char.encode(encoding), "big")
    except UnicodeEncodeError:
        return 0


# Whether a character is one that text in this code page commonly holds: JIS level 1 kanji
# and kana, GB2312 level 1 hanzi, Big5's frequent characters, KS X 1001's Hangul. Read in the
# wrong code page, CJK bytes give rare characters (GBK's extensions, level 2, UHC's rare
# syllables), which is what tells the readings apart.
_COMMON: dict[str, Callable[[int], bool]] = {
    "cp932": lambda c: 0xA1 <= c <= 0xDF or 0x8140 <= c <= 0x84BE or 0x889F <= c <= 0x9872,
    "gb18030": lambda c: 0xA1A1 <= c <= 0xA3FE or 0xB0A1 <= c <= 0xD7F9,
    "big5": lambda c: 0xA140 <= c <= 0xA3BF or 0xA440 <= c <= 0xC67E,
    "cp949": lambda c: 0xA1A1 <= c <= 0xA3FE or 0xB0A1 <= c <= 0xC8FE,
}
_STANDARD = {"cp932": "shift_jis", "gb18030": "gb2312", "big5": "big5", "cp949": "euc_kr"}
_HALFWIDTH_KANA = ("\uff61", "\uff9f")  # Shift-JIS's bytes 0xA1-0xDF


def _cjk_common(encoding: str, chars: list[str]) -> bool:
    """At least half of a word's CJK characters are common in `encoding`'s language.

    Halfwidth katakana don't vouch for the kanji beside them: they are Shift-JIS's single
    bytes, which Thai's and Arabic's letters read as ("ใจดี" is "罟ｴﾕ", a rare kanji the
    kana made a common word)."""
    if encoding not in _COMMON:
        return True  # a UTF-8 reading: any character is what was written
    common, standard = _COMMON[encoding], _STANDARD[encoding]
    chars = [c for c in chars if not _HALFWIDTH_KANA[0] <= c <= _HALFWIDTH_KANA[1]] or chars
    return 2 * sum(1 for c in chars if common(_code(c, standard))) >= len(chars)


def _edges_stripped(word: str) -> str:
    return word.lstrip(_OPENERS).rstrip(_CLOSERS)


# Hebrew's five letters with a final form (ך ם ן ף ץ) take it at the end of a word only.
_HEBREW_FINAL_INSIDE = re.compile("[ךםןףץ][\u05d0-\u05ea]")
_THAI_CONSONANTS = ("\u0e01", "\u0e2e")  # ก to ฮ
_THAI_LEADING_VOWELS = frozenset("เแโใไ")  # written before the consonant they follow
_THAI_FOLLOWING_VOWELS = frozenset("ะาำๅ")  # written after it
_THAI_VOWEL_SIGNS = frozenset("\u0e31\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39")  # ั ิ ี ึ ื ุ ู
_THAI_TONE_MARKS = frozenset("\u0e48\u0e49\u0e4a\u0e4b\u0e4c")  # ่ ้ ๊ ๋ and ์


def _thai_consonant(char: str) -> bool:
    """`char` ("" past either end of the word) is a Thai consonant."""
    return len(char) == 1 and _THAI_CONSONANTS[0] <= char <= _THAI_CONSONANTS[1]


def _thai_out_of_place(core: str, i: int) -> bool:
    """Whether the Thai character at `i` can't stand where it does: a vowel written before
    its consonant (เ แ โ ใ ไ) comes before one, a vowel written after it doesn't start a word,
    and a sign above or below sits on a consonant, a tone mark on a vowel sign on one too
    (ที่, ศักดิ์), never two vowel signs. Arabic's letters read as Thai break these ("سعيد"
    is "ำฺํฯ"), as do halfwidth katakana (ﾅｶﾑﾗ is "ลถัื")."""
    char, before = core[i], core[i - 1] if i else ""
    if char in _THAI_LEADING_VOWELS:
        return not _thai_consonant(core[i + 1 : i + 2])
    if char in _THAI_FOLLOWING_VOWELS:
        return not before or before.isascii()
    if unicodedata.category(char)[0] != "M":
        return False
    if _thai_consonant(before):
        return char == "\u0e4e"  # yamakkan: Pali's, not a name's
    on_a_vowel_sign = before in _THAI_VOWEL_SIGNS and _thai_consonant(core[i - 2 : i - 1])
    return not (char in _THAI_TONE_MARKS and on_a_vowel_sign)


def _unit(head: str) -> bool:
    """`head` ends with at most two ASCII letters, as a unit does (m, cm, ft), not a name."""
    return len(head) - len(head.rstrip(string.ascii_letters)) <= 2


def _out_of_place(core: str, i: int) -> bool:
    """Whether the non-ASCII character at `i` can't stand where it does in a word."""
    char, before = core[i], core[i - 1] if i else ""
    after = core[i + 1 : i + 2]
    if char.isalpha():
        if char in "ğĞ":
            # Turkish's soft g only ever follows a vowel: Icelandic's ð read as cp1254 does
            # not ("Hörður" as "Hörğur", "Sigurðsson" as "Sigurğsson")
            return before.lower() not in _VOWELS
        # an uppercase letter inside a lowercase word: Mac Roman's é read as cp1252 ("RenŽe"),
        # cp1252's ó read as Mac Roman ("WÛjcik")
        return char.isupper() and before.isalpha() and (before.islower() or after.islower())
    category = unicodedata.category(char)
    if category[0] == "M":
        # a vowel sign or tone mark sits on a letter of its script: cp1252's é read as Thai
        # (a Thai tone mark on the vowel sign on one, ที่, is _thai_out_of_place's to judge)
        return (before.isascii() or not before.isalpha()) and before not in _THAI_VOWEL_SIGNS
    if category == "Nd":
        return not "\uff10" <= char <= "\uff19"  # fullwidth digits only: Thai ๕ among letters
    if char in _NUMERIC_SIGNS:
        # "£ukasz": cp1250's Ł read as cp1252; "m²", "5°", "€50" are fine, and so is a unit's
        # sign ending a word ("10m²", "cm³"), but not a name's ("Pawe³": cp1250's Paweł)
        unit = not after and before.isascii() and _unit(core[:i])
        return not (before.isdigit() or after.isdigit() or unit)
    return not (char in _JOINERS and before.isalpha())  # a symbol among letters: "I“l"


def _a_number_or_sign(core: str) -> bool:
    """A word without letters reads as one when it is a sign, with digits or not ("§", "±5",
    "50€"); "∞∂" or "°¶" are bytes of letters read in the wrong code page."""
    signs = [c for c in core if not c.isascii() and unicodedata.category(c) != "Nd"]
    return len(signs) <= 1 and not any(unicodedata.category(c)[0] == "C" for c in signs)


def _plausible(word: str, encoding: str) -> bool:
    """Whether `word` (holding non-ASCII) reads as a word, a name or a number: letters of one
    writing system (Latin letters of one language), with no symbol between them."""
    core = _edges_stripped(word)
    if not any(c.isalpha() for c in core):
        return _a_number_or_sign(core)
    if any(not char.isascii() and _out_of_place(core, i) for i, char in enumerate(core)):
        return False
    letters = [c for c in core if not c.isascii() and c.isalpha() and c not in _SIGN_LETTERS]
    systems = {_system(c) for c in letters}
    ascii_letters = sum(1 for c in core if c.isascii() and c.isalpha())
    if not systems:
        return True  # ASCII letters and signs: "m²"
    if systems <= _JAPANESE or any(systems <= allowed for allowed in _CHINESE_OR_KOREAN):
        # "Ren痴e": Mac Roman's é read as Shift-JIS
        return not ascii_letters and _cjk_common(encoding, letters)
    if len(systems) > 1:
        return False  # "Renйe": cp1252's é read as cp1251
    if systems == {"GREEK"} and "ς" in core[:-1]:
        return False  # final sigma inside a word: Cyrillic's т read as Greek
    if systems == {"HEBREW"} and _HEBREW_FINAL_INSIDE.search(core):
        return False  # a final letter before another: lowercase Cyrillic's "анна" as "אםםא"
    if systems == {"THAI"} and any(_thai_out_of_place(core, i) for i in range(len(core))):
        return False  # Arabic's "منى" read as Thai: "ใไ์"
    if systems != {"LATIN"}:
        return not ascii_letters  # Cyrillic, Greek, Hebrew... don't mix in ASCII letters
    # Turkish's İ lowercases to i and a combining dot: an ASCII i, in no alphabet's list
    latin = {lower for c in letters if not (lower := c.lower()[:1]).isascii()}
    if not ascii_letters and len(latin) >= 2 and len(core) >= 3:
        return False  # "Èâàí": Cyrillic or Chinese bytes read as Latin letters
    return _spelled(core)


def _spelled(core: str) -> bool:
    """Whether every part of `core` ("Frýdek-Místek", "D'Angelo") holding a non-ASCII letter
    is spelled in one language's alphabet."""
    return bool(_spelling(_word_parts(core)))


_EVERY_ALPHABET = frozenset(range(len(_ALPHABETS)))


def _spelling(parts: Iterable[str]) -> frozenset[int]:
    """The alphabets (their places in _ALPHABETS) that spell every one of `parts`."""
    found = _EVERY_ALPHABET
    for part in parts:
        found &= _alphabets_of(part)
        if not found:
            break
    return found


@functools.lru_cache(maxsize=8192)
def _alphabets_of(part: str) -> frozenset[int]:
    """The alphabets that spell `part`: names repeat down a file, each is judged once."""
    return frozenset(i for i, alphabet in enumerate(_ALPHABETS) if alphabet.spells(part))


def _word_parts(core: str) -> list[str]:
    """The lowercase runs of letters of `core` holding a non-ASCII letter (not a sign's)."""
    letters = "".join(" " if c in _SIGN_LETTERS else c for c in core.lower())
    return [p for p in _NOT_LETTERS.split(letters) if not p.isascii()]


def _words(text: str) -> list[str]:
    return [w for w in _WORD_BREAK.split(text) if not w.isascii()]


@dataclass(frozen=True, slots=True)
class _Reading:
    encoding: str
    text: str
    score: float  # the share of its non-ASCII words that read as words


def _reading(evidence: bytes, encoding: str) -> _Reading | None:
    """`evidence` read in `encoding`, scored; None if it isn't text in that code page."""
    errors = {"utf-8": "_referral_cp1252", "cp1252": "_referral_latin1"}.get(encoding, "strict")
    try:
        text = evidence.decode(encoding, errors=errors)
    except UnicodeDecodeError:
        return None
    words = _words(text)
    # names repeat down a file: each is judged once
    plausible = sum(n for word, n in Counter(words).items() if _plausible(word, encoding))
    return _Reading(encoding, text, plausible / len(words) if words else 1.0)


def _has_letters(reading: _Reading) -> bool:
    return any(c.isalpha() for word in _words(reading.text) for c in word)


def _describe(encoding: str) -> str:
    return dict(LEGACY_ENCODINGS).get(encoding, "UTF-8")


def _systems(reading: _Reading) -> set[str]:
    """The writing systems of the reading's non-ASCII letters."""
    return {_system(c) for word in _words(reading.text) for c in word
            if not c.isascii() and c.isalpha() and c not in _SIGN_LETTERS}  # fmt: skip


def _capitalised(reading: _Reading) -> bool:
    """Some word of the reading starts with a capital letter."""
    firsts = (next((c for c in word if c.isalpha()), "") for word in _words(reading.text))
    return any(first.isupper() for first in firsts)


def _lowercase_cased(reading: _Reading) -> bool:
    """The reading is in Cyrillic or Greek, and none of its words starts with a capital."""
    systems = _systems(reading)
    return bool(systems) and systems <= _CASED and not _capitalised(reading)


def _caseless_over_lowercase(tied: list[_Reading]) -> list[_Reading]:
    """`tied` without its Cyrillic and Greek readings where no word starts with a capital,
    when one in a script without capitals (Hebrew, Arabic, Thai) is among them.

    Names and places start with a capital in Cyrillic and Greek, but a script without any has
    none to give: Hebrew's letters are the bytes of lowercase Cyrillic and Greek (cp1251 reads
    "נועה כהן" as "ретд лдп"), so a Hebrew file tied with both and was refused. Latin is left
    out: these bytes read as Latin only in words of a letter or two (more accented letters
    alone make no word), too little to go on (Shift-JIS's "嶋 儘" is Mac Roman's "ìà ò‘")."""
    if not any(_systems(r) & _CASELESS for r in tied):
        return tied
    return [r for r in tied if not _lowercase_cased(r)]


def _outreads(other: _Reading, first: _Reading) -> bool:
    """Whether a Latin reading beats the first (cp1252) one where the two read differently,
    however few those words are: at least _DECISIVE_WORDS of them read as words only in
    `other` (cp1252's "Pawe³", "Gra¿yna": a sign between letters), and none only in `first`.

    The scores alone can't tell: most of a Polish or Czech file's accented letters read as
    some Western language's in cp1252 too ("Wiœniewski", "Kuèera", "Poznañ"), so its cp1252
    reading scores high and the file stayed cp1252, Paweł stored as Pawe³. A cp1252 file
    doesn't put ³, ¹ or ¿ between letters, and one word Central European code pages read
    worse ("Núñez" as cp1250's "Ńúńez") keeps it Western."""
    if other.score < _LATIN_SWITCHES:
        return False
    theirs, ours = _words(other.text), _words(first.text)
    if len(theirs) != len(ours):  # the words don't line up (a UTF-8 reading, a no-break space)
        return False
    decisive: set[str] = set()
    for word, first_word in zip(theirs, ours, strict=True):
        if word == first_word:
            continue
        plausible, first_plausible = _plausible(word, other.encoding), _plausible(
            first_word, first.encoding)
        if first_plausible and not plausible:
            return False
        if plausible and not first_plausible:
            decisive.add(word)
    return len(decisive) >= _DECISIVE_WORDS


def _one_language(reading: _Reading, words: list[str] | None = None) -> bool:
    """Whether the alphabet of one language whose computers write the reading's code page
    spells every word of the reading holding non-ASCII Latin letters (or every one of
    `words`): a file of names from one country is written in its language, by a computer
    set up for it (Excel on Windows saves "CSV" in the system's code page).

    A code page misread scatters a file's letters over several: Lithuanian's "Šimkus
    Klaipėda" read as cp1252 is Icelandic's ð and French's ë ("Ðimkus Klaipëda"), Turkish's
    "Ayşe Yılmaz" Icelandic's þ and Czech's ý ("Ayþe Yýlmaz", Icelandic writes no z), and
    Latvian's "Mežs Šmits" read as cp1250 Romanian's ţ and Croatian's đ."""
    return _spread(reading, words) > 0


def _spread(reading: _Reading, words: list[str] | None = None) -> int:
    """How many alphabets of languages written in the reading's code page (any, for UTF-8)
    spell every word of it holding non-ASCII Latin letters (or every one of `words`); 0
    when none does, or there is no such word.

    Of two readings each spelled in one language, the one whose letters more languages
    write is the likelier: Lithuanian's "Šimkus" read as cp1250 is Croatian's "Đimkus", a
    letter of one language; š is three Baltic languages'."""
    latin = {part for word in set(_words(reading.text) if words is None else words)
             if (parts := _word_parts(_edges_stripped(word)))
             and all(_system(c) == "LATIN" for part in parts for c in part)
             for part in parts}  # fmt: skip
    if not latin:
        return 0
    return sum(1 for i in _spelling(latin) if reading.encoding == "utf-8"
               or reading.encoding in _ALPHABETS[i].pages)  # fmt: skip


def _one_language_over_cp1252(readings: list[_Reading]) -> _Reading:
    """The first (cp1252) reading, or another Latin one as plausible that one language spells
    (_one_language) and that reads every word the two spell differently as a word, which no
    one language spells as cp1252 reads them: the most plausible such, then the one whose
    letters more languages write (_spread), then the earliest."""
    first = readings[0]
    if first.encoding != "cp1252":
        return first
    others = [r for r in readings[1:] if r.encoding in _LATIN_READINGS
              and r.score >= first.score - _TIE and _one_language(r)
              and _differs_plausibly(r, first)]  # fmt: skip
    return max(others, key=lambda r: (r.score, _spread(r))) if others else first


def _differs_plausibly(other: _Reading, first: _Reading) -> bool:
    """The two readings' words line up, some differ, `other` reads each of those as a word,
    and at least one of them, as `first` reads it, is no word of any language: a file mixing
    two Western languages ("Hélène" and "Øystein": no one language spells both) keeps its
    cp1252 reading, since each of its words is some language's ("Hélčne", "Řystein" in
    cp1250); "Ayþe" is nobody's. A name with an apostrophe ("O’Brien") is nobody's word
    either way (_an_apostrophe_name)."""
    theirs, ours = _words(other.text), _words(first.text)
    if len(theirs) != len(ours):
        return False
    differing = [(w, f) for w, f in zip(theirs, ours, strict=True) if w != f]
    return (bool(differing) and all(_plausible(w, other.encoding) for w, _ in differing)
            and any(not _one_language(first, [f]) for _, f in differing
                    if not _an_apostrophe_name(f)))  # fmt: skip


def _an_apostrophe_name(word: str) -> bool:
    """Whether `word` is ASCII but for typographic apostrophes, each between a letter and a
    capital ("O’Brien", "D’Arcy", as Excel's autocorrect types them): a word of no language
    has no letters to spell, so cp1252's "O’Brien" counted against cp1252, and a small Irish
    file was read as Mac Roman's "OíBrien" (its "Seán" as "Se·n"). Mac Roman's í, which
    cp1252 reads as ’, never comes before a capital; before a lowercase letter it still
    tells ("Garc’a" is Mac Roman's García)."""
    core = _edges_stripped(word)
    return all(char.isascii() or (char == "’" and core[i - 1 : i].isalpha()
                                  and core[i + 1 : i + 2].isupper())
               for i, char in enumerate(core))  # fmt: skip


def _letters(reading: _Reading) -> set[str]:
    """The reading's non-ASCII letters, lowercased."""
    return {c.lower() for word in _words(reading.text) for c in word
            if c.isalpha() and not c.isascii()}


# cp1254's ğ, ş and ı as cp1252 reads them, and the rest of Turkish's letters, the same in both
_TURKISH_IN_CP1252 = frozenset("ðþý")
_SHARED = frozenset("çöüâîû")
_TURKISH_WORDS = 3  # see _turkish_over_cp1252


def _turkish_over_cp1252(readings: list[_Reading]) -> _Reading:
    """The first (cp1252) reading, or cp1254's when the file reads as Turkish in it.

    Turkish's ğ, ş and ı are cp1252's ð, þ and ý, letters of Icelandic, Czech and Slovak, so a
    Turkish file reads as words in cp1252 too ("Ayþe Yýlmaz", "Doðan") and stayed cp1252, its
    names stored garbled. Those languages write them among letters Turkish has no use for
    (Icelandic's á, é, í, ó, ú, æ: Jón, Guðrún, -dóttir; Czech's á, í, č, ř, š: Novák,
    Dvořák): a file whose accented letters are all Turkish's in cp1254, in at least
    _TURKISH_WORDS words that the two read differently, and every one of them a word in
    cp1254 (ğ follows a vowel, as in Turkish: Icelandic's "Hörður" is no "Hörğur"), is
    Turkish. Fewer words stay cp1252: one or two Icelandic names without an acute vowel
    ("Þorsteinn Björnsson"), or Czech ones with only ý ("Nový"), read as Turkish too."""
    first = readings[0]
    turkish = next((r for r in readings if r.encoding == "cp1254"), None)
    if first.encoding != "cp1252" or turkish is None or turkish.score < _LATIN_SWITCHES:
        return first
    letters = _letters(first)
    if not letters & _TURKISH_IN_CP1252 or not letters <= _TURKISH_IN_CP1252 | _SHARED:
        return first
    theirs, ours = _words(turkish.text), _words(first.text)
    if len(theirs) != len(ours):
        return first
    differing = set()
    for word, first_word in zip(theirs, ours, strict=True):
        if word != first_word:
            if not _plausible(word, turkish.encoding):
                return first
            differing.add(word)
    return turkish if len(differing) >= _TURKISH_WORDS else first


# What Hangul's bytes (a lead byte B0-C8, then one of A1-FE) read as in other CJK and Thai
# code pages: GB2312's level 1 hanzi, Big5's frequent characters, two Shift-JIS halfwidth
# katakana (the first of ｰ to ﾈ), a Thai consonant (ฐ to ศ) and a letter.
_KOREAN_LOOKALIKES = frozenset({"gb18030", "big5", "cp932", "cp874"})


def _korean_over_lookalikes(tied: list[_Reading]) -> _Reading | None:
    """The Korean reading, when it has _KOREAN_MIN_SYLLABLES Hangul syllables or more and
    every other reading as plausible is one Hangul's bytes always make (_KOREAN_LOOKALIKES).

    A Korean file ties with those readings: each of its syllables is a common hanzi, a
    pair of halfwidth katakana, a Thai consonant and a letter. Chinese, Japanese or Thai
    text whose every character, over that many, falls where Hangul is, is rare. Only Chinese
    was weighed so: a Korean file of a few names that also read as halfwidth katakana or
    Thai was refused, naming Japanese and Chinese and never Korean."""
    korean = next((r for r in tied if r.encoding == "cp949"), None)
    others = {r.encoding for r in tied} - {"cp949"}
    if korean is None or not others <= _KOREAN_LOOKALIKES:
        return None
    syllables = sum(1 for c in korean.text if not c.isascii() and _system(c) == "HANGUL")
    return korean if syllables >= _KOREAN_MIN_SYLLABLES else None


def _as_well_as(readings: list[_Reading]) -> str:
    """"Thai (Windows-874), Japanese (Shift-JIS) or Korean (EUC-KR)": every reading a refusal
    couldn't choose between. It named the first two only, and Korean, last of the code pages,
    was never among them."""
    unlike: list[_Reading] = []  # one of each text: code pages that read alike aren't a choice
    for reading in readings:
        if all(reading.text != other.text for other in unlike):
            unlike.append(reading)
    named = [_describe(r.encoding) for r in unlike]
    return listed(named, "or")


def _decide(readings: list[_Reading]) -> str:
    """The encoding of the most plausible reading; UnknownCodePage when none is plausible or two
    that read differently are equally so (Korean or Chinese? we don't guess).

    The first reading is the one the reader always made (cp1252, or UTF-8 with stray cp1252
    bytes): as plausible as any other, it stays, so "€100" isn't Cyrillic's "Ђ100"."""
    best = max(r.score for r in readings)
    if best < MIN_PLAUSIBLE:
        if _has_letters(readings[0]):  # words we misjudge, not bytes of no language
            return readings[0].encoding
        raise UnknownCodePage(UNREADABLE_ENCODING)
    if readings[0].score >= best - _TIE:
        chosen = _one_language_over_cp1252(readings)
        return (chosen if chosen is not readings[0] else _turkish_over_cp1252(readings)).encoding
    latin = [r for r in readings[1:] if r.encoding in _LATIN_READINGS]
    stays = readings[0].encoding in _LATIN_READINGS and readings[0].score >= _LATIN_STAYS
    if latin and (stays or max(r.score for r in latin) < _LATIN_SWITCHES):
        outreading = [r for r in latin if _outreads(r, readings[0])]
        others = [r for r in readings[1:] if r not in latin]
        if outreading:  # it takes the first reading's place: the one to beat
            best_latin = max(outreading, key=lambda r: (r.score, _spread(r)))
            readings = [best_latin, *others]
        else:
            readings = [readings[0], *others]
    best = max(r.score for r in readings)
    if readings[0].score >= best - _TIE or best < MIN_PLAUSIBLE:
        return readings[0].encoding
    tied = _caseless_over_lowercase([r for r in readings if r.score >= best - _TIE])
    first = tied[0]
    differing = [r for r in tied if r.text != first.text]
    if not differing:
        return first.encoding
    if all(r.encoding in _LATIN_READINGS for r in (first, *differing)):
        return max(tied, key=_spread).encoding  # the earliest of equals
    if (korean := _korean_over_lookalikes(tied)) is not None:
        return korean.encoding
    raise UnknownCodePage(
        f"This file is not UTF-8, and its characters read just as well as "
        f"{_as_well_as(tied)} text, so we won't guess which. {SAVE_AS_UTF8}"
    )


def legacy_encoding(evidence: bytes, *, utf8_too: bool = False) -> str:
    """The code page `evidence` (lines of a file that isn't UTF-8) was written in.

    `utf8_too`: the evidence holds UTF-8 characters among its other bytes, so reading it as
    UTF-8 with stray cp1252 bytes is a candidate too (first: the reader's old default). One
    word is too little to tell Latin code pages apart: cp1252 (or UTF-8) as before, unless
    the word reads only in a script of its own (Japanese, say), or isn't spelled in any
    language in cp1252 and is in another Latin code page (Turkish's "Kılıç", cp1252's
    "Kýlýç": Icelandic has ý but no c or ç).
    """
    candidates = [*(("utf-8",) if utf8_too else ()), *(e for e, _ in LEGACY_ENCODINGS)]
    readings = [r for e in candidates if (r := _reading(evidence, e)) is not None]
    if len(_words(evidence.decode("latin-1"))) > 1:
        return _decide(readings)
    default = "utf-8" if utf8_too else "cp1252"
    try:
        chosen = _decide(readings)
    except UnknownCodePage:
        return default
    if chosen not in _LATIN_READINGS:
        return chosen  # a script of its own
    spelled = next(r for r in readings if r.encoding == chosen)
    words = _words(spelled.text)
    letters = sum(1 for c in _edges_stripped(words[0]) if c.isalpha()) if words else 0
    if (chosen != default and readings[0].score == 0 and letters >= _MIN_WORD
            and _one_language(spelled)):  # fmt: skip
        return chosen  # the word is spelled in this Latin code page, and not in cp1252
    return default
