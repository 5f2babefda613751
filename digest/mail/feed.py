"""The thread/event-loop bridge: messages added on the outbox's thread, taken on the sender's loop.

The outbox adds batch after batch to one `MessageFeed` while a mailer's
`send_feed` empties it on the event loop of the sending thread (see
`digest.mail.crossing`), so one SMTP session serves the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Iterable

from digest.mail.contract import OutgoingMessage


class MessageFeed:
    """Messages for a mailer, added to while the earlier ones are being sent.

    The outbox claims and builds its next batch while the current one is going
    out and adds it here, so SMTP connections stay open and busy across batches
    instead of draining, closing and reconnecting every `batch_size` messages,
    and rendering overlaps sending. Filled from the outbox's thread, emptied on
    the sender's event loop: the lock orders the two, and `add`, `close`,
    `withdraw` and `settle` wake a waiting sender with `call_soon_threadsafe`.

    With a `window`, at most that many messages are out at once: taken by the
    sender and not yet `settle`d by the caller (who settles a message once
    its outcome is safely recorded). That bounds what a crash can send twice
    by a count, whatever the timing: only unsettled messages can have reached
    the server without their outcome being on disk. Without one (a
    confirmation email, a test), messages are handed out as fast as asked.
    """

    def __init__(
        self,
        messages: Iterable[OutgoingMessage] = (),
        *,
        closed: bool = False,
        window: int | None = None,
    ) -> None:
        self._queue: deque[OutgoingMessage] = deque(messages)
        self._closed = closed
        self._window = window
        self._out: set[int] = set()  # digest ids taken and not settled
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._more: asyncio.Event | None = None

    @property
    def waiting(self) -> int:
        """Messages added and not yet taken by the sender."""
        return len(self._queue)

    @property
    def out(self) -> frozenset[int]:
        """The digests taken by the sender and not yet settled: possibly on the wire."""
        with self._lock:
            return frozenset(self._out)

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

    def settle(self, digest_ids: Iterable[int]) -> None:
        """These taken messages have their outcome recorded: their room in the window is free."""
        with self._lock:
            self._out.difference_update(digest_ids)
        self._wake()

    def withdraw(self) -> list[OutgoingMessage]:
        """Stop: take the messages not yet taken, window or not, and close.

        Returned for a sender that gives up, which reports each of them (as
        `retry`) instead of sending it; a caller that stops never reports them.
        """
        with self._lock:
            dropped = list(self._queue)
            self._queue.clear()
            self._closed = True
        self._wake()
        return dropped

    async def next(self) -> OutgoingMessage | None:
        """The next message, waiting for more while the feed is open; None once it is done."""
        while True:
            if more := self._wait_for_more():
                await more.wait()
                continue
            with self._lock:
                if not self._queue:
                    return None
                message = self._queue.popleft()
                self._out.add(message.digest_id)
                return message

    async def next_batch(self) -> list[OutgoingMessage]:
        """Everything waiting (after waiting for something, while open); [] once done."""
        while more := self._wait_for_more():
            await more.wait()
        return self.take_waiting()

    def take_waiting(self) -> list[OutgoingMessage]:
        """Everything waiting now (as much as the window has room for), without waiting."""
        with self._lock:
            room = len(self._queue) if self._window is None else self._window - len(self._out)
            batch = [self._queue.popleft() for _ in range(max(0, min(room, len(self._queue))))]
            self._out.update(message.digest_id for message in batch)
        return batch

    def _wait_for_more(self) -> asyncio.Event | None:
        """The event to wait on while nothing can be taken but more may come, else None.

        That is: the feed is empty but open, or messages wait but the window
        is full (closed or not: they are still to be sent once room frees up).
        """
        with self._lock:
            full = self._window is not None and len(self._out) >= self._window
            if (self._queue and not full) or (not self._queue and self._closed):
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
