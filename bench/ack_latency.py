"""Benchmark of Slack acknowledgement latency of the real `referral-bot serve` (HTTP mode).

On loopback, in one run:

1. starts a FakeSlack (tests/fakes/slack_api.py) in this process and `referral-bot serve`
   as a subprocess pointed at it (fresh SQLite file, TEAM_LEADS=U0002, no proxies), waits
   for GET /healthz and for its worker child to be ready (its line in serve's log);
2. idle: N signed requests (default 2,000), 20 in flight: half `/referral help` slash
   commands (answered with the help text, no Slack call), half `review_approve` clicks on a
   batch that doesn't exist (acked 200, then answered with chat.postEphemeral on the fake),
   each timed from send to response; then it waits until every click's answer is posted
   (reported, with how long after the measurement that was);
3. baseline: the same load on a bare aiohttp server (a subprocess) that only checks the
   same v0 HMAC signature and answers 200;
4. under import load: a generated CSV (default 1,000,000 rows) queued with
   `referral-bot import FILE --segment Load --create-segment --background`, which serve's
   worker child process runs; the measurement starts as soon as `referral-bot jobs --json`
   shows the job running, and the job's state at its end is reported.

    .venv/bin/python bench/ack_latency.py                           # 2,000 requests, 1M rows
    .venv/bin/python bench/ack_latency.py --requests 200 --rows 100000
    .venv/bin/python bench/ack_latency.py --json                    # figures as one object

Percentiles are over 200 responses only; non-200 answers and transport errors count as
errors. Each measurement starts with 2 x concurrency unrecorded warm-up requests. One
aiohttp session with keep-alive sends everything, from this process, whose event loop also
serves the fake: its own overhead is in every figure, the baseline's included. `jobs --json`
is polled by calling the CLI's main() in a thread of this process (a `referral-bot` process
costs ~2.5 s of CPU on a small VM, which would load the machine being measured).

Exits 0 whatever the figures; non-zero only if serve fails to start or more than 1% of the
requests of any measurement fail.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import io
import itertools
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from common import BenchFailed, environment, failed, say, scratch

from bot.cli import main as cli_main
from handlers.ids import Action

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fakes lives in the repository, not in the package
    sys.path.insert(0, str(ROOT))

DEFAULT_REQUESTS = 2_000
DEFAULT_CONCURRENCY = 20
DEFAULT_ROWS = 1_000_000
DEFAULT_SEED = 20261128
SIGNING_SECRET = "bench-signing-secret-8f3a1c"
BOT_TOKEN = "xoxb-test"
LEAD = "U0002"  # in TEAM_LEADS, so the click gets past the lead check to the missing batch
MISSING_BATCH = 987_654_321
MAX_ERROR_SHARE = 0.01
TARGET_IDLE_P99_MS = 10.0
TARGET_LOAD_P99_MS = 25.0
TARGET_IDLE_RATIO = 3.0  # issue 11: idle p99 at most 3x the bare aiohttp baseline's
TARGET_LOAD_RATIO = 1.5  # and under import load at most 1.5x idle
START_TIMEOUT = 90.0
JOB_START_TIMEOUT = 120.0
JOB_FINISH_TIMEOUT = 3600.0
REQUEST_TIMEOUT = 30.0
SETTLE_TIMEOUT = 60.0
WORKER_READY = "waiting for jobs"  # what `referral-bot worker` prints once it polls for jobs
WRITE_CHUNK = 50_000

BASELINE_SERVER = """
import hashlib, hmac, os, sys, time
from aiohttp import web

SECRET = os.environ["SLACK_SIGNING_SECRET"].encode()


