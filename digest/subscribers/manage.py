"""Subscribers and their topics: the store-facing operations behind the CLI and the web app.

Every function takes an open Session and leaves committing to the caller, so
a job of many rows (an import) is all-or-nothing, and `now` comes in as a
value. Everything a user typed is validated before a row is touched; a
problem raises `BadInput` naming the value, so the shells only have to print
it. Addresses are stored normalised (email-validator, syntax only) and
lower-cased, which is what makes `Alice@Example.org` and `alice@example.org`
the same subscriber.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from digest.config import ScheduleSettings
from digest.errors import BadInput
from digest.filters import Node, parse, parse_tree
from digest.store.reads import chunks
from digest.store.schema import SUBSCRIBER_STATUSES, Digest, Subscriber, Topic
from digest.values import FREQUENCIES, WEEKDAYS, zone_of

MAX_TOPICS = 50
MAX_LABEL_LENGTH = 200
MAX_PAPERS_LIMIT = 100
OPEN_DIGEST_STATUSES = ("pending", "retry")  # not yet handed to a worker: can be cancelled
ENDED_STATUSES = ("unsubscribed", "bounced")


@dataclass
class SubscribeOutcome:
    """What `subscribe` did: created, reactivated, or which settings changed."""

    subscriber_id: int
    created: bool
    reactivated: bool
    changes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- validation


def normalise_email(raw: str) -> str:
    """The address as stored: syntax-checked (no DNS), normalised, lower-cased, ASCII.

    Every address stored must be one any relay can deliver: an international
    domain is kept in its ASCII (punycode) form, so `user@bücher.de` and
    `user@xn--bcher-kva.de` are one subscriber; a non-ASCII local part
    (`üser@…`), which needs SMTPUTF8 from every relay on the way, is refused.
    """
    candidate = raw.strip()
    if not candidate:
        raise BadInput("the email address is empty")
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise BadInput(f"not a valid email address: {raw!r}: {exc}") from None
    if checked.ascii_email is None:
        raise BadInput(
            f"{raw.strip()!r}: an address with non-ASCII characters before the @ can only be "
            "delivered with SMTPUTF8, which digest does not use; give an ASCII address"
        )
    return checked.ascii_email.lower()


def check_timezone(name: str) -> str:
    """The zone name as stored (trimmed); BadInput if the tz database does not know it."""
    name = name.strip()
    zone_of(name)
    return name


def check_hour(hour: int) -> int:
    if not 0 <= hour <= 23:
        raise BadInput(f"hour {hour} is not an hour of the day: use 0 to 23 (local time)")
    return hour


def check_frequency(frequency: str) -> str:
    value = frequency.strip().lower()
    if value not in FREQUENCIES:
        raise BadInput(f"unknown frequency {frequency!r}: use daily or weekly")
    return value


def parse_weekday(day: int | str) -> int:
    """0 (Monday) to 6, from a number or a day name (`mon`, `Monday`)."""
    if isinstance(day, int):
        if 0 <= day <= 6:
            return day
    else:
        key = day.strip().lower()[:3]
        if len(day.strip()) >= 3 and key in WEEKDAYS:
            return WEEKDAYS.index(key)
    raise BadInput(f"unknown weekday {day!r}: use mon, tue, wed, thu, fri, sat or sun")


def check_max_papers(count: int) -> int:
    if not 1 <= count <= MAX_PAPERS_LIMIT:
        raise BadInput(f"max papers {count} is out of range: use 1 to {MAX_PAPERS_LIMIT}")
    return count


def check_label(label: str | None) -> str | None:
    if label is None or not label.strip():
        return None
    label = label.strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise BadInput(f"a topic label has at most {MAX_LABEL_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in label):
        raise BadInput(f"the topic label {label!r} contains control characters")
    return label


@functools.lru_cache(maxsize=4096)
def check_topic(text: str) -> tuple[str, Node]:
    """The topic as it will be stored (outer spaces trimmed) and its parsed tree.

    Remembered: a big import repeats the same few hundred topics thousands of
    times, and checks each twice (reading the file, then creating). A parse
    that fails raises each time; only good topics are kept.
    """
    stripped = text.strip()
    return stripped, parse(stripped)


def _tree(topic: Topic) -> Node | None:
    try:
        return parse_tree(topic.query)
    except BadInput:  # saved under older rules; compare by text only
        return None


# ---------------------------------------------------------------------- reads


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))


def get_subscriber(session: Session, email: str) -> Subscriber:
    """Like `find_subscriber`, but a missing address is a user error."""
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise BadInput(f"no subscriber with the address {normalise_email(email)}")
    return subscriber


def list_subscribers(
    session: Session,
    *,
    status: str | None = None,
    search: str | None = None,
    limit: int | None = None,
) -> tuple[list[Subscriber], int]:
    """Subscribers by address (with their topics), and how many match in all.

    `search` keeps addresses containing the text (any case); `limit` caps the
    rows returned, not the count, so a caller can say "20 of 3,000".
    """
    condition: list[Any] = []
    if status is not None:
        if status not in SUBSCRIBER_STATUSES:
            raise BadInput(
                f"unknown status {status!r}: use one of {', '.join(SUBSCRIBER_STATUSES)}"
            )
        condition.append(Subscriber.status == status)
    if search:
        condition.append(Subscriber.email.contains(search.strip().lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*condition)) or 0
    statement = (
        select(Subscriber)
        .where(*condition)
        .order_by(Subscriber.email)
        .options(selectinload(Subscriber.topics))  # one query for all topics, not one each
        .limit(limit)
    )
    return list(session.scalars(statement)), total


def recent_digests(session: Session, subscriber: Subscriber, *, limit: int = 10) -> list[Digest]:
    return list(
        session.scalars(
            select(Digest)
            .where(Digest.subscriber_id == subscriber.id)
            .order_by(Digest.planned_at.desc(), Digest.id.desc())
            .limit(limit)
        )
    )


def count_open_digests(session: Session, subscriber: Subscriber) -> int:
    """Digests planned for this subscriber that no worker has taken yet."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Digest)
            .where(Digest.subscriber_id == subscriber.id, Digest.status.in_(OPEN_DIGEST_STATUSES))
        )
        or 0
    )


