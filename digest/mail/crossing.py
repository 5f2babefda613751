"""The one sync/async crossing (DESIGN): synchronous callers send through an async mailer.

`iter_outcomes` runs the mailer's event loop on a helper thread and hands the
outcomes back to the calling thread as they complete, so everything outside
this module stays synchronous.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence

from digest.mail.contract import Mailer, Outcome, OutgoingMessage
from digest.mail.feed import MessageFeed

_DONE = object()
_STOP_POLL_SECONDS = 0.05
_SIGNAL_POLL_SECONDS = 0.5


def _next_result(results: queue.SimpleQueue[object]) -> object:
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
            item = _next_result(results)
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
            feed.withdraw()  # now, not at the sender's next poll of `halted`
    thread.join()
    if failure:
        raise failure[0]


def send_all(mailer: Mailer, messages: Sequence[OutgoingMessage]) -> list[Outcome]:
    """Send a few messages through the same crossing and wait for every outcome.

    For a caller with one message and nothing to record meanwhile (a
    confirmation email): it still goes through `iter_outcomes`, so there is
    one place where synchronous code meets the event loop.
    """
    return [outcome for batch in iter_outcomes(mailer, messages) for outcome in batch]
