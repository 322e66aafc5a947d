"""The all-in-one mode: every service behind its prefixes, one /ready that names what is down."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from mailmerger.allinone import PrefixRouter
from mailmerger.gateway import routes
from mailmerger.serve import build_all_in_one
from tests.conftest import rabbitmqctl
from tests.support import eventually

# The apps, and the workers (their probes) as their processes are named.
SERVICES = {"auth", "templates", "queue", "storage", "queue-dispatcher", "sender-worker"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server, so a test can stop and restart Redis without disturbing others."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def all_in_one(
    service_env: dict[str, str], private_redis: RedisServer
) -> AsyncIterator[tuple[PrefixRouter, httpx.AsyncClient]]:
    # Its own vhost: the all-in-one's workers must not pick up commands other tests left behind.
    vhost = f"{service_env['MM_AMQP_URL'].rsplit('/', 1)[1]}_all_in_one"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    amqp_url = service_env["MM_AMQP_URL"].rsplit("/", 1)[0] + "/" + vhost
    env = {
        **service_env,
        "MM_AMQP_URL": amqp_url,
        "MM_REDIS_URL": f"redis://127.0.0.1:{private_redis.port}/0",
    }
    public, _internal, _http, stand_ins = build_all_in_one(env)
    try:
        # Requests go to the router itself: LifespanManager.app shares one scope["state"] between
        # requests, where Litestar caches per-request data.
        async with LifespanManager(public, startup_timeout=60, shutdown_timeout=60):
            transport = httpx.ASGITransport(app=public)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield public, client
    finally:
        stand_ins.stop()
        rabbitmqctl("delete_vhost", vhost)


async def test_ready_lists_every_app_and_worker_as_ready(
    all_in_one: tuple[PrefixRouter, httpx.AsyncClient],
) -> None:
    """With every dependency up, /ready is 200 and lists each service as ready."""
    _, client = all_in_one

    async def ready() -> bool:  # the workers report once their infrastructure is open
        return (await client.get("/ready")).status_code == 200

    await eventually(ready, timeout=30, interval=0.2)
    services = (await client.get("/ready")).json()["services"]
    assert set(services) == SERVICES
    assert all(service["ready"] for service in services.values())


async def test_stopping_redis_makes_ready_503_naming_redis_and_restarting_recovers(
    all_in_one: tuple[PrefixRouter, httpx.AsyncClient], private_redis: RedisServer
) -> None:
    """Redis down → 503 whose body names redis; Redis back → 200 again."""
    _, client = all_in_one
    private_redis.stop()
    response = await client.get("/ready")
    assert response.status_code == 503
    failing = {
        name: checks["checks"]["redis"]
        for name, checks in response.json()["services"].items()
        if "redis" in checks.get("checks", {}) and checks["checks"]["redis"] != "ok"
    }
    assert failing, response.text
    assert all(state.startswith("unavailable") for state in failing.values())

    private_redis.start()

    async def recovered() -> bool:
        return (await client.get("/ready")).status_code == 200

    await eventually(recovered, timeout=20, interval=0.3)


def _answered(metrics: str, service: str, method: str, template: str) -> float:
    """How many requests ``service``'s app has counted for the route (its own metric label)."""
    wanted = {"app_name": service, "method": method}
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "mailmerger_requests"
        for sample in family.samples
        if sample.name == "mailmerger_requests_total"
        and wanted.items() <= sample.labels.items()
        # Litestar's template names each parameter's type ("{token:str}"), OpenAPI's does not.
        and _TYPED_PARAMETER.sub(r"{\1}", sample.labels.get("path", "")) == template
    )


_TYPED_PARAMETER = re.compile(r"\{(\w+):[^}]+\}")


async def test_each_prefix_reaches_its_service(all_in_one: tuple[PrefixRouter, httpx.AsyncClient]) -> None:
    """A request under every prefix of the table is answered by the app of the service it names."""
    _, client = all_in_one
    for prefix, service in routes():
        schema = (await client.get(f"/schema/{service}/openapi.json")).json()
        assert schema["info"]["title"] == f"MailMerger {service}"
        if prefix == f"/schema/{service}":
            path, method = f"{prefix}/openapi.json", "GET"
        else:
            # A route the service documents under the prefix, preferably without path parameters
            # (its template is its path); no other service has it (another app would count it as
            # <unmatched>). A prefix whose every route takes a parameter is asked with a dummy one.
            path, operations = min(
                (
                    (path, operations)
                    for path, operations in schema["paths"].items()
                    if path == prefix or path.startswith(prefix + "/")
                ),
                key=lambda item: ("{" in item[0], item[0]),
            )
            method = "GET" if "get" in operations else next(iter(operations)).upper()
        before = (await client.get("/metrics")).text
        response = await client.request(method, re.sub(r"\{\w+\}", "x", path))
        after = (await client.get("/metrics")).text
        assert _answered(after, service, method, path) == _answered(before, service, method, path) + 1, (
            f"{method} {path} (prefix {prefix}) was not answered by {service}: {response.status_code}"
        )


async def test_google_emulator_is_mounted_when_no_google_client_is_configured(
    all_in_one: tuple[PrefixRouter, httpx.AsyncClient],
) -> None:
    """The all-in-one serves the emulator's discovery document under /google."""
    _, client = all_in_one
    response = await client.get("/google/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json()["issuer"] == "http://127.0.0.1:8080/google"


async def test_metrics_serves_the_registry_every_service_counts_into(
    all_in_one: tuple[PrefixRouter, httpx.AsyncClient],
) -> None:
    """/metrics is the process's one registry: the apps' request counts and the workers' metrics."""
    _, client = all_in_one
    assert (await client.get("/schema/queue/openapi.json")).status_code == 200
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'app_name="queue"' in response.text
    for name in ("mailmerger_requests_total", "mailmerger_dispatcher_published_total"):
        assert f"# TYPE {name} counter" in response.text


async def test_unknown_path_is_404_problem(all_in_one: tuple[PrefixRouter, httpx.AsyncClient]) -> None:
    """A path no service owns is a 404 problem, not a crash."""
    _, client = all_in_one
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_openapi_documents_are_public_through_the_router(
    all_in_one: tuple[PrefixRouter, httpx.AsyncClient],
) -> None:
    """Each service's OpenAPI document is reachable at /schema/<service> without a token."""
    _, client = all_in_one
    for service in ("auth", "templates", "queue", "storage"):
        response = await client.get(f"/schema/{service}/openapi.json")
        assert response.status_code == 200, service
        assert response.json()["info"]["title"] == f"MailMerger {service}"
