"""The planner on real databases: windows, never-twice, catch-up, empties, concurrency."""

from __future__ import annotations

import gc
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select

from digest.errors import BadInput
from digest.gcpause import collector_paused
from digest.planner import PlanReport, plan_due
from digest.planner.record import record_plans
from digest.store.database import Store, open_store
from digest.store.schema import Digest, DigestItem
from tests.plan_factories import (
    T0,
    add_dump,
    add_subscriber,
    days,
    digests_of,
    set_status,
    settings_for,
)

DIFFUSION_A = "Diffusion Models for Video Generation"
DIFFUSION_B = "Latent Diffusion with Sparse Attention"
DIFFUSION_C = "Consistency Distillation of Diffusion Samplers"
OFF_TOPIC = "Graph Neural Networks for Molecule Property Prediction"


def plan(store: Store, database_url: str, now: object = T0, **kwargs: object) -> PlanReport:
    settings = settings_for(database_url, **kwargs.pop("schedule", {}))  # type: ignore[arg-type]
    with store.sessions() as session:
        return plan_due(session, settings, now=now, **kwargs)  # type: ignore[arg-type]


def test_first_digest_draws_on_the_lookback_window(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(10), [DIFFUSION_A])  # before the 7-day lookback
    add_dump(store, T0 - days(2), [DIFFUSION_B, OFF_TOPIC])
    report = plan(store, database_url)
    assert [(p.email, p.period, p.status) for p in report.planned] == [
        ("ada@example.org", "2026-11-22", "pending")
    ]
    planned = report.planned[0]
    assert planned.window_start == T0 - days(7)
    assert planned.digest_id is not None
    assert planned.message_id.startswith("<digest-") and planned.message_id.endswith("@localhost>")
    assert digests_of(store, sub) == [("2026-11-22", "pending", [DIFFUSION_B])]
    with store.sessions() as session:
        item = session.scalars(select(DigestItem)).one()
        assert item.rank == 1 and item.score > 0 and item.topic_label == "diffusion"
        assert any(m["term"] for m in item.explanation["matched"])


def test_a_paper_is_never_sent_twice_across_dumps(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [(DIFFUSION_A, "2611.00001", 5), DIFFUSION_B])
    plan(store, database_url)
    set_status(store, sub, "sent")
    # Next day: A trends again (a newer arXiv version: same paper), C is new.
    add_dump(store, T0 + timedelta(hours=6), [(DIFFUSION_A, "2611.00001", 50), DIFFUSION_C])
    plan(store, database_url, now=T0 + days(1))
    assert [titles for _, _, titles in digests_of(store, sub)] == [
        [DIFFUSION_A, DIFFUSION_B],
        [DIFFUSION_C],
    ]


def test_what_one_subscriber_was_sent_is_still_offered_to_another(
    store: Store, database_url: str
) -> None:
    """Two readers of the same topic in one run: one was sent A yesterday, one is new.

    The new reader's window is every indexed paper, the other's lacks A; the two
    must not share a selection just because their topics are the same.
    """
    ada = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [(DIFFUSION_A, "2611.00001", 5), DIFFUSION_B])
    plan(store, database_url)
    set_status(store, ada, "sent")
    bob = add_subscriber(store, "bob@example.org", subscribed_at=T0 + timedelta(hours=1))
    add_dump(store, T0 + timedelta(hours=6), [(DIFFUSION_A, "2611.00001", 50), DIFFUSION_C])
    plan(store, database_url, now=T0 + days(1))
    assert [titles for _, _, titles in digests_of(store, ada)] == [
        [DIFFUSION_A, DIFFUSION_B],
        [DIFFUSION_C],
    ]
    assert [sorted(titles) for _, _, titles in digests_of(store, bob)] == [
        sorted([DIFFUSION_A, DIFFUSION_B, DIFFUSION_C])
    ]


