"""Serving: one service, the Google emulator, or everything in one process."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

import uvicorn

from mailmerger.allinone import PrefixRouter
from mailmerger.services import load_settings, registry
from mailmerger.standins import StandIns, start_stand_ins
from mailmerger.topology import CREDENTIALS, internal_servers
from mailmerger_shared.serving import server_config
from mailmerger_shared.settings import HttpSettings, environment, load
from mailmerger_shared.web.probes import Probes, probe_app

if TYPE_CHECKING:
    from mailmerger.cli import RunSettings

log = logging.getLogger(__name__)


def serve_google_emulator() -> None:
    from mailmerger_emulator.google.app import serve
    from mailmerger_emulator.google.settings import GoogleEmulatorSettings

    serve(load(GoogleEmulatorSettings))


def build_all_in_one(
    env: Mapping[str, str] | None = None, *, local_s3_port: int = 0, internal_port: int = 8081
) -> tuple[PrefixRouter, PrefixRouter, HttpSettings, StandIns]:
    """The public router (gateway prefixes, plus stand-ins) and the internal one (``/internal/…``)."""
    env = dict(environment() if env is None else env)
    http = load(HttpSettings, env)
    stand_ins = start_stand_ins(env, public_url=http.public_url, local_s3_port=local_s3_port)
    env.update(stand_ins.environment)
    env.update(_internal_wiring(env, internal_port))
    services = registry()
    settings = {name: load_settings(service, env) for name, service in services.items()}
    apps = {
        name: service.create_app(settings[name])
        for name, service in services.items()
        if service.create_app is not None
    }
    # Each worker reports its readiness to its own probes, as it does on its metrics port when
    # it runs alone; /ready asks them under the worker's process name (``sender-worker``).
    workers, probed = {}, {}
    for name, service in services.items():
        for worker, run in service.workers.items():
            probes, process = Probes(), service.process_name(worker)
            workers[process] = functools.partial(run, settings[name], probes=probes)
            probed[process] = probe_app(probes)
    public = PrefixRouter(apps, mounts=stand_ins.mounts, workers=workers, probed=probed)
    internal = PrefixRouter(apps, owner=_internal_owner)
    return public, internal, http, stand_ins


def _internal_wiring(env: Mapping[str, str], internal_port: int) -> dict[str, str]:
    """Every internal URL at this process's internal listener; a fresh credential per caller
    unless one is set.

    In one process the credentials never leave it, so random ones serve as well as configured
    ones and nobody has to invent them for a first run.
    """
    wiring = dict.fromkeys(internal_servers(), f"http://127.0.0.1:{internal_port}")
    wiring.update({variable: env.get(variable) or secrets.token_urlsafe(32) for variable in CREDENTIALS})
    return wiring


def _internal_owner(path: str) -> str | None:
    parts = path.split("/", 3)
    return parts[2] if len(parts) > 2 and parts[1] == "internal" else None


def run_all_in_one(run: RunSettings) -> None:
    public, internal, http, stand_ins = build_all_in_one(
        local_s3_port=run.local_s3_port, internal_port=run.internal_port
    )

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