# --------------------------------------------------------------------- writes


def subscribe(
    session: Session,
    email: str,
    topics: Sequence[str],
    *,
    now: datetime,
    defaults: ScheduleSettings,
    timezone: str | None = None,
    send_hour: int | None = None,
    frequency: str | None = None,
    weekday: int | str | None = None,
    max_papers: int | None = None,
    confirmed: bool = False,
    labels: Sequence[str | None] | None = None,
) -> SubscribeOutcome:
    """Create a subscriber, or update (and if needed reactivate) the existing one.

    Topics are added to those the subscriber has (a topic already there, by
    meaning, is kept once); settings not given keep their value, or for a new
    subscriber come from `defaults`. A new subscriber starts `pending` unless
    `confirmed`. An unsubscribed or bounced address is reactivated with
    `subscribed_at` reset, so schedules owe nothing for the time away.
    """
    address = normalise_email(email)
    wanted = _checked_topics(topics, labels)
    schedule = _checked_schedule(timezone, send_hour, frequency, weekday, max_papers)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))

    if subscriber is None:
        values = _new_subscriber(address, wanted, schedule, now, defaults, confirmed)
        subscriber = Subscriber(**values)
        subscriber.topics = [
            Topic(query=text, label=label, created_at=now) for text, _, label in wanted
        ]
        session.add(subscriber)
        session.flush()
        return SubscribeOutcome(subscriber.id, created=True, reactivated=False)

    changes: list[str] = []
    reactivated = subscriber.status in ENDED_STATUSES
    if reactivated:
        since = subscriber.unsubscribed_at or subscriber.updated_at
        changes.append(f"re-subscribed (was {subscriber.status} since {since:%Y-%m-%d %H:%M} UTC)")
        subscriber.status = "active" if confirmed else "pending"
        subscriber.subscribed_at = now
        subscriber.unsubscribed_at = None
        subscriber.consecutive_failures = 0
        if confirmed:
            subscriber.confirmed_at = now
    elif confirmed and subscriber.status == "pending":
        subscriber.status = "active"
        subscriber.confirmed_at = now
        changes.append("confirmed")
    changes += _apply_schedule(subscriber, schedule)
    changes += _merge_topics(subscriber, wanted, now)
    if changes:
        subscriber.updated_at = now
    session.flush()
    return SubscribeOutcome(subscriber.id, created=False, reactivated=reactivated, changes=changes)


