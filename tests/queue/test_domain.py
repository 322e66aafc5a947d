"""Pure rules: address parsing, campaign windows and caps, account allowance."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from email_validator import EmailNotValidError, validate_email

from mailmerger_queue.domain import InvalidAddress, parse_address
from mailmerger_queue.pacing import AccountUsage, Schedule, account_allowance

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


def test_account_allowance_is_the_tightest_limit() -> None:
    """The minute window, the day window and the per-tick share each bound the allowance."""
    assert account_allowance(per_minute=150, daily=500, per_tick=25, usage=AccountUsage(0, 0)) == 25
    assert account_allowance(per_minute=150, daily=500, per_tick=25, usage=AccountUsage(140, 0)) == 10
    assert account_allowance(per_minute=150, daily=500, per_tick=25, usage=AccountUsage(0, 495)) == 5
    assert account_allowance(per_minute=150, daily=500, per_tick=25, usage=AccountUsage(0, 600)) == 0