def test_papers_of_a_pending_digest_are_not_offered_again(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    plan(store, database_url)  # still pending: not sent yet
    add_dump(store, T0 + timedelta(hours=1), [DIFFUSION_A, DIFFUSION_B])
    plan(store, database_url, now=T0 + days(1))
    assert [titles for _, _, titles in digests_of(store, sub)] == [[DIFFUSION_A], [DIFFUSION_B]]


def test_catch_up_after_a_long_outage_is_one_digest_with_all_new_papers(
    store: Store, database_url: str
) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    plan(store, database_url)
    set_status(store, sub, "sent")
    # Down for five days while dumps kept arriving.
    titles = [f"Diffusion Step {i}" for i in range(1, 6)]
    for i, title in enumerate(titles, start=1):
        add_dump(store, T0 + days(i) - timedelta(hours=2), [title])
    back = T0 + days(5) + timedelta(hours=3)  # 11:00 on the 27th
    report = plan(store, database_url, now=back)
    assert [p.period for p in report.planned] == ["2026-11-27"]
    assert plan(store, database_url, now=back + timedelta(minutes=1)).planned == []
    got = digests_of(store, sub)
    assert len(got) == 2
    assert sorted(got[1][2]) == sorted(titles)


def test_nothing_matched_is_recorded_as_skipped_once(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [OFF_TOPIC])
    report = plan(store, database_url)
    assert [(p.status, p.picks) for p in report.planned] == [("skipped", [])]
    assert "no new paper matched" in (report.planned[0].reason or "")
    assert digests_of(store, sub) == [("2026-11-22", "skipped", [])]
    again = plan(store, database_url, now=T0 + timedelta(hours=1))
    assert again.planned == [] and "not due" in again.skipped[0][1]


def test_send_empty_plans_an_empty_pending_digest(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [OFF_TOPIC])
    plan(store, database_url, schedule={"send_empty": True})
    assert digests_of(store, sub) == [("2026-11-22", "pending", [])]


def test_send_empty_still_waits_for_a_dump(store: Store, database_url: str) -> None:
    """No dump yet today: nothing is recorded, so the day's late dump still makes the digest."""
    sub = add_subscriber(store, "ada@example.org")
    report = plan(store, database_url, schedule={"send_empty": True})
    assert report.planned == [] and "no new dumps since" in report.skipped[0][1]
    assert digests_of(store, sub) == []


def test_no_new_dumps_writes_nothing_and_says_so(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    report = plan(store, database_url)
    assert report.planned == []
    assert report.skipped == [("ada@example.org", "no new dumps since 2026-11-15 08:00 UTC")]
    assert digests_of(store, sub) == []
    # The day's dump arrives late: the digest goes out then, the same day.
    add_dump(store, T0 + timedelta(hours=3), [DIFFUSION_A])
    report = plan(store, database_url, now=T0 + timedelta(hours=3, minutes=1))
    assert [p.period for p in report.planned] == ["2026-11-22"]


def test_only_active_unpaused_subscribers_are_planned(store: Store, database_url: str) -> None:
    add_subscriber(store, "active@example.org")
    for status in ("pending", "unsubscribed", "bounced"):
        add_subscriber(store, f"{status}@example.org", status=status)
    add_subscriber(store, "paused@example.org", paused_until=T0 + days(3))
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    report = plan(store, database_url)
    assert [p.email for p in report.planned] == ["active@example.org"]
    assert [email for email, _ in report.skipped] == ["paused@example.org"]
    for status, why in [
        ("pending", "has not confirmed"),
        ("unsubscribed", "unsubscribed"),
        ("bounced", "bounced"),
    ]:
        one = plan(store, database_url, email=f"{status}@example.org")
        assert one.planned == [] and why in one.skipped[0][1]
    one = plan(store, database_url, email="PAUSED@example.org")
    assert one.skipped == [("paused@example.org", "paused until 2026-11-25 08:00 UTC")]
    with pytest.raises(BadInput, match=r"nobody@example\.org"):
        plan(store, database_url, email="nobody@example.org")


def test_first_send_time_after_subscribing(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "late@example.org", subscribed_at=T0 + timedelta(hours=1))
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    report = plan(store, database_url, now=T0 + timedelta(hours=2))
    assert report.skipped == [("late@example.org", "not due: next digest at 2026-11-23 08:00 UTC")]
    plan(store, database_url, now=T0 + days(1))
    assert digests_of(store, sub) == [("2026-11-23", "pending", [DIFFUSION_A])]


def test_after_a_pause_the_window_covers_the_gap(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    plan(store, database_url)
    set_status(store, sub, "sent")
    with store.transaction() as session:
        from digest.store.schema import Subscriber

        session.get_one(Subscriber, sub).paused_until = T0 + days(4)
    add_dump(store, T0 + days(1), [DIFFUSION_B])  # during the pause
    add_dump(store, T0 + days(4) + timedelta(hours=2), [DIFFUSION_C])
    assert plan(store, database_url, now=T0 + days(2)).planned == []
    report = plan(store, database_url, now=T0 + days(5))
    assert [p.window_start for p in report.planned] == [T0]
    assert sorted(digests_of(store, sub)[-1][2]) == sorted([DIFFUSION_B, DIFFUSION_C])


def test_dry_run_writes_nothing(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A, OFF_TOPIC])
    report = plan(store, database_url, dry_run=True)
    assert [(p.digest_id, len(p.picks)) for p in report.planned] == [(None, 1)]
    assert digests_of(store, sub) == []


def test_max_papers_and_one_index_over_all_subscribers(store: Store, database_url: str) -> None:
    add_subscriber(store, "one@example.org", max_papers=2)
    add_subscriber(store, "two@example.org", topics=("graph",))
    add_dump(store, T0 - days(1), [DIFFUSION_A, DIFFUSION_B, DIFFUSION_C, OFF_TOPIC])
    report = plan(store, database_url)
    assert {p.email: p.papers for p in report.planned} == {
        "one@example.org": 2,
        "two@example.org": 1,
    }
    assert report.papers_indexed == 4
    with store.sessions() as session:
        ranks = session.scalars(
            select(DigestItem.rank)
            .where(DigestItem.digest_id == report.planned[0].digest_id)
            .order_by(DigestItem.rank)
        ).all()
    assert ranks == [1, 2]


def test_a_second_planner_for_the_same_period_is_a_no_op(store: Store, database_url: str) -> None:
    add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    # Planner B computed its plan before planner A recorded; then A records, then B tries.
    stale = plan(store, database_url, dry_run=True).planned[0]
    plan(store, database_url)
    from digest.planner.record import write_digest, write_explanations

    with store.sessions() as session:
        assert write_digest(session, stale, write_explanations(session, [stale], {})) is False
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Digest)) == 1
        assert session.scalar(select(func.count()).select_from(DigestItem)) == 1


