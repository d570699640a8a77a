"""Sending invites: over one reused SMTP connection, or into a directory of .eml files.

Every send ends in one of four outcomes, because the caller's outbox must know whether a
message may be tried again: `sent`; `refused` (5xx, permanent); `retry` (4xx, or the
connection failed before the end of DATA was written: the server cannot have accepted it);
`uncertain` (the connection failed after the end of DATA was written and before the reply:
the server may have accepted it, so resending blindly could deliver it twice). A failure
that isn't the message's (no connection, the sender refused at MAIL FROM) raises
SmtpSetupError instead: every message would fail the same way.
"""

from __future__ import annotations

import asyncio
import copy
import email.policy
import errno
import hashlib
import io
import logging
import os
import re
import socket
import ssl
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import getaddresses
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from bot.causes import causes
from bot.email.message import ascii_domain

log = logging.getLogger(__name__)
DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
DEFAULT_TIMEOUT = 60.0
# The wait for the reply to the end of DATA when SMTP_URL sets no timeout: RFC 5321
# (4.5.3.2.6) asks 10 minutes, as a server may scan the message before it answers. With the
# 60 s of the other replies, a slow content filter's message became "uncertain" (it had
# mostly been taken), and *Resend uncertain* then emailed those people twice.
END_OF_DATA_TIMEOUT = 600.0
QUIT_TIMEOUT = 5.0
T = TypeVar("T")
_CUT = object()  # what SmtpSender._until_stopped returns for work the stop cut short
# A stop (the worker's SIGTERM) while a message's end of DATA waits for its reply: the reply
# gets this long, at most, before the invite is called uncertain. A message not yet handed
# over is abandoned at once (SendAbandoned): waiting the SMTP timeout (60 s) held the stop
# past serve's 25 s for its worker children, which were killed, and an invite whose RCPT hung
# was then called uncertain, though no DATA had gone out.
HANDOVER_GRACE_SECONDS = 5.0

_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._@+-]+")
_MAX_HEADER_LINE = email.policy.SMTP.max_line_length
_BOUNDARY = re.compile(r'boundary="?([^";\s]+)"?', re.IGNORECASE)


class SendStatus(StrEnum):
    """What became of one message (see the module docstring for what each allows next)."""

    SENT = "sent"
    REFUSED = "refused"
    RETRY = "retry"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class SendResult:
    """The outcome of one send, with the server's reply when there was one."""

    status: SendStatus
    message_id: str
    code: int | None = None  # the SMTP reply code, None when no reply decided the outcome
    text: str = ""  # the server's reply text, or what went wrong locally
    stage: str = ""  # connect, mail, rcpt, data, end-of-data (SMTP); "" for the outbox dir

    @property
    def sent(self) -> bool:
        """Shorthand for the common check."""
        return self.status is SendStatus.SENT


