"""Google's error answers, byte for byte where shared/GMAIL_FACTS.md quotes them.

Two families: Google API errors (``{"error": {"code", "message", "errors": [...]}}``) answered by
the Gmail API, and OAuth errors (``{"error": "...", "error_description": "..."}``) answered by the
token, revocation and userinfo endpoints. Handlers raise; ``app.py`` turns the exceptions into
responses, so an error body is always one of these shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleApiError(Exception):
    """An error answer of a Google API; ``body`` is the exact JSON document sent."""

    def __init__(self, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status_code} {body['error']['message']}")
        self.status_code = status_code
        self.body = body
        self.headers = headers or {}

    def encode(self) -> bytes:
        return msgspec.json.encode(self.body)


class OAuthError(Exception):
    """An error answer of Google's OAuth endpoints (RFC 6749 section 5.2 shape)."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(f"{status_code} {error}: {description}")
        self.status_code = status_code
        self.body = {"error": error, "error_description": description}


def api_error(
    code: int,
    reason: str,
    message: str,
    *,
    domain: str = "global",
    with_status: bool = True,
    status: str | None = None,
    **error_fields: str,
) -> GoogleApiError:
    """A Google API error with one ``errors`` entry.

    ``status`` is the canonical gRPC name, by default the usual one for ``code``;
    ``with_status=False`` gives the older shape without it that the Gmail "Resolve errors" page
    prints for quota and credential errors.
    """
    entry = {"domain": domain, "reason": reason, "message": message, **error_fields}
    error: dict[str, Any] = {"errors": [entry], "code": code, "message": message}
    if with_status:
        error["status"] = status or _STATUS_NAMES.get(code, "UNKNOWN")
    return GoogleApiError(code, {"error": error})


# --- credentials and permissions ---------------------------------------------------------------

_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'}


def invalid_credentials() -> GoogleApiError:
    """An unknown, expired or revoked access token (GMAIL_FACTS.md, verbatim)."""
    error = api_error(
        401,
        "authError",
        "Invalid Credentials",
        with_status=False,
        locationType="header",
        location="Authorization",
    )
    error.headers = dict(_BEARER_CHALLENGE)
    return error


def login_required() -> GoogleApiError:
    """No ``Authorization`` header at all."""
    return api_error(
        401,
        "required",
        "Request is missing required authentication credential. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
        locationType="header",
        location="Authorization",
    )


def _error_info(reason: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "gmail.googleapis.com", **metadata},
    }


# The RPC names Google's ErrorInfo metadata gives for each Gmail method.
_RPC_NAMES = {
    "messages.send": "SendMessage",
    "messages.list": "ListMessages",
    "messages.get": "GetMessage",
    "messages.attachments.get": "GetAttachment",
    "threads.get": "GetThread",
    "history.list": "ListHistory",
    "labels.list": "ListLabels",
    "getProfile": "GetProfile",
}


