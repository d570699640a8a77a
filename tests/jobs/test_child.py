"""How serve's /healthz and log say a worker child ended: "exited with status -9" was all
they said of a child the kernel killed for want of memory (the SIGKILL itself is sent to a
real child in tests/test_health.py)."""

from __future__ import annotations

import pytest

from bot.jobs.child import ended_how


@pytest.mark.parametrize(("code", "said"), [
    (1, "exited with status 1 (its error is in serve's log)"),
    (-9, "was killed by SIGKILL (status -9: out of memory, or killed by hand)"),
    (-11, "was killed by SIGSEGV (status -11: a crash in a native library)"),
    (-1, "was killed by SIGHUP (status -1)"),
    (-99, "was killed by signal 99 (status -99)"),
])  # fmt: skip
def test_a_childs_end_is_said_in_words(code: int, said: str) -> None:
    assert ended_how(code) == said