class SmtpSetupError(RuntimeError):
    """No usable SMTP session: unreachable (on open or on reconnecting), STARTTLS required but
    not offered, TLS or login refused, the sender refused at MAIL FROM. Retrying message by
    message can't help, so this is raised, not returned: the caller stops the run.

    Its message is for the merchant (`campaign list`, `jobs`, the enrollment's report): what
    went wrong in words, and what to check. `detail` keeps the library's own account for the
    log ("Error connecting to ... [Errno 111] Connection refused" told a merchant nothing)."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class SendAbandoned(SmtpSetupError):
    """The sender was told to stop (its `stop` event) before a message was handed over: the
    connection is dropped, and nothing of the message can have been taken. The caller puts
    the message back for a later run, spending none of its attempts."""


class _Cut(Exception):
    """Raised inside a send by the stop, at a step it couldn't take back (never after the
    handover): SmtpSender._until_stopped tells it as _CUT."""


class SmtpServerBusy(SmtpSetupError):
    """The server turned the session away for now: a 4xx at its greeting, at login or at
    MAIL FROM (a provider's throttle, `451 4.7.1`), or a connection that keeps dropping. Not
    a setting to fix: the caller tries again later, as it does an invite's own 4xx.

    Set by the caller that knows (a server that takes some and then turns the bot away is no
    outage to give up on, as one that takes none is): `sent_before`, the messages its run
    sent first; `uncertain`, raised for a message left uncertain (no answer after DATA)."""

    sent_before: int = 0
    uncertain: bool = False


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server (see `parse_smtp_url`)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False  # smtps://: TLS from the first byte
    require_starttls: bool = False  # smtp://...?starttls=required: never send in clear text
    # smtp://...?starttls=off: never STARTTLS, and a password may go in clear text (a relay
    # without TLS); otherwise a login without TLS is refused
    no_starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT
    # the wait for the end of DATA's reply: `?timeout=S` sets both (a choice made for each step)
    data_timeout: float = END_OF_DATA_TIMEOUT

    @property
    def where(self) -> str:
        """The server as people name it, host:port, for what the merchant reads."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """The server as a URL without the password, for errors and logs."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://user:pass@host:port[?starttls=required&timeout=S]` or `smtps://...`.

    smtp:// upgrades with STARTTLS whenever the server offers it (`starttls=required` refuses
    to go on without it; with a user and password, a server that doesn't offer it is refused
    too, since someone on the way may have struck it from the reply: `starttls=off` for a
    relay that has no TLS sends them in clear text); smtps:// is implicit TLS. Ports default
    to 25 and 465; user and password are percent-decoded. Errors name the part that is
    wrong, never the password.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ValueError(f"SMTP URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"SMTP URL must start with smtp:// or smtps://, not {parts.scheme or '(nothing)'}://"
        )
    if "@" in f"{parts.path}?{parts.query}#{parts.fragment}":
        # a password with an unencoded / ? or # ends the host part early, and the rest of the
        # password lands in the path or query: no message may quote those
        raise ValueError("SMTP URL is malformed: a user name or password holding '/', '?' or "
                         "'#' must be percent-encoded (e.g. '/' as %2F)")  # fmt: skip
    if not parts.hostname:
        raise ValueError("SMTP URL has no host (expected smtp://user:pass@host:port)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("SMTP URL port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("SMTP URL port must be a number from 1 to 65535")
    if parts.path not in ("", "/"):
        raise ValueError(f"SMTP URL takes no path, got {parts.path!r}")
    if parts.fragment:
        raise ValueError("SMTP URL takes no #fragment")
    require_starttls, no_starttls = False, False
    timeout, data_timeout = DEFAULT_TIMEOUT, END_OF_DATA_TIMEOUT
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "starttls":
            if scheme == "smtps":
                raise ValueError("SMTP URL: starttls applies to smtp:// only (smtps:// is TLS)")
            if value not in ("required", "auto", "off"):
                raise ValueError("SMTP URL: starttls must be 'required', 'auto' or 'off', not "
                                 f"{value!r}")  # fmt: skip
            require_starttls, no_starttls = value == "required", value == "off"
        elif key == "timeout":
            try:
                timeout = float(value)
            except ValueError:
                timeout = -1.0
            if not 0 < timeout < float("inf"):
                raise ValueError(
                    f"SMTP URL: timeout must be a positive number of seconds, not {value!r}"
                )
            data_timeout = timeout
        else:
            raise ValueError(f"SMTP URL: unknown option {key!r} (known: starttls, timeout)")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpConfig(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=username or None,
        password=password,
        implicit_tls=scheme == "smtps",
        require_starttls=require_starttls,
        no_starttls=no_starttls,
        timeout=timeout,
        data_timeout=data_timeout,
    )


class MailSender(Protocol):
    """What the invite job needs: open once, send many, close."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def send(self, message: EmailMessage) -> SendResult: ...


_local_hostname: str | None = None


async def _ehlo_name() -> str:
    """This host's name for EHLO, looked up once: aiosmtplib would ask DNS on every connect."""
    global _local_hostname
    if _local_hostname is None:
        _local_hostname = await asyncio.to_thread(socket.getfqdn)
    return _local_hostname


def _raw_values(message: EmailMessage, *names: str) -> list[str]:
    """Header values as stored, without the `email` package's parser (~0.2 ms a header)."""
    wanted = {name.lower() for name in names}
    return [str(value) for name, value in message.raw_items() if name.lower() in wanted]


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Envelope sender and recipients from the headers (Sender or From; To, Cc, Bcc)."""
    senders = getaddresses(_raw_values(message, "Sender") or _raw_values(message, "From"))
    senders = [ascii_domain(address) for _, address in senders if address]
    if len(senders) != 1:
        raise ValueError("the message needs exactly one From (or Sender) address")
    recipients = [ascii_domain(address)
                  for _, address in getaddresses(_raw_values(message, "To", "Cc", "Bcc"))
                  if address]  # fmt: skip
    if not recipients:
        raise ValueError("the message has no To, Cc or Bcc address")
    return senders[0], recipients


def _prebuilt_text(message: EmailMessage) -> str | None:
    """The message as text when every header is stored raw and ASCII and every payload is an
    ASCII string (what `build_message` makes); None sends it through the generator instead.

    Same output as `BytesGenerator` for such a message (a test holds them equal), at a tenth
    of the cost: the generator re-parses Content-Type per part and writes line by line.
    """
    lines, content_type = [], ""
    for name, value in message.raw_items():
        if not isinstance(value, str) or hasattr(value, "name") or name.lower() == "bcc":
            return None  # a header object needs folding; Bcc must be dropped
        if not value.isascii():
            return None
        header = f"{name}: {value}\n"
        if any(len(line) > _MAX_HEADER_LINE for line in header.splitlines()):
            if "\n" in value or any(c.isspace() for c in value):
                return None  # the generator would refold it
            # one unbreakable token (a long List-Unsubscribe URL): the generator moves it to a
            # continuation line, and so do we
            header = f"{name}:\n {value}\n"
        lines.append(header)
        if name.lower() == "content-type":
            content_type = value
    lines.append("\n")
    payload = message.get_payload()
    if isinstance(payload, list):
        found = _BOUNDARY.search(content_type)
        if found is None or message.preamble is not None or message.epilogue is not None:
            return None
        parts = [_prebuilt_text(part) for part in payload]
        if not parts or any(part is None for part in parts):
            return None
        boundary = found.group(1)
        lines.append(f"--{boundary}\n")
        lines.append(f"\n--{boundary}\n".join(parts))  # type: ignore[arg-type]
        lines.append(f"\n--{boundary}--\n")
    elif isinstance(payload, str) and payload.isascii():
        lines.append(payload)
    else:
        return None
    return "".join(lines)


def _flatten(message: EmailMessage, *, utf8: bool, eight_bit: bool) -> bytes:
    """The message as it goes on the wire (without Bcc), with CRLF line endings."""
    text = _prebuilt_text(message)
    if text is not None:
        data = _LINE_ENDINGS.sub(b"\r\n", text.encode("ascii"))
        return data if data.endswith(b"\r\n") else data + b"\r\n"
    if message["Bcc"] is not None:
        message = copy.copy(message)
        del message["Bcc"]
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    # headers stored raw are already encoded (build_message): refolded, a link longer than a
    # line became RFC 2047 encoded words, and List-Unsubscribe no longer read as `<URL>`
    policy = policy.clone(cte_type="8bit" if eight_bit else "7bit", refold_source="none")
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=policy).flatten(message)
    data = _LINE_ENDINGS.sub(b"\r\n", buffer.getvalue())
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _by_code(message_id: str, code: int, text: str, stage: str) -> SendResult:
    """5xx is permanent; anything else that isn't success (4xx, a garbled reply) may retry."""
    status = SendStatus.REFUSED if 500 <= code < 600 else SendStatus.RETRY
    return SendResult(status, message_id, code, text, stage)


def _not_connected(config: SmtpConfig, exc: BaseException) -> SmtpSetupError:
    """No session: a server that answered 4xx (`421` too busy at its greeting, `454` at login)
    turned the bot away for now (SmtpServerBusy); no connection at all (refused, unknown host,
    no answer) is most often a wrong SMTP_URL, told after the job's quick retries. Said in
    words (`unreachable_words`), the library's text kept as the detail for the log."""
    detail = f"could not connect to {config.display}: {exc}"
    if isinstance(exc, SMTPResponseException) and 400 <= exc.code < 500:
        return SmtpServerBusy(f"the mail server at {config.where} is turning the bot away for "
                              f"now: {exc.code} {exc.message}", detail=detail)  # fmt: skip
    return SmtpSetupError(f"could not connect to the mail server at {config.where}: "
                          f"{unreachable_words(config, exc)}", detail=detail)  # fmt: skip


_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def unreachable_words(config: SmtpConfig, exc: BaseException) -> str:
    """Why no session could be had with the server, as a merchant can act on it: refused,
    no answer, no such host, TLS refused, closed at once (never an errno)."""
    chain = list(causes(exc))

    def found(*kinds: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kinds)), None)

    if (tls := found(ssl.SSLError)) is not None:
        return tls_words(config, tls)  # type: ignore[arg-type]
    if (dns := found(socket.gaierror)) is not None:
        if dns.errno == socket.EAI_AGAIN:  # type: ignore[attr-defined]
            return ("its name could not be looked up just now (DNS did not answer). Is this "
                    "machine online?")  # fmt: skip
        return f"no host named {config.host} was found. Is the host in SMTP_URL spelled right?"
    if found(ConnectionRefusedError) is not None:
        return ("it refused the connection. Is it running, and is the port in SMTP_URL "
                f"right?{_port_hint(config)}")  # fmt: skip
    if any(isinstance(e, OSError) and e.errno in _NO_ROUTE for e in chain):
        return ("this machine has no route to it. Is the host in SMTP_URL right, and is this "
                "machine online?")  # fmt: skip
    if found(TimeoutError) is not None:
        seconds = f"{config.timeout:g} second{'' if config.timeout == 1 else 's'}"
        return (f"it did not answer within {seconds}. Are the host and port "
                "in SMTP_URL right, and does a firewall let this machine reach them?"
                f"{_port_hint(config)}")  # fmt: skip
    if found(SMTPServerDisconnected, ConnectionResetError, ConnectionAbortedError) is not None:
        return ("it closed the connection before it was ready to take mail. Is the port in "
                f"SMTP_URL the one it takes mail on?{_port_hint(config)}")  # fmt: skip
    if isinstance(reply := found(SMTPResponseException), SMTPResponseException):
        return f"it refused the bot: {reply.code} {reply.message}"
    return str(exc)


