"""When a campaign's remaining messages will have gone: its current rate, held to the account's
pace, the account's rolling 24-hour limit, the campaign's daily cap and its sending window.
Pure arithmetic, no I/O.

The run is played forward in blocks: within one sending period (a window on one local day) the
messages go one interval apart until the period closes, the daily cap is reached or the account
has no sends left in its rolling 24 hours; then the run waits for whichever frees first: the next
period, the next local day, or the moment earlier sends leave the account's 24-hour window (its
own sends included, a day after they go). The first wait is reported, so a user reads "60 go
today; the other 40 wait for tomorrow's window" instead of a single number of seconds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from mailmerger_queue.dispatch.pacing import DAY, Schedule

Hold = Literal["start_at", "account_parked", "window", "daily_cap", "account_daily_limit"]
# Blocks of the run played forward before it is extrapolated at its average rate: enough for
# months of a capped campaign, cheap enough for a progress poll.
MAX_BLOCKS = 20_000
_CENTURY = timedelta(days=36_525)


@dataclass(frozen=True)
class Period:
    """A stretch of time the campaign may send in, within one local day (its daily cap's day)."""

    opens: datetime
    closes: datetime
    day: date


def sending_periods(schedule: Schedule, since: datetime) -> Iterator[Period]:
    """The campaign's sending periods from ``since`` on, in order (the first may have begun before).

    A window spanning midnight is split there: its two parts count against two local days' caps,
    as the dispatcher counts them.
    """
    zone = ZoneInfo(schedule.timezone)
    day = since.astimezone(zone).date() - timedelta(days=1)  # a window past midnight began yesterday
    while True:
        for period in _periods_of(schedule, day, zone):
            if period.closes > since:
                yield period
        day += timedelta(days=1)


def _periods_of(schedule: Schedule, day: date, zone: ZoneInfo) -> list[Period]:
    if day.isoweekday() not in schedule.weekdays:
        return []
    midnight, next_midnight = _local(day, time(0), zone), _local(day + timedelta(days=1), time(0), zone)
    start, end = schedule.window_start, schedule.window_end
    if start is None or end is None:
        return [Period(midnight, next_midnight, day)]
    if start < end:
        return [Period(_local(day, start, zone), _local(day, end, zone), day)]
    following = day + timedelta(days=1)
    return [
        Period(_local(day, start, zone), next_midnight, day),
        Period(next_midnight, _local(following, end, zone), following),
    ]


def _local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone)


def sending_since(schedule: Schedule, now: datetime) -> datetime | None:
    """When the sending period ``now`` falls in opened; None outside every period."""
    period = next(sending_periods(schedule, now))
    return period.opens if period.opens <= now else None


@dataclass(frozen=True)
class Outlook:
    """What decides when a campaign's remaining messages go.

    ``account_releases`` are the account's counted sends of the last 24 hours as (when they
    leave the window, how many), oldest first; ``account_allowance`` is what it may still send now.
    """

    now: datetime
    remaining: int
    per_minute: float
    schedule: Schedule
    start: datetime
    start_hold: Hold | None
    sent_today: int
    account_allowance: int
    account_releases: tuple[tuple[datetime, int], ...]


@dataclass(frozen=True)
class Eta:
    """When the last message should go, and the run's first wait (if it has to wait at all):
    ``before_hold`` messages go first, then nothing until ``held_until`` because of ``held_by``."""

    finishes_at: datetime
    held_by: Hold | None = None
    held_until: datetime | None = None
    before_hold: int = 0


@dataclass
class _Run:
    """The run being played forward: its clock, the account's sends left and their releases."""

    t: datetime
    tokens: int
    releases: deque[tuple[datetime, int]]
    sent: int = 0
    hold: tuple[Hold, datetime, int] | None = None

    def wait(self, until: datetime, why: Hold) -> None:
        """Nothing goes before ``until``; the first wait is remembered (a longer one, if nothing
        went in between)."""
        if self.hold is None or self.hold[2] == self.sent:
            self.hold = (why, until, self.sent)
        self.t = until


def estimate(outlook: Outlook) -> Eta:
    """When the remaining messages will have gone (see the module docstring)."""
    o = outlook
    run = _Run(o.start, o.account_allowance, deque(o.account_releases))
    if o.start_hold is not None and o.start > o.now:
        run.hold = (o.start_hold, o.start, 0)
    if o.remaining <= 0:
        return Eta(finishes_at=o.now)
    interval = timedelta(minutes=1) / o.per_minute
    cap = o.schedule.daily_cap
    today = o.now.astimezone(ZoneInfo(o.schedule.timezone)).date()
    sent_on: dict[date, int] = {today: o.sent_today}
    periods = sending_periods(o.schedule, run.t)
    period = next(periods)
    last = run.t
    for _ in range(MAX_BLOCKS):
        if run.t >= period.closes:
            period = next(periods)
            continue
        if run.t < period.opens:
            run.wait(period.opens, "window")
        while run.releases and run.releases[0][0] <= run.t:
            run.tokens += run.releases.popleft()[1]
        if run.tokens <= 0:
            run.wait(run.releases[0][0] if run.releases else run.t + DAY, "account_daily_limit")
            continue
        left_today = math.inf if cap is None else cap - sent_on.get(period.day, 0)
        if left_today <= 0:
            capped = period.day
            while period.day == capped:
                period = next(periods)
            run.wait(max(run.t, period.opens), "daily_cap")
            continue
        fits = math.ceil((period.closes - run.t) / interval)
        count = int(min(o.remaining - run.sent, run.tokens, left_today, fits))
        last = run.t + (count - 1) * interval
        run.sent += count
        run.tokens -= count
        sent_on[period.day] = sent_on.get(period.day, 0) + count
        # Its own sends leave the account's 24 hours a day later (the last of the block's, to be safe).
        run.releases.append((last + DAY, count))
        run.t = last + interval
        if run.sent >= o.remaining:
            return _eta(run, last)
    # Too long to play out block by block: the rest at the average rate so far (a century at most).
    elapsed = max(last - o.start, interval).total_seconds()
    rest = (o.remaining - run.sent) * elapsed / max(run.sent, 1)
    return _eta(run, last + timedelta(seconds=min(rest, _CENTURY.total_seconds())))


def _eta(run: _Run, finishes_at: datetime) -> Eta:
    if run.hold is None:
        return Eta(finishes_at=finishes_at)
    why, until, before = run.hold
    return Eta(finishes_at=finishes_at, held_by=why, held_until=until, before_hold=before)


_WHY: dict[Hold, str] = {
    "start_at": "the campaign's start time",
    "account_parked": "Gmail to let the account send again",
    "window": "the sending window",
    "daily_cap": "the campaign's daily cap to reset",
    "account_daily_limit": "the account's 24-hour sending limit to free up",
}


def describe(eta: Eta, remaining: int, timezone: str) -> str | None:
    """The run's first wait in words, or None when it runs through."""
    if eta.held_by is None or eta.held_until is None:
        return None
    local = eta.held_until.astimezone(ZoneInfo(timezone)).strftime("%a %Y-%m-%d %H:%M")
    until = f"until {local} ({timezone}), waiting for {_WHY[eta.held_by]}"
    if eta.before_hold == 0:
        return f"nothing goes {until}"
    return f"{eta.before_hold} go first; the other {remaining - eta.before_hold} wait {until}"
