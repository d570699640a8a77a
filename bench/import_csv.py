"""Benchmark of `referral-bot import` against the raw-SQLite floor and the naive ORM path.

Generates N rows of realistic CSV (deterministic, seeded), then in one run measures:

1. `referral-bot import FILE --segment Bench --create-segment --json` as a subprocess on a
   fresh SQLite file: seconds, rows/s, peak RSS, the size of the files it leaves, and
   whether its counts add up;
2. the floor: one `executemany` of the same valid rows into an equivalent `contact` table
   with raw `sqlite3`, in one transaction, with the project's pragmas;
   1 and 2 run interleaved `--runs` times (default 2) and the best of each is compared;
4. (issue 13) `--xlsx-rows` rows (default 100,000) imported as CSV and, on a fresh database,
   as the same cells saved as `.xlsx`: rows/s and peak RSS of each, and the ratios;
5. the naive path: per-row SQLModel `session.add(Contact(...))` + `commit()` on a slice,
   extrapolated to N rows.

    .venv/bin/python bench/import_csv.py [--rows N] [--runs R] [--json] [--keep]

Exits 0 whatever the PASS/MISS verdicts; non-zero only if the import fails or its counts
don't add up.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import tempfile
import time
from array import array
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alembic import command
from common import BenchFailed, failed, referral_bot, say, verdict_table, watch_rss
from sqlalchemy import event
from sqlmodel import Session, create_engine

from models import Contact, Workspace
from models.db import _SQLITE_PRAGMAS, _sqlite_on_connect
from models.migrate import alembic_config

DEFAULT_ROWS = 1_000_000
DEFAULT_SEED = 20261128
NAIVE_ROWS = 10_000
WRITE_CHUNK = 50_000
TEAM = "bench"

TARGET_1M_SECONDS = 8.0
TARGET_FLOOR_RATIO = 1.2  # issue 11: best of 2 interleaved runs each
DEFAULT_RUNS = 2
TARGET_NAIVE_RATIO = 100.0
TARGET_RSS_MB = 200.0
DEFAULT_XLSX_ROWS = 100_000
TARGET_XLSX_RSS_MB = 250.0  # issue 13

HEADER = ("first_name", "last_name", "email", "locale", "referral_code")

# (as written in the CSV, ASCII slug for the address). Blank names keep a slug: the address
# still says who it is, the export just lacks the name.
FIRST_NAMES = (
    ("François", "francois"), ("Jürgen", "jurgen"), ("María José", "mariajose"),
    ("悠斗", "yuto"), ("Zoë", "zoe"), ("José", "jose"), ("Anaïs", "anais"), ("Søren", "soren"),
    ("Łukasz", "lukasz"), ("Çağla", "cagla"), ("Björn", "bjorn"), ("Noémie", "noemie"),
    ("Олег", "oleg"), ("伟", "wei"), ("Siobhán", "siobhan"), ("Mohammed", "mohammed"),
    ("Emma", "emma"), ("Liam", "liam"), ("Olivia", "olivia"), ("Noah", "noah"),
    ("Chloé", "chloe"), ("Hélène", "helene"), ("Ana, María", "anamaria"), ("Sakura", "sakura"),
    ("Giulia", "giulia"), ("Matteo", "matteo"), ("Priya", "priya"), ("Ahmet", "ahmet"),
    ('Robert "Bob"', "bob"), ("Ingrid", "ingrid"), ("  Sophie ", "sophie"), ("", "alex"),
    ("", "sam"), ("", "kim"),
)  # fmt: skip
LAST_NAMES = (
    ("Dupont", "dupont"), ("Müller", "muller"), ("García", "garcia"), ("佐藤", "sato"),
    ("O'Brien", "obrien"), ("Smith, Jr.", "smith"), ("Nguyễn", "nguyen"),
    ("Kowalski", "kowalski"), ("Jensen", "jensen"), ("Rossi", "rossi"), ("Yılmaz", "yilmaz"),
    ("Lefèvre", "lefevre"), ("Johnson", "johnson"), ("van der Berg", "vandenberg"),
    ("Fernández, hijo", "fernandez"), ("Schröder", "schroder"), ("Dubois, née Martin", "dubois"),
    ("Иванова", "ivanova"), ("Ó Briain", "obriain"), ("Kaur", "kaur"), ("Tanaka", "tanaka"),
    ("Lindqvist", "lindqvist"), ("", "lee"), ("", "lopez"),
)  # fmt: skip
DOMAINS = ("gmail.com", "yahoo.fr", "outlook.com", "hotmail.de", "web.de", "icloud.com",
           "orange.fr", "gmx.net", "proton.me", "example.co.jp")  # fmt: skip
DOMAIN_WEIGHTS = (30, 8, 15, 5, 6, 10, 8, 6, 4, 8)
# "English?" and "Klingon" are no language we know: valid rows, counted as warnings.
LOCALES = ("en", "en_US", "en-GB", "fr_FR", "fr", "FR-fr", "de_DE", "de", "es_ES", "es-mx",
           "pt-br", "it", "ja", "ja_JP", "zh_Hant_TW", "zh-CN", "nl", " sv ", "", "English?",
           "Klingon")  # fmt: skip
LOCALE_WEIGHTS = (25, 10, 4, 10, 4, 1, 6, 3, 4, 2, 3, 3, 3, 2, 1, 1, 2, 1, 15, 0.3, 0.2)
UNKNOWN_LOCALES = frozenset({"English?", "Klingon"})  # language names resolve; these don't
LOCAL_STYLES = ("{f}.{l}{n}", "{f}{n}", "{i}{l}{n}", "{f}_{l}+ref{n}", "{L}.{F}{n}",
                "{l}.{f}.{n}")  # fmt: skip
VALID, DUPLICATE, INVALID = 0, 1, 2
KIND_WEIGHTS = (97, 2, 1)

# What the floor counts as a valid address: exactly what the generator writes as one.
PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}"
)


@dataclass(slots=True)
class Expected:
    """What the generator wrote, so the import's counts can be checked."""

    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0
    warnings: int = 0


