"""Referral links and signed unsubscribe tokens: the two URLs an invite carries.

An unsubscribe token names the workspace and contact and is signed with SECRET_KEY
(HMAC-SHA256, truncated to 128 bits), so nobody can unsubscribe an address they weren't sent,
and the link needs no database lookup to be checked. It never expires: RFC 8058 mail clients
may use it long after the email arrived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class BadToken(Exception):
    """The token was not made by us (forged, truncated or from another key)."""


def referral_link(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/r/{code}"


def unsubscribe_link(public_url: str, secret: str, team_id: str, contact_id: int) -> str:
    return f"{public_url.rstrip('/')}/u/{unsubscribe_token(secret, team_id, contact_id)}"


def _mac(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"unsubscribe:" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(secret: str, team_id: str, contact_id: int) -> str:
    body = f"{team_id}.{contact_id}".encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _mac(secret, body)


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, int]:
    """(team_id, contact_id) of a token we signed; BadToken for anything else."""
    try:
        encoded, mac = token.split(".", 1)
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        team_id, contact = body.decode().rsplit(".", 1)
        contact_id = int(contact)
    except (ValueError, UnicodeDecodeError):
        raise BadToken("malformed") from None
    # compare_digest raises on a non-ASCII str: anything but our base64 is simply wrong
    if not mac.isascii() or not hmac.compare_digest(mac, _mac(secret, body)):
        raise BadToken("bad signature")
    return team_id, contact_id
