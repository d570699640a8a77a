"""The `referral-bot` script's entry (bot.launch): the command as ever, and nothing left for the
interpreter's last collection to walk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_script_runs_the_command_and_freezes_everything_once_it_is_over() -> None:
    probe = ("import gc, sys\n"
             "sys.argv = ['referral-bot', '--version']\n"
             "from bot.launch import main\n"
             "try:\n"
             "    main()\n"
             "except SystemExit:\n"
             "    pass\n"
             "print(gc.get_freeze_count(), gc.isenabled())\n")  # fmt: skip
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    version, frozen = ran.stdout.splitlines()
    assert version.startswith("referral-bot ") and ran.returncode == 0, ran.stderr
    count, enabled = frozen.split()
    assert int(count) > 50_000 and enabled == "True"  # collected afterwards as ever


def test_the_installed_script_is_the_launch_entry() -> None:
    script = Path(sys.executable).parent / "referral-bot"
    assert "from bot.launch import main" in script.read_text(encoding="utf-8")
    ran = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.startswith("referral-bot "), ran.stderr
