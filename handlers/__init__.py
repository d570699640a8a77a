"""Slack listeners: parse the payload, call a service, render blocks. Nothing else."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from handlers import (
    audit_log,
    campaigns,
    commands,
    contact_search,
    contacts,
    home,
    import_modal,
    leads,
    mailchimp,
    mapping,
    private_csvs,
    review,
    segments,
    sources,
    targeting,
    undo,
    uninstall,
    uploads,
)
from handlers.context import Deps
from handlers.later import DeliverAgain, context_of, tell, who_and_what
from handlers.routes import Routes

log = logging.getLogger(__name__)
# The listener modules, one a surface: each registers its ids into Routes
SURFACES = (commands, import_modal, review, contacts, uploads, targeting, campaigns, mailchimp,
            home, contact_search, segments, undo, leads, audit_log, mapping, sources, uninstall,
            private_csvs)


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    @app.error
    async def tell_the_user(
        error: Exception, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
    ) -> BoltResponse:
        """Failures become a note to the person who acted, never a silent spinner.

        Only for requests that passed verification and authorization: a request Slack didn't
        sign (bolt raises on a malformed timestamp before it can refuse it) gets a 401 and
        makes no Web API call, whoever its payload names.
        """
        if context.get("authorize_result") is None:
            if isinstance(error, (aiohttp.ClientError, OSError)):  # TimeoutError is an OSError
                # signed (verifying does no I/O), but its workspace couldn't be checked: bolt's
                # auth.test of SLACK_BOT_TOKEN never reached Slack. Said as what it is, not as
                # a forged request; 503: Slack retries an event, and shows a command failed
                log.warning("request not handled (%s): Slack couldn't be reached to check "
                            "SLACK_BOT_TOKEN (auth.test): %r", who_and_what(body), error)
                return BoltResponse(status=503, body="")
            log.warning("unverified request refused (%s): %r", who_and_what(body), error)
            return BoltResponse(status=401, body="")
        if isinstance(error, DeliverAgain):
            log.warning("event not handled, Slack to deliver it again (%s): %s",
                        context_of(who_and_what(body)), error)  # fmt: skip
            return BoltResponse(status=503, body="")
        await tell(client, body, error)
        return BoltResponse(status=200, body="")  # the user has been told; Slack needn't

    # the modules register by id into Routes, which gives bolt a few dispatchers and puts
    # `deps` into each listener's context (see handlers/routes.py for why)
    routes = Routes(deps)
    for module in SURFACES:
        module.register(routes)
    routes.install(app)
