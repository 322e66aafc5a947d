"""The compliance use cases as one object: the suppression list, one-click unsubscribe and the
bulk-sender report, built once with the unsubscribe tokens and the compliance settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue.compliance import rails, suppression, unsubscribe
from mailmerger_queue.compliance.suppression import ImportReport, Kind, Reason, Suppression, SuppressionPage
from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.settings import ComplianceSettings


class AddSuppression(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One address or one whole domain (``example.com``) to suppress."""

    address: str | None = None
    domain: str | None = None


class Compliance:
    def __init__(self, tokens: UnsubscribeTokens, settings: ComplianceSettings) -> None:
        self.tokens = tokens
        self._settings = settings

    async def suppress(
        self, session: AsyncSession, user_id: int, data: AddSuppression
    ) -> tuple[Suppression, bool]:
        """Add an entry by hand; an entry already on the list is answered as it is."""
        entry = suppression.entry_of(data.address, data.domain)
        return await suppression.add(
            session,
            user_id,
            entry,
            reason=Reason.MANUAL,
            source="added through the API",
            now=datetime.now(UTC),
        )

    async def remove(self, session: AsyncSession, user_id: int, suppression_id: int) -> None:
        await suppression.remove(session, user_id, suppression_id)

    async def page(
        self,
        session: AsyncSession,
        user_id: int,
        *,
        kind: Kind | None,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> SuppressionPage:
        return await suppression.page(session, user_id, kind=kind, search=search, cursor=cursor, limit=limit)

    async def import_csv(self, session: AsyncSession, user_id: int, data: bytes) -> ImportReport:
        now = datetime.now(UTC)
        return await suppression.import_csv(
            session, user_id, data, source=f"CSV import of {now:%Y-%m-%d %H:%M} UTC", now=now
        )

    def export_csv(self, sessions: async_sessionmaker[AsyncSession], user_id: int) -> AsyncIterator[bytes]:
        return suppression.export_csv(sessions, user_id)

    async def unsubscribe(self, session: AsyncSession, token: str) -> None:
        await unsubscribe.unsubscribe(session, self.tokens, token, now=datetime.now(UTC))

    async def link_is_valid(self, session: AsyncSession, token: str) -> bool:
        return await unsubscribe.is_valid(session, self.tokens, token)

    async def bulk_sender_report(self, session: AsyncSession, user_id: int) -> list[rails.BulkSenderDomain]:
        return await rails.bulk_sender_report(
            session, user_id, now=datetime.now(UTC), warn_at=self._settings.bulk_sender_warning
        )