def test_two_planners_at_once_make_one_digest(store: Store, database_url: str) -> None:
    for i in range(20):
        add_subscriber(store, f"s{i}@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A, DIFFUSION_B])
    settings = settings_for(database_url)
    stores = [open_store(database_url), open_store(database_url)]
    reports: list[PlanReport] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(one: Store) -> None:
        try:
            with one.sessions() as session:
                barrier.wait()
                reports.append(plan_due(session, settings, now=T0))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for one in stores:
        one.dispose()
    assert errors == []
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Digest)) == 20
        assert session.scalar(select(func.count()).select_from(DigestItem)) == 40
    assert sum(len(r.planned) for r in reports) == 20
    reasons = {why for r in reports for _, why in r.skipped}
    assert reasons <= {"2026-11-22 was already planned by another planner"} | {
        why for why in reasons if why.startswith("not due")
    }


def test_dry_run_of_an_empty_digest_shows_the_closest_papers(
    store: Store, database_url: str
) -> None:
    add_subscriber(store, "ada@example.org", topics=("diffusion transformers",))
    add_dump(
        store,
        T0 - days(1),
        [
            "Vision Transformers at Scale",
            OFF_TOPIC,
            "Graph Transformers for Chemistry",
            "Protein Folding with Language Models",
            "Sparse Transformers for Long Video",
        ],
    )
    planned = plan(store, database_url, dry_run=True, near_misses=True).planned[0]
    assert planned.status == "skipped" and planned.picks == []
    assert len(planned.near_misses) == 3
    assert all("Transformers" in miss.title for miss in planned.near_misses)
    assert all("diffusion" in miss.reason for miss in planned.near_misses)
    # A dry run over everyone (`digest plan --dry-run`, `digest run --dry-run`) prints
    # no near misses, so it does not pay for them; nor does recording (the daemon).
    unasked = plan(store, database_url, dry_run=True).planned[0]
    assert unasked.status == "skipped" and unasked.near_misses == []
    recorded = plan(store, database_url, near_misses=True).planned[0]
    assert recorded.status == "skipped" and recorded.near_misses == []


