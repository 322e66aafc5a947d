"""``mailmerger run-split``: the compose topology as separate processes on this machine.

Every container of the generated compose file that MailMerger builds (each service's HTTP app,
the dispatchers, the sender workers, the Google emulator, the migration) runs as its own process
with exactly the command and environment compose gives it, plus a local S3 (moto) and the
generated nginx gateway. Compose host names become loopback addresses: each process gets its own
port where compose gives every container the same one (``auth:8000`` → ``127.0.0.1:<port>``),
and PostgreSQL, Redis and RabbitMQ are the machine's own.

Like compose's ``restart: unless-stopped``, a process that exits is started again (after 1, 2,
4… 30 s); SIGTERM or SIGINT stops everything. Variables in this command's environment win over
the compose file's, for the processes that read them (tests point the run at their own
database that way). With ``--state FILE`` the run writes each process's pid and address to FILE
as JSON, and ``"ready": true`` once every process answers ``/ready``.

Honcho (Foreman's model) was the first choice; it stops every process when one exits, where
compose and Kubernetes restart it, and a topology whose failures end the run cannot prove
recovery from a killed process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mailmerger import compose
from mailmerger.gateway import SERVICE_PORT, render_nginx
from mailmerger.topology import processes
from mailmerger_emulator.google.settings import GoogleEmulatorSettings

LOOPBACK = "127.0.0.1"
# The machine's own PostgreSQL, Redis and RabbitMQ stand for the compose containers.
BACKING = {("postgres", 5432): 5432, ("redis", 6379): 6379, ("rabbitmq", 5672): 5672}
_ADDRESS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^@/\s\"']*@)?(?P<host>[A-Za-z0-9.-]+):(?P<port>\d+)"
)
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")
_MAX_BACKOFF = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Program:
    """One process of the run: what compose would run in one container (one replica)."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int | None = None  # where it listens, if it does
    ready_path: str | None = None  # answered 200 once it is ready
    restart: bool = True
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    starts: int = 0


@dataclass
class Plan:
    gateway_port: int
    programs: list[Program]
    migrate: Program
    ports: dict[tuple[str, int], int]  # compose address -> local port


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    return _INTERPOLATION.sub(lambda m: env.get(m["name"]) or (m["default"] or ""), value)


def localise(value: str, ports: Mapping[tuple[str, int], int]) -> str:
    """Compose addresses in ``value`` (URLs, JSON of URLs) rewritten to their loopback ports."""

    def one(match: re.Match[str]) -> str:
        local = ports.get((match["host"], int(match["port"])))
        if local is None:
            return match[0]
        return f"{match['scheme']}{match['user'] or ''}{LOOPBACK}:{local}"

    value = _ADDRESS.sub(one, value)
    return LOOPBACK if value == "0.0.0.0" else value  # noqa: S104 (never listen beyond loopback here)


def plan(
    overrides: Mapping[str, str], *, gateway_port: int = 8080, replicas: Mapping[str, int] | None = None
) -> Plan:
    """Every process of the compose topology, with its local command, environment and address.

    ``replicas`` overrides how many of a process run (``{"sender-worker": 4}``), as
    ``docker compose up --scale`` does.
    """
    replicas = dict(replicas or {})
    services = compose.services()
    ports: dict[tuple[str, int], int] = dict(BACKING)
    ports[("localhost", 8080)] = gateway_port
    for stand_in, port in (("google", compose.EMULATOR_PORT), ("s3", compose.S3_PORT)):
        ports[(stand_in, port)] = ports[("localhost", port)] = free_port()
    for process in processes():
        if process.http:
            ports[(process.name, SERVICE_PORT)] = free_port()

    def environment(name: str, reads: set[str], own: Mapping[str, str]) -> dict[str, str]:
        env = {
            k: localise(_interpolate(str(v), overrides), ports)
            for k, v in services[name].get("environment", {}).items()
        }
        env.update({k: v for k, v in overrides.items() if k in reads})
        env.update(own)
        return env

    programs: list[Program] = []
    s3_port = ports[("s3", compose.S3_PORT)]
    programs.append(
        Program(
            "s3",
            [sys.executable, "-m", "mailmerger.local_s3", "--port", str(s3_port)],
            {},
            s3_port,
            "/moto-api/",
        )
    )
    emulator_reads = {
        f"{GoogleEmulatorSettings.prefix}{f.upper()}" for f in GoogleEmulatorSettings.__struct_fields__
    }
    google = services["google"]
    programs.append(
        Program(
            "google",
            [sys.executable, *google["command"][1:]],
            environment("google", emulator_reads, {}),
            ports[("google", compose.EMULATOR_PORT)],
            "/.well-known/openid-configuration",
        )
    )
    for process in processes():
        reads = set(process.reads())
        count = replicas.get(process.name, process.replicas)
        for replica in range(1, count + 1):
            name = process.name if count == 1 else f"{process.name}-{replica}"
            if process.http:
                port = ports[(process.name, SERVICE_PORT)]
                own = {"MM_HTTP_PORT": str(port)}
            else:
                port = free_port()
                own = {"MM_METRICS_PORT": str(port)}
            command = [sys.executable, *services[process.name]["command"][1:]]
            programs.append(Program(name, command, environment(process.name, reads, own), port, "/ready"))
    migrate = Program(
        "migrate",
        [sys.executable, "-m", "mailmerger.cli", *services["migrate"]["command"][1:]],
        environment("migrate", {"MM_DB_URL"}, {}),
        restart=False,
    )
    return Plan(gateway_port, programs, migrate, ports)


