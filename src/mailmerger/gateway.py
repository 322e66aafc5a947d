"""The public path prefixes → owning service, from the service registrations.

They drive the all-in-one router, the nginx gateway config in ``deploy/`` and the Kubernetes
Ingress; a test checks that the generated files match them. ``/internal/...`` routes are
deliberately absent: no gateway ever routes them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from mailmerger.services import registry
from mailmerger_storage.api.early_answers import GATEWAY_REFUSED_HEADER, MAX_REQUEST_BYTES


class Route(NamedTuple):
    prefix: str
    service: str


# Every service listens on this port inside its own container / pod.
SERVICE_PORT = 8000


@functools.cache
def routes() -> tuple[Route, ...]:
    return tuple(
        Route(prefix, service.name) for service in registry().values() for prefix in service.public_prefixes
    )


def service_for(path: str) -> str | None:
    """The service that owns ``path``; a prefix matches whole path segments only."""
    for prefix, service in routes():
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


def _in_cluster(service: str) -> str:
    return f"{service}:{SERVICE_PORT}"


# The service that takes uploads. A body over ``client_max_body_size`` is not passed on; the
# gateway asks that service for its answer instead (the request without its body, marked), so the
# client reads the service's own refusal — the legacy envelope or a problem, with CORS headers —
# rather than nginx's HTML page it cannot parse.
UPLOADS = "storage"

_PROXY_HEADERS = [
    'proxy_set_header Connection "";  # keep upstream connections alive (keepalive below)',
    "proxy_set_header Host $host;",
    "proxy_set_header X-Request-ID $request_id;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
]


def render_nginx(upstream: Callable[[str], str] = _in_cluster, *, listen: str = "8080") -> str:
    """nginx configuration for the gateway; ``upstream`` gives a service's ``host:port``."""
    lines = [
        "# Generated from the service registrations by `mailmerger deploy nginx`; do not edit.",
        "worker_processes auto;",
        "events { worker_connections 4096; }",
        "http {",
        # What the storage service still reads to refuse it (early_answers): the same limit.
        f"  client_max_body_size {MAX_REQUEST_BYTES // 1024}k;",
        "  proxy_request_buffering off;  # uploads stream through to the storage service",
        "  proxy_buffering off;          # progress streams (SSE) reach the client as they happen",
        "  proxy_http_version 1.1;",
        *(f"  {header}" for header in _PROXY_HEADERS),
    ]
    for service in sorted({route.service for route in routes()}):
        lines += [f"  upstream {service} {{ server {upstream(service)}; keepalive 32; }}"]
    lines += [
        "  server {",
        f"    listen {listen};",
        "    location = /health { add_header X-Content-Type-Options nosniff always; return 200 'ok'; }",
    ]
    too_large = f"@{UPLOADS}_body_too_large"
    for prefix, service in routes():
        refusal = f"error_page 413 = {too_large}; " if service == UPLOADS else ""
        lines += [
            f"    location = {prefix} {{ {refusal}proxy_pass http://{service}; }}",
            f"    location ^~ {prefix}/ {{ {refusal}proxy_pass http://{service}; }}",
        ]
    lines += [
        f"    location {too_large} {{",
        f"      proxy_pass http://{UPLOADS};",
        "      proxy_pass_request_body off;",
        '      proxy_set_header Content-Length "";',
        *(f"      {header}" for header in _PROXY_HEADERS),
        f"      proxy_set_header {GATEWAY_REFUSED_HEADER} 1;",
        "    }",
    ]
    # The gateway's own answers carry what the apps' SecurityHeaders give theirs.
    lines += [
        "    location / { add_header X-Content-Type-Options nosniff always; return 404; }",
        "  }",
        "}",
        "",
    ]
    return "\n".join(lines)
