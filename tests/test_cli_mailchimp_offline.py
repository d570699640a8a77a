"""`referral-bot mailchimp connect` with a key it can't check for want of the network or DNS.

Offline, the resolver says every name doesn't exist (EAI_NONAME), a real data centre's too:
`echo KEY-us21 | referral-bot mailchimp connect` said "There's no Mailchimp data centre
'us21'", sending the person to look for a typo in a key that was right. It says that
Mailchimp couldn't be reached now; a data centre that doesn't exist while other names
resolve is still said so, at once.

No test here needs the network: names under `.invalid` never resolve (RFC 6761), as every
name doesn't offline; where other names must resolve, or the resolver must fail for now
(EAI_AGAIN), the resolver's answers are those of the test's (socket.getaddrinfo).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from typing import Any

import pytest

from models import Database
from tests.shell import CLI, environment, run

KEY = "0123456789abcdef0123456789abcdef"
OFFLINE = "Couldn't reach Mailchimp (no network or DNS?)"
# every data centre's host under .invalid: none resolves, as none does offline
NOWHERE = "http://{dc}.api.invalid"


@pytest.fixture
def env(db: Database, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The shell's environment: this test's database, Mailchimp's hosts under .invalid, and
    no proxy (which would look the names up itself)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return {**db_env, "SECRET_KEY": "k" * 32, "MAILCHIMP_API_URL": NOWHERE}


def _not_connected(env: dict[str, str]) -> bool:
    status = run(env, "mailchimp", "status", "--json")
    return status.returncode == 0 and json.loads(status.stdout)["connected"] is False


def _resolver(answers: dict[str, int | None]) -> Any:
    """socket.getaddrinfo answering for the hosts named (None: found, at 127.0.0.1; a number:
    that gaierror), and as the system's for any other."""
    system = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return system(host, port, *args, **kwargs)
        if (error := answers[host]) is not None:
            raise socket.gaierror(error, f"the test's resolver: {host} ({error})")
        return system("127.0.0.1", port, *args, **kwargs)

    return getaddrinfo


def test_a_key_piped_in_offline_is_told_mailchimp_couldnt_be_reached(env: dict[str, str]) -> None:
    """As the report has it, in a process of its own: the key piped in."""
    connect = subprocess.run([*CLI, "mailchimp", "connect"], env=environment(env),
                             input=f"{KEY}-us21\n", capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert connect.returncode == 1, connect
    assert OFFLINE in connect.stderr and "the key wasn't checked or saved" in connect.stderr
    assert "no Mailchimp data centre" not in connect.stderr, connect.stderr
    assert _not_connected(env)


def test_a_data_centre_that_doesnt_exist_is_said_so_while_others_resolve(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver({"us1.api.invalid": None}))
    connect = run(env, "mailchimp", "connect", "--api-key", f"{KEY}-us99")
    assert connect.returncode == 1
    assert ("There's no Mailchimp data centre 'us99': check the part of the key after the "
            "dash.") in connect.stderr, connect.stderr  # fmt: skip
    assert _not_connected(env)


def test_a_key_whose_data_centre_isnt_one_is_said_so_offline_too(env: dict[str, str]) -> None:
    """Not a data centre's name (us99x): a typo, whatever the network."""
    connect = run(env, "mailchimp", "connect", "--api-key", f"{KEY}-us99x")
    assert connect.returncode == 1
    assert "There's no Mailchimp data centre 'us99x'" in connect.stderr, connect.stderr


def test_a_lookup_that_fails_for_now_is_told_mailchimp_couldnt_be_reached_at_once(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EAI_AGAIN (the resolver out of reach) was retried as Mailchimp being busy: 15 s, then
    "Mailchimp kept failing to answer a ping: it couldn't be reached. Try again later."."""
    monkeypatch.setattr(socket, "getaddrinfo",
                        _resolver({"us21.api.invalid": socket.EAI_AGAIN}))  # fmt: skip
    began = time.monotonic()
    connect = run(env, "mailchimp", "connect", "--api-key", f"{KEY}-us21")
    assert connect.returncode == 1
    assert (f"{OFFLINE}: looking up us21.api.invalid failed, so the key wasn't checked or "
            "saved.") in connect.stderr, connect.stderr  # fmt: skip
    assert time.monotonic() - began < 10
    assert _not_connected(env)


async def test_a_named_workspace_not_connected_is_told_the_command_for_it(
    db: Database, env: dict[str, str],
) -> None:
    """`mailchimp status --team T2` of a workspace not connected said `referral-bot mailchimp
    connect`, which with several workspaces is refused (which one?) or connects another."""
    from bot.workspaces import ensure_workspace

    for team in ("T1", "T2"):
        await ensure_workspace(db, team)
    said = run(env, "mailchimp", "--team", "T2", "status")
    assert said.returncode == 0, said.stderr
    assert said.stdout == ("Mailchimp isn't connected: referral-bot mailchimp connect --team T2 "
                           "(it asks for the key)\n"), said.stdout