def test_near_misses_of_many_empty_digests_leave_no_garbage_while_scoring(
    store: Store, database_url: str
) -> None:
    """A dry run that asks for near misses explains every candidate of every empty
    digest, inside the loop where the planner pauses the cyclic collector: what each
    explanation leaves for that collector piles up until the loop ends (about 600
    bytes each, gigabytes for thousands of empty digests). Only the one-reader
    preview asks today; this guards plan_due's contract for any caller that asks
    for many.

    The test keeps the collector paused a little longer, to count what was left."""
    add_dump(
        store,
        T0 - days(1),
        ["Vision Transformers at Scale", OFF_TOPIC]
        + [f"Robot Grasping Benchmark {i}" for i in range(40)],
    )
    garbage = []
    for emails in (["ada@example.org"], [f"reader{i}@example.org" for i in range(30)]):
        for email in emails:
            add_subscriber(store, email)  # diffusion, which none of the papers is about
        gc.collect()
        with collector_paused():
            report = plan(store, database_url, dry_run=True, near_misses=True)
            garbage.append(gc.collect())
        assert all(p.status == "skipped" and p.near_misses for p in report.planned)
    explained = 30 * 42  # the 30 more empty digests, each explains all 42 papers
    assert garbage[1] - garbage[0] < explained / 2


def test_a_recorded_digest_is_the_row_core_would_write(store: Store, database_url: str) -> None:
    """On SQLite the planner writes its digests with its own INSERT: each stored value,
    timestamps included, must be what SQLAlchemy's insert of the same row stores, or
    readers of the column (the sender, `digest status`) would see another time."""
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    ada = add_subscriber(store, "ada@example.org")
    bob = add_subscriber(store, "bob@example.org")
    report = plan(store, database_url)
    (planned,) = [p for p in report.planned if p.subscriber_id == ada]
    with store.transaction() as session:
        session.execute(
            insert(Digest),
            [
                {
                    "subscriber_id": bob,
                    "period": "core",
                    "status": planned.status,
                    "message_id": "<core@example.org>",
                    "planned_at": planned.planned_at,
                    "window_start": planned.window_start,
                }
            ],
        )
    with store.engine.connect() as connection:
        rows = {
            row[0]: row[1:]
            for row in connection.exec_driver_sql(
                f"SELECT subscriber_id, status, planned_at, window_start, attempts, "
                f"next_attempt_at, lease_until, sent_at FROM digests "
                f"WHERE subscriber_id = {ada} OR period = 'core'"
            )
        }
    assert rows[ada] == rows[bob]


def test_the_sqlite_digest_insert_names_every_column_that_needs_a_value() -> None:
    """The planner's own INSERT for SQLite lists its columns: a column added later with
    a default or NOT NULL must be in it, or SQLite alone would store NULL or fail."""
    from digest.planner import record

    needed = {
        column.name
        for column in Digest.__table__.columns
        if not column.primary_key
        and (column.default is not None or column.server_default is not None or not column.nullable)
    }
    assert needed <= set(record._SQLITE_DIGEST_COLUMNS)


def test_rows_are_written_with_the_collector_paused(store: Store, database_url: str) -> None:
    """Recording a big pass makes ten item rows per digest, freed with no cycles; the
    collector's passes over everything the pass holds cost a sixth of a 100,000-reader
    plan (bench/README.md), so the writes run with it paused, and it is back after."""
    add_dump(store, T0 - days(1), [DIFFUSION_A, DIFFUSION_B])
    add_subscriber(store, "ada@example.org")
    enabled_at_insert: list[bool] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DIGEST_ITEMS"):
            enabled_at_insert.append(gc.isenabled())

    gc.enable()
    event.listen(store.engine, "before_cursor_execute", note)
    try:
        report = plan(store, database_url)
    finally:
        event.remove(store.engine, "before_cursor_execute", note)
    assert [p.papers for p in report.planned] == [2]
    assert enabled_at_insert == [False]
    assert gc.isenabled()


