"""Everything the storage service reads from the environment."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from mailmerger_shared.settings import (
    BrokerSettings,
    DatabaseSettings,
    HttpSettings,
    InternalSettings,
    JwtSettings,
    LogSettings,
    Settings,
)

MiB = 1024 * 1024
# S3 refuses multipart parts under 5 MiB (except the last) and over 5 GiB.
PartSize = Annotated[int, msgspec.Meta(ge=5 * MiB, le=5 * 1024 * MiB)]
# SigV4 presigned URLs live at most seven days.
PresignTtl = Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 3600)]
PositiveBytes = Annotated[int, msgspec.Meta(gt=0)]


class S3Settings(Settings, frozen=True, kw_only=True):
    """Where attachments live and how large they may be.

    ``endpoint_url`` unset means AWS itself; set it for moto, MinIO or Supabase Storage's S3
    endpoint. Missing keys fall back to the default AWS credential chain (e.g. an IAM role).
    """

    prefix: ClassVar[str] = "MM_S3_"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    bucket: str = "mailmerger-attachments"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # Path style works everywhere (moto, MinIO, Supabase need it); AWS also accepts virtual.
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    presign_ttl_seconds: PresignTtl = 300
    max_upload_bytes: PositiveBytes = 10 * MiB
    user_quota_bytes: PositiveBytes = 200 * MiB
    part_size_bytes: PartSize = 8 * MiB


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True):
    http: HttpSettings
    database: DatabaseSettings
    broker: BrokerSettings
    jwt: JwtSettings
    internal: InternalSettings
    s3: S3Settings
    log: LogSettings
