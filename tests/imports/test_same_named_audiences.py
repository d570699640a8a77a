"""Two Mailchimp audiences of one name, chosen by id (`import --mailchimp-list ID1
--mailchimp-list ID2`), are told apart in the shell's rejects file."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest

from bot.imports.importer import import_files
from bot.mailchimp import api
from bot.workspaces import ensure_workspace
from models import Database
from tests.fakes.mailchimp import FakeMailchimp

TEAM = "T0TWINS"
KEY = "0123456789abcdef0123456789abcdef-us21"


@pytest.fixture
async def mc(db: Database) -> AsyncIterator[FakeMailchimp]:
    await ensure_workspace(db, TEAM)
    async with FakeMailchimp() as fake:
        account = fake.add_account(KEY)
        shop = account.add_list("aud1", "Newsletter")
        shop.add_member("ana@example.com")
        blog = account.add_list("aud2", "Newsletter")  # Mailchimp lets audiences share a name
        blog.add_member("bo@example.com")
        blog.add_member("ana@example.com")
        yield fake


async def test_two_audiences_of_one_name_are_told_apart_in_the_rejects_file(
    db: Database, mc: FakeMailchimp
) -> None:
    """Both were "Newsletter": the rejects file's row of ana, skipped in the second as a
    duplicate of the first's, could have been either audience's."""
    creds = api.Credentials(mc.base_url, "api_key", KEY)
    rejects = io.StringIO()
    await import_files(db, TEAM, [], segment="MC", create_segment=True,
                       mailchimp=(creds, await api.audiences(creds)), rejects=rejects)
    rows = list(csv.reader(io.StringIO(rejects.getvalue())))
    assert [(row[0], row[2], row[7]) for row in rows[1:]] == [
        ("Newsletter (2)", "ana@example.com", "duplicate")], rows
