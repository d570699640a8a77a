"""Invites built from what a merchant imports or types, sent over real SMTP (aiosmtpd on
loopback): control characters, bidi overrides, addresses a relay can't take, odd stores."""

from __future__ import annotations

import unicodedata
from collections import Counter
from email.headerregistry import Address
from email.message import EmailMessage

from bot.campaigns.invites import Links, send_invites
from bot.campaigns.reports import failed_invites
from bot.email.send import SmtpSender, parse_smtp_url
from tests.campaigns.conftest import SECRET, TEAM, World, people
from tests.email.smtp_server import Server, smtp_server

LINKS = Links("https://bot.example", SECRET)


async def _enrolled(world: World, *rows: str, **campaign: object) -> int:
    await world.import_csv("VIP", people(*rows))
    spring = await world.campaign(**campaign)
    await world.target(spring, "VIP")
    return int(str(await world.scalar("SELECT MAX(id) FROM enrollment")))


async def _send(world: World, server: Server, enrollment: int) -> None:
    await send_invites(world.db, TEAM, enrollment, sender=SmtpSender(parse_smtp_url(server.url)),
                       links=LINKS)  # fmt: skip


def _by_recipient(server: Server) -> dict[str, EmailMessage]:
    return {m.rcpt_tos[0]: m.parsed() for m in server.handler.messages}


def _from(message: EmailMessage) -> Address:
    return message["From"].addresses[0]


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


def _controls(text: str) -> set[str]:
    """The control characters in `text` but the line breaks a body is made of."""
    return {c for c in text if unicodedata.category(c) == "Cc" and c not in "\r\n"}


async def test_control_characters_in_names_and_the_sender_never_reach_the_email(
    world: World,
) -> None:
    """A name from a spreadsheet or Mailchimp with ESC, SOH or DEL in it, and a sender typed
    with one, went into the Subject and From as raw bytes (RFC 5322 allows only visible
    characters there; a terminal mail reader ran the escape sequence), or encoded into
    encoded words that decode to them."""
    enrollment = await _enrolled(world, "ana@example.com,An\x01a\x7f,en",
                                 "zoe@example.com,Zo\x1b[31më,fr",
                                 sender="Sh\x1bop <hello@shop.example>")  # fmt: skip
    async with smtp_server() as server:
        await _send(world, server, enrollment)
    received = {m.rcpt_tos[0]: m.content for m in server.handler.messages}
    assert set(received) == {"ana@example.com", "zoe@example.com"}
    for content in received.values():
        assert not {b for b in content if (b < 32 and b not in b"\r\n") or b == 127}
    ana, zoe = (_by_recipient(server)[to] for to in ("ana@example.com", "zoe@example.com"))
    assert str(ana["Subject"]) == "Ana, share Shop with your friends"
    assert str(zoe["Subject"]).startswith("Zo[31më, ")
    for message in (ana, zoe):
        assert _from(message).display_name == "Shop"
        for text in (str(message["Subject"]), _body(message, "plain"), _body(message, "html")):
            assert not _controls(text), text


async def test_a_bidi_override_in_the_senders_name_is_dropped_from_the_from(
    world: World,
) -> None:
    """"\u202eShop" as the sender's name reversed the From line as mail clients show it
    ("<elpmaxe.pohs@olleh> pohS"): the subject dropped the override, the From kept it."""
    enrollment = await _enrolled(world, "ana@example.com,Ana,en",
                                 sender="\u202eShop\u202c <hello@shop.example>")  # fmt: skip
    async with smtp_server() as server:
        await _send(world, server, enrollment)
    ana = _by_recipient(server)["ana@example.com"]
    assert _from(ana).display_name == "Shop"
    assert _from(ana).addr_spec == "hello@shop.example"
    assert str(ana["Subject"]) == "Ana, share Shop with your friends"


async def test_an_address_with_accents_before_the_at_fails_alone_and_says_why(
    world: World,
) -> None:
    """josé@example.com can't go through a relay without SMTPUTF8: that invite fails for good
    (a retry can't help), the others go out, and its reason read "refused: None …"."""
    enrollment = await _enrolled(world, "a@example.com,A,en", "josé@example.com,José,fr",
                                 "b@example.com,B,en")  # fmt: skip
    async with smtp_server(enable_SMTPUTF8=False) as server:
        await _send(world, server, enrollment)
        await _send(world, server, enrollment)  # a second run doesn't try it again
    assert Counter(to for m in server.handler.messages for to in m.rcpt_tos) == Counter(
        {"a@example.com": 1, "b@example.com": 1})  # fmt: skip
    assert await world.rows("SELECT c.email, i.state, i.attempts FROM invite i JOIN contact c "
                            "ON c.id = i.contact_id ORDER BY c.email") == [
        ("a@example.com", "sent", 1), ("b@example.com", "sent", 1),
        ("josé@example.com", "failed", 1)]  # fmt: skip
    [(email, why)] = await failed_invites(world.db, TEAM, enrollment)
    assert email == "josé@example.com"
    assert "None" not in why
    assert why.startswith("failed: refused: ") and "SMTPUTF8" in why


async def test_a_store_on_an_ipv6_address_without_a_sender_is_named_whole_in_the_from(
    world: World,
) -> None:
    """Without a sender, the From is the store's host at invites@ the bot's host: a store at
    http://[2001:db8::1]/ (a private network's address is kept) was written unquoted and
    read as a group, and the invite came from "1"."""
    enrollment = await _enrolled(world, "ana@example.com,Ana,en", sender="",
                                 store_url="http://[2001:db8::1]/")  # fmt: skip
    async with smtp_server() as server:
        await _send(world, server, enrollment)
    ana = _by_recipient(server)["ana@example.com"]
    assert _from(ana).display_name == "2001:db8::1"
    assert _from(ana).addr_spec == "invites@bot.example"
    assert str(ana["Subject"]) == "Ana, share 2001:db8::1 with your friends"
