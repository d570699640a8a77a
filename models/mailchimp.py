"""A workspace's Mailchimp connection: who connected which account, and its sealed secret."""

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from models.clock import utcnow


class MailchimpAccount(SQLModel, table=True):
    __tablename__ = "mailchimp_account"

    team_id: str = Field(primary_key=True, max_length=32, foreign_key="workspace.team_id")
    account_name: str = Field(default="", max_length=200)
    login_email: str = Field(default="", max_length=320)
    dc: str = Field(max_length=16)  # data centre, e.g. us21
    api_endpoint: str = Field(max_length=200)  # e.g. https://us21.api.mailchimp.com
    auth: str = Field(max_length=10)  # "oauth" (Bearer token) or "api_key" (Basic)
    secret: str = Field(sa_type=Text)  # Fernet-sealed token or key: never in clear
    connected_by: str = Field(max_length=64)
    connected_at: datetime = Field(default_factory=utcnow)
    # when Mailchimp last refused these credentials (a check or a use; 401/403), None once it
    # accepts them again: App Home says so without asking Mailchimp each time it is drawn
    refused_at: datetime | None = None
