"""The invite's MIME message: headers (RFC 8058, stable Message-ID), UTF-8, both bodies."""

from __future__ import annotations

import email
import email.policy
import io
import re
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from bot.email import TEMPLATE_LOCALES, build_message, message_id_for, render_invite
from bot.email.send import _flatten, _prebuilt_text
from tests.email.invites import make_invite


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_headers_bodies_and_names_survive_the_wire() -> None:
    invite = make_invite()
    rendered = render_invite(invite)
    data = build_message(invite, rendered, public_host="referral-bot.example.com").as_bytes()

    assert data.isascii()  # encoded words and QP/base64 bodies: any relay can carry it
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    back = parse(data)
    assert back["From"] == "Café Zoë <hello@shop.example>"
    assert back["To"] == "francois.dupont@example.org"
    assert back["Subject"] == rendered.subject
    assert "François" in back["Subject"]
    assert back["Date"] is not None
    assert back["List-Unsubscribe"] == f"<{invite.unsubscribe_url}>"
    assert back["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert back["Content-Language"] == "fr"
    assert back.get_content_type() == "multipart/alternative"
    plain = back.get_body(("plain",))
    rich = back.get_body(("html",))
    assert plain is not None and rich is not None
    # Encoded text bodies carry CRLF line endings, as MIME text on the wire does.
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
    assert rich.get_content().replace("\r\n", "\n") == rendered.html


def test_japanese_names_survive() -> None:
    invite = make_invite(first_name="悠斗", locale="ja", sender="東京ストア <hi@shop.example>")
    rendered = render_invite(invite)
    back = parse(build_message(invite, rendered, public_host="bot.example").as_bytes())
    assert back["Subject"].startswith("悠斗様")
    assert back["From"] == "東京ストア <hi@shop.example>"
    plain = back.get_body(("plain",))
    assert plain is not None and plain.get_content().startswith("悠斗様")


@pytest.mark.parametrize("sender", [
    "Boutique Éloïse — Vêtements & Accessoires pour toute la famille <hello@shop.example>",
    "東京ストア・ファッションとアクセサリーの専門店・東京ストア・ファッション <hi@shop.example>",
    # the name fits one line, not with the address after it (82 characters)
    "Boutique Éloïse <bonjour@boutique-eloise-paris.example>",
])
def test_long_non_ascii_headers_fold_within_the_encoded_word_line_limit(sender: str) -> None:
    """A long non-ASCII sender name was folded as if "From: " weren't before it, and both it
    and the Subject at 78 characters: first lines of 77 to 84, past the 76 RFC 2047 allows a
    line holding encoded words."""
    invite = make_invite(sender=sender, store_name=sender.partition(" <")[0])
    rendered = render_invite(invite)
    data = build_message(invite, rendered, public_host="bot.example").as_bytes()
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    encoded = [line for line in head.split("\r\n") if "=?" in line]
    assert encoded and max(len(line) for line in encoded) <= 76, head
    assert parse(data)["Subject"] == rendered.subject
    # the words of a folded name join with nothing between them (RFC 2047 section 6.2), as
    # mail clients read them; Python's address parser puts a space at each fold
    raw_from = email.message_from_bytes(data, policy=email.policy.compat32)["From"]
    assert str(make_header(decode_header(raw_from))) == sender


@pytest.mark.parametrize("first_name", ["A" * 200, "Ann", "Ada" + "x" * 80])
def test_a_subject_with_a_word_too_long_to_fold_reads_back_as_written(first_name: str) -> None:
    """A first name of 200 letters (a file's notes pasted into the name column) folded the
    Subject before it: read back, it started with a space."""
    invite = make_invite(first_name=first_name, locale="en", store_name="Shop")
    rendered = render_invite(invite)
    assert rendered.subject.isascii()  # no other reason to encode it
    data = build_message(invite, rendered, public_host="bot.example").as_bytes()
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert parse(data)["Subject"] == rendered.subject
    assert rendered.subject.startswith(first_name)


def test_message_id_is_stable_per_invite_and_unique_per_key() -> None:
    invite = make_invite()
    first = build_message(invite, render_invite(invite), public_host="x.example")
    again = build_message(invite, render_invite(invite), public_host="x.example")
    other_invite = make_invite(message_key="c12-a35")
    other = build_message(other_invite, render_invite(other_invite), public_host="x.example")

    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] != other["Message-ID"]
    assert re.fullmatch(r"<invite\.c12-a34\.[0-9a-f]{16}@shop\.example>", first["Message-ID"])


