"""Every route of every service app, read from the apps themselves, and the access decision for each.

A route is one of: public (reachable without a token, on the allow-list), internal (the service
credential is its only key; never routed by the gateway), owned (names a resource by id: another
user gets 404) or self (acts only on the caller's own data, chosen by the token). A route that is
in none of these has had no decision, and ``test_route_matrix`` fails until it gets one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from litestar import Litestar

from mailmerger_shared.web.app import PUBLIC_PATHS

SERVICES = ("auth", "templates", "queue", "storage")  # the sender has no HTTP app


class Endpoint(NamedTuple):
    service: str
    method: str
    path: str  # path parameters as {name}, without their types


class Discovered(NamedTuple):
    endpoint: Endpoint
    exempt_from_user_auth: bool  # opt exclude_from_auth, or a path the JWT middleware skips


def _plain(path: str) -> str:
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def discover(apps: Mapping[str, Litestar]) -> Iterator[Discovered]:
    for service, app in apps.items():
        for route in app.routes:
            for handler in getattr(route, "route_handlers", ()):
                exempt = bool(handler.opt.get("exclude_from_auth")) or any(
                    re.match(pattern, route.path) for pattern in PUBLIC_PATHS
                )
                for method in sorted(set(handler.http_methods) - {"OPTIONS", "HEAD"}):
                    yield Discovered(Endpoint(service, method, _plain(route.path)), exempt)


def _each_service(*paths: str) -> set[Endpoint]:
    return {Endpoint(s, "GET", p) for s in SERVICES for p in paths}


def _schema(service: str) -> set[Endpoint]:
    base = f"/schema/{service}"
    return {
        Endpoint(service, "GET", p)
        for p in (base, f"{base}/scalar", f"{base}/openapi.json", base + "/{path}")
    }


PUBLIC: set[Endpoint] = {
    *_each_service("/health", "/ready", "/metrics"),
    *(e for s in SERVICES for e in _schema(s)),
    Endpoint("auth", "POST", "/v1/auth/signup"),
    # The mailed links: their token is the credential (an account without a session proves its address).
    Endpoint("auth", "POST", "/v1/auth/email-confirmations"),
    Endpoint("auth", "POST", "/v1/auth/email-confirmations/confirm"),
    Endpoint("auth", "POST", "/v1/auth/password-resets"),
    Endpoint("auth", "POST", "/v1/auth/password-resets/confirm"),
    Endpoint("auth", "GET", "/v1/auth/email/confirm"),
    Endpoint("auth", "POST", "/v1/auth/email/confirm"),
    Endpoint("auth", "GET", "/v1/auth/password/reset"),
    Endpoint("auth", "POST", "/v1/auth/password/reset"),
    Endpoint("auth", "POST", "/v1/auth/login"),
    Endpoint("auth", "POST", "/v1/auth/refresh"),  # the refresh token in the body is the credential
    Endpoint("auth", "GET", "/v1/auth/.well-known/jwks.json"),
    Endpoint("auth", "GET", "/v1/auth/google/authorize"),  # a browser navigation (connect ticket)
    Endpoint("auth", "GET", "/v1/auth/google/callback"),  # state + browser cookie
    Endpoint("auth", "POST", "/api/auth/signup"),
    Endpoint("auth", "POST", "/api/auth/login"),
    Endpoint("auth", "GET", "/api/auth/refresh-jwt-token"),  # bearer = refresh token
    Endpoint("auth", "GET", "/api/auth/renew-refresh-and-jwt-token"),  # bearer = refresh token
    Endpoint("auth", "GET", "/api/oauth/gmail-authorize"),
    Endpoint("auth", "GET", "/api/oauth/oauth2callback"),
    # RFC 8058 one-click unsubscribe: the sealed token in the link is the credential.
    Endpoint("queue", "GET", "/v1/unsubscribe/{token}"),
    Endpoint("queue", "POST", "/v1/unsubscribe/{token}"),
}

# Each internal route and the one calling service allowed to use it (least privilege: only the
# sender obtains Gmail access tokens).
INTERNAL_CALLERS: dict[Endpoint, str] = {
    Endpoint("auth", "POST", "/internal/auth/gmail-accounts/{account_id}/access-token"): "sender",
    Endpoint("auth", "POST", "/internal/auth/users/{user_id}/connect-tickets"): "queue",
    Endpoint("templates", "GET", "/internal/templates/templates/{template_id}/versions/{version}"): "queue",
    Endpoint("templates", "POST", "/internal/templates/render-batch"): "queue",
    Endpoint("storage", "GET", "/internal/storage/attachments/{attachment_id}"): "queue",
    Endpoint("storage", "GET", "/internal/storage/users/{user_id}/designated/{kind}"): "queue",
}
INTERNAL: set[Endpoint] = set(INTERNAL_CALLERS)

# Routes on the caller's own data only: nothing in them names another user's resource by id.
SELF: set[Endpoint] = {
    Endpoint("auth", "POST", "/v1/auth/logout"),
    Endpoint("auth", "GET", "/v1/auth/me"),
    Endpoint("auth", "DELETE", "/v1/auth/me"),
    Endpoint("auth", "PUT", "/v1/auth/me/password"),
    Endpoint("auth", "POST", "/v1/auth/google/connect-tickets"),
    Endpoint("auth", "GET", "/v1/auth/gmail-accounts"),
    Endpoint("templates", "GET", "/v1/templates"),
    Endpoint("templates", "POST", "/v1/templates"),
    Endpoint("templates", "POST", "/v1/templates/validate"),
    Endpoint("templates", "GET", "/api/templates/get-all-templates"),
    Endpoint("templates", "POST", "/api/templates/add-template"),
    Endpoint("queue", "GET", "/v1/emails"),
    Endpoint("queue", "POST", "/v1/emails"),
    Endpoint("queue", "GET", "/v1/campaigns"),
    Endpoint("queue", "POST", "/v1/campaigns"),
    Endpoint("queue", "GET", "/v1/senders"),
    Endpoint("queue", "GET", "/v1/senders/bulk-sender-report"),
    Endpoint("queue", "GET", "/v1/suppressions"),
    Endpoint("queue", "POST", "/v1/suppressions"),
    Endpoint("queue", "POST", "/v1/suppressions/import"),
    Endpoint("queue", "GET", "/v1/suppressions/export.csv"),
    Endpoint("queue", "GET", "/v1/webhooks"),
    Endpoint("queue", "POST", "/v1/webhooks"),
    Endpoint("queue", "POST", "/api/queue/add-to-queue"),
    Endpoint("queue", "GET", "/api/queue/get-email-queue"),
    Endpoint("queue", "POST", "/api/email/send-email-now"),
    Endpoint("storage", "GET", "/v1/attachments"),
    Endpoint("storage", "POST", "/v1/attachments"),
    Endpoint("storage", "POST", "/api/storage/upload-file"),
}


class Probe(NamedTuple):
    """How the second user calls an owned route with the first user's ids.

    ``body`` is JSON (``"csv"`` for the recipient upload); strings in it like ``"{template_id}"``
    are replaced by the owner's ids. ``status`` is 404 unless the route's owner decided otherwise,
    in which case ``data`` is the legacy envelope's ``data`` it must answer (naming nothing).
    """

    body: Any = None
    status: int = 404
    data: Any = None


OWNED: dict[Endpoint, Probe] = {
    Endpoint("auth", "DELETE", "/v1/auth/gmail-accounts/{account_id}"): Probe(),
    Endpoint("templates", "GET", "/v1/templates/{template_id}"): Probe(),
    Endpoint("templates", "PATCH", "/v1/templates/{template_id}"): Probe({"name": "stolen"}),
    Endpoint("templates", "DELETE", "/v1/templates/{template_id}"): Probe(),
    Endpoint("templates", "GET", "/v1/templates/{template_id}/variables"): Probe(),
    Endpoint("templates", "GET", "/v1/templates/{template_id}/versions"): Probe(),
    Endpoint("templates", "GET", "/v1/templates/{template_id}/versions/{version}"): Probe(),
    Endpoint("templates", "POST", "/v1/templates/{template_id}/preview"): Probe({"fields": {"name": "x"}}),
    Endpoint("templates", "PATCH", "/api/templates/update-template"): Probe(
        {"template_id": "{template_id}", "t_body": "<p>stolen</p>", "t_key": ""}
    ),
    # Decided by the templates service (tests/templates/test_isolation.py): ids the caller does not
    # own are left out of the answer rather than refused, unlike the queue's legacy deletes.
    Endpoint("templates", "DELETE", "/api/templates/delete-template"): Probe(
        ["{template_id}"], status=200, data={"template_ids": []}
    ),
    Endpoint("queue", "GET", "/v1/emails/{email_id}"): Probe(),
    Endpoint("queue", "DELETE", "/v1/emails/{email_id}"): Probe(),
    Endpoint("queue", "POST", "/v1/emails/{email_id}/cancel"): Probe(),
    Endpoint("queue", "POST", "/v1/emails/{email_id}/send-now"): Probe(),
    Endpoint("queue", "POST", "/v1/emails/{email_id}/resolve"): Probe({"resolution": "mark_as_sent"}),
    Endpoint("queue", "GET", "/v1/campaigns/{campaign_id}"): Probe(),
    Endpoint("queue", "PATCH", "/v1/campaigns/{campaign_id}"): Probe({"name": "stolen"}),
    Endpoint("queue", "DELETE", "/v1/campaigns/{campaign_id}"): Probe(),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/clone"): Probe({"recipients": True}),
    Endpoint("queue", "PUT", "/v1/campaigns/{campaign_id}/recipients"): Probe("csv"),
    Endpoint("queue", "GET", "/v1/campaigns/{campaign_id}/report"): Probe(),
    Endpoint("queue", "GET", "/v1/campaigns/{campaign_id}/rows/{row}"): Probe(),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/rows/{row}/test"): Probe(),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/rows/{row}/stop"): Probe({"reason": "stopped"}),
    Endpoint("queue", "PUT", "/v1/campaigns/{campaign_id}/steps"): Probe({"steps": []}),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/launch"): Probe({}),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/pause"): Probe(),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/resume"): Probe(),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/cancel"): Probe(),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/retry-failed"): Probe(),
    Endpoint("queue", "POST", "/v1/campaigns/{campaign_id}/resolve-unconfirmed"): Probe(
        {"resolution": "mark_as_sent"}
    ),
    Endpoint("queue", "GET", "/v1/campaigns/{campaign_id}/progress"): Probe(),
    Endpoint("queue", "GET", "/v1/campaigns/{campaign_id}/progress/stream"): Probe(),
    Endpoint("queue", "GET", "/v1/campaigns/{campaign_id}/results.csv"): Probe(),
    Endpoint("queue", "PATCH", "/v1/senders/{account_id}"): Probe({"daily_limit": 1}),
    Endpoint("queue", "DELETE", "/v1/suppressions/{suppression_id}"): Probe(),
    Endpoint("queue", "GET", "/v1/webhooks/{endpoint_id}"): Probe(),
    Endpoint("queue", "PATCH", "/v1/webhooks/{endpoint_id}"): Probe({"description": "stolen"}),
    Endpoint("queue", "DELETE", "/v1/webhooks/{endpoint_id}"): Probe(),
    Endpoint("queue", "POST", "/v1/webhooks/{endpoint_id}/rotate-secret"): Probe(),
    Endpoint("queue", "POST", "/v1/webhooks/{endpoint_id}/test"): Probe(),
    Endpoint("queue", "GET", "/v1/webhooks/{endpoint_id}/deliveries"): Probe(),
    Endpoint("queue", "POST", "/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay"): Probe(),
    Endpoint("queue", "POST", "/api/queue/send-queued-emails"): Probe(["{legacy_email_id}"]),
    Endpoint("queue", "DELETE", "/api/queue/delete-queue-email"): Probe(["{legacy_email_id}"]),
    Endpoint("storage", "GET", "/v1/attachments/{attachment_id}"): Probe(),
    Endpoint("storage", "POST", "/v1/attachments/{attachment_id}/designate"): Probe(),
    Endpoint("storage", "GET", "/v1/attachments/{attachment_id}/download"): Probe(),
    Endpoint("storage", "DELETE", "/v1/attachments/{attachment_id}"): Probe(),
}


def fill(value: Any, ids: Mapping[str, int]) -> Any:
    """``value`` with every ``"{name}"`` placeholder replaced by ``ids[name]``."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def fill_path(path: str, ids: Mapping[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)
