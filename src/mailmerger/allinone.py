"""All-in-one mode: every service's app behind its path prefixes in one process.

The router dispatches by the prefix table of ``gateway``; it starts every app's lifespan (and the
background workers) in its own, and answers ``/ready`` only when every service is ready. Its
``/metrics`` is the process's default registry, which every app and worker in it counts into.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, MutableMapping
from typing import Any

import httpx
import msgspec
from asgi_lifespan import LifespanManager
from prometheus_client import make_asgi_app

from mailmerger.gateway import service_for

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Event = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Event]]
Send = Callable[[Event], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Worker = Callable[[], Coroutine[Any, Any, None]]


class PrefixRouter:
    """Dispatches public requests to the owning service's app by path prefix.

    ``mounts`` are apps reached under a prefix that is stripped (the Google emulator, which serves
    Google's own paths). ``probed`` are the workers' probe apps (``web.probes``): never routed to,
    asked only by ``/ready``, so a worker that is not doing its work makes the whole 503.
    """

    def __init__(
        self,
        apps: Mapping[str, Any],  # ASGI apps (Litestar instances)
        *,
        owner: Callable[[str], str | None] = service_for,
        mounts: Mapping[str, Any] | None = None,
        workers: Mapping[str, Worker] | None = None,
        probed: Mapping[str, Any] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.apps: dict[str, ASGIApp] = dict(apps)
        # How long an app's lifespan may take to start: longer than any wait it is allowed (the
        # broker's MM_AMQP_STARTUP_WAIT_SECONDS), so that the setting, not this, decides.
        self.startup_timeout = startup_timeout
        self._owner = owner
        self._mounts: dict[str, ASGIApp] = dict(mounts or {})
        self._workers = dict(workers or {})
        self._metrics: ASGIApp = make_asgi_app()
        self._probes = {
            name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://in-process")
            for name, app in {**self.apps, **(probed or {})}.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        for prefix, app in self._mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                child = dict(
                    scope, path=path[len(prefix) :] or "/", root_path=scope.get("root_path", "") + prefix
                )
                await app(child, receive, send)
                return
        if path in ("/ready", "/health") and scope["type"] == "http":
            await self._probe(path, send)
            return
        if path == "/metrics" and scope["type"] == "http":
            await self._metrics(scope, receive, send)
            return
        service = self._owner(path)
        if service is None or service not in self.apps:
            await _respond(send, 404, {"title": "Not found", "status": 404, "detail": f"no route for {path}"})
            return
        await self.apps[service](scope, receive, send)

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        async def one(name: str) -> tuple[str, Any]:
            try:
                response = await self._probes[name].get("/ready", timeout=5.0)
                return name, {"ready": response.status_code == 200, **response.json()}
            except Exception as exc:
                return name, {"ready": False, "status": "unavailable", "error": repr(exc)}

        results = dict(await asyncio.gather(*(one(name) for name in self._probes)))
        return all(r["ready"] for r in results.values()), results

    async def _probe(self, path: str, send: Send) -> None:
        if path == "/health":
            await _respond(send, 200, {"status": "ok"})
            return
        ok, services = await self.ready()
        await _respond(
            send, 200 if ok else 503, {"status": "ready" if ok else "unavailable", "services": services}
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Every app's lifespan, then the workers; torn down in reverse."""
        async with contextlib.AsyncExitStack() as stack:
            for app in [*self.apps.values(), *self._mounts.values()]:
                await stack.enter_async_context(
                    LifespanManager(app, startup_timeout=self.startup_timeout, shutdown_timeout=60)
                )
            tasks = [asyncio.create_task(worker(), name=name) for name, worker in self._workers.items()]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for probe in self._probes.values():
                    await probe.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            async with self.running():
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
                assert message["type"] == "lifespan.shutdown"
        except Exception as exc:
            log.exception("all-in-one start-up failed")
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = msgspec.json.encode(body)
    media = b"application/json" if status < 400 else b"application/problem+json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(payload)).encode()),
                # What every service app's SecurityHeaders adds, for the answers the router gives itself.
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
