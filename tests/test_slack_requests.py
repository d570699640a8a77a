"""The form parser that replaces bolt's parse_qsl reads every body exactly as parse_qsl does."""

from __future__ import annotations

import json
import random
from urllib.parse import parse_qsl, urlencode

from bot.slack_requests import form_fields, parse_body

PIECES = ("a", "b", "=", "&", "+", "%", ";", "é", " ", "€", "💡", '"', "{", "}", ":", ",", "\n",
          "%20", "%2", "%zz", "%41", "%2B", "%26", "%3D", "%C3%A9", "%E9", "%ff", "payload=",
          "&&", "==", "#", "?", "/", "\r", "\\", "%00", "%23")  # fmt: skip


def test_fields_are_read_as_parse_qsl_reads_them() -> None:
    """Bad escapes, `+`, blank values, repeated keys (the last wins), invalid UTF-8."""
    rng = random.Random(20261203)
    for _ in range(5000):
        body = "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 30)))
        assert form_fields(body) == dict(parse_qsl(body, keep_blank_values=True)), body


def test_an_interactive_payload_is_its_json_and_a_command_its_fields() -> None:
    payload = {"type": "block_actions", "text": "a+b & c=d 100% <!channel> 💡"}
    assert parse_body(urlencode({"payload": json.dumps(payload)}), None) == payload
    command = {"command": "/referral", "text": "payload"}
    assert parse_body(urlencode(command), "application/x-www-form-urlencoded") == command
    assert parse_body('{"type": "url_verification"}', "application/json") == {
        "type": "url_verification"
    }
    assert parse_body("", None) == {}
