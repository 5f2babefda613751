"""The `Mailer` contract: what a backend is handed and what it reports back.

A backend is a `Mailer`: one async method, `send`, that takes a batch of
finished messages and reports an `Outcome` for each as soon as it is known.
Everything else about a backend (connections, TLS, rate limits, files) stays
behind that method, so the outbox never changes when the backend does, and
tests pass a `MemoryMailer` in instead of patching anything.

Outcome classes follow SMTP reply codes: 2xx is `sent`; 4xx, a dropped
connection or a timeout is `retry` (the message may be tried again later);
5xx is `failed` (the server refused it for good).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from digest.mail.feed import MessageFeed

OutcomeStatus = Literal["sent", "retry", "failed"]


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
