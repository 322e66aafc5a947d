"""Deployment files agree with the prefix table and pass real validators, offline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mailmerger.gateway import ROUTES, SERVICES, render_nginx, service_for

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
        render_nginx(upstream_host="127.0.0.1").replace(
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
    for prefix, service in ROUTES:
        assert f"location ^~ {prefix}/ {{ proxy_pass http://{service}; }}" in config
        assert f"upstream {service} {{" in config


def test_internal_routes_are_never_routed() -> None:
    """No gateway prefix reaches /internal."""
    assert service_for("/internal/auth/gmail-token") is None
    assert "/internal" not in render_nginx()


def test_prefixes_match_whole_segments() -> None:
    """/v1/authority is not /v1/auth."""
    assert service_for("/v1/auth/login") == "auth"
    assert service_for("/v1/authority") is None


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


def test_compose_runs_every_routed_service_with_a_healthcheck() -> None:
    """Every service of the prefix table (and every service) has a container with a healthcheck."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for service in {
        *SERVICES,
        *(route.service for route in ROUTES),
        "gateway",
        "postgres",
        "redis",
        "rabbitmq",
        "s3",
    }:
        assert service in compose, service
        assert "healthcheck" in compose[service], service
    gateway_depends = set(compose["gateway"]["depends_on"])
    assert {route.service for route in ROUTES} <= gateway_depends


def test_k8s_manifests_are_generated_from_the_tables() -> None:
    """deploy/k8s/mailmerger.yaml is exactly what `mailmerger deploy k8s` prints."""
    from mailmerger import k8s

    assert (ROOT / "deploy" / "k8s" / "mailmerger.yaml").read_text() == k8s.render()


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
    assert paths == {(route.prefix, route.service) for route in ROUTES}
    services = {d["metadata"]["name"] for d in documents if d["kind"] == "Service"}
    assert {route.service for route in ROUTES} <= services


def test_senders_scale_on_their_queue_depth() -> None:
    """The KEDA ScaledObject watches the sender's quorum queue and targets the sender workers."""
    from mailmerger_shared.broker import QUEUES

    documents = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "mailmerger.yaml").read_text()))
    scaled = next(d for d in documents if d["kind"] == "ScaledObject")
    queue = scaled["spec"]["triggers"][0]["metadata"]["queueName"]
    assert queue in QUEUES
    target = scaled["spec"]["scaleTargetRef"]["name"]
    assert any(d["kind"] == "Deployment" and d["metadata"]["name"] == target for d in documents)
