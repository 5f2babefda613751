"""Delivery backends: hand finished messages to SMTP, a Maildir, or memory.

Only this module talks SMTP. A backend is a `Mailer`: one async method,
`send`, that takes a batch of finished messages and reports an `Outcome` for
each as soon as it is known. Everything else about a backend (connections,
TLS, rate limits, files) stays behind that method, so the outbox in
`digest.deliver` never changes when the backend does, and tests pass a
`MemoryMailer` in instead of patching anything.

Outcome classes follow SMTP reply codes: 2xx is `sent`; 4xx, a dropped
connection or a timeout is `retry` (the message may be tried again later);
5xx is `failed` (the server refused it for good).

`iter_outcomes` is the one place where synchronous code meets the async
backends (DESIGN, "one sync/async crossing").
"""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import queue
import re
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiosmtplib

from digest.config.settings import Settings
from digest.errors import DeliveryError

OutcomeStatus = Literal["sent", "retry", "failed"]
Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One finished message: envelope plus the exact bytes for the wire (CRLF line ends)."""

    digest_id: int
    sender: str
    recipient: str
    message_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: `sent`, `retry` (temporary) or `failed` (permanent)."""

    digest_id: int
    status: OutcomeStatus
    reply: str


OnOutcome = Callable[[Outcome], None]


class Mailer(ABC):
    """Hands a batch of messages to a mail system.

    Contract for `send`: call `on_outcome` exactly once per message, as soon as
    that message's fate is known (not at the end of the batch), and never raise
    because one message failed — a refused or undeliverable message is an
    Outcome, not an exception. The one exception is `DeliveryError` when the
    mail system cannot be used at all (TLS required but not offered, an
    untrusted certificate, a rejected login): messages not yet reported are
    then left unreported, and the caller puts them back unchanged.

    `send_feed` is what the outbox calls: it streams batches through one call
    (see `MessageFeed`); the default sends them one `send` at a time.
    """

    @abstractmethod
    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        """Send the batch; report each message's Outcome through `on_outcome`."""

    async def send_feed(self, feed: MessageFeed, on_outcome: OnOutcome) -> None:
        """Send what the feed holds and whatever is added to it, until it is closed.

        By default whatever has been added by then is sent as one batch with
        `send`; a backend with connections to keep (SMTP) works from the feed
        directly.
        """
        while batch := await feed.next_batch():
            await self.send(batch, on_outcome)


