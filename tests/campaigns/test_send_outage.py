"""A send job that ends in a database outage still stops its sending, and says how.

Giving up records the stop on the enrollment (`send_error`, *Retry sending* in its report).
Failing there too, the job was recorded failed once the database was back and the
enrollment's invites stayed queued with no job to send them: its report said nothing of a
stop, and offered no *Retry sending*.
"""

from __future__ import annotations

import pytest

from bot.campaigns.enroll import SEND_JOB
from bot.campaigns.jobs import send_handlers
from bot.jobs.worker import DATABASE_DOWN
from bot.notify import Silent
from bot.settings import Settings
from tests.campaigns.conftest import SECRET, World
from tests.campaigns.test_send import _enrolled, _states
from tests.email.smtp_server import smtp_server
from tests.imports.outage import (
    ENDS,
    LAST_ATTEMPT_FAILS,
    WORKERS_DIED,
    Outage,
    out_of_attempts,
    run_in_outage,
)


@pytest.mark.parametrize("end", ENDS)
async def test_sending_given_up_in_an_outage_stops_once_the_database_is_back(
    world: World, db_env: dict[str, str], end: str
) -> None:
    await _enrolled(world, "a@example.com,A,en", "b@example.com,B,en")
    await out_of_attempts(world.db, SEND_JOB, end)
    outage = Outage(world.db, "enrollment", "invite", reads=end == WORKERS_DIED)
    async with smtp_server() as server:
        settings = Settings(_env_file=None, smtp_url=server.url, secret_key=SECRET,  # type: ignore[call-arg]
                            public_url="https://bot.example")  # fmt: skip
        (handler,) = send_handlers(settings, Silent()).values()
        await run_in_outage(db_env, outage, SEND_JOB, lambda _: handler, end)
    assert server.handler.messages == []
    (job,) = await world.rows("SELECT state FROM job WHERE kind = :k", k=SEND_JOB)
    assert job == ("failed",)
    stopped = str(await world.scalar("SELECT send_error FROM enrollment") or "")
    if end == LAST_ATTEMPT_FAILS:  # in words: a database error's own text is SQL
        assert stopped == DATABASE_DOWN
    else:
        assert stopped.startswith("gave up: the worker running it stopped"), stopped
    assert await _states(world) == {"a@example.com": "queued", "b@example.com": "queued"}
