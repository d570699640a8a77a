"""Classifier: what each CSV row becomes (valid, duplicate, rejected) and why."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from bot.imports.reading import CsvReader
from bot.imports.rows import (
    DUPLICATE,
    FORMULA_START,
    MAX_NAME,
    REJECTED,
    VALID,
    Classifier,
    Staged,
    Tally,
    split_full_name,
    unquote,
)
from tests.imports import csv_samples as samples

DUPLICATE_REASON = "Duplicate of an earlier row in this import"


def classify(data: bytes, classifier: Classifier | None = None) -> tuple[list[Staged], Tally]:
    """Stage a file the way batches.stage_csv does, checking the counts add up."""
    classifier = classifier if classifier is not None else Classifier()
    with CsvReader(io.BytesIO(data)) as reader:
        staged = list(classifier.records(reader.records(), reader.columns))
    tally = classifier.tally
    outcomes = Counter(row[6] for row in staged)
    assert tally.rows == len(staged) == tally.valid + tally.duplicates + tally.rejected
    assert (tally.valid, tally.duplicates, tally.rejected) == (
        outcomes[VALID],
        outcomes[DUPLICATE],
        outcomes[REJECTED],
    )
    assert tally.warnings == sum(
        1 for row in staged if row[6] == VALID and row[7] and row[7].startswith("Unknown locale")
    )
    return staged, tally


def by_line(staged: list[Staged]) -> dict[int, Staged]:
    return {row[0]: row for row in staged}


# --- the identity on every file we build -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(samples.importable_samples()))
def test_every_row_is_counted_exactly_once(name: str) -> None:
    data = samples.importable_samples()[name]()
    staged, tally = classify(data)

    assert tally.rows > 0
    assert tally.valid > 0
    lines = [row[0] for row in staged]
    assert lines == sorted(set(lines))  # one staged row per record, in file order


def test_seed_file_outcomes() -> None:
    staged, tally = classify(samples.seed_csv())

    assert [(r[0], r[1], r[3], r[4], r[5], r[6]) for r in staged] == [
        (2, "ada@example.com", "Ada", "Lovelace", "en", VALID),
        (3, "jose.munoz@example.com", "José", "Muñoz", "es-ES", VALID),
        (4, "no.name@example.com", "no.name", "Nameless", None, VALID),
        (5, "GRACE@example.com", "Grace", "Hopper", "en-US", VALID),
        (6, "grace@example.com", "Grace", "Hopper", "en-US", DUPLICATE),
        (7, "bad@@example.com", "Bad", "Address", "fr", REJECTED),
        (8, "lin.wei@example.cn", "Lin", "Wei", "zh-TW", VALID),
        (9, "worf@example.com", "Worf", "", None, VALID),
    ]
    assert (tally.rows, tally.valid, tally.duplicates, tally.rejected) == (8, 6, 1, 1)
    assert tally.warnings == 1


# --- duplicates ----------------------------------------------------------------------------


def test_duplicates_differing_in_case_or_spaces() -> None:
    data = samples.csv_bytes(
        [
            ["email", "first_name"],
            ["jane@example.com", "Jane"],
            ["JANE@EXAMPLE.COM", "Jane"],
            ["  jane@example.com  ", "Jane"],
            ["\tJane@Example.Com", "Jane"],
            ["jane@example.co", "Not a duplicate"],
            ["zo\u00eb@example.com", "Zoë (composed)"],
            ["ZOE\u0308@EXAMPLE.COM", "Zoë (decomposed, upper case)"],
        ]
    )

    staged, tally = classify(data)

    assert [(r[0], r[6], r[7]) for r in staged] == [
        (2, VALID, None),
        (3, DUPLICATE, DUPLICATE_REASON),
        (4, DUPLICATE, DUPLICATE_REASON),
        (5, DUPLICATE, DUPLICATE_REASON),
        (6, VALID, None),
        (7, VALID, None),
        (8, DUPLICATE, DUPLICATE_REASON),
    ]
    assert staged[2][1] == "jane@example.com"  # stored stripped
    assert staged[1][2] == staged[0][2] == "jane@example.com"  # same key
    assert (tally.valid, tally.duplicates) == (3, 4)


def test_an_invalid_row_does_not_make_a_later_valid_one_a_duplicate() -> None:
    data = b"email\nann@@example.com\nann@example.com\nann@example.com\n"

    staged, _ = classify(data)

    assert [r[6] for r in staged] == [REJECTED, VALID, DUPLICATE]


def test_seen_from_an_earlier_source_makes_repeats_duplicates() -> None:
    first, _ = classify(samples.csv_bytes([["email"], ["ada@example.com"], ["bob@example.com"]]))
    # What batches._batch_keys loads for the next source: hashes of the valid rows' keys.
    seen = {hash(row[2]) for row in first if row[6] == VALID}

    second_file = samples.csv_bytes(
        [["Email Address"], ["ADA@example.com"], ["cy@example.com"], [" bob@EXAMPLE.com"]]
    )
    staged, tally = classify(second_file, Classifier(seen=seen))

    assert [(r[1], r[6]) for r in staged] == [
        ("ADA@example.com", DUPLICATE),
        ("cy@example.com", VALID),
        ("bob@example.com", DUPLICATE),
    ]
    assert (tally.rows, tally.valid, tally.duplicates) == (3, 1, 2)
    assert hash("cy@example.com") in seen  # the set is shared, so a third source sees cy too


def test_classifier_seen_can_be_handed_to_the_next_source() -> None:
    one = Classifier()
    classify(samples.shopify_customers(), one)
    two = Classifier(seen=one.seen)

    staged, tally = classify(samples.mailchimp_members(), two)

    assert [(r[1], r[6]) for r in staged] == [
        ("ada@example.com", DUPLICATE),  # also in the Shopify export
        ("renee@example.fr", VALID),
        ("not-an-address", REJECTED),
        ("li@example.cn", VALID),
    ]
    assert (tally.valid, tally.duplicates, tally.rejected) == (2, 1, 1)


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "bad@@x",
        "no-at-sign",
        "a@b",
        "x@localhost",
        "a..b@example.com",
        "jane@example.test",
        "jane@example.local",
        ".jane@example.com",
        "jane.@example.com",
        "jane@-example.com",
        "jane@example.com.",
        "jane doe@example.com",
        "jane@[192.168.0.1]",
        "@example.com",
        "jane@",
    ],
)
def test_invalid_addresses_are_rejected_with_a_reason(address: str) -> None:
    data = samples.csv_bytes([["email", "first_name"], [address, "Jane"]])

    staged, tally = classify(data)

    assert len(staged) == 1
    line, email, key, first, _last, locale, outcome, reason, _subscribed = staged[0]
    assert (line, outcome, key, locale, first) == (2, REJECTED, "", None, "Jane")
    assert email == address  # the rejects file shows what the user typed
    assert reason is not None and reason.startswith("Invalid email: ")
    assert len(reason) > len("Invalid email: ") + 10  # an explanation, not just a label
    assert tally.rejected == 1


def test_rows_shorter_than_the_header_are_missing_their_email() -> None:
    data = b"first_name,last_name,email\nAda,Lovelace,ada@example.com\nBob,Builder\nCy\n"

    staged, tally = classify(data)

    assert [(r[0], r[3], r[6], r[7]) for r in staged] == [
        (2, "Ada", VALID, None),
        (3, "Bob", REJECTED, "Missing email"),
        (4, "Cy", REJECTED, "Missing email"),
    ]
    assert tally.rejected == 2


def test_blank_email_cell_is_missing_email() -> None:
    staged, _ = classify(b"email,first_name\n   ,Ada\n,Bob\n")

    assert [(r[0], r[6], r[7]) for r in staged] == [
        (2, REJECTED, "Missing email"),
        (3, REJECTED, "Missing email"),
    ]


def test_extra_columns_are_ignored() -> None:
    data = b'email,first_name,last_name\nada@example.com,Ada,Lovelace,42,VIP,"a,b"\n'

    staged, _ = classify(data)

    assert staged == [
        (2, "ada@example.com", "ada@example.com", "Ada", "Lovelace", None, VALID, None, None)
    ]


def test_a_malformed_record_is_rejected_with_its_lines() -> None:
    data = b'email\nada@example.com\n"' + b"x" * 70_000 + b"\nbob@example.com\n"

    staged, tally = classify(data)

    assert [(r[0], r[6]) for r in staged] == [(2, VALID), (3, REJECTED), (4, VALID)]
    assert staged[1][7] is not None and staged[1][7].startswith("Malformed CSV (lines 3-3)")
    assert tally.rejected == 1


# --- names and locales -----------------------------------------------------------------------


def test_missing_first_name_defaults_to_the_part_before_the_at() -> None:
    """...without a +tag: invites greeted bob+news@ as "Hi bob+news,"."""
    data = samples.csv_bytes(
        [
            ["email", "first_name", "last_name", "locale"],
            ["ada.lovelace@example.com", "", "Lovelace", ""],  # fast path
            ["bob+news@example.com", "   ", "", ""],  # blank name counts as missing
            ["josé+shop@example.com", "", "", ""],  # unicode: the slow path
            ["cy@example.com", "", "", "klingon"],  # unknown locale: the slow path
            ["dee@EXAMPLE.com", "Dee", "", ""],  # a name given is kept
            ["+orders@example.com", "", "", ""],  # nothing before the tag: kept whole
            ["BOB+news@example.com", "", "", ""],  # a duplicate keeps its default too
        ]
    )

    staged, _ = classify(data)

    assert [(r[1], r[3]) for r in staged] == [
        ("ada.lovelace@example.com", "ada.lovelace"),
        ("bob+news@example.com", "bob"),
        ("josé+shop@example.com", "josé"),
        ("cy@example.com", "cy"),
        ("dee@example.com", "Dee"),
        ("+orders@example.com", "+orders"),
        ("BOB+news@example.com", "BOB"),
    ]


@pytest.mark.parametrize(("whole", "first", "last"), [
    ("Ada Lovelace, PhD", "Ada", "Lovelace"),  # was first name "PhD": "Hi PhD,"
    ("Ada Lovelace, Ph.D.", "Ada", "Lovelace"),
    ("Martin Luther King, Jr.", "Martin", "Luther King"),
    ("Lovelace, Ada, MBE", "Ada", "Lovelace"),
    ("Lovelace, Ada", "Ada", "Lovelace"),
    ("Do, Anh", "Anh", "Do"),  # a surname that is also a title stays a surname
])  # fmt: skip
def test_a_credential_after_a_whole_name_is_no_first_name(whole: str, first: str,
                                                          last: str) -> None:  # fmt: skip
    assert split_full_name(whole) == (first, last)


def test_a_whole_name_column_gives_first_and_last_names() -> None:
    """Stripe's "Name", a Shopify order's "Billing Name": ignored, so every invite greeted
    the address's local part ("Hi ada.l,"). Read only where no first or last name column is;
    an order number in Shopify's own "Name" column is no name."""
    data = samples.csv_bytes(
        [
            ["Name", "Email", "Billing Name"],
            ["#1001", "ada.l@example.com", "Ada Lovelace"],
            ["#1002", "gh@example.com", "  Grace   Brewster  Hopper "],
            ["#1003", "lo@example.com", "Lovelace, Ada"],
            ["#1004", "prince@example.com", "Prince"],
            ["#1005", "nobody@example.com", ""],
            ["#1006", "nobody@example.com", "Dup Licate"],
        ]
    )
    staged, _ = classify(data)
    assert [(r[1], r[3], r[4], r[6]) for r in staged] == [
        ("ada.l@example.com", "Ada", "Lovelace", VALID),
        ("gh@example.com", "Grace", "Brewster Hopper", VALID),
        ("lo@example.com", "Ada", "Lovelace", VALID),
        ("prince@example.com", "Prince", "", VALID),
        ("nobody@example.com", "nobody", "", VALID),
        ("nobody@example.com", "Dup", "Licate", DUPLICATE),
    ]
    orders = samples.csv_bytes([["Name", "Email"], ["#1001", "ada.l@example.com"]])
    assert [(r[3], r[4]) for r in classify(orders)[0]] == [("ada.l", "")]
    both = samples.csv_bytes([["Email", "Name", "First Name"], ["a@example.com", "A B", "Al"]])
    assert [(r[3], r[4]) for r in classify(both)[0]] == [("Al", "")]


