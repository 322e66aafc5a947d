"""``/health`` (the process is alive) and ``/ready`` (every dependency answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler

Check = Callable[[], Awaitable[object]]
READY_TIMEOUT = 2.0


async def run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """Run every check concurrently; a check that raises or takes too long is 'unavailable'."""

    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), timeout=READY_TIMEOUT)
        except Exception as exc:
            return f"unavailable: {type(exc).__name__}: {exc}"[:300]
        return "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    report = dict(zip(names, results, strict=True))
    return all(result == "ok" for result in results), report


def health_routes() -> list[HTTPRouteHandler]:
    """Probes read the checks from ``app.state.readiness`` (set by the lifespan that opens them)."""

    @get("/health", opt={"exclude_from_auth": True}, include_in_schema=False, sync_to_thread=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", opt={"exclude_from_auth": True}, include_in_schema=False)
    async def ready(state: State) -> Response[dict[str, Any]]:
        checks: Mapping[str, Check] = state.get("readiness", {})
        ok, report = await run_checks(checks)
        return Response(
            {"status": "ready" if ok else "unavailable", "checks": report}, status_code=200 if ok else 503
        )

    return [health, ready]
