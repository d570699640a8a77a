"""A real aiosmtpd server on 127.0.0.1 for tests, with a handler that can misbehave on cue.

aiosmtpd's Controller can't take port=0, so the server is created with
`loop.create_server(...)` on an ephemeral port in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    @property
    def message_id(self) -> str:
        return str(self.parsed()["Message-ID"])


@dataclass
class Handler:
    """Records messages; refuses, defers, stalls or drops the connection when told to.

    `drop_at` maps a command (MAIL, RCPT, DATA) to the 1-based counts of that command at
    which the connection is aborted instead of answered. At DATA the message is recorded
    first: the server took it, and only the reply is lost.
    """

    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> permanent RCPT reply
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)  # next replies, then OK
    data_replies: list[str] = field(default_factory=list)  # next end-of-DATA replies, then OK
    drop_at: dict[str, set[int]] = field(default_factory=dict)
    data_delay: float = 0.0  # seconds to wait before answering the end of DATA
    rcpt_delay: float = 0.0  # seconds to wait before answering each RCPT
    seen: Counter[str] = field(default_factory=Counter)
    answered: int = 0  # messages whose end of DATA was answered 250 (after data_delay)

    def _drop(self, server: SMTP, command: str) -> bool:
        self.seen[command] += 1
        if self.seen[command] in self.drop_at.get(command, set()):
            assert server.transport is not None
            server.transport.abort()  # nothing more goes out: the reply is lost
            return True
        return False

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self._drop(server, "MAIL"):
            return "250 OK"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self._drop(server, "RCPT"):
            return "250 OK"
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        if address in self.refuse:
            return self.refuse[address]
        pending = self.rcpt_replies.get(address)
        if pending:
            return pending.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        assert isinstance(envelope.content, bytes)
        self.messages.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), envelope.content)
        )
        if self._drop(server, "DATA"):
            return "250 OK"
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        self.answered += 1
        return "250 2.0.0 queued"


@dataclass
class Server:
    """A running test server: where it listens and what it saw."""

    host: str
    port: int
    handler: Handler
    connections: int = 0
    protocols: list[SMTP] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def close_connections(self) -> None:
        """Close every open connection, as a server's idle timeout does."""
        for protocol in self.protocols:
            if protocol.transport is not None:
                protocol.transport.close()


def password_checker(login: str, password: str) -> Any:
    """An aiosmtpd authenticator accepting exactly one login and password."""

    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            login.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=True would send no reply

    return check


@contextlib.asynccontextmanager
async def smtp_server(handler: Handler | None = None, **smtp_options: Any) -> AsyncIterator[Server]:
    """Serve SMTP on an ephemeral 127.0.0.1 port for the duration of the block."""
    loop = asyncio.get_running_loop()
    server = Server("127.0.0.1", 0, handler or Handler())

    def protocol() -> SMTP:
        server.connections += 1
        smtp = SMTP(
            server.handler,
            hostname="mx.test",  # aiosmtpd would otherwise ask DNS (getfqdn) per connection
            loop=loop,
            **{"enable_SMTPUTF8": True, **smtp_options},  # False: as most relays are
        )
        server.protocols.append(smtp)
        return smtp

    listener = await loop.create_server(protocol, server.host, 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        server.close_connections()
        await listener.wait_closed()
