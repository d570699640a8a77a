"""Benchmark of invite sending: one reused SMTP connection against a connection per message.

In one run, against a local aiosmtpd in its own process (as a relay would be):

1. renders and builds N invites (default 2,000) across every template locale, timed on its
   own (render + MIME build per invite);
2. sends them all through one `SmtpSender` (one connection, reused);
3. sends them again with a new `SmtpSender` (connect, EHLO, ..., QUIT) per message: the
   baseline, the same code as 2 without the reuse;
4. the floor: the same invites, serialised beforehand, sent by a minimal client (asyncio
   streams, MAIL / RCPT / DATA and nothing else) over one connection: what the server and
   the round trips allow at most on this machine;
5. repeats 2 to 4 with the server offering STARTTLS and AUTH, sent with
   `?starttls=required` and a login as to a real relay (skipped without the openssl command,
   which makes the throwaway certificate).

Each mode prints invites/s for both and the ratio; targets (from our issue): at least 500
invites/s with reuse, and at least 5x the per-message baseline. The server counts messages
and connections; any send that is not `sent`, or counts that differ, fail the run.

    .venv/bin/python bench/smtp_send.py                 # 2,000 invites
    .venv/bin/python bench/smtp_send.py --invites 500   # quicker
    .venv/bin/python bench/smtp_send.py --json          # figures as one JSON object

Exits 0 whatever the verdicts; non-zero only if the server fails to start or a send or a
count is wrong. Wall-clock figures: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from common import BenchFailed, failed, say, scratch

from bot.email import (
    MESSAGE_POLICY,
    TEMPLATE_LOCALES,
    Invite,
    SendStatus,
    SmtpSender,
    build_message,
    parse_smtp_url,
    render_invite,
)

DEFAULT_INVITES = 2_000
WARMUP = 20
TARGET_REUSE_PER_SECOND = 500.0
TARGET_RATIO = 5.0
USER, PASSWORD = "bench", "bench-password"
START_TIMEOUT = 30.0
OPENSSL_SELF_SIGNED = (
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    " -addext subjectAltName=IP:127.0.0.1 -subj"
)


# --- the server (runs as `smtp_send.py --serve [--tls-cert C --tls-key K]`) ---------------


def serve(cert: str | None, key: str | None) -> int:
    """Serve SMTP on an ephemeral port: print the port, count until stdin closes, print counts."""
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # a deprecation warning per login
    message_id = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
    counts = {"messages": 0, "connections": 0, "duplicates": 0}
    seen: set[bytes] = set()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            counts["messages"] += 1
            found = message_id.search(envelope.content)
            key = found.group(1) if found else b""
            # A duplicate is the same invite in the same mode; the harness sends each mode's
            # batch with its own keys, so any repeat means something was sent twice.
            if key in seen:
                counts["duplicates"] += 1
            seen.add(key)
            return "250 2.0.0 queued"

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == USER.encode()
            and (data.password == PASSWORD.encode())
        )
        return AuthResult(success=ok, handled=False)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if cert and key:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key)
        handler = Handler()

        def protocol() -> SMTP:
            counts["connections"] += 1
            return SMTP(
                handler,
                hostname="mx.bench",
                enable_SMTPUTF8=True,
                loop=loop,
                tls_context=tls,
                authenticator=authenticate if tls else None,
            )

        listener = await loop.create_server(protocol, "127.0.0.1", 0)
        print(listener.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes stdin
        listener.close()
        print(json.dumps(counts), flush=True)

    asyncio.run(main())
    return 0


class ServerProcess:
    """The aiosmtpd child process: its port, and its counts once stopped."""

    def __init__(self, cert: Path | None = None, key: Path | None = None) -> None:
        command = [sys.executable, __file__, "--serve"]
        if cert and key:
            command += ["--tls-cert", str(cert), "--tls-key", str(key)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.process.kill()
            raise BenchFailed(f"the SMTP server did not start (said {line!r})")
        self.port = int(line)

    def stop(self) -> dict[str, int]:
        """Close stdin, read the counts, wait for the exit."""
        stdout, _ = self.process.communicate(timeout=START_TIMEOUT)
        if self.process.returncode != 0:
            raise BenchFailed(f"the SMTP server exited with {self.process.returncode}")
        return json.loads(stdout.strip().splitlines()[-1])


# --- the harness ---------------------------------------------------------------------------


def invites(count: int, batch: str) -> list[Invite]:
    """`count` invites cycling through every template locale, keys unique per batch."""
    locales = TEMPLATE_LOCALES
    return [
        Invite(
            to_email=f"customer{i}@example.org",
            first_name=("François", "悠斗", "Ana", "Jörg")[i % 4],
            locale=locales[i % len(locales)],
            store_name="Café Zoë",
            store_url="https://shop.example/",
            offer="Give 10%, get $10",
            referral_link=f"https://shop.example/r/{i:08x}",
            unsubscribe_url=f"https://referral-bot.example.com/u/{i:08x}",
            sender="Café Zoë <hello@shop.example>",
            message_key=f"{batch}-c{i}",
            default_locale="en",
        )
        for i in range(count)
    ]


def build(batch: list[Invite]) -> list[EmailMessage]:
    return [
        build_message(invite, render_invite(invite), public_host="referral-bot.example.com")
        for invite in batch
    ]


def check(results: list[Any], what: str) -> None:
    bad = [r for r in results if r.status is not SendStatus.SENT]
    if bad:
        raise BenchFailed(f"{what}: {len(bad)} sends were not sent, first: {bad[0]}")


async def send_reused(url: str, messages: list[EmailMessage], tls: ssl.SSLContext | None) -> float:
    """Seconds to send every message over one connection (connect and QUIT included)."""
    start = time.perf_counter()
    async with SmtpSender(parse_smtp_url(url), tls_context=tls) as smtp:
        results = [await smtp.send(message) for message in messages]
    seconds = time.perf_counter() - start
    check(results, "reused connection")
    if smtp.connections != 1:
        raise BenchFailed(f"reuse opened {smtp.connections} connections, not 1")
    return seconds


async def send_each(url: str, messages: list[EmailMessage], tls: ssl.SSLContext | None) -> float:
    """Seconds to send every message on a connection of its own (the baseline)."""
    config = parse_smtp_url(url)
    results = []
    start = time.perf_counter()
    for message in messages:
        async with SmtpSender(config, tls_context=tls) as smtp:
            results.append(await smtp.send(message))
    seconds = time.perf_counter() - start
    check(results, "connection per message")
    return seconds


async def send_floor(port: int, messages: list[EmailMessage], tls: ssl.SSLContext | None) -> float:
    """Seconds for a minimal client to send pre-serialised messages over one connection."""
    wire = [
        (
            str(message["To"]).encode(),
            re.sub(rb"(?m)^\.", b"..", message.as_bytes(policy=MESSAGE_POLICY)) + b".\r\n",
        )
        for message in messages
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def command(line: bytes | None, expect: int) -> None:
        if line is not None:
            writer.write(line)
        while True:
            reply = await reader.readline()
            if reply[3:4] != b"-":
                break
        if int(reply[:3]) != expect:
            raise BenchFailed(f"floor client: expected {expect}, got {reply!r}")

    await command(None, 220)
    await command(b"EHLO bench\r\n", 250)
    if tls:
        await command(b"STARTTLS\r\n", 220)
        await writer.start_tls(tls, server_hostname="127.0.0.1")
        await command(b"EHLO bench\r\n", 250)
        login = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
        await command(b"AUTH PLAIN " + login + b"\r\n", 235)
    start = time.perf_counter()
    for to, data in wire:
        await command(b"MAIL FROM:<hello@shop.example>\r\n", 250)
        await command(b"RCPT TO:<" + to + b">\r\n", 250)
        await command(b"DATA\r\n", 354)
        await command(data, 250)
    seconds = time.perf_counter() - start
    await command(b"QUIT\r\n", 221)
    writer.close()
    return seconds


def make_certificate(workdir: Path) -> tuple[Path, Path] | None:
    """A throwaway self-signed certificate for 127.0.0.1, or None without openssl."""
    if shutil.which("openssl") is None:
        return None
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    subprocess.run(
        [*OPENSSL_SELF_SIGNED.split(), "/CN=bench", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def measure_mode(
    name: str, count: int, cert_key: tuple[Path, Path] | None, say: Any
) -> dict[str, Any]:
    """One mode (plain or STARTTLS + AUTH): reuse vs per-message on fresh invites."""
    cert, key = cert_key if cert_key else (None, None)
    tls = ssl.create_default_context(cafile=str(cert)) if cert else None
    server = ServerProcess(cert, key)
    try:
        credentials = f"{USER}:{PASSWORD}@" if cert else ""
        query = "?starttls=required&timeout=30" if cert else "?timeout=30"
        url = f"smtp://{credentials}127.0.0.1:{server.port}{query}"
        warm = build(invites(WARMUP, f"{name}-warm"))
        reused_batch = build(invites(count, f"{name}-reuse"))
        each_batch = build(invites(count, f"{name}-each"))
        floor_batch = build(invites(count, f"{name}-floor"))
        say(f"{name}: warming up, then {count:,} invites over one connection ...")
        asyncio.run(send_reused(url, warm, tls))
        reuse_seconds = asyncio.run(send_reused(url, reused_batch, tls))
        say(f"{name}: {count:,} invites with a connection each ...")
        each_seconds = asyncio.run(send_each(url, each_batch, tls))
        say(f"{name}: {count:,} invites from the minimal client (the floor) ...")
        floor_seconds = asyncio.run(send_floor(server.port, floor_batch, tls))
    finally:
        counts = server.stop()
    expected = {"messages": WARMUP + 3 * count, "connections": 3 + count, "duplicates": 0}
    if counts != expected:
        raise BenchFailed(f"{name}: the server counted {counts}, expected {expected}")
    reuse_rate, each_rate = count / reuse_seconds, count / each_seconds
    return {
        "floor_seconds": round(floor_seconds, 3),
        "floor_per_second": round(count / floor_seconds, 1),
        "reuse_seconds": round(reuse_seconds, 3),
        "reuse_per_second": round(reuse_rate, 1),
        "each_seconds": round(each_seconds, 3),
        "each_per_second": round(each_rate, 1),
        "ratio": round(reuse_rate / each_rate, 2),
        "server_counts": counts,
        "targets": {
            "reuse_per_second": {"target": f">= {TARGET_REUSE_PER_SECOND:g}",
                                 "pass": reuse_rate >= TARGET_REUSE_PER_SECOND},
            "ratio": {"target": f">= {TARGET_RATIO:g}x",
                      "pass": reuse_rate / each_rate >= TARGET_RATIO},
        },
    }  # fmt: skip


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(fig: dict[str, Any]) -> str:
    lines = [
        f"invite sending benchmark: {fig['invites']:,} invites per measurement, "
        f"{len(TEMPLATE_LOCALES)} locales, aiosmtpd in its own process on 127.0.0.1",
        f"render + build (not in the send figures): {fig['build_per_second']:,.0f} invites/s "
        f"({1000 / fig['build_per_second']:.2f} ms each)",
        f"machine: {fig['cpus']} CPUs, load average at the end "
        f"{' / '.join(f'{x:.2f}' for x in fig['load_average'])}",
        "",
    ]
    rows = []
    for mode, label in (("plain", "plain SMTP"), ("starttls", "STARTTLS + AUTH")):
        m = fig["modes"].get(mode)
        if m is None:
            lines.append(f"{label}: skipped (needs the openssl command)")
            continue
        t = m["targets"]
        rows += [
            (f"{label}: one reused connection", f"{m['reuse_per_second']:,.0f}/s",
             f">= {TARGET_REUSE_PER_SECOND:g}/s", _verdict(t["reuse_per_second"]["pass"])),
            (f"{label}: a connection per message", f"{m['each_per_second']:,.0f}/s", "", ""),
            (f"{label}: reuse / per-message", f"{m['ratio']:.2f}x", f">= {TARGET_RATIO:g}x",
             _verdict(t["ratio"]["pass"])),
            (f"{label}: floor (minimal client, same server)", f"{m['floor_per_second']:,.0f}/s",
             "", ""),
        ]  # fmt: skip
    width = max(len(row[0]) for row in rows) if rows else 10
    lines += [
        f"{'measurement':<{width}}  {'invites/s':>10}  {'target':<10}  verdict",
        f"{'-' * width}  {'-' * 10}  {'-' * 10}  -------",
    ]
    lines += [f"{m:<{width}}  {v:>10}  {tg:<10}  {vd}".rstrip() for m, v, tg, vd in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invites", type=int, default=DEFAULT_INVITES,
                        help="invites per measurement")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--no-tls", action="store_true", help="skip the STARTTLS + AUTH mode")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tls-cert", help=argparse.SUPPRESS)
    parser.add_argument("--tls-key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.tls_cert, args.tls_key)
    if args.invites < 1:
        parser.error("--invites must be positive")

    try:
        with scratch("referral-bench-smtp-", keep=False) as workdir:
            sample = invites(min(args.invites, 500), "build")
            start = time.perf_counter()
            build(sample)
            build_rate = len(sample) / (time.perf_counter() - start)
            modes = {"plain": measure_mode("plain", args.invites, None, say)}
            cert_key = None if args.no_tls else make_certificate(workdir)
            if cert_key:
                modes["starttls"] = measure_mode("starttls", args.invites, cert_key, say)
        fig = {"invites": args.invites, "build_per_second": round(build_rate, 1),
               "cpus": os.cpu_count(), "load_average": os.getloadavg(),
               "modes": modes}  # fmt: skip
        print(json.dumps(fig) if args.json else report(fig))
        return 0
    except BenchFailed as exc:
        return failed("smtp_send", exc, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
