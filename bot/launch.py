"""The `referral-bot` command's entry point: `bot.cli` imported with the garbage collector paused.

Importing bot.cli makes about 160,000 objects (SQLAlchemy's, pydantic's, the models'). Each
full collection the import set off walked every object made so far, and the interpreter's last
one at exit walked them all again: about 0.7 s of `referral-bot jobs`' 2.4 s, paid by every
command, by `serve`'s worker processes at each start, and hundreds of times by the tests. So
the import runs with collection paused, and once the command is over everything is frozen
(`gc.freeze`), so that the last collection has nothing to walk.

Nothing is frozen before the command runs: a long-running `serve` settles its heap itself
(bot.app.settle_heap). Frozen at the import instead, its full collections came far more often
(their threshold counts what the last one found) and its idle p99 in bench/ack_latency.py was
2.7-3.2x the bare handler's against 1.9-2.1x. `python -m bot.cli` still works, without this.
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
        if enabled:
            gc.enable()
    try:
        return command()
    finally:
        gc.freeze()  # the interpreter's last collection at exit then walks nothing


if __name__ == "__main__":
    sys.exit(main())
