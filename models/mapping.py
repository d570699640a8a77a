"""Column mappings a workspace chose for a file's headers, so the next export maps itself."""

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from models.clock import utcnow


class ColumnMapping(SQLModel, table=True):
    """Which header holds each field, for files with exactly this set of headers.

    `headers_key` is a hash of the normalised header names (bot.imports.mapping.headers_key):
    next week's export from the same tool has the same headers, whatever their order. Names
    are kept as the file spelled them (Text: headers can be long), matched normalised.
    """

    __tablename__ = "column_mapping"

    team_id: str = Field(primary_key=True, max_length=32)
    headers_key: str = Field(primary_key=True, max_length=64)
    email: str = Field(sa_type=Text)
    first_name: str | None = Field(default=None, sa_type=Text)
    last_name: str | None = Field(default=None, sa_type=Text)
    locale: str | None = Field(default=None, sa_type=Text)
    subscribed: str | None = Field(default=None, sa_type=Text)
    updated_by: str = Field(max_length=64)  # a Slack user id, or "cli"
    updated_at: datetime = Field(default_factory=utcnow)
