"""Deployment files are generated from the service registrations, pass real validators offline,
and give every process the variables it needs, pointing at a service that serves those routes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mailmerger import compose, k8s
from mailmerger.gateway import SERVICE_PORT, render_nginx, routes, service_for
from mailmerger.services import SERVICES, registry
from mailmerger.topology import CREDENTIALS, Process, internal_servers, processes

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str, *candidates: str) -> str:
    found = shutil.which(name) or next((c for c in candidates if Path(c).exists()), None)
    if found is None:
        pytest.fail(f"{name} is required (installed by .ci/run: apt-get install {name})")
    return found


def test_nginx_config_is_generated_from_the_prefix_table() -> None:
    """deploy/nginx.conf is exactly what `mailmerger deploy nginx` prints (run `make deploy-files`)."""
    assert (ROOT / "deploy" / "nginx.conf").read_text() == render_nginx()


def test_nginx_accepts_the_gateway_config(tmp_path: Path) -> None:
    """`nginx -t` validates the generated config (with upstreams on loopback, as no DNS is here)."""
    nginx = _tool("nginx", "/usr/sbin/nginx")
    config = tmp_path / "nginx.conf"
    config.write_text(
        render_nginx(lambda service: f"127.0.0.1:{SERVICE_PORT}").replace(
            "events {", f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{", 1
        )
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def test_every_prefix_is_routed_by_nginx() -> None:
    """Each prefix has an exact and a subtree location proxying to its service's upstream."""
    config = render_nginx()
    for prefix, service in routes():
        subtree = (
            rf"location \^~ {re.escape(prefix)}/ {{ (error_page 413 = @\w+; )?proxy_pass http://{service}; }}"
        )
        assert re.search(subtree, config), prefix
        assert f"upstream {service} {{" in config


def test_internal_routes_are_never_routed() -> None:
    """No gateway prefix reaches /internal."""
    assert service_for("/internal/auth/gmail-token") is None
    assert "/internal" not in render_nginx()


def test_prefixes_match_whole_segments() -> None:
    """/v1/authority is not /v1/auth."""
    assert service_for("/v1/auth/login") == "auth"
    assert service_for("/v1/authority") is None


@pytest.mark.slow  # docker-compose, a process of its own
def test_compose_file_is_valid() -> None:
    """docker-compose validates the file offline (no engine needed)."""
    compose = _tool("docker-compose")
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_file_is_generated_from_the_registrations() -> None:
    """docker-compose.yml is exactly what `mailmerger deploy compose` prints (run `make deploy-files`)."""
    assert (ROOT / "docker-compose.yml").read_text() == compose.render()


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return document


def test_compose_runs_every_process_with_a_healthcheck() -> None:
    """Every process of the topology (each app, each worker) and every dependency is a container
    with a healthcheck; the gateway waits for every app it routes to."""
    services = _compose()
    for name in {*(p.name for p in processes()), "gateway", "postgres", "redis", "rabbitmq", "s3", "google"}:
        assert name in services, name
        assert "healthcheck" in services[name], name
    assert {route.service for route in routes()} <= set(services["gateway"]["depends_on"])


def test_workers_are_probed_on_their_metrics_port() -> None:
    """A worker container's healthcheck asks /ready on the metrics port it is given."""
    services = _compose()
    for process in processes():
        if not process.http:
            env = services[process.name]["environment"]
            assert (
                f"127.0.0.1:{env['MM_METRICS_PORT']}/ready"
                in services[process.name]["healthcheck"]["test"][-1]
            )


def _check_supplied(process: Process, env: dict[str, str], where: str) -> None:
    """Every variable ``process`` needs is in ``env``; internal URLs and the JWKS point at the
    service that serves those routes, on its port."""
    missing = process.needs() - set(env)
    assert not missing, f"{where}: {process.name} needs {sorted(missing)}"
    for variable, target in internal_servers().items():
        if variable in env:
            url = urlsplit(env[variable])
            assert (url.hostname, url.port) == (target, SERVICE_PORT), (where, process.name, variable)
            assert registry()[target].create_app is not None
    if "MM_JWT_JWKS_URL" in env:
        jwks = urlsplit(env["MM_JWT_JWKS_URL"])
        assert (jwks.hostname, jwks.port) == ("auth", SERVICE_PORT)
        assert service_for(jwks.path) == "auth"


