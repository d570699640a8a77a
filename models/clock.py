"""One notion of "now" for every table: aware UTC (sqlmodel stores it as timestamptz)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
