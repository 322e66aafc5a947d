"""The Gmail REST API over httpx: ``messages.send`` (JSON or upload), ``messages.list``,
``messages.get``, ``history.list`` and ``getProfile``.

The adapter returns Gmail's answers as they are (``GmailAnswer``) and turns transport failures into
the two cases that matter for idempotency: ``RequestNotSent`` (Gmail cannot have seen the request:
connecting failed or the body never fully left) and ``AnswerLost`` (it may have). Classifying the
answers is ``classify``'s job.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import msgspec
import pybase64

from mailmerger_sender.adapters.aiohttp_transport import AiohttpTransport
from mailmerger_sender.settings import GmailSettings
from mailmerger_shared import metrics

# Failures that happen before the whole request was written: Gmail cannot act on such a request.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)


USER_AGENT = "mailmerger-sender"
_SEND = "/gmail/v1/users/me/messages/send"
_UPLOAD_MEDIA = "/upload/gmail/v1/users/me/messages/send?uploadType=media"
_UPLOAD_MULTIPART = "/upload/gmail/v1/users/me/messages/send?uploadType=multipart"
_SEND_PATHS = (_SEND, _UPLOAD_MEDIA, _UPLOAD_MULTIPART)


class RequestNotSent(Exception):
    """The request never (fully) reached Gmail: retrying it cannot duplicate anything."""


class AnswerLost(Exception):
    """The request went out and no answer came back: Gmail may or may not have acted on it."""


@dataclass(frozen=True, slots=True)
class GmailAnswer:
    status: int
    body: bytes
    retry_after: str | None = None


def _send_body(raw: bytes, thread_id: str | None) -> bytes:
    """The JSON body of ``users.messages.send``, assembled as bytes.

    Base64url needs no JSON escaping: encoding it through a str copied a 100 KB message twice and
    had the encoder scan it for escapes (204 us against 22 us for a 136 KB message). SIMD base64:
    the stdlib's takes ~0.45 ms for a message with a 100 KB attachment.
    """
    parts = [b'{"raw":"', pybase64.urlsafe_b64encode(raw), b'"']
    if thread_id is not None:
        parts += [b',"threadId":', msgspec.json.encode(thread_id)]  # Gmail's JSON name
    parts.append(b"}")
    return b"".join(parts)


class HttpGmail:
    """One pooled connection set for every account; the access token travels per call.

    Requests go straight to the transport: ``httpx.AsyncClient``'s layers (cookies, redirects,
    auth flows, URL merging) do nothing for these calls and cost about a third of each call's CPU.
    """

    def __init__(self, settings: GmailSettings, *, transport: httpx.AsyncBaseTransport | None = None):
        self._timeout = settings.request_timeout
        self._base_url = settings.api_url.rstrip("/")
        # The send endpoints, parsed once (every send would parse the same URL again).
        self._urls = {path: httpx.URL(self._base_url + path) for path in _SEND_PATHS}
        # Waiting for a pooled connection is "not sent" only if it ends before the deadline.
        self._timeouts = {
            "connect": settings.connect_timeout,
            "pool": settings.connect_timeout,
            "read": settings.request_timeout,
            "write": settings.request_timeout,
        }
        self._transport = transport or AiohttpTransport(
            max_connections=settings.max_connections,
            # Below the usual 5 s server idle timeout, so a pooled connection is not reused
            # just as the server closes it (which would turn a send ambiguous).
            keepalive_expiry=4.0,
        )

    async def send(self, token: str, raw: bytes, *, thread_id: str | None, upload: bool) -> GmailAnswer:
        """``users.messages.send``: base64url JSON, or the upload endpoint for large messages."""
        headers = {"Authorization": f"Bearer {token}"}
        if not upload:
            headers["Content-Type"] = "application/json"
            return await self._call("POST", _SEND, headers, content=_send_body(raw, thread_id))
        if thread_id is None:
            headers["Content-Type"] = "message/rfc822"
            return await self._call("POST", _UPLOAD_MEDIA, headers, content=raw)
        # Only the multipart upload carries the metadata (threadId) next to the message.
        boundary = "mm-" + secrets.token_hex(16)
        headers["Content-Type"] = f'multipart/related; boundary="{boundary}"'
        metadata = msgspec.json.encode({"threadId": thread_id})
        content = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                metadata,
                f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode(),
                raw,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        return await self._call("POST", _UPLOAD_MULTIPART, headers, content=content)

    async def list_messages(
        self, token: str, *, query: str | None = None, label: str | None = None, page_token: str | None = None
    ) -> GmailAnswer:
        params = {"maxResults": "100"}
        if query is not None:
            params["q"] = query
        if label is not None:
            params["labelIds"] = label
        if page_token is not None:
            params["pageToken"] = page_token
        return await self._call(
            "GET", "/gmail/v1/users/me/messages", {"Authorization": f"Bearer {token}"}, params=params
        )

    async def get_metadata(self, token: str, gmail_id: str, header: str) -> GmailAnswer:
        return await self.get_metadata_headers(token, gmail_id, (header,))

    async def get_metadata_headers(self, token: str, gmail_id: str, headers: Sequence[str]) -> GmailAnswer:
        """``messages.get format=metadata``: labels, snippet and the named headers (all when none
        is named); ``metadataHeaders`` is repeated once per header, as Gmail expects."""
        params: list[tuple[str, str | int | float | bool | None]] = [("format", "metadata")]
        params += [("metadataHeaders", header) for header in headers]
        return await self._call(
            "GET",
            f"/gmail/v1/users/me/messages/{gmail_id}",
            {"Authorization": f"Bearer {token}"},
            params=params,
        )

    async def get_profile(self, token: str) -> GmailAnswer:
        """``users.getProfile``: the address and the mailbox's current ``historyId`` (1 unit)."""
        return await self._call("GET", "/gmail/v1/users/me/profile", {"Authorization": f"Bearer {token}"})

    async def list_history(
        self,
        token: str,
        start_history_id: int,
        *,
        label: str | None = "INBOX",
        history_types: str = "messageAdded",
        page_token: str | None = None,
    ) -> GmailAnswer:
        """``history.list`` after ``start_history_id`` (2 units a page); 404 when Gmail no longer
        has that id (GMAIL_FACTS 2.5: a full sync is due)."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("startHistoryId", str(start_history_id)),
            ("historyTypes", history_types),
            ("maxResults", "100"),
        ]
        if label is not None:
            params.append(("labelId", label))
        if page_token is not None:
            params.append(("pageToken", page_token))
        return await self._call(
            "GET", "/gmail/v1/users/me/history", {"Authorization": f"Bearer {token}"}, params=params
        )

    async def _call(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        content: bytes | None = None,
        params: dict[str, str] | list[tuple[str, str | int | float | bool | None]] | None = None,
    ) -> GmailAnswer:
        started = time.perf_counter()
        # (``params=None`` would drop the path's own query, hence the merge only when given.)
        url = self._urls.get(path) or httpx.URL(self._base_url + path)
        request = httpx.Request(
            method,
            url.copy_merge_params(params) if params else url,
            headers={**headers, "User-Agent": USER_AGENT},
            content=content,
            extensions={"timeout": self._timeouts},
        )
        try:
            # One deadline for the whole call: after it, the request is abandoned, which bounds how
            # long a claim can stay ambiguous (see DeliverySettings.settle_margin_seconds).
            async with asyncio.timeout(self._timeout):
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except _NOT_SENT as exc:
            raise RequestNotSent(f"{type(exc).__name__}: {exc}") from exc
        except (httpx.TransportError, TimeoutError) as exc:
            raise AnswerLost(f"{type(exc).__name__}: {exc}") from exc
        metrics.observe_gmail_call(path, response.status_code, time.perf_counter() - started)
        return GmailAnswer(response.status_code, response.content, response.headers.get("retry-after"))

    async def aclose(self) -> None:
        await self._transport.aclose()