def _check_least_privilege(process: Process, env: dict[str, str], where: str) -> None:
    """A process holds only the credentials its settings read."""
    extra = {name for name in CREDENTIALS if name in env} - set(process.reads())
    assert not extra, f"{where}: {process.name} is given {sorted(extra)} it never uses"


@pytest.mark.parametrize("process", processes(), ids=lambda p: p.name)
def test_compose_supplies_every_variable_each_process_needs(process: Process) -> None:
    env = {name: str(value) for name, value in _compose()[process.name]["environment"].items()}
    _check_supplied(process, env, "compose")
    _check_least_privilege(process, env, "compose")


@pytest.mark.parametrize("process", processes(), ids=lambda p: p.name)
def test_kubernetes_supplies_every_variable_each_process_needs(process: Process) -> None:
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "mailmerger.yaml").read_text()))
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    deployment = next(
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == process.name
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for entry in container["env"]:
        source = entry["valueFrom"]
        if "configMapKeyRef" in source:
            env[entry["name"]] = config[source["configMapKeyRef"]["key"]]
        else:  # the operator's Secret: present, its value theirs
            assert source["secretKeyRef"]["name"] == k8s.SECRETS
            env[entry["name"]] = "(secret)"
    _check_supplied(process, env, "kubernetes")
    _check_least_privilege(process, env, "kubernetes")
    assert container["command"] == process.command


def test_only_the_sender_and_auth_hold_the_senders_credential() -> None:
    """The credential that obtains Gmail access tokens reaches no other process."""
    holders = {p.name for p in processes() if "MM_INTERNAL_SENDER_TOKEN" in compose.environment(p)}
    assert holders == {"auth", "sender-worker"}


def test_the_emulator_accepts_the_redirect_uris_compose_uses() -> None:
    """The emulator's registered redirect URIs are built from the public URL the services use."""
    services = _compose()
    public_url = services["auth"]["environment"]["MM_HTTP_PUBLIC_URL"]
    clients = json.loads(services["google"]["environment"]["MM_EMULATOR_CLIENTS"])
    assert f"{public_url}/v1/auth/google/callback" in clients[0]["redirect_uris"]
    assert f"{public_url}/api/oauth/oauth2callback" in clients[0]["redirect_uris"]
    # It listens beyond its own host name, so its healthcheck on 127.0.0.1 reaches it.
    assert services["google"]["environment"]["MM_EMULATOR_HOST"] == "0.0.0.0"
    assert "127.0.0.1:8090" in services["google"]["healthcheck"]["test"][-1]


def test_every_service_is_registered_under_its_own_name() -> None:
    assert list(registry()) == list(SERVICES)


def test_k8s_manifests_are_generated_from_the_tables() -> None:
    """deploy/k8s/mailmerger.yaml is exactly what `mailmerger deploy k8s` prints."""
    assert (ROOT / "deploy" / "k8s" / "mailmerger.yaml").read_text() == k8s.render()


@pytest.mark.slow
def test_k8s_manifests_pass_strict_validation() -> None:
    """kubernetes-validate --strict accepts every built-in resource (the KEDA CRD has no bundled schema)."""
    result = subprocess.run(
        [
            shutil.which("kubernetes-validate") or "kubernetes-validate",
            "--strict",
            "--no-warn",
            "deploy/k8s/mailmerger.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in result.stdout.lower()


def test_ingress_routes_every_prefix_to_its_service() -> None:
    """The Ingress has one Prefix path per gateway route, pointing at the owning service."""
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "mailmerger.yaml").read_text()))
    ingress = next(d for d in documents if d["kind"] == "Ingress")
    paths = {
        (p["path"], p["backend"]["service"]["name"]) for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert paths == {(route.prefix, route.service) for route in routes()}
    services = {d["metadata"]["name"] for d in documents if d["kind"] == "Service"}
    assert {route.service for route in routes()} <= services


def test_senders_scale_on_their_queue_depth() -> None:
    """The KEDA ScaledObject watches the sender's quorum queue and targets the sender workers."""
    from mailmerger_shared.broker import QUEUES

    documents = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "mailmerger.yaml").read_text()))
    scaled = next(d for d in documents if d["kind"] == "ScaledObject")
    queue = scaled["spec"]["triggers"][0]["metadata"]["queueName"]
    assert queue in QUEUES
    target = scaled["spec"]["scaleTargetRef"]["name"]
    assert any(d["kind"] == "Deployment" and d["metadata"]["name"] == target for d in documents)
