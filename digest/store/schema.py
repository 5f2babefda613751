"""The schema, in one place: SQLAlchemy 2.0 typed ORM models.

Every table of the store is declared here and nowhere else; migrations under
`alembic/versions` must produce exactly this (a test runs the autogenerate
comparison). All datetimes are stored as UTC; `UtcDateTime` makes SQLite hand
them back timezone-aware like PostgreSQL does, so code never mixes naive and
aware values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from digest.values import FREQUENCIES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced")
# pending: planned, waiting to be sent; sending: claimed by a worker (lease_until);
# retry: temporary failure, next_attempt_at says when; sent / failed: final;
# skipped: nothing matched (recorded so the period is not planned again);
# cancelled: the subscriber left before it went out.
DIGEST_STATUSES = ("pending", "sending", "retry", "sent", "failed", "skipped", "cancelled")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Subscriber(Base):
    """One person (one normalised address) and their schedule."""

    __tablename__ = "subscribers"
    __table_args__ = (
        CheckConstraint(_in("status", SUBSCRIBER_STATUSES), name="status"),
        CheckConstraint(_in("frequency", FREQUENCIES), name="frequency"),
        CheckConstraint("send_hour BETWEEN 0 AND 23", name="send_hour"),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("max_papers >= 1", name="max_papers"),
        Index("ix_subscribers_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    send_hour: Mapped[int] = mapped_column(Integer, default=8)
    frequency: Mapped[str] = mapped_column(String(8), default="daily")
    weekday: Mapped[int] = mapped_column(Integer, default=0)  # Monday = 0, as in date.weekday()
    max_papers: Mapped[int] = mapped_column(Integer, default=10)
    created_at: Mapped[datetime]
    # When the current subscription began (reset on re-subscribe): send times
    # before it owe nothing.
    subscribed_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    paused_until: Mapped[datetime | None]
    # Permanent delivery failures in a row; reaching the bounce threshold marks
    # the subscriber bounced.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)

    topics: Mapped[list[Topic]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="Topic.id"
    )
    digests: Mapped[list[Digest]] = relationship(back_populates="subscriber")


class Topic(Base):
    """One topic filter of a subscriber, stored as the text they typed."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("subscriber_id", "query"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]

    subscriber: Mapped[Subscriber] = relationship(back_populates="topics")


