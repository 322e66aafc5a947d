"""docker-compose.yml, generated from the topology: every process with the variables it reads.

``mailmerger deploy compose`` prints it; the file in the repository is that output (a test keeps
them equal), and ``mailmerger run-split`` runs the same processes with the same environment on
this machine. Local stand-ins replace Google (the emulator) and S3 (moto); point the ``MM_GOOGLE_*``
and ``MM_S3_*`` variables at the real ones in production.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from mailmerger.gateway import SERVICE_PORT
from mailmerger.standins import DEV_CLIENT_ID, DEV_CLIENT_SECRET, redirect_uris
from mailmerger.topology import CREDENTIALS, IN_CLUSTER, METRICS_PORT, Process, processes

PUBLIC_URL = "http://localhost:8080"  # the gateway, as a browser on the host opens it
EMULATOR_PORT = 8090
S3_PORT = 9000

STAND_INS = {
    "MM_HTTP_PUBLIC_URL": PUBLIC_URL,
    "MM_S3_ENDPOINT_URL": f"http://s3:{S3_PORT}",
    "MM_S3_PUBLIC_ENDPOINT_URL": f"http://localhost:{S3_PORT}",  # download links, opened by the browser
    "MM_S3_ACCESS_KEY_ID": "local-s3",
    "MM_S3_SECRET_ACCESS_KEY": "local-s3-secret",
    "MM_GOOGLE_CLIENT_ID": DEV_CLIENT_ID,
    "MM_GOOGLE_CLIENT_SECRET": DEV_CLIENT_SECRET,
    "MM_GOOGLE_DISCOVERY_URL": f"http://google:{EMULATOR_PORT}/.well-known/openid-configuration",
    "MM_GMAIL_API_URL": f"http://google:{EMULATOR_PORT}",
    "MM_SYSTEM_MAIL_GMAIL_API_URL": f"http://google:{EMULATOR_PORT}",  # the emulator's system account
    "MM_GOOGLE_METADATA_TIER": "true",  # the emulator offers gmail.metadata (reply and bounce detection)
}
# Development credentials unless the operator's shell sets them (compose interpolates ${...}).
DEV_CREDENTIALS = {
    name: f"${{{name}:-dev-only-{name[12:-6].lower()}-token-change-me}}" for name in CREDENTIALS
}
VALUES = {**IN_CLUSTER, **STAND_INS, **DEV_CREDENTIALS}


class _Flow(list[str]):
    """A list written on one line (commands, healthcheck tests), as people write compose files."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def _build(image: str) -> dict[str, Any]:
    """Build ``image`` from the one Dockerfile (``SERVICE``: a service, ``emulator`` or ``all``)."""
    return {"context": ".", "dockerfile": "deploy/Dockerfile", "args": {"SERVICE": image}}


def _probe(url: str) -> dict[str, Any]:
    check = f"import urllib.request,sys; sys.exit(urllib.request.urlopen('{url}').status != 200)"
    return {"test": _Flow(["CMD", "python", "-c", check]), "interval": "10s", "timeout": "5s", "retries": 6}


def environment(process: Process) -> dict[str, str]:
    """The variables of ``VALUES`` that ``process`` reads: nothing it does not read."""
    reads = process.reads()
    return {name: value for name, value in VALUES.items() if name in reads}


def _process(process: Process, *, builds: bool) -> dict[str, Any]:
    port = SERVICE_PORT if process.http else METRICS_PORT
    service: dict[str, Any] = {
        # One image per service: the first of its processes builds it, the others reuse it.
        **({"build": _build(process.service)} if builds else {}),
        "image": f"mailmerger/{process.service}:latest",
        "command": _Flow(process.command),
        "environment": environment(process),
        "restart": "unless-stopped",
        "depends_on": {
            "migrate": {"condition": "service_completed_successfully"},
            **{name: {"condition": "service_healthy"} for name in ("rabbitmq", "redis", "s3", "google")},
        },
        "healthcheck": _probe(f"http://127.0.0.1:{port}/ready"),
    }
    if process.replicas > 1:
        service["deploy"] = {"replicas": process.replicas}
    return service


