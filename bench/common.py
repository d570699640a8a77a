"""What the benchmarks share: their one failure type and running the CLI in-process."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Benchmarks run as `python bench/NAME.py`: make the project importable from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class BenchFailed(Exception):
    """The work measured failed or gave wrong counts: the only non-zero exits."""


def say(message: str) -> None:
    """Progress on stderr: stdout is the report, or its JSON."""
    print(message, file=sys.stderr, flush=True)


def referral_bot(parser: argparse.ArgumentParser) -> str:
    """The `referral-bot` command beside this Python (else on PATH); a usage error without."""
    exe = shutil.which("referral-bot", path=str(Path(sys.executable).parent)) or shutil.which(
        "referral-bot"
    )
    if exe is None:
        parser.error("no referral-bot command: install the project (pip install -e .)")
    return exe


@contextlib.contextmanager
def environment(env: dict[str, str], cwd: Path) -> Iterator[None]:
    """Run this process's CLI calls with `env` and in `cwd` (no stray .env), then restore."""
    saved, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    """A temp dir for one run, removed afterwards unless the user asked to keep it."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def verdict_table(table: list[tuple[str, str, str, str]], *, value_width: int,
                  target_width: int = 10) -> list[str]:  # fmt: skip
    """(metric, value, target, verdict) rows as aligned lines under a header and a rule."""
    width = max(len(row[0]) for row in table)
    lines = [f"{'metric':<{width}}  {'value':>{value_width}}  {'target':<{target_width}}  verdict",
             f"{'-' * width}  {'-' * value_width}  {'-' * target_width}  -------"]  # fmt: skip
    lines += [f"{m:<{width}}  {v:>{value_width}}  {tg:<{target_width}}  {vd}".rstrip()
              for m, v, tg, vd in table]  # fmt: skip
    return lines


def failed(name: str, exc: BenchFailed, as_json: bool) -> int:
    """Report a failed run on stderr (and as JSON when asked); the exit status to return."""
    if as_json:
        print(json.dumps({"error": str(exc)}))
    print(f"{name}: {exc}", file=sys.stderr)
    return 1


def watch_rss(proc: subprocess.Popen[str]) -> float:
    """Peak RSS (MiB) of the process or any of its children, sampled every 20 ms."""
    import psutil

    peak = 0
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    peak = max(peak, p.memory_info().rss)
            time.sleep(0.02)
    except psutil.Error:
        pass
    return peak / (1024 * 1024)
