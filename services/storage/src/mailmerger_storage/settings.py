"""Everything the storage service reads from the environment."""

from __future__ import annotations

from typing import Annotated

import msgspec

from mailmerger_shared.settings import (
    HttpServiceSettings,
    ObjectStoreSettings,
    QueueCredential,
)

MiB = 1024 * 1024
# S3 refuses multipart parts under 5 MiB (except the last) and over 5 GiB.
PartSize = Annotated[int, msgspec.Meta(ge=5 * MiB, le=5 * 1024 * MiB)]
# SigV4 presigned URLs live at most seven days.
PresignTtl = Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 3600)]
PositiveBytes = Annotated[int, msgspec.Meta(gt=0)]


class S3Settings(ObjectStoreSettings, frozen=True, kw_only=True):
    """Where attachments live (the shared connection settings) and how large they may be."""

    presign_ttl_seconds: PresignTtl = 300
    # Where a browser reaches the store, when that is not ``endpoint_url`` (compose: the services
    # use http://s3:9000, a browser http://localhost:9000). Download links are signed for this host.
    public_endpoint_url: str | None = None
    max_upload_bytes: PositiveBytes = 10 * MiB
    user_quota_bytes: PositiveBytes = 200 * MiB
    part_size_bytes: PartSize = 8 * MiB


class StorageSettings(HttpServiceSettings, frozen=True, kw_only=True):
    queue_credential: QueueCredential  # the only caller of its internal routes
    s3: S3Settings
