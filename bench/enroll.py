"""Benchmark of campaign enrollment and the invite send job (the campaigns issue).

In one run, on fresh SQLite files in a temp dir:

1. enrollment: generates an N-row CSV (`email,first_name`, 1,000,000 rows by default) and
   times `referral-bot import FILE --segment Big --create-segment --json` (the baseline),
   then `campaign create Spring --store-url https://shop.example --live` and
   `campaign target Spring --segment Big --json --yes`, which enrolls every contact in the
   foreground (an advocate with an 8-character code and one queued invite row each); then
   the same `campaign target` again, which must enroll nobody and find N advocates. Checks
   the counts and that the codes are unique (`COUNT(DISTINCT code)`), and reports each
   command's seconds, CPU and peak RSS (process and children, sampled every 20 ms) and the
   enrollment / import ratio. Target: enrollment at most 1.5x the import's time.
2. invites/s: a separate import + campaign of M contacts (`--invites`, 5,000 by default),
   enrolled as above, then the real `referral-bot worker` (a 38-character SECRET_KEY,
   SMTP_URL=smtp://127.0.0.1:PORT) sends them to an aiosmtpd server in its own process;
   the rate is counted by the server, from the first to the last message it received.
   Baselines in the same run, each against a fresh server process and timed the same way:
   the same invites (same rows, links and Message-IDs) rendered, built and sent with a new
   `SmtpSender` per message (connect, EHLO, ..., QUIT each time); and the raw sender of
   `bench/smtp_send.py` (the invites pre-built, one reused connection, no database).
   Targets: at least 500 invites/s, and at least 5x the per-message baseline.

    .venv/bin/python bench/enroll.py                   # 1M rows + 5,000 invites
    .venv/bin/python bench/enroll.py --quick           # 100,000 rows
    .venv/bin/python bench/enroll.py --rows 200000 --invites 2000 --json --keep

Exits 0 whatever the PASS/MISS verdicts; non-zero only if a command fails, a count is wrong,
codes repeat, or the server counts messages other than the invites (or any twice).
Wall-clock figures: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from common import BenchFailed, failed, referral_bot, say, scratch, verdict_table, watch_rss

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 100_000
DEFAULT_INVITES = 5_000
WRITE_CHUNK = 50_000
TARGET_ENROLL_RATIO = 1.5
TARGET_INVITES_PER_SECOND = 500.0
TARGET_SEND_RATIO = 5.0
SECRET_KEY = "bench-" + "x" * 32  # the worker refuses a key under 32 characters
PUBLIC_URL = "https://referral-bot.example.com"
STORE_URL = "https://shop.example"
CODE = re.compile(r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}")
SERVER_START_TIMEOUT = 30.0

# (as written in the CSV, ASCII slug for the address)
FIRST_NAMES = (
    ("Emma", "emma"), ("Liam", "liam"), ("Olivia", "olivia"), ("Noah", "noah"),
    ("François", "francois"), ("Jürgen", "jurgen"), ("Zoë", "zoe"), ("José", "jose"),
    ("Anaïs", "anais"), ("Søren", "soren"), ("悠斗", "yuto"), ("Priya", "priya"),
    ("Chloé", "chloe"), ("Matteo", "matteo"), ("Sakura", "sakura"), ("Ahmet", "ahmet"),
)  # fmt: skip
DOMAINS = ("gmail.com", "outlook.com", "yahoo.fr", "web.de", "icloud.com", "example.org",
           "gmx.net")  # fmt: skip


# --- the SMTP server (runs as `enroll.py --serve EXPECT`) ------------------------------------


def serve(expect: int) -> int:
    """Serve SMTP on an ephemeral port: print the port, then `reached` once `expect` messages
    arrived, then (when stdin closes) the counts with the first and last arrival times."""
    from aiosmtpd.smtp import SMTP

    message_id = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
    counts: dict[str, Any] = {"messages": 0, "connections": 0, "duplicates": 0,
                              "first": None, "last": None}  # fmt: skip
    seen: set[bytes] = set()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.monotonic()  # CLOCK_MONOTONIC: comparable with the harness's clock
            if counts["first"] is None:
                counts["first"] = now
            counts["last"] = now
            counts["messages"] += 1
            found = message_id.search(envelope.content)
            key = found.group(1) if found else b""
            if key in seen:
                counts["duplicates"] += 1
            seen.add(key)
            if counts["messages"] == expect:
                print("reached", flush=True)
            return "250 2.0.0 queued"

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            counts["connections"] += 1
            # hostname: aiosmtpd would otherwise ask DNS (getfqdn) per connection
            return SMTP(Handler(), hostname="mx.bench", enable_SMTPUTF8=True, loop=loop)

        listener = await loop.create_server(protocol, "127.0.0.1", 0)
        print(listener.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes stdin
        listener.close()
        print(json.dumps(counts), flush=True)

    asyncio.run(main())
    return 0


class ServerProcess:
    """The aiosmtpd child process: its port, a wait for the expected count, its counts."""

    def __init__(self, expect: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(expect)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            line = self.lines.get(timeout=SERVER_START_TIMEOUT).strip()
        except queue.Empty:
            line = ""
        if not line.isdigit():
            self.process.kill()
            self.process.wait()
            raise BenchFailed(f"the SMTP server did not start (said {line!r})")
        self.port = int(line)
        self.url = f"smtp://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def reached(self, timeout: float) -> bool:
        """Whether the expected number of messages arrived within `timeout` seconds."""
        try:
            return self.lines.get(timeout=timeout).strip() == "reached"
        except queue.Empty:
            return False

    def stop(self) -> dict[str, Any]:
        """Close stdin, wait for the exit, return the counts."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=SERVER_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise BenchFailed("the SMTP server did not stop") from None
        if self.process.returncode != 0:
            raise BenchFailed(f"the SMTP server exited with {self.process.returncode}")
        last = ""
        while not self.lines.empty():
            last = self.lines.get().strip() or last
        try:
            return json.loads(last)
        except ValueError:
            raise BenchFailed(f"the SMTP server printed no counts ({last!r})") from None


