"""Test doubles for Slack: a fake Web API/file host and signed requests to the bot."""

from tests.fakes.slack_api import (
    Call,
    Download,
    ExternalRequest,
    FakeExternalHost,
    FakeSlack,
    Upload,
    block_problems,
    serve,
    view_problems,
)
from tests.fakes.slack_requests import Reply, SlackRequests

__all__ = [
    "Call",
    "Download",
    "ExternalRequest",
    "FakeExternalHost",
    "FakeSlack",
    "Reply",
    "SlackRequests",
    "Upload",
    "block_problems",
    "serve",
    "view_problems",
]