@pytest.mark.parametrize(("whole", "first", "last"), [
    ("田中 太郎", "太郎", "田中"),  # was first name 田中: "Hi 田中," greets the family
    ("田中\u3000太郎", "太郎", "田中"),  # an ideographic space, as Japanese input types it
    ("王 伟", "伟", "王"),
    ("欧阳 娜娜", "娜娜", "欧阳"),
    ("김 민준", "민준", "김"),
    ("佐々木 みゆき", "みゆき", "佐々木"),
    ("ヤマダ タロウ", "タロウ", "ヤマダ"),
    ("田中太郎", "田中太郎", ""),  # no space: where the family name ends can't be told
    ("Ada Lovelace", "Ada", "Lovelace"),  # Western names unchanged
    ("José Müller", "José", "Müller"),
    ("Ada 田中", "Ada", "田中"),
])  # fmt: skip
def test_a_cjk_whole_name_is_split_family_name_first(whole: str, first: str, last: str) -> None:
    assert split_full_name(whole) == (first, last)


@pytest.mark.parametrize(("header", "encoding"), [
    ("Email,姓名", "utf-8"), ("Email,氏名", "utf-8"), ("メールアドレス,氏名", "cp932"),
])  # fmt: skip
def test_a_japanese_or_chinese_whole_name_column_gives_the_family_name_as_last_name(
    header: str, encoding: str
) -> None:
    """Chinese and Japanese write the family name first: "田中　太郎" was stored as first name
    田中, last name 太郎, so invites greeted people by their family name."""
    data = f"{header}\nt@x.jp,田中\u3000太郎\nw@x.cn,山本 一\n".encode(encoding)

    staged, _ = classify(data)

    assert [(r[1], r[3], r[4]) for r in staged] == [("t@x.jp", "太郎", "田中"),
                                                    ("w@x.cn", "一", "山本")]  # fmt: skip