# --- running the CLI -----------------------------------------------------------------------


@dataclass
class Run:
    """One CLI command: its JSON output, wall and CPU seconds, peak RSS (MiB)."""

    out: Any
    seconds: float
    cpu: float
    rss_mb: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(exe: str, args: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run `referral-bot ARGS` (its last stdout line is JSON); BenchFailed if it fails."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen([exe, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    rss_mb = watch_rss(proc)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before  # no other child of ours ends meanwhile
    what = " ".join(["referral-bot", *args])
    if proc.returncode != 0:
        raise BenchFailed(f"{what} exited with {proc.returncode}:\n{stderr.strip()}\n"
                          f"{stdout.strip()}")  # fmt: skip
    try:
        out = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchFailed(f"{what} printed no JSON: {stdout!r} {stderr!r}") from None
    return Run(out, seconds, cpu, rss_mb)


def base_env(db_path: Path) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}", PUBLIC_URL=PUBLIC_URL)
    for name in ("DATABASE_SCHEMA", "SMTP_URL", "SECRET_KEY", "SLACK_BOT_TOKEN",
                 "SLACK_APP_TOKEN", "RUN_WORKER"):  # fmt: skip
        env.pop(name, None)
    return env


def generate(path: Path, rows: int, prefix: str) -> None:
    """`rows` unique, valid contacts as `email,first_name` (UTF-8, CRLF)."""
    names = [(first, f"{prefix}{slug}") for first, slug in FIRST_NAMES]
    nn, nd = len(names), len(DOMAINS)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,first_name\r\n")
        for lo in range(0, rows, WRITE_CHUNK):
            out.write("".join(
                f"{names[i % nn][1]}.{i}@{DOMAINS[i % nd]},{names[i % nn][0]}\r\n"
                for i in range(lo, min(lo + WRITE_CHUNK, rows))
            ))  # fmt: skip


def check_import(summary: dict[str, Any], rows: int) -> None:
    want = {"rows": rows, "valid": rows, "new_contacts": rows, "added_to_segment": rows,
            "duplicates": 0, "rejected": 0}  # fmt: skip
    wrong = {k: summary.get(k) for k, v in want.items() if summary.get(k) != v}
    if wrong:
        raise BenchFailed(f"import of {rows:,} rows counted {wrong}")


def check_enroll(out: dict[str, Any], *, enrolled: int, already: int, queued: int,
                 what: str) -> None:  # fmt: skip
    want = {"enrolled": enrolled, "already_advocates": already, "excluded": 0,
            "invites_queued": queued, "not_emailed": {}}  # fmt: skip
    wrong = {k: out.get(k) for k, v in want.items() if out.get(k) != v}
    if wrong:
        raise BenchFailed(f"{what}: got {wrong}, expected {want}")


