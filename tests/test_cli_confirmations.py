"""The shell's two [y/N] questions, asked one way (bot.cli_common.ask_first).

`segments delete` of a segment in use and `campaign live`/`target` that would enroll more
than 1,000 contacts into a campaign that emails them ask first on a terminal, and without one
refuse, saying to add --yes. Each asked by hand, both crashed with a traceback
("'NoneType' object has no attribute 'isatty'") when run with stdin closed, as a cron job or
a service manager may start them, instead of refusing. The count behind the campaign question
leaves out who enrolling leaves out, by the same SQL (enroll.in_excluded_segment).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.shell import CLI, TIMEOUT, environment, run

NOT_ASKED = "there is no terminal to ask on"


def _ok(env: dict[str, str], *args: str) -> str:
    done = run(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _csv(tmp_path: Path, name: str, emails: list[str]) -> str:
    path = tmp_path / f"{name}.csv"
    path.write_text("email\n" + "".join(f"{e}\n" for e in emails), encoding="utf-8")
    return str(path)


def _vip_in_spring(env: dict[str, str], tmp_path: Path) -> None:
    """VIP holds two contacts; Spring (a draft with its invite email on) targets it."""
    _ok(env, "import", _csv(tmp_path, "vip", ["ana@example.com", "bo@example.com"]),
        "--segment", "VIP", "--create-segment")  # fmt: skip
    _ok(env, "campaign", "create", "Spring", "--store-url", "https://shop.example", "--sender",
        "Shop <hello@shop.example>")  # fmt: skip
    _ok(env, "campaign", "target", "Spring", "--segment", "VIP")


def _big(env: dict[str, str], tmp_path: Path) -> None:
    """Big holds 1,003 contacts, Staff two of them."""
    people = [f"p{i}@example.com" for i in range(1003)]
    _ok(env, "import", _csv(tmp_path, "big", people), "--segment", "Big", "--create-segment")
    _ok(env, "import", _csv(tmp_path, "staff", people[:2]), "--segment", "Staff",
        "--create-segment")  # fmt: skip


def _stdin_closed(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`referral-bot ARGS` with its stdin closed (`<&-`): Python's sys.stdin is None then."""
    return subprocess.run(["sh", "-c", 'exec "$@" <&-', "sh", *CLI, *args],
                          env=environment(env), capture_output=True, text=True,
                          timeout=TIMEOUT)  # fmt: skip


def test_with_stdin_closed_each_question_refuses_saying_to_add_yes(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    _vip_in_spring(db_env, tmp_path)
    _big(db_env, tmp_path)
    _ok(db_env, "campaign", "target", "Spring", "--segment", "Big")  # a draft: nobody yet

    deleting = _stdin_closed(db_env, "segments", "delete", "VIP")
    assert (deleting.returncode, deleting.stdout) == (1, ""), deleting
    assert deleting.stderr == (
        "referral-bot: Nothing was deleted: 'VIP' holds 2 contacts, and Spring targets it. "
        f"Add --yes to delete it without being asked ({NOT_ASKED}).\n"), deleting.stderr
    going_live = _stdin_closed(db_env, "campaign", "live", "Spring")
    assert (going_live.returncode, going_live.stdout) == (1, ""), going_live
    assert going_live.stderr == (
        "referral-bot: Nothing changed: going live would enroll 1,005 contacts in 'Spring' at "
        "once, and a worker would email an invite to the 1,005 of them who are subscribed. "
        f"Add --yes to do it without being asked ({NOT_ASKED}).\n"), going_live.stderr

    listed = json.loads(_ok(db_env, "campaign", "list", "--json"))
    assert [(c["name"], c["state"], c["advocates"]) for c in listed] == [("Spring", "draft", 0)]
    assert "VIP" in _ok(db_env, "segments")


@pytest.mark.parametrize("question", ["segments delete", "campaign live"])
def test_end_of_input_at_the_question_is_a_no(
    db_env: dict[str, str], tmp_path: Path, question: str
) -> None:
    """Ctrl-D at "[y/N]" answers nothing: nothing changes, as after n."""
    _vip_in_spring(db_env, tmp_path)
    if question == "campaign live":
        _big(db_env, tmp_path)
        _ok(db_env, "campaign", "target", "Spring", "--segment", "Big")
    args = ["segments", "delete", "VIP"] if question == "segments delete" else [
        "campaign", "live", "Spring"]  # fmt: skip
    terminal, keyboard = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, *args], env=environment(db_env), stdin=keyboard,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)  # fmt: skip
        os.write(terminal, b"\x04")  # the terminal's end of input, at the start of a line
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(terminal)
        os.close(keyboard)
    assert (proc.returncode, out) == (1, ""), err
    asked, refused = (("Delete segment 'VIP'? [y/N] ",
                       "referral-bot: Nothing was deleted: 'VIP' is kept.\n")
                      if question == "segments delete" else
                      ("Put 'Spring' live? [y/N] ",
                       "referral-bot: Nothing changed: 'Spring' stays a draft.\n"))  # fmt: skip
    assert asked in err and err.endswith(refused), err