def nginx_config(plan: Plan, prefix: Path) -> str:
    """The generated gateway config, its upstreams on their loopback ports, its files in ``prefix``."""
    config = render_nginx(
        lambda service: f"{LOOPBACK}:{plan.ports[(service, SERVICE_PORT)]}",
        listen=f"{LOOPBACK}:{plan.gateway_port}",
    )
    local = [
        "daemon off;",
        f"pid {prefix}/nginx.pid;",
        f"error_log {prefix}/error.log warn;",
    ]
    temp = [
        "  access_log off;",
        *(
            f"  {kind}_temp_path {prefix}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
    ]
    config = config.replace("events {", "\n".join(local) + "\nevents {", 1)
    return config.replace("http {\n", "http {\n" + "\n".join(temp) + "\n", 1)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise SystemExit(
            "mailmerger run-split: nginx is needed for the gateway (apt-get install nginx-light)"
        )
    return found


class Supervisor:
    """Starts the programs, restarts any that exits, stops them all on request."""

    def __init__(
        self, programs: list[Program], *, base_env: Mapping[str, str], state_file: Path | None
    ) -> None:
        self.programs = programs
        self._base_env = {k: v for k, v in base_env.items() if not k.startswith("MM_")}
        self._state_file = state_file
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._relays: set[asyncio.Task[None]] = set()
        self.ready = False

    async def run_once(self, program: Program) -> int:
        process = await self._spawn(program)
        return await process.wait()

    async def _spawn(self, program: Program) -> asyncio.subprocess.Process:
        program.process = await asyncio.create_subprocess_exec(
            *program.command,
            env={**self._base_env, **program.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the supervisor, which stops each in turn
        )
        program.starts += 1
        self._relays.add(relay := asyncio.create_task(_relay(program.name, program.process)))
        relay.add_done_callback(self._relays.discard)
        self.write_state()
        return program.process

    async def _keep(self, program: Program) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            process = await self._spawn(program)
            started = asyncio.get_running_loop().time()
            code = await process.wait()
            if self._stopping.is_set() or not program.restart:
                return
            if asyncio.get_running_loop().time() - started > 60:
                backoff = 1.0
            _say(program.name, f"exited with {code}; starting it again in {backoff:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def start(self, program: Program) -> None:
        self._tasks.append(asyncio.create_task(self._keep(program), name=program.name))

    async def wait_ready(self, timeout: float = 120.0) -> bool:
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def ready(program: Program) -> bool:
                if program.port is None or program.ready_path is None:
                    return True
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"http://{LOOPBACK}:{program.port}{program.ready_path}")
                    return response.status_code == 200
                return False

            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline and not self._stopping.is_set():
                if all(await asyncio.gather(*(ready(p) for p in self.programs))):
                    self.ready = True
                    self.write_state()
                    return True
                await asyncio.sleep(0.5)
        return False

    def write_state(self) -> None:
        if self._state_file is None:
            return
        state: dict[str, Any] = {
            "ready": self.ready,
            "supervisor": os.getpid(),
            "processes": {
                p.name: {
                    "pid": p.process.pid if p.process else None,
                    "port": p.port,
                    "starts": p.starts,
                    "command": p.command,
                    "env": p.env,
                }
                for p in self.programs
            },
        }
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2))
        temporary.replace(self._state_file)

    def stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def shutdown(self, grace: float = 30.0) -> None:
        """SIGTERM to every process (the gateway first, S3 and the emulator last), SIGKILL after ``grace``."""
        self._stopping.set()
        for program in reversed(self.programs):
            if program.process is not None and program.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    program.process.send_signal(signal.SIGTERM)
        running = [p.process for p in self.programs if p.process is not None and p.process.returncode is None]
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(process.wait() for process in running))
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _relay(name: str, process: asyncio.subprocess.Process) -> None:
    """Each output line, prefixed with the process's name (as honcho and compose print them)."""
    assert process.stdout is not None
    async for line in process.stdout:
        sys.stdout.write(f"{name:<20} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def _say(name: str, text: str) -> None:
    sys.stdout.write(f"{name:<20} | {text}\n")
    sys.stdout.flush()


async def run(gateway_port: int, state_file: Path | None, replicas: Mapping[str, int]) -> int:
    overrides = {k: v for k, v in os.environ.items() if k.startswith("MM_")}
    the_plan = plan(overrides, gateway_port=gateway_port, replicas=replicas)
    with tempfile.TemporaryDirectory(prefix="mailmerger-split-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(nginx_config(the_plan, Path(prefix)))
        gateway = Program(
            "gateway", [nginx_binary(), "-p", prefix, "-c", str(conf)], {}, gateway_port, "/health"
        )
        supervisor = Supervisor([*the_plan.programs, gateway], base_env=os.environ, state_file=state_file)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, supervisor.stop)
        code = await supervisor.run_once(the_plan.migrate)
        if code != 0:
            _say("migrate", f"failed with {code}; not starting the services")
            return code
        for program in supervisor.programs:
            supervisor.start(program)
        if await supervisor.wait_ready():
            url = f"http://{LOOPBACK}:{gateway_port}"
            emulator = the_plan.ports[("google", compose.EMULATOR_PORT)]
            _say(
                "run-split",
                f"ready: gateway {url}, Google emulator http://{LOOPBACK}:{emulator} "
                f"(mailbox: /_emulator/mailbox), {len(supervisor.programs)} processes",
            )
        await supervisor.wait_stopped()
        _say("run-split", "stopping")
        await supervisor.shutdown()
    return 0


def run_split(
    gateway_port: int = 8080, state_file: Path | None = None, replicas: Mapping[str, int] | None = None
) -> int:
    return asyncio.run(run(gateway_port, state_file, dict(replicas or {})))
