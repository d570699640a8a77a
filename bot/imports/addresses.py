"""Email checks: a regex fast path for plain addresses, email-validator for everything else.

email-validator costs ~18 us per address; almost every real address is plain ASCII, so the
fast path accepts only addresses email-validator is known to accept and normalises them the
same way (domain lower-cased, local part kept). Anything unusual goes the slow way, so the
verdicts are identical (tests/imports/test_addresses.py compares them).
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

_PLAIN_DOMAIN = re.compile(r"(?:[A-Za-z0-9-]{1,63}\.)+([A-Za-z]{2,63})\Z")
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})
_DOMAIN_CACHE_SIZE = 100_000
_domains: dict[str, str] = {}  # domain as written -> lower-cased, or "" if not plain
_ROLE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)  # RFC 2142: Info@ is info@


class InvalidEmail(ValueError):
    """The address can't receive mail; the message says why in words a user understands."""


def _plain_domain(domain: str) -> str:
    """Lower-cased `domain` if it is plain ASCII DNS that email-validator accepts, else ""."""
    match = _PLAIN_DOMAIN.match(domain)
    if (
        match is None
        or len(domain) > 253
        or "--" in domain
        or "-." in domain
        or ".-" in domain
        or domain[0] == "-"
        or match[1].lower() in _SPECIAL_USE_TLDS
    ):
        return ""
    return domain.lower()


def plain_email(raw: str) -> str | None:
    """The normalised address if `raw` is a plain one email-validator surely accepts, else None.

    Plain: ASCII letters, digits and `._+-` before the @ (no leading, trailing or double dot),
    and a domain of plain DNS labels. Real lists repeat a few domains, so their verdicts are
    cached.
    """
    local, _, domain = raw.partition("@")
    plain = _domains.get(domain)
    if plain is None:
        if len(_domains) >= _DOMAIN_CACHE_SIZE:
            _domains.clear()
        plain = _domains[domain] = _plain_domain(domain) if domain.isascii() else ""
    if (
        plain
        and local
        and len(local) <= 64
        and len(raw) <= 254
        and local.isascii()
        and local.replace(".", "").replace("_", "").replace("+", "").replace("-", "").isalnum()
        and local[0] != "."
        and local[-1] != "."
        and ".." not in local
    ):
        if local.lower() in _ROLE_MAILBOXES:
            local = local.lower()
        return f"{local}@{plain}"
    return None


def normalize_email(raw: str) -> str:
    """Return the address as we store it, or raise InvalidEmail. `raw` must be stripped."""
    return plain_email(raw) or _slow_normalize(raw)


_NAMED = re.compile(r"[^<>]*<([^<>]+)>\s*")  # "Name <address>"


def _slow_normalize(raw: str) -> str:
    """email-validator's verdict, for an address as people paste it too: from a mail client
    with the person's name ("Ada Lovelace <ada@example.com>") or from a web page's link
    ("mailto:ada@example.com"); both were rejected as invalid."""
    address = raw[7:].lstrip() if raw[:7].lower() == "mailto:" else raw
    if named := _NAMED.fullmatch(address):
        # the address alone: email-validator refuses an unquoted name beyond ASCII
        # ("Élodie Dupont <elodie@…>", as mail clients copy it), and the name is dropped anyway
        address = named.group(1).strip()
    try:
        return validate_email(address, check_deliverability=False,
                              allow_display_name=True).normalized  # fmt: skip
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None


def email_key(email: str) -> str:
    """The case-folded form that makes two spellings of one mailbox the same contact."""
    return email.casefold()
