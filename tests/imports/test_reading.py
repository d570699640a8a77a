"""CsvReader: encodings, delimiters, quoting, line numbers, headers and whole-file failures."""

from __future__ import annotations

import codecs
import io
import time
from pathlib import Path

import pytest

from bot.imports import parallel
from bot.imports.parallel import ParallelRows, file_path
from bot.imports.reading import (
    READ_BLOCK,
    SAMPLE_BYTES,
    Columns,
    ColumnsError,
    CsvFileError,
    CsvReader,
    column_order,
    detect_encoding,
    find_header,
    map_header,
)
from bot.imports.rows import Classifier
from tests.imports import code_page_corpus as corpus
from tests.imports import csv_samples as samples

Record = tuple[int, list[str] | str]


def read(data: bytes) -> tuple[CsvReader, list[Record]]:
    with CsvReader(io.BytesIO(data)) as reader:
        return reader, list(reader.records())


def people(reader: CsvReader, records: list[Record]) -> list[tuple[str, str, str]]:
    """(first, last, email) of each record, as the import would store them."""
    cols = reader.columns
    assert cols.first_name is not None and cols.last_name is not None
    out = []
    for _line, fields in records:
        assert isinstance(fields, list), fields
        out.append((fields[cols.first_name], fields[cols.last_name], fields[cols.email]))
    return out


# --- encodings -----------------------------------------------------------------------------


def test_utf8_with_bom_header_and_names_decode_cleanly() -> None:
    data = samples.csv_bytes(samples.people_rows(samples.ACCENTED_PEOPLE), bom=True)
    assert data.startswith(codecs.BOM_UTF8)

    reader, records = read(data)

    assert reader.header == ["email", "first_name", "last_name"]  # no "\ufeffemail"
    assert reader.columns == Columns(email=0, first_name=1, last_name=2, locale=None)
    assert people(reader, records) == samples.ACCENTED_PEOPLE
    assert [line for line, _ in records] == [2, 3, 4, 5, 6]


def test_utf8_without_bom() -> None:
    rows = samples.people_rows([*samples.ACCENTED_PEOPLE, ("雪", "田中", "yuki@example.jp")])
    reader, records = read(samples.csv_bytes(rows))

    assert people(reader, records) == [*samples.ACCENTED_PEOPLE, ("雪", "田中", "yuki@example.jp")]


def test_cp1252_export_decodes_accents_and_smart_quotes() -> None:
    data = samples.csv_bytes(samples.people_rows(samples.ACCENTED_PEOPLE), encoding="cp1252")
    assert b"Jos\xe9" in data and b"\x93Bobby\x94" in data  # really cp1252, not UTF-8

    reader, records = read(data)

    assert people(reader, records) == samples.ACCENTED_PEOPLE


def test_stray_cp1252_byte_in_a_later_row_of_a_small_utf8_file() -> None:
    """One row pasted from a cp1252 tool must not turn every UTF-8 name into mojibake."""
    data, stray_line = samples.utf8_with_stray_cp1252()
    assert len(data) < SAMPLE_BYTES

    _, records = read(data)

    names = {line: fields[1] for line, fields in records if isinstance(fields, list)}
    assert names == {2: "José", 3: "Zoë", stray_line: "Renée", 5: "Jürgen", 6: "雪"}


def test_stray_cp1252_byte_beyond_the_sample_decodes_as_cp1252() -> None:
    data, stray_line = samples.utf8_with_stray_cp1252(filler_rows=3000)
    assert data.index(b"Ren\xe9e") > SAMPLE_BYTES

    _, records = read(data)

    names = {line: fields[1] for line, fields in records if isinstance(fields, list)}
    assert names[stray_line - 2] == "José"
    assert names[stray_line - 1] == "Zoë"
    assert names[stray_line] == "Renée"
    assert names[stray_line + 1] == "Jürgen"
    assert names[stray_line + 2] == "雪"
    assert len(records) == 3000 + 5


# The encoding is decided on the whole file, not on its first SAMPLE_BYTES (issue 7).

LATE_PEOPLE = [("Zoë", "Brontë", "zoe@example.com"), ("José", "Muñoz", "jose@example.com")]


def late_names(data: bytes) -> tuple[CsvReader, dict[int, tuple[str, str]]]:
    reader, records = read(data)
    return reader, {line: (f[1], f[2]) for line, f in records if isinstance(f, list)}


def test_utf8_whose_first_accent_comes_after_200_kb_of_ascii() -> None:
    data, first = samples.late_non_ascii(LATE_PEOPLE)
    assert data.index("Zoë".encode()) > 3 * SAMPLE_BYTES

    reader, names = late_names(data)

    assert reader.encoding == "utf-8"
    assert (names[first], names[first + 1]) == (("Zoë", "Brontë"), ("José", "Muñoz"))


def test_utf8_with_an_early_stray_cp1252_byte_and_late_accents_is_utf8() -> None:
    """The sample alone (one cp1252 byte, no UTF-8) looks like cp1252; the file is UTF-8."""
    early = b"renee@example.fr,Ren\xe9e,Dupont\r\n"
    data, first = samples.late_non_ascii(LATE_PEOPLE, early=early)
    assert data[:SAMPLE_BYTES].decode("utf-8", errors="replace").count("\ufffd") == 1

    reader, names = late_names(data)

    assert reader.encoding == "utf-8"
    assert names[2] == ("Renée", "Dupont")
    assert (names[first], names[first + 1]) == (("Zoë", "Brontë"), ("José", "Muñoz"))


def test_cp1252_whose_first_accent_comes_late_is_cp1252() -> None:
    data, first = samples.late_non_ascii(samples.ACCENTED_PEOPLE, encoding="cp1252")
    assert b"Jos\xe9" in data[3 * SAMPLE_BYTES :]

    reader, names = late_names(data)

    assert reader.encoding == "cp1252"
    assert [names[first + i] for i in range(5)] == [(f, la) for f, la, _ in samples.ACCENTED_PEOPLE]


def test_a_character_split_across_the_decision_blocks_is_still_utf8() -> None:
    head = "email,first_name\n" + "\n".join(samples.ascii_filler(READ_BLOCK - 200)) + "\n"
    last = "zoe@example.com,Zo"
    pad = READ_BLOCK - 1 - len(head) - len(last) - len("@example.com,Pad\n")
    data = f"{head}{'p' * pad}@example.com,Pad\n{last}ë\n".encode()
    assert data[READ_BLOCK - 1 : READ_BLOCK + 1] == "ë".encode()

    reader, records = read(data)

    assert reader.encoding == "utf-8"
    assert records[-1][1] == ["zoe@example.com", "Zoë"]


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("Zoë,雪,😀\n".encode(), ("utf-8", "_referral_cp1252")),
        (b"Ren\xe9e,\x93Bobby\x94\n", ("cp1252", "_referral_latin1")),
        (b"Ren\xe9e," + "Zoë\n".encode(), ("utf-8", "_referral_cp1252")),  # stray byte first
        (b"plain,ascii\n", ("utf-8", "_referral_cp1252")),
        (b"ends inside a character \xe2\x82", ("cp1252", "_referral_latin1")),
    ],
    ids=["utf8", "cp1252", "stray-then-utf8", "ascii", "truncated"],
)
def test_encoding_decision_over_one_byte_blocks(tail: bytes, expected: tuple[str, str]) -> None:
    """Every character split between blocks, as a file read in blocks may split one."""
    blocks = [tail[i : i + 1] for i in range(len(tail))]

    assert detect_encoding(b"email,first_name\n", blocks) == expected
    assert detect_encoding(b"email,first_name\n" + tail) == expected


def test_the_decision_starts_where_the_stream_is() -> None:
    data, first = samples.late_non_ascii(LATE_PEOPLE)
    stream = io.BytesIO(b"\xff\xfe junk before the CSV\n" + data)
    stream.seek(len(b"\xff\xfe junk before the CSV\n"))

    with CsvReader(stream) as reader:
        records = {line: f for line, f in reader.records()}

    assert reader.encoding == "utf-8"
    assert records[first][1] == "Zoë"


def test_a_big_file_parsed_by_the_child_process_decodes_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 4 * 1024 * 1024)  # 16 MB in use
    data = samples.big_mixed_utf8()
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    assert len(data) >= parallel.PARALLEL_MIN_BYTES

    with path.open("rb") as stream:
        assert file_path(stream) == path
        reader = CsvReader(stream)
        inline = list(Classifier().records(reader.records(), reader.columns))
        reader.close()
    child = list(ParallelRows(path, []))

    assert child == inline
    names = {row[1]: row[3] for row in child}
    assert (names["renee@example.fr"], names["zoe@example.com"]) == ("Renée", "Zoë")
    assert names["yuki@example.jp"] == "雪"


