"""The services of MailMerger: the one list of them, and their registrations.

Each package's ``app.SERVICE`` (a ``ServiceRegistration``) says what the service is: its settings,
its HTTP app, its public prefixes, its workers. Everything else (the launchers, the all-in-one,
the gateway, compose, Kubernetes, ``run-split``) is derived from the registry below.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

from mailmerger_shared.registration import ServiceRegistration
from mailmerger_shared.settings import load_service

# The one place the list of services appears.
SERVICES = ("auth", "templates", "queue", "sender", "storage")


@functools.cache
def registry() -> dict[str, ServiceRegistration]:
    # Imported here so that `mailmerger --help` stays fast and a broken service names itself.
    registrations: dict[str, ServiceRegistration] = {}
    for name in SERVICES:
        registration = importlib.import_module(f"mailmerger_{name}.app").SERVICE
        if not isinstance(registration, ServiceRegistration) or registration.name != name:
            raise TypeError(f"mailmerger_{name}.app.SERVICE must register the {name!r} service")
        registrations[name] = registration
    return registrations


def load_settings(service: ServiceRegistration, env: Mapping[str, str] | None = None) -> Any:
    return load_service(service.settings_type, env)


def find_worker(name: str) -> tuple[ServiceRegistration, str]:
    """A worker by its name (``dispatcher``) or its service's (``sender``, whose only worker runs)."""
    services = registry()
    for service in services.values():
        if name in service.workers:
            return service, name
    owner = services.get(name)
    if owner is not None and len(owner.workers) == 1:
        return owner, next(iter(owner.workers))
    known = sorted(
        {
            *(w for s in services.values() for w in s.workers),
            *(s.name for s in services.values() if s.workers),
        }
    )
    raise SystemExit(f"mailmerger: no worker named {name!r} (choose from {', '.join(known)})")
