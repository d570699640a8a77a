"""Where an audience read spills its members: on disk, never in memory, and gone afterwards."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import temp_files
from bot.mailchimp import api
from tests.fakes.mailchimp import FakeMailchimp

KEY = "0123456789abcdef0123456789abcdef-us21"
SHM = "/dev/shm"  # a tmpfs on Linux: what /tmp is on Fedora, Arch and Debian 13


@pytest.fixture
async def mc() -> AsyncIterator[FakeMailchimp]:
    async with FakeMailchimp() as fake:
        fake.add_account(KEY).add_list("big", "Big").add_members(2_500)
        yield fake


def _system_temp_dir(monkeypatch: pytest.MonkeyPatch, directory: str) -> None:
    """A machine whose temp dir is `directory`, with no TMPDIR set (tempfile's own pick,
    as it caches it: on Fedora it picks /tmp, a tmpfs)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", directory)


def _open_in(directory: str | Path) -> list[str]:
    """The files this process has open in `directory` (the spill file has no name there:
    the kernel shows it as `#inode (deleted)` or `name (deleted)`)."""
    inside = os.path.realpath(directory) + "/"
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed since it was listed (the listing's own descriptor)
        if target.startswith(inside):
            found.append(target)
    return found


def _fs_type(path: str | Path) -> str:
    """The filesystem `path` is on, as coreutils' `stat -f` names it ("": not known)."""
    try:
        found = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                               text=True, check=False)  # fmt: skip
    except OSError:
        return ""
    return found.stdout.strip()


async def test_a_temp_dir_in_memory_is_passed_over_for_one_on_disk(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The spill file went to the temp dir, a tmpfs on many systems: the members it was made
    to keep out of memory were in memory again, the file's pages counting as RAM."""
    if _fs_type(SHM) != "tmpfs" or _fs_type(tmp_path) in ("", "tmpfs", "ramfs"):
        pytest.skip(f"needs a tmpfs at {SHM} and pytest's temporary directory on disk")
    _system_temp_dir(monkeypatch, SHM)
    # /var/tmp here: a directory on disk of this test's own (raising=False: the proof run
    # against the code before, which had no ON_DISK, fails on where the file is)
    monkeypatch.setattr(temp_files, "ON_DISK", str(tmp_path), raising=False)
    in_memory_before = set(_open_in(SHM))
    with await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big") as found:
        assert len(found) == 2_500
        assert set(_open_in(SHM)) == in_memory_before
        assert len(_open_in(tmp_path)) == 1
    assert _open_in(tmp_path) == [] and os.listdir(tmp_path) == []


async def test_a_temp_dir_named_in_tmpdir_is_used_as_it_is(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TMPDIR is the operator's word on where temporary files go, in memory or not."""
    chosen = tmp_path / "scratch"
    chosen.mkdir()
    monkeypatch.setenv("TMPDIR", str(chosen))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again
    with await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big") as found:
        assert len(found) == 2_500 and len(_open_in(chosen)) == 1
    assert _open_in(chosen) == [] and os.listdir(chosen) == []


async def test_a_read_that_fails_leaves_no_spill_file_behind(
    mc: FakeMailchimp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Mailchimp refusing the first page, once the store is open."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(api, "RETRY_DELAY", 0.01)
    mc.fail_next("/3.0/lists/big/members", 400, {"title": "Invalid Resource"}, times=1)
    with pytest.raises(api.Refused):
        await api.members(api.Credentials(mc.base_url, "api_key", KEY), "big")
    assert _open_in(tmp_path) == [] and os.listdir(tmp_path) == []


@pytest.mark.parametrize(("var_tmp_fs", "chosen"), [("ext4", "var tmp"), ("tmpfs", "tmp")])
def test_the_spill_directory_follows_the_mount_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, var_tmp_fs: str, chosen: str
) -> None:
    """As /proc/mounts writes it: a space in a mount point is \\040, a later mount at a
    point hides an earlier one, and the longest mount point holding a directory is its
    filesystem. Both in memory: the temp dir, as before (there is no better)."""
    tmp, var_tmp = tmp_path / "tmp", tmp_path / "var tmp"
    tmp.mkdir()
    var_tmp.mkdir()
    table = tmp_path / "mounts"
    table.write_text(
        "/dev/vda / ext4 rw,relatime 0 0\n"
        f"tmpfs {tmp} tmpfs rw 0 0\n"
        f"/dev/vdb {str(var_tmp).replace(' ', chr(92) + '040')} tmpfs rw 0 0\n"
        f"/dev/vdb {str(var_tmp).replace(' ', chr(92) + '040')} {var_tmp_fs} rw 0 0\n"
    )
    _system_temp_dir(monkeypatch, str(tmp))
    monkeypatch.setattr(temp_files, "MOUNTS", str(table))
    monkeypatch.setattr(temp_files, "ON_DISK", str(var_tmp))
    assert temp_files.spill_dir() == str(tmp_path / chosen)
    monkeypatch.setenv("TMPDIR", str(tmp))  # named: used even in memory
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert temp_files.spill_dir() == str(tmp)
