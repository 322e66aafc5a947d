"""The Gmail API surface MailMerger uses, on Gmail's paths.

Every call passes the same gate, in the order Google answers: credentials, the ``userId``,
scopes, injected faults, the account's state, then the per-minute quota. ``messages.send`` then
validates the message, checks the rolling-24-hour sending cap and stores it.

``METHODS`` declares each emulated method as the Gmail discovery document does (HTTP method,
path, query parameters): a query parameter a method does not declare is refused as Google
refuses it, and tests/emulator/test_emulator_discovery_document.py holds the table to the
discovery document shipped in google-api-python-client. Mail due to arrive (incoming.py) is
delivered before any call is answered, so every read sees the mailbox as of the emulator's clock.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post, put
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
    payload_too_large,
    unknown_parameter,
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
from mailmerger_emulator.google.resources import (
    FORMATS,
    find_attachment,
    message_reference,
    render_message,
    render_thread,
    system_labels,
)
from mailmerger_emulator.google.search import parse_query
from mailmerger_emulator.google.state import EmulatorState

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
_HEX_ID = frozenset("0123456789abcdef")
UPLOAD_SESSION_TTL_SECONDS = 7 * 86_400  # Google: a resumable session URI lasts a week
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One Gmail method as the discovery document declares it (path relative to the root URL)."""

    http_method: str
    path: str
    parameters: frozenset[str]
    scopes: frozenset[str]


# Parameters every Google API method accepts (the discovery document's top-level "parameters").
STANDARD_PARAMETERS = frozenset(
    {
        "$.xgafv",
        "access_token",
        "alt",
        "callback",
        "fields",
        "key",
        "oauth_token",
        "prettyPrint",
        "quotaUser",
        "uploadType",
        "upload_protocol",
    }
)
_USERS = "gmail/v1/users/{userId}"
METHODS: dict[str, MethodSpec] = {
    "messages.send": MethodSpec("POST", _USERS + "/messages/send", frozenset(), scopes.SEND),
    "messages.list": MethodSpec(
        "GET",
        _USERS + "/messages",
        frozenset({"includeSpamTrash", "labelIds", "maxResults", "pageToken", "q"}),
        scopes.READ,
    ),
    "messages.get": MethodSpec(
        "GET", _USERS + "/messages/{id}", frozenset({"format", "metadataHeaders"}), scopes.READ
    ),
    "messages.attachments.get": MethodSpec(
        "GET", _USERS + "/messages/{messageId}/attachments/{id}", frozenset(), scopes.ATTACHMENTS
    ),
    "threads.get": MethodSpec(
        "GET", _USERS + "/threads/{id}", frozenset({"format", "metadataHeaders"}), scopes.READ
    ),
    "history.list": MethodSpec(
        "GET",
        _USERS + "/history",
        frozenset({"historyTypes", "labelId", "maxResults", "pageToken", "startHistoryId"}),
        scopes.HISTORY,
    ),
    "labels.list": MethodSpec("GET", _USERS + "/labels", frozenset(), scopes.LABELS),
    "getProfile": MethodSpec("GET", _USERS + "/profile", frozenset(), scopes.PROFILE),
}
# The upload paths of messages.send (discovery: mediaUpload.protocols simple and resumable).
UPLOAD_PATHS = {
    "simple": "/upload/gmail/v1/users/{userId}/messages/send",
    "resumable": "/resumable/upload/gmail/v1/users/{userId}/messages/send",
}


