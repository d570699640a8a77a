"""Benchmark of reading an .xlsx through XlsxReader + Classifier against the same rows as CSV.

Writes N rows (email, first_name, last_name, locale) to a temp dir three ways: CSV; .xlsx from
openpyxl's write-only mode (inline strings, no <dimension>); and .xlsx as Excel itself writes
it (a shared-strings table and a <dimension>). Each file is then read in a fresh subprocess
(so peak RSS figures don't mix) through its reader and `rows.Classifier`:

    .venv/bin/python bench/xlsx_read.py                # 100,000 rows
    .venv/bin/python bench/xlsx_read.py --rows 20000 --json

Prints rows/s and peak RSS per format and the xlsx/CSV ratios. Exits non-zero only if a
reader fails or classifies a different number of rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from common import BenchFailed, failed, scratch

DEFAULT_ROWS = 100_000
HEADER = ("email", "first_name", "last_name", "locale")
LOCALES = ("en", "fr-FR", "de", "")
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
FORMATS = ("csv", "xlsx-openpyxl", "xlsx-excel")


def person(i: int) -> tuple[str, str, str, str]:
    return (f"user{i}@example.com", f"First{i % 5000}", f"Last{i % 20000}", LOCALES[i % 4])


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(person(i) for i in range(rows))


def write_xlsx_openpyxl(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Contacts")
    sheet.append(HEADER)
    for i in range(rows):
        sheet.append(person(i))
    book.save(path)


def write_xlsx_excel(path: Path, rows: int) -> None:
    """openpyxl's package parts around a sheet written the way Excel writes one."""
    from openpyxl import Workbook

    skeleton = io.BytesIO()
    Workbook().save(skeleton)
    strings: dict[str, int] = {}

    def ref(text: str) -> int:
        return strings.setdefault(text, len(strings))

    def row_xml(number: int, values: tuple[str, ...]) -> str:
        cells = "".join(
            f'<c r="{col}{number}" t="s"><v>{ref(v)}</v></c>'
            for col, v in zip("ABCD", values, strict=True)
            if v
        )
        return f'<row r="{number}" spans="1:4">{cells}</row>'

    with zipfile.ZipFile(skeleton) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "[Content_Types].xml":
                kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings"
                override = f'<Override PartName="/xl/sharedStrings.xml" ContentType="{kind}+xml"/>'
                types = src.read(info).decode().replace("</Types>", f"{override}</Types>")
                dst.writestr(info.filename, types)
            elif info.filename == "xl/_rels/workbook.xml.rels":
                rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
                link = f'<Relationship Id="rIdSS" Type="{rel}/sharedStrings" '
                link += 'Target="sharedStrings.xml"/>'
                rels = (
                    src.read(info).decode().replace("</Relationships>", f"{link}</Relationships>")
                )
                dst.writestr(info.filename, rels)
            elif info.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(info, src.read(info))
        with dst.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(
                f'<worksheet xmlns="{MAIN_NS}"><dimension ref="A1:D{rows + 1}"/>'
                f"<sheetData>{row_xml(1, HEADER)}".encode()
            )
            for i in range(rows):
                sheet.write(row_xml(i + 2, person(i)).encode())
            sheet.write(b"</sheetData></worksheet>")
        with dst.open("xl/sharedStrings.xml", "w") as table:
            table.write(f'<sst xmlns="{MAIN_NS}" uniqueCount="{len(strings)}">'.encode())
            for text in strings:
                table.write(f"<si><t>{escape(text)}</t></si>".encode())
            table.write(b"</sst>")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def measure(fmt: str, path: Path) -> dict[str, Any]:
    """Child side: read `path` through its reader and the Classifier; time and memory."""
    from bot.imports.excel import XlsxReader
    from bot.imports.reading import CsvReader
    from bot.imports.rows import Classifier

    baseline = rss_mb()
    start = time.perf_counter()
    with path.open("rb") as stream:
        reader = CsvReader(stream) if fmt == "csv" else XlsxReader(stream)
        with reader:
            classifier = Classifier()
            for _ in classifier.records(reader.records(), reader.columns):
                pass
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"rows": classifier.tally.rows, "valid": classifier.tally.valid,
            "seconds": seconds, "baseline_rss_mb": baseline, "peak_rss_mb": peak}  # fmt: skip


def run_child(fmt: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", fmt, str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchFailed(f"reading {fmt} failed:\n{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--measure", nargs=2, metavar=("FORMAT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return 0
    if args.rows < 1:
        parser.error("--rows must be positive")
    writers = {"csv": write_csv, "xlsx-openpyxl": write_xlsx_openpyxl,
               "xlsx-excel": write_xlsx_excel}  # fmt: skip
    try:
        with scratch("referral-xlsx-bench-", args.keep) as workdir:
            figures: dict[str, dict[str, Any]] = {}
            for fmt in FORMATS:
                path = workdir / f"contacts-{fmt}.{fmt.split('-')[0]}"
                print(f"writing {args.rows:,} rows as {fmt} ...", file=sys.stderr, flush=True)
                writers[fmt](path, args.rows)
                fig = run_child(fmt, path)
                if fig["rows"] != args.rows or fig["valid"] != args.rows:
                    raise BenchFailed(f"{fmt}: classified {fig['rows']:,} rows, "
                                      f"{fig['valid']:,} valid, of {args.rows:,}")  # fmt: skip
                fig["file_mb"] = path.stat().st_size / 1e6
                fig["rows_per_second"] = args.rows / fig["seconds"]
                figures[fmt] = fig
    except BenchFailed as exc:
        return failed("xlsx_read", exc, args.json)
    base = figures["csv"]
    for fmt in FORMATS[1:]:
        fig = figures[fmt]
        fig["speed_vs_csv"] = fig["rows_per_second"] / base["rows_per_second"]
        fig["peak_rss_vs_csv"] = fig["peak_rss_mb"] / base["peak_rss_mb"]
    if args.json:
        print(json.dumps({"rows": args.rows, "formats": figures}, indent=2))
        return 0
    print(f"{args.rows:,} rows (email, first_name, last_name, locale), reader + Classifier")
    print(f"{'format':<15}{'file MB':>9}{'seconds':>9}{'rows/s':>10}{'peak RSS MB':>13}"
          f"{'(start)':>9}{'xlsx/csv speed':>16}{'xlsx/csv RSS':>14}")  # fmt: skip
    for fmt, fig in figures.items():
        ratios = ("", "") if fmt == "csv" else (
            f"{fig['speed_vs_csv']:.2f}x", f"{fig['peak_rss_vs_csv']:.2f}x")  # fmt: skip
        print(f"{fmt:<15}{fig['file_mb']:>9.1f}{fig['seconds']:>9.2f}"
              f"{fig['rows_per_second']:>10,.0f}{fig['peak_rss_mb']:>13.1f}"
              f"{fig['baseline_rss_mb']:>9.1f}{ratios[0]:>16}{ratios[1]:>14}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
