"""A Slack client whose rate-limit retries are decided per call.

slack_sdk's AsyncRateLimitErrorRetryHandler sleeps each 429's Retry-After inside the caller.
Some callers can't wait that long (an import's progress, a form whose trigger id lives 3 s):
they get a copy of the client (same session, token and URL) whose rate-limit handler is
their own subclass, which decides by the API method called.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from urllib.parse import urlsplit

from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient


def api_method(url: str) -> str:
    """The Web API method a request's URL calls ("https://slack.com/api/views.open")."""
    return urlsplit(url).path.rpartition("/")[2]


def with_rate_limits(
    client: AsyncWebClient,
    make: Callable[[AsyncRateLimitErrorRetryHandler], AsyncRateLimitErrorRetryHandler],
) -> AsyncWebClient:
    """`client` with each rate-limit retry handler replaced by `make(handler)`; its other
    retries (connection errors) as they were."""
    changed = copy.copy(client)
    changed.retry_handlers = [
        make(handler) if isinstance(handler, AsyncRateLimitErrorRetryHandler) else handler
        for handler in client.retry_handlers
    ]
    return changed