def test_recording_a_pass_leaves_next_to_no_garbage(store: Store, database_url: str) -> None:
    """With the collector paused for the whole recording, what each digest's writes
    leave for it piles up until the pass ends: it must not grow with the digests (a
    100,000-reader pass would hold it all). Statement caches leave a few hundred
    objects once; ten times the readers must not leave even one more per digest."""
    add_dump(store, T0 - days(1), [DIFFUSION_A, DIFFUSION_B, DIFFUSION_C])
    garbage = []
    for emails in (
        [f"a{i}@example.org" for i in range(20)],
        [f"b{i}@example.org" for i in range(200)],
    ):
        for email in emails:
            add_subscriber(store, email)
        gc.collect()
        with collector_paused():
            report = plan(store, database_url, now=T0 + days(len(garbage)))
            garbage.append(gc.collect())
        assert report.planned and all(p.papers == 3 for p in report.planned)
    assert garbage[1] - garbage[0] < 180


def test_a_pass_that_finds_its_periods_taken_leaves_no_pile_of_garbage(
    store: Store, database_url: str
) -> None:
    """Two planners racing: the second writes its batch again a digest at a time, and
    each taken period leaves an exception's reference cycles. The pass pauses the
    collector, so those would pile up until it ends (17 kB a digest: gigabytes for
    100,000 readers); the one-by-one fallback lets the collector run."""
    add_dump(store, T0 - days(1), [DIFFUSION_A, DIFFUSION_B])
    for i in range(150):
        add_subscriber(store, f"r{i}@example.org")
    late = plan(store, database_url, dry_run=True)  # the second planner's plans, ...
    assert len(late.planned) == 150
    plan(store, database_url)  # ... and the first planner records every period first
    gc.collect()
    with collector_paused():
        report = PlanReport(now=T0)
        with store.sessions() as session:
            record_plans(session, [late.planned], report)
        left = gc.collect()
    assert report.planned == [] and len(report.skipped) == 150
    assert left < 150 * 20, left


def test_one_broken_schedule_does_not_stop_the_others(store: Store, database_url: str) -> None:
    add_subscriber(store, "odd@example.org", timezone="Mars/Olympus_Mons")
    add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    report = plan(store, database_url)
    assert [p.email for p in report.planned] == ["ada@example.org"]
    assert report.skipped[0][0] == "odd@example.org"
    assert "Mars/Olympus_Mons" in report.skipped[0][1]


def test_papers_of_a_failed_digest_come_again(store: Store, database_url: str) -> None:
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    plan(store, database_url)
    set_status(store, sub, "failed")
    add_dump(store, T0 + timedelta(hours=5), [DIFFUSION_B])
    report = plan(store, database_url, now=T0 + days(1))
    assert [p.window_start for p in report.planned] == [T0 + days(1) - days(7)]
    assert sorted(digests_of(store, sub)[-1][2]) == sorted([DIFFUSION_A, DIFFUSION_B])


def test_weekly_subscriber_gets_one_digest_per_iso_week(store: Store, database_url: str) -> None:
    from digest.config import ScheduleSettings
    from digest.subscribers.manage import subscribe

    with store.transaction() as session:
        subscribe(
            session,
            "weekly@example.org",
            ["diffusion"],
            now=T0 - days(10),
            defaults=ScheduleSettings(),
            frequency="weekly",
            weekday="sun",
            timezone="Asia/Kolkata",
            send_hour=9,
            confirmed=True,
        )
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    # 2026-11-22 is a Sunday; 09:00 in Kolkata is 03:30 UTC.
    report = plan(store, database_url, now=T0 - timedelta(hours=4, minutes=31))
    assert report.planned == []
    report = plan(store, database_url, now=T0 - timedelta(hours=4, minutes=30))
    assert [p.period for p in report.planned] == ["2026-W47"]
    add_dump(store, T0 + days(1), [DIFFUSION_B])
    assert plan(store, database_url, now=T0 + days(3)).planned == []
    assert [p.period for p in plan(store, database_url, now=T0 + days(7)).planned] == ["2026-W48"]


