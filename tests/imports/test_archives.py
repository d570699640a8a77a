"""ZIP archives of CSVs: Mailchimp's export, unsafe names, ZIP bombs, lying sizes, damage."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from bot.imports.archives import (
    RATIO_FLOOR_BYTES,
    SizeCapped,
    is_zip,
    mailchimp_kind,
    open_archive,
)
from bot.imports.parallel import file_path
from bot.imports.reading import SAMPLE_BYTES, CsvFileError, CsvReader
from bot.imports.rows import DUPLICATE, REJECTED, VALID, Classifier
from tests.imports import csv_samples as samples

MB = 1024 * 1024
CAP = 500 * MB
UNSUB_COLUMNS = [
    "UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
    "UNSUB_REASON_OTHER",
]  # fmt: skip
CLEAN_COLUMNS = ["CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"]


def zip_bytes(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def members(header_extra: list[str], *emails: str) -> bytes:
    header = [*samples.MAILCHIMP_HEADER, *header_extra]
    rows = [[email, "First", "Last"] + [""] * (len(header) - 3) for email in emails]
    return samples.csv_bytes([header, *rows])


def mailchimp_export() -> bytes:
    """Mailchimp's audience export as downloaded, zipped again on a Mac (resource forks)."""
    return zip_bytes({
        "subscribed_members_export_1a2b3c.csv": members([], "ada@example.com", "li@example.cn"),
        "unsubscribed_members_export_1a2b3c.csv": members(UNSUB_COLUMNS, "gone@example.com"),
        "cleaned_members_export_1a2b3c.csv": members(CLEAN_COLUMNS, "bounced@example.com"),
        "__MACOSX/._subscribed_members_export_1a2b3c.csv": b"\x00\x05\x16\x07",
        "export/": b"",
        "export/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "export/README.pdf": samples.pdf_document(),
    })  # fmt: skip


class CountingBytes(io.BytesIO):
    """Counts the bytes read from it, to prove a check needed no entry data."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def patch_sizes(data: bytes, name: str, *, file_size: int | None = None,
                flags: int | None = None, method: int | None = None) -> bytes:  # fmt: skip
    """`data` with one entry's declared size, flags or method rewritten in both its headers."""
    out = bytearray(data)
    encoded = name.encode()
    local = out.find(b"PK\x03\x04")  # the first entry: callers patch a one-entry ZIP
    central = out.find(b"PK\x01\x02")
    assert out[local + 30 : local + 30 + len(encoded)] == encoded
    assert out[central + 46 : central + 46 + len(encoded)] == encoded
    for header, flag_at, method_at, size_at in ((local, 6, 8, 22), (central, 8, 10, 24)):
        if flags is not None:
            struct.pack_into("<H", out, header + flag_at, flags)
        if method is not None:
            struct.pack_into("<H", out, header + method_at, method)
        if file_size is not None:
            struct.pack_into("<I", out, header + size_at, file_size)
    return bytes(out)


