"""Subscriber operations against a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from digest.config import ScheduleSettings
from digest.errors import BadInput, QuerySyntaxError
from digest.store.database import Store
from digest.store.schema import Digest, Subscriber, Topic
from digest.subscribers import csvfile as subscriber_csv
from digest.subscribers import manage as subscriptions

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DEFAULTS = ScheduleSettings(default_timezone="Europe/Berlin", default_send_hour=7)


def _subscribe(
    store: Store, email: str, *topics: str, **kwargs: object
) -> subscriptions.SubscribeOutcome:
    kwargs.setdefault("now", NOW)
    with store.transaction() as session:
        return subscriptions.subscribe(
            session,
            email,
            topics,
            defaults=DEFAULTS,
            **kwargs,  # type: ignore[arg-type]
        )


def _get(store: Store, email: str) -> Subscriber:
    with store.transaction() as session:
        subscriber = subscriptions.get_subscriber(session, email)
        subscriber.topics  # noqa: B018  (load before the session closes)
        return subscriber


def test_new_subscriber_takes_defaults_and_starts_pending(store: Store) -> None:
    outcome = _subscribe(store, " Alice@Example.ORG ", "diffusion models")
    assert outcome.created and not outcome.reactivated
    alice = _get(store, "alice@example.org")
    assert alice.email == "alice@example.org"
    assert (alice.status, alice.timezone, alice.send_hour, alice.frequency) == (
        "pending",
        "Europe/Berlin",
        7,
        "daily",
    )
    assert alice.subscribed_at == NOW and alice.confirmed_at is None
    assert [t.query for t in alice.topics] == ["diffusion models"]


def test_resubscribing_updates_and_reports_changes(store: Store) -> None:
    first = _subscribe(store, "alice@example.org", "diffusion models")
    later = NOW + timedelta(days=1)
    outcome = _subscribe(
        store,
        "ALICE@example.org",
        "Diffusion   Models",  # the same filter: kept once
        "robot*",
        now=later,
        send_hour=9,
        frequency="weekly",
        weekday="fri",
        confirmed=True,
    )
    assert outcome.subscriber_id == first.subscriber_id
    assert not outcome.created
    assert outcome.changes == [
        "confirmed",
        "send hour: 7 -> 9",
        "frequency: daily -> weekly",
        "weekday: mon -> fri",
        "added topic 'robot*'",
    ]
    alice = _get(store, "alice@example.org")
    assert alice.status == "active" and alice.confirmed_at == later
    assert [t.query for t in alice.topics] == ["diffusion models", "robot*"]
    with store.transaction() as session:
        assert len(session.scalars(select(Subscriber)).all()) == 1
    assert _subscribe(store, "alice@example.org", "robot*").changes == []


def test_unsubscribe_keeps_the_row_and_cancels_open_digests(store: Store) -> None:
    outcome = _subscribe(store, "alice@example.org", "llm", confirmed=True)
    with store.transaction() as session:
        for period, status in [
            ("2026-11-20", "sent"),
            ("2026-11-21", "retry"),
            ("2026-11-22", "pending"),
        ]:
            session.add(
                Digest(
                    subscriber_id=outcome.subscriber_id,
                    period=period,
                    status=status,
                    message_id=f"<{period}@test>",
                    planned_at=NOW,
                    window_start=NOW - timedelta(days=1),
                )
            )
    later = NOW + timedelta(hours=1)
    with store.transaction() as session:
        alice = subscriptions.get_subscriber(session, "alice@example.org")
        assert subscriptions.count_open_digests(session, alice) == 2
        assert subscriptions.unsubscribe(session, alice, now=later) is True
        assert subscriptions.unsubscribe(session, alice, now=later) is False
    with store.transaction() as session:
        statuses = dict(list(session.execute(select(Digest.period, Digest.status)).tuples()))
        alice = subscriptions.get_subscriber(session, "alice@example.org")
        assert (alice.status, alice.unsubscribed_at) == ("unsubscribed", later)
        assert len(alice.topics) == 1
    assert statuses == {"2026-11-20": "sent", "2026-11-21": "cancelled", "2026-11-22": "cancelled"}


def test_resubscribing_after_unsubscribe_reactivates(store: Store) -> None:
    _subscribe(store, "alice@example.org", "llm", confirmed=True)
    with store.transaction() as session:
        subscriptions.unsubscribe(
            session, subscriptions.get_subscriber(session, "alice@example.org"), now=NOW
        )
    back = NOW + timedelta(days=30)
    outcome = _subscribe(store, "alice@example.org", now=back)
    assert outcome.reactivated
    assert outcome.changes[0].startswith("re-subscribed (was unsubscribed since 2026-11-22")
    alice = _get(store, "alice@example.org")
    assert (alice.status, alice.subscribed_at, alice.unsubscribed_at) == ("pending", back, None)


def test_confirm(store: Store) -> None:
    _subscribe(store, "alice@example.org", "llm")
    with store.transaction() as session:
        alice = subscriptions.get_subscriber(session, "alice@example.org")
        assert subscriptions.confirm(session, alice, now=NOW) is True
        assert subscriptions.confirm(session, alice, now=NOW) is False
        subscriptions.unsubscribe(session, alice, now=NOW)
        with pytest.raises(BadInput, match="subscribe again"):
            subscriptions.confirm(session, alice, now=NOW)


def test_topics_add_and_remove(store: Store) -> None:
    _subscribe(store, "alice@example.org", "llm")
    with store.transaction() as session:
        alice = subscriptions.get_subscriber(session, "alice@example.org")
        topic = subscriptions.add_topic(session, alice, '"kv cache"', now=NOW, label="KV")
        with pytest.raises(BadInput, match="already has this topic"):
            subscriptions.add_topic(session, alice, "LLM", now=NOW)
        with pytest.raises(QuerySyntaxError):
            subscriptions.add_topic(session, alice, "(kv", now=NOW)
        subscriptions.remove_topic(session, alice, "kv")  # by label, any case
        assert [t.query for t in alice.topics] == ["llm"]
        with pytest.raises(BadInput, match="has no topic"):
            subscriptions.remove_topic(session, alice, topic.id)
        subscriptions.remove_topic(session, alice, "LLM")  # the same filter
        assert alice.topics == []
    with store.transaction() as session:
        assert session.scalars(select(Topic)).all() == []


def test_update_schedule_and_pause(store: Store) -> None:
    _subscribe(store, "alice@example.org", "llm")
    with store.transaction() as session:
        alice = subscriptions.get_subscriber(session, "alice@example.org")
        assert subscriptions.update_schedule(session, alice, now=NOW, timezone="UTC") == [
            "timezone: Europe/Berlin -> UTC"
        ]
        assert subscriptions.update_schedule(session, alice, now=NOW, timezone="UTC") == []
        with pytest.raises(BadInput, match="hour 24"):
            subscriptions.update_schedule(session, alice, now=NOW, send_hour=24)
        with pytest.raises(BadInput, match="not in the future"):
            subscriptions.pause(session, alice, until=NOW, now=NOW)
        subscriptions.pause(session, alice, until=NOW + timedelta(days=7), now=NOW)
        assert alice.paused_until == NOW + timedelta(days=7)
        assert subscriptions.resume(session, alice, now=NOW) is True


BAD_SUBSCRIPTIONS: list[tuple[dict[str, object], str]] = [
    ({"email": "not-an-address"}, "not a valid email address"),
    ({"email": ""}, "empty"),
    ({"timezone": "Europe/Atlantis"}, "unknown timezone"),
    ({"send_hour": 25}, "hour 25"),
    ({"frequency": "hourly"}, "unknown frequency"),
    ({"weekday": "funday"}, "unknown weekday"),
    ({"max_papers": 0}, "max papers 0"),
    ({"topics": []}, "give at least one topic"),
    ({"topics": [""]}, "empty"),
    ({"topics": ["llm\nagents"]}, "line break"),
    ({"topics": ["llm", "x" * 10_000]}, "limit is 1000"),
    ({"labels": ["a", "b"]}, "2 labels for 1 topics"),
]


def test_subscribe_refuses_bad_input_and_writes_nothing(store: Store) -> None:
    for case, message in BAD_SUBSCRIPTIONS:
        kwargs = dict(case)
        email = kwargs.pop("email", "alice@example.org")
        topics = kwargs.pop("topics", ["llm"])
        with pytest.raises(BadInput, match=message), store.transaction() as session:
            subscriptions.subscribe(
                session,
                email,  # type: ignore[arg-type]
                topics,  # type: ignore[arg-type]
                now=NOW,
                defaults=DEFAULTS,
                **kwargs,  # type: ignore[arg-type]
            )
        with store.transaction() as session:
            assert session.scalars(select(Subscriber)).all() == [], case


# ------------------------------------------------------------------------ CSV


def test_csv_round_trip(store: Store) -> None:
    _subscribe(store, "alice@example.org", "diffusion models", '"kv cache" OR llm*', confirmed=True)
    _subscribe(
        store,
        "bob@example.org",
        "robot*",
        timezone="Asia/Tokyo",
        frequency="weekly",
        weekday=4,
        max_papers=3,
    )
    with store.transaction() as session:
        exported = subscriber_csv.export_csv(subscriptions.list_subscribers(session)[0])
    rows = subscriber_csv.read_rows(exported)
    assert [r.email for r in rows] == ["alice@example.org", "bob@example.org"]
    assert rows[0].topics == ("diffusion models", '"kv cache" OR llm*')
    assert (rows[1].timezone, rows[1].frequency, rows[1].weekday, rows[1].max_papers) == (
        "Asia/Tokyo",
        "weekly",
        4,
        3,
    )
    with store.transaction() as session:
        report = subscriber_csv.import_rows(session, rows, now=NOW, defaults=DEFAULTS)
    assert report.unchanged == ["alice@example.org", "bob@example.org"]


def test_csv_names_the_bad_line() -> None:
    text = "email,topics\nalice@example.org,llm\nbob@example.org,(llm\n"
    with pytest.raises(BadInput, match=r"^line 3: unclosed parenthesis"):
        subscriber_csv.read_rows(text)
    with pytest.raises(BadInput, match=r"line 3: alice@example\.org already appears on line 1"):
        subscriber_csv.read_rows("alice@example.org,llm\n\nALICE@example.org,vlm\n")
    with pytest.raises(BadInput, match="line 1: unknown column 'topic'"):
        subscriber_csv.read_rows("email,topic\n")
    with pytest.raises(BadInput, match="line 1: not a valid email address: 'mail'"):
        subscriber_csv.read_rows("mail,topics\n")
    with pytest.raises(BadInput, match="line 1: hour must be a whole number"):
        subscriber_csv.read_rows("alice@example.org,llm,UTC,eight\n")


def test_import_leaves_people_who_left_alone(store: Store) -> None:
    _subscribe(store, "alice@example.org", "llm")
    with store.transaction() as session:
        subscriptions.unsubscribe(
            session, subscriptions.get_subscriber(session, "alice@example.org"), now=NOW
        )
    rows = subscriber_csv.read_rows("alice@example.org,llm\ncarol@example.org,vlm\n")
    with store.transaction() as session:
        report = subscriber_csv.import_rows(session, rows, now=NOW, defaults=DEFAULTS)
    assert report.skipped == [("alice@example.org", "unsubscribed")]
    assert report.created == ["carol@example.org"]
    assert _get(store, "alice@example.org").status == "unsubscribed"
