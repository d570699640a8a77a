"""This process's clock off the database server's, as another host's clock may be."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

import pytest

import models.clock
from tests.conftest import BACKEND

TEAM = "T1"
# for a module's pytestmark: SQLite has no server of its own, hence no clock to be off from
POSTGRES_ONLY = pytest.mark.skipif(BACKEND != "postgres",
                                   reason="one host shares SQLite's file and clock")  # fmt: skip


def skew_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Every `models.clock.utcnow` of this process reads `seconds` off the real time (ahead;
    negative: behind), as NTP may leave a host's clock; the database server's stays right.
    The stdlib clock under it is what changes, so whatever code reads "now" sees the skew."""
    real = datetime

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            return real.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(models.clock, "datetime", Skewed)
