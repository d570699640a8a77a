"""What a new shell user met in a walkthrough of `referral-bot import`, `jobs` and `serve`:
a --rejects that replaced what was at its path, an empty segment left by an import of
nothing, a file given twice read twice, notes and errors naming files two ways, columns out
of line, and start-up lines said twice (run in-process as tests/shell.py does; Ctrl-C and
serve in real processes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from models import Database
from tests.children import lent_cpu_in_thread
from tests.imports.exports import mailchimp_zip
from tests.imports.test_excel import workbook
from tests.jobs.test_worker_processes import env_for, wait_for, write_csv
from tests.shell import CLI, environment, run
from tests.test_serve_start import closed_port

PEOPLE = "email,first_name\nana@example.com,Ana\nbad@@x,Bo\n"  # one valid, one rejected
ROOT = os.geteuid() == 0


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE)
    return path


def _import_with_rejects(env: dict[str, str], people: Path,
                         rejects: Path) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return run(env, "import", str(people), "--segment", "S", "--create-segment", "--rejects",
               str(rejects))  # fmt: skip


def _rejected(text_: str) -> list[str]:
    """The emails of the rejects CSV's rows."""
    return [line.split(",")[2] for line in text_.lstrip("\ufeff").splitlines()[1:]]


# --- --rejects writes to what is at its path -----------------------------------------------


def test_rejects_into_a_fifo_are_read_from_it_and_the_fifo_stays(
    db_env: dict[str, str], people: Path, tmp_path: Path
) -> None:
    """`--rejects PIPE` put a plain file where the FIFO was (os.replace onto it): its reader
    waited for good and nothing came."""
    fifo = tmp_path / "rejects.fifo"
    os.mkfifo(fifo)
    done, got = _reading(fifo, lambda: _import_with_rejects(db_env, people, fifo))
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    assert got is not None and _rejected(got.decode("utf-8")) == ["bad@@x"], got
    assert f"Wrote 1 rejected or duplicate row to {fifo}" in done.stdout, done.stdout


def test_a_fifos_reader_is_let_go_when_the_import_writes_no_rejects(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """A file refused before any row is read: the reader gets an empty read, as from a
    shell's `> fifo`, rather than waiting for rows that never come."""
    fifo = tmp_path / "rejects.fifo"
    os.mkfifo(fifo)
    unreadable = tmp_path / "noemail.csv"
    unreadable.write_text("name\nAna\n")
    done, got = _reading(fifo, lambda: _import_with_rejects(db_env, unreadable, fifo))
    assert done.returncode == 1 and "No email column found" in done.stderr, done.stderr
    assert got == b"", "the reader was left waiting"


def _reading(fifo: Path, command: Callable[[], subprocess.CompletedProcess[str]]
             ) -> tuple[subprocess.CompletedProcess[str], bytes | None]:  # fmt: skip
    """Run `command` while a thread reads `fifo` to its end: what it read, or None if it was
    still waiting 20 s after the command ended (it is let go then, by another name)."""
    keep = fifo.with_name(fifo.name + ".link")
    os.link(fifo, keep)  # the FIFO by another name: a stuck reader is let go through it
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        done = command()
        reader.join(20)
        return done, (got[0] if got and not reader.is_alive() else None)
    finally:
        if reader.is_alive():
            os.close(os.open(keep, os.O_WRONLY | os.O_NONBLOCK))
            reader.join(5)


def test_rejects_through_a_symlink_replace_its_target_and_the_link_stays(
    db_env: dict[str, str], people: Path, tmp_path: Path
) -> None:
    """The link itself was replaced by a plain file; its target kept the old rows."""
    target = tmp_path / "kept" / "rejects.csv"
    target.parent.mkdir()
    target.write_text("old rows\n")
    link = tmp_path / "rejects.csv"
    link.symlink_to(target)
    done = _import_with_rejects(db_env, people, link)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _rejected(target.read_text(encoding="utf-8")) == ["bad@@x"]
    assert [p.name for p in target.parent.iterdir()] == ["rejects.csv"]  # no temp file left


def _device(tmp_path: Path, name: str, minor: int) -> Path:
    """/dev/null (minor 3) or /dev/full (7): as root, a node of our own made like it (a fault
    here must not replace the system's); otherwise the system's, which only root could replace."""
    if not ROOT:
        return Path("/dev/null" if minor == 3 else "/dev/full")
    node = tmp_path / name
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return node


def test_rejects_into_a_device_are_written_to_it_and_it_stays_a_device(
    db_env: dict[str, str], people: Path, tmp_path: Path
) -> None:
    """As root, `--rejects /dev/null` replaced /dev/null with a plain file of rows."""
    node = _device(tmp_path, "null", 3)
    done = _import_with_rejects(db_env, people, node)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode), "the device was replaced by a file"
    assert os.lstat(node).st_rdev == os.makedev(1, 3)


