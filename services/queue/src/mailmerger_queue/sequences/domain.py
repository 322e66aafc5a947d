"""Rules of a sequence, no I/O: when a follow-up is due, the subject it threads with, why it stops."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class StopReason(StrEnum):
    """Why a recipient's sequence stopped (``recipients.stop_reason``)."""

    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    STOPPED = "stopped"  # by the user
    SUPPRESSED = "suppressed"  # found on the suppression list at dispatch


_DAY = timedelta(days=1)


def follow_up_at(
    previous_sent_at: datetime,
    delay_hours: int,
    *,
    business_days: bool,
    timezone: str,
    weekdays: Iterable[int],
) -> datetime:
    """When a follow-up is due: ``delay_hours`` after the previous step was sent; with
    ``business_days``, only time on the campaign's ``weekdays`` (ISO, in ``timezone``) counts, so
    48 hours from a Friday noon are Tuesday noon for a Monday-to-Friday campaign. The sending
    window is the dispatcher's business, not this one's."""
    delay = timedelta(hours=delay_hours)
    days = set(weekdays)
    if not business_days or not days or days >= set(range(1, 8)):
        return previous_sent_at + delay
    zone = ZoneInfo(timezone)
    at = previous_sent_at
    remaining = delay
    while True:
        local = at.astimezone(zone)
        midnight = datetime.combine(local.date() + _DAY, time(), tzinfo=zone)
        # ``at`` and ``midnight`` have different tzinfo, so this is elapsed time (a DST day is
        # 23 or 25 hours long), not wall-clock time.
        to_midnight = midnight - at
        if local.isoweekday() in days:
            if remaining <= to_midnight:
                return at + remaining
            remaining -= to_midnight
        at = midnight.astimezone(previous_sent_at.tzinfo)


def thread_subject(first_subject: str) -> str:
    """The subject of a follow-up in the thread whose first email had ``first_subject``: Gmail
    threads only a matching subject, so it is "Re: " and that subject (once)."""
    stripped = first_subject.strip()
    if stripped[:3].lower() == "re:":
        return stripped
    return f"Re: {stripped}"
