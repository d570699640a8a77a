"""SMTP_URL parsing: defaults, decoding, options, and errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.email import OutboxDirSender, SmtpConfig, SmtpSender, parse_smtp_url, sender_for


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpConfig("mail.example.com", 25)),
        ("smtps://mail.example.com", SmtpConfig("mail.example.com", 465, implicit_tls=True)),
        ("SMTP://Mail.Example.com:587/", SmtpConfig("mail.example.com", 587)),
        (
            "smtp://apikey:s3cr%40t%3Aw%2Fx@smtp.example.com:2525",
            SmtpConfig("smtp.example.com", 2525, "apikey", "s3cr@t:w/x"),
        ),
        ("smtp://us%40er@h", SmtpConfig("h", 25, "us@er", None)),
        (
            "smtp://h?starttls=required&timeout=2.5",
            SmtpConfig("h", 25, require_starttls=True, timeout=2.5, data_timeout=2.5),
        ),
        ("smtp://h?starttls=auto", SmtpConfig("h", 25)),
        ("smtp://h?starttls=off", SmtpConfig("h", 25, no_starttls=True)),
        ("smtp://[::1]:2525", SmtpConfig("::1", 2525)),
        ("smtps://u:p@h:10465?timeout=9",
         SmtpConfig("h", 10465, "u", "p", True, timeout=9.0, data_timeout=9.0)),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpConfig) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "smtp:// or smtps://"),
        ("mail.example.com:25", "smtp:// or smtps://"),
        ("smtp://", "no host"),
        ("smtp://user:pw@:25", "no host"),
        ("smtp://h:99999", "port"),
        ("smtp://h:abc", "port"),
        ("smtp://h:0", "port"),
        ("smtp://h/inbox", "no path"),
        ("smtp://h#x", "fragment"),
        ("smtps://h?starttls=required", "smtp:// only"),
        ("smtp://h?starttls=yes", "starttls must be"),
        ("smtp://h?timeout=0", "timeout"),
        ("smtp://h?timeout=soon", "timeout"),
        ("smtp://h?timeout=nan", "timeout"),
        ("smtp://h?tls=1", "unknown option 'tls'"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_smtp_url(url)


def test_the_password_never_shows() -> None:
    config = parse_smtp_url("smtp://apikey:hunter2@smtp.example.com:587")
    assert "hunter2" not in repr(config)
    assert config.display == "smtp://apikey@smtp.example.com:587"
    with pytest.raises(ValueError) as caught:
        parse_smtp_url("smtp://apikey:hunter2@smtp.example.com:5x7")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("url", ["smtp://mailer:2024/Summer-secret@mail.example:587",
                                 "smtp://mailer:2024?Summer-secret@mail.example:587",
                                 "smtp://mailer:2024#Summer-secret@mail.example:587",
                                 "smtp://mailer:20?timeout=Summer-s@mail.example"])  # fmt: skip
def test_a_password_with_an_unencoded_slash_never_shows_in_the_error(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_smtp_url(url)
    assert "Summer" not in str(caught.value) and "percent-encoded" in str(caught.value)


def test_sender_for_picks_smtp_or_the_outbox_dir(tmp_path: Path) -> None:
    assert isinstance(sender_for(None, tmp_path), OutboxDirSender)
    assert isinstance(sender_for("  ", tmp_path), OutboxDirSender)
    smtp = sender_for("smtp://mail.example.com:587", tmp_path)
    assert isinstance(smtp, SmtpSender)
    assert smtp.config == SmtpConfig("mail.example.com", 587)
    with pytest.raises(ValueError, match="smtp://"):
        sender_for("mail.example.com", tmp_path)
