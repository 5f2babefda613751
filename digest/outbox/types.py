"""The outbox's plain values: a claimed digest, the `Build` callback, one run and its report.

They live apart from the code that uses them so that `build` (which turns a
claimed digest into bytes) and the delivery loop (which calls it) both import
them from here, and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, TypedDict, runtime_checkable

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.mail import Mailer, MessageFeed, OnOutcome
from digest.store.database import Store


class ClaimedDigest(NamedTuple):
    """A claimed digest as the outbox hands it to `Build`: its envelope, not its contents.

    Read with one plain SELECT per batch rather than as `Digest` and
    `Subscriber` objects: the ORM's bookkeeping per loaded object would be paid
    for every message, and the production build loads what it renders by id
    anyway (`digest.outbox.build.message_builder`).
    """

    id: int
    period: str
    message_id: str
    planned_at: datetime
    email: str
    subscriber_status: str


Build = Callable[[Session, ClaimedDigest], bytes]
"""Turns a claimed digest into the exact message bytes (CRLF) to send."""


@runtime_checkable
class PreparesBatch(Protocol):
    """A `Build` that loads a whole claimed batch at once before its messages are built.

    The loop calls `prepare` once per batch, then the build once per digest, so
    a digest that cannot be built still fails alone.
    """

    def prepare(self, session: Session, digests: Sequence[ClaimedDigest]) -> None: ...


class RunOptions(TypedDict, total=False):
    """The optional parts of a `DeliveryRun`, as keyword arguments."""

    limit: int | None
    worker: str | None
    email: str | None
    on_outcome: OnOutcome | None
    should_stop: Callable[[], bool] | None
    on_feed: Callable[[MessageFeed], None] | None
    planning_elsewhere: Callable[[], bool] | None


@dataclass(frozen=True)
class DeliveryRun:
    """Everything one delivery run is given, passed down as one value.

    `now` is when the run starts (the CLI's `--now`); at most `limit` digests
    are claimed, under the name `worker` (default: host and pid), only
    `email`'s when given. `on_outcome` is called after each recorded outcome (a
    progress bar). `should_stop` (the daemon shutting down) is asked before
    each claim and while sending. `on_feed` is handed the run's feed as
    sending starts, so a caller shutting down can tell which digests are on
    the wire (`MessageFeed.out`) from those it may put back.
    `planning_elsewhere` is asked before each claim: when nothing is left to
    claim while it says another process is still recording digests, the run
    waits for them instead of ending (see `digest.store.planning`).
    """

    store: Store
    settings: Settings
    mailer: Mailer
    build: Build
    now: datetime
    limit: int | None = None
    worker: str | None = None
    email: str | None = None
    on_outcome: OnOutcome | None = None
    should_stop: Callable[[], bool] | None = None
    on_feed: Callable[[MessageFeed], None] | None = None
    planning_elsewhere: Callable[[], bool] | None = None

    def stopping(self) -> bool:
        """Whether the caller has asked the run to stop."""
        return self.should_stop is not None and self.should_stop()


@dataclass
class DeliveryReport:
    """What one delivery run did, by outcome."""

    sent: int = 0
    retry: int = 0
    failed: int = 0
    cancelled: int = 0

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def as_json(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "retry": self.retry,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }
