"""The campaign ETA, played forward: current rate, account pace and 24-hour limit, daily cap, window."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from mailmerger_queue.campaigns.eta import Eta, Outlook, describe, estimate, sending_since
from mailmerger_queue.dispatch.pacing import DAY, Schedule

# A Wednesday.
NOW = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)
ALL_WEEK = (1, 2, 3, 4, 5, 6, 7)


def _schedule(**changes: Any) -> Schedule:
    values: dict[str, Any] = {
        "timezone": "UTC",
        "window_start": None,
        "window_end": None,
        "weekdays": ALL_WEEK,
        "daily_cap": None,
        "spacing_seconds": 0,
        "jitter_seconds": 0,
    }
    return Schedule(**(values | changes))


def _eta(remaining: int, *, per_minute: float = 60, now: datetime = NOW, **changes: Any) -> Eta:
    values: dict[str, Any] = {
        "now": now,
        "remaining": remaining,
        "per_minute": per_minute,
        "schedule": _schedule(),
        "start": now,
        "start_hold": None,
        "sent_today": 0,
        "account_allowance": 10_000,
        "account_releases": (),
    }
    return estimate(Outlook(**(values | changes)))


def test_an_unhindered_run_finishes_at_its_current_rate() -> None:
    """30 messages at 138 a minute take 13 seconds (the ten-minute average predicted 2,257)."""
    eta = _eta(30, per_minute=138)
    assert (round((eta.finishes_at - NOW).total_seconds(), 1), eta.held_by) == (12.6, None)


def test_the_daily_cap_holds_the_rest_until_the_next_day() -> None:
    """With 60 of a cap of 100 sent today, 40 go now and the other 60 wait for local midnight."""
    eta = _eta(100, schedule=_schedule(daily_cap=100), sent_today=60)
    midnight = datetime(2024, 5, 9, tzinfo=UTC)
    assert (eta.held_by, eta.held_until, eta.before_hold) == ("daily_cap", midnight, 40)
    assert eta.finishes_at == midnight + timedelta(seconds=59)


def test_the_cap_counts_local_days() -> None:
    """The cap resets at midnight in the campaign's time zone, not in UTC."""
    eta = _eta(10, schedule=_schedule(daily_cap=5, timezone="Asia/Tokyo"))
    assert eta.held_until == datetime(2024, 5, 9, tzinfo=UTC) - timedelta(hours=9)


def test_the_rest_waits_for_tomorrows_window() -> None:
    """A window closing in a minute sends 60 of 120 today; the other 60 go from 09:00 tomorrow."""
    schedule = _schedule(window_start=time(9), window_end=time(12, 1))
    eta = _eta(120, schedule=schedule)
    tomorrow_nine = datetime(2024, 5, 9, 9, tzinfo=UTC)
    assert (eta.held_by, eta.held_until, eta.before_hold) == ("window", tomorrow_nine, 60)
    assert eta.finishes_at == tomorrow_nine + timedelta(seconds=59)


def test_nothing_goes_outside_the_window() -> None:
    """Outside its hours, a campaign is held from the start until its window opens."""
    eta = _eta(10, schedule=_schedule(window_start=time(14), window_end=time(15)))
    assert (eta.held_by, eta.held_until, eta.before_hold) == ("window", NOW.replace(hour=14), 0)


def test_days_off_are_skipped() -> None:
    """A weekdays-only campaign on a Friday evening waits for Monday morning."""
    friday_evening = datetime(2024, 5, 10, 18, tzinfo=UTC)
    schedule = _schedule(window_start=time(9), window_end=time(17), weekdays=(1, 2, 3, 4, 5))
    eta = _eta(3, now=friday_evening, start=friday_evening, schedule=schedule)
    assert eta.held_until == datetime(2024, 5, 13, 9, tzinfo=UTC)


def test_a_window_across_midnight_counts_each_day_against_its_own_cap() -> None:
    """22:00-06:00 with a cap of 10: ten before midnight, ten after, the rest the next night."""
    late = datetime(2024, 5, 8, 23, 50, tzinfo=UTC)
    schedule = _schedule(window_start=time(22), window_end=time(6), daily_cap=10)
    eta = _eta(25, now=late, start=late, schedule=schedule)
    assert (eta.held_by, eta.before_hold) == ("daily_cap", 10)
    # Ten at 23:50, ten from midnight (9 May's cap), five from 00:00 on 10 May, inside 9 May's window.
    assert eta.finishes_at == datetime(2024, 5, 10, 0, 0, 4, tzinfo=UTC)


def test_the_accounts_daily_limit_frees_up_as_earlier_sends_age_out() -> None:
    """With 10 sends left, the rest goes as the account's earlier sends leave its 24 hours."""
    releases = ((NOW + timedelta(hours=2), 5), (NOW + timedelta(hours=3), 100))
    eta = _eta(20, account_allowance=10, account_releases=releases)
    assert (eta.held_by, eta.held_until, eta.before_hold) == (
        "account_daily_limit",
        NOW + timedelta(hours=2),
        10,
    )
    assert eta.finishes_at == NOW + timedelta(hours=3, seconds=4)


def test_the_runs_own_sends_count_against_the_accounts_limit_a_day_later() -> None:
    """A 50-a-day account sends 120 in three days: its own sends free their slots a day after."""
    eta = _eta(120, account_allowance=50)
    assert eta.finishes_at == NOW + 2 * DAY + timedelta(seconds=49 + 49 + 19)


def test_a_start_in_the_future_holds_the_run() -> None:
    """A campaign that starts later (or whose account Gmail parked) is held from the start."""
    later = NOW + timedelta(hours=5)
    eta = _eta(2, start=later, start_hold="account_parked")
    assert (eta.held_by, eta.held_until, eta.finishes_at) == (
        "account_parked",
        later,
        later + timedelta(seconds=1),
    )


def test_a_very_long_run_is_extrapolated() -> None:
    """A run too long to play out in blocks still gets an estimate, at its average rate so far."""
    eta = _eta(200_000, account_allowance=1, account_releases=())
    assert eta.finishes_at > NOW + 10_000 * DAY


def test_the_first_wait_is_said_in_words() -> None:
    """describe names how many go first, until when (local time) and why the rest waits."""
    eta = Eta(
        finishes_at=NOW + DAY,
        held_by="window",
        held_until=datetime(2024, 5, 9, 7, tzinfo=UTC),
        before_hold=40,
    )
    assert describe(eta, 100, "Europe/Paris") == (
        "40 go first; the other 60 wait until Thu 2024-05-09 09:00 (Europe/Paris), "
        "waiting for the sending window"
    )
    assert describe(Eta(finishes_at=NOW), 100, "UTC") is None


def test_sending_since_is_the_opening_of_the_current_window() -> None:
    """The current period opened at the window's start today; outside the window there is none."""
    schedule = _schedule(window_start=time(9), window_end=time(17))
    assert sending_since(schedule, NOW) == NOW.replace(hour=9)
    assert sending_since(schedule, NOW.replace(hour=18)) is None
