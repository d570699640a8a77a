"""Builders of realistic CSV exports, as bytes, for the reading and classification tests.

Everything is generated in code: the seed's template, Shopify and Mailchimp exports, Excel's
"Unicode text" (UTF-16 LE, tab separated), cp1252 files from older tools, and files that are
not CSV at all. Nothing here reads a file from disk.
"""

from __future__ import annotations

import codecs
import csv
import io
import random
import zipfile
from collections.abc import Callable, Sequence

Row = Sequence[str]

SEED_HEADER = ["first_name", "last_name", "email", "locale"]
SEED_HEADER_TITLE = ["First Name", "Last Name", "Email", "locale"]

SHOPIFY_HEADER = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
]

MAILCHIMP_HEADER = [
    "Email Address",
    "First Name",
    "Last Name",
    "Address",
    "Phone Number",
    "Birthday",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "OPTIN_IP",
    "CONFIRM_TIME",
    "CONFIRM_IP",
    "LATITUDE",
    "LONGITUDE",
    "GMTOFF",
    "DSTOFF",
    "TIMEZONE",
    "CC",
    "REGION",
    "LAST_CHANGED",
    "LEID",
    "EUID",
    "NOTES",
    "TAGS",
]

# Names every legacy encoding we test can represent (cp1252 has é ü ñ ë and the curly quotes).
ACCENTED_PEOPLE: list[tuple[str, str, str]] = [
    ("José", "Muñoz", "jose.munoz@example.com"),
    ("Jürgen", "Müller", "juergen@example.de"),
    ("Zoë", "O’Brien", "zoe.obrien@example.ie"),
    ("“Bobby”", "Tables", "bobby@example.org"),
    ("Renée", "Núñez", "renee@example.es"),
]

BOMS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
}


def csv_text(rows: Sequence[Row], *, delimiter: str = ",", newline: str = "\r\n") -> str:
    """Rows as a spreadsheet writes them: fields quoted only when they must be."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=newline).writerows(rows)
    return out.getvalue()


def csv_bytes(
    rows: Sequence[Row],
    *,
    delimiter: str = ",",
    newline: str = "\r\n",
    encoding: str = "utf-8",
    bom: bool = False,
) -> bytes:
    data = csv_text(rows, delimiter=delimiter, newline=newline).encode(encoding)
    return (BOMS[encoding] + data) if bom else data


def seed_rows() -> list[list[str]]:
    """The seed's template filled in: first_name, last_name, email, locale."""
    return [
        SEED_HEADER,
        ["Ada", "Lovelace", "ada@example.com", "en"],
        ["José", "Muñoz", "jose.munoz@example.com", "es_ES"],
        ["", "Nameless", "no.name@example.com", ""],
        ["Grace", "Hopper", "GRACE@Example.com", "en-us"],
        ["Grace", "Hopper", "grace@example.com ", "en-US"],
        ["Bad", "Address", "bad@@example.com", "fr"],
        ["Lin", "Wei", "lin.wei@example.cn", "ZH_tw"],
        ["Worf", "", "worf@example.com", "klingon"],
    ]


def seed_csv(*, delimiter: str = ",", newline: str = "\r\n", bom: bool = False) -> bytes:
    return csv_bytes(seed_rows(), delimiter=delimiter, newline=newline, bom=bom)


def shopify_customers() -> bytes:
    """A Shopify customer export: extra columns, a company with a comma, a multi-line note."""
    blank = [""] * 11

    def customer(cid: str, first: str, last: str, email: str, company: str, note: str) -> list[str]:
        row = [cid, first, last, email, "yes", company, *blank, note, "no", "vip"]
        row[6:11] = ["1 Main St", "", "Springfield", "IL", "US"]
        return row

    rows = [
        SHOPIFY_HEADER,
        customer("7001", "Ada", "Lovelace", "ada@example.com", "Analytical, Ltd", ""),
        customer("7002", "Zoë", "O’Brien", "zoe@example.ie", "", "Called twice.\nPrefers email."),
        customer("7003", "", "", "guest@example.com", "", ""),
        customer("7004", "Ada", "L.", "ADA@example.com", "", "same person, other account"),
    ]
    return csv_bytes(rows, bom=True)


def mailchimp_members(language: bool = False) -> bytes:
    """A Mailchimp audience export (optionally with the Language column some accounts add)."""
    header = MAILCHIMP_HEADER + (["Language"] if language else [])

    def member(email: str, first: str, last: str, lang: str) -> list[str]:
        row = [email, first, last, "1 Main St  Springfield  IL  62701  US", "+1 555 0100"]
        row += [""] * (len(MAILCHIMP_HEADER) - len(row))
        return row + ([lang] if language else [])

    rows = [
        header,
        member("ada@example.com", "Ada", "Lovelace", "en"),
        member("renee@example.fr", "Renée", "Dupont", "fr_FR"),
        member("not-an-address", "Bad", "Row", "en"),
        member("li@example.cn", "", "Li", "zh"),
    ]
    return csv_bytes(rows)