@pytest.mark.parametrize("encoding", ["utf-32-le", "utf-32-be"])
def test_utf32_is_refused_by_name(encoding: str) -> None:
    data = samples.utf32(samples.people_rows(samples.ACCENTED_PEOPLE), encoding)
    assert data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE))

    with pytest.raises(CsvFileError) as failure:
        CsvReader(io.BytesIO(data))

    assert str(failure.value) == (
        "This file is UTF-32 encoded; save it as UTF-8 (CSV UTF-8 in Excel) and try again."
    )


@pytest.mark.parametrize("encoding", list(samples.LEGACY_PEOPLE))
def test_a_legacy_code_page_reads_as_written(encoding: str) -> None:
    """Excel's "CSV" on a Japanese, Chinese, Central European or old Mac system: Shift-JIS's
    "悠斗" was read as cp1252's "—I“l"."""
    people_ = samples.LEGACY_PEOPLE[encoding]
    data = samples.csv_bytes(samples.people_rows(people_), encoding=encoding)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    reader, records = read(data)

    assert people(reader, records) == people_


@pytest.mark.parametrize("encoding", list(samples.CASELESS_PEOPLE))
def test_a_hebrew_arabic_or_thai_export_reads_as_written(encoding: str) -> None:
    """Excel's "CSV" on an Israeli, Arab or Thai system was refused: Hebrew's letters read as
    well as lowercase Cyrillic ("נועה" as cp1251's "ретд"), Arabic's as Thai, Thai's as
    Shift-JIS's halfwidth katakana."""
    people_ = samples.CASELESS_PEOPLE[encoding]
    data = samples.csv_bytes(samples.people_rows(people_), encoding=encoding)

    reader, records = read(data)

    assert reader.encoding == encoding and people(reader, records) == people_


@pytest.mark.parametrize("names", [["נועה", "כהן"], ["נועה"]], ids=["first-and-last", "first"])
def test_a_hebrew_file_of_one_short_line_reads_as_hebrew(names: list[str]) -> None:
    """Two names were refused, one stored as cp1252's "ðåòä"."""
    header = ["email", "first_name", "last_name"][: 1 + len(names)]
    data = samples.csv_bytes([header, ["noa@example.co.il", *names]], encoding="cp1255")

    _, records = read(data)

    assert records == [(2, ["noa@example.co.il", *names])]


@pytest.mark.parametrize("rows", [
    [["Александр", "Иванов", "постоянный клиент"], ["Наталья", "Смирнова", "скидка 10%"]],
    [["Γιώργος", "Παπαδόπουλος", "τακτικός πελάτης"], ["Μαρία", "Οικονόμου", "Αθήνα"]],
    [["мария", "смирнова", "москва"], ["иван", "петров", "постоянный клиент"]],
], ids=["russian", "greek", "russian-in-lowercase"])  # fmt: skip
def test_cyrillic_and_greek_exports_keep_their_reading(rows: list[list[str]]) -> None:
    """Hebrew, Arabic or Thai wins a tie with Cyrillic or Greek only when no word of theirs
    starts with a capital, and names do; a Russian file all in lowercase has letters that
    cp1255 lacks (я) or that no Hebrew word holds where they are (п, read as final ן)."""
    encoding = "cp1253" if rows[0][0] == "Γιώργος" else "cp1251"
    table = [["email", "first_name", "last_name", "notes"],
             *([f"{i}@example.com", *row] for i, row in enumerate(rows))]  # fmt: skip

    reader, records = read(samples.csv_bytes(table, encoding=encoding))

    assert reader.encoding == encoding and [fields for _, fields in records] == table[1:]


@pytest.mark.parametrize("data", [
    "email,first_name,last_name\r\nahmed@example.ae,أحمد,سعيد\r\n".encode("cp1256"),
    "email,first_name,last_name\r\nsomchai@example.co.th,สมชาย,บุญมา\r\n".encode("cp874"),
    "email,first_name,last_name\r\ntakashi@example.jp,ﾀｶｼ,ﾀﾅｶ\r\n".encode("shift_jis"),
], ids=["arabic-or-gbk", "thai-or-halfwidth-katakana", "halfwidth-katakana-or-thai"])  # fmt: skip
def test_a_short_line_that_reads_as_well_in_another_script_is_still_refused(data: bytes) -> None:
    """Two names in Arabic are GBK's common "猛阆 于硐" too, Thai's "สมชาย บุญมา" Shift-JIS's
    "ﾊﾁｪﾒﾂ ｺﾘｭﾁﾒ", and those halfwidth katakana are Thai: no capitals tell them apart."""
    with pytest.raises(CsvFileError, match="not UTF-8") as failure:
        CsvReader(io.BytesIO(data))
    assert "won't guess" in str(failure.value) and "CSV UTF-8" in str(failure.value)


@pytest.mark.parametrize("note", ["5µg twice a day", "10 µm", "Paid 10€ — “VIP”", "5° ½",
                                  "Calle Mayor Nº 5", "keep at 4ºC", "„Stammkunde“",
                                  "Open Mon–Fri", "10m² terrace", "5 cm³ vial", "£50 voucher"])
def test_signs_in_a_western_file_keep_it_western(note: str) -> None:
    """Signs are no letters of another script: "5µg" (µ is a letter to Unicode) read as
    Big5's 5笑 made the whole cp1252 file Big5."""
    data = f"email,first_name,notes\r\nann@example.com,Ann,{note}\r\n".encode("cp1252")
    reader, records = read(data)
    assert reader.encoding == "cp1252"
    assert [fields for _, fields in records] == [["ann@example.com", "Ann", note]]


@pytest.mark.parametrize(("name", "note"), [
    (("Begoña", "Muñoz"), "Calle Mayor Nº 5"),  # cp1250's "Nş" read better: ñ stored as ń
    (("Renée", "Roy"), "Open Mon–Fri"),  # Mac Roman's "MonñFri" read better: RenÈe
])  # fmt: skip
def test_a_western_file_whose_signs_read_as_letters_elsewhere_stays_western(
    name: tuple[str, str], note: str
) -> None:
    data = ("email,first_name,last_name,notes\r\n"
            f"a@example.com,{name[0]},{name[1]},{note}\r\n"
            f"b@example.com,Bob,Ray,{note}\r\n").encode("cp1252")  # fmt: skip
    reader, records = read(data)
    assert reader.encoding == "cp1252" and records[0][1][1:3] == list(name)


# Central European and Turkish files whose cp1252 reading looked plausible word by word:
# most of their accented letters are some Western language's in cp1252 too (ś as French œ,
# ń as Spanish ñ, Turkish ş and ı as Icelandic þ and ý), so they were stored as cp1252.
CP1250_PEOPLE = [("Paweł", "Wójcik", "Gdańsk"), ("Grażyna", "Procházka", "Ostrava"),
                 ("Lukáš", "Wiśniewski", "Praha"), ("Petr", "Novotný", "České Budějovice"),
                 ("Wojciech", "Kučera", "Poznań"), ("Jan", "Novák", "Brno")]  # fmt: skip
CP1254_PEOPLE = [("Çağrı", "Yılmaz", "İstanbul"), ("Ayşe", "Kılıç", "İzmir"),
                 ("İsmail", "Doğan", "Eskişehir"), ("Özlem", "Şahin", "Muğla")]  # fmt: skip
CP1257_PEOPLE = [("Jonas", "Kazlauskas", "Vilnius"), ("Rūta", "Žukauskas", "Klaipėda"),
                 ("Eglė", "Stankevičius", "Šiauliai"), ("Mārtiņš", "Bērziņš", "Rīga")]  # fmt: skip


@pytest.mark.parametrize(("encoding", "rows"), [
    ("cp1250", CP1250_PEOPLE), ("cp1250", CP1250_PEOPLE[:1]), ("cp1254", CP1254_PEOPLE),
    ("cp1257", CP1257_PEOPLE),
], ids=["polish-and-czech", "one-polish-row", "turkish", "baltic"])  # fmt: skip
def test_a_central_european_turkish_or_baltic_export_reads_as_written(
    encoding: str, rows: list[tuple[str, str, str]]
) -> None:
    """"Paweł" was stored as cp1252's "Pawe³" (a unit's sign to the reader, like "m³"),
    "Wiśniewski" as "Wiœniewski", "İsmail" as "Ýsmail" (the reader lowercased İ to i and a
    dot, in no alphabet)."""
    table = [["email", "first_name", "last_name", "city"],
             *([f"{i}@example.com", *row] for i, row in enumerate(rows))]  # fmt: skip

    reader, records = read(samples.csv_bytes(table, encoding=encoding))

    assert reader.encoding == encoding and [fields for _, fields in records] == table[1:]


