"""`referral-bot ARGS` as a shell user runs it, for tests.

`run` calls the real command, `bot.cli.main(argv)` (what the installed `referral-bot` script
calls, through bot.launch), in this process: the environment the command sees is exactly what
a subprocess would get (this process's, without DATABASE_* and DEFAULT_*, plus `env`), and its
stdout, stderr and exit status come back as a `subprocess.CompletedProcess`. It skips only the
~1 s of imports a new Python process costs. `run_process` starts a real process, for what is
about the process itself (its exit status, signals, its locale, a directory of its own).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path

from bot.cli import main

CLI = [sys.executable, "-m", "bot.launch"]
TIMEOUT = 120

# os.environ, sys.stdout and sys.stderr are the process's: one command at a time swaps them.
_ONE_AT_A_TIME = threading.Lock()


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """What a command started from this test sees: no stray database settings, then `env`."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DEFAULT_"))}
    full.update(env)
    return full


def run_process(
    env: Mapping[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`referral-bot ARGS` in a new Python process."""
    return subprocess.run([*CLI, *args], env=environment(env), capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd)  # fmt: skip


def run(env: Mapping[str, str], *args: str,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`referral-bot ARGS` through `bot.cli.main` in this process (see the module docstring),
    typed in `cwd` if given (the process's working directory, swapped as its environment is).

    main() runs its own event loop, so it runs in a thread of its own: this works from a test's
    event loop too (blocking it, as `subprocess.run` would; use `asyncio.to_thread(run, ...)`
    when that loop must keep serving, e.g. a fake server the command talks to). An exception
    main() lets through is printed to stderr with exit status 1, as the interpreter would.
    """
    out, err = io.StringIO(newline=None), io.StringIO(newline=None)  # as text=True reads a pipe
    status: list[int] = []
    with (
        _ONE_AT_A_TIME,
        _environ(environment(env)),
        _chdir(cwd),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        thread = threading.Thread(target=_main, args=(list(args), status), name="referral-bot")
        thread.start()
        thread.join(TIMEOUT)
        if thread.is_alive():
            raise subprocess.TimeoutExpired(["referral-bot", *args], TIMEOUT, out.getvalue(),
                                            err.getvalue())  # fmt: skip
    return subprocess.CompletedProcess(["referral-bot", *args], status[0], out.getvalue(),
                                       err.getvalue())  # fmt: skip


def _main(argv: list[str], status: list[int]) -> None:
    try:
        code: object = main(argv)
    except SystemExit as exc:  # argparse's usage errors and --version
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    status.append(code)


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _chdir(cwd: Path | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    with contextlib.chdir(cwd):
        yield