def _emulator() -> dict[str, Any]:
    clients = [
        {
            "client_id": DEV_CLIENT_ID,
            "client_secret": DEV_CLIENT_SECRET,
            "redirect_uris": redirect_uris(PUBLIC_URL),
        }
    ]
    return {
        "build": _build("emulator"),
        "image": "mailmerger/emulator:latest",
        "command": _Flow(["python", "-m", "mailmerger_emulator.google"]),
        "environment": {
            "MM_EMULATOR_HOST": "0.0.0.0",  # noqa: S104
            # Services call google:8090; a browser on the host opens the consent and mailbox pages
            # through the published port.
            "MM_EMULATOR_PUBLIC_URL": f"http://google:{EMULATOR_PORT}",
            "MM_EMULATOR_BROWSER_URL": f"http://localhost:{EMULATOR_PORT}",
            "MM_EMULATOR_CLIENTS": json.dumps(clients),
        },
        "ports": [f"127.0.0.1:{EMULATOR_PORT}:{EMULATOR_PORT}"],
        "healthcheck": _probe(f"http://127.0.0.1:{EMULATOR_PORT}/.well-known/openid-configuration"),
    }


def services() -> dict[str, Any]:
    backing: dict[str, Any] = {
        "postgres": {
            "image": "postgres:15-alpine",
            "environment": {"POSTGRES_PASSWORD": "postgres", "POSTGRES_DB": "mailmerger"},
            "healthcheck": {
                "test": _Flow(["CMD", "pg_isready", "-U", "postgres"]),
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
            "volumes": ["postgres-data:/var/lib/postgresql/data"],
        },
        "redis": {
            "image": "redis:7-alpine",
            "command": _Flow(["redis-server", "--save", "", "--appendonly", "no"]),
            "healthcheck": {
                "test": _Flow(["CMD", "redis-cli", "ping"]),
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
        },
        "rabbitmq": {
            "image": "rabbitmq:3.13-management-alpine",
            "healthcheck": {
                "test": _Flow(["CMD", "rabbitmq-diagnostics", "-q", "ping"]),
                "interval": "10s",
                "timeout": "5s",
                "retries": 20,
            },
            "volumes": ["rabbitmq-data:/var/lib/rabbitmq"],
        },
        "s3": {
            "image": "motoserver/moto:5.0.28",
            "environment": {"MOTO_PORT": str(S3_PORT)},
            "ports": [f"127.0.0.1:{S3_PORT}:{S3_PORT}"],  # download links point the browser here
            "healthcheck": _probe(f"http://127.0.0.1:{S3_PORT}/moto-api/"),
        },
        "google": _emulator(),
        "migrate": {
            "build": _build("all"),
            "image": "mailmerger/all:latest",
            "command": _Flow(["mailmerger", "migrate", "all"]),
            "environment": {"MM_DB_URL": VALUES["MM_DB_URL"]},
            "depends_on": {"postgres": {"condition": "service_healthy"}},
        },
    }
    ours: dict[str, Any] = {}
    built: set[str] = set()
    for process in processes():
        ours[process.name] = _process(process, builds=process.service not in built)
        built.add(process.service)
    gateway = {
        "image": "nginx:1.27-alpine",
        "volumes": ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"],
        "ports": ["8080:8080"],
        "depends_on": {p.name: {"condition": "service_healthy"} for p in processes() if p.http},
        "healthcheck": {
            "test": _Flow(["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]),
            "interval": "10s",
            "timeout": "3s",
            "retries": 6,
        },
    }
    return {**backing, **ours, "gateway": gateway}


def render() -> str:
    header = (
        "# Generated from the service registrations by `mailmerger deploy compose`; do not edit.\n"
        "# The whole system as separate containers behind the nginx gateway on :8080; `mailmerger\n"
        "# run-split` runs the same processes with the same environment on this machine.\n"
    )
    document = {"services": services(), "volumes": {"postgres-data": None, "rabbitmq-data": None}}
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=200)
