"""Pure rules: address parsing, campaign windows and caps, account allowance."""

from __future__ import annotations

import random
from collections import deque
from datetime import UTC, datetime, time, timedelta

import pytest
from email_validator import EmailNotValidError, validate_email

from mailmerger_queue.dispatch.pacing import Pace, Schedule, account_allowance
from mailmerger_queue.domain import InvalidAddress, parse_address

ADDRESSES = [
    "ada@example.com",
    "Ada.Lovelace+tag@Example.COM",
    "o'brien@sub.example.co.uk",
    "a@b.c",
    "x@localhost",
    "x@host.local",
    "x@example.test",
    "x@xn--bcher-kva.com",
    "x@a--b.com",
    "x@123.com",
    "x@b.123",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    f"{'l' * 64}@example.com",
    f"{'l' * 65}@example.com",
    f"a@{'d' * 63}.com",
    f"a@{'d' * 64}.com",
    f"a@{('d' * 60 + '.') * 4}com",
    "用户@例子.广告",
    "ünïcode@example.com",
    '"quoted"@example.com',
    "no-at-sign",
    "two@@example.com",
    " padded@example.com ",
    "-dash-@-example.com",
]


def _reference(address: str) -> str | None:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


@pytest.mark.parametrize("address", ADDRESSES)
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    """parse_address accepts and normalizes exactly as email-validator does."""
    try:
        ours: str | None = parse_address(address)
    except InvalidAddress:
        ours = None
    assert ours == _reference(address)


@pytest.mark.parametrize("address", ["a@example.com\r\nBcc: x@example.com", "a\x00@example.com"])
def test_header_breakers_are_never_addresses(address: str) -> None:
    """CR, LF and NUL make any address invalid, whatever the rest looks like."""
    with pytest.raises(InvalidAddress, match="line break"):
        parse_address(address)


@pytest.mark.parametrize(
    "address", ["=?utf-8?q?a=0D=0ABcc=3A_x=40evil.test?=@example.com", "x=?y@example.com"]
)
def test_encoded_word_look_alikes_are_never_addresses(address: str) -> None:
    """``=?`` is legal in a local part (email-validator takes it) but mail programs decode it as an
    RFC 2047 word, so it is refused."""
    assert _reference(address) is not None
    with pytest.raises(InvalidAddress, match="encoded word"):
        parse_address(address)


def test_overnight_window_belongs_to_the_day_it_started() -> None:
    """22:00 to 06:00 on Fridays only: Friday 23:00 and Saturday 05:00 are in, Saturday 23:00 is not."""
    schedule = Schedule(
        timezone="UTC",
        window_start=time(22),
        window_end=time(6),
        weekdays=(5,),
        daily_cap=None,
        spacing_seconds=0,
        jitter_seconds=0,
    )
    assert schedule.in_window(datetime(2030, 1, 4, 23, tzinfo=UTC))
    assert schedule.in_window(datetime(2030, 1, 5, 5, tzinfo=UTC))
    assert not schedule.in_window(datetime(2030, 1, 5, 23, tzinfo=UTC))
    assert not schedule.in_window(datetime(2030, 1, 4, 12, tzinfo=UTC))


TICK = timedelta(seconds=0.5)
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_an_idle_account_may_send_one_ticks_worth_at_once() -> None:
    """No pacing clock yet (or one left behind): one dispatch, plus those due within a tick."""
    pace = Pace.of(150, pace_fraction=0.97, tick=TICK)  # one per 0.41 s
    assert pace.allowance(None, T0) == 2
    assert pace.allowance(T0 - timedelta(hours=1), T0) == 2  # idle credit does not pile up
    assert pace.allowance(T0 + TICK + timedelta(milliseconds=1), T0) == 0


def test_the_daily_window_bounds_the_pace() -> None:
    pace = Pace.of(150, pace_fraction=0.97, tick=TICK)
    assert account_allowance(pace=pace, paced_until=None, daily=500, sent_last_day=0, now=T0) == 2
    assert account_allowance(pace=pace, paced_until=None, daily=500, sent_last_day=499, now=T0) == 1
    assert account_allowance(pace=pace, paced_until=None, daily=500, sent_last_day=600, now=T0) == 0


@pytest.mark.parametrize("per_minute", [1, 3, 15, 60, 150, 1000])
@pytest.mark.parametrize("tick_seconds", [0.1, 0.5, 1.3])
def test_paced_ticks_fill_the_minute_but_never_exceed_it(per_minute: int, tick_seconds: float) -> None:
    """Ticking with jitter and taking the whole allowance each time, any sliding 60 s holds at most
    the limit, and ten minutes carry at least 96 % of it (pace 97 %)."""
    tick = timedelta(seconds=tick_seconds)
    pace = Pace.of(per_minute, pace_fraction=0.97, tick=tick)
    rng = random.Random(per_minute)
    now, paced_until, window, total = T0, None, deque[datetime](), 0
    while now < T0 + timedelta(minutes=10):
        n = pace.allowance(paced_until, now)
        paced_until = pace.advance(paced_until, now, n) if n else paced_until
        window.extend([now] * n)
        total += n
        while window and window[0] <= now - timedelta(minutes=1):
            window.popleft()
        assert len(window) <= per_minute
        now += tick * rng.uniform(0.5, 1.0)  # a tick is never later than its period
    assert total >= 0.96 * 10 * per_minute