class MessageFeed:
    """Messages for a mailer, added to while the earlier ones are being sent.

    The outbox claims and builds its next batch while the current one is going
    out and adds it here, so SMTP connections stay open and busy across batches
    instead of draining, closing and reconnecting every `batch_size` messages,
    and rendering overlaps sending. Filled from the outbox's thread, emptied on
    the sender's event loop: the lock orders the two, and `add`, `close` and
    `withdraw` wake a waiting sender with `call_soon_threadsafe`.
    """

    def __init__(self, messages: Iterable[OutgoingMessage] = (), *, closed: bool = False) -> None:
        self._queue: deque[OutgoingMessage] = deque(messages)
        self._closed = closed
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._more: asyncio.Event | None = None

    @property
    def waiting(self) -> int:
        """Messages added and not yet taken by the sender."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """Nothing more will be added (the outbox is done, or sending stopped)."""
        return self._closed

    def add(self, messages: Iterable[OutgoingMessage]) -> bool:
        """Queue more messages; False (and nothing queued) once the feed is closed.

        A stop can close the feed while the caller is still building the batch
        it adds: that batch must not be sent by connections finishing their
        in-flight messages.
        """
        with self._lock:
            if self._closed:
                return False
            self._queue.extend(messages)
        self._wake()
        return True

    def close(self) -> None:
        """No more messages: the sender finishes what the feed holds, then returns."""
        with self._lock:
            self._closed = True
        self._wake()

    def withdraw(self) -> None:
        """Stop: drop the messages not yet taken and close. They are never reported."""
        with self._lock:
            self._queue.clear()
            self._closed = True
        self._wake()

    async def next(self) -> OutgoingMessage | None:
        """The next message, waiting for more while the feed is open; None once it is done."""
        while True:
            if more := self._wait_for_more():
                await more.wait()
                continue
            with self._lock:
                return self._queue.popleft() if self._queue else None

    async def next_batch(self) -> list[OutgoingMessage]:
        """Everything waiting (after waiting for something, while open); [] once done."""
        while more := self._wait_for_more():
            await more.wait()
        return self.take_waiting()

    def take_waiting(self) -> list[OutgoingMessage]:
        """Everything waiting now, without waiting for more."""
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        return batch

    def _wait_for_more(self) -> asyncio.Event | None:
        """The event to wait on when the feed is empty but open, else None."""
        with self._lock:
            if self._queue or self._closed:
                return None
            if self._more is None:
                self._loop, self._more = asyncio.get_running_loop(), asyncio.Event()
            self._more.clear()  # under the lock: a later add's wake-up is not lost
            return self._more

    def _wake(self) -> None:
        with self._lock:
            loop, more = self._loop, self._more
        if loop is not None and more is not None:
            with contextlib.suppress(RuntimeError):  # the sender's loop has ended
                loop.call_soon_threadsafe(more.set)


class MemoryMailer(Mailer):
    """Keeps messages in a list: for unit tests and dry runs.

    `replies` maps a recipient to the Outcome status (and optional reply text)
    it should get; everyone else gets `sent`.
    """

    def __init__(self, replies: dict[str, OutcomeStatus] | None = None) -> None:
        self.replies = dict(replies or {})
        self.sent: list[OutgoingMessage] = []

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        for message in messages:
            status = self.replies.get(message.recipient, "sent")
            if status == "sent":
                self.sent.append(message)
            on_outcome(Outcome(message.digest_id, status, f"{status} (memory)"))


class MaildirMailer(Mailer):
    """Writes each message as a file into a Maildir: the embedded default.

    A fresh install needs no mail server; any mail client (mutt -f, Thunderbird's
    local folders) reads the result. Writing a file is the whole delivery, so
    the only failures are file-system ones, which are worth retrying.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        try:
            box = mailbox.Maildir(self.path, create=True)
        except OSError as exc:
            raise DeliveryError(f"cannot open maildir {self.path}: {exc.strerror}") from None
        for message in messages:
            try:
                # Files in a Maildir end lines the Unix way; the wire's CRLF is for SMTP.
                key = box.add(message.data.replace(b"\r\n", b"\n"))
            except OSError as exc:
                on_outcome(Outcome(message.digest_id, "retry", f"maildir: {exc.strerror}"))
            else:
                on_outcome(Outcome(message.digest_id, "sent", f"maildir {key}"))


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
        # Every worker gave up connecting: what is left waits for a later run.
        for message in feed.take_waiting():
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
            # rather than aiosmtplib's timer per command: each of those cost a timer,
            # a future and two callbacks, four times a message, about a tenth of the
            # sender's CPU (bench/deliver.py).
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
        (line endings, dot-stuffing); on a 40 KB digest that was most of the
        sender's CPU. `wire_form` does the same with `bytes.count`/`replace`,
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
    """`<address>` for MAIL/RCPT; aiosmtplib refuses control characters (no injection)."""
    return b"<" + address.strip().encode("ascii") + b">"


_BARE_LF = re.compile(rb"\r?\n")


def wire_form(data: bytes) -> bytes:
    """A message as it goes after DATA: CRLF line ends, dot-stuffed, ending in CRLF.CRLF.

    Bare LF (what `email` writes with its default policy) is turned into CRLF;
    a lone CR inside a line is left alone, as mail servers do.
    """
    if data.count(b"\n") != data.count(b"\r\n"):
        data = _BARE_LF.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


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
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        await connection.execute_command(b"QUIT")
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    connection.close()