def test_unsubscribe_then_resubscribe_nothing_is_lost(store: Store, database_url: str) -> None:
    from digest.config import ScheduleSettings
    from digest.subscribers.manage import find_subscriber, subscribe, unsubscribe

    def join(now: object) -> None:
        with store.transaction() as session:
            subscribe(
                session,
                "Ada@Example.org",
                ["diffusion"],
                now=now,  # type: ignore[arg-type]
                defaults=ScheduleSettings(),
                confirmed=True,
            )

    join(T0 - days(3))
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    assert [p.status for p in plan(store, database_url).planned] == ["pending"]
    with store.transaction() as session:
        subscriber = find_subscriber(session, "ada@example.org")
        assert subscriber is not None
        unsubscribe(session, subscriber, now=T0 + timedelta(hours=1))
        sub_id = subscriber.id
    assert plan(store, database_url, now=T0 + days(1)).planned == []
    join(T0 + days(1) + timedelta(hours=1))
    # Rejoined after today's 08:00: owed nothing until tomorrow, then A (never sent) comes.
    assert plan(store, database_url, now=T0 + days(1) + timedelta(hours=2)).planned == []
    plan(store, database_url, now=T0 + days(2))
    assert digests_of(store, sub_id) == [
        ("2026-11-22", "cancelled", [DIFFUSION_A]),
        ("2026-11-24", "pending", [DIFFUSION_A]),
    ]


def test_ingest_time_not_the_printed_date_decides_what_is_new(
    store: Store, database_url: str
) -> None:
    from datetime import date

    from digest.store.schema import Dump

    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])  # printed weeks ago, see below
    add_dump(store, T0 - days(10), [DIFFUSION_B])  # printed today, ingested long ago
    add_dump(store, T0 + timedelta(minutes=1), [DIFFUSION_C])  # after `now`: not yet
    with store.transaction() as session:
        for dump in session.scalars(select(Dump)):
            dump.issue_date = (
                date(2026, 10, 1) if dump.ingested_at == T0 - days(1) else date(2026, 11, 22)
            )
    plan(store, database_url)
    assert digests_of(store, sub) == [("2026-11-22", "pending", [DIFFUSION_A])]


def test_a_dump_committed_just_after_a_planning_pass_is_not_lost(
    store: Store, database_url: str
) -> None:
    """Ingest stamps ingested_at when its job starts and commits later; a planning
    pass in between does not see that dump. Its papers must come in the next digest."""
    sub = add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [DIFFUSION_A])
    plan(store, database_url)  # at T0
    set_status(store, sub, "sent")
    # Stamped a minute before that pass, committed only after it.
    add_dump(store, T0 - timedelta(minutes=1), [DIFFUSION_B])
    add_dump(store, T0 + days(1) - timedelta(hours=1), [DIFFUSION_C])
    plan(store, database_url, now=T0 + days(1))
    assert [titles for _, _, titles in digests_of(store, sub)] == [
        [DIFFUSION_A],
        [DIFFUSION_B, DIFFUSION_C],
    ]


def test_a_paper_withdrawn_after_it_was_stored_is_never_sent(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    import json

    from digest.ingest import ingest_bytes
    from tests.conftest import DATA

    listing = json.loads((DATA / "hf_daily_papers.json").read_text())
    ingest_bytes(store, json.dumps(listing).encode(), source_ref="day1.json", now=T0 - days(1))
    sub = add_subscriber(store, "reader@example.org", ["psychometric"])
    # the next list says the paper was withdrawn
    for item in listing:
        if "Psychometric" in item["paper"]["title"]:
            item["paper"]["withdrawnAt"] = "2026-11-22T05:00:00.000Z"
    ingest_bytes(store, json.dumps(listing).encode(), source_ref="day2.json", now=T0 - days(0.5))
    with store.sessions() as session:
        plan_due(session, settings_for(database_url), now=T0)
    assert digests_of(store, sub) == [("2026-11-22", "skipped", [])]