def _duplicate_of(email: str, form: int) -> str:
    """The same address differing only in case and surrounding spaces."""
    local, _, domain = email.partition("@")
    variant = (
        email.upper(),
        f" {email}",
        f"{email}  ",
        f"{local.title()}@{domain.upper()}",
        f"  {email.swapcase()} ",
    )[form]
    return variant if variant != email else f" {email}"


def _invalid(local: str, domain: str, first: str, last: str, n: int, form: int) -> str:
    """An address email-validator rejects (or none at all)."""
    return (
        f"{local}.{domain}",
        f"{local}@@{domain}",
        f"{local}@",
        f"@{domain}",
        f"{first} {last}@{domain}",
        f"{local}@{domain.partition('.')[0]}",
        f"{first}..{last}{n}@{domain}",
        "",
        "n/a",
        f"{local}@{domain},",
    )[form]


def _csv_field(value: str) -> str:
    """`value` as the csv module writes it (minimal quoting)."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _table(values: tuple[Any, ...], weights: tuple[float, ...]) -> list[Any]:
    """65,536 slots filled in proportion to `weights`: a 16-bit draw picks a weighted value."""
    total, acc, table = sum(weights), 0.0, []
    for value, weight in zip(values, weights, strict=True):
        acc += weight
        table.extend([value] * (round(acc / total * 65536) - len(table)))
    return table


def _draws(rng: random.Random, count: int) -> list[int]:
    """`count` uniform 16-bit numbers, made in one call."""
    return memoryview(rng.randbytes(2 * count)).cast("H").tolist()


def generate(path: Path, rows: int, seed: int) -> Expected:
    """Write `rows` data rows to `path` (UTF-8, CRLF, csv quoting) and return what they hold.

    Fast: every random draw is made up front as 16-bit numbers from one `randbytes` each,
    and a valid row is one f-string of three precomputed parts: names with the local-part
    prefix, the row's unique number, and domain + locale + referral code. Only the names
    and a few invalid addresses need quoting, done once.
    """
    rng = random.Random(seed)
    slots = range(65536)
    # (first name, last name, local-part prefix, first slug, last slug); every style ends
    # with the row's unique number, so prefix + number is a unique address.
    combos = [
        (_csv_field(first), _csv_field(last),
         style.format(f=f, l=la, i=f[0], F=f.title(), L=la.title(), n=""), f, la)
        for style in LOCAL_STYLES
        for first, f in FIRST_NAMES
        for last, la in LAST_NAMES
    ]  # fmt: skip
    ncombos = len(combos)
    heads = [",".join(combos[k % ncombos][:3]) for k in slots]
    # Each slot draws its domain, locale and referral code independently, so one 16-bit
    # draw per row picks all three with the intended weights.
    domains, locales = _table(DOMAINS, DOMAIN_WEIGHTS), _table(LOCALES, LOCALE_WEIGHTS)
    slot_domain = [domains[rng.getrandbits(16)] for _ in slots]
    slot_locale = [locales[rng.getrandbits(16)] for _ in slots]
    rests = [f",{locale},{rng.getrandbits(32):08X}\r\n" for locale in slot_locale]
    tails = [f"@{domain}{rest}" for domain, rest in zip(slot_domain, rests, strict=True)]
    unknown = [locale in UNKNOWN_LOCALES for locale in slot_locale]
    valid_below = round(65536 * KIND_WEIGHTS[0] / sum(KIND_WEIGHTS))
    duplicate_below = valid_below + round(65536 * KIND_WEIGHTS[1] / sum(KIND_WEIGHTS))
    kind_draw, head_draw, tail_draw = _draws(rng, rows), _draws(rng, rows), _draws(rng, rows)
    # Unique numbers 1..rows in scrambled order: row i gets (offset + i * stride) % rows + 1.
    stride = 2654435761 % rows or 1
    while math.gcd(stride, rows) != 1:
        stride += 1
    offset = rng.randrange(rows)
    n = offset + 1 - stride
    rand = rng.random
    duplicates = rejected = warnings = 0
    earlier = array("I")  # valid rows so far, for duplicates to copy
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(HEADER) + "\r\n")
        for lo in range(0, rows, WRITE_CHUNK):
            hi = min(lo + WRITE_CHUNK, rows)
            lines = []
            for i, kind_at, head_at, tail_at in zip(
                range(lo, hi), kind_draw[lo:hi], head_draw[lo:hi], tail_draw[lo:hi], strict=True
            ):
                n += stride
                if n > rows:
                    n -= rows
                if kind_at < valid_below or not earlier:
                    lines.append(f"{heads[head_at]}{n}{tails[tail_at]}")
                    earlier.append(i)
                    if unknown[tail_at]:
                        warnings += 1
                    continue
                first, last, prefix, f, la = combos[head_at % ncombos]
                if kind_at < duplicate_below:
                    j = earlier[int(rand() * len(earlier))]
                    original = (
                        f"{combos[head_draw[j] % ncombos][2]}{(offset + j * stride) % rows + 1}"
                        f"@{slot_domain[tail_draw[j]]}"
                    )
                    email = _duplicate_of(original, int(rand() * 5))
                    duplicates += 1
                else:
                    domain = slot_domain[tail_at]
                    email = _csv_field(_invalid(f"{prefix}{n}", domain, f, la, n, int(rand() * 10)))
                    rejected += 1
                lines.append(f"{first},{last},{email}{rests[tail_at]}")
            out.write("".join(lines))
    return Expected(rows, len(earlier), duplicates, rejected, warnings)


def write_xlsx(csv_path: Path, xlsx_path: Path) -> None:
    """The CSV's cells as a workbook's one sheet (openpyxl's streaming writer)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Contacts")
    with csv_path.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            sheet.append(row)
    book.save(xlsx_path)


def xlsx_case(exe: str, workdir: Path, rows: int, seed: int) -> dict[str, Any]:
    """`rows` messy rows imported as CSV and as .xlsx, each on a fresh database."""
    case = workdir / "xlsx-case"
    case.mkdir()
    csv_path, xlsx_path = case / "contacts.csv", case / "contacts.xlsx"
    generate(csv_path, rows, seed)
    write_xlsx(csv_path, xlsx_path)
    out: dict[str, Any] = {"rows": rows}
    for fmt, path in (("csv", csv_path), ("xlsx", xlsx_path)):
        _fresh(case, "bench")
        summary, seconds, _, rss = run_import(exe, path, case)
        out[fmt] = {"seconds": round(seconds, 3), "rows_per_second": round(rows / seconds),
                    "peak_rss_mb": round(rss, 1), "mb": round(path.stat().st_size / 1e6, 1),
                    "counts": {k: summary[k] for k in ("rows", "valid", "duplicates", "rejected")}}
    if out["csv"]["counts"] != out["xlsx"]["counts"]:
        raise BenchFailed(f"the workbook's counts differ: {out['xlsx']['counts']} against the "
                          f"CSV's {out['csv']['counts']}")  # fmt: skip
    out["xlsx_csv_time_ratio"] = round(out["xlsx"]["seconds"] / out["csv"]["seconds"], 2)
    out["xlsx_csv_rss_ratio"] = round(out["xlsx"]["peak_rss_mb"] / out["csv"]["peak_rss_mb"], 2)
    return out


def _fresh(workdir: Path, stem: str) -> None:
    """Remove a database of an earlier run, with its WAL, shared memory and staging file."""
    for name in (f"{stem}.db", f"{stem}.db-wal", f"{stem}.db-shm", f"{stem}.staging.db"):
        (workdir / name).unlink(missing_ok=True)


def _files_mb(workdir: Path, stem: str) -> dict[str, float]:
    """Size of each file the database is made of, in MB."""
    return {p.name: round(p.stat().st_size / 1e6, 1) for p in sorted(workdir.glob(f"{stem}.*"))
            if p.name.endswith((".db", ".db-wal"))}  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_import(
    exe: str, csv_path: Path, workdir: Path
) -> tuple[dict[str, Any], float, float, float]:
    """(JSON summary, seconds, CPU seconds, peak RSS MiB) of the import on a fresh SQLite file."""
    db_path = workdir / "bench.db"
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}")
    env.pop("DATABASE_SCHEMA", None)
    argv = [exe, "import", str(csv_path), "--segment", "Bench", "--create-segment", "--json"]
    start = time.perf_counter()
    # cwd: the temp dir, so no .env of the caller's working directory leaks in.
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    rss_mb = watch_rss(proc)
    stdout, stderr = proc.communicate()
    proc = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    seconds = time.perf_counter() - start
    # CPU from the kernel's accounting; peak RSS is sampled instead, because a forked child's
    # ru_maxrss starts at this (large) process's size before exec and would be misread.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        raise BenchFailed(
            f"import exited with status {proc.returncode}:\n{proc.stderr.strip()}\n"
            f"{proc.stdout.strip()}"
        )
    try:
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchFailed(f"import printed no JSON summary: {proc.stdout!r}") from None
    return summary, seconds, cpu, rss_mb