def test_a_quote_left_open_on_the_last_line_is_rejected_and_counted() -> None:
    """The last line's open quote ran to the end of the file: the row was imported with
    first name "Bob,B". It is a malformed row, as one mid-file is, and the counts add up."""
    data = b'email,first_name,last_name\na@x.com,Ann,A\nb@x.com,"Bob,B\n'

    staged, tally = classify(data)

    assert [(r[0], r[1], r[6]) for r in staged] == [(2, "a@x.com", VALID),
                                                    (3, "b@x.com", REJECTED)]  # fmt: skip
    assert staged[1][7] is not None and "a quote that never closes" in staged[1][7]
    assert (tally.rows, tally.valid, tally.rejected) == (2, 1, 1)


def test_first_name_is_left_blank_when_defaulting_is_off() -> None:
    staged, _ = classify(
        b"email,first_name\nada@example.com,\njos\xc3\xa9@example.com,\n",
        Classifier(default_first_name=False),
    )

    assert [(r[1], r[3], r[6]) for r in staged] == [
        ("ada@example.com", "", VALID),
        ("josé@example.com", "", VALID),
    ]


def test_names_are_trimmed_and_capped() -> None:
    long_name = "A" * 300
    data = samples.csv_bytes(
        [["email", "First Name", "Last Name"], ["a@example.com", f"  {long_name} ", " Lee "]]
    )

    staged, _ = classify(data)

    assert staged[0][3] == "A" * 200
    assert staged[0][4] == "Lee"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("fr_FR", "fr-FR"),
        ("ZH_tw", "zh-TW"),
        ("pt-br", "pt-BR"),
        ("EN", "en"),
        (" de ", "de"),
        ("zh_hant_tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
    ],
)
def test_locales_are_normalised(raw: str, expected: str) -> None:
    # Three rows so the spelling is seen once on the slow path and then from the cache.
    data = samples.csv_bytes(
        [["email", "locale"]] + [[f"user{i}@example.com", raw] for i in range(3)]
    )

    staged, tally = classify(data)

    assert [(r[5], r[6], r[7]) for r in staged] == [(expected, VALID, None)] * 3
    assert tally.warnings == 0


