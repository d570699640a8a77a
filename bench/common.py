"""What the benchmarks share: their one failure type and running the CLI in-process."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# Benchmarks run as `python bench/NAME.py`: make the project importable from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class BenchFailed(Exception):
    """The work measured failed or gave wrong counts: the only non-zero exits."""


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
