"""Building a campaign's recipient list: read rows, check them, render them, store them.

Rows are processed a batch at a time (``build_batch_rows``): checked (address, attachments,
shape, the Cc, Bcc and Reply-To of the campaign's columns: ``more_addresses``), rendered through
templates' ``render-batch`` (a rendered subject the sender could not write is the row's
``invalid_subject``; a message above Gmail's size limit, its attachments and the campaign's
included, is its ``message_too_large``), and written with ``COPY``. Memory holds one
batch, never the list; duplicates are found afterwards by one SQL statement over the stored rows.
Every row is kept, with its problem if it has one, so the report can point at row numbers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.campaigns.csvstream import csv_records
from mailmerger_queue.compliance.tokens import Row, UnsubscribeTokens
from mailmerger_queue.domain import MAX_REPLY_TO, InvalidAddress, parse_address, subject_problem
from mailmerger_queue.emails.message_size import (
    attachment_sizes,
    encoded_attachment_size,
    minimum_size,
    too_large,
)
from mailmerger_queue.emails.service import remember_attachments
from mailmerger_queue.errors import Invalid
from mailmerger_queue.models import Record, recipients
from mailmerger_queue.settings import ComposeSettings
from mailmerger_shared.internal_api import AttachmentInfo, RenderedRow
from mailmerger_shared.web.input_guard import NUL

_COLUMNS = [
    "campaign_id",
    "row_number",
    "address",
    "fields",
    "attachment_ids",
    "problem",
    "detail",
    "subject",
    "html",
    "text",
    "cc_addrs",
    "bcc_addrs",
    "reply_to_addrs",
]
# The variable holding a row's one-click unsubscribe link, for a visible link in the body.
UNSUBSCRIBE_VARIABLE = "unsubscribe_url"
_ID_SEPARATORS = re.compile(r"[;,\s]+")
_ADDRESS_SEPARATORS = re.compile(r"[;,]")
# The campaign options naming a column of more addresses, and a row's problem when one is invalid.
MORE_ADDRESS_COLUMNS = {
    "cc_column": "invalid_cc",
    "bcc_column": "invalid_bcc",
    "reply_to_column": "invalid_reply_to",
}
_DUPLICATES = text(
    """
    UPDATE queue.recipients AS r
    SET problem = 'duplicate', detail = 'same address as row ' || d.first_row
    FROM (
        SELECT id, row_number,
               min(row_number) OVER (PARTITION BY lower(address)) AS first_row
        FROM queue.recipients WHERE campaign_id = :campaign_id AND problem IS NULL
    ) AS d
    WHERE r.id = d.id AND d.row_number > d.first_row
    """
)


@dataclass(frozen=True)
class RowIn:
    """One row of the uploaded list; ``malformed`` says why its shape is wrong, if it is."""

    number: int
    values: dict[str, Any]
    malformed: str | None = None


def address_columns(campaign: Record) -> dict[str, str]:
    """The campaign's Cc, Bcc and Reply-To columns it names: option → column."""
    return {option: name for option in MORE_ADDRESS_COLUMNS if (name := getattr(campaign, option))}


async def csv_rows(
    chunks: AsyncIterator[bytes],
    settings: ComposeSettings,
    *,
    address_column: str,
    more_columns: Mapping[str, str] | None = None,
) -> AsyncIterator[RowIn]:
    """Rows of a CSV whose first record names the columns, one of them ``address_column`` and
    each of ``more_columns`` (option → column: ``address_columns``)."""
    records = csv_records(chunks, max_bytes=settings.max_upload_bytes)
    header = [name.strip() for name in await anext(records, [])]
    if not header:
        raise Invalid("the recipient list is empty; its first line must name the columns")
    for column, name in enumerate(header, start=1):
        if NUL in name:
            raise Invalid(
                f"the header's column {column} contains a NUL character, which is not text; "
                "remove it from the file"
            )
    if len(set(header)) != len(header):
        raise Invalid(f"the header names a column twice: {', '.join(header)}")
    if address_column not in header:
        raise Invalid(
            f"the list has no {address_column!r} column (the campaign's address_column); "
            f"its columns are: {', '.join(header)}"
        )
    for option, name in (more_columns or {}).items():
        if name not in header:
            raise Invalid(
                f"the list has no {name!r} column (the campaign's {option}); "
                f"its columns are: {', '.join(header)}"
            )
    number = 0
    async for record in records:
        number += 1
        if number > settings.max_campaign_rows:
            raise Invalid(f"a campaign takes at most {settings.max_campaign_rows} recipients")
        malformed = None
        if len(record) != len(header):
            malformed = f"the row has {len(record)} cells, the header {len(header)}"
        values = dict(zip(header, record, strict=False))
        holding_nul = [column for column, cell in values.items() if NUL in cell]
        if holding_nul:
            # PostgreSQL cannot store the character: the row is kept (as a problem) without it.
            cells = "cell contains" if len(holding_nul) == 1 else "cells contain"
            malformed = (
                f"the {', '.join(repr(c) for c in holding_nul)} {cells} a NUL character (row {number}), "
                "which is not text; remove it from the file"
            )
            values = {column: cell.replace(NUL, "") for column, cell in values.items()}
        yield RowIn(number, values, malformed)