def bomb(size: int) -> bytes:
    """A real deflate bomb: `size` bytes of zeros, written in chunks, compressing ~1000x."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("contacts.csv", "w", force_zip64=True) as entry,
    ):
        chunk = bytes(MB)
        for _ in range(size // MB):
            entry.write(chunk)
    return out.getvalue()


# --- recognising a ZIP ---------------------------------------------------------------------


def test_is_zip_by_magic_and_leaves_the_position() -> None:
    stream = io.BytesIO(b"xx" + mailchimp_export())
    stream.seek(2)
    assert is_zip(stream) and stream.tell() == 2
    assert is_zip(io.BytesIO(zip_bytes({})))  # empty archive: end record only
    plain = io.BytesIO(samples.seed_csv())
    assert not is_zip(plain) and plain.tell() == 0
    assert not is_zip(io.BytesIO(b""))


# --- Mailchimp's export --------------------------------------------------------------------


def test_mailchimp_export_lists_its_three_csvs_and_ignores_the_rest() -> None:
    data = mailchimp_export()
    with open_archive(io.BytesIO(data), max_total_bytes=CAP) as archive:
        names = [entry.name for entry in archive.entries]
        assert names == [
            "subscribed_members_export_1a2b3c.csv",
            "unsubscribed_members_export_1a2b3c.csv",
            "cleaned_members_export_1a2b3c.csv",
        ]
        assert archive.ignored == ["README.pdf"]  # not the folder, __MACOSX or .DS_Store
        assert archive.entries[0].size == len(members([], "ada@example.com", "li@example.cn"))

        kinds, staged = {}, {}
        for entry in archive.entries:
            with entry.open() as stream, CsvReader(stream) as reader:
                kinds[entry.name] = mailchimp_kind(entry.name, reader.header)
                classifier = Classifier()
                staged[entry.name] = list(classifier.records(reader.records(), reader.columns))
    assert list(kinds.values()) == ["subscribed", "unsubscribed", "cleaned"]
    subscribed = staged["subscribed_members_export_1a2b3c.csv"]
    assert [(row[0], row[1], row[6]) for row in subscribed] == [
        (2, "ada@example.com", VALID),
        (3, "li@example.cn", VALID),
    ]
    assert staged["cleaned_members_export_1a2b3c.csv"][0][1] == "bounced@example.com"


def test_entry_streams_are_seekable_and_go_through_the_pipeline() -> None:
    """A big entry: CsvReader reads past its sample, seeks back to 0 and streams it again."""
    data = samples.big_csv(20_000)
    assert len(data) > 4 * SAMPLE_BYTES
    with open_archive(io.BytesIO(zip_bytes({"big.csv": data})), max_total_bytes=CAP) as archive:
        (entry,) = archive.entries
        with entry.open() as stream:
            assert stream.seekable() and stream.readable()
            assert stream.read() == data
            assert stream.seek(0) == 0 and stream.tell() == 0
            assert stream.read(100) == data[:100]
            stream.seek(0)
            # no `name`: parallel.file_path must never take an entry for a file on disk
            assert getattr(stream, "name", None) is None and file_path(stream) is None  # type: ignore[arg-type]
            with CsvReader(stream) as reader:
                staged = list(Classifier().records(reader.records(), reader.columns))
    with CsvReader(io.BytesIO(data)) as reader:
        expected = list(Classifier().records(reader.records(), reader.columns))
    assert staged == expected and len(staged) == 20_000
    outcomes = {row[6] for row in staged}
    assert outcomes == {VALID, DUPLICATE, REJECTED}


def test_stored_entries_and_folders_are_read_by_base_name() -> None:
    data = zip_bytes({"exports/2024/contacts.CSV": samples.seed_csv()}, zipfile.ZIP_STORED)
    with open_archive(io.BytesIO(data), max_total_bytes=CAP) as archive:
        (entry,) = archive.entries
        assert entry.name == "contacts.CSV"
        with entry.open() as stream, CsvReader(stream) as reader:
            assert len(list(reader.records())) == len(samples.seed_rows()) - 1


def test_names_macos_finder_zipped_keep_their_accents() -> None:
    """Finder's Compress writes UTF-8 names without the ZIP's UTF-8 flag: "Abonnés.csv"
    showed as "Abonn├⌐s.csv". A name that isn't UTF-8 is read as cp437, as the ZIP says."""
    data = zip_bytes({"AbonnXXs.csv": b"email\na@example.com\n", "NotXX.pdf": b"%PDF",
                      "SeXor.csv": b"email\nb@example.com\n"})  # fmt: skip
    data = data.replace(b"AbonnXXs", "Abonnés".encode()).replace(b"NotXX", "Noté".encode())
    data = data.replace(b"SeXor", b"Se\xa4or")  # "Señor" in cp437

    with open_archive(io.BytesIO(data), max_total_bytes=CAP) as archive:
        assert [e.name for e in archive.entries] == ["Abonnés.csv", "Señor.csv"]
        assert archive.ignored == ["Noté.pdf"]
        with archive.entries[0].open() as stream:
            assert stream.read() == b"email\na@example.com\n"


