"""Everything the storage service reads from the environment."""

from __future__ import annotations

import msgspec

from mailmerger_shared.settings import (
    BrokerSettings,
    DatabaseSettings,
    HttpSettings,
    JwtSettings,
    LogSettings,
)


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True):
    http: HttpSettings
    database: DatabaseSettings
    broker: BrokerSettings
    jwt: JwtSettings
    log: LogSettings