def check_codes(db_path: Path, rows: int) -> dict[str, int]:
    """Advocates, distinct codes, well-formed codes and invite rows in the database."""
    with closing(sqlite3.connect(db_path)) as conn:
        advocates, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT code) FROM advocate").fetchone()  # fmt: skip
        # one alphabet check in Python: SQLite has no regex
        malformed = sum(1 for (code,) in conn.execute("SELECT code FROM advocate")
                        if not CODE.fullmatch(code))  # fmt: skip
        invites = conn.execute("SELECT COUNT(*) FROM invite WHERE state = 'queued'").fetchone()[0]
    found = {"advocates": advocates, "distinct_codes": distinct, "malformed_codes": malformed,
             "queued_invites": invites}  # fmt: skip
    if (advocates, distinct, malformed, invites) != (rows, rows, 0, rows):
        raise BenchFailed(f"after enrolling {rows:,} contacts the database holds {found}")
    return found


def enroll_flow(exe: str, workdir: Path, rows: int, db_name: str, prefix: str,
                say: Any) -> dict[str, Any]:  # fmt: skip
    """CSV, import, live campaign, target twice; every figure of part 1."""
    csv_path, db_path = workdir / f"{db_name}.csv", workdir / f"{db_name}.db"
    say(f"generating {rows:,} rows in {csv_path} ...")
    start = time.perf_counter()
    generate(csv_path, rows, prefix)
    generate_seconds = time.perf_counter() - start
    env = base_env(db_path)
    say("running referral-bot import ...")
    imported = cli(exe, ["import", str(csv_path), "--segment", "Big", "--create-segment",
                         "--json"], env, workdir)  # fmt: skip
    check_import(imported.out, rows)
    created = cli(exe, ["campaign", "create", "Spring", "--store-url", STORE_URL, "--live",
                        "--json"], env, workdir)  # fmt: skip
    if created.out.get("state") != "live":
        raise BenchFailed(f"campaign create printed {created.out}")
    target = ["campaign", "target", "Spring", "--segment", "Big", "--json", "--yes"]
    say("running referral-bot campaign target (enrolls every contact) ...")
    first = cli(exe, target, env, workdir)
    check_enroll(first.out, enrolled=rows, already=0, queued=rows, what="first campaign target")
    say("running referral-bot campaign target again (nobody new) ...")
    again = cli(exe, target, env, workdir)
    check_enroll(again.out, enrolled=0, already=rows, queued=0, what="second campaign target")
    say("checking the codes ...")
    codes = check_codes(db_path, rows)
    startup = cli(exe, ["jobs", "--json"], env, workdir)  # what any command costs to start
    return {"rows": rows, "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
            "generate_seconds": round(generate_seconds, 2), "db_path": db_path,
            "import": imported, "create": created, "enroll": first, "again": again,
            "startup": startup, "codes": codes}  # fmt: skip


# --- part 2: invites/s ---------------------------------------------------------------------


def due_invites(db_path: Path) -> list[tuple[int, str, str, str | None, str, str]]:
    """(contact id, email, first name, locale, code, email key) of every queued invite, in
    send order."""
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute("""
            SELECT c.id, c.email, c.first_name, c.locale, a.code, c.email_key FROM invite i
            JOIN contact c ON c.id = i.contact_id JOIN advocate a ON a.id = i.advocate_id
            WHERE i.state = 'queued' ORDER BY i.id""").fetchall()  # fmt: skip


def campaign_values(db_path: Path) -> tuple[str, int, str]:
    """(team id, campaign id, workspace default locale)."""
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute("""
            SELECT c.team_id, c.id, w.default_locale FROM campaign c
            JOIN workspace w ON w.team_id = c.team_id WHERE c.name = 'Spring'""").fetchone()


def build_invites(db_path: Path) -> list[Any]:
    """The invites the send job sends, built the way `bot/campaigns/invites.py` builds them."""
    from urllib.parse import urlsplit

    from bot.campaigns.links import referral_link, unsubscribe_link
    from bot.email import Invite

    team, campaign_id, default_locale = campaign_values(db_path)
    store = urlsplit(STORE_URL).hostname or ""
    sender = f"{store} <invites@{urlsplit(PUBLIC_URL).hostname}>"
    return [
        Invite(to_email=email, first_name=first, locale=locale, store_name=store,
               store_url=STORE_URL, offer="", referral_link=referral_link(PUBLIC_URL, code),
               unsubscribe_url=unsubscribe_link(PUBLIC_URL, SECRET_KEY, team, contact_id, key),
               sender=sender, message_key=f"{team}-c{campaign_id}-{code}",
               default_locale=default_locale)
        for contact_id, email, first, locale, code, key in due_invites(db_path)
    ]  # fmt: skip


