"""What every port does with an internal answer: decode it, or say which service failed and how."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import msgspec

from mailmerger_queue.errors import ServiceUnavailable, UpstreamFailed
from mailmerger_shared.web.internal import InternalClient

T = TypeVar("T")


async def call(
    client: InternalClient, service: str, method: str, path: str, **kwargs: Any
) -> httpx.Response | None:
    """The response of a successful call; None for a 404. Other failures become 503/502 problems."""
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(service) from exc
    if response.status_code == 404:
        return None
    if response.status_code >= 500:
        raise ServiceUnavailable(service)
    if response.status_code >= 400:
        raise UpstreamFailed(f"the {service} service refused the request ({response.status_code})")
    return response


def decode(response: httpx.Response, service: str, shape: type[T]) -> T:
    try:
        return msgspec.json.decode(response.content, type=shape)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise UpstreamFailed(f"the {service} service answered in an unexpected shape: {exc}") from exc
