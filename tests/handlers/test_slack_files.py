"""Downloading Slack files: the bot token goes to Slack's file host and nowhere else."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest

from bot.imports.background import FileRejected
from handlers.slack_files import check_csv, describe, download
from tests.fakes.slack_api import FakeExternalHost, FakeSlack

TOKEN = "xoxb-test"
CSV = b"email,first_name\nada@example.com,Ada\n"


@pytest.fixture
async def slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with FakeSlack(bot_token=TOKEN) as fake:
        yield fake


async def test_a_slack_hosted_csv_downloads_with_the_token(slack: FakeSlack) -> None:
    file = describe(slack.add_file("F1", "q3.csv", CSV))
    out = io.BytesIO()
    size = await download(file, token=TOKEN, hosts=[slack.files_host], max_bytes=10_000, dest=out)
    assert (size, out.getvalue()) == (len(CSV), CSV)
    assert [d.token_sent for d in slack.downloads] == [True]


async def test_an_unlisted_host_never_sees_the_token(slack: FakeSlack) -> None:
    async with FakeExternalHost() as other:
        url = other.serve("/export.csv", CSV)
        file = describe(slack.add_file("F2", "export.csv", CSV, external=True,
                                       url_private_download=url))  # fmt: skip
        with pytest.raises(FileRejected, match="stored outside Slack"):
            check_csv(file, 10_000)
        with pytest.raises(FileRejected, match="not on Slack's file host"):
            await download(file, token=TOKEN, hosts=[slack.files_host], max_bytes=10_000,
                           dest=io.BytesIO())  # fmt: skip
        assert other.requests == [] and other.authorizations == []


async def test_a_redirect_is_not_followed_with_the_token(slack: FakeSlack) -> None:
    async with FakeExternalHost() as other:
        target = other.serve("/stolen.csv", CSV)
        async with FakeExternalHost() as listed:
            url = listed.redirect("/f.csv", target)
            file = describe({"id": "F3", "name": "f.csv", "filetype": "csv", "size": 10,
                             "url_private_download": url})  # fmt: skip
            with pytest.raises(FileRejected, match="redirected"):
                await download(file, token=TOKEN, hosts=[listed.host], max_bytes=10_000,
                               dest=io.BytesIO())  # fmt: skip
        assert other.requests == []


async def test_a_login_page_means_a_missing_scope(slack: FakeSlack) -> None:
    file = describe(slack.add_file("F4", "q3.csv", CSV))
    with pytest.raises(FileRejected, match="files:read"):
        await download(file, token="xoxb-wrong", hosts=[slack.files_host], max_bytes=10_000,
                       dest=io.BytesIO())  # fmt: skip


async def test_size_cap_and_type_checks(slack: FakeSlack) -> None:
    big = describe(slack.add_file("F5", "big.csv", CSV * 100))
    with pytest.raises(FileRejected, match="larger than"):
        await download(big, token=TOKEN, hosts=[slack.files_host], max_bytes=100,
                       dest=io.BytesIO())  # fmt: skip
    with pytest.raises(FileRejected, match="not a CSV"):
        check_csv(describe({"id": "F6", "name": "deck.pdf", "filetype": "pdf", "size": 1}), 10)
    with pytest.raises(FileRejected, match="limit"):
        check_csv(describe({"id": "F7", "name": "a.csv", "filetype": "csv", "size": 11}), 10)


async def test_a_limit_of_a_fraction_of_a_megabyte_is_said_as_set(slack: FakeSlack) -> None:
    """MAX_UPLOAD_MB=0.5 said "the limit is 0 MB" (and 2.5 "2 MB"); a file a byte over the
    limit was "10.0 MB; the limit is 10 MB"."""
    with pytest.raises(FileRejected, match=r"is 0\.6 MB; the limit is 0\.5 MB\.$"):
        check_csv(describe({"id": "F8", "name": "a.csv", "filetype": "csv",
                            "size": 600_000}), 500_000)  # fmt: skip
    with pytest.raises(FileRejected, match=r"is 10\.000001 MB; the limit is 10 MB\.$"):
        check_csv(describe({"id": "F8", "name": "a.csv", "filetype": "csv",
                            "size": 10_000_001}), 10_000_000)  # fmt: skip
    big = describe(slack.add_file("F9", "big.csv", CSV * 100))
    with pytest.raises(FileRejected, match=r"larger than 0\.0001 MB\.$"):
        await download(big, token=TOKEN, hosts=[slack.files_host], max_bytes=100,
                       dest=io.BytesIO())  # fmt: skip


def test_plain_http_only_to_a_listed_loopback_host() -> None:
    from handlers.slack_files import _allowed

    assert _allowed("https://files.slack.com/files-pri/T-F/x.csv", ["files.slack.com"])
    assert not _allowed("http://files.slack.com/files-pri/T-F/x.csv", ["files.slack.com"])
    assert not _allowed("https://files.slack.com.evil.example/x.csv", ["files.slack.com"])
    assert _allowed("http://127.0.0.1:8080/x.csv", ["127.0.0.1:8080"])
    assert not _allowed("http://127.0.0.1:9090/x.csv", ["127.0.0.1:8080"])


@pytest.mark.parametrize(
    ("name", "filetype", "importable"),
    [("export.zip", "zip", True), ("Kunden.xlsx", "xlsx", True), ("list.XLSX", "binary", True),
     ("audience.zip", "", True), ("q3.csv", "csv", True), ("deck.pdf", "pdf", False),
     ("old.xls", "xls", False)],
)  # fmt: skip
def test_workbooks_and_zips_are_offered_like_csvs(name: str, filetype: str,
                                                  importable: bool) -> None:  # fmt: skip
    file = describe({"id": "F8", "name": name, "filetype": filetype, "size": 1})
    assert file.looks_like_csv is importable
    if importable:
        check_csv(file, 10)


def test_an_old_xls_is_refused_with_what_to_do() -> None:
    """Salesforce's, NetSuite's or Zoho's "Export to Excel" is a web page named .xls: it was
    told it is an old Excel file only."""
    with pytest.raises(FileRejected, match=r"old Excel \.xls file or a web page \(HTML table\) "
                       r"saved as \.xls: open it in Excel and save it as \.xlsx or CSV"):
        check_csv(describe({"id": "F9", "name": "old.xls", "filetype": "xls", "size": 1}), 10)
