"""The one table of public path prefixes → owning service.

It drives the all-in-one router, the nginx gateway config in ``deploy/`` and the Kubernetes
Ingress; a test checks that the generated files match it. ``/internal/...`` routes are
deliberately absent: no gateway ever routes them.
"""

from __future__ import annotations

from typing import NamedTuple


class Route(NamedTuple):
    prefix: str
    service: str


SERVICES = ("auth", "templates", "queue", "sender", "storage")

ROUTES: tuple[Route, ...] = (
    Route("/v1/auth", "auth"),
    Route("/api/auth", "auth"),
    Route("/api/oauth", "auth"),
    Route("/schema/auth", "auth"),
    Route("/v1/templates", "templates"),
    Route("/api/templates", "templates"),
    Route("/schema/templates", "templates"),
    Route("/v1/emails", "queue"),
    Route("/v1/campaigns", "queue"),
    Route("/v1/senders", "queue"),
    Route("/api/email", "queue"),
    Route("/api/queue", "queue"),
    Route("/schema/queue", "queue"),
    Route("/v1/attachments", "storage"),
    Route("/api/storage", "storage"),
    Route("/schema/storage", "storage"),
)

# Every service listens on this port inside its own container / pod.
SERVICE_PORT = 8000


def service_for(path: str) -> str | None:
    """The service that owns ``path``; a prefix matches whole path segments only."""
    for prefix, service in ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


def render_nginx(upstream_host: str = "{service}") -> str:
    """nginx configuration for the gateway; ``upstream_host`` is formatted with the service name."""
    lines = [
        "# Generated from src/mailmerger/gateway.py by `mailmerger deploy nginx`; do not edit.",
        "worker_processes auto;",
        "events { worker_connections 4096; }",
        "http {",
        "  client_max_body_size 64m;",
        "  proxy_request_buffering off;  # uploads stream through to the storage service",
        "  proxy_buffering off;          # progress streams (SSE) reach the client as they happen",
        "  proxy_http_version 1.1;",
        "  proxy_set_header Host $host;",
        "  proxy_set_header X-Request-ID $request_id;",
        "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "  proxy_set_header X-Forwarded-Proto $scheme;",
    ]
    for service in sorted({route.service for route in ROUTES}):
        host = upstream_host.format(service=service)
        lines += [f"  upstream {service} {{ server {host}:{SERVICE_PORT}; keepalive 32; }}"]
    lines += ["  server {", "    listen 8080;", "    location = /health { return 200 'ok'; }"]
    for prefix, service in ROUTES:
        lines += [
            f"    location = {prefix} {{ proxy_pass http://{service}; }}",
            f"    location ^~ {prefix}/ {{ proxy_pass http://{service}; }}",
        ]
    lines += ["    location / { return 404; }", "  }", "}", ""]
    return "\n".join(lines)