# Every word of these reads as a word in cp1252 too: Turkish's ş, ğ and ı are Icelandic's þ
# and ð and Czech's ý there ("Ayþe Yýlmaz", "Doðan"), and Czech's č is a French è ("Kuèera").
CP1254_AS_ICELANDIC = [("Ayşe", "Yılmaz", "Aydın"), ("Mehmet", "Doğan", "Muş"),
                       ("Zeynep", "Şahin", "Sivas"), ("Emre", "Akın", "Çorum"),
                       ("Özlem", "Yazıcı", "Düzce")]  # fmt: skip
CP1250_AS_FRENCH = [("Petr", "Kučera", "Brno"), ("Jana", "Sedláček", "Kladno"),
                    ("Eva", "Čech", "Plzeň"), ("Pavel", "Marek", "Praha")]  # fmt: skip


@pytest.mark.parametrize(("encoding", "rows"), [
    ("cp1254", CP1254_AS_ICELANDIC), ("cp1250", CP1250_AS_FRENCH),
], ids=["turkish", "czech"])  # fmt: skip
def test_an_export_whose_every_word_reads_in_cp1252_too_reads_as_written(
    encoding: str, rows: list[tuple[str, str, str]]
) -> None:
    """Stored as "Ayþe Yýlmaz" and "Kuèera": no word told the code pages apart. Now a Turkish
    file whose accented letters are all Turkish's in cp1254 is Turkish, and è before a vowel
    is no French, Catalan or Dutch word's (Gaelic writes no k)."""
    table = [["email", "first_name", "last_name", "city"],
             *([f"{i}@example.com", *row] for i, row in enumerate(rows))]  # fmt: skip

    reader, records = read(samples.csv_bytes(table, encoding=encoding))

    assert reader.encoding == encoding and [fields for _, fields in records] == table[1:]


# Short exports whose words read as words in cp1252 or in another Latin code page too, so
# they were stored as cp1252 ("Kýlýç", "Zdenìk", "Ðimkus", "Kârlis"): now a word no language
# spells in cp1252 (Icelandic writes no c, Italian its accents only on a word's last vowel,
# no word starts with ð), tells them apart, even a file of one word. Not yet: a file each
# of whose words some Western language spells as cp1252 reads it ("Kazlauskienë" and
# "Radviliðkis", "Maþeika"), which a mixed Western list looks like too ("Hélène", "Øystein"):
# those stay cp1252 (see test_western_exports_whose_letters_are_central_european_too_stay_western).
@pytest.mark.parametrize(("encoding", "rows"), [
    ("cp1254", [("Murat", "Kılıç", "Kocaeli")]),
    ("cp1254", [("Ayşe", "Yılmaz", "Ordu")]),
    ("cp1254", [("Ali", "Sarı", "Hatay"), ("Sultan", "Bulut", "Kahramanmaraş")]),
    ("cp1250", [("Zdeněk", "Blažek", "Cheb")]),
    ("cp1250", [("Helena", "Němcová", "Prostějov"), ("Petr", "Hájek", "Brno")]),
    ("cp1257", [("Ona", "Šimkus", "Palanga")]),
    ("cp1257", [("Inese", "Mežs", "Talsi"), ("Kārlis", "Šmits", "Dobele")]),
    ("cp1257", [("Helen", "Šmidt", "Kuressaare"), ("Tiina", "Kõiv", "Pärnu")]),
    ("mac_roman", [("Francisco", "Sánchez", "Toulon")]),
    ("mac_roman", [("Manuel", "Côté", "Stuttgart")]),
], ids=["turkish-one-word", "turkish-one-row", "turkish-two-rows", "czech-one-row",
        "czech-two-rows", "lithuanian-one-word", "latvian-two-rows", "estonian-two-rows",
        "mac-roman-one-word", "mac-roman-one-row"])  # fmt: skip
def test_a_short_export_reads_in_its_code_page(
    encoding: str, rows: list[tuple[str, str, str]]
) -> None:
    table = [["email", "first_name", "last_name", "city"],
             *([f"{i}@example.com", *row] for i, row in enumerate(rows))]  # fmt: skip

    reader, records = read(samples.csv_bytes(table, encoding=encoding))

    assert reader.encoding == encoding and [fields for _, fields in records] == table[1:]


@pytest.mark.parametrize("language", corpus.WESTERN_NAMES)
def test_generated_western_exports_are_not_misread(language: str) -> None:
    """Generated name files of 1-12 rows (tests/imports/code_page_corpus.py, whose full run
    measures every language): telling Central European, Turkish and Baltic files apart must
    cost no Western file its reading. Scottish Gaelic's "Dùn Èideann" (è before a vowel,
    which French never writes) made a Gaelic file cp1250."""
    lang = corpus.LANGUAGES[language]
    texts = list(corpus.files(lang, 60, seed=7, max_rows=12))
    misread = [text for text in texts if corpus.outcome(text, lang.encoding) != "read"]
    assert not misread, misread[:3]


@pytest.mark.parametrize("rows", [
    [("Arnþór", "Sigurðsson", "Reykjavík"), ("Guðrún", "Jónsdóttir", "Hafnarfjörður"),
     ("Eyþór", "Þorsteinsson", "Alþingi"), ("Sigurður", "Magnússon", "Egilsstaðir")],
    [("Begoña", "Núñez", "A Coruña"), ("Bjørn", "Sæther", "Tromsø"), ("Loïc", "Dubœuf", "5° Nord"),
     ("Íñigo", "Ibáñez", "10m² terrace")],
    # no acute vowel, so every accented letter is Turkish's in cp1254 too: but Turkish's ğ
    # only ever follows a vowel ("Sigurður" is no "Sigurğur")
    [("Sigurður", "Þorsteinsson", "Höfn"), ("Hörður", "Guðmundsson", "Garður"),
     ("Þröstur", "Björnsson", "Hveragerði")],
    [("Loïc", "Mosè", "Forlì"), ("Màiri", "MacLeòid", "Ùig"), ("Agnès", "Lefèvre", "Bergès")],
    # Gaelic writes è before a vowel, which French doesn't: Czech's č read as cp1250
    [("Màiri", "MacLeòid", "Dùn Èideann")],
    [("Gunnar", "Krause", "Steòrnabhagh"), ("Anaïs", "Dupré", "Cáceres")],
    [("Zoë", "Müller", "Forlì"), ("Íñigo", "Ibáñez", "Reykjavík"), ("Bjørn", "Sæther", "Tromsø")],
    # two Western languages in one file, no one of which spells every word: each word is
    # still some Western language's ("Hélène" French, "Øystein" Norwegian), so the file stays
    # cp1252 (cp1250 read them "Hélčne", "Řystein")
    [("Hélène", "Dubois", "Paris"), ("Øystein", "Berg", "Oslo")],
    [("Renée", "Lefèvre", "Lyon"), ("Søren", "Dahl", "Aarhus")],
    [("Agnès", "Martin", "Nantes"), ("Bjørn", "Olsen", "Bergen")],
    [("Åsa", "Berg", "Umeå"), ("Hélène", "Roux", "Nîmes")],
    [("Niccolò", "Rossi", "Roma"), ("Søren", "Dahl", "Odense")],
], ids=["icelandic", "spanish-norwegian-french", "icelandic-without-acutes",
        "italian-gaelic-french", "scottish-gaelic", "gaelic-french-spanish",
        "from-everywhere", "french-norwegian", "french-danish", "french-norwegian-2",
        "swedish-french", "italian-danish"])  # fmt: skip
def test_western_exports_whose_letters_are_central_european_too_stay_western(
    rows: list[tuple[str, str, str]],
) -> None:
    """Icelandic þ and ð are Turkish ş and ğ in cp1254, Norwegian ø Czech ř in cp1250: a word
    that reads only in cp1252 ("Núñez" is cp1250's "Ńúńez") keeps the file Western."""
    table = [["email", "first_name", "last_name", "city"],
             *([f"{i}@example.com", *row] for i, row in enumerate(rows))]  # fmt: skip

    reader, records = read(samples.csv_bytes(table, encoding="cp1252"))

    assert reader.encoding == "cp1252" and [fields for _, fields in records] == table[1:]


