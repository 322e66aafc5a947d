"""The campaign use cases as one object, built once with what they use besides the request's
transaction: the templates and storage clients and the compose and dispatch settings (``api.deps``).

Reading a campaign, its list or its report needs nothing but the transaction (``service.owned``,
``service.list_campaigns``, ``reports.report``, ``reports.preview``), so those are not here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.response import ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue import schemas
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.campaigns import editing, reports, send_to_self, service, streams
from mailmerger_queue.campaigns.build import (
    UNSUBSCRIBE_VARIABLE,
    Builder,
    RowAttachments,
    RowIn,
    address_columns,
    csv_rows,
    json_rows,
)
from mailmerger_queue.compliance import suppression
from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.domain import Resolution
from mailmerger_queue.emails import reads
from mailmerger_queue.models import Record
from mailmerger_queue.settings import ComposeSettings, DispatchSettings


def _now() -> datetime:
    return datetime.now(UTC)


class Campaigns:
    """Create a campaign, build its list, test a row, launch, pause, resume, cancel, retry the
    failed, resolve the unconfirmed, and follow its progress."""

    def __init__(
        self,
        templates: TemplatesClient,
        storage: StorageClient,
        *,
        compose: ComposeSettings,
        dispatch: DispatchSettings,
        unsubscribe: UnsubscribeTokens,
    ) -> None:
        self._templates = templates
        self._storage = storage
        self._compose = compose
        self._dispatch = dispatch
        self._unsubscribe = unsubscribe

    async def create(
        self, session: AsyncSession, user_id: int, data: schemas.CreateCampaign
    ) -> schemas.Campaign:
        return await service.create(
            session,
            user_id=user_id,
            data=data,
            templates=self._templates,
            storage=self._storage,
            now=_now(),
            max_message_bytes=self._compose.max_message_bytes,
        )

    # --- the recipient list: read by the caller (it streams), checked and stored here ----------

    @property
    def max_upload_bytes(self) -> int:
        """The largest list read whole (JSON); a CSV list is streamed and counted as it comes."""
        return self._compose.max_upload_bytes

    def csv_rows(self, chunks: AsyncIterator[bytes], draft: Record) -> AsyncIterator[RowIn]:
        return csv_rows(
            chunks,
            self._compose,
            address_column=draft.address_column,
            more_columns=address_columns(draft),
        )

    def json_rows(self, rows: list[dict[str, Any]]) -> AsyncIterator[RowIn]:
        return json_rows(rows, self._compose)

    async def build(
        self, session: AsyncSession, user_id: int, draft: Record, rows: AsyncIterator[RowIn]
    ) -> schemas.BuildSummary:
        """Replace the list of the (locked) draft ``draft`` with ``rows``, each checked and rendered."""
        attachments = RowAttachments(self._storage, user_id)
        links = self._unsubscribe if draft.list_unsubscribe else None
        return await Builder(session, draft, self._templates, self._compose, attachments, links).build(rows)

    async def report(
        self, session: AsyncSession, user_id: int, campaign_id: int, *, cursor: str | None, limit: int
    ) -> schemas.ValidationReport:
        """The build summary, the rows with problems (a page), the rows the suppression list
        stops, and what should be fixed before launching."""
        found = await reports.report(session, user_id, campaign_id, cursor=cursor, limit=limit)
        campaign = await service.owned(session, user_id, campaign_id)
        warnings = []
        if campaign.list_unsubscribe:
            template = await self._templates.version(user_id, campaign.template_id, campaign.template_version)
            if template is not None and UNSUBSCRIBE_VARIABLE not in template.variables:
                warnings.append(
                    f"the template has no {{{{ {UNSUBSCRIBE_VARIABLE} }}}}: Gmail asks bulk senders for a "
                    "visible unsubscribe link in the body as well as the one-click header; add one"
                )
        responded = await reports.response_counts(session, campaign_id)
        return msgspec.structs.replace(
            found,
            suppressed=await suppression.suppressed_rows(session, user_id, campaign_id),
            warnings=warnings,
            replied=responded["reply"],
            bounced=responded["bounce"],
            auto_replied=responded["auto_reply"],
        )

    # --- steering -----------------------------------------------------------------------------

    async def send_row_to_self(
        self, session: AsyncSession, user_id: int, campaign_id: int, row_number: int
    ) -> schemas.EmailDetail:
        message_id = await send_to_self.send_row_to_self(
            session, user_id, campaign_id, row_number, settings=self._compose, now=_now()
        )
        return await reads.get_email(session, user_id, message_id)

    async def launch(
        self, session: AsyncSession, user_id: int, campaign_id: int, options: schemas.Launch
    ) -> schemas.Campaign:
        return await service.launch(
            session, user_id, campaign_id, options, domain=self._compose.message_id_domain, now=_now()
        )

    async def replace_steps(
        self, session: AsyncSession, user_id: int, campaign_id: int, data: schemas.ReplaceSteps
    ) -> schemas.Campaign:
        return await service.replace_steps(session, user_id, campaign_id, data, templates=self._templates)

    async def stop_row(
        self, session: AsyncSession, user_id: int, campaign_id: int, row_number: int, data: schemas.StopRow
    ) -> schemas.RowStopped:
        return await service.stop_row(session, user_id, campaign_id, row_number, data, now=_now())

    async def pause(self, session: AsyncSession, user_id: int, campaign_id: int) -> schemas.Campaign:
        return await service.pause(session, user_id, campaign_id, now=_now())

    async def resume(self, session: AsyncSession, user_id: int, campaign_id: int) -> schemas.Campaign:
        return await service.resume(session, user_id, campaign_id)

    async def cancel(self, session: AsyncSession, user_id: int, campaign_id: int) -> schemas.Campaign:
        return await service.cancel(session, user_id, campaign_id, now=_now())

    async def retry_failed(self, session: AsyncSession, user_id: int, campaign_id: int) -> schemas.Retried:
        return await service.retry_failed(session, user_id, campaign_id, now=_now())

    async def resolve_unconfirmed(
        self, session: AsyncSession, user_id: int, campaign_id: int, resolution: Resolution
    ) -> schemas.Resolved:
        return await service.resolve_unconfirmed(session, user_id, campaign_id, resolution, now=_now())

    # --- editing, deleting, copying -------------------------------------------------------------

    async def update(
        self, session: AsyncSession, user_id: int, campaign_id: int, data: schemas.UpdateCampaign
    ) -> schemas.Campaign:
        return await editing.update_draft(session, user_id, campaign_id, data)

    async def delete(self, session: AsyncSession, user_id: int, campaign_id: int) -> None:
        await editing.delete_campaign(session, user_id, campaign_id, now=_now())

    async def clone(
        self, session: AsyncSession, user_id: int, campaign_id: int, data: schemas.CloneCampaign
    ) -> schemas.Campaign:
        """A new draft with the campaign's settings and steps; with ``recipients``, its list built
        again from the same rows (rendered for the copy: its unsubscribe links name the copy)."""
        source, copy = await editing.clone(session, user_id, campaign_id, data.name, now=_now())
        if data.recipients:
            await self.build(session, user_id, copy, editing.clone_rows(session, source))
        return await service.described(session, copy)

    # --- progress -----------------------------------------------------------------------------

    async def progress(self, session: AsyncSession, user_id: int, campaign_id: int) -> schemas.Progress:
        return await reports.progress(session, user_id, campaign_id, now=_now(), pacing=self._dispatch)

    def progress_events(
        self, sessions: async_sessionmaker[AsyncSession], user_id: int, campaign_id: int
    ) -> AsyncIterator[ServerSentEventMessage]:
        """``progress`` as events (each read in a transaction of its own from ``sessions``)."""
        return streams.progress_events(
            sessions,
            user_id,
            campaign_id,
            interval=self._compose.progress_interval_seconds,
            pacing=self._dispatch,
        )
