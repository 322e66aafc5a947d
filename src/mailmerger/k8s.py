"""Kubernetes manifests generated from the same tables as the gateway.

``mailmerger deploy k8s`` prints them; ``deploy/k8s/mailmerger.yaml`` is that output, and a test
keeps the two in step (as for nginx). One image per service (deploy/Dockerfile), the same
variables as docker-compose, probes on /health and /ready, requests/limits, disruption budgets,
CPU autoscaling for the APIs and queue-depth autoscaling (KEDA) for the senders.
"""

from __future__ import annotations

from typing import Any

import yaml

from mailmerger.gateway import ROUTES, SERVICE_PORT

APP = "mailmerger"
IMAGE = "ghcr.io/mailmerger/{component}:latest"
API_SERVICES = ("auth", "templates", "queue", "storage", "sender")
CONFIG = "mailmerger-config"
SECRETS = (
    "mailmerger-secrets"  # created by the operator: MM_DB_URL, MM_AMQP_URL, MM_INTERNAL_SERVICE_TOKEN, …
)

ENVIRONMENT = {
    "MM_REDIS_URL": "redis://redis:6379/0",
    "MM_JWT_JWKS_URL": f"http://auth:{SERVICE_PORT}/v1/auth/.well-known/jwks.json",
    "MM_HTTP_HOST": "0.0.0.0",  # noqa: S104 (inside a pod, the Service is the boundary)
    "MM_HTTP_PORT": str(SERVICE_PORT),
    "MM_LOG_JSON": "true",
}


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def _container(component: str, image: str, command: list[str] | None, *, http: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": component,
        "image": IMAGE.format(component=image),
        "envFrom": [{"configMapRef": {"name": CONFIG}}, {"secretRef": {"name": SECRETS}}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if command:
        container["command"] = command
    if http:
        container["ports"] = [{"name": "http", "containerPort": SERVICE_PORT}]
        container["livenessProbe"] = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5}
    return container


def _deployment(component: str, image: str, command: list[str] | None, *, http: bool) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": component, "labels": _labels(component)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": _labels(component)},
            "template": {
                "metadata": {"labels": _labels(component)},
                "spec": {
                    # Graceful shutdown: stop consuming, finish in-flight sends (the app waits 30 s).
                    "terminationGracePeriodSeconds": 45,
                    "containers": [_container(component, image, command, http=http)],
                },
            },
        },
    }


def _service(component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": component, "labels": _labels(component)},
        "spec": {
            "selector": _labels(component),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }


def _disruption_budget(component: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": component},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": _labels(component)}},
    }


def _cpu_autoscaler(component: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": component},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": component},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def _queue_depth_autoscaler(component: str, queue: str) -> dict[str, Any]:
    """KEDA scales senders on the depth of their RabbitMQ queue (a CRD: validated by shape only)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": component},
        "spec": {
            "scaleTargetRef": {"name": component},
            "minReplicaCount": 1,
            "maxReplicaCount": 30,
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "amqp",
                        "queueName": queue,
                        "mode": "QueueLength",
                        "value": "200",
                    },
                    "authenticationRef": {"name": "rabbitmq-connection"},
                }
            ],
        },
    }


def _ingress() -> dict[str, Any]:
    paths = [
        {
            "path": prefix,
            "pathType": "Prefix",  # matches whole path segments, like the gateway table
            "backend": {"service": {"name": service, "port": {"name": "http"}}},
        }
        for prefix, service in ROUTES
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": APP,
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-body-size": "64m",
                "nginx.ingress.kubernetes.io/proxy-buffering": "off",
            },
        },
        "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": paths}}]},
    }


def _migration_job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "mailmerger-migrate"},
        "spec": {
            "backoffLimit": 3,
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        _container("migrate", "all", ["mailmerger", "migrate", "all"], http=False)
                    ],
                }
            },
        },
    }


def manifests() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG}, "data": ENVIRONMENT},
        _migration_job(),
    ]
    for service in API_SERVICES:
        documents += [
            _deployment(service, service, None, http=True),
            _service(service),
            _disruption_budget(service),
            _cpu_autoscaler(service),
        ]
    documents += [
        _deployment("dispatcher", "queue", ["python", "-m", "mailmerger_queue", "dispatcher"], http=False),
        _disruption_budget("dispatcher"),
        _deployment("sender-worker", "sender", ["python", "-m", "mailmerger_sender", "worker"], http=False),
        _disruption_budget("sender-worker"),
        _queue_depth_autoscaler("sender-worker", "sender.send-email"),
        _ingress(),
    ]
    return documents


def render() -> str:
    header = "# Generated from src/mailmerger/k8s.py by `mailmerger deploy k8s`; do not edit.\n"
    body: str = yaml.safe_dump_all(manifests(), sort_keys=False)
    return header + body
