"""The separate-services topology: which processes run, and the environment each one is given.

Derived from the service registrations: a service with an HTTP app is one process (``auth``…),
each worker another (``queue-dispatcher``, ``sender-worker``). compose, Kubernetes and
``mailmerger run-split`` all run exactly these processes with exactly these variables; a
process is given only the variables its settings types read, so a credential reaches only the
processes that present or check it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from mailmerger.gateway import SERVICE_PORT
from mailmerger.services import registry
from mailmerger_shared.metrics import MetricsSettings
from mailmerger_shared.settings import Settings
from mailmerger_shared.tracing import TracingSettings

# Workers serve /health, /ready and /metrics here (compose healthchecks, Kubernetes probes).
METRICS_PORT = 9100
# How many of each worker the development topologies run (compose, run-split).
REPLICAS = {"queue-dispatcher": 2, "sender-worker": 3}

# Host names are the compose services and the Kubernetes Services alike.
IN_CLUSTER = {
    "MM_DB_URL": "postgresql+asyncpg://postgres:postgres@postgres:5432/mailmerger",
    "MM_REDIS_URL": "redis://redis:6379/0",
    "MM_AMQP_URL": "amqp://guest:guest@rabbitmq:5672/",
    "MM_JWT_JWKS_URL": f"http://auth:{SERVICE_PORT}/v1/auth/.well-known/jwks.json",
    "MM_HTTP_HOST": "0.0.0.0",  # noqa: S104 (inside a container, the network is the boundary)
    "MM_HTTP_PORT": str(SERVICE_PORT),
    "MM_METRICS_HOST": "0.0.0.0",  # noqa: S104
    "MM_METRICS_PORT": str(METRICS_PORT),
    "MM_LOG_JSON": "true",
    "MM_AUTH_TRUSTED_PROXY_HOPS": "1",  # the gateway
    **{
        f"MM_INTERNAL_{name.upper()}_URL": f"http://{name}:{SERVICE_PORT}"
        for name in ("auth", "templates", "storage")
    },
}
# One credential per calling service; a process holds only those its settings read.
CREDENTIALS = ("MM_INTERNAL_QUEUE_TOKEN", "MM_INTERNAL_SENDER_TOKEN")
# Browser-facing addresses whose development default (the React client on localhost:5173) is
# right as it stands; every other loopback default is wrong inside a container.
BROWSER_FACING = frozenset({"MM_AUTH_FRONTEND_URL", "MM_HTTP_CORS_ORIGINS"})


@dataclass(frozen=True)
class Process:
    name: str  # the compose service, the Kubernetes Deployment
    service: str
    worker: str | None  # None: the service's HTTP app

    @property
    def command(self) -> list[str]:
        return ["python", "-m", f"mailmerger_{self.service}", *([self.worker] if self.worker else [])]

    @property
    def http(self) -> bool:
        return self.worker is None

    @property
    def replicas(self) -> int:
        return REPLICAS.get(self.name, 1)

    def settings_groups(self) -> Iterator[type[Settings]]:
        """Every settings group the process reads."""
        for field in msgspec.structs.fields(registry()[self.service].settings_type):
            yield field.type
        yield TracingSettings
        if not self.http:
            yield MetricsSettings

    def reads(self) -> dict[str, msgspec.structs.FieldInfo]:
        """Every variable the process reads, with its field (type, default)."""
        return {
            f"{group.prefix}{field.name.upper()}": field
            for group in self.settings_groups()
            for field in msgspec.structs.fields(group)
        }

    def needs(self) -> set[str]:
        """The variables a deployment must set: no default, or a default on this machine's loopback."""
        return {
            name
            for name, field in self.reads().items()
            if name not in BROWSER_FACING and (field.required or _on_loopback(_default(field)))
        }


def processes() -> list[Process]:
    found: list[Process] = []
    for service in registry().values():
        if service.create_app is not None:
            found.append(Process(service.process_name(), service.name, None))
        found += [Process(service.process_name(worker), service.name, worker) for worker in service.workers]
    return found


def internal_servers() -> dict[str, str]:
    """``MM_INTERNAL_<SERVICE>_URL`` → the service whose ``/internal/<service>/`` routes it reaches."""
    return {f"MM_INTERNAL_{name.upper()}_URL": name for name, s in registry().items() if s.create_app}


def _default(field: msgspec.structs.FieldInfo) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return None


def _on_loopback(value: Any) -> bool:
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else value
    return "127.0.0.1" in text or "localhost" in text  # the all-in-one's internal URL among them
