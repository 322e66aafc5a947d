"""What the watcher works with: the database, Gmail, tokens, its settings and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_sender.settings import WatcherSettings
from mailmerger_sender.watcher.reading import MailboxReader
from mailmerger_shared.internal_api import GmailAccessToken


def _nothing() -> None:
    return None


class TokenSource(Protocol):
    async def get(self, account_id: int) -> GmailAccessToken: ...

    def invalidate(self, account_id: int, access_token: str) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WatcherPorts:
    sessions: async_sessionmaker[AsyncSession]
    gmail: MailboxReader
    tokens: TokenSource
    settings: WatcherSettings
    clock: Callable[[], datetime]
    wake_relay: Callable[[], None] = _nothing
