"""A worker process's own ``/health``, ``/ready`` and ``/metrics``, served on its metrics port.

A worker (dispatcher, sender) has no HTTP app, yet Kubernetes and compose probe it and Prometheus
scrapes it like any other process. The worker opens its infrastructure itself, so it *reports*
its readiness checks to a ``Probes`` once it is doing its work; ``/ready`` is 503 before that and
after it stops. The answers have the same shape as an app's (``web.health``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from litestar import Litestar
from litestar.datastructures import State

from mailmerger_shared.web.app import MetricsController
from mailmerger_shared.web.health import Check, health_routes
from mailmerger_shared.web.middleware import SecurityHeaders


async def _not_running() -> None:
    raise RuntimeError("the worker is not running (starting or stopped)")


class Probes(Mapping[str, Check]):
    """The readiness checks of a worker, as ``/ready`` runs them: every check reported right now.

    Reported mappings are read at each probe, so a check added to one later counts too.
    """

    def __init__(self) -> None:
        self._reports: list[Mapping[str, Check]] = []

    @contextlib.contextmanager
    def report(self, checks: Mapping[str, Check]) -> Iterator[None]:
        """``checks`` count towards readiness while the block runs."""
        self._reports.append(checks)
        try:
            yield
        finally:
            self._reports = [report for report in self._reports if report is not checks]

    def _checks(self) -> Mapping[str, Check]:
        if not self._reports:
            return {"worker": _not_running}
        return {name: check for report in self._reports for name, check in report.items()}

    def __getitem__(self, name: str) -> Check:
        return self._checks()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._checks())

    def __len__(self) -> int:
        return len(self._checks())


def probe_app(probes: Probes) -> Litestar:
    """``/health``, ``/ready`` (from ``probes``) and ``/metrics`` (the process's default registry)."""
    return Litestar(
        route_handlers=[*health_routes(), MetricsController],
        state=State({"readiness": probes}),
        before_send=[SecurityHeaders(https=False)],  # served on a private port, never to a browser
        openapi_config=None,
        logging_config=None,  # logs are configured once per process (mailmerger_shared.logs)
    )
