"""Where big temporary files go: on disk, never in memory.

A downloaded Slack file, a Mailchimp audience spilled page by page and a segment's export
can each take hundreds of megabytes; on a system whose /tmp is a tmpfs (Fedora, Arch,
Debian 13) a file there is held in RAM, which is what writing it out was meant to avoid.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import IO, Any

# Where spill_dir looks: filesystems whose files live in memory, the kernel's table of mounts
# (Linux; elsewhere nothing is known and the temp dir is used as it is) and the directory
# the FHS keeps for temporary files on disk.
IN_MEMORY = frozenset({"tmpfs", "ramfs"})
MOUNTS = "/proc/mounts"
ON_DISK = "/var/tmp"
TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP")  # those tempfile reads, in its order


def spill_dir() -> str:
    """The directory for a big temporary file: the temp dir, unless it is in memory.

    A directory named in TMPDIR (or TEMP, TMP) is the operator's choice and used as it is.
    Otherwise the system's temp dir (/tmp) is used unless /proc/mounts says it is a tmpfs
    (as on Fedora, Arch and Debian 13, where /tmp is in RAM): then /var/tmp, which the FHS
    keeps on disk, if it is a writable directory not in memory itself. Nothing else is
    guessed: the database's directory would not do for PostgreSQL, and may be a small
    volume. The file never has a name there (tempfile.TemporaryFile), so nothing is left
    behind, not even when the process is killed."""
    default = tempfile.gettempdir()
    if any(os.environ.get(name) for name in TEMP_VARIABLES):
        return default
    for candidate in (default, ON_DISK):
        if _writable(candidate) and _fs_type(candidate) not in IN_MEMORY:
            return candidate
    return default


def _writable(directory: str) -> bool:
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)


def _fs_type(directory: str) -> str:
    """The type of the filesystem `directory` is on ("": not known): of the longest mount
    point holding it, the last mounted of those at one point (it hides the others)."""
    try:
        with open(MOUNTS, encoding="utf-8", errors="replace") as mounts:
            table = [line.split()[1:3] for line in mounts if len(line.split()) >= 3]
    except OSError:
        return ""
    path = os.path.realpath(directory)
    found, kind = "", ""
    for escaped, fs_type in table:
        point = _unescape(escaped)
        holds = point == "/" or path == point or path.startswith(point.rstrip("/") + "/")
        if holds and len(point) >= len(found):
            found, kind = point, fs_type
    return kind


def _unescape(field: str) -> str:
    """A mount point as /proc/mounts writes it: a space is \\040, a tab \\011 (octal)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def disk_temporary_file(**kwargs: Any) -> IO[bytes]:
    """tempfile.TemporaryFile in spill_dir(): nameless, so nothing is left behind."""
    return tempfile.TemporaryFile(dir=spill_dir(), **kwargs)
