"""Benchmark of reading a Mailchimp audience (the Mailchimp issue).

Against the fake Mailchimp API (`tests/fakes/mailchimp.py`) serving one account with one
audience of N members (100,000 by default) and adding a fixed latency to every request
(50 ms by default), in a process of its own (`mailchimp.py --serve`), so that its rendering
and JSON work shares neither this process's CPU nor its GIL, it times:

1. the project's fetch: `bot.mailchimp.api.members(Credentials(base_url, "api_key", KEY),
   list_id)`: pages of 1,000 with only the needed `fields`, a few pages in flight;
2. the baseline: the same official `mailchimp_marketing` client, configured the same way,
   paging strictly one request after another in a thread
   (`get_list_members_info(list_id, fields=MEMBER_FIELDS, count=1000, offset=o)`).

Both run twice, each time against a fresh fake process:

- with every page pre-rendered (the exact bytes the fake renders, made before the clock
  starts), so the fake adds its latency and little else, as a real Mailchimp answering
  requests in parallel would: the targets are judged on this run;
- with the fake as the tests use it, rendering each page per request (~15 ms of CPU per
  page here) on its one event loop: with 8 requests in flight the fake's single core, not
  the client, sets the pace, and its CPU time is printed beside the figures.

Each read must return all N members with N distinct addresses (ignoring case) and only the
fields asked for. The fake reports, per read, its requests and their statuses, the `count`
and `fields` asked for, TCP connections, the account's peak number of simultaneous requests
(over-limit ones included), its limit violations (an 11th simultaneous request), the pages
it rendered and its own CPU time. Targets: the project's fetch at least 6x faster than the
baseline, and never more than 10 simultaneous requests for the account. The table also
gives the latency floors: the project reads the first page alone (to learn `total_items`),
then 8 at a time, so 100 pages take at least 14 latencies (7.1x at best) and 20 pages 4
(5x at best).

    .venv/bin/python bench/mailchimp.py                  # 100,000 members, 50 ms per request
    .venv/bin/python bench/mailchimp.py --quick          # 20,000 members
    .venv/bin/python bench/mailchimp.py --members 50000 --latency 0.1 --json

Exits 0 whatever the PASS/MISS verdicts; non-zero only if a read fails, returns the wrong
members, or the fake records a violation of the 10-connection limit. Wall-clock figures:
run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import BenchFailed, failed, say, verdict_table

DEFAULT_MEMBERS = 100_000
QUICK_MEMBERS = 20_000
DEFAULT_LATENCY = 0.05  # seconds the fake adds to every request
KEY = "0123456789abcdef0123456789abcdef-us21"
LIST_ID = "a1b2c3d4e5"  # hex: the client rewrites "server" anywhere in a URL
PAGE = 1000
MAX_CONNECTIONS = 10  # Mailchimp's simultaneous connections per account
TARGET_SPEEDUP = 6.0
SERVER_TIMEOUT = 60.0


# --- the fake (runs as `mailchimp.py --serve --members N --latency S [--prerender]`) -------


def serve(members: int, latency: float, prerender: bool) -> int:
    """Serve the fake on an ephemeral port: print its base URL once the audience is seeded,
    then, for each `stats` line on stdin, one JSON line of what it saw since the last one
    (and start afresh); exit when stdin closes.

    With `prerender`, every page the clients will ask for (the project's `MEMBER_FIELDS`,
    count 1,000) is rendered once before the URL is printed and served from memory, the same
    bytes: the fake then adds the latency and little else. Without it, each page is rendered
    per request as in the tests, on the fake's one event loop."""
    from aiohttp import web

    from bot.mailchimp.api import MEMBER_FIELDS
    from tests.fakes.mailchimp import JSON_TYPE, FakeList, FakeMailchimp

    class BenchFake(FakeMailchimp):
        """The test fake, counting TCP connections and pages rendered, and serving
        pre-rendered pages of members when it has them."""

        pages: dict[tuple[Any, ...], bytes]
        peers: set[Any]
        rendered = 0

        async def _handle(self, request: web.Request) -> web.StreamResponse:
            if request.transport is not None:
                self.peers.add(request.transport.get_extra_info("peername"))
            return await super()._handle(request)

        def _members(self, fake_list: FakeList, query: Any) -> web.Response:
            key = (fake_list.id, *sorted(query.items()))
            body = self.pages.get(key)
            if body is not None:
                return web.Response(body=body, content_type=JSON_TYPE, charset="utf-8")
            self.rendered += 1
            return super()._members(fake_list, query)

    async def main() -> None:
        mc = BenchFake(latency=latency, max_connections=MAX_CONNECTIONS)
        mc.pages, mc.peers = {}, set()
        async with mc:
            account = mc.add_account(KEY)
            audience = account.add_list(LIST_ID, "Customers")
            audience.add_members(members)
            for offset in range(0, members, PAGE) if prerender else ():
                query = {"fields": ",".join(MEMBER_FIELDS), "count": str(PAGE),
                         "offset": str(offset)}  # fmt: skip
                page = FakeMailchimp._members(mc, audience, query)
                assert isinstance(page.body, bytes)
                mc.pages[(LIST_ID, *sorted(query.items()))] = page.body
            cpu = time.process_time()
            print(mc.base_url, flush=True)
            loop = asyncio.get_running_loop()
            while (line := await loop.run_in_executor(None, sys.stdin.readline)).strip():
                if line.strip() != "stats":
                    continue
                now = time.process_time()
                stats = {
                    "requests": len(mc.requests),
                    "statuses": dict(Counter(str(r.status) for r in mc.requests)),
                    "counts": sorted({r.query.get("count", "") for r in mc.requests}),
                    "fields": sorted({r.query.get("fields", "") for r in mc.requests}),
                    "peak_concurrency": account.peak_concurrency,
                    "violations": len(mc.violations),
                    "connections": len(mc.peers),
                    "pages_rendered": mc.rendered,
                    "fake_cpu_seconds": now - cpu,
                }
                mc.requests.clear()
                mc.violations.clear()
                mc.peers.clear()
                mc.rendered = 0
                account.peak_concurrency = 0
                cpu = now
                print(json.dumps(stats), flush=True)

    asyncio.run(main())
    return 0