def check_counts(summary: dict[str, Any], expected: Expected, db_path: Path) -> list[str]:
    """Every way the import's counts fail to add up; empty when they all do."""
    s = {k: v or 0 for k, v in summary.items() if k != "segment"}
    problems = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    need(s["rows"] == s["valid"] + s["duplicates"] + s["rejected"],
         f"rows {s['rows']} != valid {s['valid']} + duplicates {s['duplicates']} "
         f"+ rejected {s['rejected']}")  # fmt: skip
    need(s["valid"] == s["new_contacts"] + s["existing_contacts"],
         f"valid {s['valid']} != new {s['new_contacts']} "
         f"+ existing {s['existing_contacts']}")  # fmt: skip
    need(s["valid"] == s["added_to_segment"] + s["already_in_segment"],
         f"valid {s['valid']} != added {s['added_to_segment']} "
         f"+ already in segment {s['already_in_segment']}")  # fmt: skip
    need(s["existing_contacts"] == 0, f"{s['existing_contacts']} existing contacts in a fresh DB")
    for key, want in asdict(expected).items():
        need(s[key] == want, f"{key} {s[key]} != {want} generated")
    with closing(sqlite3.connect(db_path)) as conn:
        contacts = conn.execute("SELECT COUNT(*) FROM contact").fetchone()[0]
        members = conn.execute("SELECT COUNT(*) FROM segment_member").fetchone()[0]
    need(contacts == s["new_contacts"], f"{contacts} contacts in the DB != new {s['new_contacts']}")
    need(members == s["added_to_segment"],
         f"{members} segment members in the DB != added {s['added_to_segment']}")  # fmt: skip
    return problems