async def json_rows(rows: list[dict[str, Any]], settings: ComposeSettings) -> AsyncIterator[RowIn]:
    if len(rows) > settings.max_campaign_rows:
        raise Invalid(f"a campaign takes at most {settings.max_campaign_rows} recipients")
    for number, values in enumerate(rows, start=1):
        yield RowIn(number, values)


class RowAttachments:
    """Per-row attachment ids resolved once each through storage, for the whole build."""

    def __init__(self, storage: StorageClient, user_id: int) -> None:
        self._storage = storage
        self._user_id = user_id
        self.known: dict[int, AttachmentInfo | None] = {}

    async def resolve(self, value: Any) -> tuple[list[int], str | None]:
        """The ids named by a cell (``"3;4"`` or a JSON list), or the reason they cannot be used."""
        parts = value if isinstance(value, list) else _ID_SEPARATORS.split(str(value or "").strip())
        ids: list[int] = []
        for part in parts:
            if part == "":
                continue
            try:
                attachment_id = int(part)
            except (TypeError, ValueError):
                return [], f"{part!r} is not an attachment id"
            if attachment_id not in self.known:
                self.known[attachment_id] = await self._storage.attachment(self._user_id, attachment_id)
            if self.known[attachment_id] is None:
                return [], f"attachment {attachment_id} does not exist"
            ids.append(attachment_id)
        return ids, None


@dataclass
class Builder:
    session: AsyncSession
    campaign: Record
    templates: TemplatesClient
    settings: ComposeSettings
    attachments: RowAttachments
    # The campaign's one-click unsubscribe links, offered to its template as {{ unsubscribe_url }};
    # None when the campaign sends without them.
    unsubscribe: UnsubscribeTokens | None
    # Encoded bytes of the attachments every message of the campaign carries.
    shared_attachment_bytes: int = field(default=0, init=False)

    async def build(self, rows: AsyncIterator[RowIn]) -> schemas.BuildSummary:
        """Replace the campaign's list with ``rows``; returns the summary of what was read.

        Writing a batch overlaps with checking and rendering the next one; at most one batch is
        being written at a time, so memory stays at two batches.
        """
        await self.session.execute(delete(recipients).where(recipients.c.campaign_id == self.campaign.id))
        shared = await attachment_sizes(self.session, list(self.campaign.attachment_ids))
        self.shared_attachment_bytes = sum(map(encoded_attachment_size, shared))
        writing: asyncio.Task[None] | None = None
        try:
            batch: list[RowIn] = []
            async for row in rows:
                batch.append(row)
                if len(batch) >= self.settings.build_batch_rows:
                    writing = await self._write_after(writing, await self._prepare(batch))
                    batch = []
            if batch:
                writing = await self._write_after(writing, await self._prepare(batch))
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
        await remember_attachments(
            self.session, [i for i in self.attachments.known.values() if i is not None]
        )
        await self.session.execute(_DUPLICATES, {"campaign_id": self.campaign.id})
        return await summary(self.session, self.campaign.id)

    async def _write_after(
        self, previous: asyncio.Task[None] | None, records: list[list[Any]]
    ) -> asyncio.Task[None]:
        if previous is not None:
            await previous
        return asyncio.create_task(self._copy(records))

    async def _copy(self, records: list[list[Any]]) -> None:
        connection = await (await self.session.connection()).get_raw_connection()
        await connection.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            "recipients", schema_name="queue", columns=_COLUMNS, records=records
        )

    async def _prepare(self, batch: list[RowIn]) -> list[list[Any]]:
        """Check and render a batch: its records, ready to be written."""
        records: list[list[Any]] = []
        renderable: list[tuple[list[Any], dict[str, Any]]] = []
        for row in batch:
            record, fields = await self._check(row)
            records.append(record)
            if record[5] is None:  # no problem: render it
                renderable.append((record, fields))
        if renderable:
            results = await self.templates.render(
                self.campaign.user_id,
                self.campaign.template_id,
                self.campaign.template_version,
                [self._variables(record, fields) for record, fields in renderable],
            )
            for (record, _), result in zip(renderable, results, strict=True):
                unsendable = subject_problem(result.subject or "") if result.ok else None
                if unsendable is not None:
                    # A row's own problem (a control character in one of its cells, most likely),
                    # reported with the others, not a failed build.
                    record[5:7] = ["invalid_subject", f"the rendered subject {unsendable}"]
                elif result.ok and (oversize := self._too_large(record, result)) is not None:
                    record[5:7] = ["message_too_large", oversize]
                elif result.ok:
                    record[7:10] = [result.subject, result.html, result.text]
                elif result.missing:
                    record[5:7] = ["missing_fields", f"missing: {', '.join(result.missing)}"]
                else:
                    record[5:7] = ["render_error", result.detail or result.error]
        return records

    def _too_large(self, record: list[Any], rendered: RenderedRow) -> str | None:
        """Why the row's message would be above Gmail's size limit, or None when it fits."""
        known = self.attachments.known
        size = self.shared_attachment_bytes + minimum_size(
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            addresses=[record[2], *record[10], *record[11], *record[12]],
            attachment_sizes=[info.size for i in record[4] if (info := known.get(i)) is not None],
        )
        return too_large(size, self.settings.max_message_bytes)

    def _variables(self, record: list[Any], fields: dict[str, Any]) -> dict[str, Any]:
        """What the row's template is rendered with: its cells, and its own unsubscribe link
        (which a cell of the same name cannot replace)."""
        if self.unsubscribe is None:
            return fields
        link = self.unsubscribe.url(Row(self.campaign.id, record[1]))
        return {**fields, UNSUBSCRIBE_VARIABLE: link}

    async def _check(self, row: RowIn) -> tuple[list[Any], dict[str, Any]]:
        """The row's record (problem and detail at 5 and 6) and the fields to render it with."""
        campaign = self.campaign
        raw_address = str(row.values.get(campaign.address_column) or "").strip()
        fields = {k: v for k, v in row.values.items() if k != campaign.attachments_column}
        problem: str | None = None
        detail: str | None = None
        address = raw_address
        attachment_ids: list[int] = []
        if row.malformed is not None:
            problem, detail = "malformed_row", row.malformed
        else:
            try:
                address = parse_address(raw_address)
            except InvalidAddress as exc:
                problem, detail = "invalid_address", str(exc)
        more: list[list[str]] = [[], [], []]
        if problem is None:
            more, why = more_addresses(campaign, row.values, max_recipients=self.settings.max_recipients)
            if why is not None:
                problem, detail = why
        if problem is None and campaign.attachments_column:
            attachment_ids, reason = await self.attachments.resolve(
                row.values.get(campaign.attachments_column)
            )
            if reason is not None:
                problem, detail = "unknown_attachment", reason
        record = [
            campaign.id,
            row.number,
            address,
            msgspec.json.encode(fields).decode(),
            attachment_ids,
            problem,
            detail,
            None,
            None,
            None,
            *(more if problem is None else [[], [], []]),
        ]
        return record, fields