# --- unsafe names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../evil.csv", "exports/../../evil.csv", "/etc/evil.csv", "..\\evil.csv", "C:/evil.csv"],
)
def test_a_path_traversal_entry_refuses_the_whole_archive(name: str) -> None:
    data = zip_bytes({"good.csv": samples.seed_csv(), name: samples.seed_csv()})
    with pytest.raises(CsvFileError, match=r"evil\.csv.*outside the archive's folder"):
        open_archive(io.BytesIO(data), max_total_bytes=CAP)


def test_dots_inside_a_name_are_not_traversal() -> None:
    data = zip_bytes({"./a..b.csv": samples.seed_csv()})
    with open_archive(io.BytesIO(data), max_total_bytes=CAP) as archive:
        assert [e.name for e in archive.entries] == ["a..b.csv"]


# --- ZIP bombs -----------------------------------------------------------------------------


def test_a_deflate_bomb_over_the_cap_is_refused_before_reading_any_data() -> None:
    data = bomb(64 * MB)
    assert len(data) < MB // 4  # ~64 KB on the wire
    stream = CountingBytes(data)
    with pytest.raises(CsvFileError, match=r"64 MB unzipped, more than the 16 MB limit"):
        open_archive(stream, max_total_bytes=16 * MB)
    assert stream.bytes_read < 1024  # end record and central directory only


def test_a_deflate_bomb_under_the_cap_is_refused_by_its_ratio() -> None:
    stream = CountingBytes(bomb(8 * MB))
    with pytest.raises(CsvFileError, match=r"contacts\.csv .* compressed [\d,]+ times"):
        open_archive(stream, max_total_bytes=CAP)
    assert stream.bytes_read < 1024


