"""The `referral-bot` command's entry point: `bot.cli` imported with the garbage collector paused.

Importing bot.cli makes about 160,000 objects (SQLAlchemy's, pydantic's, the models'). Each
full collection the import set off walked every object made so far, and the interpreter's last
one at exit walked them all again: about 0.7 s of `referral-bot jobs`' 2.4 s, paid by every
command, by `serve`'s worker processes at each start, and hundreds of times by the tests. So
the import runs with collection paused, and what it made is then frozen (`gc.freeze`, as for a
server that forks): those objects live as long as the process anyway, and no collection walks
them again, at exit or in a long-running serve's full passes. Objects made afterwards are
collected as ever. `python -m bot.cli` still works, without this.
"""

from __future__ import annotations

import gc
import sys


def main() -> int:
    enabled = gc.isenabled()
    gc.disable()
    try:
        from bot.cli import main as command
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    return command()


if __name__ == "__main__":
    sys.exit(main())
