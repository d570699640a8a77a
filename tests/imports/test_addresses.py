"""normalize_email must agree with email-validator on every address, fast path or not."""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from bot.imports.addresses import InvalidEmail, email_key, normalize_email, plain_email

SEED = 20_240_611
COUNT = 5_000

Verdict = tuple[str, str]  # ("valid", normalized) or ("invalid", "")


def reference(address: str) -> Verdict:
    try:
        return "valid", validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return "invalid", ""


def ours(address: str) -> Verdict:
    try:
        return "valid", normalize_email(address)
    except InvalidEmail:
        return "invalid", ""


# --- a seeded generator of tricky addresses ---------------------------------------------------

WORDS = [
    "jane",
    "john.smith",
    "j.doe",
    "info",
    "sales",
    "support",
    "hello",
    "contact",
    "admin",
    "noreply",
    "billing",
    "postmaster",
    "webmaster",
    "abuse",
    "news",
    "marketing",
    "security",
    "orders",
    "team",
    "x",
]
LOCAL_CHARS = string.ascii_letters + string.digits + "._+-"
ATEXT_EXTRA = "!#$%&'*/=?^`{|}~"
UNICODE_LOCALS = ["josé", "zoë", "zoe\u0308", "дмитрий", "用户", "straße", "ÅSA", "ǅemal", "δοκιμή"]
COMMON_DOMAINS = [
    "example.com",
    "Example.COM",
    "EXAMPLE.ORG",
    "mail.example.co.uk",
    "gmail.com",
    "sub.domain.example.io",
    "a.b.c.d.example.net",
    "123.example.com",
    "example.museum",
]
TLDS = ["com", "ORG", "io", "de", "co", "Museum", "xn--p1ai", "c", "123", "x1", "a-b"]
SPECIAL_TLDS = ["test", "local", "localhost", "invalid", "onion", "arpa", "TEST", "Local"]
ODD_DOMAINS = [
    "xn--bcher-kva.de",
    "XN--BCHER-KVA.DE",
    "xn--bcher-kva.xn--p1ai",
    "xn--zz.com",
    "xn--.com",
    "xn--invalid-.com",
    "ab--cd.com",
    "a--b.com",
    "a-b.com",
    "-ab.com",
    "ab-.com",
    "example.com.",
    ".example.com",
    "example..com",
    "[192.168.0.1]",
    "[IPv6:2001:db8::1]",
    "192.168.0.1",
    "bücher.de",
    "例え.jp",
    "ＥＸＡＭＰＬＥ.com",
    "exa mple.com",
    "ex_ample.com",
    "localhost",
    "com",
    "in-addr.arpa",
    "example",
    "",
]


def case_mix(rng: random.Random, text: str) -> str:
    style = rng.randrange(4)
    if style == 0:
        return text
    if style == 1:
        return text.upper()
    if style == 2:
        return text.title()
    return "".join(c.upper() if rng.random() < 0.5 else c for c in text)


