"""The object store on S3 (AWS, Supabase Storage, MinIO, moto) through aioboto3."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from mailmerger_shared.object_store import s3_client
from mailmerger_storage.settings import S3Settings

log = logging.getLogger(__name__)

_DELETE_BATCH = 1000  # DeleteObjects accepts at most this many keys per request


class S3BlobStore:
    """``BlobStore`` over one bucket of an open aiobotocore S3 client."""

    def __init__(self, client: Any, bucket: str, region: str, *, presigner: Any | None = None) -> None:
        self._client = client
        self._presigner = presigner or client  # a SigV4 signature covers the host: sign for the browser's
        self._bucket = bucket
        self._region = region

    async def put(self, key: str, body: BinaryIO, *, content_type: str) -> None:
        await self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)

    async def start_multipart(self, key: str, *, content_type: str) -> str:
        answer = await self._client.create_multipart_upload(
            Bucket=self._bucket, Key=key, ContentType=content_type
        )
        return str(answer["UploadId"])

    async def upload_part(self, key: str, upload_id: str, number: int, body: BinaryIO) -> str:
        answer = await self._client.upload_part(
            Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return str(answer["ETag"])

    async def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, start=1)]
        await self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self._bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        uploads = self._client.get_paginator("list_multipart_uploads")
        async for page in uploads.paginate(Bucket=self._bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                await self.abort_multipart(upload["Key"], upload["UploadId"])
        removed = 0
        objects = self._client.get_paginator("list_objects_v2")
        async for page in objects.paginate(Bucket=self._bucket, Prefix=prefix):
            keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                answer = await self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
                if answer.get("Errors"):
                    raise RuntimeError(
                        f"S3 refused to delete some objects under {prefix}: {answer['Errors']}"
                    )
                removed += len(batch)
        return removed

    async def download_url(self, key: str, *, disposition: str, content_type: str, ttl_seconds: int) -> str:
        url = await self._presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentDisposition": disposition,
                "ResponseContentType": content_type,
            },
            ExpiresIn=ttl_seconds,
        )
        return str(url)

    async def check(self) -> None:
        """Raise unless the bucket answers; create it first when it does not exist yet.

        Several replicas may race to create it; losing that race is fine.
        """
        try:
            await self._client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        # us-east-1 is the one region that refuses an explicit location constraint.
        location = (
            {}
            if self._region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": self._region}}
        )
        try:
            await self._client.create_bucket(Bucket=self._bucket, **location)
            log.info("created bucket", extra={"bucket": self._bucket})
        except ClientError as exc:
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.asynccontextmanager
async def open_blob_store(settings: S3Settings) -> AsyncIterator[S3BlobStore]:
    """An S3 client for the process's lifetime; the bucket is created at start when missing.

    S3 being unreachable at start does not stop the service (like an unreachable database): it
    reports not ready, and the readiness check creates the bucket once S3 answers.
    """
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(s3_client(settings))
        presigner = None
        if settings.public_endpoint_url:  # presigning is local: this client never connects
            presigner = await stack.enter_async_context(
                s3_client(settings, endpoint_url=settings.public_endpoint_url)
            )
        store = S3BlobStore(client, settings.bucket, settings.region, presigner=presigner)
        try:
            await store.check()
        except Exception as exc:
            log.warning("S3 is unavailable at start; not ready until it answers", extra={"error": repr(exc)})
        yield store
