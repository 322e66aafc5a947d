"""The Gmail API surface MailMerger uses, on Gmail's paths.

Every call passes the same gate, in the order Google answers: credentials, the ``userId``,
scopes, injected faults, the account's state, then the per-minute quota. ``messages.send`` then
validates the message, checks the rolling-24-hour sending cap and stores it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath

from mailmerger_emulator.google import scopes
from mailmerger_emulator.google.accounts import AccountStatus, TestUser, normalize_email
from mailmerger_emulator.google.connection import DroppedConnection
from mailmerger_emulator.google.errors import (
    bad_request,
    domain_policy,
    forbidden,
    insufficient_scopes,
    invalid_argument,
    invalid_credentials,
    login_required,
    mail_sending_limit,
    mail_service_not_enabled,
    not_found,
    user_rate_limit_exceeded,
)
from mailmerger_emulator.google.http import json_response, query
from mailmerger_emulator.google.mime import (
    check_message_media,
    decode_raw,
    read_envelope,
    split_related_upload,
)
from mailmerger_emulator.google.quota import METHOD_UNITS
from mailmerger_emulator.google.resources import FORMATS, message_reference, render_message
from mailmerger_emulator.google.search import parse_query
from mailmerger_emulator.google.state import EmulatorState

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
_HEX_ID = frozenset("0123456789abcdef")


class MessageRequest(msgspec.Struct):
    """The part of a ``Message`` body that ``messages.send`` reads."""

    raw: str | None = None
    threadId: str | None = None  # Gmail's JSON name


@dataclass(slots=True, frozen=True)
class AdmittedCall:
    user: TestUser
    scopes: frozenset[str]
    drop_connection: bool

    def answer(self, body: Any) -> Response[Any]:
        """The success answer, or a dropped connection when a fault said so (the work is done)."""
        content = msgspec.json.encode(body)
        if self.drop_connection:
            return DroppedConnection(content)
        return json_response(content)


def gmail_router(state: EmulatorState) -> Router:
    settings = state.settings

    async def admit(
        request: Request[Any, Any, Any], user_id: str, method: str, allowed: frozenset[str]
    ) -> AdmittedCall:
        token = request.headers.get("authorization")
        if token is None:
            raise login_required()
        scheme, _, value = token.partition(" ")
        access = state.tokens.access(value.strip()) if scheme.lower() == "bearer" else None
        user = state.directory.get(access.user_email) if access else None
        if access is None or user is None:
            raise invalid_credentials()
        if user_id != "me" and normalize_email(user_id) != user.email:
            raise forbidden(f"Delegation denied for {user_id}")
        if not access.scopes & allowed:
            raise insufficient_scopes()
        fault = state.faults.draw(user.email, method)
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.error is not None:
            raise fault.error
        if user.status is AccountStatus.MAIL_SERVICE_NOT_ENABLED:
            raise mail_service_not_enabled()
        if user.status is AccountStatus.DOMAIN_POLICY:
            raise domain_policy()
        if settings.quotas_enabled:
            limit = user.units_per_minute or settings.quota_units_per_minute
            if not state.quota.charge(user.email, METHOD_UNITS[method], limit):
                raise user_rate_limit_exceeded()
        return AdmittedCall(user=user, scopes=access.scopes, drop_connection=fault.drop_connection)

    def deliver(call: AdmittedCall, raw: bytes, thread_id: str | None) -> Response[Any]:
        user = call.user
        envelope = read_envelope(
            raw,
            account=user.email,
            now=state.clock(),
            max_bytes=settings.max_message_bytes,
            max_recipients=settings.max_recipients,
        )
        if settings.quotas_enabled:
            blocked_until = state.quota.sending_blocked_until(
                user.email, user.daily_send_cap or settings.daily_send_cap
            )
            if blocked_until is not None:
                raise mail_sending_limit(blocked_until)
            state.quota.record_send(user.email)
        stored = state.post_office.deliver(user.email, envelope, thread_id)
        return call.answer({**message_reference(stored), "labelIds": list(stored.label_ids)})

    @post("/gmail/v1/users/{user_id:str}/messages/send", status_code=200)
    async def send(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        # The whole request is in before an injected delay starts, as at Gmail: a caller that dies
        # while waiting for the answer may still have sent its message.
        body = await request.body()
        call = await admit(request, user_id, "messages.send", scopes.SEND)
        # base64 grows the message by 4/3: refuse an oversized one before decoding it.
        if len(body) * 3 // 4 > settings.max_message_bytes + 1024:
            raise bad_request(f"Request payload size exceeds the limit: {settings.max_message_bytes} bytes.")
        try:
            message = msgspec.json.decode(body, type=MessageRequest)
        except msgspec.DecodeError:
            raise bad_request("Invalid JSON payload received.") from None
        except msgspec.ValidationError as error:
            raise bad_request(f"Invalid JSON payload received. {error}") from None
        if not message.raw:
            raise bad_request(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
            )
        return deliver(call, decode_raw(message.raw), message.threadId)

    @post("/upload/gmail/v1/users/{user_id:str}/messages/send", status_code=200)
    async def upload_send(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        body = await request.body()  # in before an injected delay, as in send()
        call = await admit(request, user_id, "messages.send", scopes.SEND)
        upload_type = query(request).get("uploadType", "")
        content_type = request.headers.get("content-type", "")
        if upload_type == "media":
            check_message_media(content_type)
            return deliver(call, body, None)
        if upload_type == "multipart":
            metadata, raw = split_related_upload(body, content_type)
            try:
                message = msgspec.json.decode(metadata or b"{}", type=MessageRequest)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise bad_request("Invalid JSON payload received.") from None
            return deliver(call, raw, message.threadId)
        raise bad_request(f"The emulator supports uploadType=media or multipart, not {upload_type!r}")

    @get("/gmail/v1/users/{user_id:str}/profile")
    async def profile(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        call = await admit(request, user_id, "getProfile", scopes.PROFILE)
        box = state.post_office.mailbox(call.user.email)
        return call.answer(
            {
                "emailAddress": call.user.email,
                "messagesTotal": len(box.messages),
                "threadsTotal": len(box.threads),
                "historyId": str(state.post_office.history_id),
            }
        )

    @get("/gmail/v1/users/{user_id:str}/messages")
    async def list_messages(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        call = await admit(request, user_id, "messages.list", scopes.READ)
        params = query(request)
        if "q" in params and scopes.metadata_only_restrictions(call.scopes):
            raise forbidden("Metadata scope does not support 'q' parameter")
        try:
            page_size = min(int(params.get("maxResults", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
            after = int(params["pageToken"]) if params.get("pageToken") else None
        except ValueError:
            raise invalid_argument("Invalid maxResults or pageToken") from None
        if page_size < 1:
            raise invalid_argument("Invalid maxResults")
        search = parse_query(params.get("q", ""), request.query_params.getall("labelIds", []))
        matches = list(search.candidates(state.post_office.mailbox(call.user.email)))
        start = (
            0
            if after is None
            else next((i for i, m in enumerate(matches) if m.position < after), len(matches))
        )
        page = matches[start : start + page_size]
        body: dict[str, Any] = {}
        if page:
            body["messages"] = [message_reference(message) for message in page]
        if start + page_size < len(matches):
            body["nextPageToken"] = str(page[-1].position)
        body["resultSizeEstimate"] = len(matches)
        return call.answer(body)

    @get("/gmail/v1/users/{user_id:str}/messages/{message_id:str}")
    async def get_message(
        request: Request[Any, Any, Any], user_id: FromPath[str], message_id: FromPath[str]
    ) -> Response[Any]:
        call = await admit(request, user_id, "messages.get", scopes.READ)
        params = query(request)
        message_format = params.get("format", "full")
        if message_format not in FORMATS:
            raise invalid_argument(f"Invalid value for format: {message_format}")
        if message_format in ("raw", "full") and scopes.metadata_only_restrictions(call.scopes):
            raise forbidden(f"Metadata scope doesn't allow format {message_format.upper()}")
        if not message_id or not set(message_id) <= _HEX_ID:
            raise invalid_argument("Invalid id value")
        message = state.post_office.mailbox(call.user.email).by_id.get(message_id)
        if message is None:
            raise not_found()
        return call.answer(
            render_message(message, message_format, request.query_params.getall("metadataHeaders", []))
        )

    return Router(path="/", route_handlers=[send, upload_send, profile, list_messages, get_message])
