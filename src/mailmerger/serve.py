"""Serving: one service, the Google emulator, or everything in one process."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import uvicorn

from mailmerger.allinone import PrefixRouter
from mailmerger.services import registry
from mailmerger.standins import StandIns, start_stand_ins
from mailmerger_shared.serving import run_until_signalled, serve_standalone, server_config
from mailmerger_shared.settings import HttpSettings, environment, load

if TYPE_CHECKING:
    from mailmerger.cli import RunSettings

log = logging.getLogger(__name__)


def serve_service(name: str) -> None:
    service = registry()[name]
    settings = service.settings()
    uvicorn.Server(server_config(service.create_app(settings), settings.http.host, settings.http.port)).run()


def run_worker(name: str) -> None:
    """Run one named worker of whichever service owns it, until SIGTERM."""
    for service in registry().values():
        if name in service.workers:
            run_until_signalled(service.workers[name](service.settings()))
            return
    raise SystemExit(f"no worker named {name!r}")


def serve_google_emulator() -> None:
    from mailmerger_emulator.google.app import create_app
    from mailmerger_emulator.google.settings import GoogleEmulatorSettings

    settings = load(GoogleEmulatorSettings)
    serve_standalone(create_app(settings), settings.public_url)


def build_all_in_one(
    env: Mapping[str, str] | None = None, *, local_s3_port: int = 0
) -> tuple[PrefixRouter, PrefixRouter, HttpSettings, StandIns]:
    """The public router (gateway prefixes, plus stand-ins) and the internal one (``/internal/…``)."""
    env = dict(environment() if env is None else env)
    http = load(HttpSettings, env)
    stand_ins = start_stand_ins(env, public_url=http.public_url, local_s3_port=local_s3_port)
    env.update(stand_ins.environment)
    services = registry()
    settings = {name: service.settings(env) for name, service in services.items()}
    apps = {name: service.create_app(settings[name]) for name, service in services.items()}
    workers = {
        worker: functools.partial(run, settings[name])
        for name, service in services.items()
        for worker, run in service.workers.items()
    }
    public = PrefixRouter(apps, mounts=stand_ins.mounts, workers=workers)
    internal = PrefixRouter(apps, owner=_internal_owner)
    return public, internal, http, stand_ins


def _internal_owner(path: str) -> str | None:
    parts = path.split("/", 3)
    return parts[2] if len(parts) > 2 and parts[1] == "internal" else None


def run_all_in_one(run: RunSettings) -> None:
    public, internal, http, stand_ins = build_all_in_one(local_s3_port=run.local_s3_port)

    async def main() -> None:
        servers = [
            uvicorn.Server(server_config(public, http.host, http.port)),
            # Same app objects, already started by the public server's lifespan.
            uvicorn.Server(server_config(internal, "127.0.0.1", run.internal_port, lifespan="off")),
        ]
        lines = [
            f"gateway          {http.public_url}  (ready: {http.public_url}/ready)",
            f"API docs         {http.public_url}/schema/<service>  (auth, templates, queue, storage)",
            f"internal API     http://127.0.0.1:{run.internal_port}/internal/<service>/...",
            *stand_ins.notes,
        ]
        print("MailMerger is starting:\n" + "\n".join(f"  {line}" for line in lines), flush=True)
        await asyncio.gather(*(server.serve() for server in servers))

    try:
        asyncio.run(main())
    finally:
        stand_ins.stop()
