"""Serving: one service, the Google emulator, or everything in one process."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import uvicorn

from mailmerger.allinone import PrefixRouter
from mailmerger.services import registry
from mailmerger_shared.serving import serve_standalone, server_config
from mailmerger_shared.settings import HttpSettings, load

if TYPE_CHECKING:
    from mailmerger.cli import RunSettings

log = logging.getLogger(__name__)


def serve_service(name: str) -> None:
    service = registry()[name]
    settings = service.settings()
    uvicorn.Server(server_config(service.create_app(settings), settings.http.host, settings.http.port)).run()


def serve_google_emulator() -> None:
    from mailmerger_emulator.google.app import create_app
    from mailmerger_emulator.google.settings import GoogleEmulatorSettings

    settings = load(GoogleEmulatorSettings)
    serve_standalone(create_app(settings), settings.public_url)


def build_all_in_one() -> tuple[PrefixRouter, PrefixRouter, HttpSettings]:
    """The public router (gateway prefixes) and the internal one (``/internal/<service>/…``)."""
    services = registry()
    settings = {name: service.settings() for name, service in services.items()}
    apps = {name: services[name].create_app(settings[name]) for name in services}
    public = PrefixRouter(apps)
    internal = PrefixRouter(apps, owner=_internal_owner)
    return public, internal, load(HttpSettings)


def _internal_owner(path: str) -> str | None:
    parts = path.split("/", 3)
    return parts[2] if len(parts) > 2 and parts[1] == "internal" else None


def run_all_in_one(run: RunSettings) -> None:
    public, internal, http = build_all_in_one()

    async def main() -> None:
        servers = [
            uvicorn.Server(server_config(public, http.host, http.port)),
            # Same app objects, already started by the public server's lifespan.
            uvicorn.Server(server_config(internal, "127.0.0.1", run.internal_port, lifespan="off")),
        ]
        print(
            f"MailMerger is starting:\n"
            f"  gateway        {http.public_url}  (ready: {http.public_url}/ready)\n"
            f"  API docs       {http.public_url}/schema/<service>  (auth, templates, queue, storage)\n"
            f"  internal API   http://127.0.0.1:{run.internal_port}/internal/<service>/...",
            flush=True,
        )
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(main())
