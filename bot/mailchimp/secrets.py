"""Mailchimp tokens and API keys at rest: encrypted with Fernet, keyed from SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) authenticates what it decrypts, so a
tampered value or a changed SECRET_KEY fails loudly instead of yielding garbage. The key is
derived from SECRET_KEY with HKDF and a purpose label, so the same secret can sign unsubscribe
links without the two uses ever sharing a key.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretKeyMissing(Exception):
    """Mailchimp credentials can't be stored or read without SECRET_KEY."""


class CredentialsUnreadable(Exception):
    """The stored credentials don't decrypt: SECRET_KEY changed, or the row was tampered with."""


def _fernet(secret_key: str, *, reading: bool = False) -> Fernet:
    """`reading`: credentials saved already are read (a connected workspace was told to set
    SECRET_KEY "before connecting Mailchimp", as though it weren't connected)."""
    if not secret_key:
        raise SecretKeyMissing(
            "Set SECRET_KEY to the one Mailchimp's credentials were saved with: the bot "
            "encrypts them with it, and can't read them without it." if reading else
            "Set SECRET_KEY (a long random string) before connecting Mailchimp: the bot "
            "encrypts Mailchimp's credentials with it."
        )  # fmt: skip
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"referral-bot mailchimp credentials").derive(secret_key.encode())  # fmt: skip
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode("ascii")


def unseal(secret_key: str, sealed: str) -> str:
    try:
        return _fernet(secret_key, reading=True).decrypt(sealed.encode("ascii")).decode()
    except InvalidToken:
        raise CredentialsUnreadable(
            "The stored Mailchimp credentials can't be read (was SECRET_KEY changed?): "
            "reconnect Mailchimp."
        ) from None