def server_rate(counts: dict[str, Any], expect: int, connections: int | None,
                what: str) -> tuple[float, float]:  # fmt: skip
    """(seconds from the first to the last message, invites/s) as the server saw them."""
    if counts["messages"] != expect or counts["duplicates"]:
        raise BenchFailed(f"{what}: the server counted {counts}, expected {expect:,} messages "
                          "and no duplicates")  # fmt: skip
    if connections is not None and counts["connections"] != connections:
        raise BenchFailed(f"{what}: {counts['connections']} connections, expected {connections}")
    span = counts["last"] - counts["first"]
    # n messages are n - 1 intervals apart
    return span, (expect - 1) / span if span > 0 else float("inf")


def job_states(db_path: Path) -> tuple[dict[str, int], list[tuple[str, str, str | None]]]:
    """Invite states with counts, and (kind, state, last error) of every job."""
    with closing(sqlite3.connect(db_path, timeout=30)) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM invite GROUP BY state"))
        jobs = conn.execute("SELECT kind, state, last_error FROM job ORDER BY id").fetchall()
    return states, jobs


def run_worker(exe: str, workdir: Path, db_path: Path, count: int, say: Any) -> dict[str, Any]:
    """The real worker sends the `count` queued invites to a fresh server; its figures."""
    import psutil

    server = ServerProcess(count)
    env = dict(base_env(db_path), SECRET_KEY=SECRET_KEY, SMTP_URL=server.url,
               WORKER_POLL_SECONDS=os.environ.get("WORKER_POLL_SECONDS", "0.2"))  # fmt: skip
    log = (workdir / "worker.log").open("w")
    say(f"worker: sending {count:,} invites to {server.url} ...")
    start = time.monotonic()
    worker = subprocess.Popen([exe, "worker"], cwd=workdir, env=env, stdout=log,
                              stderr=subprocess.STDOUT)  # fmt: skip
    cpu = 0.0
    try:
        deadline = start + max(120.0, count / 20)
        while not server.reached(0.5):
            if worker.poll() is not None:
                raise BenchFailed(f"the worker exited with {worker.returncode}; see below")
            if time.monotonic() > deadline:
                states, jobs = job_states(db_path)
                raise BenchFailed(f"the worker sent too slowly or not at all: invites {states},"
                                  f" jobs {jobs}")  # fmt: skip
        # the last outcome is written after the last message: wait for every row to be `sent`
        while True:
            states, jobs = job_states(db_path)
            if states.get("sent") == count and all(s != "running" for k, s, _ in jobs
                                                  if k == "send_invites"):  # fmt: skip
                break
            if time.monotonic() > deadline or worker.poll() is not None:
                raise BenchFailed(f"after the last message: invites {states}, jobs {jobs}")
            time.sleep(0.1)
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(worker.pid).cpu_times()
            cpu = times.user + times.system
    except BenchFailed as exc:
        log.flush()
        tail = (workdir / "worker.log").read_text(errors="replace")[-3000:]
        raise BenchFailed(f"{exc}\nworker output:\n{tail}") from None
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        log.close()
        counts = server.stop()
    span, rate = server_rate(counts, count, 1, "worker")
    failed_jobs = [j for j in jobs if j[1] == "failed"]
    if failed_jobs:
        raise BenchFailed(f"worker: failed jobs {failed_jobs}")
    return {"seconds": span, "per_second": rate, "connections": counts["connections"],
            "until_last_seconds": counts["last"] - start, "cpu_seconds": cpu}  # fmt: skip


async def _send_each(url: str, invites: list[Any]) -> tuple[float, float]:
    """Render, build and send each invite over a connection of its own; (render s, send s)."""
    from bot.email import SendStatus, SmtpSender, build_message, parse_smtp_url, render_invite

    config = parse_smtp_url(url)
    render = send = 0.0
    for invite in invites:
        t0 = time.perf_counter()
        message = build_message(invite, render_invite(invite), public_host=PUBLIC_URL)
        t1 = time.perf_counter()
        async with SmtpSender(config) as smtp:
            result = await smtp.send(message)
        send += time.perf_counter() - t1
        render += t1 - t0
        if result.status is not SendStatus.SENT:
            raise BenchFailed(f"connection per message: {result}")
    return render, send