def mailer_from_settings(settings: Settings) -> Mailer:
    """The backend `delivery.backend` names, configured from the settings."""
    delivery, smtp = settings.delivery, settings.smtp
    if delivery.backend == "maildir":
        return MaildirMailer(delivery.maildir_path)
    return SmtpMailer(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=smtp.password,
        timeout=smtp.timeout_seconds,
        helo_name=smtp.helo_name,
        validate_certs=smtp.validate_certs,
        concurrency=delivery.concurrency,
        max_messages_per_connection=delivery.max_messages_per_connection,
        max_per_second=delivery.max_per_second,
    )


_DONE = object()
_STOP_POLL_SECONDS = 0.05
_SIGNAL_POLL_SECONDS = 0.5


def _next(results: queue.SimpleQueue[object]) -> object:
    """The next item, waking now and then: Ctrl-C caught by the sending thread is
    only handled once this (main) thread runs Python code again."""
    while True:
        try:
            return results.get(timeout=_SIGNAL_POLL_SECONDS)
        except queue.Empty:
            continue


def iter_outcomes(
    mailer: Mailer,
    messages: Sequence[OutgoingMessage] | MessageFeed,
    *,
    most: int = 500,
    linger: float = 0.0,
    stop: Callable[[], bool] | None = None,
) -> Generator[list[Outcome], None, None]:
    """The one sync/async crossing: send messages, yield outcomes as they complete.

    `asyncio.run(mailer.send_feed(...))` runs on a helper thread while the
    caller consumes outcomes from a queue on its own thread, so the caller's
    (sync, SQLAlchemy) writes overlap with sending instead of stalling the event
    loop. Each item is every outcome that arrived since the last one (at least
    one, at most `most`, gathered for up to `linger` seconds), so a caller
    recording them is never behind by more than one write. A DeliveryError from
    the mailer is re-raised here after the outcomes reported before it.

    Given a `MessageFeed`, the caller may add messages between items, and must
    close the feed when it has no more (else this waits for them). The feed is
    closed here once the mailer returns, so a caller sees when adding is
    pointless; messages added that late are never reported.

    `stop` is polled while sending; once it returns True the messages not yet
    started are withdrawn from the feed, the ones in flight finish, and the
    withdrawn ones are simply never reported. The same happens when the
    caller stops consuming (closes the generator, e.g. because recording an
    outcome failed): messages whose outcomes nobody records must not go on
    being sent, or their rows, still `sending`, would all be sent again once
    their lease runs out.
    """
    feed = messages if isinstance(messages, MessageFeed) else MessageFeed(messages, closed=True)
    results: queue.SimpleQueue[object] = queue.SimpleQueue()
    failure: list[BaseException] = []
    abandoned = threading.Event()

    def halted() -> bool:
        return abandoned.is_set() or (stop is not None and stop())

    async def send() -> None:
        task = asyncio.ensure_future(mailer.send_feed(feed, results.put))
        while not task.done():
            await asyncio.wait({task}, timeout=_STOP_POLL_SECONDS)
            if halted() and not task.done():
                feed.withdraw()
                break
        await task

    def run() -> None:
        try:
            asyncio.run(send())
        except BaseException as exc:  # handed to the consuming thread, which re-raises
            failure.append(exc)
        finally:
            feed.withdraw()  # whatever was added after the mailer returned stays unsent
            results.put(_DONE)

    thread = threading.Thread(target=run, name="digest-send", daemon=True)
    thread.start()
    done = False
    try:
        while not done:
            batch: list[Outcome] = []
            item = _next(results)
            deadline = time.monotonic() + linger
            while True:
                if item is _DONE:
                    done = True
                    break
                assert isinstance(item, Outcome)
                batch.append(item)
                if len(batch) >= most:
                    break
                try:
                    item = results.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if batch:
                yield batch
    finally:
        if not done:
            abandoned.set()
            feed.withdraw()  # at once: the sender's own poll comes up to 50 ms later
    thread.join()
    if failure:
        raise failure[0]