@dataclass(slots=True, kw_only=True)
class UploadSession:
    user: TestUser
    thread_id: str | None
    expires_at: float


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

    uploads: dict[str, UploadSession] = {}

    def checked_query(request: Request[Any, Any, Any], method: str) -> dict[str, str]:
        """The query parameters, refusing one the method does not declare."""
        params = query(request)
        declared = METHODS[method].parameters
        for name in params:
            if name not in declared and name not in STANDARD_PARAMETERS:
                raise unknown_parameter(name)
        return params

    async def admit(request: Request[Any, Any, Any], user_id: str, method: str) -> AdmittedCall:
        allowed = METHODS[method].scopes
        state.inbound.deliver_due()
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
            raise insufficient_scopes(method)
        fault = state.faults.draw(user.email, method, state.clock())
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
        if settings.incoming_rules_enabled:
            state.inbound.apply_rules(stored, settings.incoming_delay_seconds)
        return call.answer({**message_reference(stored), "labelIds": list(stored.label_ids)})

    @post("/gmail/v1/users/{user_id:str}/messages/send", status_code=200)
    async def send(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        # The whole request is in before an injected delay starts, as at Gmail: a caller that dies
        # while waiting for the answer may still have sent its message.
        body = await request.body()
        # The JSON path takes 1 MiB at most, far below the upload path's 35 MB (GMAIL_FACTS 2.5b);
        # Google's front end refuses it before the call is authenticated or charged.
        if len(body) > settings.json_send_max_bytes:
            raise payload_too_large(settings.json_send_max_bytes)
        checked_query(request, "messages.send")
        call = await admit(request, user_id, "messages.send")
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

    def start_resumable(call: AdmittedCall, body: bytes, user_id: str) -> Response[Any]:
        """``uploadType=resumable``: the metadata now, the session URI in ``Location`` for the bytes."""
        try:
            message = msgspec.json.decode(body or b"{}", type=MessageRequest)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise bad_request("Invalid JSON payload received.") from None
        upload_id = "AHVr" + secrets.token_urlsafe(48)
        uploads[upload_id] = UploadSession(
            user=call.user,
            thread_id=message.threadId,
            expires_at=state.clock() + UPLOAD_SESSION_TTL_SECONDS,
        )
        location = (
            f"{settings.base_url}/upload/gmail/v1/users/{user_id}/messages/send"
            f"?uploadType=resumable&upload_id={upload_id}"
        )
        return Response(
            content=b"", status_code=200, headers={"Location": location, "X-GUploader-UploadID": upload_id}
        )

    async def upload(request: Request[Any, Any, Any], user_id: str) -> Response[Any]:
        body = await request.body()  # in before an injected delay, as in send()
        checked_query(request, "messages.send")
        call = await admit(request, user_id, "messages.send")
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
        if upload_type == "resumable":
            return start_resumable(call, body, user_id)
        raise bad_request(f"Invalid uploadType: {upload_type!r} (media, multipart or resumable)")

    async def finish_resumable(request: Request[Any, Any, Any]) -> Response[Any]:
        """The PUT of a resumable upload: the session URI is the credential, as at Google."""
        body = await request.body()
        params = query(request)
        session = uploads.get(params.get("upload_id", ""))
        if session is None or session.expires_at <= state.clock() or params.get("uploadType") != "resumable":
            raise not_found()
        del uploads[params["upload_id"]]
        state.inbound.deliver_due()
        user = state.directory.get(session.user.email) or session.user
        call = AdmittedCall(user=user, scopes=frozenset(), drop_connection=False)
        return deliver(call, body, session.thread_id)

    @post(UPLOAD_PATHS["simple"].replace("{userId}", "{user_id:str}"), status_code=200)
    async def upload_send(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        return await upload(request, user_id)

    @post(UPLOAD_PATHS["resumable"].replace("{userId}", "{user_id:str}"), status_code=200)
    async def resumable_send(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        return await upload(request, user_id)

    @put(UPLOAD_PATHS["simple"].replace("{userId}", "{user_id:str}"), status_code=200)
    async def upload_bytes(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        return await finish_resumable(request)

    @get("/gmail/v1/users/{user_id:str}/profile")
    async def profile(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        checked_query(request, "getProfile")
        call = await admit(request, user_id, "getProfile")
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
        params = checked_query(request, "messages.list")
        call = await admit(request, user_id, "messages.list")
        if "q" in params and scopes.metadata_only_restrictions(call.scopes):
            raise forbidden("Metadata scope does not support 'q' parameter")
        try:
            page_size = min(int(params.get("maxResults", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
            after = int(params["pageToken"]) if params.get("pageToken") else None
        except ValueError:
            raise invalid_argument("Invalid maxResults or pageToken") from None
        if page_size < 1:
            raise invalid_argument("Invalid maxResults")
        search = parse_query(
            params.get("q", ""),
            request.query_params.getall("labelIds", []),
            owner=call.user.email,
            now=state.clock(),
        )
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
        params = checked_query(request, "messages.get")
        call = await admit(request, user_id, "messages.get")
        message_format = read_format(params, call)
        if not message_id or not set(message_id) <= _HEX_ID:
            raise invalid_argument("Invalid id value")
        message = state.post_office.mailbox(call.user.email).by_id.get(message_id)
        if message is None:
            raise not_found()
        return call.answer(
            render_message(message, message_format, request.query_params.getall("metadataHeaders", []))
        )

    def read_format(params: dict[str, str], call: AdmittedCall) -> str:
        message_format = params.get("format", "full")
        if message_format not in FORMATS:
            raise invalid_argument(f"Invalid value for format: {message_format}")
        if message_format in ("raw", "full") and scopes.metadata_only_restrictions(call.scopes):
            raise forbidden(f"Metadata scope doesn't allow format {message_format.upper()}")
        return message_format

    @get("/gmail/v1/users/{user_id:str}/messages/{message_id:str}/attachments/{attachment_id:str}")
    async def get_attachment(
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        message_id: FromPath[str],
        attachment_id: FromPath[str],
    ) -> Response[Any]:
        checked_query(request, "messages.attachments.get")
        call = await admit(request, user_id, "messages.attachments.get")
        if scopes.metadata_only_restrictions(call.scopes):
            raise forbidden("Metadata scope doesn't allow access to attachments")
        message = state.post_office.mailbox(call.user.email).by_id.get(message_id)
        part = find_attachment(message, attachment_id) if message is not None else None
        if part is None:
            raise not_found()
        return call.answer(
            {
                "attachmentId": attachment_id,
                "size": len(part.body),
                "data": base64.urlsafe_b64encode(part.body).decode(),
            }
        )

    @get("/gmail/v1/users/{user_id:str}/threads/{thread_id:str}")
    async def get_thread(
        request: Request[Any, Any, Any], user_id: FromPath[str], thread_id: FromPath[str]
    ) -> Response[Any]:
        params = checked_query(request, "threads.get")
        call = await admit(request, user_id, "threads.get")
        message_format = read_format(params, call)
        if not thread_id or not set(thread_id) <= _HEX_ID:
            raise invalid_argument("Invalid id value")
        thread = state.post_office.mailbox(call.user.email).threads.get(thread_id)
        if thread is None or not thread.messages:
            raise not_found()
        return call.answer(
            render_thread(thread.messages, message_format, request.query_params.getall("metadataHeaders", []))
        )

    @get("/gmail/v1/users/{user_id:str}/labels")
    async def list_labels(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        checked_query(request, "labels.list")
        call = await admit(request, user_id, "labels.list")
        return call.answer({"labels": system_labels()})

    @get("/gmail/v1/users/{user_id:str}/history")
    async def list_history(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        """``history.list``: the mailbox's changes after ``startHistoryId``, oldest first.

        An id older than the retention (records "typically available for at least one week") or
        beyond the mailbox's current id answers 404, and the client does a full sync
        (GMAIL_FACTS.md 2.5).
        """
        params = checked_query(request, "history.list")
        call = await admit(request, user_id, "history.list")
        try:
            start = int(params["startHistoryId"]) if params.get("startHistoryId") else None
            page_size = min(int(params.get("maxResults", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
            after = int(params["pageToken"]) if params.get("pageToken") else None
        except ValueError:
            raise invalid_argument("Invalid startHistoryId, maxResults or pageToken") from None
        if start is None:
            raise invalid_argument("Missing required parameter: startHistoryId")
        if page_size < 1:
            raise invalid_argument("Invalid maxResults")
        history_types = request.query_params.getall("historyTypes", [])
        for history_type in history_types:
            if history_type not in HISTORY_TYPES:
                raise invalid_argument(f"Invalid value for historyTypes: {history_type}")
        box = state.post_office.history(call.user.email, settings.history_retention_seconds)
        current = state.post_office.history_id
        if start < box.expired_through or start > current:
            raise not_found()
        label = params.get("labelId")
        wanted = not history_types or "messageAdded" in history_types
        since = max(start, after or 0)
        records = [
            record
            for record in box.history
            if record.id > since and wanted and (label is None or label in record.message.label_ids)
        ]
        page = records[:page_size]
        body: dict[str, Any] = {}
        if page:
            body["history"] = [
                {
                    "id": str(record.id),
                    "messages": [message_reference(record.message)],
                    "messagesAdded": [
                        {
                            "message": {
                                **message_reference(record.message),
                                "labelIds": list(record.message.label_ids),
                            }
                        }
                    ],
                }
                for record in page
            ]
        if len(records) > page_size:
            body["nextPageToken"] = str(page[-1].id)
        body["historyId"] = str(current)
        return call.answer(body)

    return Router(
        path="/",
        route_handlers=[
            send,
            upload_send,
            resumable_send,
            upload_bytes,
            profile,
            list_messages,
            get_message,
            get_attachment,
            get_thread,
            list_labels,
            list_history,
        ],
    )