@pytest.mark.parametrize("raw", ["klingon", "xx", "fr_FRANCE", "12"])
def test_unknown_locale_is_valid_with_a_warning(raw: str) -> None:
    data = samples.csv_bytes(
        [["email", "Language"], ["ada@example.com", raw], ["bob@example.com", raw]]
    )

    staged, tally = classify(data)

    for row in staged:
        assert (row[5], row[6]) == (None, VALID)
        assert row[7] == f"Unknown locale {raw!r}: the workspace default is used"
    assert (tally.valid, tally.warnings) == (2, 2)


def test_a_locale_cell_of_spaces_is_empty_not_a_warning() -> None:
    """It gave "Unknown locale '': the workspace default is used" and a warning per row."""
    staged, tally = classify(b"email,locale\nada@example.com, \nbob@example.com,  \t\n"
                             b"cy@example.com, \n")  # fmt: skip
    assert [(row[5], row[6], row[7]) for row in staged] == [(None, VALID, None)] * 3
    assert tally.warnings == 0


def test_a_duplicate_does_not_add_a_locale_warning() -> None:
    staged, tally = classify(b"email,locale\nada@example.com,klingon\nADA@example.com,klingon\n")

    assert [r[6] for r in staged] == [VALID, DUPLICATE]
    assert tally.warnings == 1