class Dump(Base):
    """One ingested dump, identified by the SHA-256 of its bytes."""

    __tablename__ = "dumps"
    __table_args__ = (Index("ix_dumps_ingested_at", "ingested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(32))  # "text", "hf", ...
    source_ref: Mapped[str] = mapped_column(Text)  # path or URL it came from
    issue_date: Mapped[date] = mapped_column(Date)
    ingested_at: Mapped[datetime]
    paper_count: Mapped[int] = mapped_column(Integer, default=0)
    new_paper_count: Mapped[int] = mapped_column(Integer, default=0)

    entries: Mapped[list[DumpPaper]] = relationship(
        back_populates="dump", cascade="all, delete-orphan", order_by="DumpPaper.position"
    )


class Paper(Base):
    """One paper, deduplicated across dumps by `key` (arXiv id, else normalised title)."""

    __tablename__ = "papers"
    __table_args__ = (Index("ix_papers_title_key", "title_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(512), unique=True)
    # `digest.keys.title_key(title)`, kept for every paper (also those keyed by
    # arXiv id) so a title-only listing finds the paper an id-bearing source stored.
    title_key: Mapped[str | None] = mapped_column(String(512))
    arxiv_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[Any]] = mapped_column(default=list)
    url: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    # Whatever else the source told us (the Hugging Face object, ...), so nothing is lost.
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen: Mapped[datetime]

    listings: Mapped[list[DumpPaper]] = relationship(back_populates="paper")


class DumpPaper(Base):
    """A paper as listed in one dump: its position and upvotes at that time."""

    __tablename__ = "dump_papers"
    __table_args__ = (Index("ix_dump_papers_paper_id", "paper_id"),)

    dump_id: Mapped[int] = mapped_column(
        ForeignKey("dumps.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    upvotes: Mapped[int | None] = mapped_column(Integer)

    dump: Mapped[Dump] = relationship(back_populates="entries")
    paper: Mapped[Paper] = relationship(back_populates="listings")


class Digest(Base):
    """One email to one subscriber for one period, and its delivery state.

    `period` is the subscriber's local date (`2026-11-22`) or ISO week
    (`2026-W47`); the unique constraint is what makes "one digest per period"
    hold even with several planners.
    """

    __tablename__ = "digests"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "period"),
        CheckConstraint(_in("status", DIGEST_STATUSES), name="status"),
        Index("ix_digests_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    planned_at: Mapped[datetime]
    # The ingest-time window the candidates came from: (window_start, planned_at].
    window_start: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    server_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    subscriber: Mapped[Subscriber] = relationship(back_populates="digests")
    items: Mapped[list[DigestItem]] = relationship(
        back_populates="digest", cascade="all, delete-orphan", order_by="DigestItem.rank"
    )


class Explanation(Base):
    """Why a topic filter chose a paper: the matched terms with their positions, and the
    parts of its score (see `digest.values.Pick.explanation`).

    A row of its own because every subscriber of a planning pass whose topic
    chose the same paper has the same explanation: stored per item, it was most
    of the bytes a day's digests added to the database. Written once per pass
    and referenced by its items; never updated.
    """

    __tablename__ = "explanations"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)


class DigestItem(Base):
    """A paper chosen for a digest, with why it was chosen."""

    __tablename__ = "digest_items"
    __table_args__ = (Index("ix_digest_items_paper_id", "paper_id"),)

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"))
    # The topic's label or query at planning time, so renders stay stable if it changes.
    topic_label: Mapped[str] = mapped_column(Text, default="")
    # Matched terms with positions, expansions used, score parts (see Explanation).
    explanation_id: Mapped[int | None] = mapped_column(ForeignKey("explanations.id"))

    digest: Mapped[Digest] = relationship(back_populates="items")
    paper: Mapped[Paper] = relationship()
    explained: Mapped[Explanation | None] = relationship()

    @property
    def explanation(self) -> dict[str, Any]:
        """Why it was chosen ({} when nothing was recorded)."""
        return self.explained.body if self.explained is not None else {}


class Vote(Base):
    """A reader's "more / less like this" on one paper for one of their topics.

    One row per (subscriber, paper, topic): a second vote on the same paper and
    topic replaces the first, so the table grows with what readers say, never
    with what is sent. Votes go with their topic when it is removed, and stay
    when the subscriber unsubscribes (a returning reader keeps what they taught).
    `vote` is +1 (more like this) or -1 (less like this).
    """

    __tablename__ = "votes"
    __table_args__ = (
        CheckConstraint("vote IN (-1, 1)", name="vote"),
        Index("ix_votes_topic_id", "topic_id"),
    )

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
    )
    vote: Mapped[int] = mapped_column(Integer)
    voted_at: Mapped[datetime]


class JobRun(Base):
    """The last run of one `digest run` job (ingest, hf, tick): what `digest status` reads.

    One row per job name, overwritten by every run, so it never grows: when a
    job last started and finished, by which process, when it last succeeded,
    and its last error. A tick that started long ago says the daemon is gone.
    """

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    worker: Mapped[str] = mapped_column(String(128))  # host:pid of the `digest run`
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]  # None while it runs (or if its process died)
    # The last sign of life: a start, an end, or a tick skipped because the last one is
    # still running (a long delivery round must not look like a dead daemon)
    seen_at: Mapped[datetime | None]
    ok_at: Mapped[datetime | None]  # the last run that succeeded
    error: Mapped[str | None] = mapped_column(Text)  # the last run's error, if it failed
    result: Mapped[str | None] = mapped_column(Text)  # what the last run did, in a few words


class PaperVector(Base):
    """A paper's sentence embedding (`digest.semantic`), computed once after it is stored.

    `model` names the encoder and its weights, so vectors of another model are
    recomputed rather than compared with this one's. The vector is float32,
    little-endian: 384 numbers are 1.5 KB a paper.
    """

    __tablename__ = "paper_vectors"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class TextVector(Base):
    """The embedding of a piece of filter text (a topic, or one OR-alternative of it).

    Keyed by the text's SHA-256 and the model rather than by topic: the
    100,000 subscribers of a service share a few thousand filters, and a
    filter's vector does not depend on who typed it.
    """

    __tablename__ = "text_vectors"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
