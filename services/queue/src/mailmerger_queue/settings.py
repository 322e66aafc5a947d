"""Everything the queue service reads from the environment."""

from __future__ import annotations

import msgspec

from mailmerger_shared.settings import (
    BrokerSettings,
    DatabaseSettings,
    HttpSettings,
    JwtSettings,
    LogSettings,
    RedisSettings,
)


class QueueSettings(msgspec.Struct, frozen=True, kw_only=True):
    http: HttpSettings
    database: DatabaseSettings
    redis: RedisSettings
    broker: BrokerSettings
    jwt: JwtSettings
    log: LogSettings