def test_gbk_whose_bytes_make_a_utf8_character_is_still_gbk() -> None:
    """GBK's 伟 is UTF-8's ΰ: one UTF-8 character among many bytes that aren't UTF-8 doesn't
    make the file UTF-8 with stray bytes."""
    people_ = samples.LEGACY_PEOPLE["gbk"]
    data = samples.csv_bytes(samples.people_rows(people_), encoding="gbk")
    assert "伟".encode("gbk").decode("utf-8") == "ΰ"

    assert people(*read(data)) == people_


@pytest.mark.parametrize(
    "data",
    [
        "email,first_name,last_name\r\nmin@example.kr,민준,김\r\n".encode("euc_kr"),  # GBK too
        b"email,first_name\r\na@example.com,\xa4\xa7\xb6\xae\r\nb@example.com,\xb0\xb6\xa9\r\n",
    ],
    ids=["ambiguous", "unreadable"],
)
def test_a_code_page_that_cant_be_told_is_refused_not_guessed(data: bytes) -> None:
    with pytest.raises(CsvFileError, match="not UTF-8") as failure:
        CsvReader(io.BytesIO(data))
    assert "won't guess" in str(failure.value) and "CSV UTF-8" in str(failure.value)


def test_excel_unicode_text_utf16_le_bom_tab_separated() -> None:
    more = [*samples.ACCENTED_PEOPLE, ("一郎", "鈴木", "ichiro@example.jp")]
    data = samples.excel_unicode_text(samples.people_rows(more))
    assert data.startswith(codecs.BOM_UTF16_LE) and b"\t\x00" in data

    reader, records = read(data)

    assert reader.delimiter == "\t"
    assert reader.header == ["email", "first_name", "last_name"]
    assert people(reader, records) == more
    assert [line for line, _ in records] == [2, 3, 4, 5, 6, 7]


def test_utf16_be_with_bom() -> None:
    rows = samples.people_rows(samples.ACCENTED_PEOPLE)
    reader, records = read(samples.csv_bytes(rows, encoding="utf-16-be", bom=True))

    assert people(reader, records) == samples.ACCENTED_PEOPLE


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_utf16_without_bom(encoding: str, delimiter: str) -> None:
    rows = samples.people_rows(samples.ACCENTED_PEOPLE)
    data = samples.csv_bytes(rows, encoding=encoding, delimiter=delimiter)
    assert not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))

    reader, records = read(data)

    assert reader.delimiter == delimiter
    assert people(reader, records) == samples.ACCENTED_PEOPLE


def test_utf16_le_without_bom_with_a_japanese_name() -> None:
    """一 (U+4E00) is b"\\x00\\x4e" in UTF-16 LE: a NUL in an even position."""
    more = [*samples.ACCENTED_PEOPLE, ("一郎", "鈴木", "ichiro@example.jp")]
    data = samples.csv_bytes(samples.people_rows(more), encoding="utf-16-le", delimiter="\t")

    reader, records = read(data)

    assert people(reader, records) == more


# --- delimiters, quoting, line numbers ---------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(delimiter: str) -> None:
    rows = [
        ["email", "first_name", "last_name", "company"],
        ["ada@example.com", "Ada", "Lovelace, Countess", "Babbage; Co"],
        ["bob@example.com", "Bob", "Tab\tby", "Pipe | Works"],
    ]
    reader, records = read(samples.csv_bytes(rows, delimiter=delimiter))

    assert reader.delimiter == delimiter
    assert records == [(2, rows[1]), (3, rows[2])]


@pytest.mark.parametrize(
    ("header", "row", "delimiter"),
    [
        # a German or French export: `;` between columns, a comma inside a quoted heading
        (b'E-Mail;"Nachname, Vorname"', b'max@example.de;"Muster, Max"', ";"),
        (b'"Nom, Pr\xc3\xa9nom";Email', b'"Dupont, Marie";marie@example.fr', ";"),
        # and the other way round: commas between columns, `;` inside a quoted heading
        (b'Email,"Tags; a; b"', b'ada@example.com,"vip; gold"', ","),
        (b'Email,"He said ""a; b; c"""', b"ada@example.com,x", ","),
    ],
)
def test_delimiters_inside_a_quoted_heading_dont_choose_the_delimiter(
    header: bytes, row: bytes, delimiter: str
) -> None:
    """The header line's delimiters were counted quoted or not: `E-Mail;"Nachname, Vorname"`
    has as many commas as semicolons, and the tie went to the comma, so the whole file was
    refused ("No email column found. Columns found: 'E-Mail;"Nachname', 'Vorname"'")."""
    reader, records = read(header + b"\r\n" + row + b"\r\n")

    assert reader.delimiter == delimiter
    assert len(reader.header) == 2 and len(records) == 1
    assert "@" in records[0][1][reader.columns.email]  # type: ignore[index]


def test_quoted_commas_and_newlines_keep_physical_line_numbers() -> None:
    data = (
        b"email,first_name,last_name,note\r\n"  # 1
        b'ada@example.com,"Lovelace, Ada",Byron,plain\r\n'  # 2
        b'bob@example.com,Bob,"Multi\r\nline\r\nname",x\r\n'  # 3-5
        b'cy@example.com,Cy,"He said ""hi""",y\r\n'  # 6
        b"\r\n"  # 7
        b'dee@example.com,Dee,"LF\nonly",z\r\n'  # 8-9
        b"eve@example.com,Eve,Last,no newline at end"  # 10
    )

    _, records = read(data)

    assert records == [
        (2, ["ada@example.com", "Lovelace, Ada", "Byron", "plain"]),
        (3, ["bob@example.com", "Bob", "Multi\r\nline\r\nname", "x"]),
        (6, ["cy@example.com", "Cy", 'He said "hi"', "y"]),
        (8, ["dee@example.com", "Dee", "LF\nonly", "z"]),
        (10, ["eve@example.com", "Eve", "Last", "no newline at end"]),
    ]


def test_quoted_newline_in_the_header_row_and_blank_lines_before_it() -> None:
    data = (
        b"\n\n"  # 1-2
        b'"email",first_name,"last\nname"\n'  # 3-4
        b"ada@example.com,Ada,Lovelace\n"  # 5
        b"\n"  # 6
        b"bob@example.com,Bob,B\n"  # 7
    )

    reader, records = read(data)

    assert reader.header == ["email", "first_name", "last\nname"]
    assert [line for line, _ in records] == [5, 7]


@pytest.mark.parametrize(
    ("above", "first_line"),
    [
        (b"sep=;\r\n", 3),  # Excel's delimiter line
        (b'"sep=;"\r\n', 3),
        (b"Customer export 2024-05-01\r\n\r\n", 4),  # a report's title and a blank line
        (b"Customer export\r\nStore: Acme; Paris\r\n;;\r\n", 5),
    ],
    ids=["sep", "quoted-sep", "title", "title-lines"],
)
def test_lines_above_the_header_are_skipped(above: bytes, first_line: int) -> None:
    """A line above the header made it the header: "No email column found. Columns found:
    'sep=' ..." and nothing could be imported."""
    data = above + b"email;first_name\r\nann@example.com;Ann\r\nbob@example.com;Bob\r\n"

    reader, records = read(data)

    assert (reader.delimiter, reader.header) == (";", ["email", "first_name"])
    assert records == [(first_line, ["ann@example.com", "Ann"]),
                       (first_line + 1, ["bob@example.com", "Bob"])]  # fmt: skip


def test_a_quote_that_never_closes_before_rows_with_quoted_commas_is_still_malformed() -> None:
    """Shopify quotes a Tags cell holding commas: Bob's line has more delimiters than the
    header, so it didn't count as a row, and Ann's runaway note swallowed it unreported."""
    data = (b"email,first_name,last_name,tags,note\r\n"
            b'a@example.com,Ann,Lee,"vip, wholesale","Called re: order\r\n'
            b'b@example.com,Bob,Ray,"vip, retail",\r\n'
            b'c@example.com,Cat,Fox,"new, retail",\r\n')  # fmt: skip
    _, records = read(data)
    assert isinstance(records[0][1], str) and "Malformed" in records[0][1], records[0]


def test_a_data_row_holding_the_word_email_is_not_taken_for_the_header() -> None:
    """The header's names aren't recognised (Map columns is for that); a row whose Channel
    cell says "email" was: the rows above it vanished and Channel was read as addresses."""
    data = (b"Contact,Name,Channel\r\nann@example.com,Ann,email\r\n"
            b"bob@example.com,Bob,sms\r\n")
    with pytest.raises(CsvFileError, match="No email column found"):
        read(data)