def _port_hint(config: SmtpConfig) -> str:
    """The usual mix-up of scheme and port, when the URL has it."""
    if config.port == 465 and not config.implicit_tls:
        return " (Port 465 speaks TLS from the start: use smtps:// for it.)"
    if config.port in (25, 587) and config.implicit_tls:
        return (f" (Port {config.port} starts in plain text and turns on TLS with STARTTLS: "
                "use smtp:// for it.)")  # fmt: skip
    return ""


def tls_words(config: SmtpConfig, exc: ssl.SSLError) -> str:
    """Why TLS with the server failed, in words: its certificate (the name on it, who
    signed it), or a handshake that went wrong (most often smtps:// to a port that starts
    in plain text)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = (exc.verify_message or "not trusted").rstrip(".")
        return (f"its TLS certificate was not accepted ({why}). Is the host in SMTP_URL the "
                "name on the server's certificate, and is the certificate signed by an "
                "authority this machine trusts?")  # fmt: skip
    reason = getattr(exc, "reason", None) or ""  # OpenSSL's, e.g. WRONG_VERSION_NUMBER
    why = reason.replace("_", " ").lower() or "no reason given"
    hint = _port_hint(config)
    if not hint and config.implicit_tls:
        hint = (" Does that port speak TLS from the start? smtps:// is for one that does (most "
                "often 465); smtp:// is for one that turns it on with STARTTLS (587, 25).")
    return f"the TLS handshake failed ({why}).{hint}"


class SmtpSender:
    """Sends messages over ONE SMTP connection, reopened only when it has to be.

    A new connection per message costs a TCP (and TLS) handshake, EHLO and login each time;
    reusing one is what makes thousands of invites a minute possible. The transaction is sent
    in explicit steps (MAIL, RCPT, DATA, body) so a failure is known to be before or after
    the end of DATA: only a failure before it is retried, and only one at MAIL is retried
    here (transparently, on a fresh connection: that is how a server's idle timeout shows).
    """

    def __init__(self, config: SmtpConfig, *, tls_context: ssl.SSLContext | None = None,
                 stop: asyncio.Event | None = None) -> None:  # fmt: skip
        """`stop`: once set, a connection being made or a message not yet handed over is
        abandoned (SendAbandoned), and a handed-over message's reply gets at most
        HANDOVER_GRACE_SECONDS more (a worker stopping)."""
        self.config = config
        self.connections = 0  # connections opened so far (one when all goes well)
        self._tls_context = tls_context
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self._stop = stop
        self._handing_over = False  # the end of DATA is out, its reply awaited
        self._connecting: aiosmtplib.SMTP | None = None  # a session being opened

    async def __aenter__(self) -> Self:
        try:
            if await self._until_stopped(self._connect()) is _CUT:
                raise SendAbandoned("the worker stopped while connecting to the mail server")
        except (SMTPException, OSError) as exc:
            raise _not_connected(self.config, exc) from exc
        return self

    async def _until_stopped(self, work: Coroutine[Any, Any, T]) -> T | object:
        """`work`'s result, or _CUT once the stop cut it short (the connection dropped): at
        once before a handover, after HANDOVER_GRACE_SECONDS during one. One task per call,
        and only when there is a stop to watch.

        The connection is closed before the task is cancelled: aiosmtplib waits for a reply
        with `asyncio.wait_for`, which on Python 3.11 drops a cancel that comes as the reply
        arrives, and the send went on, handed the message over, and was waited for up to the
        SMTP timeout. Closed, any read fails at once; and the send itself checks the stop
        before it hands a message over (`_cut_if_stopped`), with no wait between the two."""
        if self._stop is None:
            return await work
        if self._stop.is_set():
            work.close()
            return _CUT
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and self._handing_over:  # its reply may be on its way
                await asyncio.wait((task,), timeout=HANDOVER_GRACE_SECONDS)
            if not task.done():
                self._close_all()
                task.cancel()
                await asyncio.wait((task,))  # the step's own clean-up
            if task.cancelled() or isinstance(task.exception(), _Cut):
                return _CUT
            if task.exception() is not None and self._stop.is_set():
                self._close_all()
                return _CUT  # a read the closed connection failed
            return task.result()  # its own outcome (a reply that came as the stop did)
        finally:
            stopped.cancel()
            if not task.done():  # our own cancellation: nothing may go on after it
                self._close_all()
                task.cancel()

    def _cut_if_stopped(self) -> None:
        """Raise _Cut, the connection closed, if the stop has come: checked where a send
        begins a step it couldn't take back (a new connection, the end of DATA)."""
        if self._stop is not None and self._stop.is_set():
            self._close_all()
            raise _Cut

    def _close_all(self) -> None:
        """Close the session and one still being opened."""
        self._drop()
        if self._connecting is not None:
            self._connecting.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Say QUIT (briefly) and close; never raises for a connection that is already gone."""
        async with self._lock:  # after any send in flight, never in the middle of one
            smtp, self._smtp = self._smtp, None
            if smtp is None:
                return
            try:
                # stopping: no QUIT, which a silent server held for QUIT_TIMEOUT
                if smtp.is_connected and not (self._stop is not None and self._stop.is_set()):
                    await smtp.quit(timeout=min(QUIT_TIMEOUT, self.config.timeout))
            except (SMTPException, OSError):
                pass
            finally:
                smtp.close()

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open now (the next send may still find it closed)."""
        return self._smtp is not None and self._smtp.is_connected

    async def _tls(self) -> ssl.SSLContext:
        """The client TLS context, built once: loading the system CAs takes milliseconds, and
        aiosmtplib would do it again on every reconnect."""
        if self._tls_context is None:
            self._tls_context = await asyncio.to_thread(ssl.create_default_context)
        return self._tls_context

    async def _connect(self) -> None:
        """Open, EHLO, STARTTLS (when offered or required), log in: a ready session."""
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.implicit_tls,
            start_tls=False,  # done below, so a login never goes out before TLS is up
            timeout=config.timeout,
            local_hostname=await _ehlo_name(),
            tls_context=await self._tls() if config.implicit_tls else None,
        )
        self._connecting = smtp
        try:
            await smtp.connect()  # a failed smtps:// handshake is told by _not_connected
            await smtp.ehlo()
            if not config.implicit_tls and not config.no_starttls:
                if smtp.supports_extension("starttls"):
                    try:
                        await smtp.starttls(tls_context=await self._tls())
                    except ssl.SSLError as exc:
                        raise SmtpSetupError(
                            f"the mail server at {config.where} offers STARTTLS, but "
                            f"{tls_words(config, exc)}",
                            detail=f"STARTTLS with {config.display} failed: {exc}",
                        ) from exc
                    await smtp.ehlo()  # RFC 3207: forget what was said before TLS
                elif config.require_starttls:
                    raise SmtpSetupError(
                        f"{config.display} does not offer STARTTLS, which SMTP_URL requires "
                        "(starttls=required): refusing to send in clear text"
                    )
                elif config.username:
                    raise SmtpSetupError(
                        f"{config.display} does not offer STARTTLS: refusing to send the "
                        "password in clear text (for a relay that has no TLS, add "
                        "?starttls=off to SMTP_URL)"
                    )
            if config.username:
                await self._login(smtp)
        except BaseException:
            smtp.close()
            raise
        finally:
            self._connecting = None
        self._smtp = smtp
        self.connections += 1
        self._cut_if_stopped()  # the stop came as it opened (a cancel 3.11 dropped)

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        """Log in; a permanent refusal (or no AUTH at all) is a setup error, not a retry."""
        config = self.config
        try:
            await smtp.login(config.username or "", config.password or "")
        except (SMTPServerDisconnected, SMTPTimeoutError):
            raise
        except SMTPResponseException as exc:
            if 400 <= exc.code < 500:  # e.g. 454 temporary authentication failure
                raise
            raise SmtpSetupError(
                f"{config.display} refused the login: {exc.code} {exc.message} (check the user "
                "name and password in SMTP_URL, each percent-encoded)"
            ) from exc
        except SMTPException as exc:  # no AUTH offered, or none aiosmtplib speaks
            raise SmtpSetupError(
                f"the mail server at {config.where} offers no way to log in that the bot "
                f"knows ({exc.message}): is SMTP_URL's port its submission port (587 or 465)?",
                detail=f"{config.display}: {exc.message}",
            ) from exc

    async def _ensure_connected(self) -> aiosmtplib.SMTP:
        if self._smtp is None or not self._smtp.is_connected:
            self._drop()
            await self._connect()
        assert self._smtp is not None
        return self._smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        """RSET after a refused step, so the next message starts a clean transaction."""
        if not smtp.is_connected:
            self._drop()
            return
        try:
            await smtp.rset()
        except (SMTPException, OSError):
            self._drop()

    async def send(self, message: EmailMessage) -> SendResult:
        """Send one message; the outcome says whether it may be sent again (never raises for
        a refusal of the recipient or the message; raises SmtpSetupError for a failure before
        RCPT, see the class)."""
        async with self._lock:
            handing_over = False

            async def send() -> SendResult:
                nonlocal handing_over
                try:
                    return await self._send(message)
                finally:
                    handing_over, self._handing_over = self._handing_over, False

            result = await self._until_stopped(send())
        stopping = self._stop is not None and self._stop.is_set()
        if isinstance(result, SendResult) and not (
                stopping and not handing_over and result.status is SendStatus.RETRY):
            return result  # a refusal that came as the stop did stands: it is an answer
        if not handing_over:
            raise SendAbandoned("the worker stopped before the invite was handed to the "
                                "mail server")  # fmt: skip
        return SendResult(SendStatus.UNCERTAIN, _message_id(message), None,
                          "no reply after the end of DATA before the worker stopped",
                          "end-of-data")  # fmt: skip

    async def _send(self, message: EmailMessage) -> SendResult:
        message_id = _message_id(message)
        sender, recipients = _envelope(message)
        addresses = [sender, *recipients]
        utf8 = not all(address.isascii() for address in addresses)
        encoding = "utf-8" if utf8 else "ascii"

        # MAIL FROM: nothing is accepted yet, so a connection that turns out dead here
        # (the server dropped it while idle) is replaced once, transparently.
        # A failure before RCPT is the server's, not this message's: it would fail every
        # message the same way (each after a full timeout, each spending an attempt), so it
        # is raised as SmtpSetupError and the caller stops the run; nothing was handed over.
        for attempt in (1, 2):
            self._cut_if_stopped()
            try:
                smtp = await self._ensure_connected()
            except (SMTPException, OSError) as exc:
                raise _not_connected(self.config, exc) from exc
            if utf8 and not smtp.supports_extension("smtputf8"):
                if not sender.isascii():  # every invite alike: the campaign's, not one's
                    raise SmtpSetupError(
                        f"the sender {sender} has accents before the @, which needs SMTPUTF8, "
                        f"and {self.config.display} does not offer it: edit the campaign's "
                        "sender")
                return SendResult(
                    SendStatus.REFUSED,
                    message_id,
                    None,
                    "a non-ASCII address needs SMTPUTF8, which the server does not offer",
                    "mail",
                )
            eight_bit = smtp.supports_extension("8bitmime")
            data = _flatten(message, utf8=utf8, eight_bit=eight_bit)
            options = [f"SIZE={len(data)}"] if smtp.supports_extension("size") else []
            if eight_bit:
                options.append("BODY=8BITMIME")
            if utf8:
                options.append("SMTPUTF8")
            try:
                await smtp.mail(sender, options=options, encoding=encoding)
                break
            except (SMTPServerDisconnected, SMTPTimeoutError) as exc:
                self._drop()
                if attempt == 2:
                    raise SmtpServerBusy(
                        f"the connection to the mail server at {self.config.where} keeps "
                        "dropping before it takes a message",
                        detail=f"the connection to {self.config.display} keeps dropping: {exc}",
                    ) from exc
            except SMTPResponseException as exc:  # e.g. 553 sender not owned, 451 rate limit
                await self._reset(smtp)
                if 400 <= exc.code < 500:
                    raise SmtpServerBusy(f"{self.config.display} is turning away the sender "
                                         f"{sender} for now: {exc.code} {exc.message}"
                                         ) from exc  # fmt: skip
                raise SmtpSetupError(f"{self.config.display} refused the sender {sender}: "
                                     f"{exc.code} {exc.message}") from exc  # fmt: skip

        # RCPT TO, one per recipient: an invite has one, so its refusal decides.
        refused: list[SMTPRecipientRefused] = []
        for recipient in recipients:
            try:
                await smtp.rcpt(recipient, encoding=encoding)
            except SMTPRecipientRefused as exc:
                refused.append(exc)
            except (SMTPServerDisconnected, SMTPTimeoutError) as exc:
                self._drop()
                return SendResult(
                    SendStatus.RETRY, message_id, None, f"connection lost: {exc}", "rcpt"
                )
            except SMTPResponseException as exc:
                await self._reset(smtp)
                return _by_code(message_id, exc.code, exc.message, "rcpt")
        if len(refused) == len(recipients):
            await self._reset(smtp)
            # Any temporary refusal makes the whole message worth retrying.
            temporary = [exc for exc in refused if not 500 <= exc.code < 600]
            decisive = (temporary or refused)[0]
            return _by_code(
                message_id, decisive.code, f"{decisive.recipient}: {decisive.message}", "rcpt"
            )

        # DATA: until its 354 arrives and the body is written, nothing can be accepted.
        try:
            reply = await smtp.execute_command(b"DATA")
        except (SMTPServerDisconnected, SMTPTimeoutError) as exc:
            self._drop()
            return SendResult(SendStatus.RETRY, message_id, None, f"connection lost: {exc}", "data")
        if reply.code != 354:
            await self._reset(smtp)
            return _by_code(message_id, reply.code, reply.message, "data")
        protocol = smtp.protocol
        if protocol is None:
            self._drop()
            return SendResult(SendStatus.RETRY, message_id, None, "connection lost", "data")
        self._cut_if_stopped()  # decided here, with no wait before the end of DATA goes
        self._handing_over = True  # the stop now gives the reply its grace (_until_stopped)
        try:
            protocol.write(_LEADING_DOT.sub(b"..", data) + b".\r\n")
        except SMTPServerDisconnected as exc:
            self._drop()
            return SendResult(SendStatus.RETRY, message_id, None, f"connection lost: {exc}", "data")

        # The end of DATA is on its way: from here on a lost reply means "maybe delivered".
        try:
            reply = await protocol.read_response(timeout=self.config.data_timeout)
        except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException) as exc:
            self._drop()
            return SendResult(
                SendStatus.UNCERTAIN,
                message_id,
                None,
                f"no reply after the end of DATA: {exc}",
                "end-of-data",
            )
        if reply.code == 250:
            failed = "; ".join(f"{exc.recipient}: {exc.code} {exc.message}" for exc in refused)
            text = reply.message + (f" (refused: {failed})" if failed else "")
            return SendResult(SendStatus.SENT, message_id, reply.code, text, "end-of-data")
        if reply.code == 421:  # the server is closing the connection
            self._drop()
        return _by_code(message_id, reply.code, reply.message, "end-of-data")


