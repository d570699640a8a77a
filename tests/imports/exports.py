"""Contact exports as the tools people use write them, built in code, for the import tests.

Shapes follow each tool's documented export: Shopify's customer CSV (Customer ID, First Name,
Last Name, Email, Accepts Email Marketing, Default Address ..., with a BOM), Mailchimp's
audience export (a ZIP of subscribed, unsubscribed and cleaned members, each with Email
Address, First Name, Last Name, MEMBER_RATING, OPTIN_TIME, ... and UNSUB_* or CLEAN_*
columns), HubSpot's contacts export (Record ID, First Name, Last Name, Email, Marketing
contact status, Preferred language as a language name), Klaviyo's profiles (Email Marketing
Consent: SUBSCRIBED, NEVER_SUBSCRIBED, UNSUBSCRIBED), a French spreadsheet and an .xlsx saved
by openpyxl.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import openpyxl

from tests.imports import csv_samples as samples

UNSUB_COLUMNS = ["UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
                 "UNSUB_REASON_OTHER"]  # fmt: skip
CLEAN_COLUMNS = ["CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"]
SUBSCRIBED_CSV = "subscribed_members_export_1a2b3c.csv"
UNSUBSCRIBED_CSV = "unsubscribed_members_export_1a2b3c.csv"
CLEANED_CSV = "cleaned_members_export_1a2b3c.csv"


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def mailchimp_members(extra: list[str], *people: tuple[str, str, str]) -> bytes:
    """One of Mailchimp's member exports: (email, first, last) per member, the extra columns
    (UNSUB_* or CLEAN_*) filled with what Mailchimp writes there."""
    header = [*samples.MAILCHIMP_HEADER, *extra]
    rows: list[list[str]] = [header]
    for email, first, last in people:
        row = [email, first, last, "", "", "", "2", "2023-01-05 10:00:00", "", "", "", "", "",
               "", "", "", "", "", "2024-02-01 09:30:00", "123456", "abc123", "", ""]  # fmt: skip
        row += ["2024-03-01 12:00:00", "Spring sale", "c0ffee", "NORMAL", ""][: len(extra)]
        rows.append(row)
    return samples.csv_bytes(rows)


def mailchimp_subscribed() -> bytes:
    return mailchimp_members([], ("ada@example.com", "Ada", "Lovelace"),
                             ("li@example.cn", "Li", "Wei"))  # fmt: skip


def mailchimp_unsubscribed() -> bytes:
    return mailchimp_members(UNSUB_COLUMNS, ("gone@example.com", "Gone", "Away"))


def mailchimp_cleaned() -> bytes:
    return mailchimp_members(CLEAN_COLUMNS, ("bounced@example.com", "Bo", "Unced"),
                             ("typo@exmaple.com", "Ty", "Po"))  # fmt: skip


def mailchimp_zip() -> bytes:
    """Mailchimp's audience export as downloaded (a Mac adds its resource forks if re-zipped)."""
    return zip_bytes({
        SUBSCRIBED_CSV: mailchimp_subscribed(),
        UNSUBSCRIBED_CSV: mailchimp_unsubscribed(),
        CLEANED_CSV: mailchimp_cleaned(),
        "__MACOSX/._subscribed_members_export_1a2b3c.csv": b"\x00\x05\x16\x07",
        "readme.txt": b"Exported from Mailchimp",
    })  # fmt: skip


def shopify_customers() -> bytes:
    """Shopify's customer export (Customers > Export), with a BOM and a multi-line note."""
    return samples.shopify_customers()


HUBSPOT_HEADER = ["Record ID", "First Name", "Last Name", "Email", "Phone Number",
                  "Contact owner", "Lifecycle Stage", "Marketing contact status",
                  "Create Date", "Preferred language"]  # fmt: skip


def hubspot_contacts() -> bytes:
    """HubSpot's contacts export: the language as HubSpot shows it, its marketing status."""
    return samples.csv_bytes([
        HUBSPOT_HEADER,
        ["501", "Amélie", "Poulain", "amelie@example.fr", "+33 1 23 45 67 89", "Sam Owner",
         "Customer", "Marketing contact", "2024-01-02 10:00", "French"],
        ["502", "Hans", "Meier", "hans@example.de", "", "Sam Owner", "Lead",
         "Non-marketing contact", "2024-01-03 11:00", "German"],
        ["503", "Pat", "Doe", "pat@example.com", "", "", "Lead", "Marketing contact",
         "2024-01-04 12:00", ""],
    ])  # fmt: skip


KLAVIYO_HEADER = ["Email", "First Name", "Last Name", "Phone Number", "Email Marketing Consent",
                  "Email Marketing Consent Timestamp", "Klaviyo ID", "Created"]  # fmt: skip


def klaviyo_profiles() -> bytes:
    """Klaviyo's profile export, with one consent value that isn't Klaviyo's (edited by hand)."""
    def person(email: str, consent: str) -> list[str]:
        return [email, "K", "Profile", "", consent, "2024-01-01T00:00:00", "01HXYZ", "2023-12-01"]

    return samples.csv_bytes([
        KLAVIYO_HEADER,
        person("sub@example.com", "SUBSCRIBED"),
        person("never@example.com", "NEVER_SUBSCRIBED"),
        person("unsub@example.com", "UNSUBSCRIBED"),
        person("maybe1@example.com", "MAYBE"),
        person("maybe2@example.com", "maybe"),
    ])  # fmt: skip


def french_spreadsheet() -> bytes:
    """A list kept by hand in French Excel: `;` separated, cp1252, French headers."""
    rows = [
        ["Prénom", "Nom", "Courriel", "Langue", "Ville"],
        ["Élodie", "Martin", "elodie@example.fr", "Français", "Lyon"],
        ["Luc", "Bernard", "luc@example.fr", "fr_CA", "Montréal"],
        ["Zoé", "Durand", "zoe@example.fr", "", "Paris"],
    ]
    return samples.csv_bytes(rows, delimiter=";", encoding="cp1252")


def xlsx_workbook() -> bytes:
    """A workbook saved by openpyxl: a customers sheet (dates, numbers, a language column), an
    empty sheet, then a notes sheet with data of its own."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Customers"
    sheet.append(["E-mail", "Vorname", "Nachname", "Sprache", "Kunde seit", "Bestellungen"])
    sheet.append(["jurgen@example.de", "Jürgen", "Müller", "Deutsch", dt.date(2021, 5, 4), 12])
    sheet.append(["ana@example.es", "Ana", "García", "es", dt.datetime(2022, 1, 2, 9, 30), 3.5])
    sheet.append([None, None, None, None, None, None])  # a blank row in the middle
    sheet.append([4155550123, "Phone", "Number", None, None, None])  # a number, not an email
    book.create_sheet("Empty")
    notes = book.create_sheet("Notes")
    notes.append(["Remember to call Ana"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