def test_without_a_recognised_header_the_line_above_the_data_below_a_title_is_named() -> None:
    """The title was taken for the header: "Columns found: 'Customer export'", and Map
    columns (or --map email="Work Mail") could offer or find nothing else: never imported."""
    data = b"Customer export\r\n\r\nWork Mail,Name\r\nann@example.com,Ann\r\n"
    with pytest.raises(CsvFileError, match=r"Columns found: 'Work Mail', 'Name'\."):
        CsvReader(io.BytesIO(data))
    def mapped(header: list[str]) -> Columns:
        return Columns(header.index("Work Mail"), None, None, None)

    with CsvReader(io.BytesIO(data), columns_of=mapped) as reader:
        assert reader.header == ["Work Mail", "Name"]
        assert list(reader.records()) == [(4, ["ann@example.com", "Ann"])]


def test_a_title_line_naming_its_senders_address_doesnt_stop_the_header_search() -> None:
    """"Exported by jane@shop.com" under the title was taken for the first row of data, so
    the title became the header: "No email column found. Columns found: 'Contacts export'",
    and Map columns offered only the title. The line is counted, above the header."""
    data = (b"Contacts export\r\nExported by jane@shop.com\r\n\r\nEmail,First Name\r\n"
            b"ada@example.com,Ada\r\n")  # fmt: skip
    reader, records = read(data)
    assert reader.header == ["Email", "First Name"]
    assert records[-1] == (5, ["ada@example.com", "Ada"])
    assert [line for line, _ in records] == [2, 5]  # the sender's line: rejected, above


def test_without_a_header_the_first_line_is_still_named_as_before() -> None:
    # rows as wide as the one above the data are no title: nothing above it is dropped
    data = b"Ann,,555 0100\r\nBob,,555 0101\r\ncy@example.com,Cy,555 0102\r\n"
    with pytest.raises(CsvFileError, match=r"Columns found: 'Ann', '555 0100'\."):
        CsvReader(io.BytesIO(data))


def test_blank_lines_and_delimiter_only_rows_are_skipped() -> None:
    data = (
        b"email;first_name;last_name\n"  # 1
        b"ada@example.com;Ada;Lovelace\n"  # 2
        b";;\n"  # 3
        b"\n"  # 4
        b";;;;;\n"  # 5
        b"bob@example.com;Bob;Builder\n"  # 6
        b'"";"";""\n'  # 7
        b"cy@example.com;Cy;\n"  # 8
        b"\n\n;;\n"  # 9-11
    )

    _, records = read(data)

    assert records == [
        (2, ["ada@example.com", "Ada", "Lovelace"]),
        (6, ["bob@example.com", "Bob", "Builder"]),
        (8, ["cy@example.com", "Cy", ""]),
    ]


def test_whitespace_only_rows_are_blank_lines_too() -> None:
    """A line of spaces (or spaces between delimiters) looks blank: not a record to reject."""
    data = b"email,first_name\nada@example.com,Ada\n   \n , \t,\nbob@example.com,Bob\n"

    _, records = read(data)

    assert records == [(2, ["ada@example.com", "Ada"]), (5, ["bob@example.com", "Bob"])]


def test_rows_longer_and_shorter_than_the_header_are_passed_through() -> None:
    data = b"first_name,email\nAda,ada@example.com,extra,more\nBob\n"

    _, records = read(data)

    assert records == [(2, ["Ada", "ada@example.com", "extra", "more"]), (3, ["Bob"])]


def test_a_runaway_field_fails_one_record_not_the_file() -> None:
    data = (
        b"email,first_name\n"
        b"ada@example.com,Ada\n"
        b'bob@example.com,"Bob\n' + b"x" * 70_000 + b"\n"
        b"cy@example.com,Cy\n"
    )

    _, records = read(data)

    assert records[0] == (2, ["ada@example.com", "Ada"])
    line, message = records[1]
    assert line == 3
    assert isinstance(message, str) and message.startswith("Malformed CSV (lines 3-4)")
    assert "field limit" in message
    assert records[2:] == [(5, ["cy@example.com", "Cy"])]


# --- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["first_name", "last_name", "email", "locale"], Columns(2, 0, 1, 3)),
        (["First Name", "Last Name", "Email", "locale"], Columns(2, 0, 1, 3)),
        (["Email"], Columns(0, None, None, None)),
        (samples.SHOPIFY_HEADER, Columns(3, 1, 2, None, 4)),  # Accepts Email Marketing
        (samples.MAILCHIMP_HEADER, Columns(0, 1, 2, None)),
        ([*samples.MAILCHIMP_HEADER, "Language"], Columns(0, 1, 2, 23)),
        (["E-mail", "Given Name", "Surname", "Lang"], Columns(0, 1, 2, 3)),
        ([" EMAIL ", "FIRST-NAME", "last__name", "Locale"], Columns(0, 1, 2, 3)),
        (["e_mail", "First.Name", "LAST NAME", "preferred-language"], Columns(0, 1, 2, 3)),
        (["E-Mail Address", "fname", "lname", "LANGUAGE"], Columns(0, 1, 2, 3)),
        (["\ufeffEmail", "first name"], Columns(0, 1, None, None)),
        # the languages invites are written in: their columns went unread (a Swedish shop's
        # export had no email column it knew, a Russian one's names and language were lost)
        (["E-post", "Förnamn", "Efternamn", "Språk"], Columns(0, 1, 2, 3)),
        (["E-postadresse", "Fornavn", "Etternavn", "Sprog"], Columns(0, 1, 2, 3)),
        (["Эл. почта", "Имя", "Фамилия", "Язык"], Columns(0, 1, 2, 3)),
    ],
)
def test_header_spellings(header: list[str], expected: Columns) -> None:
    assert map_header(header) == expected


def test_first_of_two_email_columns_wins() -> None:
    assert map_header(["Email", "Email Address", "first_name"]).email == 0


def test_shopify_export_reads_the_right_columns() -> None:
    reader, records = read(samples.shopify_customers())

    assert reader.columns == Columns(email=3, first_name=1, last_name=2, locale=None,
                                    subscribed=4)
    assert people(reader, records) == [
        ("Ada", "Lovelace", "ada@example.com"),
        ("Zoë", "O’Brien", "zoe@example.ie"),
        ("", "", "guest@example.com"),
        ("Ada", "L.", "ADA@example.com"),
    ]
    assert records[0][1][5] == "Analytical, Ltd"
    assert records[1][1][17] == "Called twice.\nPrefers email."
    assert [line for line, _ in records] == [2, 3, 5, 6]


def test_mailchimp_export_reads_the_right_columns() -> None:
    reader, records = read(samples.mailchimp_members(language=True))

    assert reader.columns == Columns(email=0, first_name=1, last_name=2, locale=23)
    assert [fields[23] for _, fields in records] == ["en", "fr_FR", "en", "zh"]
    assert people(reader, records)[1] == ("Renée", "Dupont", "renee@example.fr")


# --- whole-file failures ---------------------------------------------------------------------


def test_no_email_column_names_the_columns_found() -> None:
    data = samples.csv_bytes([["Name", "Phone", "Company"], ["Ada", "555", "Analytical"]])

    with pytest.raises(CsvFileError) as failure:
        CsvReader(io.BytesIO(data))

    message = str(failure.value)
    assert message.startswith("No email column found.")
    assert "'Name', 'Phone', 'Company'" in message
    assert "Email Address" in message  # tells the user what to call it
    assert "looks like data" not in message


def test_first_row_of_data_hints_at_a_missing_header() -> None:
    data = b"ada@example.com,Ada,Lovelace\nbob@example.com,Bob,Builder\n"

    with pytest.raises(CsvFileError) as failure:
        CsvReader(io.BytesIO(data))

    message = str(failure.value)
    assert "No email column found" in message
    assert "'ada@example.com'" in message
    assert "first row looks like data" in message and "header row" in message


