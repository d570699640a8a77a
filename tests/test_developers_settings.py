"""The suite passes in a developer's shell that runs the bot too.

The README has `./run`'s settings exported or kept in a `.env` in the folder it is run from;
`./test` runs from the same folder. Two tests, run by pytest in a shell like that, must pass,
and nothing may reach the developer's own database: one reads the settings' defaults, one needs
a worker without SECRET_KEY.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = (
    "tests/test_settings_and_schema.py::test_defaults_and_normalised_locale",
    "tests/campaigns/test_send_workers.py::test_a_worker_that_cant_send_leaves_the_send_jobs_queued",
)


def test_the_developers_exported_settings_and_env_file_reach_no_test(tmp_path: Path) -> None:
    own_db = tmp_path / "developers-own.db"
    shell = tmp_path / "shell"
    shell.mkdir()
    shell.joinpath(".env").write_text(
        f"DATABASE_URL=sqlite:///{own_db}\nPUBLIC_URL=https://developer.example\n"
        "SMTP_URL=smtp://127.0.0.1:9\nOUTBOX_DIR=outbox\n", encoding="utf-8")  # fmt: skip
    env = {**os.environ, "SECRET_KEY": "d" * 40, "Default_Locale": "fr",
           "DATABASE_URL": f"sqlite:///{own_db}"}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
         *(str(ROOT / test) for test in TESTS)],
        cwd=shell, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
    assert not own_db.exists() and not shell.joinpath("outbox").exists()


LEFT_RUNNING = '''
import subprocess
import sys


def test_that_fails_with_a_process_running():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{mark}"])
    assert False, "failed on purpose"
'''


def test_a_failed_tests_processes_are_not_left_running(tmp_path: Path) -> None:
    """A test that failed between starting a worker and stopping it left it polling its
    database, for good: the suite's own conftest now kills what a failed test left."""
    import psutil

    mark = f"left-by-a-failed-test-{tmp_path.name}"
    tmp_path.joinpath("test_leaves.py").write_text(LEFT_RUNNING.format(mark=mark))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         "-p", "tests.conftest", "--rootdir", str(tmp_path), "-c", os.devnull,
         str(tmp_path / "test_leaves.py")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert "1 failed" in run.stdout and "failed on purpose" in run.stdout, run.stdout + run.stderr
    left = [p for p in psutil.process_iter(["cmdline"]) if mark in (p.info["cmdline"] or ())]
    for process in left:
        process.kill()
    assert left == []
