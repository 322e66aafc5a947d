"""The suppression list: addresses and whole domains a user's campaign mail must never reach.

Entries come from one-click unsubscribes, hard bounces, replies that stop a sequence, the user's
own additions and CSV imports. The list is enforced where it cannot be raced: at dispatch, in the
tick's transaction, for every campaign message (``screen``). A row suppressed after its campaign
launched is therefore never sent, and an unsubscribe stops every later message to the address in
the very next tick. Values are lowercased: an unsubscribe of ``Bob@Example.com`` covers
``bob@example.com``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

import msgspec
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue.domain import InvalidAddress, parse_address
from mailmerger_queue.errors import Invalid, NotFound
from mailmerger_queue.models import Record, suppressions
from mailmerger_shared.csv_export import csv_line
from mailmerger_shared.db import transaction
from mailmerger_shared.errors import Malformed
from mailmerger_shared.pagination import decode_cursor, encode_cursor

sp = suppressions

MAX_IMPORT_ROWS = 200_000
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+[a-z]{{2,63}}|xn--[a-z0-9-]+(?:\.{_LABEL})*")
EXPORT_COLUMNS = ["kind", "value", "reason", "source", "created_at"]


class Kind(StrEnum):
    ADDRESS = "address"
    DOMAIN = "domain"


class Reason(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    HARD_BOUNCE = "hard_bounce"
    REPLY_STOP = "reply_stop"
    MANUAL = "manual"
    IMPORT = "import"


class Entry(NamedTuple):
    kind: Kind
    value: str


class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    value: str
    reason: str
    source: str | None
    created_at: datetime


class SuppressionPage(msgspec.Struct, frozen=True, kw_only=True):
    """Newest first; pass ``next_cursor`` as ``cursor`` for the next page (null on the last one)."""

    items: list[Suppression]
    next_cursor: str | None


class ImportProblem(msgspec.Struct, frozen=True, kw_only=True):
    row: int  # 1-based, the header being row 1 (as a spreadsheet numbers it)
    detail: str


class ImportReport(msgspec.Struct, frozen=True, kw_only=True):
    added: int
    already_suppressed: int
    problems: list[ImportProblem]


def address_entry(address: str) -> Entry:
    """The entry of one address; Invalid naming ``address`` when it is not one."""
    try:
        normalized = parse_address(address)
    except InvalidAddress as exc:
        raise Invalid(f"address: {exc}", extra={"field": "address"}) from None
    return Entry(Kind.ADDRESS, normalized.lower())


def domain_entry(domain: str) -> Entry:
    """The entry of a whole domain (``example.com``, also accepted as ``@example.com``)."""
    candidate = domain.strip().removeprefix("@").rstrip(".").lower()
    try:
        candidate = candidate.encode("idna").decode("ascii") if not candidate.isascii() else candidate
    except UnicodeError:
        candidate = ""
    if len(candidate) > 253 or not _DOMAIN.fullmatch(candidate):
        raise Invalid(
            f"domain: {domain[:100]!r} is not a domain; give one like example.com", extra={"field": "domain"}
        )
    return Entry(Kind.DOMAIN, candidate)


def entry_of(address: str | None, domain: str | None) -> Entry:
    if (address is None) == (domain is None):
        raise Invalid("give either address or domain, not both", extra={"field": "address"})
    return address_entry(address) if address is not None else domain_entry(domain or "")


async def add(
    session: AsyncSession, user_id: int, entry: Entry, *, reason: Reason, source: str | None, now: datetime
) -> tuple[Suppression, bool]:
    """Suppress ``entry`` for the user; the entry and whether it is new (an existing one is kept
    as it was: the first reason is the one that explains it)."""
    inserted = (
        await session.execute(
            insert(sp)
            .values(
                user_id=user_id,
                kind=entry.kind,
                value=entry.value,
                reason=reason,
                source=source,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[sp.c.user_id, sp.c.kind, sp.c.value])
            .returning(*sp.c)
        )
    ).one_or_none()
    if inserted is not None:
        return _suppression(inserted), True
    existing = (
        await session.execute(
            select(sp).where(sp.c.user_id == user_id, sp.c.kind == entry.kind, sp.c.value == entry.value)
        )
    ).one()
    return _suppression(existing), False


async def remove(session: AsyncSession, user_id: int, suppression_id: int) -> None:
    removed = await session.execute(
        delete(sp).where(sp.c.id == suppression_id, sp.c.user_id == user_id).returning(sp.c.id)
    )
    if removed.one_or_none() is None:
        raise NotFound(f"suppression {suppression_id} not found")


async def page(
    session: AsyncSession,
    user_id: int,
    *,
    kind: Kind | None,
    search: str | None,
    cursor: str | None,
    limit: int,
) -> SuppressionPage:
    query = select(sp).where(sp.c.user_id == user_id)
    if kind is not None:
        query = query.where(sp.c.kind == kind)
    if search:
        query = query.where(sp.c.value.startswith(search.strip().lower(), autoescape=True))
    if cursor is not None:
        query = query.where(sp.c.id < decode_cursor("suppressions", cursor))
    rows = (await session.execute(query.order_by(sp.c.id.desc()).limit(limit + 1))).all()
    items = [_suppression(row) for row in rows[:limit]]
    more = len(rows) > limit
    return SuppressionPage(
        items=items, next_cursor=encode_cursor("suppressions", items[-1].id) if more else None
    )


async def import_csv(
    session: AsyncSession, user_id: int, data: bytes, *, source: str, now: datetime
) -> ImportReport:
    """Suppress every address (column ``address`` or ``email``) and domain (column ``domain``) of
    a CSV whose first record names the columns; rows that are neither are reported, not fatal."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Malformed("the file is not UTF-8 text; export it from your spreadsheet as CSV UTF-8") from None
    reader = csv.reader(io.StringIO(content, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    address_column = next((header.index(name) for name in ("address", "email") if name in header), None)
    domain_column = header.index("domain") if "domain" in header else None
    if address_column is None and domain_column is None:
        raise Invalid(
            "the first line must name a column 'address' (or 'email') and/or 'domain'",
            extra={"field": "file"},
        )
    entries: dict[Entry, None] = {}
    problems: list[ImportProblem] = []
    for number, record in enumerate(reader, start=2):
        if number - 1 > MAX_IMPORT_ROWS:
            raise Invalid(f"the file has more than {MAX_IMPORT_ROWS} rows; split it", extra={"field": "file"})
        cells = [
            (column, record[index].strip())
            for column, index in (("address", address_column), ("domain", domain_column))
            if index is not None and index < len(record) and record[index].strip()
        ]
        if not cells:
            if any(cell.strip() for cell in record):
                problems.append(ImportProblem(row=number, detail="neither an address nor a domain"))
            continue
        for column, value in cells:
            try:
                entries[address_entry(value) if column == "address" else domain_entry(value)] = None
            except Invalid as exc:
                problems.append(ImportProblem(row=number, detail=exc.detail))
    added = await _insert_many(session, user_id, list(entries), reason=Reason.IMPORT, source=source, now=now)
    return ImportReport(added=added, already_suppressed=len(entries) - added, problems=problems[:1000])


async def _insert_many(
    session: AsyncSession,
    user_id: int,
    entries: Sequence[Entry],
    *,
    reason: Reason,
    source: str,
    now: datetime,
) -> int:
    added = 0
    for start in range(0, len(entries), 10_000):
        chunk = entries[start : start + 10_000]
        result = await session.execute(
            text(
                "INSERT INTO queue.suppressions (user_id, kind, value, reason, source, created_at) "
                "SELECT :user_id, e.kind, e.value, :reason, :source, :now "
                "FROM unnest(CAST(:kinds AS text[]), CAST(:values AS text[])) AS e(kind, value) "
                "ON CONFLICT (user_id, kind, value) DO NOTHING"
            ),
            {
                "user_id": user_id,
                "kinds": [entry.kind.value for entry in chunk],
                "values": [entry.value for entry in chunk],
                "reason": reason.value,
                "source": source,
                "now": now,
            },
        )
        added += result.rowcount  # type: ignore[attr-defined]
    return added


async def export_csv(sessions: async_sessionmaker[AsyncSession], user_id: int) -> AsyncIterator[bytes]:
    """The user's whole list as CSV (spreadsheet-safe), in pages of 5,000, oldest first."""
    yield csv_line(EXPORT_COLUMNS)
    after = 0
    while True:
        async with transaction(sessions) as session:
            rows = (
                await session.execute(
                    select(sp).where(sp.c.user_id == user_id, sp.c.id > after).order_by(sp.c.id).limit(5000)
                )
            ).all()
        if not rows:
            return
        yield b"".join(
            csv_line([row.kind, row.value, row.reason, row.source, row.created_at.isoformat()])
            for row in rows
        )
        after = rows[-1].id


async def count(session: AsyncSession, user_id: int) -> int:
    return int(await session.scalar(select(func.count()).where(sp.c.user_id == user_id)) or 0)


# The campaign messages among a tick's claim whose recipient is suppressed, with the entry's
# reason. Two index lookups per message (the address, then its domain) on (user_id, kind, value).
_SUPPRESSED = text(
    """
    SELECT c.id, s.kind, s.reason
    FROM unnest(CAST(:ids AS bigint[]), CAST(:users AS bigint[]), CAST(:addresses AS text[]))
         AS c(id, user_id, address)
    JOIN LATERAL (
        SELECT kind, reason FROM queue.suppressions
        WHERE user_id = c.user_id AND kind = 'address' AND value = c.address
        UNION ALL
        SELECT kind, reason FROM queue.suppressions
        WHERE user_id = c.user_id AND kind = 'domain' AND value = split_part(c.address, '@', 2)
        LIMIT 1
    ) AS s ON true
    """
)


async def screen(session: AsyncSession, rows: Sequence[Record]) -> dict[int, str]:
    """Of the claimed ``rows`` (``id``, ``user_id``, ``campaign_id``, ``to_addrs``, ``cc_addrs``,
    ``bcc_addrs``), the campaign messages that must not be sent: message id → why, in words."""
    ids: list[int] = []
    users: list[int] = []
    addresses: list[str] = []
    for row in rows:
        if row.campaign_id is None:
            continue  # a personal email is the user's own decision, one message at a time
        for address in (*row.to_addrs, *row.cc_addrs, *row.bcc_addrs):
            ids.append(row.id)
            users.append(row.user_id)
            addresses.append(_addr_spec(address).lower())
    if not ids:
        return {}
    found = await session.execute(_SUPPRESSED, {"ids": ids, "users": users, "addresses": addresses})
    return {
        message_id: f"the recipient's {'address' if kind == 'address' else 'domain'} is suppressed ({reason})"
        for message_id, kind, reason in found
    }


def _addr_spec(address: str) -> str:
    """The addr-spec of ``Name <a@b>`` or ``a@b`` (campaign rows hold bare addr-specs)."""
    if address.endswith(">") and "<" in address:
        return address[address.rindex("<") + 1 : -1]
    return address


def _suppression(row: Record) -> Suppression:
    return Suppression(
        id=row.id,
        kind=row.kind,
        value=row.value,
        reason=row.reason,
        source=row.source,
        created_at=row.created_at,
    )


_SUPPRESSED_ROWS = text(
    """
    SELECT count(*) FROM queue.recipients r
    WHERE r.campaign_id = :campaign_id AND r.problem IS NULL AND EXISTS (
        SELECT 1 FROM queue.suppressions s
        WHERE s.user_id = :user_id AND (
            (s.kind = 'address' AND s.value = lower(r.address))
            OR (s.kind = 'domain' AND s.value = lower(split_part(r.address, '@', 2)))
        )
    )
    """
)


async def suppressed_rows(session: AsyncSession, user_id: int, campaign_id: int) -> int:
    """How many of a campaign's sendable rows the suppression list will stop (as of now)."""
    return int(await session.scalar(_SUPPRESSED_ROWS, {"campaign_id": campaign_id, "user_id": user_id}) or 0)
