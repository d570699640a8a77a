"""What an exception wraps, for telling a failure in words by the error underneath it.

Clients wrap the error they met: aiosmtplib raises its own error from the OSError of the
connection, requests' ConnectionError holds urllib3's MaxRetryError in its args, whose
`reason` (a NameResolutionError, a timeout) was caused by the socket's. Asking "was this a
refused connection / a DNS failure / a timeout?" means looking through all of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what it wraps, nearest first: exceptions in its args, its `reason`,
    `__cause__` and `__context__`, each once (a cycle ends the walk)."""
    seen: set[int] = set()
    todo: deque[BaseException] = deque([error])
    while todo:
        found = todo.popleft()
        if id(found) in seen:
            continue
        seen.add(id(found))
        yield found
        todo.extend(e for e in (*found.args, getattr(found, "reason", None), found.__cause__,
                                found.__context__) if isinstance(e, BaseException))  # fmt: skip
