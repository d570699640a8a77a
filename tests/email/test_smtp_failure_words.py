"""A mail server that can't be used is said in words the merchant can act on, never as an errno.

`campaign list` and `jobs` showed "could not connect to smtp://127.0.0.1:8026: Error connecting
to 127.0.0.1 on port 8026: [Errno 111] Connection refused". The library's account stays in the
error's `detail`, which the send job logs. Every server here is a real one on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from bot.email import SmtpSender, SmtpSetupError, parse_smtp_url
from tests.email.smtp_server import Handler, password_checker, smtp_server
from tests.email.test_smtp_send import OPENSSL_SELF_SIGNED


def _free_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _refusal(url: str, **sender: Any) -> SmtpSetupError:
    """What opening a session with the server at `url` raises."""
    with pytest.raises(SmtpSetupError) as info:
        async with SmtpSender(parse_smtp_url(url), **sender):
            pass
    return info.value


def _plain(error: SmtpSetupError) -> str:
    """The message, checked to hold none of the library's raw text."""
    said = str(error)
    for raw in ("Errno", "[SSL", "Error connecting", "Timed out", "smtp://127"):
        assert raw not in said, said
    return said


async def test_a_refused_connection_is_said_in_words_and_kept_whole_for_the_log() -> None:
    port = _free_port()
    error = await _refusal(f"smtp://127.0.0.1:{port}?timeout=2")
    assert _plain(error) == (f"could not connect to the mail server at 127.0.0.1:{port}: it "
                             "refused the connection. Is it running, and is the port in "
                             "SMTP_URL right?")  # fmt: skip
    assert error.detail.startswith(f"could not connect to smtp://127.0.0.1:{port}: ")
    assert "Errno 111" in error.detail


async def test_a_host_that_doesnt_exist_is_said_in_words() -> None:
    error = await _refusal("smtp://no.such.host.invalid:587?timeout=5")
    said = _plain(error)
    assert said.startswith("could not connect to the mail server at no.such.host.invalid:587: ")
    assert said.endswith(("no host named no.such.host.invalid was found. Is the host in "
                          "SMTP_URL spelled right?",
                          "its name could not be looked up just now (DNS did not answer). Is "
                          "this machine online?"))  # offline, a resolver may not answer at all
    assert "no.such.host.invalid" in error.detail


async def test_a_server_that_never_answers_is_said_in_words() -> None:
    """It takes the connection and says nothing (a firewall's black hole, a wrong port)."""
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        error = await _refusal(f"smtp://127.0.0.1:{port}?timeout=1")
    finally:
        listener.close()
    assert _plain(error) == (f"could not connect to the mail server at 127.0.0.1:{port}: it "
                             "did not answer within 1 second. Are the host and port in "
                             "SMTP_URL right, and does a firewall let this machine reach "
                             "them?")  # fmt: skip
    assert "Timed out" in error.detail


async def test_smtps_to_a_server_that_starts_in_plain_text_is_said_in_words() -> None:
    async with smtp_server() as server:
        error = await _refusal(f"smtps://127.0.0.1:{server.port}?timeout=5")
    said = _plain(error)
    assert said.startswith(f"could not connect to the mail server at 127.0.0.1:{server.port}: "
                           "the TLS handshake failed (")  # fmt: skip
    assert server.handler.messages == []


async def test_smtps_on_the_plain_text_port_says_which_scheme_it_takes() -> None:
    """smtps:// at port 587 (STARTTLS's): the scheme to use is named."""
    config = parse_smtp_url("smtps://mx.example:587")
    from bot.email.send import tls_words

    said = tls_words(config, ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version"))
    assert "Port 587 starts in plain text and turns on TLS with STARTTLS: use smtp:// for it" in (
        said)


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1 (untrusted)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([*OPENSSL_SELF_SIGNED.split(), "/CN=mx.test", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=30)  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@asynccontextmanager
async def _smtps_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    """aiosmtpd behind TLS from the first byte (smtps://), on an ephemeral port."""
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: SMTP(Handler(), hostname="mx.test", loop=loop),
                                        "127.0.0.1", 0, ssl=context)  # fmt: skip
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()


async def test_an_untrusted_certificate_is_said_in_words(self_signed: ssl.SSLContext) -> None:
    async with _smtps_server(self_signed) as port:
        error = await _refusal(f"smtps://127.0.0.1:{port}?timeout=5")
    said = _plain(error)
    assert said.startswith(f"could not connect to the mail server at 127.0.0.1:{port}: its TLS "
                           "certificate was not accepted (self")  # fmt: skip
    assert said.endswith("Is the host in SMTP_URL the name on the server's certificate, and is "
                         "the certificate signed by an authority this machine trusts?")
    assert "CERTIFICATE_VERIFY_FAILED" in error.detail


async def test_an_untrusted_certificate_at_starttls_is_said_in_words(
    self_signed: ssl.SSLContext,
) -> None:
    async with smtp_server(tls_context=self_signed) as server:
        error = await _refusal(f"smtp://127.0.0.1:{server.port}?timeout=5")
    said = _plain(error)
    assert said.startswith(f"the mail server at 127.0.0.1:{server.port} offers STARTTLS, but "
                           "its TLS certificate was not accepted (self")  # fmt: skip
    assert error.detail.startswith(f"STARTTLS with smtp://127.0.0.1:{server.port} failed: ")
    assert server.handler.messages == []


async def test_a_refused_login_says_what_to_check() -> None:
    options = {"auth_require_tls": False, "authenticator": password_checker("u", "p")}
    async with smtp_server(**options) as server:
        error = await _refusal(f"smtp://u:wrong@127.0.0.1:{server.port}?starttls=off&timeout=5")
    said = str(error)
    assert said.startswith(f"smtp://u@127.0.0.1:{server.port} refused the login: 535 ")
    assert said.endswith("(check the user name and password in SMTP_URL, each percent-encoded)")
    assert "wrong" not in said and "wrong" not in error.detail  # never the password