def excel_unicode_text(rows: Sequence[Row]) -> bytes:
    """Excel's "Save as Unicode text": UTF-16 LE with a BOM, tab separated, CRLF."""
    return csv_bytes(rows, delimiter="\t", encoding="utf-16-le", bom=True)


def people_rows(people: Sequence[tuple[str, str, str]]) -> list[list[str]]:
    return [["email", "first_name", "last_name"]] + [[e, f, la] for f, la, e in people]


# People as Excel's "CSV" writes them on a Japanese, Chinese, Central European or old Mac
# system: in the system's code page, not UTF-8.
LEGACY_PEOPLE: dict[str, list[tuple[str, str, str]]] = {
    "shift_jis": [("悠斗", "田中", "yuto@example.jp"), ("さくら", "佐藤", "sakura@example.jp"),
                  ("健太", "鈴木", "kenta@example.jp"), ("ﾊﾅｺ", "ﾔﾏﾀﾞ", "hanako@example.jp")],
    "gbk": [("伟", "王", "wei@example.cn"), ("秀英", "刘", "xiuying@example.cn"),
            ("娜", "张", "na@example.cn"), ("敏", "陈", "min@example.cn")],
    "cp1250": [("Łukasz", "Świątek", "lukasz@example.pl"), ("Antonín", "Dvořák", "a@example.cz"),
               ("Zofia", "Wójcik", "zofia@example.pl")],
    "mac_roman": [("Renée", "Dupré", "renee@example.fr"), ("Jürgen", "Groß", "j@example.de"),
                  ("François", "Lefèvre", "f@example.fr")],
    "cp1252": [("José", "Muñoz", "jose@example.es"), ("Zoë", "Brontë", "zoe@example.com"),
               ("Søren", "Ångström", "soren@example.dk")],
}  # fmt: skip

# People as Excel's "CSV" writes them on an Israeli, Arab or Thai system: scripts without
# capitals, whose bytes read as words in another code page too (Hebrew's as lowercase
# Cyrillic, Arabic's as Thai, Thai's as Shift-JIS's halfwidth katakana).
CASELESS_PEOPLE: dict[str, list[tuple[str, str, str]]] = {
    "cp1255": [("נועה", "כהן", "noa.cohen@example.co.il"), ("יוסף", "לוי", "yosef@example.co.il"),
               ("מיכל", "מזרחי", "michal@example.co.il"), ("אורי", "בן-דוד", "uri@example.co.il")],
    "cp1256": [("ليلى", "منصور", "layla@example.lb"), ("هدى", "الهاشمي", "huda@example.jo"),
               ("حسن", "الزهراني", "hassan@example.sa"), ("منى", "العلي", "mona@example.eg")],
    "cp874": [("มาลี", "ศรีสุข", "malee@example.co.th"), ("ศิริพร", "ใจดี", "siriporn@example.co.th"),
              ("ธนพล", "เจริญสุข", "thanaphon@example.co.th")],
}  # fmt: skip


def utf8_with_stray_cp1252(filler_rows: int = 0) -> tuple[bytes, int]:
    """A UTF-8 file whose later row has one name saved by a cp1252 tool (b"Ren\\xe9e").

    Returns (data, line of the stray row). `filler_rows` plain ASCII rows come before the
    UTF-8 accented rows, to push the stray byte past the reader's sample.
    """
    lines = ["email,first_name,last_name"]
    lines += [f"filler{i}@example.com,Filler,Row{i}" for i in range(filler_rows)]
    lines += ["jose@example.com,José,Muñoz", "zoe@example.com,Zoë,Ånström"]
    head = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    stray = b"renee@example.fr,Ren\xe9e,Dupont\r\n"
    tail = "juergen@example.de,Jürgen,Müller\r\nyuki@example.jp,雪,Tanaka\r\n".encode()
    return head + stray + tail, len(lines) + 1


def ascii_filler(min_bytes: int, *, start: int = 0) -> list[str]:
    """Plain ASCII rows (email, first_name, last_name) adding up to at least `min_bytes`."""
    lines: list[str] = []
    size, i = 0, start
    while size < min_bytes:
        line = f"filler{i}@example.com,Filler,Row{i}"
        lines.append(line)
        size += len(line) + 2
        i += 1
    return lines