@dataclass(frozen=True)
class NewSubscription:
    """One subscriber to create, as `subscribe` takes it (None: the default); `email`
    already normalised (`normalise_email`)."""

    email: str
    topics: Sequence[str]
    timezone: str | None = None
    send_hour: int | None = None
    frequency: str | None = None
    weekday: int | str | None = None
    max_papers: int | None = None


def checked_new(
    entry: NewSubscription, *, now: datetime, defaults: ScheduleSettings, confirmed: bool
) -> tuple[dict[str, Any], list[tuple[str, Node, str | None]]]:
    """The subscriber row and topics `subscribe` would create; BadInput as it would raise.

    `entry.email` must already be as `normalise_email` returns it (a `CsvRow`'s is):
    validating every address twice made a large import noticeably slower.
    """
    address = entry.email
    wanted = _checked_topics(entry.topics, None)
    schedule = _checked_schedule(
        entry.timezone, entry.send_hour, entry.frequency, entry.weekday, entry.max_papers
    )
    return _new_subscriber(address, wanted, schedule, now, defaults, confirmed), wanted


def create_many(
    session: Session,
    checked: Sequence[tuple[dict[str, Any], list[tuple[str, Node, str | None]]]],
    *,
    now: datetime,
) -> None:
    """Insert subscribers checked by `checked_new` (none exists yet), in a few statements.

    What `subscribe` does for a new address, for a whole import at once: one
    multi-row INSERT per chunk of subscribers and of topics instead of an
    ORM flush per subscriber, which made importing a big list take minutes.
    """
    for part in chunks(checked):
        ids = dict(
            session.execute(
                insert(Subscriber).returning(Subscriber.email, Subscriber.id),
                [values for values, _ in part],
            )
            .tuples()
            .all()
        )
        topics = [
            {
                "subscriber_id": ids[values["email"]],
                "query": text,
                "label": label,
                "created_at": now,
            }
            for values, wanted in part
            for text, _, label in wanted
        ]
        for rows in chunks(topics):
            session.execute(insert(Topic), rows)


