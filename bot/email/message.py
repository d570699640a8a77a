"""An invite as a MIME message: text + HTML, one-click unsubscribe, a stable Message-ID.

Headers are stored already encoded (`set_raw`) and the bodies already transfer-encoded, so
the message serialises without the `email` package's header parser and refolder, which
cost ~4 ms per invite on a small VM (more than sending it over a reused connection). Reading
a header back (`message["Subject"]`) still parses and decodes it as usual.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import hashlib
import re
import secrets
from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from bot.email.render import Invite, Rendered, one_line, without_scopes
from bot.hosts import ascii_host

# CRLF line endings, 7-bit bodies (quoted-printable or base64, whichever is shorter), headers
# written as stored: the same bytes travel through any relay, with or without 8BITMIME, and
# into .eml files. Non-ASCII header text (François, 悠斗) goes out as RFC 2047 encoded words.
MESSAGE_POLICY = email.policy.SMTP.clone(cte_type="7bit", refold_source="none")

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_LOCALE_TAG = re.compile(r"[A-Za-z0-9-]{1,35}")
_MAX_7BIT_LINE = 76


def message_id_for(message_key: str, domain: str) -> str:
    """A Message-ID that is the same every time this invite is built, and differs per key.

    `email.utils.make_msgid` mixes in the time and a random number even with `idstring`, so a
    retried or re-built invite would look like a new message. The key, made header-safe, keeps
    the id readable; the hash of the raw key keeps two keys that clean up alike apart.
    """
    if not message_key:
        raise ValueError("message_key is empty: every invite needs a stable, unique key")
    readable = _UNSAFE_ID_CHARS.sub("_", message_key).strip("._")[:64] or "x"
    digest = hashlib.sha256(message_key.encode("utf-8")).hexdigest()[:16]
    return f"<invite.{readable}.{digest}@{domain}>"


def _host_only(public_host: str) -> str:
    """`https://bot.example:8443/x` or `bot.example:8443` -> `bot.example`."""
    host = public_host.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].rsplit("@", 1)[-1]
    if host.startswith("["):  # an IPv6 literal keeps its brackets, loses its port
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0].lower()


def _one_line(text: str) -> str:
    """Header text on one line: a CR or LF in a name must never start a header of its own,
    and no other control character is written raw or encoded (render.one_line)."""
    return one_line(text)


_FOLDABLE = 60  # the longest word a header line of 78 characters folds around, with its name
# RFC 2047 section 2: a line holding encoded words is at most 76 characters (Header folds at
# 78 unless told: a long non-ASCII sender's or subject's first line came to 77-84)
ENCODED_LINE = 76


def _encoded_text(text: str, name: str) -> str:
    """Unstructured header text: ASCII as is (folded), anything else as encoded words.

    A word too long to fold (a first name of 300 letters) is encoded too: as is, the header
    was folded before it and read back starting with a space."""
    text = _one_line(text)
    plain = text.isascii() and "=?" not in text and all(len(w) <= _FOLDABLE for w in text.split())
    if plain:
        return Header(text, "us-ascii", header_name=name).encode()
    return Header(text, "utf-8", header_name=name, maxlinelen=ENCODED_LINE).encode()


def _address(value: str, what: str) -> tuple[str, str]:
    """(display name, address) of exactly one address, or a ValueError naming `what`."""
    found = getaddresses([_one_line(value)])
    if len(found) != 1 or not found[0][1] or any(c.isspace() for c in found[0][1]):
        raise ValueError(f"{what} must be one address like 'Shop <hello@shop.example>': {value!r}")
    return found[0]


def ascii_domain(address: str) -> str:
    """`ana@bücher.de` -> `ana@xn--bcher-kva.de`: an internationalised domain goes as its
    A-label, valid everywhere, so only a non-ASCII local part needs the server's SMTPUTF8
    (most relays have none, and the invite failed for good). Anything else as it is."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    host = ascii_host(domain)
    return f"{local}@{host}" if host is not None else address


def parse_sender(sender: str) -> tuple[str, str]:
    """(display name, address) of a From value, read as `build_message` reads it: a
    ValueError unless it is exactly one address. A campaign's form checks its sender with
    this, so a sender it accepts is one every invite can be built with."""
    return _address(sender, "sender")