def address_cell(value: Any) -> list[str]:
    """The addresses a cell names: separated by commas or semicolons (a JSON list: one each)."""
    parts = (
        [str(item) for item in value]
        if isinstance(value, list)
        else _ADDRESS_SEPARATORS.split(str(value or ""))
    )
    return [stripped for part in parts if (stripped := part.strip())]


def more_addresses(
    campaign: Record, values: Mapping[str, Any], *, max_recipients: int
) -> tuple[list[list[str]], tuple[str, str] | None]:
    """A row's Cc, Bcc and Reply-To addresses from the campaign's columns, each checked and
    normalized like the row's own (``domain.parse_address``), or the row's problem: an invalid
    address (naming its column and itself), more than ``MAX_REPLY_TO`` Reply-To addresses, or To,
    Cc and Bcc above ``max_recipients`` together (Gmail's per-message limit through its API)."""
    found: list[list[str]] = []
    for option, problem in MORE_ADDRESS_COLUMNS.items():
        column = getattr(campaign, option)
        addresses: list[str] = []
        for cell in address_cell(values.get(column)) if column else []:
            try:
                addresses.append(parse_address(cell))
            except InvalidAddress as exc:
                return [], (
                    problem,
                    f"column {column!r} ({option}): {cell[:100]!r} is not a valid address: {exc}",
                )
        found.append(list(dict.fromkeys(addresses)))
    cc, bcc, reply_to = found
    if len(reply_to) > MAX_REPLY_TO:
        return [], (
            "invalid_reply_to",
            f"column {campaign.reply_to_column!r} (reply_to_column) names {len(reply_to)} addresses; "
            f"a message takes at most {MAX_REPLY_TO} Reply-To addresses",
        )
    total = 1 + len(cc) + len(bcc)
    if total > max_recipients:
        return [], (
            "too_many_recipients",
            f"To, Cc and Bcc name {total} addresses together ({len(cc)} Cc, {len(bcc)} Bcc); "
            f"Gmail sends a message to at most {max_recipients} recipients through its API",
        )
    return found, None


async def summary(session: AsyncSession, campaign_id: int) -> schemas.BuildSummary:
    r = recipients
    rows = await session.execute(
        select(r.c.problem, func.count()).where(r.c.campaign_id == campaign_id).group_by(r.c.problem)
    )
    counts = {problem: int(count) for problem, count in rows}
    valid = counts.pop(None, 0)
    return schemas.BuildSummary(rows=valid + sum(counts.values()), valid=valid, problems=counts)
