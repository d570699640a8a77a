"""Invite emails: render per locale, build the MIME message, send over SMTP or to a folder.

Self-contained (no database, no Slack): the invite job hands in plain values and gets back,
for every message, whether it was sent, refused, may be retried, or is uncertain.
"""

from bot.email.message import MESSAGE_POLICY, build_message, message_id_for
from bot.email.render import (
    FALLBACK_LOCALE,
    TEMPLATE_LOCALES,
    Invite,
    Rendered,
    choose_locale,
    render_invite,
)
from bot.email.send import (
    MailSender,
    OutboxDirSender,
    SendResult,
    SendStatus,
    SmtpConfig,
    SmtpSender,
    SmtpServerBusy,
    SmtpSetupError,
    parse_smtp_url,
    sender_for,
)

__all__ = [
    "FALLBACK_LOCALE",
    "MESSAGE_POLICY",
    "TEMPLATE_LOCALES",
    "Invite",
    "MailSender",
    "OutboxDirSender",
    "Rendered",
    "SendResult",
    "SendStatus",
    "SmtpConfig",
    "SmtpSender",
    "SmtpServerBusy",
    "SmtpSetupError",
    "build_message",
    "choose_locale",
    "message_id_for",
    "parse_smtp_url",
    "render_invite",
    "sender_for",
]