@pytest.mark.parametrize("first", [
    "Anna,Svensson,anna@example.se,E-post",  # how she signed up: "E-post" is Swedish for email
    "E-post,anna@example.se,Anna",
    "Email,Ada <ada@example.com>,Ada",  # as a mail client copies it
    "anna@example.se,Anna,Name,Language",
])  # fmt: skip
def test_a_first_row_holding_an_address_is_no_header_whatever_it_names(first: str) -> None:
    """A row with an address in a cell is a customer, not column names: a word in another
    cell that names a column ("E-post") made it the header, that customer lost and the
    others read by the wrong columns. Told as any file without a header row is."""
    data = (first + "\nBo,Ek,bo@example.se,Butik\n").encode()

    with pytest.raises(ColumnsError) as failure:
        CsvReader(io.BytesIO(data))

    message = str(failure.value)
    assert message.startswith("No email column found.")
    assert "first row looks like data" in message and "header row" in message


@pytest.mark.parametrize("header", [
    ["E-mail", "Reply to (name@domain)", "Name"],
    ["E-post", "Backup(namn@domän)", "Namn"],
    ["Email", "Twitter @", "@handle", "Questions? (ask help@shop.example)"],
    ["Email", "mail@work", "First Name"],  # no address: no dot in its domain
])  # fmt: skip
def test_a_header_with_an_at_sign_in_a_name_is_still_a_header(header: list[str]) -> None:
    """Only an address makes a row data: an @ in a column's name (an example of what it
    holds, a handle) leaves a header a header."""
    data = samples.csv_bytes([header, ["ada@example.com", "x", "y", "z"][: len(header)]])

    reader, records = read(data)

    assert reader.header == header and reader.columns.email == 0
    assert records == [(2, ["ada@example.com", "x", "y", "z"][: len(header)])]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "The file is empty."),
        (b"\r\n\r\n   \r\n", "The file is empty."),
        (codecs.BOM_UTF8, "The file has no header row and no data."),
        (codecs.BOM_UTF8 + b",,,\r\n,,\r\n\r\n", "The file has no header row and no data."),
        (codecs.BOM_UTF16_LE + "\r\n\r\n".encode("utf-16-le"), "no header row and no data"),
    ],
    ids=["zero-bytes", "only-newlines", "only-bom", "only-delimiters", "utf16-only-newlines"],
)
def test_empty_files(data: bytes, expected: str) -> None:
    with pytest.raises(CsvFileError, match=expected):
        CsvReader(io.BytesIO(data))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (samples.binary_junk(), "not text"),
        (samples.control_junk(), "not text"),
        (samples.xlsx_workbook(), r"ZIP archive \(an Excel \.xlsx workbook\?\)"),
        (samples.legacy_xls(), "old Excel"),
        (samples.pdf_document(), "PDF document"),
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image"),
    ],
    ids=["binary-with-nuls", "binary-without-nuls", "xlsx", "xls", "pdf", "png"],
)
def test_files_that_are_not_csv(data: bytes, expected: str) -> None:
    with pytest.raises(CsvFileError, match=expected) as failure:
        CsvReader(io.BytesIO(data))
    assert "CSV" in str(failure.value)


def test_the_callers_stream_stays_open_after_success_and_failure() -> None:
    good = io.BytesIO(samples.seed_csv())
    with CsvReader(good) as reader:
        next(reader.records())
    assert not good.closed
    good.seek(0)
    assert good.read(10) == b"first_name"

    bad = io.BytesIO(b"name,phone\nAda,555\n")
    with pytest.raises(CsvFileError):
        CsvReader(bad)
    assert not bad.closed
    bad.seek(0)
    assert bad.read() == b"name,phone\nAda,555\n"


# --- streaming -----------------------------------------------------------------------------


class CountingStream(io.BytesIO):
    """A BytesIO that remembers the largest single read asked of it."""

    largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self.largest_read = max(self.largest_read, len(data))
        return data


def test_a_large_file_is_streamed_not_read_up_front() -> None:
    rows = 150_000
    data = samples.big_csv(rows)
    size = len(data)
    assert size > 5_000_000

    stream = CountingStream(data)
    reader = CsvReader(stream)
    records = reader.records()
    assert reader.bytes_read() <= 2 * SAMPLE_BYTES

    for _ in range(1_000):
        next(records)
    after_first = reader.bytes_read()
    assert 0 < after_first < size // 50

    for _ in range(50_000):
        next(records)
    middle = reader.bytes_read()
    assert after_first < middle < size // 2

    remaining = sum(1 for _ in records)
    assert 1_000 + 50_000 + remaining == rows
    assert middle < reader.bytes_read() == size
    assert stream.largest_read <= 1024 * 1024
    reader.close()


def test_an_unclosed_quote_is_reported_with_the_lines_it_swallowed() -> None:
    data = (
        b"email,first_name,notes\n"
        b'ann@example.com,"Ann,ok\n'
        b"bob@example.com,Bob,fine\n"
        b'cat@example.com,Cat,"two\nline note"\n'
    )
    reader = CsvReader(io.BytesIO(data))
    records = list(reader.records())
    assert records[0][0] == 2
    assert isinstance(records[0][1], str)
    assert records[0][1].startswith("Malformed CSV (lines 2-")
    assert "never closes" in records[0][1]


def test_a_long_runaway_quote_is_one_malformed_row() -> None:
    body = b"".join(b"row%d@example.com,R\n" % i for i in range(80))
    data = b'email,first_name,notes\nann@example.com,Ann,"unclosed\n' + body
    records = list(CsvReader(io.BytesIO(data)).records())
    assert len(records) == 1 and isinstance(records[0][1], str)
    assert records[0][1].startswith("Malformed CSV (lines 2-82)")


@pytest.mark.parametrize("rows", [10, 5_000], ids=["small", "past-the-field-limit"])
def test_a_quote_that_never_closes_in_the_header_fails_the_file_not_its_rows(rows: int) -> None:
    body = b"".join(b"row%d@example.com,R%d\n" % (i, i) for i in range(rows))
    for data in (b'email,"first_name\n' + body, b'email,"first_name\n' + body + b'x@e.com,"X\n'):
        with pytest.raises(CsvFileError, match="header row has a quote"):
            CsvReader(io.BytesIO(data))


def test_rows_swallowed_by_a_quote_in_a_notes_column_are_one_malformed_row() -> None:
    rows = b"".join(b"r%d@example.com,R%d,fine\n" % (i, i) for i in range(10))
    data = (b"email,first_name,notes\n"
            b'a@example.com,A,"12 inch screen\n' + rows +  # 2-12
            b'z@example.com,Z,"7 inch tablet\n'  # 13
            b"y@example.com,Y,ok\n")  # fmt: skip
    records = list(CsvReader(io.BytesIO(data)).records())
    assert isinstance(records[0][1], str) and records[0][1].startswith("Malformed CSV (lines 2-13)")
    assert records[1] == (14, ["y@example.com", "Y", "ok"])


def test_a_note_mentioning_an_address_on_a_line_of_its_own_is_a_row() -> None:
    """The line holds an address and a delimiter, but it isn't a row of this file: not as
    many fields as the header, and no valid address in the email column."""
    data = (b"email,first_name,notes\r\n"
            b'ann@example.com,Ann,"Wholesale.\nBilling: accounts@acme.com, ext 204"\r\n'
            b"bob@example.com,Bob,\r\n")  # fmt: skip
    _, records = read(data)
    assert records == [
        (2, ["ann@example.com", "Ann", "Wholesale.\nBilling: accounts@acme.com, ext 204"]),
        (4, ["bob@example.com", "Bob", ""]),
    ]


def test_a_narrow_files_note_with_an_address_and_a_comma_on_a_line_is_a_row() -> None:
    """In a file of two or three columns, a note's line "bea@acme.com, mornings only" has
    as many fields as a row but for one: a well-formed note, and its contact, were rejected
    as a quote that never closed."""
    note = "Please cc her assistant:\r\nbea@acme.com, mornings only"
    three = f'email,first_name,notes\r\nada@x.com,Ada,"{note}"\r\nbob@x.com,Bob,\r\n'
    _, records = read(three.encode())
    assert records == [(2, ["ada@x.com", "Ada", note]), (4, ["bob@x.com", "Bob", ""])]
    two = 'email,notes\r\nada@x.com,"Her assistant:\r\nbea@acme.com"\r\nbob@x.com,\r\n'
    _, records = read(two.encode())
    assert records == [(2, ["ada@x.com", "Her assistant:\r\nbea@acme.com"]),
                       (4, ["bob@x.com", ""])]  # fmt: skip


def test_a_long_note_that_closes_is_a_row() -> None:
    note = "\n".join(f"line {i}" for i in range(60))
    data = f'email,first_name,notes\r\nann@example.com,Ann,"{note}"\r\nbob@example.com,Bob,\r\n'
    _, records = read(data.encode())
    assert records == [(2, ["ann@example.com", "Ann", note]), (62, ["bob@example.com", "Bob", ""])]


