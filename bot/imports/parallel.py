"""Parse a big CSV in a child process while this one writes what it parsed.

Parsing and classifying are pure Python (about half of an import's CPU); inserting is mostly
SQLite's C code. Two threads would fight over the GIL, so a big file is parsed in a spawned
process that streams chunks of classified rows through a pipe: on two cores the parse and the
insert overlap. Small files and streams without a path are parsed in-process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import BinaryIO

from bot.imports.reading import CsvFileError, CsvReader
from bot.imports.rows import Classifier, Staged, Tally

PARALLEL_MIN_BYTES = 4 * 1024 * 1024
CHUNK = 10_000


def file_path(stream: BinaryIO) -> Path | None:
    """The path of a big enough regular file behind `stream`, worth a child process."""
    name = getattr(stream, "name", None)
    if not isinstance(name, str):
        return None
    path = Path(name)
    try:
        return path if path.is_file() and path.stat().st_size >= PARALLEL_MIN_BYTES else None
    except OSError:
        return None


def _child(path: str, keys: list[str], out: Connection) -> None:
    try:
        with open(path, "rb") as stream, CsvReader(stream) as reader:
            classifier = Classifier(seen={hash(k) for k in keys})  # hashes differ per process
            rows = classifier.records(reader.records(), reader.columns)
            while chunk := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
                out.send(chunk)
            out.send(("done", asdict(classifier.tally)))
    except CsvFileError as exc:
        out.send(("error", str(exc)))
    except Exception as exc:  # report, don't die silently
        out.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()


class ParallelRows:
    """Iterates the classified rows of `path`; `tally` is filled in once they are all read."""

    def __init__(self, path: Path, batch_keys: list[str]) -> None:
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_child, args=(str(path), batch_keys, send),
                                        daemon=True)  # fmt: skip
        self._process.start()
        send.close()
        self.tally = Tally()

    def __iter__(self) -> Iterator[Staged]:
        try:
            while True:
                message = self._receive.recv()
                if isinstance(message, list):
                    yield from message
                    continue
                kind, detail = message
                if kind == "done":
                    self.tally = Tally(**detail)
                    return
                if kind == "error":
                    raise CsvFileError(detail)
                raise RuntimeError(f"CSV parser process failed: {detail}")
        finally:
            self.close()

    def close(self) -> None:
        self._receive.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