async def events(request):
    body = await request.read()
    ts = request.headers.get("X-Slack-Request-Timestamp", "")
    given = request.headers.get("X-Slack-Signature", "")
    try:
        fresh = abs(time.time() - int(ts)) <= 300
    except ValueError:
        fresh = False
    digest = hmac.new(SECRET, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not fresh or not hmac.compare_digest("v0=" + digest, given):
        return web.Response(status=401, text="invalid signature")
    return web.Response(status=200)


async def health(request):
    return web.json_response({"ok": True})


app = web.Application()
app.router.add_post("/slack/events", events)
app.router.add_get("/healthz", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# --- data -----------------------------------------------------------------------------------

FIRST_NAMES = (
    ("François", "francois"), ("Jürgen", "jurgen"), ("María José", "mariajose"), ("Zoë", "zoe"),
    ("Søren", "soren"), ("Łukasz", "lukasz"), ("Олег", "oleg"), ("悠斗", "yuto"),
    ("Siobhán", "siobhan"), ("Emma", "emma"), ("Liam", "liam"), ("Chloé", "chloe"),
    ("Priya", "priya"), ("Ana, María", "anamaria"), ('Robert "Bob"', "bob"), ("", "alex"),
)  # fmt: skip
LAST_NAMES = (
    ("Dupont", "dupont"), ("Müller", "muller"), ("García", "garcia"), ("O'Brien", "obrien"),
    ("Smith, Jr.", "smith"), ("Nguyễn", "nguyen"), ("Yılmaz", "yilmaz"), ("佐藤", "sato"),
    ("Иванова", "ivanova"), ("van der Berg", "vanderberg"), ("Kaur", "kaur"), ("", "lee"),
)  # fmt: skip
# Each style ends with a letter, so with the row's number appended every address is unique.
LOCAL_STYLES = ("{f}.{l}", "{f}", "{i}{l}", "{l}.{f}", "{f}_{l}+ref")
DOMAINS = ("gmail.com", "yahoo.fr", "outlook.com", "hotmail.de", "web.de", "icloud.com",
           "orange.fr", "gmx.net", "proton.me", "example.co.jp")  # fmt: skip
DOMAIN_WEIGHTS = (30, 8, 15, 5, 6, 10, 8, 6, 4, 8)
INVALID_SHARE = 0.005
DUPLICATE_SHARE = 0.01


def _quoted(value: str) -> str:
    """A CSV field: quoted when it holds a comma, a quote or surrounding spaces."""
    if any(c in value for c in ',"\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def generate_csv(path: Path, rows: int, seed: int) -> None:
    """`rows` data rows (email,first_name,last_name), with a few invalid and duplicate ones."""
    rng = random.Random(seed)
    people = [
        (style.format(f=f, l=la, i=f[0]), f"{_quoted(first)},{_quoted(last)}")
        for style in LOCAL_STYLES
        for first, f in FIRST_NAMES
        for last, la in LAST_NAMES
    ]
    # A seeded permutation of 1..rows (a prime step is coprime to rows unless it divides it).
    step = next(p for p in (7_368_787, 7_368_791, 7_368_793) if rows % p)
    offset = rng.randrange(rows)
    picks = rng.choices(people, k=rows)
    domains = rng.choices(DOMAINS, weights=DOMAIN_WEIGHTS, k=rows)
    odd = rng.sample(range(1, rows), k=int((rows - 1) * (INVALID_SHARE + DUPLICATE_SHARE)))
    invalid = set(odd[: int(rows * INVALID_SHARE)])
    odd.sort()
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,first_name,last_name\n")
        for lo in range(0, rows, WRITE_CHUNK):
            hi = min(lo + WRITE_CHUNK, rows)
            emails = [
                f"{picks[i][0]}{(i * step + offset) % rows + 1}@{domains[i]}" for i in range(lo, hi)
            ]
            for i in odd[bisect.bisect_left(odd, lo) : bisect.bisect_left(odd, hi)]:
                if i in invalid:
                    emails[i - lo] = emails[i - lo].replace("@", ".")
                else:  # the previous row's address, in capitals, with a leading space
                    prev = picks[i - 1][0] + str(((i - 1) * step + offset) % rows + 1)
                    emails[i - lo] = f" {prev.upper()}@{domains[i - 1].upper()}"
            out.writelines(
                f"{email},{person[1]}\n" for email, person in zip(emails, picks[lo:hi], strict=True)
            )


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without proxies or database/Slack settings, plus `settings`."""
    drop = ("DATABASE_", "SLACK_", "TEAM_LEADS", "PORT", "RUN_WORKER", "WORKER_", "JOB_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and not k.upper().startswith(drop)
    }
    return env | settings


def cli_argv() -> list[str]:
    script = Path(sys.executable).with_name("referral-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


@dataclass
class Server:
    label: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    async def wait_healthy(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds until GET /healthz answered 200; BenchFailed if it exits or times out."""
        start = time.monotonic()
        url = f"http://127.0.0.1:{self.port}/healthz"
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.poll() is not None:
                    raise BenchFailed(f"{self.label} exited with {self.proc.returncode} at start:"
                                      f"\n{self.log_tail()}")  # fmt: skip
                with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return time.monotonic() - start
                if time.monotonic() - start > timeout:
                    raise BenchFailed(f"{self.label} not healthy after {timeout:.0f} s:"
                                      f"\n{self.log_tail()}")  # fmt: skip
                await asyncio.sleep(0.1)

    async def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> float | None:
        """Seconds until `text` appears in the log (None after `timeout`)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if text in self.log.read_text(errors="replace"):
                return time.monotonic() - start
            await asyncio.sleep(0.05)
        return None

    def stop(self) -> int | None:
        """SIGTERM, then wait (SIGKILL after 60 s); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(label: str, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Server:
    log = workdir / f"{label}.log"
    with log.open("wb") as stream:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=stream, stderr=subprocess.STDOUT)  # fmt: skip
    return Server(label, proc, port, log)


def cli_json(*args: str) -> Any:
    """`referral-bot ARGS --json` through the CLI's main() in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli_main([*args, "--json"])
    if status != 0:
        said = out.getvalue().strip()
        raise RuntimeError(f"`referral-bot {' '.join(args)} --json` exited {status}: {said}")
    return json.loads(out.getvalue())


async def job_state(job_id: int) -> dict[str, Any]:
    jobs = await asyncio.to_thread(cli_json, "jobs")
    return next(j for j in jobs if j["id"] == job_id)


# --- load -----------------------------------------------------------------------------------


@dataclass
class Run:
    """One measurement: latencies (s) of 200 responses, and what went wrong."""

    label: str
    requests: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)
    wall: float = 0.0
    by_kind: dict[str, list[float]] = field(default_factory=dict)

    def pct(self, p: float, values: list[float] | None = None) -> float | None:
        """Nearest-rank percentile in ms."""
        data = sorted(self.latencies if values is None else values)
        if not data:
            return None
        return data[max(0, math.ceil(p / 100 * len(data)) - 1)] * 1000

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def figures(self, values: list[float]) -> dict[str, float | None]:
        def ms(p: float) -> float | None:
            value = self.pct(p, values)
            return None if value is None else round(value, 2)

        return {"p50_ms": ms(50), "p99_ms": ms(99), "max_ms": ms(100)}

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": len(self.latencies),
            "errors": self.errors,
            "error_samples": self.samples,
            **self.figures(self.latencies),
            "req_per_s": round(self.requests / self.wall, 1) if self.wall else None,
            "wall_s": round(self.wall, 2),
            "by_kind": {kind: self.figures(v) for kind, v in sorted(self.by_kind.items())},
        }


class Load:
    """Signed `/referral help` commands and `review_approve` clicks, alternating."""

    def __init__(self, team_id: str, app_id: str, concurrency: int) -> None:
        from tests.fakes.slack_requests import SlackRequests

        self.signer = SlackRequests("http://127.0.0.1", SIGNING_SECRET, team_id=team_id,
                                    api_app_id=app_id)  # fmt: skip
        self.team_id = team_id
        self.app_id = app_id
        self.concurrency = concurrency

    def body(self, i: int) -> tuple[str, bytes]:
        from tests.fakes.slack_requests import (
            block_actions_payload,
            interactive_body,
            slash_command_form,
        )

        if i % 2 == 0:
            form = slash_command_form("/referral", "help", team_id=self.team_id,
                                      api_app_id=self.app_id)  # fmt: skip
            return "slash", urlencode(form).encode()
        payload = block_actions_payload(Action.APPROVE.value, str(MISSING_BATCH), user_id=LEAD,
                                        team_id=self.team_id, api_app_id=self.app_id)  # fmt: skip
        return "click", interactive_body(payload)

    async def run(self, label: str, url: str, requests: int,
                  answered: Callable[[], int] | None = None) -> Run:  # fmt: skip
        """`answered`: how many clicks the server has answered (posted to the fake Slack) so
        far; given, the measurement starts once the warm-up's clicks are answered too."""
        result = Run(label, requests)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            before = answered() if answered is not None else 0
            await self._drive(session, url, 2 * self.concurrency, None)
            if answered is not None:  # every other request of the warm-up is a click
                await settle(answered, before + self.concurrency)
            started = time.perf_counter()
            await self._drive(session, url, requests, result)
            result.wall = time.perf_counter() - started
        return result

    async def _drive(
        self, session: aiohttp.ClientSession, url: str, count: int, result: Run | None
    ) -> None:
        numbers = itertools.count()

        async def sender() -> None:
            while (i := next(numbers)) < count:
                kind, body = self.body(i)
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                headers |= self.signer.sign(body)
                began = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                    problem = None if status == 200 else f"HTTP {status}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - began
                if result is None:
                    continue
                if problem is None:
                    result.latencies.append(elapsed)
                    result.by_kind.setdefault(kind, []).append(elapsed)
                else:
                    result.errors += 1
                    if len(result.samples) < 3:
                        result.samples.append(f"{kind}: {problem}")

        await asyncio.gather(*(sender() for _ in range(self.concurrency)))


async def settle(answered: Callable[[], int], count: int) -> None:
    """Wait until `answered()` reaches `count` (at most SETTLE_TIMEOUT).

    The warm-up's clicks are answered after their acks; measured at once, those answers (and
    a fresh database's first-use work: the workspace row, its leads seeded from TEAM_LEADS,
    which the first clicks do) ran into the first measured requests, which then took 2-3x
    the steady state: 20 requests of 2,000 are the p99."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while answered() < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


# --- the run --------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.fakes.slack_api import FakeSlack

    csv_path = workdir / "load.csv"
    began = time.perf_counter()
    generate_csv(csv_path, args.rows, args.seed)
    say(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in "
        f"{time.perf_counter() - began:.1f} s")  # fmt: skip

    loadavg = [round(x, 2) for x in os.getloadavg()]
    report: dict[str, Any] = {"requests": args.requests, "concurrency": args.concurrency,
                              "rows": args.rows, "cores": os.cpu_count(),
                              "loadavg_at_start": loadavg}  # fmt: skip
    async with FakeSlack(bot_token=BOT_TOKEN) as slack:
        port = free_port()
        env = clean_env(DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
                        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                        SECRET_KEY="bench-secret-" + "x" * 32,  # serve refuses a key under 32
                        SLACK_API_URL=slack.api_url, SLACK_FILE_HOSTS=slack.files_host,
                        PORT=str(port), TEAM_LEADS=LEAD)  # fmt: skip
        load = Load(slack.team_id, slack.app_id, args.concurrency)
        serve = start("serve", [*cli_argv(), "serve"], env, workdir, port)
        servers = [serve]
        try:
            try:
                report["serve_start_s"] = round(await serve.wait_healthy(), 2)
            except BenchFailed as exc:
                raise BenchFailed(f"referral-bot serve failed to start: {exc}") from None
            # serve answers /healthz before its worker child has loaded: that start-up (~2 s
            # of CPU) would run beside the idle measurement
            ready = await serve.wait_for_line(WORKER_READY)
            report["worker_ready_after_healthy_s"] = None if ready is None else round(ready, 2)
            say(f"serve healthy after {report['serve_start_s']} s, its worker "
                f"{'ready' if ready is not None else 'NOT ready'} after {ready or 0:.1f} s more;"
                " idle measurement...")  # fmt: skip
            ephemerals = len(slack.calls_to("chat.postEphemeral"))

            def answered() -> int:
                return len(slack.calls_to("chat.postEphemeral"))

            idle = await load.run("idle", serve.url, args.requests, answered)
            clicks = args.requests // 2 + args.concurrency  # measured + warm-up clicks
            posted = len(slack.calls_to("chat.postEphemeral")) - ephemerals
            # Each click's answer is posted after its ack: wait for the last ones, so the
            # count is complete and serve is idle again before the baseline is measured.
            settled = time.monotonic()
            while posted < clicks and time.monotonic() - settled < SETTLE_TIMEOUT:
                await asyncio.sleep(0.05)
                posted = len(slack.calls_to("chat.postEphemeral")) - ephemerals
            report["idle_ephemerals"] = {
                "expected": clicks, "posted": posted,
                "all_posted_after_s": round(time.monotonic() - settled, 2),
            }  # fmt: skip

            say("baseline measurement...")
            base_port = free_port()
            baseline = start("baseline", [sys.executable, "-c", BASELINE_SERVER, str(base_port)],
                             clean_env(SLACK_SIGNING_SECRET=SIGNING_SECRET), workdir,
                             base_port)  # fmt: skip
            servers.append(baseline)
            await baseline.wait_healthy()
            base = await load.run("baseline", baseline.url, args.requests)
            await asyncio.to_thread(baseline.stop)

            with environment(env, workdir):
                loaded, job = await under_load(args, load, serve, csv_path, answered)
            report["import"] = job
            runs = [idle, base] + ([loaded] if loaded else [])
        finally:
            for server in reversed(servers):
                # in a thread: serve's last calls (answers after acks) need the fake Slack,
                # which runs on this loop; blocking the loop here could stall serve's
                # shutdown until the SIGKILL, which leaves its worker child running
                status = await asyncio.to_thread(server.stop)
                if server is serve:
                    report["serve_exit_status"] = status
        log = serve.log.read_text(errors="replace")
        report["serve_log_errors"] = sum(" ERROR " in line for line in log.splitlines())

    for run in runs:
        report[run.label] = run.summary()
    if loaded is None:
        report["under_load"] = None
    idle_p99, base_p99 = idle.pct(99), base.pct(99)
    load_p99 = loaded.pct(99) if loaded else None
    report["p99_ratio_idle_to_baseline"] = ratio(idle_p99, base_p99)
    report["p99_ratio_load_to_baseline"] = ratio(load_p99, base_p99)
    report["p99_ratio_load_to_idle"] = ratio(load_p99, idle_p99)
    report["targets"] = [
        target("idle p99 <= 10 ms", TARGET_IDLE_P99_MS, idle_p99),
        target("under import load p99 <= 25 ms", TARGET_LOAD_P99_MS, load_p99),
        target("idle p99 <= 3x baseline p99", TARGET_IDLE_RATIO * (base_p99 or 0), idle_p99),
        target("under load p99 <= 1.5x idle p99", TARGET_LOAD_RATIO * (idle_p99 or 0),
               load_p99),
    ]  # fmt: skip
    failing = [r for r in runs if r.error_share > MAX_ERROR_SHARE]
    report["failed"] = [f"{r.label}: {r.errors}/{r.requests} requests failed" for r in failing]
    return report


async def under_load(
    args: argparse.Namespace, load: Load, serve: Server, csv_path: Path,
    answered: Callable[[], int],
) -> tuple[Run | None, dict[str, Any]]:
    """Queue the import, measure as soon as it runs, then wait for it to finish."""
    job: dict[str, Any] = {"rows": args.rows}
    proc = await asyncio.create_subprocess_exec(
        *cli_argv(), "import", str(csv_path), "--segment", "Load", "--create-segment",
        "--background", "--json", cwd=csv_path.parent, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        job["error"] = f"enqueue exited {proc.returncode}: {(err or out).decode().strip()}"
        say(f"import not queued, no under-load measurement: {job['error']}")
        return None, job
    job_id = int(json.loads(out)["job"])
    queued = time.monotonic()
    job["id"] = job_id
    say(f"queued import job {job_id}; waiting for serve's worker to start it...")

    state = await job_state(job_id)
    while state["state"] == "queued" and time.monotonic() - queued < JOB_START_TIMEOUT:
        await asyncio.sleep(0.05)
        state = await job_state(job_id)
    job["seen_running_after_s"] = round(time.monotonic() - queued, 2)
    job["state_at_start"] = state["state"]
    job["progress_at_start"] = [state["progress_done"], state["progress_total"]]
    if state["state"] == "queued":
        job["error"] = f"still queued after {JOB_START_TIMEOUT:.0f} s"
        say(f"import job {job_id} never started: no under-load measurement")
        return None, job
    if state["state"] != "running":
        say(f"import job {job_id} was already {state['state']} when first seen")

    say("under-load measurement...")
    loaded = await load.run("under_load", serve.url, args.requests, answered)
    state = await job_state(job_id)
    job["state_at_end"] = state["state"]
    job["running_at_end"] = state["state"] == "running"
    job["progress_at_end"] = [state["progress_done"], state["progress_total"]]

    say("waiting for the import to finish...")
    while state["state"] in ("queued", "running"):
        if time.monotonic() - queued > JOB_FINISH_TIMEOUT:
            break
        await asyncio.sleep(0.5)
        state = await job_state(job_id)
    job["final_state"] = state["state"]
    job["finished_after_s"] = round(time.monotonic() - queued, 1)
    job["error"] = state["error"]
    with contextlib.suppress(Exception):
        segments = await asyncio.to_thread(cli_json, "segments")
        job["segment_contacts"] = next(s["contacts"] for s in segments if s["name"] == "Load")
    return loaded, job


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def target(name: str, limit: float, value: float | None) -> dict[str, Any]:
    verdict = "n/a" if value is None else "PASS" if value <= limit else "MISS"
    measured = None if value is None else round(value, 2)
    return {"target": name, "limit_ms": limit, "measured_ms": measured, "verdict": verdict}


# --- output ---------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    def cell(value: float | None, suffix: str = "") -> str:
        return "-" if value is None else f"{value:.1f}{suffix}"

    lines = [
        f"Ack latency of `referral-bot serve` on loopback: {report['requests']:,} signed requests "
        f"per run, {report['concurrency']} in flight",
        "(half `/referral help`, half `review_approve` clicks on a missing batch); "
        f"{report['cores']} cores, load average {report['loadavg_at_start'][0]} at start",
        "",
        f"{'':<26}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'errors':>8}{'req/s':>8}",
    ]
    rows = (("idle", "idle"), ("under import load", "under_load"),
            ("baseline (bare aiohttp)", "baseline"))  # fmt: skip
    for name, key in rows:
        fig = report.get(key)
        if fig is None:
            lines.append(f"{name:<26}{'(not measured)':>16}")
            continue
        lines.append(f"{name:<26}{cell(fig['p50_ms']):>8}{cell(fig['p99_ms']):>8}"
                     f"{cell(fig['max_ms']):>8}{fig['errors']:>8}"
                     f"{cell(fig['req_per_s']):>8}")  # fmt: skip
    for name, key in rows[:2]:
        fig = report.get(key)
        if fig:
            kinds = ", ".join(f"{kind} p50 {cell(v['p50_ms'])} / p99 {cell(v['p99_ms'])}"
                              for kind, v in fig["by_kind"].items())  # fmt: skip
            lines.append(f"  {name}: {kinds}")
    lines += [
        "",
        f"p99 ratio to baseline: idle {cell(report['p99_ratio_idle_to_baseline'], 'x')}, "
        f"under import load {cell(report['p99_ratio_load_to_baseline'], 'x')}; "
        f"under import load to idle {cell(report['p99_ratio_load_to_idle'], 'x')}",
        ephemerals_line(report["idle_ephemerals"]),
        import_line(report["import"]),
        "",
        f"{'target':<34}{'limit':>10}{'measured':>10}  verdict",
    ]
    for t in report["targets"]:
        lines.append(f"{t['target']:<34}{cell(t['limit_ms'], ' ms'):>10}"
                     f"{cell(t['measured_ms'], ' ms'):>10}  {t['verdict']}")  # fmt: skip
    if report["serve_log_errors"]:
        lines.append(f"\nserve logged {report['serve_log_errors']} ERROR line(s)")
    for failure in report["failed"]:
        lines.append(f"FAILED: {failure} (more than {MAX_ERROR_SHARE:.0%})")
    return "\n".join(lines)


def ephemerals_line(posted: dict[str, Any]) -> str:
    """Whether every idle click got its answer, and how long after the last ack."""
    return (f"idle clicks answered: {posted['posted']:,}/{posted['expected']:,}, the last "
            f"{posted['all_posted_after_s']} s after the measurement ended")  # fmt: skip


def import_line(job: dict[str, Any]) -> str:
    if "state_at_end" not in job:
        return f"import: {job.get('error') or 'not run'}"
    done, total = job["progress_at_end"]
    if job["state_at_start"] != "running":
        during = f"already {job['state_at_start']} before the measurement started"
    elif job["running_at_end"]:
        during = "still running at the end of the measurement"
        if total:
            during += f" ({done:,}/{total:,} rows done)"
    else:
        during = f"FINISHED EARLY: {job['state_at_end']} before the measurement ended"
    end = f"{job['final_state']} {job['finished_after_s']} s after queueing"
    if job.get("segment_contacts") is not None:
        end += f", {job['segment_contacts']:,} contacts in segment Load"
    if job.get("error"):
        end += f" (error: {job['error']})"
    return f"import of {job['rows']:,} rows (job {job['id']}): {during}; {end}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS,
                        help="requests per measurement (default 2,000)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="requests in flight (default 20)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help="rows of the CSV imported under load (default 1,000,000)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json", action="store_true", help="print the figures as one object")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db, CSV)")
    args = parser.parse_args(argv)
    if args.requests < 2 or args.concurrency < 1 or args.rows < 1:
        parser.error("--requests must be >= 2, --concurrency and --rows >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch("ack-latency-", args.keep) as workdir:
        try:
            report = asyncio.run(bench(args, workdir))
        except BenchFailed as exc:
            return failed("ack_latency", exc, args.json)
    print(json.dumps(report) if args.json else table(report))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
