"""Headers as Shopify, Mailchimp, HubSpot, Klaviyo and people in four languages write them, and
consent values as those tools spell them: understood, or reported, never guessed."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

import pytest

from bot.imports.reading import map_header
from bot.imports.recognise import (
    CLEANED_REASON,
    MAX_NOTE,
    consent_note,
    join_notes,
    overlong_note,
    recognise,
)
from bot.imports.rows import REJECTED, VALID, Classifier, Tally, consent_of


@pytest.mark.parametrize(
    ("email", "first", "last", "language"),
    [
        ("Email Address", "First Name", "Last Name", "Language"),  # Mailchimp
        ("Email", "First Name", "Last Name", "Preferred language"),  # HubSpot
        ("E-mail", "Given name", "Family name", "Locale"),
        ("Work Email", "fname", "lname", "lang"),
        ("Work Email Address", "Forename", "Surname", "Language code"),
        ("Courriel", "Prénom", "Nom", "Langue"),
        ("Adresse e-mail", "Prenom", "Nom de famille", "Langue préférée"),
        ("E-Mail-Adresse", "Vorname", "Nachname", "Sprache"),
        ("Correo electrónico", "Nombre", "Apellido", "Idioma"),
        ("correo_electronico", "nombre", "apellidos", "idioma"),
        ("billing_email", "Billing First Name", "billing_last_name", "Language"),  # WooCommerce
        ("メールアドレス", "名", "姓", "言語"),
        ("电子邮件", "名字", "姓氏", "语言"),
        ("이메일", "이름", "성", "언어"),
    ],
)
def test_header_aliases(email: str, first: str, last: str, language: str) -> None:
    columns = map_header(["Id", email, first, last, "Phone", language])
    assert (columns.email, columns.first_name, columns.last_name, columns.locale) == (1, 2, 3, 5)


def test_a_whole_name_column_is_found_and_a_specific_one_preferred() -> None:
    assert map_header(["Email", "Name"]).full_name == 1  # Stripe
    assert map_header(["Email", "Full name", "Phone"]).full_name == 1
    # a Shopify order export: "Name" is the order's number, "Billing Name" the customer's
    assert map_header(["Name", "Email", "Billing Name"]).full_name == 2
    assert map_header(["Email", "Phone"]).full_name is None


def test_accents_typed_as_two_characters_still_match() -> None:
    decomposed = unicodedata.normalize("NFD", "Prénom")  # how macOS may write it
    assert map_header(["Courriel", decomposed]).first_name == 1


@pytest.mark.parametrize(
    "header",
    ["Accepts Email Marketing", "Email Marketing Status", "Marketing contact status",
     "Email Marketing Consent", "email_opt_in", "Subscription Status"],
)  # fmt: skip
def test_consent_column_aliases(header: str) -> None:
    assert map_header(["email", header]).subscribed == 1


@pytest.mark.parametrize(
    ("raw", "subscribed"),
    [
        ("SUBSCRIBED", True), ("subscribed", True), ("UNSUBSCRIBED", False),
        ("NEVER_SUBSCRIBED", False), ("never subscribed", False), ("NOT_SUBSCRIBED", False),
        ("opted in", True), ("Opted-In", True), ("opt-in", True), ("OPTIN", True),
        ("opted out", False), ("opt-out", False), ("Opt Out", False), ("pending", False),
        ("Marketing contact", True), ("Non-marketing contact", False), ("cleaned", False),
        (" yes ", True), ("N", False), ("1", True), ("FALSE", False), ("Opted  in", True),
        ("maybe", None), ("oui", None), ("", None),
    ],
)  # fmt: skip
def test_consent_values(raw: str, subscribed: bool | None) -> None:
    assert consent_of(raw) is subscribed


def test_unrecognised_consent_values_are_counted_with_the_value() -> None:
    classifier = Classifier()
    records = [(2, ["a@example.com", "Maybe"]), (3, ["b@example.com", "opt-in"]),
               (4, ["c@example.com", "Maybe"]), (5, ["d@example.com", "later"]),
               (6, ["a@example.com", "whenever"])]  # fmt: skip
    rows = list(classifier.records(records, map_header(["email", "subscribed"])))
    assert [(r[6], r[8]) for r in rows] == [(VALID, False), (VALID, True), (VALID, False),
                                            (VALID, False), ("duplicate", False)]  # fmt: skip
    tally = classifier.tally
    assert (tally.warnings, tally.consent_unread, tally.consent_values) == (
        3, 3, {"Maybe": 2, "later": 1})  # fmt: skip
    note = consent_note(tally) or ""
    assert note.startswith("3 rows have a consent value we don't recognise: “Maybe” (2), "
                           "“later” (1).")  # fmt: skip
    assert consent_note(Tally()) is None


def test_distinct_unread_values_are_capped() -> None:
    one = Tally()
    for i in range(15):
        one._unread(f"v{i}")
    one._unread("v0", 4)
    one.consent_unread = 19
    assert one.consent_unread == 19 and len(one.consent_values) == 10
    assert one.consent_values["v0"] == 5
    # the note names the first five and counts the rest: it named five values of 19 rows
    # and said nothing of the other 10 rows, nor of values past the ten remembered
    assert (consent_note(one) or "").startswith(
        "19 rows have a consent value we don't recognise: “v0” (5), “v1” (1), “v2” (1), "
        "“v3” (1), “v4” (1) and 10 more rows with other values. They are")  # fmt: skip


def test_a_file_kind_overrides_the_consent_column_or_skips_every_row() -> None:
    columns = map_header(["Email Address", "First Name", "subscribed"])
    records = [(2, ["a@example.com", "Ada", "yes"]), (3, ["bad@", "B", ""]), (4, "Malformed")]
    unsubscribed = recognise("x.csv", ["Email Address", "UNSUB_TIME"]).classifier(set())
    rows = list(unsubscribed.records(records, columns))
    assert [(r[1], r[6], r[8]) for r in rows] == [
        ("a@example.com", VALID, False), ("bad@", REJECTED, False), ("", REJECTED, None)]
    cleaned = recognise("x.csv", ["Email Address", "CLEAN_TIME"]).classifier(set())
    rows = list(cleaned.records(records, columns))
    assert [(r[1], r[3], r[6], r[7]) for r in rows] == [
        ("a@example.com", "Ada", REJECTED, CLEANED_REASON), ("bad@", "B", REJECTED, CLEANED_REASON),
        ("", "", REJECTED, "Malformed")]  # fmt: skip
    assert (cleaned.tally.rows, cleaned.tally.rejected, cleaned.seen) == (3, 3, set())


def test_what_is_recognised() -> None:
    assert recognise("contacts.csv", ["email"]).plain
    assert recognise("contacts.csv", ["email"]).note is None
    assert not recognise("members.csv", ["Email Address", "UNSUB_TIME"]).plain
    assert recognise("subscribed_members_export_1.csv", ["Email Address"]).plain
    transactional = recognise("nonsubscribed_members_export_1.csv", ["Email Address"])
    assert transactional.subscribed is False and "never opted in" in (transactional.note or "")


def test_the_note_on_cells_past_the_header_names_the_first_lines_and_counts_the_rest() -> None:
    columns = replace(map_header(["email", "first_name"]), width=2)  # as the reader gives them
    classifier = Classifier()
    records = [(line, [f"p{line}@example.com", "Name", "more"]) for line in range(2, 10)]
    rows = list(classifier.records(records, columns))
    assert [r[6] for r in rows] == [VALID] * 8  # imported from the cells the header names
    assert (overlong_note(classifier.tally) or "").startswith(
        "8 rows have more cells than the header has columns (lines 2, 3, 4, 5, 6 and 3 more): ")
    one = Classifier()
    list(one.records([(7, ["a@example.com", "", " "]), (9, ["b@example.com", "B", "x"])],
                     columns))
    assert (overlong_note(one.tally) or "").startswith("1 row has more cells than the header "
                                                       "has columns (line 9): ")  # fmt: skip
    assert overlong_note(Tally()) is None


def test_notes_too_long_together_are_cut_where_it_shows() -> None:
    """The consent note and the note on cells past the header share a 500-character field:
    the second was cut off mid-sentence without a sign ("(lines 20,000, 20,001,")."""
    long, other = "a" * 300 + ".", "b" * 250 + "."
    joined = join_notes([long, other]) or ""
    assert len(joined) == MAX_NOTE and joined.startswith(long + "\n") and joined.endswith("…")
    assert join_notes([long, "x" * 60, "y" * 300]) == f"{long}\n{'x' * 60}\n{'y' * 136}…"
    assert join_notes(["a" * 460, "b" * 100]) == "a" * 460  # 39 left: not worth a cut note
    assert join_notes([None, "", "c."]) == "c." and join_notes([None]) is None