def parse_valid(csv_path: Path) -> list[tuple[str, str, str, str, str, str | None]]:
    """The rows the import keeps, as contact tuples, parsed with the csv module alone."""
    rows = []
    seen: set[str] = set()
    with csv_path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for first, last, raw_email, locale, _ in reader:
            email = raw_email.strip()
            if not PLAIN_EMAIL.fullmatch(email):
                continue
            key = email.lower()
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                (TEAM, email, key, first.strip() or email.partition("@")[0], last.strip(),
                 locale.strip() or None)
            )  # fmt: skip
    return rows


def floor(db_path: Path, rows: list[tuple[str, str, str, str, str, str | None]]) -> float:
    """Seconds for one raw executemany of `rows` in one transaction on a fresh file."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        for pragma in _SQLITE_PRAGMAS:
            conn.execute(pragma)
        conn.execute("""
            CREATE TABLE contact (
                id INTEGER PRIMARY KEY,
                team_id TEXT NOT NULL,
                email TEXT NOT NULL,
                email_key TEXT NOT NULL,
                first_name TEXT NOT NULL,
                last_name TEXT NOT NULL,
                locale TEXT,
                CONSTRAINT uq_contact_team_email UNIQUE (team_id, email_key))
        """)
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO contact (team_id, email, email_key, first_name, last_name, locale) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def naive(db_path: Path, rows: list[tuple[str, str, str, str, str, str | None]]) -> float:
    """Seconds for one ORM add + commit per row, on a freshly migrated file."""
    engine = create_engine(f"sqlite:///{db_path}")
    event.listen(engine, "connect", _sqlite_on_connect)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        with Session(engine) as session:
            session.add(Workspace(team_id=TEAM))
            session.commit()
        start = time.perf_counter()
        with Session(engine) as session:
            for team, email, key, first, last, locale in rows:
                session.add(Contact(team_id=team, email=email, email_key=key, first_name=first,
                                    last_name=last, locale=locale, source="csv"))  # fmt: skip
                session.commit()
        return time.perf_counter() - start
    finally:
        engine.dispose()


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(fig: dict[str, Any]) -> str:
    n = fig["rows"]
    c = fig["counts"]
    t = fig["targets"]
    scaled = "" if n == DEFAULT_ROWS else f" (scaled from {n:,} rows)"
    runs = ", ".join(f"{t:.2f}" for t in fig["import_runs_seconds"])
    floor_runs = ", ".join(f"{t:.2f}" for t in fig["floor_runs_seconds"])
    sizes = lambda files: ", ".join(f"{n} {mb:.0f} MB" for n, mb in files.items())  # noqa: E731
    table = [
        (f"import seconds (best of {fig['runs']}: {runs})", f"{fig['import_seconds']:.2f} s",
         "", ""),
        ("import rows/s", f"{fig['import_rows_per_second']:,.0f}", "", ""),
        ("import CPU seconds (user + sys)", f"{fig['import_cpu_seconds']:.2f} s", "", ""),
        ("1M rows import" + scaled, f"{fig['import_seconds_1m']:.2f} s",
         f"< {TARGET_1M_SECONDS:g} s", _verdict(t["import_1m_seconds"]["pass"])),
        (f"floor seconds ({fig['floor_rows']:,} rows; best of {floor_runs})",
         f"{fig['floor_seconds']:.2f} s", "", ""),
        ("database files after the import", sizes(fig["database_mb"]), "", ""),
        ("floor's database file", sizes(fig["floor_database_mb"]), "", ""),
        ("import / floor", f"{fig['import_floor_ratio']:.2f}x",
         f"<= {TARGET_FLOOR_RATIO:g}x", _verdict(t["import_floor_ratio"]["pass"])),
        (f"naive seconds ({fig['naive_rows']:,} rows measured)",
         f"{fig['naive_seconds']:.2f} s", "", ""),
        (f"naive extrapolated to {n:,} rows", f"{fig['naive_extrapolated_seconds']:,.0f} s",
         "", ""),
        ("naive / import", f"{fig['naive_import_ratio']:,.0f}x",
         f">= {TARGET_NAIVE_RATIO:g}x", _verdict(t["naive_import_ratio"]["pass"])),
        ("import peak RSS", f"{fig['peak_rss_mb']:.0f} MB", f"< {TARGET_RSS_MB:g} MB",
         _verdict(t["peak_rss_mb"]["pass"])),
    ]  # fmt: skip
    if "xlsx" in fig:
        x = fig["xlsx"]
        table += [
            (f"{x['rows']:,} rows as CSV: rows/s, peak RSS",
             f"{x['csv']['rows_per_second']:,} / {x['csv']['peak_rss_mb']:.0f} MB", "", ""),
            (f"same rows as .xlsx ({x['xlsx']['mb']:.1f} MB): rows/s, peak RSS",
             f"{x['xlsx']['rows_per_second']:,} / {x['xlsx']['peak_rss_mb']:.0f} MB",
             f"< {TARGET_XLSX_RSS_MB:g} MB", _verdict(t["xlsx_peak_rss_mb"]["pass"])),
            (".xlsx / CSV: time, peak RSS",
             f"{x['xlsx_csv_time_ratio']:.2f}x / {x['xlsx_csv_rss_ratio']:.2f}x", "", ""),
        ]  # fmt: skip
    lines = [
        f"referral-bot import benchmark: {n:,} rows, {fig['csv_mb']:.1f} MB CSV "
        f"(seed {fig['seed']}, generated in {fig['generate_seconds']:.1f} s)",
        f"counts: rows {c['rows']:,} = valid {c['valid']:,} + duplicates {c['duplicates']:,} "
        f"+ rejected {c['rejected']:,}; warnings {c['warnings']:,}; new contacts "
        f"{c['new_contacts']:,}, added to segment {c['added_to_segment']:,}: OK",
        "",
    ]
    lines += verdict_table(table, value_width=12)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--naive-rows", type=int, default=NAIVE_ROWS,
                        help="rows the naive ORM path really inserts")  # fmt: skip
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help="interleaved runs of import and floor; the best of each counts")
    parser.add_argument("--xlsx-rows", type=int, default=DEFAULT_XLSX_ROWS,
                        help="rows of the CSV-vs-xlsx case (0: skip it)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.naive_rows < 1:
        parser.error("--rows and --naive-rows must be positive")
    exe = referral_bot(parser)

    workdir = Path(tempfile.mkdtemp(prefix="referral-bench-"))
    try:
        csv_path = workdir / "contacts.csv"
        say(f"generating {args.rows:,} rows in {csv_path} ...")
        start = time.perf_counter()
        expected = generate(csv_path, args.rows, args.seed)
        generate_seconds = time.perf_counter() - start

        say("parsing the valid rows for the floor ...")
        valid_rows = parse_valid(csv_path)
        imports: list[tuple[float, float, float]] = []
        floors: list[float] = []
        for run in range(1, args.runs + 1):  # interleaved, so both see the same machine
            say(f"run {run}/{args.runs}: referral-bot import ...")
            _fresh(workdir, "bench")
            cpu_before = _children_cpu()
            summary, import_seconds, _, rss_mb = run_import(exe, csv_path, workdir)
            imports.append((import_seconds, _children_cpu() - cpu_before, rss_mb))
            problems = check_counts(summary, expected, workdir / "bench.db")
            if problems:
                raise BenchFailed("import counts don't add up:\n  " + "\n  ".join(problems))
            if len(valid_rows) != summary["valid"]:
                raise BenchFailed(f"the floor parsed {len(valid_rows):,} valid rows, the import "
                                  f"{summary['valid']:,}")  # fmt: skip
            files_mb = _files_mb(workdir, "bench")
            say(f"run {run}/{args.runs}: the floor (raw sqlite3 executemany) ...")
            _fresh(workdir, "floor")
            floors.append(floor(workdir / "floor.db", valid_rows))
            floor_mb = _files_mb(workdir, "floor")
        import_seconds, import_cpu, _ = min(imports)
        rss_mb = max(r for _, _, r in imports)
        floor_seconds = min(floors)

        xlsx = None
        if args.xlsx_rows > 0:
            say(f"the same {args.xlsx_rows:,} rows as CSV and as .xlsx ...")
            xlsx = xlsx_case(exe, workdir, args.xlsx_rows, args.seed)

        sample = valid_rows[: args.naive_rows]
        say(f"timing the naive ORM path on {len(sample):,} rows ...")
        naive_seconds = naive(workdir / "naive.db", sample)
        del valid_rows, sample

        naive_total = naive_seconds * args.rows / min(args.naive_rows, summary["valid"])
        import_1m = import_seconds * DEFAULT_ROWS / args.rows
        fig: dict[str, Any] = {
            "rows": args.rows,
            "seed": args.seed,
            "csv_mb": csv_path.stat().st_size / 1e6,
            "generate_seconds": round(generate_seconds, 3),
            "runs": args.runs,
            "import_runs_seconds": [round(t, 3) for t, _, _ in imports],
            "floor_runs_seconds": [round(t, 3) for t in floors],
            "database_mb": files_mb,
            "floor_database_mb": floor_mb,
            "import_seconds": round(import_seconds, 3),
            "import_rows_per_second": round(args.rows / import_seconds),
            "import_cpu_seconds": round(import_cpu, 3),
            "import_seconds_1m": round(import_1m, 3),
            "floor_rows": summary["valid"],
            "floor_seconds": round(floor_seconds, 3),
            "import_floor_ratio": round(import_seconds / floor_seconds, 3),
            "naive_rows": min(args.naive_rows, summary["valid"]),
            "naive_seconds": round(naive_seconds, 3),
            "naive_extrapolated_seconds": round(naive_total, 1),
            "naive_import_ratio": round(naive_total / import_seconds, 1),
            "peak_rss_mb": round(rss_mb, 1),
            "counts": summary,
        }
        fig["csv_mb"] = round(fig["csv_mb"], 1)
        fig["targets"] = {
            "import_1m_seconds": {"target": f"< {TARGET_1M_SECONDS}",
                                  "pass": import_1m < TARGET_1M_SECONDS},
            "import_floor_ratio": {"target": f"<= {TARGET_FLOOR_RATIO}",
                                   "pass": fig["import_floor_ratio"] <= TARGET_FLOOR_RATIO},
            "naive_import_ratio": {"target": f">= {TARGET_NAIVE_RATIO}",
                                   "pass": fig["naive_import_ratio"] >= TARGET_NAIVE_RATIO},
            "peak_rss_mb": {"target": f"< {TARGET_RSS_MB}", "pass": rss_mb < TARGET_RSS_MB},
        }  # fmt: skip
        if xlsx is not None:
            fig["xlsx"] = xlsx
            fig["targets"]["xlsx_peak_rss_mb"] = {
                "target": f"< {TARGET_XLSX_RSS_MB}",
                "pass": xlsx["xlsx"]["peak_rss_mb"] < TARGET_XLSX_RSS_MB}  # fmt: skip
        if args.keep:
            fig["tmpdir"] = str(workdir)
        print(json.dumps(fig) if args.json else report(fig))
        return 0
    except BenchFailed as exc:
        return failed("bench", exc, args.json)
    finally:
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