def _message_id(message: EmailMessage) -> str:
    return next(iter(_raw_values(message, "Message-ID")), "").strip()


def outbox_file_name(message_id: str) -> str:
    """`<invite.c1.ab@shop.example>` -> `invite.c1.ab@shop.example.eml` (and never a path).

    An id that had to be cleaned up gets a hash of the original, so two ids never share a file.
    """
    raw = message_id.strip().removeprefix("<").removesuffix(">")
    safe = _UNSAFE_FILE_CHARS.sub("_", raw).lstrip(".")[:150]
    if safe != raw or not safe:
        safe = f"{safe}-{hashlib.sha256(message_id.encode('utf-8')).hexdigest()[:12]}"
    return f"{safe}.eml"


class OutboxDirSender:
    """Writes each message to `<directory>/<message-id>.eml` instead of sending it.

    For development and for shops without SMTP_URL: the files can be inspected or handed to
    another mailer. Writes are atomic (temp file in the same directory, fsync, rename), so a
    crash leaves the old file or the new one, never half of one; the same Message-ID always
    lands in the same file, so writing a message twice leaves one file. The temp file's name
    doesn't end in `.eml` (_TEMP_SUFFIX), so whatever reads `*.eml` never takes one half
    written; those a killed writer left are removed when a run opens the outbox.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self._open)
        return self

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.directory)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def send(self, message: EmailMessage) -> SendResult:
        """Write the message (off the event loop: fsync can take milliseconds)."""
        message_id = str(message["Message-ID"] or "")
        if not message_id:
            raise ValueError("the outbox needs a Message-ID to name the file")
        try:
            path = await asyncio.to_thread(self._write, message_id, message)
        except OSError as exc:  # nothing of it written (a temp file, then a rename): the
            # run stops with the invite queued, as for a mail server's settings (it was left
            # "sending", then guessed "may have been delivered", one more each attempt)
            raise SmtpSetupError(f"couldn't write invites to OUTBOX_DIR {self.directory}: "
                                 f"{exc.strerror or exc}. Check the disk and the directory's "
                                 "permissions.", detail=repr(exc)) from exc  # fmt: skip
        return SendResult(SendStatus.SENT, message_id, None, f"written to {path}")

    def _write(self, message_id: str, message: EmailMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / outbox_file_name(message_id)
        # an address with accents before the @ as UTF-8 (RFC 6532): encoded words inside an
        # address (`To: jos=?utf-8?q?=C3=A9?=@...`) are no address at all
        sender, recipients = _envelope(message)
        utf8 = not all(address.isascii() for address in (sender, *recipients))
        data = _flatten(message, utf8=utf8, eight_bit=False)
        handle, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX,
                                             dir=self.directory)  # fmt: skip
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        try:
            _fsync_directory(self.directory)
        except OSError as exc:  # renamed into place: written, whatever the directory's sync
            log.warning("wrote %s but couldn't sync its directory: %r", path, exc)
        return path


# The outbox writer's temp files: `.tmp-` and mkstemp's eight characters, then `.tmp`. They
# ended in `.eml` once, and `outbox.glob("*.eml")` (pathlib's `*` takes dot files) read
# messages half written, and files a killed writer left; those old names are ours too.
_TEMP_PREFIX, _TEMP_SUFFIX = ".tmp-", ".tmp"
_OUR_TEMP_FILE = re.compile(r"\.tmp-[A-Za-z0-9_]{8}\.(?:tmp|eml)")
# Older than this, a temp file is no write in progress (one takes milliseconds) but one a
# killed writer left, perhaps another process sharing the outbox.
STALE_TEMP_SECONDS = 10 * 60


def remove_stale_temp_files(directory: Path, *, now: float | None = None) -> list[str]:
    """Remove the outbox writer's temp files (_OUR_TEMP_FILE) older than STALE_TEMP_SECONDS
    from `directory`: a writer killed between its temp file and the rename (SIGKILL, the
    machine going down) leaves one behind for good. Returns the names removed. Nothing else
    is touched; a file another process removed first, or one this process may not remove,
    is left to be: tidying never stops invites from being written."""
    cutoff = (time.time() if now is None else now) - STALE_TEMP_SECONDS
    removed: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if not _OUR_TEMP_FILE.fullmatch(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(entry.name)
            except OSError as exc:
                log.warning("left a stale outbox temp file %s: %s", entry.path, exc)
    return removed


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sender_for(smtp_url: str | None, outbox_dir: Path, *,
               stop: asyncio.Event | None = None) -> SmtpSender | OutboxDirSender:  # fmt: skip
    """SMTP when SMTP_URL is set (a bad URL raises ValueError now), else the outbox dir
    (whose write takes milliseconds: it needs no `stop`, see SmtpSender)."""
    if smtp_url and smtp_url.strip():
        return SmtpSender(parse_smtp_url(smtp_url), stop=stop)
    return OutboxDirSender(outbox_dir)