def quoted(name: str) -> str:
    """`name` as an RFC 5322 quoted string: its backslashes and double quotes escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encoded_address(name: str, address: str) -> str:
    """`Name <addr>` with the name quoted or encoded as needed (the address must be ASCII)."""
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        return f"{quoted(name)} <{address}>"
    # folded counting "From: " before it (ENCODED_LINE)
    encoded = Header(name, "utf-8", header_name="From", maxlinelen=ENCODED_LINE).encode()
    # the address on the last encoded line only if that line stays within ENCODED_LINE:
    # counted without it, "Boutique Éloïse" with a long address made an 82-character line
    last = encoded.rsplit("\n", 1)[-1]
    width = len(last) + (0 if "\n" in encoded else len("From: "))
    fold = " " if width + len(f" <{address}>") <= ENCODED_LINE else "\n "
    return f"{encoded}{fold}<{address}>"


def _text_part(text: str, subtype: str) -> EmailMessage:
    """One text/* part, transfer-encoded in C (binascii) rather than by `set_content`."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    part = EmailMessage(policy=MESSAGE_POLICY)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    if data.isascii() and all(len(line) <= _MAX_7BIT_LINE for line in data.split(b"\n")):
        encoding, body = "7bit", data
    else:
        quoted = binascii.b2a_qp(data, istext=True)
        encoded = base64.encodebytes(data)
        encoding, body = (
            ("quoted-printable", quoted) if len(quoted) <= len(encoded) else ("base64", encoded)
        )
    part.set_raw("Content-Transfer-Encoding", encoding)
    part.set_payload(body.decode("ascii"))
    return part


def one_click(unsubscribe_url: str) -> bool:
    """Whether an unsubscribe URL may be offered for one-click unsubscribe: RFC 8058 section
    3.1 wants an HTTPS URI in `List-Unsubscribe` beside `List-Unsubscribe-Post`, and mail
    providers ignore (or distrust) the pair otherwise. A trial's `http://localhost` link keeps
    its `List-Unsubscribe`, which a mail client may still open."""
    return unsubscribe_url.strip()[:8].lower() == "https://"


def build_message(invite: Invite, rendered: Rendered, *, public_host: str) -> EmailMessage:
    """The invite as a multipart/alternative message ready for `SmtpSender.send`.

    Carries RFC 8058 one-click unsubscribe headers (mail providers show an unsubscribe button
    and POST to the URL; the URL's handler must only unsubscribe on POST; the POST header only
    for an https:// URL, see one_click) and a deterministic Message-ID on the sender's domain
    (or `public_host` when the sender has none).
    """
    sender_name, sender_address = parse_sender(invite.sender)
    # as names are in the subject and bodies (render.isolated): "\u202eShop" reversed the
    # From line as clients show it, address and all
    sender_name = without_scopes(sender_name)
    sender_address = ascii_domain(sender_address)
    to_address = ascii_domain(_address(invite.to_email, "to_email")[1])
    unsubscribe = invite.unsubscribe_url.strip()
    if not unsubscribe.isascii() or any(c.isspace() or c in "<>" for c in unsubscribe):
        raise ValueError(f"unsubscribe_url must be an ASCII URL (percent-encoded): {unsubscribe!r}")
    domain = sender_address.rpartition("@")[2] if "@" in sender_address else ""
    domain = domain or _host_only(public_host)
    if not domain:
        raise ValueError("neither the sender nor public_host gives a domain for the Message-ID")

    message = EmailMessage(policy=MESSAGE_POLICY)
    if sender_address.isascii():
        message.set_raw("From", _encoded_address(sender_name, sender_address))
    else:  # an internationalised address: let the email package decide how it may go out
        message["From"] = (f"{quoted(sender_name)} <{sender_address}>" if sender_name
                           else sender_address)  # fmt: skip
    if to_address.isascii():
        message.set_raw("To", to_address)
    else:
        message["To"] = to_address
    message.set_raw("Subject", _encoded_text(rendered.subject, "Subject"))
    message.set_raw("Date", format_datetime(datetime.now(UTC)))
    message.set_raw("Message-ID", message_id_for(invite.message_key, domain))
    message.set_raw("List-Unsubscribe", f"<{unsubscribe}>")
    if one_click(unsubscribe):
        message.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    if _LOCALE_TAG.fullmatch(rendered.locale):
        message.set_raw("Content-Language", rendered.locale)
    message.set_raw("MIME-Version", "1.0")
    # "=_" can't occur in quoted-printable or base64 text, so the boundary never clashes.
    boundary = f"=_invite_{secrets.token_hex(8)}"  # keeps the line under 78
    message.set_raw("Content-Type", f'multipart/alternative; boundary="{boundary}"')
    message.set_payload([_text_part(rendered.text, "plain"), _text_part(rendered.html, "html")])
    return message
