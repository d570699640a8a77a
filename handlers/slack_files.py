"""Slack-hosted contact files (CSV, .xlsx, ZIP of CSVs): describe them from `files.info` and
download them safely. `SlackFileFetcher` is what the import services are given to fetch a
shared file by id (bot.imports.background.FileFetcher): they never see the token.

The bot token opens every file in the workspace, so it is only ever sent to the hosts listed
in SLACK_FILE_HOSTS, over HTTPS (plain HTTP only to a listed loopback host, for tests), and
never through a redirect. An external file (Google Drive, Dropbox...) can point anywhere: it is
refused with a message rather than fetched.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.imports.archives import CSV_SUFFIXES, TABLE_SUFFIXES
from bot.imports.background import FileRejected
from bot.imports.reading import find_header, is_data_row, is_header
from bot.settings import Settings
from handlers.slack_errors import TOKEN_REFUSALS, slack_error, token_refused

CSV_TYPES = frozenset({"csv", "tsv", "text"})
TABLE_TYPES = frozenset({"csv", "tsv"})  # CSV_TYPES less plain text, which may hold anything
# Excel workbooks and ZIPs of CSVs (Mailchimp's audience export), by Slack's filetype or name;
# what the bytes really are is decided when the file is read (files.py).
# A macro-enabled workbook or a template is the same workbook to read (its macros never run).
OTHER_TYPES = frozenset({"xlsx", "xlsm", "xltx", "xltm", "zip"})
OTHER_SUFFIXES = (".xlsx", ".xlsm", ".xltx", ".xltm", ".zip")
OLD_EXCEL = frozenset({"xls"})


# files.info errors that mean the file is gone for good (or out of the bot's sight).
GONE = frozenset({"file_not_found", "file_deleted", "access_denied"})


@dataclass(frozen=True, slots=True)
class SlackFile:
    id: str
    name: str
    filetype: str
    size: int
    url: str
    external: bool
    # files.info's first lines of a text file (Slack's `preview`), and whether its last line
    # may be cut short (`preview_is_truncated`); None: Slack gave none
    preview: str | None = None
    preview_cut: bool = False

    @property
    def importable(self) -> bool:
        """Whether we can import it: a CSV (or .tsv, .txt), an .xlsx workbook or a ZIP of
        CSVs. What check_csv asks of a file chosen in the import form or reviewed."""
        name = self.name.lower()
        return (self.filetype in CSV_TYPES or name.endswith(CSV_SUFFIXES)
                or self.filetype in OTHER_TYPES or name.endswith(OTHER_SUFFIXES))  # fmt: skip

    @property
    def plain_text(self) -> bool:
        """A .txt (Slack's filetype "text"): importable only for what it holds."""
        name = self.name.lower()
        table = (self.filetype in TABLE_TYPES or name.endswith(TABLE_SUFFIXES)
                 or self.filetype in OTHER_TYPES or name.endswith(OTHER_SUFFIXES))  # fmt: skip
        return self.importable and not table

    @property
    def looks_like_csv(self) -> bool:
        """Whether a file shared in a channel is offered for import (the upload offer asks
        this of every shared file): what we can import, a .txt only when Slack's preview of
        it reads as a contact list. Meeting notes shared as notes.txt were offered ("Import
        these contacts?") in busy channels. Without a preview it is offered, as before: a
        list not offered would go unnoticed. Nothing is downloaded to decide."""
        if not self.plain_text:
            return self.importable
        return self.preview is None or reads_as_contacts(self.preview, cut=self.preview_cut)


def reads_as_contacts(text: str, *, cut: bool = False) -> bool:
    """Whether a text file's first lines are a contact list as the importer reads one: a
    header whose email column is recognised (the importer's find_header and is_header), or
    rows most of which have an address cell under whatever first line (is_data_row; a
    headerless list, or columns to map). An address among a note's words ("write to
    ann@x.com") is no row. `cut`: the last line may end part way, so only a header is looked
    for in it."""
    text = text.removeprefix("\ufeff")
    delimiter, start = find_header(text)
    lines = io.StringIO(text, newline="").readlines()[start:]
    try:
        rows = [row for row in csv.reader(lines, delimiter=delimiter, strict=False)
                if any(cell.strip() for cell in row)]  # fmt: skip
    except csv.Error:
        return False
    if not rows:
        return False
    if is_header(rows[0]):
        return True
    if cut:
        rows = rows[:-1]
    data = rows if rows and is_data_row(rows[0]) else rows[1:]
    # most rows, not every one: a list with a customer whose address is missing is still a
    # list (the import skips that row and says why), and notes have next to none
    found = sum(1 for row in data if is_data_row(row))
    return found > 0 and found * 2 >= len(data)


def describe(file: dict[str, Any]) -> SlackFile:
    """The fields we use from a Slack file object (files.info, file_share, file_input)."""
    preview = file.get("preview")
    return SlackFile(
        id=str(file.get("id", "")),
        name=str(file.get("name") or file.get("title") or "file"),
        filetype=str(file.get("filetype", "")).lower(),
        size=int(file.get("size") or 0),
        url=str(file.get("url_private_download") or file.get("url_private") or ""),
        external=bool(file.get("is_external")),
        preview=preview if isinstance(preview, str) else None,
        preview_cut=bool(file.get("preview_is_truncated")),
    )


def upload_limit(settings: Settings) -> int:
    """MAX_UPLOAD_MB in bytes: what an offer, the modal and the download all refuse above.
    Rounded, not cut: 8.2 * 1e6 is 8199999.999999999 in floating point, and 8.2 was a byte
    under 8.2 MB, said "8.199999 MB" (megabytes)."""
    return round(settings.max_upload_mb * 1e6)


def megabytes(size: int) -> str:
    """`size` bytes in MB as MAX_UPLOAD_MB sets them: "10", "0.5", "2.25" (it may be a
    fraction, and "the limit is 0 MB" said nothing); bytes are millionths of a MB."""
    return f"{size / 1e6:,.6f}".rstrip("0").rstrip(".")


def check_csv(file: SlackFile, max_bytes: int) -> None:
    """Refuse, before downloading, a file we can't import, a too big one or an external one."""
    if not file.importable:
        if file.filetype in OLD_EXCEL or file.name.lower().endswith(".xls"):
            # an old workbook, or the web page (HTML table) that Salesforce, NetSuite or Zoho's
            # "Export to Excel" names .xls: the same thing to do
            raise FileRejected(f"{file.name} is an old Excel .xls file or a web page (HTML "
                               "table) saved as .xls: open it in Excel and save it as .xlsx or "
                               "CSV, then upload that.")  # fmt: skip
        raise FileRejected(f"{file.name} is not a CSV file, an Excel .xlsx workbook or a ZIP of "
                           "CSV files: export it as CSV and upload that.")  # fmt: skip
    if file.size > max_bytes:
        # to a tenth of a MB, unless that rounds it down to the limit ("is 10.0 MB; the limit
        # is 10 MB"): then as exactly as the limit is said
        size = f"{file.size / 1e6:.1f}"
        if float(size) * 1e6 <= max_bytes:
            size = megabytes(file.size)
        raise FileRejected(f"{file.name} is {size} MB; the limit is {megabytes(max_bytes)} MB.")
    if file.external:
        raise FileRejected(
            f"{file.name} is stored outside Slack: download it and upload the file itself."
        )


def _allowed(url: str, hosts: list[str]) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # ":bad", ":99999": not a host the token may go to
        return False
    with_port = f"{host}:{port}" if port else host
    if with_port not in hosts and not (port is None and host in hosts):
        return False
    if parts.scheme == "https":
        return True
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return parts.scheme == "http" and loopback


class FileHostUnavailable(Exception):
    """Slack's file host is busy or down: not the file's fault, worth trying again later."""


async def download(
    file: SlackFile, *, token: str, hosts: list[str], max_bytes: int, dest: BinaryIO
) -> int:
    """Stream the file into `dest`; returns its size. Raises FileRejected with a reason."""
    if not file.url or not _allowed(file.url, hosts):
        host = urlsplit(file.url).netloc or "no address"
        raise FileRejected(f"{file.name} is not on Slack's file host ({host}); not downloading it.")
    timeout = aiohttp.ClientTimeout(total=120, sock_read=30)
    async with (
        aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
        session.get(
            file.url, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False
        ) as response,
    ):
        if 300 <= response.status < 400:
            raise FileRejected(f"Slack redirected the download of {file.name}; not following.")
        if response.status == 429 or response.status >= 500:  # busy for now: the job retries
            raise FileHostUnavailable(f"Slack's file host answered {response.status} for "
                                      f"{file.name}.")  # fmt: skip
        if response.status in (403, 404, 410):
            raise FileRejected(f"{file.name} was deleted, or I may not read it any more (Slack "
                               f"answered {response.status}).")  # fmt: skip
        if response.status != 200:
            raise FileRejected(f"Slack answered {response.status} for {file.name}.")
        if response.content_type == "text/html":
            raise FileRejected(
                f"Slack sent a login page instead of {file.name}: the app needs the files:read "
                "scope (reinstall it from manifest.yml)."
            )
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise FileRejected(f"{file.name} is larger than {megabytes(max_bytes)} MB.")
            dest.write(chunk)
    return size


@dataclass(frozen=True, slots=True)
class SlackFileFetcher:
    """Fetches a file shared in Slack by id: looked up, checked, then downloaded.

    The import job and the *Map columns* modal both read files this way."""

    client: AsyncWebClient
    token: str
    hosts: list[str]
    max_bytes: int

    async def __call__(self, file_id: str, dest: BinaryIO) -> str:
        file = describe(await self.info(file_id))
        check_csv(file, self.max_bytes)
        await download(file, token=self.token, hosts=self.hosts, max_bytes=self.max_bytes,
                       dest=dest)  # fmt: skip
        return file.name

    async def info(self, file_id: str) -> dict[str, Any]:
        """The file object from files.info; FileRejected once it is gone, or once Slack
        refuses the bot token (retried, it failed the same way five times, a traceback each)."""
        try:
            return (await self.client.files_info(file=file_id))["file"]  # type: ignore[no-any-return]
        except SlackApiError as exc:
            if slack_error(exc) in GONE:
                raise FileRejected("The file was deleted, or the bot can't see it.") from None
            if refused := token_refused(exc):
                raise FileRejected(f"Slack refuses the bot's token: {TOKEN_REFUSALS[refused]}. "
                                   "Reinstall the app, then add the file again.") from None
            raise


def slack_fetcher(settings: Settings, client: AsyncWebClient) -> SlackFileFetcher:
    """Reads shared files for imports; only Slack's file hosts ever see the token."""
    return SlackFileFetcher(client, token=settings.slack_bot_token,
                            hosts=settings.slack_file_hosts,
                            max_bytes=upload_limit(settings))  # fmt: skip
