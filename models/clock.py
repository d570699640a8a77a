"""One notion of "now" for every table: aware UTC (sqlmodel stores it as timestamptz)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(when: datetime) -> datetime:
    """`when` as aware UTC: a naive one (as typed, or read back from SQLite) is taken as UTC."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