def test_message_id_uses_public_host_when_the_sender_has_no_domain() -> None:
    invite = make_invite(sender="Shop <hello>")
    message = build_message(invite, render_invite(invite), public_host="https://bot.example:8443/")
    assert str(message["Message-ID"]).endswith("@bot.example>")


def test_message_id_of_an_odd_key_is_still_one_valid_token() -> None:
    odd = message_id_for("team T1 / <camp> 7", "shop.example")
    similar = message_id_for("team T1 _ <camp> 7", "shop.example")
    assert re.fullmatch(r"<invite\.[A-Za-z0-9._-]+@shop\.example>", odd)
    assert odd != similar
    with pytest.raises(ValueError, match="message_key"):
        message_id_for("", "shop.example")


def test_a_sender_that_is_not_one_address_is_refused() -> None:
    invite = make_invite(sender="a@shop.example, b@shop.example")
    with pytest.raises(ValueError, match="sender"):
        build_message(invite, render_invite(invite), public_host="bot.example")


@pytest.mark.parametrize("eight_bit", [True, False], ids=["8bitmime", "7bit"])
def test_the_fast_serialisation_is_byte_for_byte_the_generators(eight_bit: bool) -> None:
    names = ["François", "悠斗", "<b>Ann & Bob</b>", "x" * 90]
    # a real unsubscribe link is longer than a header line may be: one unbreakable token
    long_link = "https://referral-bot.example.com/u/VDAwMDEuMTIzNDU2.fTooqLS_72cqVKXDYpHqaA"
    for index, locale in enumerate(TEMPLATE_LOCALES):
        invite = make_invite(locale=locale, first_name=names[index % len(names)],
                             unsubscribe_url=long_link if index % 2 else
                             "https://referral-bot.example.com/u/3f9a?sig=abc")  # fmt: skip
        message = build_message(invite, render_invite(invite), public_host="bot.example")
        buffer = io.BytesIO()
        policy = email.policy.SMTP.clone(cte_type="8bit" if eight_bit else "7bit")
        BytesGenerator(buffer, policy=policy).flatten(message)

        assert _prebuilt_text(message) is not None  # build_message's messages take the fast path
        assert _flatten(message, utf8=False, eight_bit=eight_bit) == buffer.getvalue()


def test_a_message_the_fast_path_cant_take_goes_through_the_generator() -> None:
    invite = make_invite()
    message = build_message(invite, render_invite(invite), public_host="bot.example")
    message["X-Campaign"] = "Été 2026"  # a header object, not pre-encoded text
    message["Bcc"] = "audit@shop.example"

    assert _prebuilt_text(message) is None
    back = parse(_flatten(message, utf8=False, eight_bit=False))
    assert back["X-Campaign"] == "Été 2026"
    assert back["Bcc"] is None  # never on the wire
    assert back["Message-ID"] == message["Message-ID"]


@pytest.mark.parametrize("to_email", ["josé@example.org", "jose@example.org"],
                         ids=["smtputf8", "header-object"])
def test_a_long_unsubscribe_link_stays_a_url_through_the_generator(to_email: str) -> None:
    """RFC 8058's one-click unsubscribe needs List-Unsubscribe as `<URL>`: for an address that
    needs SMTPUTF8 (or any message the fast path can't take) the generator refolded the long
    link into RFC 2047 encoded words (`=?utf-8?q?=3Chttps...`), which mail providers don't
    decode there, so their unsubscribe button was gone."""
    link = ("https://referral-bot.example.com/u/VDAwMDEuMTIzNDU2LjE3MDAwMDAwMDA."
            "fTooqLS_72cqVKXDYpHqaAbcdefghij")  # longer than a header line, on its own
    invite = make_invite(to_email=to_email, unsubscribe_url=link)
    message = build_message(invite, render_invite(invite), public_host="bot.example")
    message["X-Campaign"] = "Été 2026"  # a header object: the generator path either way

    data = _flatten(message, utf8=not to_email.isascii(), eight_bit=True)
    (header,) = re.findall(rb"^List-Unsubscribe:(.*?)\r\n(?! )", data, re.M | re.S)
    assert b"=?" not in header and header.strip() == f"<{link}>".encode()
    assert parse(data)["List-Unsubscribe"].strip() == f"<{link}>"