def random_text(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def local_part(rng: random.Random) -> str:
    kind = rng.randrange(11)
    if kind <= 2:
        return case_mix(rng, rng.choice(WORDS))
    if kind == 3:
        return case_mix(rng, rng.choice(WORDS)) + "+" + random_text(rng, LOCAL_CHARS, 0, 8)
    if kind == 4:
        return random_text(rng, LOCAL_CHARS, 1, 20)
    if kind == 5:
        return random_text(rng, LOCAL_CHARS, 60, 70)  # around the 64 limit
    if kind == 6:
        return random_text(rng, LOCAL_CHARS + ATEXT_EXTRA, 1, 12)
    if kind == 7:
        inner = random_text(rng, string.ascii_letters + " @.,\\", 0, 10)
        return f'"{inner}"'
    if kind == 8:
        return rng.choice(UNICODE_LOCALS) + random_text(rng, string.digits, 0, 2)
    if kind == 9:
        word = rng.choice(WORDS)
        return rng.choice([f".{word}", f"{word}.", f"{word}..x", f"{word}.-_"])
    return rng.choice(["", "-", "_", "+", ".", "a", "A-", "_x_", "1" * 64, "a" * 65])


def label(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return "a" * rng.choice([62, 63, 64])  # around the label limit
    if kind == 1:
        return random_text(rng, string.ascii_lowercase + string.digits + "-", 1, 10)
    return case_mix(rng, random_text(rng, string.ascii_lowercase + string.digits, 1, 10))


def domain(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind <= 2:
        return rng.choice(COMMON_DOMAINS)
    if kind <= 5:
        labels = [label(rng) for _ in range(rng.randint(1, 3))]
        return ".".join([*labels, rng.choice(TLDS)])
    if kind == 6:
        return f"{label(rng)}.{rng.choice(SPECIAL_TLDS)}"
    if kind == 7:
        return rng.choice(ODD_DOMAINS)
    if kind == 8:  # around the 253/254 length limits
        return ".".join(["a" * 63] * 3 + ["b" * rng.randint(55, 63)]) + ".com"
    return f"{label(rng)}.{'z' * rng.choice([2, 62, 63, 64])}"


def address(rng: random.Random) -> str:
    result = f"{local_part(rng)}@{domain(rng)}"
    shape = rng.randrange(30)
    if shape == 0:
        return result.replace("@", "")
    if shape == 1:
        return result.replace("@", "@@")
    if shape == 2:
        return f"{local_part(rng)}@{result}"
    return result


def tricky_addresses() -> list[str]:
    rng = random.Random(SEED)
    return [address(rng) for _ in range(COUNT)]


# --- tests -----------------------------------------------------------------------------------


def test_generator_covers_both_paths_and_both_verdicts() -> None:
    """Guards the property test below against a generator that tests nothing."""
    addresses = tricky_addresses()
    fast = [a for a in addresses if plain_email(a) is not None]
    verdicts = [reference(a)[0] for a in addresses]

    assert len(set(addresses)) > COUNT * 0.7
    assert len(fast) > COUNT * 0.25
    assert verdicts.count("invalid") > COUNT * 0.25
    assert len([a for a, v in zip(addresses, verdicts, strict=True) if v == "valid"]) > len(fast)
    assert any(len(a.partition("@")[0]) > 64 for a in addresses)
    assert any("xn--" in a for a in addresses) and any(a.endswith(".") for a in addresses)


def test_normalize_email_agrees_with_email_validator_on_tricky_addresses() -> None:
    mismatches = []
    for candidate in tricky_addresses():
        expected, got = reference(candidate), ours(candidate)
        if expected != got:
            mismatches.append(f"{candidate!r}: email-validator {expected}, ours {got}")

    assert not mismatches, f"{len(mismatches)} mismatches, e.g.:\n" + "\n".join(mismatches[:15])


@pytest.mark.parametrize(
    "candidate",
    ["Info@Example.com", "SALES@example.com", "PostMaster@example.org", "Support+eu@shop.example"],
)
def test_role_mailboxes_normalise_like_email_validator(candidate: str) -> None:
    """email-validator lower-cases RFC 2142 role names (info, sales, postmaster, ...).

    Support+eu is not a role name: both keep its case (a control for the other three).
    """
    assert normalize_email(candidate) == reference(candidate)[1]


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("Jane.Doe+news@Example.COM", "Jane.Doe+news@example.com"),
        ("a@b.co", "a@b.co"),
        ("x_y-z@mail.example.co.uk", "x_y-z@mail.example.co.uk"),
        ("josé@Bücher.de", "josé@bücher.de"),
        ("jane@xn--bcher-kva.de", "jane@bücher.de"),
        ("jane@ＥＸＡＭＰＬＥ.com", "jane@example.com"),
    ],
)
def test_normalised_forms(candidate: str, expected: str) -> None:
    assert normalize_email(candidate) == expected == reference(candidate)[1]


def test_invalid_email_message_is_email_validators_explanation() -> None:
    with pytest.raises(InvalidEmail) as failure:
        normalize_email("jane@example.test")

    assert str(failure.value) == (
        "The part after the @-sign is a special-use or reserved name that cannot be used with "
        "email."
    )


def test_email_key_makes_case_variants_one_contact() -> None:
    assert email_key(normalize_email("Jane.Doe@EXAMPLE.com")) == "jane.doe@example.com"
    assert email_key(normalize_email("ZOË@example.com")) == email_key(
        normalize_email("zoe\u0308@example.com")
    )


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        ("Ada Lovelace <ada@Example.com>", "ada@example.com"),
        ('"Lovelace, Ada" <ada@example.com>', "ada@example.com"),
        ("mailto:bob@example.com", "bob@example.com"),
        ("MAILTO: bob@Example.com", "bob@example.com"),
        # unquoted names beyond ASCII, as mail clients copy them: email-validator refuses them
        ("Élodie Dupont <elodie@example.com>", "elodie@example.com"),
        ("田中 悠斗 <tanaka@example.jp>", "tanaka@example.jp"),
        ("José <José@example.es>", "José@example.es"),
    ],
)
def test_an_address_pasted_with_its_name_or_as_a_mailto_link_is_the_address(
    pasted: str, expected: str
) -> None:
    """Cells pasted from a mail client ("Ada Lovelace <ada@…>") or a web page's link
    ("mailto:bob@…") were rejected as invalid emails, though the header search already took
    "Name <address>" for an address cell."""
    assert normalize_email(pasted) == expected


def test_a_mailto_link_with_more_than_an_address_is_still_invalid() -> None:
    with pytest.raises(InvalidEmail):
        normalize_email("mailto:bob@example.com?subject=hi")
