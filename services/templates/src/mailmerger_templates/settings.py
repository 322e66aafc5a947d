"""Everything the templates service reads from the environment."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from mailmerger_shared.settings import (
    BrokerSettings,
    DatabaseSettings,
    HttpSettings,
    JwtSettings,
    LogSettings,
    RedisSettings,
    Settings,
)


class TemplatesConfig(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_TEMPLATES_"
    cache_ttl_seconds: int = 300


class TemplatesSettings(msgspec.Struct, frozen=True, kw_only=True):
    http: HttpSettings
    database: DatabaseSettings
    redis: RedisSettings
    broker: BrokerSettings
    jwt: JwtSettings
    log: LogSettings
    templates: TemplatesConfig