# --- cells `referral-bot export` neutralised -------------------------------------------------


def test_the_quote_export_puts_before_a_formula_is_taken_off() -> None:
    """export writes =SUM(A1) as '=SUM(A1); reading it back gives =SUM(A1) (issue 7)."""
    data = samples.csv_bytes(
        [
            ["first_name", "last_name", "email", "locale"],
            ["'=SUM(A1)", "'+Plus", "sum@example.com", "en"],  # plain email: the fast path
            ["'-Dash", "'@At", "'-dash@example.com", "fr"],  # quoted email: the slow path
            ["'@At", "'=1+2", "'=eq@example.com", ""],
            ["Plus", "Local", "'+plus@example.com", "de"],
            ["  '=Spaced ", "'\tTab", "' -x@example.com", ""],  # trimmed around the quote
        ]
    )

    staged, tally = classify(data)

    assert [(r[1], r[2], r[3], r[4], r[6]) for r in staged] == [
        ("sum@example.com", "sum@example.com", "=SUM(A1)", "+Plus", VALID),
        ("-dash@example.com", "-dash@example.com", "-Dash", "@At", VALID),
        ("=eq@example.com", "=eq@example.com", "@At", "=1+2", VALID),
        ("+plus@example.com", "+plus@example.com", "Plus", "Local", VALID),
        ("' -x@example.com", "", "=Spaced", "Tab", REJECTED),  # ' then a space: not export's
    ]
    assert tally.valid == 4


def test_a_quote_that_export_did_not_add_is_kept() -> None:
    data = samples.csv_bytes(
        [
            ["email", "first_name", "last_name"],
            ["tis@example.com", "'Tis", "O'Neil"],
            ["q@example.com", "'", "''=x"],  # only one quote comes off
            ["'ann@example.com", "Ann", "'"],
        ]
    )

    staged, _ = classify(data)

    assert [(r[1], r[3], r[4], r[6]) for r in staged] == [
        ("tis@example.com", "'Tis", "O'Neil", VALID),
        ("q@example.com", "'", "''=x", VALID),
        ("'ann@example.com", "Ann", "'", VALID),  # a quote is allowed in an address
    ]


def test_a_quoted_duplicate_is_a_duplicate_of_the_unquoted_address() -> None:
    staged, _ = classify(b"email\n-dash@example.com\n'-dash@example.com\n'-DASH@example.com\n")

    assert [(r[1], r[6]) for r in staged] == [
        ("-dash@example.com", VALID),
        ("-dash@example.com", DUPLICATE),
        ("-DASH@example.com", DUPLICATE),
    ]


def test_a_neutralised_name_at_the_length_cap_keeps_every_character() -> None:
    name = "=" + "x" * (MAX_NAME - 1)
    data = samples.csv_bytes([["email", "first_name"], ["a@example.com", "'" + name]])

    staged, _ = classify(data)

    assert staged[0][3] == name


def test_a_quoted_locale_is_unquoted_before_it_is_checked() -> None:
    staged, tally = classify(b"email,locale\nada@example.com,'-fr\n")

    assert staged[0][7] == "Unknown locale '-fr': the workspace default is used"
    assert tally.warnings == 1


def test_formula_starts_match_what_export_neutralises() -> None:
    from bot.imports import batches

    assert FORMULA_START == batches._FORMULA_START
    cells = ["=SUM(A1)", "+Plus", "-dash@example.com", "@At", "\tTab", "\rCR", "Ada", "'Tis", ""]
    assert [unquote(c) for c in batches.neutralise(cells)] == cells


def test_big_generated_file_counts() -> None:
    staged, tally = classify(samples.big_csv(20_000))

    assert tally.rows == 20_000
    bad = sum(1 for r in staged if r[1].count("@") == 2)
    assert tally.rejected == bad > 0
    assert tally.duplicates > 0
    assert len({r[2] for r in staged if r[6] == VALID}) == tally.valid


def test_outcome_spellings_match_the_model() -> None:
    from bot.imports import rows
    from models import Outcome

    assert (rows.VALID, rows.DUPLICATE, rows.REJECTED) == (
        Outcome.VALID, Outcome.DUPLICATE, Outcome.REJECTED,
    )  # fmt: skip
