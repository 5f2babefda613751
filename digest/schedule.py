"""When a subscriber's digest is due: local send times, periods, DST, catch-up.

Pure: the clock comes in as `now` (aware UTC) and nothing here touches the
store. A *period* is what one digest covers and what the `digests` table keys
on: the subscriber's local date (`2026-11-22`) for daily digests, the ISO week
of their local date (`2026-W47`) for weekly ones.

The rule, in the subscriber's IANA time zone: a period is due once local time
has reached its send time (`send_hour`, on `weekday` for weekly digests) and no
digest exists for it yet. Because only the *current* period is ever due, a
mailer that was down for a week catches up with one digest, not seven; because
the key is the local date, a send hour repeated on a fall-back day still gives
one digest. A send hour that does not exist on a spring-forward day happens at
the first instant after the gap, so the day is never skipped.

A send time that passed before the subscription began (or while the
subscriber was paused) owes nothing: the first digest comes at the first send
time after subscribing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from digest.errors import BadInput
from digest.values import zone_of

__all__ = ["Schedule", "current_period", "due_period", "next_send_at", "period_key", "send_instant"]

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, slots=True)
class Schedule:
    """When one subscriber gets a digest: the schedule columns of their row.

    `weekday` (0 = Monday) matters only for weekly digests. `paused_until`, when
    in the future, holds every digest back; a send time that fell before
    `subscribed_at` or inside a pause owes nothing.
    """

    timezone: str  # IANA name, e.g. "Europe/Berlin"
    send_hour: int  # local hour, 0-23
    frequency: str  # "daily" or "weekly"
    weekday: int
    subscribed_at: datetime
    paused_until: datetime | None = None

    def owed_from(self) -> datetime:
        """The earliest send time a digest can be owed for."""
        if self.paused_until is None:
            return self.subscribed_at
        return max(self.subscribed_at, self.paused_until)


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")


@lru_cache(maxsize=4096)
def send_instant(day: date, send_hour: int, zone: ZoneInfo) -> datetime:
    """The UTC instant at which `send_hour` o'clock happens on local `day`.

    Memoised: a planning pass asks it for every subscriber, and subscribers share
    a handful of (day, hour, zone) combinations.

    A repeated wall time (fall-back) resolves to its first occurrence; a wall
    time inside a spring-forward gap resolves to the first valid instant after
    the gap (the transition itself), e.g. 02:00 in Berlin on 2026-03-29 is
    03:00 CEST.
    """
    wall = datetime.combine(day, time(send_hour), tzinfo=zone)  # fold=0: first occurrence
    utc = wall.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return utc
    # Nonexistent wall time. fold=0 maps it with the offset before the gap (a
    # moment after the transition), fold=1 with the offset after (a moment
    # before it): the transition lies between; find it to the second.
    early = wall.replace(fold=1).astimezone(UTC)
    late = utc
    if early > late:
        early, late = late, early
    before = early.astimezone(zone).utcoffset()
    while late - early > timedelta(seconds=1):
        middle = early + (late - early) / 2
        if middle.astimezone(zone).utcoffset() == before:
            early = middle
        else:
            late = middle
    return late.replace(microsecond=0)


def period_key(local_day: date, frequency: str) -> str:
    """The period that a local date falls in: the date itself, or its ISO week."""
    if frequency == "weekly":
        year, week, _ = local_day.isocalendar()
        return f"{year}-W{week:02d}"
    return local_day.isoformat()


def current_period(schedule: Schedule, now: datetime) -> str:
    """The period `now` falls in, in the subscriber's zone, whether or not it is due."""
    _check_now(now)
    return period_key(now.astimezone(zone_of(schedule.timezone)).date(), schedule.frequency)


def _period_send_day(local_day: date, frequency: str, weekday: int) -> date:
    """The local date on which the period containing `local_day` is sent."""
    if frequency == "weekly":
        return local_day - timedelta(days=local_day.weekday()) + timedelta(days=weekday)
    return local_day


@lru_cache(maxsize=4096)
def _period_start(period: str) -> date | None:
    """The first local date a period key covers (None for a key we cannot read).
    Memoised like `send_instant`: every subscriber's last period is read a few times."""
    if match := _DAY.match(period):
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None
    if match := _WEEK.match(period):
        try:
            return date.fromisocalendar(int(match[1]), int(match[2]), 1)
        except ValueError:
            return None
    return None


def _covered(last_period: str | None, local_day: date, frequency: str) -> bool:
    """Whether the last recorded period already covers the period of `local_day`.

    Same kind: covered when the last period is this one or a later one (a
    later one happens when a subscriber moves to a time zone that is behind).
    A daily digest in the current ISO week covers a weekly period (switching
    to weekly starts next week); a weekly digest does not cover a day.
    """
    if last_period is None:
        return False
    start = _period_start(last_period)
    if start is None:
        return last_period == period_key(local_day, frequency)
    last_is_week = _WEEK.match(last_period) is not None
    if frequency == "weekly":
        return start.isocalendar()[:2] >= local_day.isocalendar()[:2]
    if last_is_week:
        return False
    return start >= local_day


def due_period(schedule: Schedule, *, last_period: str | None, now: datetime) -> str | None:
    """The period whose digest is due at `now`, or None if nothing is due.

    `last_period` is the period of the subscriber's most recent digest (any
    status). Paused subscribers (paused_until > now) are never due; a send time
    that fell before `subscribed_at` or inside the pause owes nothing.
    """
    _check_now(now)
    if schedule.paused_until is not None and schedule.paused_until > now:
        return None
    frequency = schedule.frequency
    zone = zone_of(schedule.timezone)
    local_day = now.astimezone(zone).date()
    if _covered(last_period, local_day, frequency):
        return None
    send_day = _period_send_day(local_day, frequency, schedule.weekday)
    sends_at = send_instant(send_day, schedule.send_hour, zone)
    if now < sends_at or sends_at < schedule.owed_from():
        return None
    return period_key(local_day, frequency)


def next_send_at(schedule: Schedule, *, last_period: str | None, now: datetime) -> datetime:
    """The first instant at or after `now` at which a period becomes due (UTC).

    For messages such as "not due: next digest 2026-11-23 08:00 Europe/Berlin".
    If a period is due already, that is `now`.
    """
    _check_now(now)
    frequency, weekday = schedule.frequency, schedule.weekday
    zone = zone_of(schedule.timezone)
    paused_until = schedule.paused_until
    start = now if paused_until is None or paused_until <= now else paused_until
    owed_from = schedule.owed_from()
    local_day = start.astimezone(zone).date()
    step = timedelta(days=7 if frequency == "weekly" else 1)
    for _ in range(400):
        send_day = _period_send_day(local_day, frequency, weekday)
        sends_at = send_instant(send_day, schedule.send_hour, zone)
        if not _covered(last_period, local_day, frequency) and sends_at >= owed_from:
            if sends_at >= start:
                return sends_at
            if start.astimezone(zone).date() == local_day:
                return start  # this period's send time has passed: due as soon as we may send
        local_day = send_day + step
    raise BadInput("no send time within 400 periods; check the schedule")  # pragma: no cover
