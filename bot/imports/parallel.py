"""Parse a big CSV in a child process while this one writes what it parsed.

Parsing and classifying are pure Python (about half of an import's CPU); inserting is mostly
the database's work. Two threads would fight over the GIL, so a big file is parsed by a child
(`python -m bot.imports.parallel PATH`, which loads only the parsing modules) that streams
chunks of classified rows (marshal data) through a pipe: on two cores parse and insert
overlap. SQLite inserts them with `executemany`; for PostgreSQL this process writes them as
COPY CSV (csv's C writer) on a worker thread and relays that to the server: the child is the
slower side, so it does only the parsing.
Small files and streams without a path are parsed in-process.
"""

from __future__ import annotations

import asyncio
import csv
import io
import marshal
import pickle
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from bot.imports.reading import Columns, CsvFileError, CsvReader, map_header
from bot.imports.rows import Classifier, Staged, Tally

# A child costs about half a second of CPU to start (an interpreter and the parsing modules):
# ten 100k-row (6 MB) imports through one worker took 45 s with children against 32 s
# without (bench/jobs.py), while a million short rows (30 MB) took 19 s without against 14 s
# with one (bench/enroll.py). From 16 MB, a quarter to half a million rows, the overlap wins.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
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


class ParallelRows:
    """Iterates the classified rows of `path`; `tally` is filled in once they are all read.

    `columns`: where the fields are, as the parent read them from the header (recognised by
    name, or mapped by hand), so the child reads exactly those; None: the child recognises
    them itself. With `copy_constants` (the columns every row shares), iterate `copy_data()`
    instead: the rows as COPY CSV, a chunk at a time."""

    def __init__(self, path: Path, batch_keys: list[str],
                 copy_constants: tuple[object, ...] | None = None,
                 columns: Columns | None = None) -> None:  # fmt: skip
        # -P: not a `bot` package in the working directory (`-m` puts it first; see
        # bot.jobs.child)
        argv = [sys.executable, "-P", "-m", "bot.imports.parallel", str(path)]
        self._process = _start_deaf_to_ctrl_c(argv)
        assert self._process.stdin is not None
        self._constants = copy_constants
        pickle.dump((batch_keys, columns), self._process.stdin)
        self._process.stdin.close()
        self.tally = Tally()
        self._late_note: str | None = None

    def late_note(self) -> str | None:
        """What the child's reader found that the review must say (CsvReader.late_note),
        once the rows are all read."""
        return self._late_note

    def _messages(self) -> Iterator[list[Staged]]:
        assert self._process.stdout is not None
        try:
            while True:
                message = _receive(self._process.stdout)
                if isinstance(message, list):
                    yield message
                    continue
                kind, detail = message
                if kind == "done":
                    counts, self._late_note = detail
                    self.tally = Tally(**counts)
                    return
                if kind == "error":
                    raise CsvFileError(detail)
                raise RuntimeError(f"the CSV parser process failed: {detail}")
        finally:
            self.close()

    def __iter__(self) -> Iterator[Staged]:
        for chunk in self._messages():
            yield from chunk

    async def copy_data(self) -> AsyncIterator[bytes]:
        """COPY CSV chunks, read from the pipe and written on a worker thread (the event loop
        stays free)."""
        assert self._constants is not None
        constants, messages = self._constants, self._messages()

        def next_data() -> bytes | None:
            chunk = next(messages, None)
            return None if chunk is None else copy_csv(constants, chunk)

        while (data := await asyncio.to_thread(next_data)) is not None:
            yield data

    def stop(self) -> None:
        """Kill the child, from any thread: whatever reads its rows meets their end (an error)
        and closes it. Staging interrupted on SQLite (Ctrl-C, a cancelled job) waited for the
        child to parse the rest of the file (the driver's thread went on reading its rows,
        and the rollback queued behind it): seconds for 28 MB, minutes for a big export."""
        if self._process.poll() is None:
            self._process.kill()

    def close(self) -> None:
        self.stop()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def _start_deaf_to_ctrl_c(argv: list[str]) -> subprocess.Popen[bytes]:
    """The parser child, started with SIGINT blocked (a blocked signal mask is inherited across
    fork and exec): Ctrl-C in a terminal signals the whole foreground process group, and one
    that came while the child was still loading its modules (half a second of CPU, more on a
    busy machine), before `_parse` could ignore it, printed the traceback of an import. The
    parent stops the child itself (`close`). Only this thread blocks it meanwhile: the
    process's Ctrl-C still reaches Python's handler through the others."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is None:  # Windows: no process groups to signal
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    before = block(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    finally:
        block(signal.SIG_SETMASK, before)


def copy_csv(constants: tuple[object, ...], rows: list[Staged]) -> bytes:
    """Rows as COPY CSV lines (csv's C writer), each followed by the `constants` columns.

    Rows are written, then the constants are put before each line end in one replace: fine as
    long as no quoted field holds a line end itself (checked by counting); else row by row.
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    text = buffer.getvalue()
    if text.count("\r\n") == len(rows):
        tail = io.StringIO()
        csv.writer(tail, lineterminator="\r\n").writerow(("", *constants))
        return text.replace("\r\n", tail.getvalue()).encode()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(row + constants for row in rows)
    return buffer.getvalue().encode()


# Each message: its length (8 bytes), then its marshal data, read whole and loaded with
# marshal.loads: marshal.load on a stream asks it for a few bytes at a time (300k rows: 2.3 s
# against 0.13 s; pickle.load took 0.16 s).
_LENGTH = struct.Struct("<Q")


def _send(out: BinaryIO, message: object) -> None:
    data = marshal.dumps(message)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)


def _receive(stream: BinaryIO) -> object:
    """The next message; RuntimeError when the child's output stops part way (it died)."""
    head = stream.read(_LENGTH.size)
    if len(head) == _LENGTH.size:
        (size,) = _LENGTH.unpack(head)
        data = stream.read(size)
        if len(data) == size:
            return marshal.loads(data)
    raise RuntimeError("the CSV parser process stopped unexpectedly")


def _parse(path: str) -> None:
    """Child side: keys of the batch and the columns come on stdin (pickled), chunks of rows
    go to stdout.

    Rows go as `marshal` data: plain tuples of str, int, bool and None, between two processes
    of the same interpreter (marshal's format is only stable within one Python version), and
    it writes them in half the time pickle takes (1M rows: ~0.5 s less for the child, which
    is the slower side)."""
    # Ctrl-C in a terminal signals the whole foreground process group, this child too: the
    # parent stops it (`close`), and a KeyboardInterrupt here only printed a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    keys, columns = pickle.load(sys.stdin.buffer)
    columns_of = map_header if columns is None else (lambda _header: columns)
    try:
        with open(path, "rb") as stream, CsvReader(stream, columns_of=columns_of) as reader:
            classifier = Classifier(seen={hash(k) for k in keys})  # hashes differ per process
            rows = classifier.records(reader.records(), reader.columns)
            while chunk := list(islice(rows, CHUNK)):
                _send(out, chunk)
            _send(out, ("done", (asdict(classifier.tally), reader.late_note())))
    except CsvFileError as exc:
        _send(out, ("error", str(exc)))
    except Exception as exc:  # report, don't die silently
        _send(out, ("crash", f"{type(exc).__name__}: {exc}"))
    out.flush()


if __name__ == "__main__":
    _parse(sys.argv[1])
