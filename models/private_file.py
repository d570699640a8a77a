"""SQLite files readable and writable by their owner only.

Every customer's address and name live in the database file, and every row of each file
imported in its staging file: created under the usual umask (022), both were world-readable
(0644), so any account on the host could copy them. SQLite makes a database's `-wal` and
`-shm` files with the database's own mode, so creating each file 0600 before SQLite opens it
covers those too. A file that exists already keeps the mode its owner gave it.
"""

from __future__ import annotations

import os
from contextlib import suppress


def create_private(path: str) -> None:
    """Create the SQLite file `path` empty (SQLite reads an empty file as a new database),
    for its owner only, unless it exists; names that are no plain path are left to SQLite,
    and so is a file that can't be made (no such folder, no permission): SQLite's own error
    says so as it did."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with suppress(OSError):  # FileExistsError among them
        # a symlink's target (a path linked to a data volume): O_EXCL refuses the link
        # itself, and SQLite then made the target under the umask
        os.close(os.open(os.path.realpath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