def test_the_count_asked_about_leaves_out_whom_enrolling_leaves_out(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """Staff's contacts are excluded, so they aren't counted; a segment the campaign excluded
    counts in full when it is the one being targeted (targeting makes it a target). Each
    figure is what the enrollment then enrolls."""
    _big(db_env, tmp_path)
    for name in ("Spring", "Summer"):
        _ok(db_env, "campaign", "create", name, "--store-url", "https://shop.example")
        _ok(db_env, "campaign", "exclude", name, "--segment", "Staff")
    _ok(db_env, "campaign", "target", "Spring", "--segment", "Big")
    asked = run(db_env, "campaign", "live", "Spring")
    assert asked.returncode == 1 and asked.stderr.startswith(
        "referral-bot: Nothing changed: going live would enroll 1,001 contacts in 'Spring' at "
        "once"), asked.stderr  # fmt: skip
    went = json.loads(_ok(db_env, "campaign", "live", "Spring", "--yes", "--json"))
    assert (went["enrolled"], went["excluded"]) == (1001, 2)

    _ok(db_env, "campaign", "live", "Summer")  # no target yet: nobody to ask about
    _ok(db_env, "campaign", "exclude", "Summer", "--segment", "Big")
    asked = run(db_env, "campaign", "target", "Summer", "--segment", "Big")
    assert asked.returncode == 1 and asked.stderr.startswith(
        "referral-bot: Nothing changed: targeting 'Big' would enroll 1,001 contacts in "
        "'Summer' at once"), asked.stderr  # fmt: skip
    targeted = json.loads(_ok(db_env, "campaign", "target", "Summer", "--segment", "Big",
                              "--yes", "--json"))  # fmt: skip
    assert (targeted["enrolled"], targeted["excluded"]) == (1001, 2)


def test_the_question_on_a_terminal_shows_a_campaign_name_escaped(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """`segments delete` asked on a terminal (the one place stderr surely reaches one): its
    lines of what each campaign would lose named the campaign raw, so an escape character in
    the name drove the terminal; only the refusal without a terminal was escaped."""
    _ok(db_env, "import", _csv(tmp_path, "vip", ["ana@example.com"]), "--segment", "VIP",
        "--create-segment")  # fmt: skip
    name = "Spr\x1b[2Jing"  # would clear the screen
    _ok(db_env, "campaign", "create", name, "--store-url", "https://shop.example.com")
    _ok(db_env, "campaign", "target", name, "--segment", "VIP")
    terminal, keyboard = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, "segments", "delete", "VIP"], env=environment(db_env),
                                stdin=keyboard, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=tmp_path)  # fmt: skip
        os.write(terminal, b"\x04")
        _out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(terminal)
        os.close(keyboard)
    assert "Delete segment 'VIP'? [y/N] " in err, err
    assert "Spr\\x1b[2Jing" in err and "\x1b" not in err, err