def test_nul_bytes_are_dropped_not_a_reason_to_refuse_the_file() -> None:
    late = b"".join(b"r%d@example.com,R%d\n" % (i, i) for i in range(5_000))
    data = b"email,first_name\na@example.com,A\x00nn\n\x00" + late + b"z@example.com,Ze\x00ro\n"
    _, records = read(data)
    assert records[0] == (2, ["a@example.com", "Ann"])
    assert records[-1] == (5_003, ["z@example.com", "Zero"])
    assert not any("\x00" in f for _, fields in records for f in fields)


def test_a_nul_character_in_utf16_text_is_dropped_too() -> None:
    """"Unicode text" (UTF-16) from Excel: its zero bytes are halves of characters, so NUL is
    dropped from the decoded text; PostgreSQL refused it and failed the whole import."""
    data = "email\tfirst_name\r\na@example.com\tA\x00da\r\nb@ex\x00ample.com\tBo\r\n"
    _, records = read(codecs.BOM_UTF16_LE + data.encode("utf-16-le"))
    assert records == [(2, ["a@example.com", "Ada"]), (3, ["b@example.com", "Bo"])]


def test_no_email_column_among_thousands_names_a_few() -> None:
    header = ",".join(f"col{i}" for i in range(5_000)).encode()
    with pytest.raises(CsvFileError) as failure:
        CsvReader(io.BytesIO(header + b"\n" + b"x," * 4_999 + b"x\n"))
    message = str(failure.value)
    assert "'col0', 'col1'" in message and "'col29' and 4,970 more" in message
    assert len(message) < 1_000


def test_a_line_of_millions_of_characters_is_read_in_bounded_memory() -> None:
    import tracemalloc

    huge = "\U0001f600" * 8_000_000  # 32 MB of UTF-8, 32 MB as one str
    data = f"email,first_name\na@example.com,A\nb@example.com,{huge}\nc@example.com,C\n".encode()
    stream = io.BytesIO(data)
    del huge
    tracemalloc.start()
    try:
        with CsvReader(stream) as reader:
            records = list(reader.records())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert records[0] == (2, ["a@example.com", "A"])
    assert records[-1][1] == ["c@example.com", "C"]  # read, after the long line's pieces
    assert all(isinstance(fields, str) for _, fields in records[1:-1])  # each malformed
    assert peak < 24 * 1024 * 1024, peak


def test_a_quoted_note_past_the_field_limit_is_one_malformed_row_to_its_closing_quote() -> None:
    note = b"".join(b"line %d of a long note, nothing to import here at all....\n" % i
                    for i in range(1_500))  # fmt: skip
    data = (b"email,first_name,notes\n"
            b'a@example.com,A,"' + note +  # lines 2-1501
            b"bob@inside.example,Bob,quoted in the note\n"  # 1502
            b'end of the note"\n'  # 1503
            b"c@example.com,C,after\n")  # 1504 fmt: skip
    records = list(CsvReader(io.BytesIO(data)).records())
    assert len(records) == 2, [r[0] for r in records]
    line, message = records[0]
    assert line == 2 and isinstance(message, str)
    assert message.startswith("Malformed CSV (lines 2-1503)") and "field limit" in message
    assert records[1] == (1504, ["c@example.com", "C", "after"])


def test_a_note_past_the_field_limit_on_its_first_line_keeps_its_later_lines() -> None:
    """Ann's note opens with 70 KB on one line (a pasted signature) and goes on over more
    lines: csv gave up on its first line, the look-ahead for the closing quote ran only for a
    record already spanning lines, so the note's later lines became rows and the address on
    one of them was imported as a contact of its own."""
    note = b"x" * 70_000 + b"\nForwarded by her assistant:\nbea@assistant.example\nthanks"
    data = (b"email,first_name,notes\r\n"
            b'ann@example.com,Ann,"' + note + b'"\r\n'  # lines 2-5
            b"cy@example.com,Cy,\r\n")  # fmt: skip

    records = list(CsvReader(io.BytesIO(data)).records())

    assert len(records) == 2, records
    line, message = records[0]
    assert line == 2 and isinstance(message, str)
    assert message.startswith("Malformed CSV (lines 2-5)") and "field limit" in message
    assert records[1] == (6, ["cy@example.com", "Cy", ""])


def test_a_cell_past_the_field_limit_closed_on_its_line_leaves_the_rows_after_it() -> None:
    """A 70 KB cell whose quote closes on its own line fails that row only: the rows after
    it are rows, even when a later row's note opens a quote of its own."""
    data = (b"email,first_name,notes\r\n"
            b'ann@example.com,Ann,"' + b"x" * 70_000 + b'"\r\n'
            b"bob@example.com,Bob,\r\n"
            b'cy@example.com,Cy,"a note\r\nover two lines"\r\n')  # fmt: skip

    records = list(CsvReader(io.BytesIO(data)).records())

    assert [r[0] for r in records] == [2, 3, 4], records
    assert isinstance(records[0][1], str) and "field limit" in records[0][1]
    assert records[1:] == [(3, ["bob@example.com", "Bob", ""]),
                           (4, ["cy@example.com", "Cy", "a note\r\nover two lines"])]  # fmt: skip


def test_another_exports_header_with_other_columns_orders_the_rows_below_it() -> None:
    """Two exports joined with `cat` whose columns differ (the second has a Language column,
    in another order): its header was a rejected row and every row below it was read by the
    first header, its last names taken for addresses and rejected. A line holding the email
    column's name and another of the header's, and no address, is a header too; its
    columns the first header doesn't have are left out, as the note says."""
    data = (b"email,first_name,last_name\nada@x.com,Ada,Lovelace\n"
            b"last_name,language,email,first_name\nYoung,fr,cy@x.com,Cy\n"  # 3: other columns
            b"email,first_name\nbo@x.com,Bo\n"  # 5: fewer columns
            b"email,first_name,nobody@x.com\n")  # 7: a row: it holds an address fmt: skip

    reader, records = read(data)

    assert records == [(2, ["ada@x.com", "Ada", "Lovelace"]), (4, ["cy@x.com", "Cy", "Young"]),
                       (6, ["bo@x.com", "Bo", ""]),
                       (7, ["email", "first_name", "", "nobody@x.com"])]  # fmt: skip
    assert reader.late_note() == (
        "Lines 3, 5 start another export's header (files joined into one?): not counted as "
        "rows; the rows below each are read by its column names, and columns the first "
        "header hasn't are left out.")  # fmt: skip


def test_a_row_below_another_exports_header_with_cells_only_in_its_own_columns_is_a_row() -> None:
    """A row whose only cells are in a column the first header hasn't (a phone number with no
    address) was left out: its cells, put in the first header's order, were all blank, so it
    was taken for a blank line and was neither imported nor listed as skipped, and the rows
    no longer added up (the same sheet in a workbook counts it, rejected: no address)."""
    data = (b"Email,First Name,Last Name\na@x.com,Ada,Lovelace\n"
            b"Email,First Name,Phone\nb@x.com,Bob,555-0100\n"  # 3: another export's header
            b",,555-1234\n"  # 5: no address, a phone only
            b"c@x.com,Cy,555-0101\n")  # fmt: skip

    _reader, records = read(data)

    assert [line for line, _ in records] == [2, 4, 5, 6]
    assert records[2] == (5, ["", "", ""])  # rejected for its missing address


def _skipped_below_a_reordered_header(row: str) -> list[tuple[str, str, str]]:
    """(status, email, last name) staged for the last line of two exports joined with `cat`,
    the second's columns in another order, its `row` malformed."""
    data = ("email,first_name,last_name\nada@example.com,Ada,Lovelace\n"
            "last_name,first_name,email\nYoung,Cy,cy@example.com\n" + row).encode()
    with CsvReader(io.BytesIO(data)) as reader:
        staged = list(Classifier(seen=set()).records(reader.records(), reader.columns))
    return [(s[6], s[1], s[4]) for s in staged[2:]]


def test_a_malformed_row_below_a_reordered_header_keeps_its_cells_in_their_columns() -> None:
    """A cell over the field limit below a header repeated as "last_name,first_name,email":
    the skipped-rows CSV listed the row read by the first header, its email "Dent" and its
    last name "dee@example.com"."""
    big = "x" * (70 * 1024)  # over FIELD_LIMIT: csv gives up on the record
    assert _skipped_below_a_reordered_header(f'Dent,"{big}",dee@example.com\n') == [
        ("rejected", "dee@example.com", "Dent")]