class FakeProcess:
    """The fake's child process: its base URL, and what it saw per measurement."""

    def __init__(self, members: int, latency: float, prerender: bool) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--members", str(members),
             "--latency", repr(latency), *(["--prerender"] if prerender else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self._next("start")
        if not line.startswith("http://"):
            self.stop()
            raise BenchFailed(f"the fake Mailchimp did not start (said {line!r})")
        self.base_url = line

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")  # EOF

    def _next(self, what: str) -> str:
        try:
            return self.lines.get(timeout=SERVER_TIMEOUT).strip()
        except queue.Empty:
            raise BenchFailed(f"the fake Mailchimp did not answer ({what})") from None

    def stats(self) -> dict[str, Any]:
        """What the fake saw since the last call (or since it started)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("stats\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise BenchFailed(f"the fake Mailchimp exited ({self.process.poll()})") from None
        line = self._next("stats")
        try:
            return json.loads(line)
        except ValueError:
            raise BenchFailed(f"the fake Mailchimp printed {line!r} instead of stats") from None

    def stop(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=SERVER_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the two fetches -----------------------------------------------------------------------


def project_fetch(base_url: str) -> tuple[list[dict[str, Any]], float, float]:
    """`api.members()` on a fresh event loop: (members, seconds, CPU seconds)."""
    from bot.mailchimp import api

    creds = api.Credentials(base_url, "api_key", KEY)

    async def run() -> tuple[list[dict[str, Any]], float, float]:
        cpu, start = time.process_time(), time.monotonic()
        members = await api.members(creds, LIST_ID)
        return members, time.monotonic() - start, time.process_time() - cpu

    return asyncio.run(run())


def sequential(base_url: str) -> list[dict[str, Any]]:
    """The baseline: one page after another with the official client, as the project sets
    it up (API key, no "server" rewriting, the fake's host, a timeout)."""
    import mailchimp_marketing

    from bot.mailchimp.api import MEMBER_FIELDS, TIMEOUT

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": KEY, "server": "", "timeout": TIMEOUT})
    client.api_client.host = base_url.rstrip("/") + "/3.0"
    members: list[dict[str, Any]] = []
    offset, total = 0, 1
    while offset < total:
        page = client.lists.get_list_members_info(LIST_ID, fields=MEMBER_FIELDS, count=PAGE,
                                                  offset=offset)  # fmt: skip
        if not isinstance(page, dict):  # the client returns bare error responses
            raise BenchFailed(f"baseline: offset {offset} answered {page.status_code}")
        chunk = page.get("members") or []
        if not chunk:
            break
        members += chunk
        offset += len(chunk)
        total = int(page.get("total_items") or 0)
    return members


def baseline_fetch(base_url: str) -> tuple[list[dict[str, Any]], float, float]:
    """`sequential()` in a thread of its own: (members, seconds, CPU seconds)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline") as pool:
        cpu, start = time.process_time(), time.monotonic()
        members = pool.submit(sequential, base_url).result()
        return members, time.monotonic() - start, time.process_time() - cpu


def check(name: str, members: list[dict[str, Any]], expect: int) -> None:
    """All `expect` members, distinct addresses, and only the fields asked for."""
    emails = {str(m.get("email_address") or "").lower() for m in members}
    emails.discard("")
    if len(members) != expect or len(emails) != expect:
        raise BenchFailed(f"{name}: {len(members):,} members with {len(emails):,} distinct "
                          f"addresses, expected {expect:,}")  # fmt: skip
    from bot.mailchimp.api import MEMBER_FIELDS

    # the keys the project asks for ("members.merge_fields.FNAME": merge_fields); a fixed set
    # here fell behind when full_name was added to MEMBER_FIELDS, and the bench failed
    asked = {f.split(".")[1] for f in MEMBER_FIELDS if f.startswith("members.")}
    extra = set().union(*(m.keys() for m in members)) - asked
    if extra:
        raise BenchFailed(f"{name}: members carry fields not asked for: {sorted(extra)}")


def measure(name: str, fetch: Any, fake: FakeProcess, expect: int, say: Any) -> dict[str, Any]:
    """One fetch against the running fake: its figures and what the fake saw of it."""
    say(f"{name}: reading {expect:,} members ...")
    try:
        members, seconds, cpu = fetch(fake.base_url)
    except BenchFailed:
        raise
    except Exception as exc:
        raise BenchFailed(f"{name}: {type(exc).__name__}: {exc}") from exc
    seen = fake.stats()
    check(name, members, expect)
    if seen["violations"] or seen["peak_concurrency"] > MAX_CONNECTIONS:
        raise BenchFailed(f"{name}: the fake saw {seen['peak_concurrency']} simultaneous "
                          f"requests ({seen['violations']} over the limit of "
                          f"{MAX_CONNECTIONS})")  # fmt: skip
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "members_per_second": round(len(members) / seconds), **seen,
            "fake_cpu_seconds": round(seen["fake_cpu_seconds"], 3)}  # fmt: skip


def phase(prerender: bool, members: int, latency: float, say: Any) -> dict[str, Any]:
    """The project's fetch, then the baseline, against one fresh fake process."""
    how = "pre-rendered pages" if prerender else "every page rendered per request"
    say(f"starting the fake Mailchimp: {members:,} members, {latency * 1000:g} ms per "
        f"request, {how} ...")  # fmt: skip
    fake = FakeProcess(members, latency, prerender)
    try:
        fake.stats()  # start afresh: nothing before the first measurement counts
        project = measure("project", project_fetch, fake, members, say)
        baseline = measure("baseline", baseline_fetch, fake, members, say)
    finally:
        fake.stop()
    return {"project": project, "baseline": baseline,
            "speedup": round(baseline["seconds"] / project["seconds"], 2)}  # fmt: skip


# --- the report ----------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def figures(n: int, latency: float, fast: dict[str, Any], slow: dict[str, Any]) -> dict[str, Any]:
    from bot.mailchimp.api import MAX_IN_FLIGHT

    pages = math.ceil(n / PAGE)
    # the project reads the first page alone (to learn total_items), then the rest
    rounds = 1 + math.ceil((pages - 1) / MAX_IN_FLIGHT)
    peak = max(fast["project"]["peak_concurrency"], slow["project"]["peak_concurrency"])
    return {
        "members": n, "latency": latency, "pages": pages, "max_in_flight": MAX_IN_FLIGHT,
        "prerendered": fast, "rendering": slow,
        "latency_floor": {"project_seconds": round(rounds * latency, 3), "project_rounds": rounds,
                          "baseline_seconds": round(pages * latency, 3),
                          "best_speedup": round(pages / rounds, 2)},
        "targets": {
            "speedup": {"target": f">= {TARGET_SPEEDUP:g}x", "measured": fast["speedup"],
                        "pass": fast["speedup"] >= TARGET_SPEEDUP},
            "peak_concurrency": {"target": f"<= {MAX_CONNECTIONS}", "measured": peak,
                                 "pass": peak <= MAX_CONNECTIONS},
        },
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def report(fig: dict[str, Any]) -> str:
    t, floor, n = fig["targets"], fig["latency_floor"], fig["members"]
    table: list[tuple[str, str, str, str]] = []
    for key, title, verdicts in (
        ("prerendered", "fake serving pre-rendered pages (the latency, little else):", True),
        ("rendering", "fake rendering every page, as in the tests (one core, serial):", False),
    ):
        f = fig[key]
        p, b = f["project"], f["baseline"]
        table += [
            (title, "", "", ""),
            ("  project: api.members()", f"{p['seconds']:.2f} s", "", ""),
            ("  baseline: sequential pages, one thread", f"{b['seconds']:.2f} s", "", ""),
            ("  speedup (baseline / project)", f"{f['speedup']:.2f}x",
             f">= {TARGET_SPEEDUP:g}x" if verdicts else "",
             _verdict(t["speedup"]["pass"]) if verdicts else ""),
            ("  peak simultaneous requests (project)", f"{p['peak_concurrency']}",
             f"<= {MAX_CONNECTIONS}", _verdict(p["peak_concurrency"] <= MAX_CONNECTIONS)),
            ("  peak simultaneous requests (baseline)", f"{b['peak_concurrency']}", "", ""),
            ("  limit violations (project / baseline)",
             f"{p['violations']} / {b['violations']}", "0",
             _verdict(not p["violations"] and not b["violations"])),
            ("  requests / TCP connections (project)",
             f"{p['requests']} / {p['connections']}", "", ""),
            ("  members/s (project / baseline)",
             f"{p['members_per_second']:,} / {b['members_per_second']:,}", "", ""),
            ("  pages the fake rendered (project / baseline)",
             f"{p['pages_rendered']} / {b['pages_rendered']}", "", ""),
            ("  fake's CPU (project / baseline)",
             f"{p['fake_cpu_seconds']:.2f} / {b['fake_cpu_seconds']:.2f} s", "", ""),
            ("  this process's CPU (project / baseline)",
             f"{p['cpu_seconds']:.2f} / {b['cpu_seconds']:.2f} s", "", ""),
        ]  # fmt: skip
    table += [
        (f"latency floor: first page, then {fig['max_in_flight']} in flight "
         f"({floor['project_rounds']} rounds)", f"{floor['project_seconds']:.2f} s", "", ""),
        (f"latency floor: sequential ({fig['pages']} pages)",
         f"{floor['baseline_seconds']:.2f} s", "", ""),
        ("best speedup that allows", f"{floor['best_speedup']:.2f}x", "", ""),
    ]  # fmt: skip
    p = fig["prerendered"]["project"]
    statuses = Counter[str]()
    for f in (fig["prerendered"], fig["rendering"]):
        for r in (f["project"], f["baseline"]):
            statuses.update(r["statuses"])
    lines = [
        f"referral-bot Mailchimp audience benchmark: {n:,} members ({fig['pages']} pages of "
        f"{PAGE:,}), {fig['latency'] * 1000:g} ms per request, the fake in its own process, "
        f"{fig['cpus']} CPUs, load average at the end "
        f"{' / '.join(f'{x:.2f}' for x in fig['load_average'])}",
        f"counts: each of the 4 reads returned {n:,} members, {n:,} distinct addresses, only "
        f"the fields asked for: OK; HTTP statuses "
        f"{', '.join(f'{k} x{v}' for k, v in sorted(statuses.items()))}",
        f"the project asked for count={', '.join(p['counts'])}, fields={'; '.join(p['fields'])}",
        "",
    ]
    lines += verdict_table(table, value_width=15, target_width=6)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS,
                        help="members of the audience")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"--members {QUICK_MEMBERS:,}")
    parser.add_argument("--latency", type=float, default=DEFAULT_LATENCY,
                        help="seconds the fake adds to every request")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prerender", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    members = QUICK_MEMBERS if args.quick else args.members
    if members < 1 or args.latency < 0:
        parser.error("--members must be positive and --latency not negative")
    if args.serve:
        return serve(members, args.latency, args.prerender)

    try:
        fast = phase(True, members, args.latency, say)
        slow = phase(False, members, args.latency, say)
        fig = figures(members, args.latency, fast, slow)
        print(json.dumps(fig) if args.json else report(fig))
        return 0
    except BenchFailed as exc:
        return failed("mailchimp", exc, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