def test_a_small_very_compressible_csv_is_no_bomb() -> None:
    data = b"email\n" + b"same@example.com\n" * (RATIO_FLOOR_BYTES // 20)
    archive_bytes = zip_bytes({"repeats.csv": data})
    assert len(data) / len(archive_bytes) > 100
    with open_archive(io.BytesIO(archive_bytes), max_total_bytes=CAP) as archive:
        assert archive.entries[0].size == len(data)


def test_many_small_very_compressible_csvs_are_a_bomb_together() -> None:
    data = b"email\n" + b"same@example.com\n" * (RATIO_FLOOR_BYTES // 20)  # each under the floor
    archive_bytes = zip_bytes({f"part{i}.csv": data for i in range(40)})
    with pytest.raises(CsvFileError, match=r"CSV files in this ZIP are compressed [\d,]+ times"):
        open_archive(io.BytesIO(archive_bytes), max_total_bytes=CAP)


def test_a_zip_of_thousands_of_csvs_is_refused_saying_how_many() -> None:
    archive_bytes = zip_bytes({f"d{i}/members.csv": b"email\nu%d@example.com\n" % i
                               for i in range(1_000)})  # fmt: skip
    with pytest.raises(CsvFileError, match=r"holds 1,000 CSV files, more than the 50 one import"):
        open_archive(io.BytesIO(archive_bytes), max_total_bytes=CAP)


def test_only_csv_entries_count_towards_the_cap() -> None:
    data = zip_bytes({"a.csv": samples.seed_csv(), "video.mp4": bytes(2 * MB)})
    with open_archive(io.BytesIO(data), max_total_bytes=MB, max_ratio=1e9) as archive:
        assert archive.ignored == ["video.mp4"]


def test_an_entry_larger_than_it_declares_is_cut_off_while_reading() -> None:
    """The central directory says 1,000 bytes; the deflate stream holds 100 KB."""
    real = b"email\n" + b"".join(f"user{i}@example.com\n".encode() for i in range(5000))
    data = patch_sizes(zip_bytes({"liar.csv": real}), "liar.csv", file_size=1000)
    with open_archive(io.BytesIO(data), max_total_bytes=CAP) as archive:
        (entry,) = archive.entries
        assert entry.size == 1000  # passes the checks on its word
        with entry.open() as stream:
            got = b""
            with pytest.raises(CsvFileError, match=r"liar\.csv in this ZIP is damaged"):
                while chunk := stream.read(256):
                    got += chunk
            assert len(got) <= 1000


def test_size_capped_refuses_bytes_past_its_limit() -> None:
    stream = SizeCapped(io.BytesIO(bytes(2000)), 1000, "x.csv")  # type: ignore[arg-type]
    assert len(stream.read(600)) == 600
    with pytest.raises(CsvFileError, match="more data than the archive declares"):
        stream.read(4096)
    stream.seek(0)
    assert len(stream.read1(1000)) == 1000  # up to the limit is fine
    assert stream.read(0) == b""


# --- archives we can't import --------------------------------------------------------------


def test_an_encrypted_entry_is_refused() -> None:
    data = patch_sizes(zip_bytes({"secret.csv": samples.seed_csv()}), "secret.csv", flags=0x1)
    with pytest.raises(CsvFileError, match=r"secret\.csv in this ZIP is password-protected"):
        open_archive(io.BytesIO(data), max_total_bytes=CAP)


def test_an_unknown_compression_method_is_refused() -> None:
    data = patch_sizes(zip_bytes({"a.csv": samples.seed_csv()}), "a.csv", method=9)  # deflate64
    with pytest.raises(CsvFileError, match="compressed in a way we can't read"):
        open_archive(io.BytesIO(data), max_total_bytes=CAP)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_a_truncated_archive_is_refused(keep: float) -> None:
    data = mailchimp_export()
    with pytest.raises(CsvFileError, match="damaged or incomplete"):
        open_archive(io.BytesIO(data[: int(len(data) * keep)]), max_total_bytes=CAP)


def test_garbage_after_the_magic_is_refused() -> None:
    with pytest.raises(CsvFileError, match="damaged or incomplete"):
        open_archive(io.BytesIO(b"PK\x03\x04" + bytes(300)), max_total_bytes=CAP)


def test_damaged_entry_data_fails_with_a_sentence_while_reading() -> None:
    data = bytearray(zip_bytes({"a.csv": samples.big_csv(2000)}))
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    with open_archive(io.BytesIO(bytes(data)), max_total_bytes=CAP) as archive:
        (entry,) = archive.entries
        with (
            pytest.raises(CsvFileError, match=r"a\.csv in this ZIP is damaged"),
            entry.open() as stream,
            CsvReader(stream) as reader,
        ):
            list(reader.records())


def test_tab_separated_and_text_exports_in_a_zip_are_read_as_on_their_own() -> None:
    """Refused as "This ZIP holds no CSV file (it holds a.tsv)", though the same files are
    read when uploaded alone. A .txt is read only when nothing else is (a README beside the
    CSVs is no export)."""
    tsv = b"email\tfirst_name\r\nada@example.com\tAda\r\n"
    for names in (["a.tsv"], ["Customers.txt", "Leads.txt"]):
        data = zip_bytes({name: tsv for name in names})
        with open_archive(io.BytesIO(data), max_total_bytes=CAP) as archive:
            assert [entry.name for entry in archive.entries] == names
            with archive.entries[0].open() as stream, CsvReader(stream) as reader:
                rows = list(Classifier().records(reader.records(), reader.columns))
        assert [(row[1], row[3], row[6]) for row in rows] == [("ada@example.com", "Ada", VALID)]
    mixed = zip_bytes({"export.csv": members([], "ada@example.com"), "README.txt": b"hello",
                       "more.tsv": tsv})  # fmt: skip
    with open_archive(io.BytesIO(mixed), max_total_bytes=CAP) as archive:
        assert [entry.name for entry in archive.entries] == ["export.csv", "more.tsv"]
        assert archive.ignored == ["README.txt"]


def test_a_zip_without_csv_says_what_it_holds() -> None:
    data = zip_bytes({"notes.pdf": samples.pdf_document(), "list.xlsx": b"x", ".hidden.csv": b""})
    with pytest.raises(CsvFileError, match=r"no CSV file \(it holds notes.pdf, list.xlsx\)"):
        open_archive(io.BytesIO(data), max_total_bytes=CAP)
    with pytest.raises(CsvFileError, match=r"no CSV file: put"):
        open_archive(io.BytesIO(zip_bytes({})), max_total_bytes=CAP)


@pytest.mark.parametrize(
    ("entries", "start"),
    [
        ({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet",
          "content.xml": b"<office:document-content/>", "META-INF/manifest.xml": b"<m/>"},
         "This is an OpenDocument spreadsheet (.ods"),
        ({"Index/Document.iwa": b"\x00", "Index/Tables/DataList.iwa": b"\x00",
          "Metadata/Properties.plist": b"<plist/>", "preview.jpg": b"\xff\xd8\xff"},
         "This is an Apple Numbers file"),
        ({"Customers.numbers/Index.zip": b"PK", "Customers.numbers/Metadata/Properties.plist":
          b"<plist/>"}, "This is an Apple Numbers file"),
    ],
    ids=["ods", "numbers", "numbers-package-zipped"],
)  # fmt: skip
def test_a_spreadsheet_we_dont_read_is_named_not_called_a_zip(
    entries: dict[str, bytes], start: str
) -> None:
    """An .ods or .numbers file was told "This ZIP holds no CSV file (it holds mimetype,
    content.xml)...": it isn't a ZIP to its owner, and putting a CSV in it is no way out."""
    with pytest.raises(CsvFileError) as failure:
        open_archive(io.BytesIO(zip_bytes(entries)), max_total_bytes=CAP)
    message = str(failure.value)
    assert message.startswith(start) and "ZIP" not in message
    assert "export it as CSV" in message or "save it as CSV" in message


def test_an_xlsx_workbook_is_not_taken_for_an_archive() -> None:
    with pytest.raises(CsvFileError, match="This is an Excel workbook"):
        open_archive(io.BytesIO(samples.xlsx_workbook()), max_total_bytes=CAP)


# --- which Mailchimp export ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "extra", "kind"),
    [
        ("subscribed_members_export_1a2b3c.csv", [], "subscribed"),
        ("unsubscribed_members_export_1a2b3c.csv", UNSUB_COLUMNS, "unsubscribed"),
        ("cleaned_members_export_1a2b3c.csv", CLEAN_COLUMNS, "cleaned"),
        ("nonsubscribed_members_export_1a2b3c.csv", [], "transactional"),
        ("Cleaned_Members_Export_1a2b3c (1).csv", [], "cleaned"),
        ("export/unsubscribed_members_export_1a2b3c.csv", [], "unsubscribed"),
        # renamed files are told by their columns
        ("audience.csv", UNSUB_COLUMNS, "unsubscribed"),
        ("audience.csv", CLEAN_COLUMNS, "cleaned"),
        ("audience.csv", [], "subscribed"),
        ("subscribed_members_export_1a2b3c.csv", UNSUB_COLUMNS, "unsubscribed"),  # columns win
    ],
)
def test_mailchimp_kind(name: str, extra: list[str], kind: str) -> None:
    assert mailchimp_kind(name, [*samples.MAILCHIMP_HEADER, *extra]) == kind


def test_mailchimp_kind_of_other_exports_is_none() -> None:
    assert mailchimp_kind("contacts.csv", samples.SEED_HEADER) is None
    assert mailchimp_kind("customers_export.csv", samples.SHOPIFY_HEADER) is None
    assert mailchimp_kind("x.csv", ["\ufeffEmail Address", " unsub_time "]) == "unsubscribed"
    # a merchant's own file named like one: only the names that can't email anyone count
    plain = ["Email", "First Name", "Last Name"]
    assert mailchimp_kind("cleaned_customer_export.csv", plain) is None
    assert mailchimp_kind("subscribed_customers_export.csv", plain) is None
    assert mailchimp_kind("unsubscribed_customers_export.csv", plain) == "unsubscribed"


# --- what the refusals say ----------------------------------------------------------------


def _refusal(data: bytes, *, max_total_bytes: int = CAP) -> str:
    """The sentence open_archive, or reading the first entry, refuses `data` with."""
    with (
        pytest.raises(CsvFileError) as refused,
        open_archive(io.BytesIO(data), max_total_bytes=max_total_bytes) as archive,
        archive.entries[0].open() as stream,
    ):
        stream.read()
    return str(refused.value)


def _damaged_entry() -> bytes:
    data = bytearray(zip_bytes({"a.csv": samples.big_csv(2000)}))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    return bytes(data)


REFUSED = {
    "truncated": lambda: mailchimp_export()[:200],
    "damaged entry": _damaged_entry,
    "larger than declared": lambda: patch_sizes(
        zip_bytes({"liar.csv": b"email\n" + b"u@example.com\n" * 5000}), "liar.csv",
        file_size=1000),
    "bomb by ratio": lambda: bomb(8 * MB),
    "bombs together": lambda: zip_bytes({f"part{i}.csv": b"email\n" + b"same@example.com\n"
                                         * (RATIO_FLOOR_BYTES // 20) for i in range(40)}),
    "outside the folder": lambda: zip_bytes({"../evil.csv": samples.seed_csv()}),
    "workbook": samples.xlsx_workbook,
    "opendocument": lambda: zip_bytes({"mimetype": b"application/vnd.oasis.opendocument.sheet",
                                       "content.xml": b"<c/>"}),
    "numbers": lambda: zip_bytes({"Index/Document.iwa": b"\x00"}),
    "xlsb": lambda: zip_bytes({"xl/workbook.bin": b"\x00", "[Content_Types].xml": b"<T/>"}),
    "no csv": lambda: zip_bytes({"notes.pdf": samples.pdf_document()}),
    "password": lambda: patch_sizes(zip_bytes({"s.csv": samples.seed_csv()}), "s.csv",
                                    flags=0x1),
    "compression": lambda: patch_sizes(zip_bytes({"a.csv": samples.seed_csv()}), "a.csv",
                                       method=9),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refusal_says_import_not_upload(case: str) -> None:
    """Told in the shell as in Slack: "then upload it" and "upload it as an .xlsx file" asked a
    shell user for an upload there is none of. Each says what to import instead."""
    message = _refusal(REFUSED[case]())
    assert "upload" not in message.lower(), message
    assert "import" in message, message


def test_a_refusal_over_the_size_limit_says_import_not_upload() -> None:
    message = _refusal(bomb(64 * MB), max_total_bytes=16 * MB)
    assert message.endswith("split the export into smaller files and import them one at a "
                            "time."), message  # fmt: skip
    assert _refusal(mailchimp_export()[:200]) == (
        "This ZIP file is damaged or incomplete: download the export again or zip the CSV "
        "files again, then import the new ZIP.")  # fmt: skip


def test_reading_an_entry_of_a_closed_archive_is_a_bug_not_a_damaged_file() -> None:
    """zipfile's ValueError of an archive used after it was closed is our bug: it was told
    as "a.csv in this ZIP is damaged: download the export again", with no traceback."""
    import zipfile

    from bot.imports.archives import open_archive
    from bot.imports.reading import CsvFileError

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.csv", "email\na@example.com\n")
    archive = open_archive(io.BytesIO(out.getvalue()), max_total_bytes=10**7)
    with archive:
        entry = archive.entries[0]
    try:
        entry.open().read()
    except CsvFileError as exc:
        pytest.fail(f"told the person the file is damaged: {exc}")
    except ValueError:
        pass
