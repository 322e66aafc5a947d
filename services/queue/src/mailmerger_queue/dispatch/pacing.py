"""How many messages an account and a campaign may send now. Pure arithmetic, no I/O.

An account is paced evenly at a share of its per-minute limit (GCRA, the generic cell rate
algorithm: each dispatch moves the account's pacing clock on by one interval, and the dispatcher
may run at most one tick ahead of it), and limited by a rolling 24-hour window (Gmail's daily
sending cap). Gmail's per-user quota is a *sliding* minute: a burst at the start of one minute
and at the end of the previous one would both count, so a limit spent in bursts either wastes
most of the minute or gets refused. Paced evenly below the limit, any 60 seconds hold at most
``pace_fraction`` of it plus one tick's worth, and the rest of the limit absorbs the jitter
between the dispatcher and Gmail.

A campaign adds a sending window (local hours and weekdays), a per-day cap counted in its own
time zone, and spacing with jitter between its messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Pace:
    """An account's even rate: one dispatch per ``interval``, at most ``tolerance`` ahead of it."""

    interval: timedelta
    tolerance: timedelta

    @classmethod
    def of(cls, per_minute: int, *, pace_fraction: float, tick: timedelta) -> Pace:
        # A tolerance of one tick loses no credit between ticks, and is the only burst allowed.
        return cls(interval=timedelta(minutes=1) / (per_minute * pace_fraction), tolerance=tick)

    def allowance(self, paced_until: datetime | None, now: datetime) -> int:
        """Dispatches that fit now: those whose turn comes within the tolerance."""
        ahead = _clock(paced_until, now) - now
        if ahead > self.tolerance:
            return 0
        return (self.tolerance - ahead) // self.interval + 1

    def advance(self, paced_until: datetime | None, now: datetime, dispatched: int) -> datetime:
        """The pacing clock after ``dispatched`` more messages went at ``now``."""
        return _clock(paced_until, now) + dispatched * self.interval


def _clock(paced_until: datetime | None, now: datetime) -> datetime:
    # An idle account's clock has fallen behind: its credit does not pile up beyond the tolerance.
    return now if paced_until is None or paced_until < now else paced_until


def account_allowance(
    *, pace: Pace, paced_until: datetime | None, daily: int, sent_last_day: int, now: datetime
) -> int:
    """Messages the account may dispatch in this tick (never negative)."""
    return max(0, min(pace.allowance(paced_until, now), daily - sent_last_day))


@dataclass(frozen=True)
class Schedule:
    """A campaign's sending rules; ``weekdays`` are ISO (Monday = 1 … Sunday = 7)."""

    timezone: str
    window_start: time | None
    window_end: time | None
    weekdays: tuple[int, ...]
    daily_cap: int | None
    spacing_seconds: int
    jitter_seconds: int

    def in_window(self, now: datetime) -> bool:
        """Whether ``now`` falls on an allowed weekday within the daily hours, in local time.

        A window whose end is before its start spans midnight (22:00 to 06:00); its early-morning
        part belongs to the weekday it started on.
        """
        local = now.astimezone(ZoneInfo(self.timezone))
        start, end = self.window_start, self.window_end
        if start is None or end is None:
            return local.isoweekday() in self.weekdays
        clock = local.time().replace(tzinfo=None)
        if start <= end:
            return start <= clock < end and local.isoweekday() in self.weekdays
        if clock >= start:
            return local.isoweekday() in self.weekdays
        if clock < end:
            return (local - timedelta(days=1)).isoweekday() in self.weekdays
        return False

    def local_day_start(self, now: datetime) -> datetime:
        """Midnight of ``now``'s local day, in UTC: the per-day cap counts from there."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
        return midnight.astimezone(UTC)

    def allowance(
        self, now: datetime, *, next_send_at: datetime | None, sent_today: int, per_tick: int
    ) -> int:
        """Messages the campaign may dispatch in this tick, before its account's own limits."""
        if not self.in_window(now):
            return 0
        if next_send_at is not None and now < next_send_at:
            return 0
        remaining = per_tick if self.daily_cap is None else min(per_tick, self.daily_cap - sent_today)
        if self.spacing_seconds > 0:
            remaining = min(remaining, 1)
        return max(0, remaining)

    def next_send_at(self, now: datetime, rng: random.Random) -> datetime | None:
        """When the campaign's next message may go after one went at ``now`` (None: no spacing)."""
        if self.spacing_seconds <= 0:
            return None
        jitter = rng.uniform(-self.jitter_seconds, self.jitter_seconds) if self.jitter_seconds else 0.0
        return now + timedelta(seconds=max(0.0, self.spacing_seconds + jitter))