def unsubscribe(session: Session, subscriber: Subscriber, *, now: datetime) -> bool:
    """Stop all mail to the subscriber; keep the row so history and "never resend" survive.

    Digests planned but not yet taken by a worker are cancelled. Returns False
    when the subscriber had already left.
    """
    if subscriber.status == "unsubscribed":
        return False
    subscriber.status = "unsubscribed"
    subscriber.unsubscribed_at = now
    subscriber.updated_at = now
    session.execute(
        update(Digest)
        .where(Digest.subscriber_id == subscriber.id, Digest.status.in_(OPEN_DIGEST_STATUSES))
        .values(status="cancelled", next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return True


def confirm(session: Session, subscriber: Subscriber, *, now: datetime) -> bool:
    """Mark a pending subscriber active; False if already confirmed.

    A subscriber who has left is not brought back by an old confirmation
    link: that takes a new subscription.
    """
    if subscriber.status in ENDED_STATUSES:
        raise BadInput(
            f"{subscriber.email} is {subscriber.status}; subscribe again instead of confirming"
        )
    if subscriber.status == "active":
        return False
    subscriber.status = "active"
    subscriber.confirmed_at = now
    subscriber.updated_at = now
    session.flush()
    return True


def add_topic(
    session: Session,
    subscriber: Subscriber,
    query: str,
    *,
    now: datetime,
    label: str | None = None,
) -> Topic:
    """Add one topic (parsed first: syntax errors and never-matching filters are refused)."""
    text, tree = check_topic(query)
    checked_label = check_label(label)
    existing = _find_same(subscriber, text, tree)
    if existing is not None:
        raise BadInput(
            f"{subscriber.email} already has this topic: #{existing.id} {existing.query!r}"
        )
    if len(subscriber.topics) >= MAX_TOPICS:
        raise BadInput(f"{subscriber.email} already has {MAX_TOPICS} topics, the most allowed")
    topic = Topic(query=text, label=checked_label, created_at=now)
    subscriber.topics.append(topic)
    subscriber.updated_at = now
    session.flush()
    return topic


def remove_topic(session: Session, subscriber: Subscriber, query_or_id: str | int) -> None:
    """Remove a topic named by its id, its text (or the same filter) or its label."""
    topic = find_topic(subscriber, query_or_id)
    if topic is None:
        listed = ", ".join(f"#{t.id} {t.query!r}" for t in subscriber.topics) or "none"
        raise BadInput(f"{subscriber.email} has no topic {query_or_id!r} (their topics: {listed})")
    subscriber.topics.remove(topic)
    session.flush()


def find_topic(subscriber: Subscriber, query_or_id: str | int) -> Topic | None:
    if isinstance(query_or_id, int):
        return next((t for t in subscriber.topics if t.id == query_or_id), None)
    text = query_or_id.strip()
    for topic in subscriber.topics:
        if topic.query == text:
            return topic
    number = text.removeprefix("#")
    if number.isascii() and number.isdigit():  # not "²", which int() refuses
        return find_topic(subscriber, int(number))
    for topic in subscriber.topics:
        if topic.label is not None and topic.label.casefold() == text.casefold():
            return topic
    try:
        tree = parse_tree(text)
    except BadInput:
        return None
    return next((t for t in subscriber.topics if _tree(t) == tree), None)


def update_schedule(
    session: Session,
    subscriber: Subscriber,
    *,
    now: datetime,
    timezone: str | None = None,
    send_hour: int | None = None,
    frequency: str | None = None,
    weekday: int | str | None = None,
    max_papers: int | None = None,
) -> list[str]:
    """Change the given settings; returns what changed, in words."""
    schedule = _checked_schedule(timezone, send_hour, frequency, weekday, max_papers)
    changes = _apply_schedule(subscriber, schedule)
    if changes:
        subscriber.updated_at = now
        session.flush()
    return changes


def pause(session: Session, subscriber: Subscriber, *, until: datetime, now: datetime) -> None:
    """No digests until `until` (aware); the periods in between are not made up later."""
    if until.tzinfo is None:
        raise BadInput("the pause end needs a timezone")
    if until <= now:
        raise BadInput(f"cannot pause until {until:%Y-%m-%d %H:%M %Z}: that is not in the future")
    subscriber.paused_until = until
    subscriber.updated_at = now
    session.flush()


def resume(session: Session, subscriber: Subscriber, *, now: datetime) -> bool:
    """End a pause; False if the subscriber was not paused."""
    if subscriber.paused_until is None or subscriber.paused_until <= now:
        return False
    subscriber.paused_until = None
    subscriber.updated_at = now
    session.flush()
    return True


# ------------------------------------------------------------------- helpers


def weekday_name(day: int) -> str:
    return WEEKDAYS[day]


def _new_subscriber(
    address: str,
    wanted: list[tuple[str, Node, str | None]],
    schedule: dict[str, str | int],
    now: datetime,
    defaults: ScheduleSettings,
    confirmed: bool,
) -> dict[str, Any]:
    """A new subscriber's column values: settings not given come from `defaults`."""
    if not wanted:
        raise BadInput(f"{address} is not subscribed yet: give at least one topic (--topic)")
    if len(wanted) > MAX_TOPICS:
        raise BadInput(f"at most {MAX_TOPICS} topics per subscriber")
    return {
        "email": address,
        "status": "active" if confirmed else "pending",
        "timezone": schedule.get("timezone", defaults.default_timezone),
        "send_hour": schedule.get("send_hour", defaults.default_send_hour),
        "frequency": schedule.get("frequency", defaults.default_frequency),
        "weekday": schedule.get("weekday", WEEKDAYS.index(defaults.default_weekday)),
        "max_papers": schedule.get("max_papers", defaults.default_max_papers),
        "created_at": now,
        "subscribed_at": now,
        "updated_at": now,
        "confirmed_at": now if confirmed else None,
        "consecutive_failures": 0,
    }


def _checked_topics(
    topics: Sequence[str], labels: Sequence[str | None] | None
) -> list[tuple[str, Node, str | None]]:
    given_labels = list(labels or [])
    if len(given_labels) > len(topics):
        raise BadInput(
            f"{len(given_labels)} labels for {len(topics)} topics: give one --label per --topic"
        )
    given_labels += [None] * (len(topics) - len(given_labels))
    checked: list[tuple[str, Node, str | None]] = []
    seen: set[Node] = set()
    for text, label in zip(topics, given_labels, strict=True):
        stored, tree = check_topic(text)
        if tree not in seen:
            seen.add(tree)
            checked.append((stored, tree, check_label(label)))
    return checked


def _checked_schedule(
    timezone: str | None,
    send_hour: int | None,
    frequency: str | None,
    weekday: int | str | None,
    max_papers: int | None,
) -> dict[str, str | int]:
    schedule: dict[str, str | int] = {}
    if timezone is not None:
        schedule["timezone"] = check_timezone(timezone)
    if send_hour is not None:
        schedule["send_hour"] = check_hour(send_hour)
    if frequency is not None:
        schedule["frequency"] = check_frequency(frequency)
    if weekday is not None:
        schedule["weekday"] = parse_weekday(weekday)
    if max_papers is not None:
        schedule["max_papers"] = check_max_papers(max_papers)
    return schedule


_SHOWN: dict[str, tuple[str, Callable[[Any], str]]] = {
    "timezone": ("timezone", str),
    "send_hour": ("send hour", str),
    "frequency": ("frequency", str),
    "weekday": ("weekday", lambda day: WEEKDAYS[day]),
    "max_papers": ("max papers", str),
}


def _apply_schedule(subscriber: Subscriber, schedule: dict[str, str | int]) -> list[str]:
    changes = []
    for key, value in schedule.items():
        old = getattr(subscriber, key)
        if old != value:
            name, show = _SHOWN[key]
            changes.append(f"{name}: {show(old)} -> {show(value)}")
            setattr(subscriber, key, value)
    return changes


def _find_same(subscriber: Subscriber, text: str, tree: Node) -> Topic | None:
    for topic in subscriber.topics:
        if topic.query == text or _tree(topic) == tree:
            return topic
    return None


def _merge_topics(
    subscriber: Subscriber,
    wanted: list[tuple[str, Node, str | None]],
    now: datetime,
) -> list[str]:
    changes = []
    for text, tree, label in wanted:
        existing = _find_same(subscriber, text, tree)
        if existing is None:
            subscriber.topics.append(Topic(query=text, label=label, created_at=now))
            changes.append(f"added topic {text!r}")
        elif label is not None and existing.label != label:
            changes.append(f"label of topic {existing.query!r}: {existing.label!r} -> {label!r}")
            existing.label = label
    if len(subscriber.topics) > MAX_TOPICS:
        raise BadInput(f"at most {MAX_TOPICS} topics per subscriber")
    return changes