def late_non_ascii(
    late: Sequence[tuple[str, str, str]],
    *,
    encoding: str = "utf-8",
    filler_bytes: int = 200 * 1024,
    early: bytes = b"",
) -> tuple[bytes, int]:
    """A file whose non-ASCII people come after `filler_bytes` of plain ASCII rows.

    `late` people (first, last, email) are written in `encoding`; `early` (raw bytes of whole
    rows) goes right after the header, before the filler. Returns (data, line of the first
    late person).
    """
    filler = ascii_filler(filler_bytes)
    head = "email,first_name,last_name\r\n".encode("ascii") + early
    body = ("\r\n".join(filler) + "\r\n").encode("ascii")
    tail = "".join(f"{e},{f},{la}\r\n" for f, la, e in late).encode(encoding)
    first_late = 2 + early.count(b"\n") + len(filler)
    return head + body + tail, first_late


def big_mixed_utf8(min_bytes: int = 5 * 1024 * 1024) -> bytes:
    """A big UTF-8 file (parsed in a child process) with a stray cp1252 row at the top."""
    early = b"renee@example.fr,Ren\xe9e,Dupont\r\n"
    data, _ = late_non_ascii(
        [("Zoë", "Brontë", "zoe@example.com"), ("雪", "田中", "yuki@example.jp")],
        filler_bytes=min_bytes,
        early=early,
    )
    return data


def utf32(rows: Sequence[Row], encoding: str = "utf-32-le") -> bytes:
    """A UTF-32 file with its BOM, as a few editors offer to save."""
    bom = codecs.BOM_UTF32_LE if encoding == "utf-32-le" else codecs.BOM_UTF32_BE
    return bom + csv_text(rows).encode(encoding)


def big_csv(rows: int, seed: int = 7) -> bytes:
    """A large plain export (a few MB): mostly valid, some duplicates and bad addresses."""
    rng = random.Random(seed)
    out = ["email,first_name,last_name,locale"]
    for i in range(rows):
        roll = rng.random()
        if roll < 0.02:
            email = f"user{rng.randrange(i + 1)}@example.com"  # a repeat (or itself)
        elif roll < 0.03:
            email = f"user{i}@@example.com"
        else:
            email = f"user{i}@example.com"
        out.append(f"{email},Name{i},Family {i % 97},{rng.choice(['en', 'fr_FR', '', 'de'])}")
    return ("\n".join(out) + "\n").encode("ascii")


def binary_junk(size: int = 4096, seed: int = 1) -> bytes:
    """Random bytes with NULs sprinkled in, like an executable or a database file."""
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(size))
    for i in range(3, size, 37):
        data[i] = 0
    data[0:4] = b"\x7fELF"
    return bytes(data)


def control_junk(size: int = 4096, seed: int = 2) -> bytes:
    """Random non-NUL bytes: decodes as cp1252 text, but is full of control characters."""
    rng = random.Random(seed)
    return bytes(rng.randrange(1, 256) for _ in range(size))


def xlsx_workbook() -> bytes:
    """What an .xlsx really is: a ZIP archive of XML parts."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        book.writestr("xl/workbook.xml", "<workbook><sheets><sheet name='Sheet1'/></sheets>")
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet><c t='s'><v>0</v></c></worksheet>")
    return out.getvalue()


def pdf_document() -> bytes:
    return (
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n"
        b"%%EOF\n"
    )


def legacy_xls() -> bytes:
    """The start of an Excel 97-2003 .xls (an OLE compound document)."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"Workbook"


def importable_samples() -> dict[str, Callable[[], bytes]]:
    """Every importable file the tests build, by name, for checks that must hold on all."""
    return {
        "seed": seed_csv,
        "seed-title-case-semicolon": lambda: csv_bytes(
            [SEED_HEADER_TITLE, *seed_rows()[1:]], delimiter=";"
        ),
        "seed-utf8-bom": lambda: seed_csv(bom=True),
        "seed-pipe-lf": lambda: seed_csv(delimiter="|", newline="\n"),
        "shopify": shopify_customers,
        "mailchimp": mailchimp_members,
        "mailchimp-language": lambda: mailchimp_members(language=True),
        "excel-unicode-text": lambda: excel_unicode_text(people_rows(ACCENTED_PEOPLE)),
        "cp1252": lambda: csv_bytes(people_rows(ACCENTED_PEOPLE), encoding="cp1252"),
        "utf16-le-no-bom": lambda: csv_bytes(people_rows(ACCENTED_PEOPLE), encoding="utf-16-le"),
        "utf8-stray-cp1252": lambda: utf8_with_stray_cp1252()[0],
        "big": lambda: big_csv(5_000),
    }
