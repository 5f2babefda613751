"""Due-ness: one digest per local date (or ISO week), across DST, catch-up, pauses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from digest.errors import BadInput
from digest.schedule import Schedule, due_period, next_send_at, period_key, send_instant

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def simulate(
    zone: str,
    send_hour: int,
    start: datetime,
    days: int,
    *,
    step_minutes: int = 5,
    frequency: str = "daily",
    weekday: int = 0,
    subscribed_at: datetime | None = None,
) -> list[tuple[str, datetime]]:
    """Tick every few minutes like the daemon does; return (period, when planned).

    The subscriber joins when the simulation starts, unless told otherwise.
    """
    planned: list[tuple[str, datetime]] = []
    last: str | None = None
    now = start
    while now < start + timedelta(days=days):
        period = due_period(
            Schedule(
                timezone=zone,
                send_hour=send_hour,
                frequency=frequency,
                weekday=weekday,
                subscribed_at=start if subscribed_at is None else subscribed_at,
                paused_until=None,
            ),
            last_period=last,
            now=now,
        )
        if period is not None:
            planned.append((period, now))
            last = period
        now += timedelta(minutes=step_minutes)
    return planned


def local_dates(zone: str, start: datetime, days: int) -> list[str]:
    tz = ZoneInfo(zone)
    first = start.astimezone(tz).date()
    last = (start + timedelta(days=days) - timedelta(minutes=5)).astimezone(tz).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# (zone, a transition date, send hours that hit or straddle the transition)
TRANSITIONS = [
    ("Europe/Berlin", date(2026, 3, 29), [0, 1, 2, 3, 8, 23]),  # 02:00 -> 03:00
    ("Europe/Berlin", date(2026, 10, 25), [0, 1, 2, 3, 8, 23]),  # 03:00 -> 02:00
    ("America/New_York", date(2026, 11, 1), [0, 1, 2, 8, 23]),  # 02:00 -> 01:00
    ("America/New_York", date(2026, 3, 8), [1, 2, 3, 8]),  # 02:00 -> 03:00
    ("Asia/Kolkata", date(2026, 3, 29), [0, 5, 6, 23]),  # +05:30, no DST
    ("Pacific/Chatham", date(2026, 9, 27), [2, 3, 4, 8]),  # 02:45 -> 03:45, +13:45
    ("Pacific/Chatham", date(2026, 4, 5), [2, 3, 4, 8]),  # 03:45 -> 02:45
]


@pytest.mark.parametrize(("zone", "day", "hours"), TRANSITIONS, ids=lambda v: str(v))
def test_exactly_one_digest_per_local_date_across_transitions(
    zone: str, day: date, hours: list[int]
) -> None:
    start = datetime.combine(day - timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    for hour in hours:
        planned = simulate(zone, hour, start, days=5)
        periods = [period for period, _ in planned]
        assert len(periods) == len(set(periods)), f"{zone} {hour}h: a date twice: {periods}"
        expected = local_dates(zone, start, 5)
        # The first local date may have had its send time before the simulation began.
        if expected[0] not in periods:
            expected = expected[1:]
        # ... and the last may not have reached its send time yet.
        if expected[-1] not in periods:
            expected = expected[:-1]
        assert periods == expected, f"{zone} {hour}h: a date missed: {periods}"
        for period, when in planned:
            sends = send_instant(date.fromisoformat(period), hour, ZoneInfo(zone))
            assert sends <= when < sends + timedelta(minutes=5), (period, when, sends)


def test_spring_forward_gap_sends_at_the_first_instant_after() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    sends = send_instant(date(2026, 3, 29), 2, berlin)
    assert sends == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert sends.astimezone(berlin).hour == 3
    chatham = send_instant(date(2026, 9, 27), 3, ZoneInfo("Pacific/Chatham"))
    assert chatham == datetime(2026, 9, 26, 14, 0, tzinfo=UTC)  # 03:45 CHADT, the transition


def test_fall_back_repeated_hour_sends_once_at_its_first_occurrence() -> None:
    planned = simulate("Europe/Berlin", 2, datetime(2026, 10, 24, 12, tzinfo=UTC), days=1)
    assert planned == [("2026-10-25", datetime(2026, 10, 25, 0, 0, tzinfo=UTC))]
    planned = simulate("America/New_York", 1, datetime(2026, 10, 31, 12, tzinfo=UTC), days=1)
    assert planned == [("2026-11-01", datetime(2026, 11, 1, 5, 0, tzinfo=UTC))]


def test_kolkata_local_date_is_not_the_utc_date() -> None:
    planned = simulate("Asia/Kolkata", 0, datetime(2026, 3, 28, 12, tzinfo=UTC), days=1)
    assert planned == [("2026-03-29", datetime(2026, 3, 28, 18, 30, tzinfo=UTC))]


def due(now: datetime, **overrides: object) -> str | None:
    args: dict[str, object] = {
        "timezone": "Europe/Berlin",
        "send_hour": 8,
        "frequency": "daily",
        "weekday": 0,
        "subscribed_at": LONG_AGO,
        "paused_until": None,
        "last_period": None,
    }
    args.update(overrides)
    last_period = args.pop("last_period")
    return due_period(Schedule(**args), last_period=last_period, now=now)  # type: ignore[arg-type]


def test_due_only_from_the_local_send_time() -> None:
    assert due(datetime(2026, 11, 22, 6, 59, tzinfo=UTC)) is None  # 07:59 CET
    assert due(datetime(2026, 11, 22, 7, 0, tzinfo=UTC)) == "2026-11-22"
    assert due(datetime(2026, 11, 22, 7, 0, tzinfo=UTC), last_period="2026-11-22") is None
    assert due(datetime(2026, 11, 22, 22, 59, tzinfo=UTC)) == "2026-11-22"
    assert due(datetime(2026, 11, 22, 23, 0, tzinfo=UTC)) is None  # next local day, 00:00


def test_first_digest_comes_at_the_first_send_time_after_subscribing() -> None:
    joined = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # 10:00 CET, after today's 08:00
    assert due(datetime(2026, 11, 22, 12, tzinfo=UTC), subscribed_at=joined) is None
    assert due(datetime(2026, 11, 23, 6, 59, tzinfo=UTC), subscribed_at=joined) is None
    assert due(datetime(2026, 11, 23, 7, 0, tzinfo=UTC), subscribed_at=joined) == "2026-11-23"
    early = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)  # 07:00 CET: today's send is still ahead
    assert due(datetime(2026, 11, 22, 7, 0, tzinfo=UTC), subscribed_at=early) == "2026-11-22"


def test_catch_up_after_an_outage_is_one_digest_for_the_current_period() -> None:
    # Last digest on the 10th, the mailer comes back on the 22nd at noon.
    back = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert due(back, last_period="2026-11-10") == "2026-11-22"
    assert due(back + timedelta(minutes=1), last_period="2026-11-22") is None
    # Back before today's send time: nothing until it comes.
    assert due(datetime(2026, 11, 22, 5, tzinfo=UTC), last_period="2026-11-10") is None


def test_paused_subscribers_are_not_due_and_the_pause_owes_nothing() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert due(now, paused_until=now + timedelta(days=3)) is None
    # The pause ended at 10:00 UTC, after today's 07:00 UTC send: today owes nothing.
    assert due(now, paused_until=datetime(2026, 11, 22, 10, tzinfo=UTC)) is None
    assert due(now, paused_until=datetime(2026, 11, 22, 6, tzinfo=UTC)) == "2026-11-22"
    assert due(now + timedelta(days=1), paused_until=now) == "2026-11-23"


def test_weekly_on_weekday_and_catch_up_within_the_week() -> None:
    weekly = {"frequency": "weekly", "weekday": 2}  # Wednesday
    tuesday = datetime(2026, 11, 17, 12, tzinfo=UTC)
    assert due(tuesday, **weekly) is None
    wednesday = datetime(2026, 11, 18, 7, 0, tzinfo=UTC)
    assert due(wednesday, **weekly) == "2026-W47"
    assert due(wednesday + timedelta(days=2), **weekly) == "2026-W47"  # catch-up on Friday
    assert due(wednesday + timedelta(days=2), last_period="2026-W47", **weekly) is None
    assert due(wednesday + timedelta(days=7), last_period="2026-W47", **weekly) == "2026-W48"
    planned = simulate(
        "Europe/Berlin", 8, datetime(2026, 10, 1, tzinfo=UTC), 60, step_minutes=30, **weekly
    )  # type: ignore[arg-type]
    assert [p for p, _ in planned] == [f"2026-W{w}" for w in range(41, 49)]  # Oct 1 is a Thursday
    assert all(when.astimezone(ZoneInfo("Europe/Berlin")).weekday() == 2 for _, when in planned)


def test_iso_week_belongs_to_the_iso_year() -> None:
    assert period_key(date(2026, 12, 31), "weekly") == "2026-W53"
    assert period_key(date(2027, 1, 1), "weekly") == "2026-W53"
    assert period_key(date(2027, 1, 4), "weekly") == "2027-W01"


def test_moving_to_a_zone_that_is_behind_does_not_send_the_day_twice() -> None:
    # Digest for the 23rd planned in Tokyo; the subscriber moves to New York,
    # where it is still the 22nd after 08:00.
    now = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert due(now, timezone="America/New_York", last_period="2026-11-23") is None


def test_switching_daily_to_weekly_starts_next_week() -> None:
    friday = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert due(friday, frequency="weekly", weekday=0, last_period="2026-11-19") is None
    monday = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert due(monday, frequency="weekly", weekday=0, last_period="2026-11-19") == "2026-W48"


def test_with_a_frozen_clock() -> None:
    with freeze_time("2026-03-28T12:00:00Z") as clock:
        last: str | None = None
        got: list[str] = []
        for _ in range(3 * 24 * 12):
            period = due(
                datetime.now(UTC),
                send_hour=2,
                last_period=last,
                subscribed_at=datetime(2026, 3, 28, 12, tzinfo=UTC),
            )
            if period:
                got.append(period)
                last = period
            clock.tick(timedelta(minutes=5))
    assert got == ["2026-03-29", "2026-03-30", "2026-03-31"]


def test_next_send_at() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    schedule = Schedule(
        timezone="Europe/Berlin",
        send_hour=8,
        frequency="daily",
        weekday=0,
        subscribed_at=LONG_AGO,
        paused_until=None,
    )
    nxt = next_send_at(schedule, last_period="2026-11-22", now=now)
    assert nxt == datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert next_send_at(schedule, last_period="2026-11-21", now=now) == now
    schedule = replace(schedule, paused_until=datetime(2026, 11, 30, tzinfo=UTC))
    nxt = next_send_at(schedule, last_period="2026-11-22", now=now)
    assert nxt == datetime(2026, 11, 30, 7, tzinfo=UTC)


def test_unknown_zone_and_naive_now_are_refused() -> None:
    with pytest.raises(BadInput, match="Mars/Olympus"):
        due(datetime(2026, 11, 22, tzinfo=UTC), timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="aware"):
        due(datetime(2026, 11, 22))
