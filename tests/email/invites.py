"""Invites and messages for the email tests."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage
from typing import Any

from bot.email import Invite, build_message, render_invite

REFERRAL_LINK = "https://shop.example/r/AB12cd?utm_source=invite&x=1"


def make_invite(**changes: Any) -> Invite:
    """A French customer's invite; any field can be changed."""
    invite = Invite(
        to_email="francois.dupont@example.org",
        first_name="François",
        locale="fr",
        store_name="Café Zoë & Co",
        store_url="https://shop.example/",
        offer="Give 10%, get $10",
        referral_link=REFERRAL_LINK,
        unsubscribe_url="https://referral-bot.example.com/u/3f9a?sig=abc",
        sender="Café Zoë <hello@shop.example>",
        message_key="c12-a34",
        default_locale="en",
    )
    return dataclasses.replace(invite, **changes)


def make_message(index: int = 0, **changes: Any) -> EmailMessage:
    """The built message of invite number `index` (its own address and key)."""
    changes.setdefault("to_email", f"customer{index}@example.org")
    changes.setdefault("message_key", f"c{index}-a34")
    invite = make_invite(**changes)
    return build_message(invite, render_invite(invite), public_host="referral-bot.example.com")