def per_message(invites: list[Any], say: Any) -> dict[str, Any]:
    """The baseline: the same invites, a new SmtpSender per message, timed by the server."""
    server = ServerProcess(len(invites))
    try:
        say(f"baseline: {len(invites):,} invites with a connection each ...")
        render, send = asyncio.run(_send_each(server.url, invites))
    finally:
        counts = server.stop()
    span, rate = server_rate(counts, len(invites), len(invites), "connection per message")
    return {"seconds": span, "per_second": rate, "render_seconds": render,
            "send_seconds": send, "send_only_per_second": len(invites) / send}  # fmt: skip


def raw_reused(invites: list[Any], say: Any) -> dict[str, Any]:
    """`bench/smtp_send.py`'s reused-connection sender on the same invites, pre-built."""
    from smtp_send import build, send_reused

    messages: list[EmailMessage] = build(invites)
    server = ServerProcess(len(messages))
    try:
        say(f"raw sender: {len(messages):,} pre-built invites over one connection ...")
        client_seconds = asyncio.run(send_reused(server.url, messages, None))
    finally:
        counts = server.stop()
    span, rate = server_rate(counts, len(messages), 1, "raw sender")
    return {"seconds": span, "per_second": rate, "client_seconds": client_seconds,
            "client_per_second": len(messages) / client_seconds}  # fmt: skip


def invites_flow(exe: str, workdir: Path, count: int, say: Any) -> dict[str, Any]:
    """Part 2: enroll `count` contacts, then the worker against the two baselines."""
    say(f"invites: preparing {count:,} enrolled contacts ...")
    prep = enroll_flow(exe, workdir, count, "invites", "i", say)
    db_path = prep["db_path"]
    invites = build_invites(db_path)
    if len(invites) != count:
        raise BenchFailed(f"{len(invites):,} queued invites in the database, expected {count:,}")
    worker = run_worker(exe, workdir, db_path, count, say)
    each = per_message(invites, say)
    raw = raw_reused(invites, say)
    return {"invites": count, "worker": worker, "per_message": each, "raw_reused": raw,
            "ratio": worker["per_second"] / each["per_second"]}  # fmt: skip


