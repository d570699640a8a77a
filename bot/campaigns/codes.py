"""Referral codes: short, unguessable, and easy to read aloud or type from a printed link."""

from __future__ import annotations

import os
import unicodedata

# Digits 2-9 and A-Z without I and O (no 0/O or 1/I to confuse): 32 symbols, so the low five
# bits of each random byte pick one without bias. 8 symbols = 40 bits: about 1e12 codes, so a
# million advocates do collide now and then; the insert handles that and draws again.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 8
_TABLE = bytes(ord(ALPHABET[b & 31]) for b in range(256))


def new_codes(count: int) -> list[str]:
    """`count` random codes from the OS's CSPRNG (as `secrets` uses), a million in ~0.1 s."""
    symbols = os.urandom(count * LENGTH).translate(_TABLE).decode("ascii")
    return [symbols[i : i + LENGTH] for i in range(0, count * LENGTH, LENGTH)]


def normalise(code: str) -> str:
    """A code as typed or pasted: case doesn't matter, nor what a sentence or a mail client's
    link-finder left after it ("ABCD2345.", "abcd2345)", a closing quote, "。", a slash), nor
    compatibility forms (NFKC): a CJK input method types full-width ＡＢＣＤ２３４５, which
    found no advocate, and a styled text pastes 𝐀𝐁𝐂𝐃2345."""
    code = unicodedata.normalize("NFKC", code).strip()
    end = len(code)
    while end and not code[end - 1].isalnum():
        end -= 1
    return code[:end].upper()[: LENGTH * 2]


def could_be_code(code: str) -> bool:
    """Whether a normalised code is made of our symbols at all: junk (a NUL byte, say, which
    PostgreSQL refuses in text) never reaches the database."""
    return bool(code) and not code.strip(ALPHABET)
