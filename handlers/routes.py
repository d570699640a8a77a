"""One bolt listener per kind of payload, dispatching by id through a dict.

Why: bolt tries its listeners in order, and trying one costs a full keyword-argument build
(every payload accessor, every context utility) before its matcher can say no. With ~60
listeners registered one by one, a click on a late one paid for dozens of failed matches
before its ack, and every request paid for a middleware that only put `deps` into the
context. Here the listener modules register into `Routes`, which gives bolt one listener
for all actions, one for all modal submissions and one for all suggestion menus (each
matching exactly the ids registered, so anything else is still unhandled, as before), and
puts `deps` into the context itself.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers.context import Deps

Listener = Callable[..., Awaitable[Any]]
Constraint = str | re.Pattern[str]
# What a listener may ask for by name, as bolt would inject it.
KWARGS = ("ack", "body", "client", "context", "command", "event", "view")


class Table:
    """Listeners of one kind by exact id, then by pattern (in registration order)."""

    def __init__(self) -> None:
        self.exact: dict[str, tuple[Listener, tuple[str, ...]]] = {}
        self.patterns: list[tuple[re.Pattern[str], Listener, tuple[str, ...]]] = []

    def add(self, constraint: Constraint, listener: Listener) -> None:
        entry = (listener, wanted(listener))
        if isinstance(constraint, str):
            self.exact.setdefault(str(constraint), entry)  # the first registered wins, as in bolt
        else:
            self.patterns.append((constraint, *entry))

    def find(self, key: str) -> tuple[Listener, tuple[str, ...]] | None:
        found = self.exact.get(key)
        if found is not None:
            return found
        return next(((fn, names) for p, fn, names in self.patterns if p.search(key)), None)

    def constraint(self) -> re.Pattern[str]:
        """One pattern matching exactly the ids (and patterns) registered: bolt's only check."""
        exact = "|".join(re.escape(key) for key in self.exact)
        parts = [f"^(?:{exact})$"] if exact else []
        parts += [f"(?:{p.pattern})" for p, _, _ in self.patterns]
        return re.compile("|".join(parts) or r"(?!)")

    def __bool__(self) -> bool:
        return bool(self.exact or self.patterns)


def wanted(listener: Listener) -> tuple[str, ...]:
    names = tuple(inspect.signature(listener).parameters)
    unknown = [n for n in names if n not in KWARGS]
    if unknown:
        raise TypeError(f"{listener.__qualname__} asks for {unknown}; Routes passes {KWARGS}")
    return names


class Routes:
    """The registration calls the listener modules use (`action`, `view`, `options`,
    `command`, `event`), recorded here and installed into bolt as a few dispatchers."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.actions = Table()
        self.views = Table()
        self.suggestions = Table()
        self.direct: list[tuple[str, str, Listener]] = []  # commands and events, as they are

    def action(self, constraint: Constraint) -> Callable[[Listener], Listener]:
        return self._into(self.actions, constraint)

    def view(self, constraint: Constraint) -> Callable[[Listener], Listener]:
        return self._into(self.views, constraint)

    def options(self, constraint: Constraint) -> Callable[[Listener], Listener]:
        return self._into(self.suggestions, constraint)

    def command(self, name: str) -> Callable[[Listener], Listener]:
        return self._direct("command", name)

    def event(self, name: str) -> Callable[[Listener], Listener]:
        return self._direct("event", name)

    def _into(self, table: Table, constraint: Constraint) -> Callable[[Listener], Listener]:
        def add(listener: Listener) -> Listener:
            table.add(constraint, listener)
            return listener

        return add

    def _direct(self, kind: str, name: str) -> Callable[[Listener], Listener]:
        def add(listener: Listener) -> Listener:
            wanted(listener)
            self.direct.append((kind, name, listener))
            return listener

        return add

    def install(self, app: AsyncApp) -> None:
        """Bolt tries listeners in this order: commands and clicks (what people do most)
        first, then modals and menus, then events."""
        for kind, name, listener in self.direct:
            if kind == "command":
                app.command(name)(self._single(listener))
        if self.actions:
            app.action(self.actions.constraint())(self._dispatcher(self.actions, action_key))
        if self.views:
            app.view(self.views.constraint())(self._dispatcher(self.views, view_key))
        if self.suggestions:
            app.options(self.suggestions.constraint())(
                self._dispatcher(self.suggestions, suggestion_key))
        for kind, name, listener in self.direct:
            if kind == "event":
                app.event(name)(self._single(listener))

    async def _call(self, listener: Listener, names: tuple[str, ...],
                    given: dict[str, Any]) -> Any:  # fmt: skip
        """`listener` with the arguments it asks for, `deps` in its context."""
        given["context"]["deps"] = self.deps
        return await listener(**{n: given.get(n) for n in names})

    def _single(self, listener: Listener) -> Listener:
        names = wanted(listener)

        async def run(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                      context: dict[str, Any], command: Any, event: Any,
                      view: Any) -> Any:  # fmt: skip
            return await self._call(listener, names, {
                "ack": ack, "body": body, "client": client, "context": context,
                "command": command, "event": event, "view": view})  # fmt: skip

        run.__name__ = run.__qualname__ = getattr(listener, "__name__", "listener")
        return run

    def _dispatcher(self, table: Table, key: Callable[[dict[str, Any]], str]) -> Listener:
        async def dispatch(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                           context: dict[str, Any], view: Any) -> Any:  # fmt: skip
            found = table.find(key(body))
            if found is None:  # bolt matched our pattern, so this can't happen
                raise LookupError(f"no listener for {key(body)!r}")
            listener, names = found
            return await self._call(listener, names, {
                "ack": ack, "body": body, "client": client, "context": context,
                "view": view})  # fmt: skip

        return dispatch


def action_key(body: dict[str, Any]) -> str:
    """What bolt's action matcher compares: a block's action_id, else the callback_id."""
    if body.get("type") == "block_actions":
        return str(((body.get("actions") or [{}])[0]).get("action_id") or "")
    return str(body.get("callback_id") or "")


def view_key(body: dict[str, Any]) -> str:
    return str((body.get("view") or {}).get("callback_id") or "")


def suggestion_key(body: dict[str, Any]) -> str:
    return str(body.get("action_id") or body.get("callback_id") or "")
