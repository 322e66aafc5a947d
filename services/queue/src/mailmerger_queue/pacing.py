"""How many messages an account and a campaign may send now. Pure arithmetic, no I/O.

An account is limited by a sliding one-minute window (the per-user API quota), a rolling 24-hour
window (Gmail's daily sending cap) and a per-tick share that spreads its minute over the minute.
A campaign adds a sending window (local hours and weekdays), a per-day cap counted in its own
time zone, and spacing with jitter between its messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class AccountUsage:
    """Dispatches of one account: in the last minute, and in the last 24 h that count as sends."""

    last_minute: int
    last_day: int


def account_allowance(*, per_minute: int, daily: int, per_tick: int, usage: AccountUsage) -> int:
    """Messages the account may dispatch in this tick (never negative)."""
    return max(0, min(per_minute - usage.last_minute, daily - usage.last_day, per_tick))


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
