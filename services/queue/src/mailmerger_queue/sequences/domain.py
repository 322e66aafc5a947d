"""Rules of a sequence, no I/O: when a follow-up is due, the subject it threads with, why it stops,
which response outranks which, and whether an account's replies can be watched at all."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo


class StopReason(StrEnum):
    """Why a recipient's sequence stopped (``recipients.stop_reason``)."""

    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    STOPPED = "stopped"  # by the user
    SUPPRESSED = "suppressed"  # found on the suppression list at dispatch


_DAY = timedelta(days=1)
HOUR_SECONDS = 3600.0


def follow_up_at(
    previous_sent_at: datetime,
    delay_hours: int,
    *,
    business_days: bool,
    timezone: str,
    weekdays: Iterable[int],
    hour_seconds: float = HOUR_SECONDS,
) -> datetime:
    """When a follow-up is due: ``delay_hours`` after the previous step was sent; with
    ``business_days``, only time on the campaign's ``weekdays`` (ISO, in ``timezone``) counts, so
    48 hours from a Friday noon are Tuesday noon for a Monday-to-Friday campaign. The sending
    window is the dispatcher's business, not this one's.

    ``hour_seconds`` (``MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS``, tests and the demo) is how long one
    of those hours lasts; only the delay is scaled: the weekday rule still walks calendar days."""
    delay = timedelta(seconds=delay_hours * hour_seconds)
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


# Of the responses to one message, the one ``messages.response`` keeps: the strongest so far.
# A bounce says the address is dead, which outranks anything the recipient (or their auto-reply)
# may have said; a soft bounce (``delay``) says the least.
RESPONSE_STRENGTH: Final = {"delay": 1, "auto_reply": 2, "reply": 3, "bounce": 4}


# Scopes that let the mailbox watcher read a thread's headers (GMAIL_FACTS.md 2.5); gmail.send
# alone lets it read nothing.
READ_SCOPES: Final = frozenset(
    {
        "https://www.googleapis.com/auth/gmail.metadata",
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://mail.google.com/",
    }
)


def replies_unwatched(scopes: Iterable[str] | None, campaign_id: int) -> str | None:
    """Why the replies and bounces of a campaign sent with ``scopes`` go undetected, in words;
    None when the mailbox watcher sees them."""
    if scopes is not None and READ_SCOPES.intersection(scopes):
        return None
    return (
        "the sending account granted only gmail.send: replies and bounces are not detected; mark a "
        f"row replied with POST /v1/campaigns/{campaign_id}/rows/{{row}}/stop"
    )


def addr_spec(address: str) -> str:
    """The addr-spec of ``Name <a@b>`` or ``a@b``."""
    spec = address.strip()
    if spec.endswith(">") and "<" in spec:
        spec = spec[spec.rindex("<") + 1 : -1]
    return spec.strip()


def email_domain(address: str) -> str:
    """The domain of an address (``Name <a@B.com>`` or ``a@b.com``), lowercased; "" for none."""
    spec = addr_spec(address)
    return spec.rsplit("@", 1)[-1].lower() if "@" in spec else ""
