"""Referral links and signed unsubscribe tokens: the two URLs an invite carries.

An unsubscribe token names the workspace and contact and is signed with SECRET_KEY
(HMAC-SHA256, truncated to 128 bits) over those and the contact's address, so nobody can
unsubscribe an address they weren't sent, and a link still in an old email never
unsubscribes someone else: SQLite gives a deleted contact's id to the next one inserted. It
never expires: RFC 8058 mail clients may use it long after the email arrived. Links sent
before tokens named the address (their body has no ".a") are checked as they were signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


class BadToken(Exception):
    """The token was not made by us (forged, truncated or from another key)."""


def referral_link(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/r/{code}"


def unsubscribe_link(public_url: str, secret: str, team_id: str, contact_id: int,
                     email_key: str) -> str:  # fmt: skip
    token = unsubscribe_token(secret, team_id, contact_id, email_key)
    return f"{public_url.rstrip('/')}/u/{token}"


def _mac(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"unsubscribe:" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


_BOUND = b".a"  # the body's mark of a token signed over the address too


def unsubscribe_token(secret: str, team_id: str, contact_id: int, email_key: str) -> str:
    body = f"{team_id}.{contact_id}".encode() + _BOUND
    return (base64.urlsafe_b64encode(body).decode().rstrip("=") + "."
            + _mac(secret, body + b"\0" + email_key.encode()))  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    team_id: str
    contact_id: int
    body: bytes
    mac: str

    @property
    def names_address(self) -> bool:
        """False for a token sent before tokens were signed over the address."""
        return self.body.endswith(_BOUND)

    def signed_for(self, secret: str, email_key: str | None) -> bool:
        """Whether we signed this token for the contact that has its id and `email_key` now
        (None: no contact has that id)."""
        if not self.names_address:
            signed = self.body
        elif email_key is None:
            return False
        else:
            signed = self.body + b"\0" + email_key.encode()
        return hmac.compare_digest(self.mac, _mac(secret, signed))


def read_unsubscribe_token(token: str) -> UnsubscribeToken:
    """The parts of a well-formed token, not yet checked (see signed_for); BadToken for
    anything else."""
    try:
        encoded, mac = token.split(".", 1)
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        named = body.removesuffix(_BOUND)
        team_id, contact = named.decode().rsplit(".", 1)
        contact_id = int(contact)
    except (ValueError, UnicodeDecodeError):
        raise BadToken("malformed") from None
    # compare_digest raises on a non-ASCII str: anything but our base64 is simply wrong
    if not mac.isascii():
        raise BadToken("bad signature")
    return UnsubscribeToken(team_id, contact_id, body, mac)