def test_a_quote_left_open_below_a_reordered_header_keeps_its_cells_in_their_columns() -> None:
    """A quote that never closes joins lines into one malformed row, listed with what its
    first line reads: in the first header's column order, not the file's (email "Dent")."""
    assert _skipped_below_a_reordered_header(
        'Dent,"Arthur,dee@example.com\nPrefect,Ford,ford@example.com\n'
    )[-1] == ("rejected", "dee@example.com", "Dent")


def test_lines_repeating_the_header_are_no_rows_and_each_orders_the_rows_below_it() -> None:
    """Exports joined with `cat`: the same header again, another column order, another case.
    Each repeat was a row (rejected: "Invalid email"), and the rows after a reordered one were
    read by the first header. A row that only starts with a column's name is still a row."""
    data = (b"email,first_name\na@x.com,A\n"
            b"email,first_name\nb@x.com,B\n"  # 3: the same header
            b"first_name,email\nC,c@x.com\n"  # 5: another order
            b"EMAIL,First_Name\nd@x.com,D\n"  # 7: the first order, in capitals
            b"email,notes\n")  # 9: a row: its cells aren't the header's names fmt: skip

    reader, records = read(data)

    assert records == [(2, ["a@x.com", "A"]), (4, ["b@x.com", "B"]), (6, ["c@x.com", "C"]),
                       (8, ["d@x.com", "D"]), (9, ["email", "notes"])]  # fmt: skip
    assert reader.late_note() == (
        "Lines 3, 5, 7 repeat the header (files joined into one?): not counted as rows; the "
        "rows below each are read in its column order.")  # fmt: skip


@pytest.mark.parametrize(("first", "more", "expected"), [
    ("email,first_name\na@x.com,A\n", "b@x.com,B\nc@x.com,C\n",
     [["a@x.com", "A"], ["b@x.com", "B"], ["c@x.com", "C"]]),
    ("first_name,email\nAnn,a@x.com\n", "Bob,b@x.com\nCy,c@x.com\n",
     [["Ann", "a@x.com"], ["Bob", "b@x.com"], ["Cy", "c@x.com"]]),
], ids=["address-first", "name-first"])  # fmt: skip
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_byte_order_mark_starting_a_data_row_is_dropped(
    first: str, more: str, expected: list[list[str]], encoding: str
) -> None:
    """Two exports joined into one file, the second saved with a BOM and no header: the BOM
    (U+FEFF) stayed in its first row's first cell, so the address was rejected ("Invalid
    email ... ZERO WIDTH NO-BREAK SPACE") or the first name stored with it."""
    data = first.encode(encoding) + more.encode(encoding)  # each with its BOM

    _, records = read(data)

    assert records == [(2, expected[0]), (3, expected[1]), (4, expected[2])]


def test_a_byte_order_mark_far_into_a_file_is_dropped_too() -> None:
    """The BOM of a second export joined past the first block the reader decodes."""
    rows = "".join(f"r{i}@example.com,R{i}\n" for i in range(20_000))
    data = ("email,first_name\n" + rows).encode("utf-8-sig") + "\ufeffz@x.com,Zoë\n".encode()
    assert len(data) > SAMPLE_BYTES

    _, records = read(data)

    assert records[-1] == (20_002, ["z@x.com", "Zoë"])
    assert not any("\ufeff" in f for _, fields in records for f in fields)


@pytest.mark.parametrize("rows", [
    [("Seán", "Smith"), ("Mary", "O’Brien"), ("Ann", "Lee")],
    [("Siobhán", "O’Neill"), ("Pádraig", "Murphy")],
    [("Niamh", "Ó Briain"), ("Mary", "O’Brien")],
    [("Mary", "O’Brien"), ("Dan", "D’Arcy"), ("Ann", "Lee")],
], ids=["sean-obrien", "siobhan-oneill", "o-briain", "apostrophes-only"])  # fmt: skip
def test_a_cp1252_file_with_a_typographic_apostrophe_stays_western(
    rows: list[tuple[str, str]],
) -> None:
    """Excel's "O’Brien" (cp1252's ’) was read as Mac Roman's "OíBrien", and "Seán" beside it
    as "Se·n": a word whose only non-ASCII character is punctuation counted against cp1252
    as a word of no language."""
    table = [["email", "first_name", "last_name"],
             *([f"u{i}@x.com", *row] for i, row in enumerate(rows))]  # fmt: skip

    reader, records = read(samples.csv_bytes(table, encoding="cp1252"))

    assert reader.encoding == "cp1252" and [fields for _, fields in records] == table[1:]


@pytest.mark.parametrize(("tail", "last_line"), [
    (b'b@x.com,"Bob,B\n', 3),
    (b'b@x.com,"Bob,B', 3),  # no line break at the end
    (b'b@x.com,"Bob,B\r\nc@x.com,Cy,C\r\n', 4),  # it swallowed a row
    (b'b@x.com,Bob,"a note\nover two lines\n', 4),
    (b'b@x.com,Bob,"', 3),  # cut off right after a cell's opening quote: IndexError
], ids=["one-line", "no-line-break", "swallowed-row", "note", "opening-quote-last"])  # fmt: skip
def test_a_quote_left_open_on_the_last_line_is_a_malformed_row(tail: bytes, last_line: int) -> None:
    """A quote that never closes mid-file was a malformed row, but on the last line csv ended
    the record at the end of the file without a word: "Bob,B" was imported as a first name."""
    data = b"email,first_name,last_name\na@x.com,Ann,A\n" + tail

    _, records = read(data)

    assert records[0] == (2, ["a@x.com", "Ann", "A"]) and len(records) == 2
    line, message = records[1]
    assert line == 3 and isinstance(message, str), records
    assert message.startswith(f"Malformed CSV (lines 3-{last_line}): a quote that never closes")


def test_a_quoted_field_closed_on_the_last_line_is_still_a_row() -> None:
    data = b'email,first_name,notes\na@x.com,Ann,"a note\nover two lines"\nb@x.com,"Bob"'

    _, records = read(data)

    assert records == [(2, ["a@x.com", "Ann", "a note\nover two lines"]), (4, ["b@x.com", "Bob"])]


# --- cost on hostile files -----------------------------------------------------------------


def test_blank_lines_above_the_header_cost_no_more_than_their_number() -> None:
    """The header search gave csv a copy of the lines below each blank line it passed: the
    square of their number, 3 s for the 64 KB sample's 65,536 empty lines (every file of an
    archive paid it again), 8 s for the 100,000 here. Bounded far above what one pass over
    them costs, so only the square fails it."""
    started = time.process_time()
    assert find_header("\n" * 100_000 + "email\na@x.com\n") == (",", 100_000)
    assert time.process_time() - started < 2

    _, records = read(b"\r\n" * 20_000 + b"Email;Name\r\na@x.com;Ann\r\n")

    assert records == [(20_002, ["a@x.com", "Ann"])]


def test_a_wide_header_repeated_costs_no_more_than_its_width() -> None:
    """A line repeating a header of many blank cells (300,000 commas; a line may hold a
    million) paired each blank name with its place taking it from the front of a list: the
    square of their number, 9 s here. Bounded far above what reading the file costs."""
    header = b"email" + b"," * 300_000 + b"\n"
    started = time.process_time()

    reader, records = read(header + header + b"a@x.com\n")

    assert time.process_time() - started < 3
    assert [(line, fields[:1]) for line, fields in records] == [(3, ["a@x.com"])]
    assert reader.late_note() is not None and reader.late_note().startswith("Line 2 repeats")


def test_a_wide_header_of_at_signs_costs_no_more_than_its_width() -> None:
    """Whether a header holds an address (a row of data: not a header) was asked of each of
    its cells holding an @ the slow way (email-validator): 1.8 s of CPU for a line naming an
    email column beside 100,000 cells "x@y", six times what reading the file costs now."""
    header = b"Email," + b",".join(b"x@y%d" % n for n in range(100_000)) + b"\n"
    started = time.process_time()

    reader, records = read(header + b"a@x.com\n")

    assert time.process_time() - started < 1
    assert reader.columns.email == 0
    assert [(line, fields[:1]) for line, fields in records] == [(2, ["a@x.com"])]


def test_column_order_pairs_names_and_blanks_in_order() -> None:
    assert column_order(["email", "", "name", "", "email"], ["", "name", "email", "", "email"]
                        ) == [2, 0, 1, 3, 4]  # fmt: skip
    assert column_order(["a", "b"], ["b"]) == [None, 0]