# --- the report ----------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def figures(part1: dict[str, Any], part2: dict[str, Any] | None) -> dict[str, Any]:
    def run(r: Run) -> dict[str, float]:
        return {"seconds": round(r.seconds, 3), "cpu_seconds": round(r.cpu, 3),
                "peak_rss_mb": round(r.rss_mb, 1)}  # fmt: skip

    imported, enrolled = part1["import"], part1["enroll"]
    ratio = enrolled.seconds / imported.seconds
    fig: dict[str, Any] = {
        "rows": part1["rows"], "csv_mb": part1["csv_mb"],
        "generate_seconds": part1["generate_seconds"],
        "import": run(imported), "enroll": run(enrolled), "enroll_again": run(part1["again"]),
        "cli_startup": run(part1["startup"]),
        "enroll_import_ratio": round(ratio, 3),
        "enroll_counts": enrolled.out, "enroll_again_counts": part1["again"].out,
        "codes": part1["codes"],
        "targets": {"enroll_import_ratio": {"target": f"<= {TARGET_ENROLL_RATIO}",
                                            "pass": ratio <= TARGET_ENROLL_RATIO}},
        "cpus": os.cpu_count(),
    }  # fmt: skip
    if part2 is not None:
        w, e, r = part2["worker"], part2["per_message"], part2["raw_reused"]
        fig["send"] = {
            "invites": part2["invites"],
            "worker_per_second": round(w["per_second"], 1),
            "worker_seconds": round(w["seconds"], 3),
            "worker_until_last_seconds": round(w["until_last_seconds"], 3),
            "worker_cpu_seconds": round(w["cpu_seconds"], 3),
            "per_message_per_second": round(e["per_second"], 1),
            "per_message_seconds": round(e["seconds"], 3),
            "per_message_render_seconds": round(e["render_seconds"], 3),
            "per_message_send_only_per_second": round(e["send_only_per_second"], 1),
            "raw_reused_per_second": round(r["per_second"], 1),
            "raw_reused_client_per_second": round(r["client_per_second"], 1),
            "worker_per_message_ratio": round(part2["ratio"], 2),
        }
        fig["targets"]["worker_per_second"] = {
            "target": f">= {TARGET_INVITES_PER_SECOND:g}",
            "pass": w["per_second"] >= TARGET_INVITES_PER_SECOND,
        }
        fig["targets"]["worker_per_message_ratio"] = {
            "target": f">= {TARGET_SEND_RATIO:g}x",
            "pass": part2["ratio"] >= TARGET_SEND_RATIO,
        }
    fig["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return fig


def report(fig: dict[str, Any]) -> str:
    n, t = fig["rows"], fig["targets"]
    imp, enr, again, boot = fig["import"], fig["enroll"], fig["enroll_again"], fig["cli_startup"]

    def secs(r: dict[str, float]) -> str:
        return f"{r['seconds']:.2f} s"

    table = [
        (f"import {n:,} rows (baseline)", secs(imp), "", ""),
        (f"campaign target: enroll {n:,}", secs(enr), "", ""),
        ("enrollment / import", f"{fig['enroll_import_ratio']:.2f}x",
         f"<= {TARGET_ENROLL_RATIO:g}x", _verdict(t["enroll_import_ratio"]["pass"])),
        ("enroll rows/s", f"{n / enr['seconds']:,.0f}", "", ""),
        ("enroll CPU (user + sys)", f"{enr['cpu_seconds']:.2f} s", "", ""),
        ("enroll peak RSS", f"{enr['peak_rss_mb']:.0f} MB", "", ""),
        ("import CPU / peak RSS",
         f"{imp['cpu_seconds']:.2f} s / {imp['peak_rss_mb']:.0f} MB", "", ""),
        (f"campaign target again (0 new, {n:,} known)", secs(again), "", ""),
        ("CLI start-up (jobs --json, same db)", secs(boot), "", ""),
    ]  # fmt: skip
    s = fig.get("send")
    if s:
        m = s["invites"]
        table += [
            (f"worker: {m:,} invites, first->last message", f"{s['worker_per_second']:,.0f}/s",
             f">= {TARGET_INVITES_PER_SECOND:g}/s", _verdict(t["worker_per_second"]["pass"])),
            ("baseline: connection per message (+render)",
             f"{s['per_message_per_second']:,.0f}/s", "", ""),
            ("worker / per-message baseline", f"{s['worker_per_message_ratio']:.2f}x",
             f">= {TARGET_SEND_RATIO:g}x", _verdict(t["worker_per_message_ratio"]["pass"])),
            ("baseline: send only (render excluded)",
             f"{s['per_message_send_only_per_second']:,.0f}/s", "", ""),
            ("raw sender, one connection, pre-built",
             f"{s['raw_reused_per_second']:,.0f}/s", "", ""),
            ("worker CPU, start to stop", f"{s['worker_cpu_seconds']:.2f} s", "", ""),
            ("worker start -> last message", f"{s['worker_until_last_seconds']:.2f} s", "", ""),
        ]  # fmt: skip
    c = fig["enroll_counts"]
    lines = [
        f"referral-bot enrollment benchmark: {n:,} contacts, {fig['csv_mb']:.1f} MB CSV, "
        f"SQLite, {fig['cpus']} CPUs, load average at the end "
        f"{' / '.join(f'{x:.2f}' for x in fig['load_average'])}",
        f"counts: enrolled {c['enrolled']:,}, invites queued {c['invites_queued']:,}; again: "
        f"enrolled {fig['enroll_again_counts']['enrolled']:,}, already advocates "
        f"{fig['enroll_again_counts']['already_advocates']:,}; "
        f"{fig['codes']['distinct_codes']:,} distinct codes: OK",
        "",
    ]
    lines += verdict_table(table, value_width=15)
    if not s:
        lines.append("(invites/s skipped: --invites 0)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="contacts to enroll")
    parser.add_argument("--quick", action="store_true", help=f"--rows {QUICK_ROWS:,}")
    parser.add_argument("--invites", type=int, default=DEFAULT_INVITES,
                        help="invites the worker sends (0 skips part 2)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--serve", type=int, metavar="EXPECT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args.serve)
    rows = QUICK_ROWS if args.quick else args.rows
    if rows < 1 or args.invites < 0 or args.invites == 1:
        parser.error("--rows must be positive and --invites 0 or at least 2")
    exe = referral_bot(parser)

    try:
        with scratch("referral-bench-enroll-", keep=args.keep) as workdir:
            part1 = enroll_flow(exe, workdir, rows, "bench", "", say)
            part2 = invites_flow(exe, workdir, args.invites, say) if args.invites else None
            fig = figures(part1, part2)
            if args.keep:
                fig["tmpdir"] = str(workdir)
        print(json.dumps(fig) if args.json else report(fig))
        return 0
    except BenchFailed as exc:
        return failed("enroll", exc, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
