"""SmtpSender against a real aiosmtpd on 127.0.0.1: reuse, refusals, retries, lost replies."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.email import (
    SendResult,
    SendStatus,
    SmtpSender,
    SmtpServerBusy,
    SmtpSetupError,
    parse_smtp_url,
)
from tests.email.invites import make_message
from tests.email.smtp_server import Handler, Server, password_checker, smtp_server

OPENSSL_SELF_SIGNED = (
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    " -addext subjectAltName=IP:127.0.0.1 -subj"
)
SENT, REFUSED, RETRY, UNCERTAIN = (
    SendStatus.SENT,
    SendStatus.REFUSED,
    SendStatus.RETRY,
    SendStatus.UNCERTAIN,
)


def sender(server: Server, query: str = "timeout=5") -> SmtpSender:
    return SmtpSender(parse_smtp_url(f"{server.url}?{query}"))


async def send_batch(server: Server, count: int) -> tuple[list[SendResult], SmtpSender]:
    async with sender(server) as smtp:
        results = [await smtp.send(make_message(i)) for i in range(count)]
    return results, smtp


def received_ids(server: Server) -> list[str]:
    return [message.message_id for message in server.handler.messages]


async def test_a_hundred_messages_go_over_one_connection() -> None:
    async with smtp_server() as server:
        results, smtp = await send_batch(server, 100)

    assert [r.status for r in results] == [SENT] * 100
    assert all(r.code == 250 and r.stage == "end-of-data" for r in results)
    assert (server.connections, smtp.connections) == (1, 1)
    assert received_ids(server) == [r.message_id for r in results]
    assert len(set(received_ids(server))) == 100
    first = server.handler.messages[0]
    assert (first.mail_from, first.rcpt_tos) == ("hello@shop.example", ["customer0@example.org"])
    assert str(first.parsed()["Subject"]).startswith("François, partagez Café Zoë")
    assert str(first.parsed()["From"]) == "Café Zoë <hello@shop.example>"


async def test_a_japanese_invite_arrives_addressed_family_name_first() -> None:
    """Over the wire, encoded words and a quoted-printable or base64 body: the subject, the
    text and the HTML greet 佐藤悠斗様, not the over-familiar 悠斗様."""
    async with smtp_server() as server, sender(server) as smtp:
        result = await smtp.send(make_message(0, locale="ja", first_name="悠斗", last_name="佐藤"))

    assert result.status is SENT
    (received,) = server.handler.messages
    back = received.parsed()
    assert str(back["Subject"]).startswith("佐藤悠斗様、Café Zoë")
    plain, rich = back.get_body(("plain",)), back.get_body(("html",))
    assert plain is not None and plain.get_content().startswith("佐藤悠斗様\n")
    assert rich is not None and "<p style=\"margin:0 0 16px;\">佐藤悠斗様</p>" in rich.get_content()


async def test_a_refused_recipient_is_refused_and_the_rest_are_sent() -> None:
    handler = Handler(refuse={"customer2@example.org": "550 5.1.1 No such user"})
    async with smtp_server(handler) as server:
        results, _ = await send_batch(server, 5)

    assert [r.status for r in results] == [SENT, SENT, REFUSED, SENT, SENT]
    refused = results[2]
    assert (refused.code, refused.stage) == (550, "rcpt")
    assert "No such user" in refused.text and "customer2@example.org" in refused.text
    assert len(server.handler.messages) == 4
    assert server.connections == 1  # a refusal doesn't cost the connection (RSET, go on)


async def test_a_refusal_at_the_end_of_data_is_permanent() -> None:
    handler = Handler(data_replies=["554 5.7.1 Message rejected as spam"])
    async with smtp_server(handler) as server:
        results, _ = await send_batch(server, 2)
    assert [(r.status, r.code, r.stage) for r in results] == [
        (REFUSED, 554, "end-of-data"),
        (SENT, 250, "end-of-data"),
    ]


@pytest.mark.parametrize(
    "handler",
    [
        Handler(data_replies=["421 4.3.2 Service shutting down, try later"]),
        Handler(rcpt_replies={"customer0@example.org": ["451 4.7.1 Greylisted, come back"]}),
    ],
    ids=["421-at-end-of-data", "451-at-rcpt"],
)
async def test_a_temporary_failure_is_retry_then_the_retry_is_sent(handler: Handler) -> None:
    async with smtp_server(handler) as server, sender(server) as smtp:
        message = make_message(0)
        first = await smtp.send(message)
        second = await smtp.send(message)

    assert first.status is RETRY and first.code in (421, 451)
    assert second.status is SENT
    assert received_ids(server) == [str(message["Message-ID"])]


async def test_a_connection_lost_after_the_data_is_uncertain_and_not_resent() -> None:
    handler = Handler(drop_at={"DATA": {3}})  # takes message 3, then the reply is lost
    async with smtp_server(handler) as server:
        results, smtp = await send_batch(server, 5)

    assert [r.status for r in results] == [SENT, SENT, UNCERTAIN, SENT, SENT]
    assert results[2].stage == "end-of-data"
    ids = received_ids(server)
    assert len(ids) == 5 and ids.count(results[2].message_id) == 1
    assert (server.connections, smtp.connections) == (2, 2)


async def test_no_reply_in_time_after_the_data_is_uncertain() -> None:
    handler = Handler(data_delay=2.0)
    async with smtp_server(handler) as server, sender(server, "timeout=0.2") as smtp:
        result = await smtp.send(make_message(0))
    assert (result.status, result.stage) == (UNCERTAIN, "end-of-data")
    assert "no reply" in result.text


async def test_the_end_of_data_is_waited_for_longer_than_each_command() -> None:
    """A server scanning the message before it answers the end of DATA: the reply waited the
    60 s of every other reply, and the invite, mostly taken, was called uncertain (Resend
    then emailed it twice). Without `?timeout=`, the end of DATA waits RFC 5321's 10
    minutes; here the same, scaled down."""
    assert parse_smtp_url("smtp://h").data_timeout == 600
    handler = Handler(data_delay=1.0)
    async with smtp_server(handler) as server:
        config = replace(parse_smtp_url(server.url), timeout=0.5, data_timeout=5)
        async with SmtpSender(config) as smtp:
            result = await smtp.send(make_message(0))
    assert (result.status, result.stage) == (SENT, "end-of-data"), result


async def test_a_connection_lost_at_rcpt_is_retry_and_the_batch_goes_on() -> None:
    handler = Handler(drop_at={"RCPT": {3}})
    async with smtp_server(handler) as server:
        results, smtp = await send_batch(server, 5)

    assert [r.status for r in results] == [SENT, SENT, RETRY, SENT, SENT]
    assert results[2].stage == "rcpt"
    assert results[2].message_id not in received_ids(server)
    assert len(received_ids(server)) == 4
    assert smtp.connections == 2


async def test_a_connection_lost_at_mail_from_is_reopened_transparently() -> None:
    handler = Handler(drop_at={"MAIL": {2}})  # what a server's idle timeout looks like
    async with smtp_server(handler) as server:
        results, smtp = await send_batch(server, 3)

    assert [r.status for r in results] == [SENT, SENT, SENT]
    assert server.handler.seen["MAIL"] == 4
    assert received_ids(server) == [r.message_id for r in results]  # each exactly once
    assert (server.connections, smtp.connections) == (2, 2)


async def test_a_connection_the_server_closed_while_idle_is_reopened() -> None:
    async with smtp_server() as server, sender(server) as smtp:
        first = await smtp.send(make_message(0))
        server.close_connections()
        await asyncio.sleep(0.05)
        second = await smtp.send(make_message(1))

    assert (first.status, second.status) == (SENT, SENT)
    assert len(received_ids(server)) == 2
    assert smtp.connections == 2


async def test_starttls_required_but_not_offered_is_a_clear_error() -> None:
    async with smtp_server() as server:
        with pytest.raises(SmtpSetupError, match="does not offer STARTTLS"):
            async with sender(server, "starttls=required"):
                pass
    assert server.handler.messages == []


async def test_an_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = SmtpSender(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=2"))
    with pytest.raises(SmtpSetupError, match=r"could not connect to the mail server at "
                       r"127\.0\.0\.1:\d+: it refused the connection") as info:  # fmt: skip
        async with smtp:
            pass
    assert not isinstance(info.value, SmtpServerBusy)  # most often a wrong SMTP_URL


async def test_a_server_too_busy_to_greet_is_busy_not_a_setting() -> None:
    """421 at the greeting (a provider's connection limit) is the server's for now: the
    invites wait for a later run instead of the job's quick retries."""
    loop = asyncio.get_running_loop()

    class Busy(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            transport.write(b"421 4.7.0 Too many connections, try later\r\n")
            transport.close()

    listener = await loop.create_server(Busy, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with pytest.raises(SmtpServerBusy, match="421"):
            async with SmtpSender(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=2")):
                pass
    finally:
        listener.close()


async def test_login_uses_the_decoded_user_and_password() -> None:
    options = {"auth_require_tls": False, "authenticator": password_checker("us@er", "p@ss:w")}
    async with smtp_server(**options) as server:  # a relay without TLS: starttls=off says so
        good = SmtpSender(parse_smtp_url(
            f"smtp://us%40er:p%40ss%3Aw@127.0.0.1:{server.port}?starttls=off&timeout=5"))
        async with good as smtp:
            result = await smtp.send(make_message(0))
        assert result.status is SENT

        bad = SmtpSender(parse_smtp_url(
            f"smtp://us%40er:wrong@127.0.0.1:{server.port}?starttls=off&timeout=5"))
        with pytest.raises(SmtpSetupError, match="refused the login: 535"):
            async with bad:
                pass
    assert len(server.handler.messages) == 1


async def test_a_password_never_goes_in_clear_text_to_a_server_without_starttls() -> None:
    """STARTTLS missing from the server's reply (or struck from it by someone on the way):
    the login is refused before the password is sent, unless the URL says starttls=off."""
    logins: list[str] = []
    check = password_checker("u", "p")

    def recording(*args: Any) -> Any:
        logins.append("AUTH")
        return check(*args)

    async with smtp_server(auth_require_tls=False, authenticator=recording) as server:
        smtp = SmtpSender(parse_smtp_url(f"smtp://u:p@127.0.0.1:{server.port}?timeout=5"))
        with pytest.raises(SmtpSetupError, match="refusing to send the password in clear text"):
            async with smtp:
                pass
    assert logins == [] and server.handler.messages == []


@pytest.fixture
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed cert for 127.0.0.1, and a client that trusts it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [*OPENSSL_SELF_SIGNED.split(), "/CN=mx.test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    return server_context, client_context


async def test_starttls_then_login_when_required_and_offered(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = tls_contexts
    options = {"tls_context": server_context, "authenticator": password_checker("u", "p")}
    async with smtp_server(**options) as server:  # AUTH only after TLS (aiosmtpd's default)
        url = f"smtp://u:p@127.0.0.1:{server.port}?starttls=required&timeout=5"
        async with SmtpSender(parse_smtp_url(url), tls_context=client_context) as smtp:
            result = await smtp.send(make_message(0))
        assert result.status is SENT
        assert server.protocols[0].session is not None
        assert server.protocols[0].session.ssl is not None


async def test_an_untrusted_certificate_stops_opportunistic_starttls(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, _ = tls_contexts
    async with smtp_server(tls_context=server_context) as server:
        with pytest.raises(SmtpSetupError, match=r"offers STARTTLS, but its TLS certificate"):
            async with sender(server):  # verifies against the system CAs: no silent downgrade
                pass
    assert server.handler.messages == []


async def test_cc_and_bcc_are_recipients_and_bcc_stays_off_the_wire() -> None:
    message = make_message(0)
    message["Cc"] = "Zoë Martin <zoe@example.org>"
    message["Bcc"] = "audit@shop.example, gone@example.org"
    handler = Handler(refuse={"gone@example.org": "550 5.1.1 No such user"})
    async with smtp_server(handler) as server, sender(server) as smtp:
        result = await smtp.send(message)

    assert result.status is SENT  # accepted for the others: one refusal is reported, not fatal
    assert "gone@example.org: 550" in result.text
    (received,) = server.handler.messages
    assert received.mail_from == "hello@shop.example"
    assert received.rcpt_tos == ["customer0@example.org", "zoe@example.org", "audit@shop.example"]
    assert received.parsed()["Bcc"] is None
    assert received.parsed()["Cc"] == "Zoë Martin <zoe@example.org>"


async def test_one_click_unsubscribe_is_offered_only_for_an_https_link() -> None:
    """RFC 8058 section 3.1: List-Unsubscribe-Post goes with an HTTPS URI only. A trial's
    `http://` PUBLIC_URL sent it too, a one-click promise mail providers don't honour; its
    List-Unsubscribe stays (a mail client may open the link)."""
    links = {"http": "http://localhost:8000/u/3f9a.sig", "https": "HTTPS://bot.example/u/3f9a.sig"}
    async with smtp_server() as server, sender(server) as smtp:
        for index, link in enumerate(links.values()):
            await smtp.send(make_message(index, unsubscribe_url=link))
    plain, secure = (received.parsed() for received in server.handler.messages)
    assert plain["List-Unsubscribe"] == f"<{links['http']}>"
    assert plain["List-Unsubscribe-Post"] is None
    assert secure["List-Unsubscribe"] == f"<{links['https']}>"
    assert secure["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
