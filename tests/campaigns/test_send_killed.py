"""A real worker process killed (SIGKILL) or stopped (SIGSTOP) mid-send: the one that takes
over never emails anyone twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter

from bot.campaigns.invites import Links, resend_uncertain, send_invites
from bot.email.send import SmtpSender, parse_smtp_url
from tests.campaigns.conftest import TEAM, World, people
from tests.conftest import requires_postgres
from tests.email.smtp_server import Handler, smtp_server


async def _worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.launch", "worker", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def _worker_env(db_env: dict[str, str], smtp_url: str) -> dict[str, str]:
    """A `referral-bot worker`'s environment: this test's database and mail server, a 2 s
    lease, quick polls and retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SMTP_"))}
    env.update(db_env, SECRET_KEY="s" * 32, SMTP_URL=smtp_url, JOB_LEASE_SECONDS="2",
               PUBLIC_URL="https://r.example",
               WORKER_POLL_SECONDS="0.1", JOB_RETRY_BASE_SECONDS="0")  # fmt: skip
    return env


async def _first_message(handler: Handler) -> None:
    async def handed_over() -> bool:
        return bool(handler.messages)

    # a worker process starting under a loaded machine (CI runs tests side by side): a
    # generous wait costs nothing when it is quick
    await _until(handed_over, 120, "the first invite to reach the server")


async def _until(check, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_a_killed_sender_is_replaced_and_no_address_gets_two_invites(
    world: World, db_env: dict[str, str]
) -> None:
    await world.import_csv("VIP", people(*(f"p{i}@example.com,P{i},en" for i in range(6))))
    await world.target(await world.campaign(), "VIP")
    handler = Handler(data_delay=60)  # the server takes the first message, then says nothing
    async with smtp_server(handler) as server:
        env = _worker_env(db_env, server.url)
        first = await _worker(env)
        try:
            await _first_message(handler)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        handler.data_delay = 0
        second = await _worker(env)
        try:
            async def settled() -> bool:
                left = await world.scalar("SELECT COUNT(*) FROM invite WHERE state IN "
                                          "('queued', 'held', 'sending')")  # fmt: skip
                return left == 0

            await _until(settled, 60, "the replacement worker to finish")
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
    received = Counter(to for m in handler.messages for to in m.rcpt_tos)
    assert len(received) == 6 and set(received.values()) == {1}  # nobody twice
    states = Counter(s for (s,) in await world.rows("SELECT state FROM invite"))
    assert states == Counter({"sent": 5, "uncertain": 1})  # the one in flight is not guessed


@requires_postgres
async def test_a_slow_senders_delivered_invite_is_not_offered_for_resending(
    world: World, db_env: dict[str, str]
) -> None:
    """A worker only slow (starved of CPU, not dead) loses its lease with an invite in flight;
    the one that takes the job over guesses that invite uncertain. The server's 250 the first
    then reads is what happened: the invite is sent, and Resend uncertain doesn't email that
    person again."""
    await world.import_csv("VIP", people(*(f"p{i}@example.com,P{i},en" for i in range(6))))
    await world.target(await world.campaign(), "VIP")
    handler = Handler(data_delay=4)  # the first message's 250 comes 4 s after its DATA
    async with smtp_server(handler) as server:
        env = _worker_env(db_env, server.url)
        first = await _worker(env)
        second = None
        try:
            await _first_message(handler)
            first.send_signal(signal.SIGSTOP)  # starved of CPU, not dead
            handler.data_delay = 0
            # it takes the job over once the first's 2 s lease lapses (it polls every 0.1 s)
            second = await _worker(env)

            async def settled() -> bool:
                left = await world.scalar("SELECT COUNT(*) FROM invite WHERE state IN "
                                          "('queued', 'held', 'sending')")  # fmt: skip
                return left == 0

            await _until(settled, 60, "the second worker to finish")

            async def answered() -> bool:
                return handler.answered == len(handler.messages)

            # the server answers 250 to the first worker's message (4 s after its DATA)
            await _until(answered, 60, "the server to answer the first message")
            first.send_signal(signal.SIGCONT)  # it reads the 250: the invite was delivered

            # until it recorded the invite sent (within 10 s; the assertions below say what
            # it did), then half a second more: it emails nobody meanwhile
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while await world.scalar("SELECT COUNT(*) FROM invite WHERE state <> 'sent'") and (
                    loop.time() < deadline):  # fmt: skip
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        finally:
            first.send_signal(signal.SIGCONT)
            first.send_signal(signal.SIGTERM)
            await first.wait()
            if second is not None:
                second.send_signal(signal.SIGTERM)
                await second.wait()
    received = Counter(to for m in handler.messages for to in m.rcpt_tos)
    assert len(received) == 6 and set(received.values()) == {1}
    delivered_first = handler.messages[0].rcpt_tos[0]
    states = dict(await world.rows("SELECT c.email, i.state FROM invite i "
                                   "JOIN contact c ON c.id = i.contact_id"))  # fmt: skip
    assert states == {f"p{i}@example.com": "sent" for i in range(6)}
    enrollment = int(str(await world.scalar("SELECT MAX(id) FROM enrollment")))
    assert not (await resend_uncertain(world.db, TEAM, enrollment, actor="U1")).count  # none
    async with smtp_server() as again:
        await send_invites(world.db, TEAM, enrollment,
                           sender=SmtpSender(parse_smtp_url(again.url)),
                           links=Links("https://bot.example", "test-secret"))  # fmt: skip
    assert again.handler.messages == [], f"{delivered_first} emailed twice"


async def test_an_invite_a_killed_worker_left_sending_is_offered_for_resending(
    world: World, db_env: dict[str, str]
) -> None:
    """A worker killed while the server held an invite's reply left it `sending`: the
    campaign list said nothing may not have arrived, and *Resend uncertain* found nothing,
    until another worker ran the job (none may: whoever runs the bot stopped them). Once the
    dead worker's lease lapses, both take it as uncertain."""
    from bot.campaigns import service
    from bot.campaigns.invites import resend_campaign_uncertain
    from bot.campaigns.reports import enrollment_summary

    await world.import_csv("VIP", people("a@example.com,A,en", "b@example.com,B,en"))
    spring = await world.campaign()
    await world.target(spring, "VIP")
    enrollment = int(str(await world.scalar("SELECT MAX(id) FROM enrollment")))
    handler = Handler(data_delay=60)  # the server takes the first message, then says nothing
    async with smtp_server(handler) as server:
        worker = await _worker(_worker_env(db_env, server.url))
        try:
            await _first_message(handler)
        finally:
            worker.kill()
            await worker.wait()
    assert await world.scalar("SELECT COUNT(*) FROM invite WHERE state = 'sending'") == 1
    await asyncio.sleep(2.5)  # its 2 s lease lapses

    [listed] = await service.list_campaigns(world.db, TEAM)
    assert listed.invites_uncertain == 1
    assert (await enrollment_summary(world.db, TEAM, enrollment)).resendable == 1
    done = await resend_campaign_uncertain(world.db, TEAM, spring, actor="U1")
    assert done.count == 1
    assert await world.rows("SELECT state, COUNT(*) FROM invite GROUP BY state") == [
        ("queued", 2)]  # fmt: skip
