"""Recipient-domain rails: how much of a campaign may go to one organisation, and how close a
sending domain is to Gmail's bulk-sender line.

The domain cap (``campaigns.domain_daily_cap``) keeps a campaign from sending more than N messages
a day (the campaign's local day) to one recipient domain: a job seeker writing to one company, cold
email to one organisation. The dispatcher asks :func:`over_domain_cap` about the campaign messages
it claimed; those over the cap wait for the next local day. A campaign's messages are dispatched
only by the dispatcher that holds its account's pacing lock (``dispatch.pacers``), so however
many dispatchers run, one campaign's counts are read and written by one of them at a time; the
counter row is locked all the same, so the rail never relies on that alone.

The bulk-sender report counts, per sending domain, the messages sent in the last 24 hours to
personal Gmail addresses: Google treats a domain that sends about 5,000 a day to them as a bulk
sender, permanently (GMAIL_FACTS.md 2.6).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.dispatch.pacing import Schedule
from mailmerger_queue.models import Record

BULK_SENDER_THRESHOLD = 5000
PERSONAL_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")

CampaignDay = tuple[int, str, datetime]  # campaign, recipient domain, the local day's start (UTC)


def recipient_domain(row: Record) -> str:
    """The domain of a campaign message's (one) To address."""
    address = row.to_addrs[0] if row.to_addrs else ""
    return address.rpartition("@")[2].rstrip(">").lower()


_LOCK_COUNTS = text(
    """
    SELECT d.campaign_id, d.domain, d.day, d.sent FROM queue.domain_sends d
    JOIN unnest(CAST(:campaigns AS bigint[]), CAST(:domains AS text[]), CAST(:days AS date[]))
         AS k(campaign_id, domain, day)
      ON d.campaign_id = k.campaign_id AND d.domain = k.domain AND d.day = k.day
    ORDER BY d.campaign_id, d.domain, d.day
    FOR UPDATE OF d
    """
)

_COUNT = text(
    """
    INSERT INTO queue.domain_sends (campaign_id, domain, day, sent)
    SELECT * FROM unnest(CAST(:campaigns AS bigint[]), CAST(:domains AS text[]), CAST(:days AS date[]),
                         CAST(:counts AS int[]))
    ON CONFLICT (campaign_id, domain, day) DO UPDATE SET sent = queue.domain_sends.sent + EXCLUDED.sent
    """
)


class DomainRail:
    """The domain caps of one tick: which claimed messages wait, then what the tick sent."""

    def __init__(self, caps: dict[int, int], schedules: dict[int, Schedule]) -> None:
        """``caps``: campaign id → its daily cap per recipient domain (capped campaigns only)."""
        self._caps = caps
        self._schedules = schedules

    def _key(self, row: Record, now: datetime) -> tuple[int, str, str]:
        schedule = self._schedules[row.campaign_id]
        local_day = now.astimezone(ZoneInfo(schedule.timezone)).date().isoformat()
        return row.campaign_id, recipient_domain(row), local_day

    async def over_cap(
        self, session: AsyncSession, rows: Sequence[Record], now: datetime
    ) -> dict[int, datetime]:
        """Of the claimed ``rows``, the messages over their campaign's domain cap today, each with
        when it may go (the start of the campaign's next local day)."""
        capped = [row for row in rows if row.campaign_id in self._caps]
        if not capped:
            return {}
        keys = sorted({self._key(row, now) for row in capped})
        counts = {
            (campaign_id, domain, day.isoformat()): sent
            for campaign_id, domain, day, sent in await session.execute(_LOCK_COUNTS, _columns(keys))
        }
        taken: dict[tuple[int, str, str], int] = defaultdict(int)
        waiting: dict[int, datetime] = {}
        for row in sorted(capped, key=lambda row: row.id):
            key = self._key(row, now)
            if counts.get(key, 0) + taken[key] < self._caps[row.campaign_id]:
                taken[key] += 1
            else:
                waiting[row.id] = _next_local_day(self._schedules[row.campaign_id], now)
        return waiting

    async def count(self, session: AsyncSession, dispatched: Iterable[Record], now: datetime) -> None:
        """Add the tick's dispatched messages of capped campaigns to their counters."""
        sent: dict[tuple[int, str, str], int] = defaultdict(int)
        for row in dispatched:
            if row.campaign_id in self._caps:
                sent[self._key(row, now)] += 1
        if sent:
            keys = sorted(sent)
            await session.execute(_COUNT, {**_columns(keys), "counts": [sent[key] for key in keys]})


def _columns(keys: Sequence[tuple[int, str, str]]) -> dict[str, list[object]]:
    return {
        "campaigns": [key[0] for key in keys],
        "domains": [key[1] for key in keys],
        "days": [datetime.fromisoformat(key[2]).date() for key in keys],
    }


def _next_local_day(schedule: Schedule, now: datetime) -> datetime:
    zone = ZoneInfo(schedule.timezone)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, datetime.min.time(), tzinfo=zone).astimezone(now.tzinfo)


class BulkSenderDomain(msgspec.Struct, frozen=True, kw_only=True):
    """One of the user's sending domains and its last 24 hours to personal Gmail addresses."""

    domain: str
    personal_gmail_last_24h: int
    threshold: int = BULK_SENDER_THRESHOLD
    warning: str | None = None


# Messages sent in the last 24 h from each of the user's sending domains (of the accounts' own
# addresses; consumer gmail.com senders are not domains anyone can be a bulk sender of) to
# personal Gmail addresses, found through the attempts index (account, dispatched_at).
_PERSONAL_GMAIL_SENT = text(
    """
    SELECT split_part(lower(s.email), '@', 2) AS domain, count(m.id)
    FROM queue.senders s
    LEFT JOIN queue.attempts a
      ON a.account_id = s.account_id AND a.dispatched_at > :since AND a.outcome = 'sent'
    LEFT JOIN queue.messages m
      ON m.id = a.message_id AND lower(split_part(m.to_addrs[1], '@', 2)) = ANY(CAST(:gmail AS text[]))
    WHERE s.user_id = :user_id AND split_part(lower(s.email), '@', 2) <> ALL(CAST(:gmail AS text[]))
    GROUP BY 1 ORDER BY 1
    """
)


async def bulk_sender_report(
    session: AsyncSession, user_id: int, *, now: datetime, warn_at: int
) -> list[BulkSenderDomain]:
    rows = await session.execute(
        _PERSONAL_GMAIL_SENT,
        {"user_id": user_id, "since": now - timedelta(hours=24), "gmail": list(PERSONAL_GMAIL_DOMAINS)},
    )
    return [
        BulkSenderDomain(
            domain=domain,
            personal_gmail_last_24h=int(sent),
            warning=(
                f"{domain} sent {sent} messages to personal Gmail addresses in the last 24 hours; at about "
                f"{BULK_SENDER_THRESHOLD} a day Google treats it as a bulk sender for good (SPF, DKIM, "
                "DMARC and one-click unsubscribe become required)"
            )
            if sent >= warn_at
            else None,
        )
        for domain, sent in rows
    ]
