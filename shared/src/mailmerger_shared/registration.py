"""What a service declares about itself, once; everything that runs or deploys it derives from this.

Each service's composition root (``app.py``) exports one ``SERVICE``. The runner's registry
(``mailmerger.services``) lists the packages, and from their registrations come both launchers
(``python -m mailmerger_<service>`` and ``mailmerger serve|worker``), the all-in-one, the gateway's
prefix table (nginx, the Kubernetes Ingress) and the compose and Kubernetes processes with the
variables each one reads (its settings type says which).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

# A background loop run as its own process: ``run(settings, probes=...)`` until cancelled.
Worker = Callable[..., Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ServiceRegistration:
    name: str
    settings_type: type[msgspec.Struct]
    # The HTTP app (``create_app(settings, **resources)``); None for a service that is only workers.
    create_app: Callable[..., Any] | None
    # Public path prefixes the gateway routes to this service's app.
    public_prefixes: tuple[str, ...] = ()
    # Background loops, each its own process (``python -m mailmerger_<service> <worker>``).
    workers: Mapping[str, Worker] = field(default_factory=dict)

    @property
    def package(self) -> str:
        return f"mailmerger_{self.name}"

    def process_name(self, worker: str | None = None) -> str:
        """What a process of this service is called (logs, compose, Kubernetes, ``/ready``): the
        service for its HTTP app, ``<service>-<worker>`` for a worker (``queue-dispatcher``)."""
        return self.name if worker is None else f"{self.name}-{worker}"
