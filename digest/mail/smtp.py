"""`SmtpMailer`: the only code that talks SMTP, over a small pool of reused connections.

The protocol work lives here and nowhere else: connecting (STARTTLS, implicit
TLS or plaintext, login only over an encrypted connection), the MAIL/RCPT/DATA
exchange with one deadline per message, the body's wire form, telling a
misconfigured server (fix the settings) from a transient fault (try again),
and closing connections without waiting on TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib

from digest.errors import DeliveryError
from digest.mail.contract import Mailer, OnOutcome, Outcome, OutcomeStatus, OutgoingMessage
from digest.mail.feed import MessageFeed
from digest.values import CrlfBytes

Security = Literal["starttls", "tls", "none"]


@dataclass
class _RateLimiter:
    """Spaces sends at least 1/per_second apart over all connections (0 = no limit)."""

    per_second: float
    _next: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def wait(self) -> None:
        if self.per_second <= 0:
            return
        async with self._lock:
            loop_now = asyncio.get_running_loop().time()
            delay = self._next - loop_now
            self._next = max(loop_now, self._next) + 1 / self.per_second
        if delay > 0:
            await asyncio.sleep(delay)


class _Unusable(Exception):
    """The server cannot be used at all; carries the DeliveryError to raise."""


class SmtpMailer(Mailer):
    """Sends over a small pool of reused SMTP connections (aiosmtplib).

    `concurrency` connections each take the next message from a shared queue,
    so a slow recipient holds up one connection, not the batch. A connection is
    renewed after `max_messages_per_connection` messages. A dropped connection
    is reopened and sending goes on; if the drop happened before the message
    body was handed over, that message is tried again at once on the new
    connection (servers close idle connections; that is no reason to wait five
    minutes), otherwise it is reported `retry`, because the server may have it.

    Security: "starttls" fails when the server does not offer STARTTLS
    (aiosmtplib's own default would silently stay in plaintext), "tls" is
    implicit TLS, "none" is plaintext. Credentials are only ever sent over an
    encrypted connection unless security is "none".
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security = "starttls",
        username: str = "",
        password: str = "",
        timeout: float = 30.0,
        helo_name: str = "",
        validate_certs: bool = True,
        tls_context: ssl.SSLContext | None = None,
        concurrency: int = 4,
        max_messages_per_connection: int = 100,
        max_per_second: float = 0.0,
        connect_attempts: int = 3,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown security {security!r}")
        self.host = host
        self.port = port
        self.security: Security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.helo_name = helo_name or None
        self.validate_certs = validate_certs
        self.tls_context = tls_context
        self.concurrency = max(1, concurrency)
        self.max_messages_per_connection = max(1, max_messages_per_connection)
        self.max_per_second = max_per_second
        self.connect_attempts = max(1, connect_attempts)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        await self.send_feed(MessageFeed(messages, closed=True), on_outcome)

    async def send_feed(self, feed: MessageFeed, on_outcome: OnOutcome) -> None:
        # Each connection takes the next message when it is free; a connection
        # is opened only once it has a message, so a small batch opens few.
        limiter = _RateLimiter(self.max_per_second)
        workers = [
            asyncio.create_task(self._worker(feed, on_outcome, limiter))
            for _ in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        except _Unusable as exc:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise exc.args[0] from None
        # Every worker gave up connecting: what is left waits for a later run (all of
        # it: the window limits what goes to the server, not what is reported back).
        for message in feed.withdraw():
            on_outcome(Outcome(message.digest_id, "retry", f"no connection to {self.where}"))

    async def _worker(
        self, feed: MessageFeed, on_outcome: OnOutcome, limiter: _RateLimiter
    ) -> None:
        connection: aiosmtplib.SMTP | None = None
        used = 0
        connect_failures = 0
        try:
            while (message := await feed.next()) is not None:
                await limiter.wait()
                for fresh_try in (True, False):
                    if connection is not None and not connection.is_connected:
                        connection = None  # the server closed it while idle
                    if connection is None:
                        try:
                            connection = await self._connect()
                        except (aiosmtplib.SMTPException, OSError) as exc:
                            connect_failures += 1
                            on_outcome(Outcome(message.digest_id, "retry", _describe(exc)))
                            if connect_failures >= self.connect_attempts:
                                return
                            break
                        connect_failures = 0
                        used = 0
                    outcome, lost_before_body = await self._transaction(connection, message)
                    used += 1
                    if not connection.is_connected:
                        connection = None
                    if lost_before_body and fresh_try and used > 1:
                        continue  # a reused connection died before the body: again, now
                    on_outcome(outcome)
                    break
                if connection is not None and used >= self.max_messages_per_connection:
                    await _quit(connection)
                    connection = None
        finally:
            if connection is not None:
                await _quit(connection)

    async def _connect(self) -> aiosmtplib.SMTP:
        connection = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            local_hostname=self.helo_name,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            validate_certs=self.validate_certs,
            tls_context=self.tls_context,
        )
        try:
            await connection.connect()
            if connection.is_ehlo_or_helo_needed:
                try:
                    await connection.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await connection.helo()  # a server from before ESMTP
            if self.username:
                encrypted = connection.get_transport_info("sslcontext") is not None
                if not encrypted and self.security != "none":
                    raise _Unusable(
                        DeliveryError(
                            f"SMTP {self.where}: refusing to send credentials over an "
                            "unencrypted connection"
                        )
                    )
                await connection.login(self.username, self.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            connection.close()
            raise _Unusable(
                DeliveryError(f"SMTP {self.where}: login as {self.username!r} refused: {exc}")
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            connection.close()
            problem = _unusable_reason(exc, self.security)
            if problem:
                raise _Unusable(DeliveryError(f"SMTP {self.where}: {problem}")) from None
            raise
        except BaseException:  # cancelled (another connection found the server unusable)
            connection.close()
            raise
        return connection

    async def _transaction(
        self, connection: aiosmtplib.SMTP, message: OutgoingMessage
    ) -> tuple[Outcome, bool]:
        """One MAIL/RCPT/DATA exchange.

        Returns the outcome and whether the connection was lost before the body
        went out (so the server cannot have the message and resending is safe).
        """
        body_sent = False
        try:
            sender, recipient = _address(message.sender), _address(message.recipient)
        except UnicodeEncodeError:
            refusal = "555 5.5.4 non-ASCII address needs SMTPUTF8, which digest does not use"
            return Outcome(message.digest_id, "failed", refusal), False
        try:
            # One deadline for MAIL, RCPT and DATA (renewed for the body's reply)
            # rather than aiosmtplib's timer per command: each of those costs a timer,
            # a future and two callbacks, four times a message (bench/deliver.py
            # measures the sender's CPU).
            async with asyncio.timeout(self.timeout) as deadline:
                # MAIL and RCPT by hand: aiosmtplib's mail()/rcpt() re-parse the
                # address with the stdlib's RFC 822 parser on every message.
                reply = await connection.execute_command(b"MAIL", b"FROM:" + sender, timeout=None)
                if 500 <= reply.code < 600:
                    # Refusing our sender is about our setup, not this recipient:
                    # failing (and bouncing) every subscriber would be wrong.
                    raise _Unusable(
                        DeliveryError(
                            f"SMTP {self.where}: the server refuses sender "
                            f"{message.sender!r}: {reply.code} {reply.message} "
                            "(check sender.address and the smtp login)"
                        )
                    )
                if reply.code != 250:
                    raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, message.sender)
                reply = await connection.execute_command(b"RCPT", b"TO:" + recipient, timeout=None)
                if reply.code not in (250, 251):
                    raise aiosmtplib.SMTPRecipientRefused(
                        reply.code, reply.message, message.recipient
                    )
                body_sent = True
                reply = await self._data(connection, message.data, deadline)
        except aiosmtplib.SMTPResponseException as exc:
            if connection.is_connected and exc.code != 421:
                try:
                    await connection.rset()
                except (aiosmtplib.SMTPException, OSError):
                    connection.close()
            else:
                connection.close()
            status: OutcomeStatus = "failed" if 500 <= exc.code < 600 else "retry"
            return Outcome(message.digest_id, status, f"{exc.code} {exc.message}"), False
        except TimeoutError:  # the exchange's deadline
            connection.close()
            waited = f"no reply from {self.where} within {self.timeout:g} s"
            return Outcome(message.digest_id, "retry", waited), False
        except (aiosmtplib.SMTPException, OSError) as exc:
            connection.close()
            lost = not body_sent and isinstance(exc, aiosmtplib.SMTPServerDisconnected)
            return Outcome(message.digest_id, "retry", _describe(exc)), lost
        return Outcome(message.digest_id, "sent", f"{reply.code} {reply.message}"), False

    async def _data(
        self, connection: aiosmtplib.SMTP, data: bytes, deadline: asyncio.Timeout
    ) -> aiosmtplib.SMTPResponse:
        """DATA with the body already in wire form.

        aiosmtplib's `data()` runs two regular expressions over every message
        (line endings, dot-stuffing), a cost that grows with every byte of every
        digest. `wire_form` does the same with `bytes.count`/`replace`,
        which run at memory speed when the body is already CRLF, as rendered
        messages are. Writing the body and reading the reply in the same step
        (no await in between) keeps aiosmtplib's reply pairing intact.

        Once the body is out the server may have the message, and giving up
        then means sending it again later: the reply to the body gets a full
        `timeout` of its own.
        """
        start = await connection.execute_command(b"DATA", timeout=None)
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = connection.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        try:
            protocol.write(wire_form(data))
            deadline.reschedule(asyncio.get_running_loop().time() + self.timeout)
            reply = await protocol.read_response(timeout=None)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            connection.close()
            raise
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply


def _address(address: str) -> bytes:
    """`<address>` for MAIL/RCPT; aiosmtplib refuses control characters (no injection).

    A domain stored in Unicode (by a release before addresses were kept in
    ASCII) goes out in its IDNA form, which every relay takes.
    """
    local, at, domain = address.strip().rpartition("@")
    if at and not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return b"<" + f"{local}{at}{domain}".encode("ascii") + b">"


_BARE_LF = re.compile(rb"\r?\n")
_LONE_CR = re.compile(rb"\r(?!\n)")
_DOT_AFTER_LF = re.compile(rb"\n\.")


def wire_form(data: bytes) -> bytes:
    """A message as it goes after DATA: CRLF line ends, dot-stuffed, ending in CRLF.CRLF.

    Bare LF (what `email` writes with its default policy) is turned into CRLF;
    a lone CR inside a line is left alone, as mail servers do.

    Every message passes through here whole, so the checks are the cheap kind:
    counting one byte and searching for a literal run at memory speed, where
    counting CRLFs or replacing them did not. With as many CRs as LFs and no
    CR on its own, every LF ends a CRLF; otherwise the LFs are normalised
    (a no-op for those already in a CRLF). Once every LF ends a CRLF, a dot
    after an LF is a dot at the start of a line. A digest comes as `CrlfBytes`,
    whose line ends its writer vouches for: those checks are skipped.
    """
    if not isinstance(data, CrlfBytes) and (
        data.count(b"\n") != data.count(b"\r") or _LONE_CR.search(data)
    ):
        data = _BARE_LF.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    if _DOT_AFTER_LF.search(data):
        data = data.replace(b"\r\n.", b"\r\n..")
    return data + b".\r\n"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _unusable_reason(exc: Exception, security: Security) -> str | None:
    """Why this connection error means "fix the configuration", or None if it is transient."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"TLS certificate not trusted ({cause.verify_message}); install the CA "
                "certificate, or set smtp.validate_certs = false only for testing"
            )
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    if security == "starttls" and "STARTTLS extension not supported" in str(exc):
        return (
            "the server does not offer STARTTLS (smtp.security = 'starttls'); use "
            "'tls' for implicit TLS, or 'none' only for a trusted local relay"
        )
    return None


async def _quit(connection: aiosmtplib.SMTP) -> None:
    """Say QUIT, then drop the socket without waiting for TLS's close_notify.

    A graceful TLS close needs more turns of the event loop than the end of
    `asyncio.run` gives it, which would leave the socket to the garbage
    collector; after QUIT there is nothing left to protect.
    """
    transport = connection.transport
    try:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await connection.execute_command(b"QUIT")
    finally:
        # also when cancelled while waiting for the reply to QUIT (another worker found
        # the server unusable): the socket must not be left to the garbage collector
        if isinstance(transport, asyncio.Transport):
            transport.abort()
        connection.close()
