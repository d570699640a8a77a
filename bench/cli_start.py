"""How long a short command takes from the shell: `referral-bot jobs` on a fresh SQLite file.

The installed script (bot.launch: bot.cli imported with the garbage collector paused, all
frozen once the command is over) against the same command through `python -m bot.cli` (the
import as any module's: collected as it goes, and walked again at exit), interleaved,
`--runs` times each; the medians and their ratio. Each run is a new process, as a shell
user's is; the suite starts hundreds (serve, workers, commands).

    .venv/bin/python bench/cli_start.py            # 10 runs each
    .venv/bin/python bench/cli_start.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import BenchFailed, failed, referral_bot, say, scratch


def _seconds(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    ran = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - start
    if ran.returncode != 0:
        raise BenchFailed(f"{' '.join(argv)} failed: {ran.stderr.strip()[-500:]}")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each (default 10)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    args = parser.parse_args(argv)
    script = referral_bot(parser)
    with scratch("cli-start-", keep=False) as workdir:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(
            ("DATABASE_", "SLACK_", "SECRET_", "SMTP_", "PUBLIC_"))}  # fmt: skip
        env["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.db'}"
        try:
            _seconds([script, "db", "upgrade"], env, workdir)
            launched, plain = [], []
            for run in range(args.runs):
                say(f"run {run + 1}/{args.runs}")
                launched.append(_seconds([script, "jobs"], env, workdir))
                plain.append(_seconds([sys.executable, "-m", "bot.cli", "jobs"], env, workdir))
        except BenchFailed as exc:
            return failed("cli_start", exc, args.json)
    fig = {"runs": args.runs, "script_s": round(statistics.median(launched), 3),
           "python_m_bot_cli_s": round(statistics.median(plain), 3)}  # fmt: skip
    fig["ratio"] = round(fig["script_s"] / fig["python_m_bot_cli_s"], 2)
    if args.json:
        print(json.dumps(fig))
    else:
        print(f"`referral-bot jobs` (bot.launch), median of {args.runs}: {fig['script_s']:.2f} s\n"
              f"`python -m bot.cli jobs`, the same command imported as any module: "
              f"{fig['python_m_bot_cli_s']:.2f} s\n"
              f"ratio: {fig['ratio']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
