"""Referral links and signed unsubscribe tokens: the two URLs an invite carries.

An unsubscribe token names the workspace and contact and is signed with SECRET_KEY
(HMAC-SHA256, truncated to 128 bits) twice: over those, so nobody can unsubscribe an address
they weren't sent (checked before any lookup), and over the contact's address too, so a link
still in an old email never unsubscribes someone else: SQLite gives a deleted contact's id to
the next one inserted. It never expires: RFC 8058 mail clients may use it long after the email
arrived. Links sent before tokens named the address (their body has no ".a", one signature)
are checked as they were signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass


class BadToken(Exception):
    """The token was not made by us (forged, truncated or from another key)."""


def referral_link(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/r/{code}"


def unsubscribe_link(public_url: str, secret: str, team_id: str, contact_id: int,
                     email_key: str) -> str:  # fmt: skip
    token = unsubscribe_token(secret, team_id, contact_id, email_key)
    return f"{public_url.rstrip('/')}/u/{token}"


_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{22}")  # what _mac makes: 16 bytes, unpadded base64url
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# Longer than any token of ours with what a mail client may leave after it (ours are ~70-110
# characters): refused before any parsing. The request line allows 8 KB, and stripping a long
# run of junk used to cost the event loop the square of its length (0.7 s for 8 KB, before
# the signature was looked at: a few such requests a second kept Slack's acks waiting).
MAX_TOKEN = 512


def _mac(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"unsubscribe:" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


_BOUND = b".a"  # the body's mark of a token that also carries a signature over the address


def unsubscribe_token(secret: str, team_id: str, contact_id: int, email_key: str) -> str:
    """body.mac.address_mac: the first signature says we made it (checked without the
    database), the second which address it was made for."""
    body = f"{team_id}.{contact_id}".encode() + _BOUND
    return ".".join((base64.urlsafe_b64encode(body).decode().rstrip("="), _mac(secret, body),
                     _mac(secret, body + b"\0" + email_key.encode())))  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    team_id: str
    contact_id: int
    body: bytes
    mac: str
    address_mac: str | None  # None: sent before tokens named the address

    def genuine(self, secret: str) -> bool:
        """Whether we made this token (a forged one is refused before any lookup)."""
        return hmac.compare_digest(self.mac, _mac(secret, self.body))

    def for_address(self, secret: str, email_key: str) -> bool:
        """Whether the contact that has the token's id now has the address it was made for
        (always, for a token sent before tokens named the address)."""
        if self.address_mac is None:
            return True
        signed = _mac(secret, self.body + b"\0" + email_key.encode())
        return hmac.compare_digest(self.address_mac, signed)

    @property
    def canonical(self) -> str:
        """The token as unsubscribe_token writes it, of base64url letters and dots only,
        however the link arrived: a path read percent-decoded (`…%2F` is `…/`), what a mail
        client left after it, a `/` or padding base64 reads alike. A page that links back to
        itself uses this, never the path as it came: `…/` sent the form to another address."""
        encoded = base64.urlsafe_b64encode(self.body).decode().rstrip("=")
        return ".".join([encoded, self.mac, *([self.address_mac] if self.address_mac else [])])

    def made_for(self, secret: str, email_keys: Iterable[str]) -> str | None:
        """Which of these address keys the token was made for: None if none, or for a token
        sent before tokens named the address (it can't tell)."""
        if self.address_mac is None:
            return None
        return next((key for key in email_keys if self.for_address(secret, key)), None)


def read_unsubscribe_token(token: str) -> UnsubscribeToken:
    """The parts of a well-formed token, not yet checked (genuine, for_address); BadToken for
    anything else.

    What a sentence or a mail client's link finder left after it (".", ")", ">") is dropped,
    as from a referral code; a signature of any other length than ours (the link's end lost
    on a wrapped line) is refused here: a shortened address signature would otherwise pass
    for a link whose contact is gone, and the page say the address is off the list."""
    if len(token) > MAX_TOKEN:
        raise BadToken("malformed")
    end = len(token)  # after the token's last base64url character
    while end and token[end - 1] not in _BASE64URL:
        end -= 1
    token = token[:end]
    try:
        encoded, mac, *rest = token.split(".")
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        named = body.removesuffix(_BOUND)
        team_id, contact = named.decode().rsplit(".", 1)
        contact_id = int(contact)
    except (ValueError, UnicodeDecodeError):
        raise BadToken("malformed") from None
    address_mac = rest[0] if rest else None
    if len(rest) > 1 or (address_mac is None) != (named == body):
        raise BadToken("malformed")
    # anything but our base64 of our length is simply wrong (compare_digest raises on a
    # non-ASCII str)
    if not all(_SIGNATURE.fullmatch(m) for m in (mac, address_mac) if m is not None):
        raise BadToken("bad signature")
    return UnsubscribeToken(team_id, contact_id, body, mac, address_mac)