def insufficient_scopes(method: str = "") -> GoogleApiError:
    """A token without a scope the method accepts: ``details[].reason`` is
    ``ACCESS_TOKEN_SCOPE_INSUFFICIENT`` and the challenge says ``insufficient_scope``
    (GMAIL_FACTS.md 2.5b)."""
    error = api_error(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
    error.body["error"]["errors"][0]["message"] = "Insufficient Permission"
    rpc = _RPC_NAMES.get(method)
    metadata = {"method": f"caribou.api.proto.MailboxService.{rpc}"} if rpc else {}
    error.body["error"]["details"] = [_error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", **metadata)]
    error.headers = {
        "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
        'scope="https://mail.google.com/"'
    }
    return error


def unauthenticated() -> GoogleApiError:
    """The newer 401 shape, with ``status`` and the long message (GMAIL_FACTS.md 2.5b)."""
    error = api_error(
        401,
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        locationType="header",
        location="Authorization",
    )
    error.body["error"]["errors"][0]["message"] = "Invalid Credentials"
    error.headers = dict(_BEARER_CHALLENGE)
    return error


def forbidden(message: str) -> GoogleApiError:
    """Gmail's ``forbidden`` reason: metadata-scope limits and ``Delegation denied``."""
    return api_error(403, "forbidden", message)


def mail_service_not_enabled() -> GoogleApiError:
    return api_error(400, "failedPrecondition", "Mail service not enabled", status="FAILED_PRECONDITION")


def domain_policy() -> GoogleApiError:
    return api_error(
        403, "domainPolicy", "The domain administrators have disabled Gmail apps.", with_status=False
    )


# --- quotas ----------------------------------------------------------------------------------


def user_rate_limit_exceeded() -> GoogleApiError:
    return api_error(
        403, "userRateLimitExceeded", "User Rate Limit Exceeded", domain="usageLimits", with_status=False
    )


def resource_exhausted() -> GoogleApiError:
    """The per-minute quota as a 429 ``RESOURCE_EXHAUSTED`` (GMAIL_FACTS.md 2.5b)."""
    return api_error(
        429,
        "rateLimitExceeded",
        "Resource has been exhausted (e.g. check quota).",
        status="RESOURCE_EXHAUSTED",
    )


def quota_metric_exceeded() -> GoogleApiError:
    """The per-minute quota as 403 ``rateLimitExceeded`` naming the quota metric (GMAIL_FACTS.md 2.5b)."""
    message = (
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service "
        "'gmail.googleapis.com' for consumer 'project_number:000000000000'."
    )
    error = api_error(403, "rateLimitExceeded", message, domain="usageLimits")
    error.body["error"]["details"] = [
        _error_info(
            "RATE_LIMIT_EXCEEDED",
            quota_metric="gmail.googleapis.com/default",
            quota_limit="defaultPerMinutePerUser",
            consumer="projects/000000000000",
        )
    ]
    return error


def retry_after_limit(retry_at: float, *, mail_sending: bool) -> GoogleApiError:
    """A per-user limit naming when to retry, with or without the "(Mail sending)" suffix
    (both are seen, GMAIL_FACTS.md 2.5b)."""
    message = f"User-rate limit exceeded.  Retry after {google_timestamp(retry_at)}"
    if mail_sending:
        message += " (Mail sending)"
    return api_error(429, "rateLimitExceeded", message, domain="usageLimits")


def mail_sending_limit(retry_at: float) -> GoogleApiError:
    """The account's rolling-24-hour sending cap: 429 naming the time sending is possible again.

    Gmail words it like its other per-user limits, "User-rate limit exceeded.  Retry after <RFC 3339
    UTC, milliseconds> (<limit>)", with the limit "Mail sending" named by the Gmail errors guide.
    """
    message = f"User-rate limit exceeded.  Retry after {google_timestamp(retry_at)} (Mail sending)"
    return api_error(429, "rateLimitExceeded", message, domain="usageLimits")


def google_timestamp(epoch_seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, as in Google's ``Retry after`` texts."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- requests Gmail refuses --------------------------------------------------------------------


def invalid_argument(message: str) -> GoogleApiError:
    return api_error(400, "invalidArgument", message)


def bad_request(message: str) -> GoogleApiError:
    return api_error(400, "badRequest", message)


def not_found() -> GoogleApiError:
    return api_error(404, "notFound", "Requested entity was not found.")


def payload_too_large(limit: int) -> GoogleApiError:
    """The JSON send path's 1 MiB limit (GMAIL_FACTS.md 2.5b)."""
    return api_error(413, "badRequest", f"Request payload size exceeds the limit: {limit} bytes.")


def unknown_parameter(name: str) -> GoogleApiError:
    """A query parameter the method does not declare: Google refuses it rather than ignoring it."""
    return api_error(
        400,
        "invalid",
        f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
        f"Field '{name}' could not be found in request message.",
    )


# --- injected failures -------------------------------------------------------------------------

# How Google words each reason (at a given status, where that differs): domain, message, and
# whether the body carries "status" (the bodies GMAIL_FACTS.md quotes from the errors guide don't).
_FAULT_WORDING: dict[tuple[int | None, str], tuple[str, str, bool]] = {
    (None, "backendError"): ("global", "Backend Error", False),
    (503, "backendError"): ("global", "The service is currently unavailable.", True),
    (None, "userRateLimitExceeded"): ("usageLimits", "User Rate Limit Exceeded", False),
    (None, "rateLimitExceeded"): ("usageLimits", "Rate Limit Exceeded", False),
    (429, "rateLimitExceeded"): (
        "usageLimits",
        "Too many requests: Too many concurrent requests for user",
        True,
    ),
    (None, "dailyLimitExceeded"): ("usageLimits", "Daily Limit Exceeded", False),
    (None, "domainPolicy"): ("global", "The domain administrators have disabled Gmail apps.", False),
}


def injected_error(status_code: int, reason: str, message: str | None) -> GoogleApiError:
    """The error a fault rule asks for, worded as Google words that reason at that status."""
    if reason == "authError":
        return invalid_credentials()
    if reason == "failedPrecondition" and message is None:
        return mail_service_not_enabled()
    domain, default_message, with_status = _FAULT_WORDING.get(
        (status_code, reason), _FAULT_WORDING.get((None, reason), ("global", reason, True))
    )
    return api_error(status_code, reason, message or default_message, domain=domain, with_status=with_status)