def test_rejects_into_dev_null_leave_it_a_character_device(
    db_env: dict[str, str], people: Path
) -> None:
    """/dev/null itself, read before and after (its mode only)."""
    before = os.stat("/dev/null")
    done = _import_with_rejects(db_env, people, Path("/dev/null"))
    assert done.returncode == 0, done.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_rejects_into_a_full_device_are_one_line_saying_so(
    db_env: dict[str, str], people: Path, tmp_path: Path
) -> None:
    """/dev/full: the import is done, and the line says so and that the disk was full."""
    node = _device(tmp_path, "full", 7)
    done = _import_with_rejects(db_env, people, node)
    assert done.returncode == 1
    said = re.fullmatch(r"referral-bot: Import #(\d+) is done, but --rejects (.+) couldn't be "
                        r"written: no space left on the device\.\n", done.stderr)  # fmt: skip
    assert said is not None and said[2] == str(node), done.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert {s["name"]: s["contacts"] for s in segments}["S"] == 1  # the import is there


# --- a segment made for an import of nothing -------------------------------------------------


async def test_a_segment_created_for_an_import_of_nothing_is_not_left(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A header-only file with --create-segment: "Nothing was imported", yet `segments`
    listed the new segment, empty, and the audit log said it was created and the import
    cancelled. It is removed again, and the audit log says that too."""
    header_only = tmp_path / "headeronly.csv"
    header_only.write_text("email,first_name\n")
    nothing = run(db_env, "import", str(header_only), "--segment", "BrandNew",
                  "--create-segment")  # fmt: skip
    assert nothing.returncode == 1, nothing.stderr
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert [s["name"] for s in segments] == ["All Customers"], segments
    said = run(db_env, "audit").stdout.splitlines()
    assert [line.split("  ")[-1] for line in said][:2] == [
        "deleted the segment BrandNew (created for an import that imported nothing, removed "
        "again with it)",
        f"cancelled import #{_number(said[1])} (nothing valid to import)",
    ], said
    assert any(line.endswith("created the segment BrandNew") for line in said), said

    # one that was there before stays, though nothing was imported into it
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nbad@@x\n")
    assert run(db_env, "import", str(bad), "--segment", "Old", "--create-segment").returncode == 1
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE)
    assert run(db_env, "import", str(people), "--segment", "Old",
               "--create-segment").returncode == 0  # fmt: skip
    assert run(db_env, "import", str(bad), "--segment", "Old",
               "--create-segment").returncode == 1  # fmt: skip
    segments = json.loads(run(db_env, "segments", "--json").stdout)
    assert {s["name"]: s["contacts"] for s in segments} == {"All Customers": 1, "Old": 1}
    async with db.begin() as conn:  # the name is free again: a segment made later took it
        kinds = (await conn.execute(text(
            "SELECT kind, COUNT(*) FROM segment WHERE name IN ('BrandNew', 'Old') "
            "GROUP BY kind ORDER BY kind"))).all()  # fmt: skip
    assert [tuple(row) for row in kinds] == [("deleted", 2), ("static", 1)], kinds


def _number(line: str) -> str:
    found = re.search(r"import #(\d+)", line)
    assert found is not None, line
    return found[1]


# --- files named as typed; notes one line each -------------------------------------------------


def test_errors_name_files_as_typed_and_one_file_in_the_singular(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """"noemail.csv: No email column found" dropped the path typed, where "no such file"
    kept it; a header-only file's error named no file and said "the files have" of one."""
    folder = tmp_path / "files"
    folder.mkdir()
    no_email = folder / "noemail.csv"
    no_email.write_text("name,phone\nAna,1\n")
    refused = run(db_env, "import", str(no_email), "--segment", "S", "--create-segment")
    assert refused.stderr.startswith(f"referral-bot: {no_email}: No email column found."), \
        refused.stderr  # fmt: skip
    empty, other = folder / "a.csv", folder / "b.csv"
    empty.write_text("email\n")
    other.write_text("email,name\n")
    one = run(db_env, "import", str(empty), "--segment", "S", "--create-segment")
    assert one.stderr == (f"referral-bot: Nothing to import: {empty} has a header but no rows. "
                          "Nothing was imported. The segment 'S', created for this import, was "
                          "removed again.\n")  # fmt: skip
    two = run(db_env, "import", str(empty), str(other), "--segment", "S", "--create-segment")
    assert two.stderr == (f"referral-bot: Nothing to import: {empty} and {other} have a header "
                          "but no rows. Nothing was imported. The segment 'S', created for this "
                          "import, was removed again.\n")  # fmt: skip


def test_a_background_import_names_a_file_as_typed_too(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    no_email = tmp_path / "noemail.csv"
    no_email.write_text("name,phone\nAna,1\n")
    refused = run(db_env, "import", str(no_email), "--segment", "S", "--create-segment",
                  "--background")  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"referral-bot: {no_email}: No email column found."), \
        refused.stderr  # fmt: skip


def test_a_zips_note_is_on_the_zip_and_every_note_line_names_its_file(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """"Note on export.zip › subscribed_members_export.csv: Not read from export.zip …", and
    the next line, "Recognised as Mailchimp's subscribed members export.", named no file."""
    archive = tmp_path / "export.zip"
    archive.write_bytes(mailchimp_zip())
    shown = run(db_env, "import", str(archive), "--segment", "Z", "--create-segment",
                "--dry-run")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    notes = shown.stdout.splitlines()[6:]
    assert notes[0] == f"Note on {archive}: Only its CSV files were read; not read: “readme.txt”."
    assert notes[1] == (f"Note on {archive} › subscribed_members_export_1a2b3c.csv: Recognised "
                        "as Mailchimp's subscribed members export.")  # fmt: skip
    assert all(line.startswith(f"Note on {archive}") for line in notes), notes
    told = json.loads(run(db_env, "import", str(archive), "--segment", "Z", "--create-segment",
                          "--dry-run", "--json").stdout)["notes"]  # fmt: skip
    assert told[0] == {"file": str(archive),
                       "note": "Only its CSV files were read; not read: “readme.txt”."}


def test_a_workbooks_notes_are_a_line_each_naming_the_file(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The sentence on formulas without results followed the sheets' note on a line of its
    own, with no "Note on" before it."""
    book = tmp_path / "customers.xlsx"
    book.write_bytes(workbook(("Customers", [["Email", "Greeting"],
                                             ["ana@example.com", '=UPPER("hi")']]),
                              ("Other", [["Notes"], ["call back"]])))  # fmt: skip
    shown = run(db_env, "import", str(book), "--segment", "X", "--create-segment")
    assert shown.returncode == 0, shown.stderr
    notes = [line for line in shown.stdout.splitlines() if not line.startswith(" ")][1:]
    assert len(notes) == 2, shown.stdout
    assert notes[0].startswith(f"Note on {book}: Only the sheet “Customers” was read"), notes
    assert notes[1].startswith(f"Note on {book}: 1 cell is a formula saved without a result"), \
        notes  # fmt: skip


# --- help and hints ------------------------------------------------------------------------------


def test_the_map_hint_comes_only_when_email_wasnt_mapped(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`--map email=phone --map first_name=phone` ended "Name the email column with --map
    email=…", though it had."""
    f = tmp_path / "ph.csv"
    f.write_text("phone,x\na@example.com,A\n")
    both = run(db_env, "import", str(f), "--segment", "S", "--create-segment", "--map",
               "email=phone", "--map", "first_name=phone")  # fmt: skip
    assert both.returncode == 1 and "is chosen for both Email and First name" in both.stderr
    assert "Name the email column" not in both.stderr, both.stderr
    unmapped = run(db_env, "import", str(f), "--segment", "S", "--create-segment")
    assert "Name the email column with --map email=" in unmapped.stderr, unmapped.stderr


def test_update_existing_says_it_can_resubscribe() -> None:
    """Its help said names and locale only: consent too, which re-subscribes people."""
    shown = " ".join(run({}, "import", "--help").stdout.split())
    assert "names, locale and consent (a yes re-subscribes one, never one who unsubscribed " \
           "through a link or whom a lead unsubscribed)" in shown, shown  # fmt: skip


# --- jobs --------------------------------------------------------------------------------------


def test_jobs_columns_line_up_and_a_send_names_its_campaign(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The kind's column was 8 wide: send_invites, slack_report and undo_import pushed the
    rest of their line out of line; a send run didn't say whose invites it sends."""
    people = tmp_path / "people.csv"
    people.write_text("email,first_name\njean@example.com,Jean\n")
    assert run(db_env, "import", str(people), "--segment", "VIP",
               "--create-segment").returncode == 0  # fmt: skip
    env = {**db_env, "SECRET_KEY": "s" * 32, "PUBLIC_URL": "https://r.example"}
    for args in (("campaign", "create", "Spring", "--store-url", "https://shop.example",
                  "--live"), ("campaign", "target", "Spring", "--segment", "VIP")):  # fmt: skip
        done = run(env, *args)
        assert done.returncode == 0, done.stderr
    listed = run(db_env, "jobs")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    kinds = {line.split()[1] for line in lines}
    assert {"import", "send_invites"} <= kinds, lines
    assert len({line.index("attempts ") for line in lines}) == 1, lines  # one column
    for field in range(1, 3):  # the kind and the state start where the others' do
        assert len({line.index(f" {line.split()[field]} ") for line in lines}) == 1, lines
    (send,) = [line for line in lines if line.split()[1] == "send_invites"]
    assert re.search(r"attempts \d+/\d+  campaign 'Spring'", send), send


# --- Ctrl-C of a shell import ------------------------------------------------------------------


async def test_ctrl_c_of_an_import_says_how_far_it_got_and_what_to_do_in_words(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """It said `job 44 (import, team local, {"batch_id": 32}) stopped part way: …`."""
    # chunks of 100: with 500 the rest was applied ~1 s after 3,000 rows were in, and on a
    # loaded machine the signal came after the import had ended
    env = env_for(db_env, IMPORT_CHUNK_ROWS="100", JOB_LEASE_SECONDS="600")
    path = write_csv(tmp_path / "big.csv", 150_000)
    proc = subprocess.Popen([*CLI, "import", str(path), "--segment", "Big", "--create-segment"],
                            env=environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:

        async def applying() -> bool:
            async with db.begin() as conn:
                count = (await conn.execute(text("SELECT COUNT(*) FROM contact"))).scalar_one()
            return int(count) >= 300

        await wait_for(applying, 120, "the shell's import to apply some chunks")
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    async with db.begin() as conn:
        job, batch = (await conn.execute(text(
            "SELECT j.id, b.id FROM job j, import_batch b WHERE j.kind = 'import'"))).one()
        added = (await conn.execute(text("SELECT COUNT(*) FROM contact"))).scalar_one()
    lines = err.splitlines()
    assert lines[-1] == "referral-bot: interrupted", err
    said = re.fullmatch(
        rf"Import #{batch} stopped part way \(([\d,]+) of 150,000 rows applied\): the next "
        r"worker to run finishes it \(`referral-bot worker`, or `referral-bot serve`'s\), or "
        rf"`referral-bot jobs cancel {job}` stops it where it is; either way, `referral-bot "
        rf"undo {batch}` then takes out what it added\.", lines[-2])  # fmt: skip
    assert said is not None, err
    applied = int(said[1].replace(",", ""))
    assert 0 < applied <= added <= applied + 100, (applied, added)  # a chunk may be unsaid
    assert "team" not in err and "batch_id" not in err, err


# --- serve's start --------------------------------------------------------------------------------


def test_serve_says_each_start_line_once(db_env: dict[str, str], tmp_path: Path) -> None:
    """How invites are sent was said by serve and again by its worker child, which added
    "(Ctrl-C to stop)" of itself; Slack out of reach was an INFO line of slack_sdk's retry
    and then the one warning line the README promises."""
    said = _serve_start(db_env, tmp_path)
    err = "".join(said)
    assert len([line for line in said if "invites are written as .eml files" in line]) == 1, err
    assert "Ctrl-C to stop" not in err, err
    slack = [line for line in said if "auth.test" in line or "slack_sdk" in line]
    assert len(slack) == 1 and " WARNING " in slack[0], err


def test_serve_warns_of_plain_http_links_once(db_env: dict[str, str], tmp_path: Path) -> None:
    """Each worker child warned that PUBLIC_URL is http://, and serve not at all."""
    said = _serve_start(db_env, tmp_path, SMTP_URL="smtp://127.0.0.1:1025",
                        PUBLIC_URL="http://shop.example")  # fmt: skip
    warned = [line for line in said if "PUBLIC_URL starts with http://" in line]
    assert len(warned) == 1 and " WARNING " in warned[0], "".join(said)


def _serve_start(db_env: dict[str, str], tmp_path: Path, **extra: str) -> list[str]:
    """The lines `serve` says on stderr until every worker child it starts is waiting for
    jobs (then it is stopped), with Slack's Web API out of reach."""
    port, closed = closed_port(), closed_port()
    env = {**db_env, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret",
           "SECRET_KEY": "k" * 32, "SLACK_API_URL": f"http://127.0.0.1:{closed}/api/",
           "HOST": "127.0.0.1", "PORT": str(port), "RUN_WORKER": "true",
           "WORKER_PROCESSES": "1", "OUTBOX_DIR": str(tmp_path / "outbox")}  # fmt: skip
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "SLACK_APP_TOKEN",
                 "SMTP_URL", "PUBLIC_URL"):  # fmt: skip
        env[name] = ""
    env.update(extra)
    children = int(env["WORKER_PROCESSES"])
    with lent_cpu_in_thread():  # its worker child is idle-class: a loaded machine starves it
        return _started(env, children)


def _started(env: dict[str, str], children: int) -> list[str]:
    """`_serve_start`'s stderr lines, serve started with `env`."""
    server = subprocess.Popen([*CLI, "serve"], env=environment(env), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert server.stderr is not None
    pump = threading.Thread(target=lambda: [lines.put(line) for line in server.stderr],
                            daemon=True)  # type: ignore[union-attr]
    pump.start()
    said: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len([line for line in said if "waiting for jobs" in line]) < children:
            assert time.monotonic() < deadline and server.poll() is None, "".join(said)
            with contextlib.suppress(queue.Empty):
                said.append(lines.get(timeout=0.5))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        pump.join(10)
    while not lines.empty():
        said.append(lines.get())
    return said
