"""The mail backends on their own: wire form, SMTP edge cases, settings, the crossing."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.config import DeliverySettings, Settings, SmtpSettings
from digest.errors import DeliveryError
from digest.mail import (
    MaildirMailer,
    Mailer,
    MessageFeed,
    OnOutcome,
    Outcome,
    OutgoingMessage,
    SmtpMailer,
    iter_outcomes,
    mailer_from_settings,
    wire_form,
)
from digest.values import CrlfBytes
from tests.smtpd import FaultyHandler, free_port, smtp_server


def message(n: int, data: bytes = b"Subject: hi\r\n\r\nhello\r\n") -> OutgoingMessage:
    return OutgoingMessage(n, "digest@example.org", f"r{n}@example.org", f"<{n}@x>", data)


def send_all(mailer: Mailer, messages: Sequence[OutgoingMessage]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    asyncio.run(mailer.send(messages, outcomes.append))
    return outcomes


def test_wire_form_stuffs_dots_and_normalises_line_ends() -> None:
    assert wire_form(b".first\r\nmid\r\n.dot\r\n") == b"..first\r\nmid\r\n..dot\r\n.\r\n"
    assert wire_form(b"a\nb\r\nc") == b"a\r\nb\r\nc\r\n.\r\n"
    assert wire_form(b"a\r\n") == b"a\r\n.\r\n"


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"a", b"\n.", b"\r\n.."])))
def test_wire_form_agrees_with_its_plain_definition(pieces: list[bytes]) -> None:
    """The cheap checks in `wire_form` give what the straightforward version gives."""
    data = b"".join(pieces)
    plain = re.sub(rb"\r?\n", b"\r\n", data) if data.count(b"\n") != data.count(b"\r\n") else data
    if not plain.endswith(b"\r\n"):
        plain += b"\r\n"
    if plain.startswith(b"."):
        plain = b"." + plain
    assert wire_form(data) == plain.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    if data == plain:  # CRLF line ends throughout: sent as they are, with no checks
        assert wire_form(CrlfBytes(data)) == wire_form(data)


def test_the_server_gets_the_message_exactly() -> None:
    body = b"Subject: dots\n\n.starts with a dot\n..two dots\nend"
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        mailer = SmtpMailer(host="127.0.0.1", port=port, security="none")
        assert [o.status for o in send_all(mailer, [message(1, body)])] == ["sent"]
    assert handler.contents == [body.replace(b"\n", b"\r\n") + b"\r\n"]


def test_a_reply_that_never_comes_is_a_retry_after_the_deadline_and_the_rest_goes_on() -> None:
    handler = FaultyHandler(lose_reply={"r1@example.org": 1}, lost_reply_wait=5.0)
    with smtp_server(handler) as port:
        mailer = SmtpMailer(
            host="127.0.0.1", port=port, security="none", concurrency=1, timeout=0.5
        )
        started = time.monotonic()
        outcomes = send_all(mailer, [message(1), message(2)])
        elapsed = time.monotonic() - started
    assert [(o.digest_id, o.status) for o in outcomes] == [(1, "retry"), (2, "sent")]
    assert outcomes[0].reply == f"no reply from 127.0.0.1:{port} within 0.5 s"
    assert 0.5 <= elapsed < 3.0  # the deadline, not the server's 5 s silence


def test_messages_added_to_a_feed_while_sending_go_out_on_the_same_connection() -> None:
    handler = FaultyHandler()
    feed = MessageFeed([message(1), message(2)])
    seen: list[int] = []
    with smtp_server(handler) as port:
        mailer = SmtpMailer(host="127.0.0.1", port=port, security="none", concurrency=1)
        for group in iter_outcomes(mailer, feed):
            seen.extend(o.digest_id for o in group if o.status == "sent")
            if len(seen) == 2:
                feed.add([message(3)])
            elif len(seen) == 3:
                feed.close()
    assert seen == [1, 2, 3]
    assert list(handler.per_connection.values()) == [3]


def test_a_feed_withdrawn_while_waiting_ends_the_send() -> None:
    feed = MessageFeed()
    outcomes: list[Outcome] = []

    async def withdraw_soon() -> None:
        await asyncio.sleep(0.05)
        feed.withdraw()

    async def both() -> None:
        mailer = SmtpMailer(host="127.0.0.1", port=free_port(), security="none")
        await asyncio.wait_for(
            asyncio.gather(mailer.send_feed(feed, outcomes.append), withdraw_soon()), 5
        )

    asyncio.run(both())  # no message ever came: nothing was reported, nothing hangs
    assert outcomes == [] and feed.closed


def test_nobody_listening_means_retry_for_everyone_not_an_exception() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), security="none", concurrency=2)
    outcomes = send_all(mailer, [message(n) for n in range(5)])
    assert sorted(o.digest_id for o in outcomes) == [0, 1, 2, 3, 4]
    assert {o.status for o in outcomes} == {"retry"}


def test_connections_are_reused_and_renewed() -> None:
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        mailer = SmtpMailer(
            host="127.0.0.1",
            port=port,
            security="none",
            concurrency=1,
            max_messages_per_connection=3,
        )
        outcomes = send_all(mailer, [message(n) for n in range(7)])
    assert [o.status for o in outcomes] == ["sent"] * 7
    assert sorted(handler.per_connection.values()) == [1, 3, 3]


def test_rate_limit_spaces_messages() -> None:
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        mailer = SmtpMailer(host="127.0.0.1", port=port, security="none", max_per_second=20)
        started = time.monotonic()
        send_all(mailer, [message(n) for n in range(6)])
        elapsed = time.monotonic() - started
    assert elapsed >= 5 / 20 * 0.9


def test_maildir_failure_is_a_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DeliveryError, match="cannot open maildir"):
        send_all(MaildirMailer(blocker / "mail"), [message(1)])


def test_settings_choose_the_backend() -> None:
    assert isinstance(mailer_from_settings(Settings()), MaildirMailer)
    settings = Settings(
        delivery=DeliverySettings(backend="smtp", concurrency=7, max_per_second=3),
        smtp=SmtpSettings(host="relay.example.org", port=465, security="tls", username="u"),
    )
    mailer = mailer_from_settings(settings)
    assert isinstance(mailer, SmtpMailer)
    assert (mailer.host, mailer.port, mailer.security, mailer.concurrency) == (
        "relay.example.org",
        465,
        "tls",
        7,
    )


class HalfThenBroken(Mailer):
    """Reports one outcome, then finds the mail system unusable."""

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        on_outcome(Outcome(messages[0].digest_id, "sent", "250 ok"))
        raise DeliveryError("relay refused our login")


def test_the_crossing_hands_over_outcomes_then_the_error() -> None:
    seen: list[int] = []
    with pytest.raises(DeliveryError, match="refused our login"):
        for group in iter_outcomes(HalfThenBroken(), [message(1), message(2)]):
            seen.extend(o.digest_id for o in group)
    assert seen == [1]


def test_a_unicode_domain_stored_by_an_older_release_goes_out_in_its_ascii_form() -> None:
    handler = FaultyHandler()
    unicode_domain = OutgoingMessage(
        1, "digest@example.org", "user@bücher.de", "<1@x>", b"Subject: hi\r\n\r\nhello\r\n"
    )
    with smtp_server(handler) as port:
        mailer = SmtpMailer(host="127.0.0.1", port=port, security="none")
        outcomes = send_all(mailer, [unicode_domain])
    assert [o.status for o in outcomes] == ["sent"]
    assert [address for address, _ in handler.received] == ["user@xn--bcher-kva.de"]


def test_a_quit_cancelled_midway_still_closes_the_socket() -> None:
    """A worker cancelled while waiting for the reply to QUIT (another worker found the
    server unusable) must close its connection, not leave it to the garbage collector."""
    import aiosmtplib

    from digest.mail.smtp import _quit

    async def scenario() -> bool:
        async def greet_then_hang(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            writer.write(b"220 test ESMTP\r\n")
            await writer.drain()
            await reader.read()  # never answers QUIT; returns when the client drops
            writer.close()

        server = await asyncio.start_server(greet_then_hang, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)
        await connection.connect()
        transport = connection.transport
        quitting = asyncio.create_task(_quit(connection))
        await asyncio.sleep(0.1)
        quitting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await quitting
        closed = transport is not None and transport.is_closing()
        await asyncio.sleep(0.1)  # the server's side sees the drop (or the end of the test)
        server.close()
        await server.wait_closed()
        return closed

    assert asyncio.run(scenario())
