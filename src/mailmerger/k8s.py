"""Kubernetes manifests generated from the service registrations, like the gateway and compose.

``mailmerger deploy k8s`` prints them; ``deploy/k8s/mailmerger.yaml`` is that output, and a test
keeps the two in step (as for nginx). One image per service (deploy/Dockerfile), the processes of
``topology`` each given only the variables it reads (in-cluster addresses from the ConfigMap,
secrets from the operator's Secret), probes on /health and /ready (workers: on their metrics
port), requests/limits, disruption budgets, CPU autoscaling for the APIs and queue-depth
autoscaling (KEDA) for the senders.
"""

from __future__ import annotations

from typing import Any

import yaml

from mailmerger.gateway import SERVICE_PORT, routes
from mailmerger.topology import CREDENTIALS, IN_CLUSTER, METRICS_PORT, Process, processes

APP = "mailmerger"
IMAGE = "ghcr.io/mailmerger/{component}:latest"
CONFIG = "mailmerger-config"
# Created by the operator; a container refers only to the keys its process reads.
SECRETS = "mailmerger-secrets"
SECRET_VARIABLES = (
    "MM_DB_URL",
    "MM_AMQP_URL",
    *CREDENTIALS,
    "MM_AUTH_ENCRYPTION_KEYS",
    # Seals the queue's unsubscribe tokens and webhook secrets.
    "MM_COMPLIANCE_SECRET_KEY",
    "MM_GOOGLE_CLIENT_ID",
    "MM_GOOGLE_CLIENT_SECRET",
    "MM_S3_ACCESS_KEY_ID",
    "MM_S3_SECRET_ACCESS_KEY",
    "MM_S3_BUCKET",
    # The system's own mail (address confirmations, password resets): one of the two transports.
    "MM_SYSTEM_MAIL_GMAIL_REFRESH_TOKEN",
    "MM_SYSTEM_MAIL_SMTP_PASSWORD",
)
# In-cluster addresses (the Services below), public settings an operator edits in the ConfigMap.
ENVIRONMENT = {
    **{name: value for name, value in IN_CLUSTER.items() if name not in SECRET_VARIABLES},
    "MM_HTTP_PUBLIC_URL": "https://mailmerger.example.org",
    # The Gmail account connected for the system (its refresh token is in the Secret), or "smtp"
    # with MM_SYSTEM_MAIL_SMTP_* added here.
    "MM_SYSTEM_MAIL_TRANSPORT": "gmail",
    "MM_SYSTEM_MAIL_FROM_ADDRESS": "mailmerger@example.org",
    # A real deployment: start-up refuses the published development secrets.
    "MM_ENVIRONMENT": "production",
}


def _env(process: Process) -> list[dict[str, Any]]:
    reads = process.reads()
    env: list[dict[str, Any]] = []
    for name in sorted(reads):
        if name in ENVIRONMENT:
            env.append({"name": name, "valueFrom": {"configMapKeyRef": {"name": CONFIG, "key": name}}})
        elif name in SECRET_VARIABLES:
            # Optional where the process has a default (e.g. the AWS credential chain for S3).
            ref = {"name": SECRETS, "key": name, **({"optional": True} if not reads[name].required else {})}
            env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def _container(component: str, image: str, command: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": component,
        "image": IMAGE.format(component=image),
        "command": command,
        "env": env,
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
    return container


def _probed(container: dict[str, Any], process: Process) -> dict[str, Any]:
    # An API on its HTTP port; a worker serves the same probes (and /metrics) on its metrics port.
    port = ("http", SERVICE_PORT) if process.http else ("metrics", METRICS_PORT)
    container["ports"] = [{"name": port[0], "containerPort": port[1]}]
    container["livenessProbe"] = {"httpGet": {"path": "/health", "port": port[0]}, "periodSeconds": 10}
    container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": port[0]}, "periodSeconds": 5}
    return container


def _deployment(process: Process) -> dict[str, Any]:
    component = process.name
    container = _probed(_container(component, process.service, process.command, _env(process)), process)
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
                    "containers": [container],
                },
            },
        },
    }


def _service(component: str, *, port: tuple[str, int] = ("http", SERVICE_PORT)) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": component, "labels": _labels(component)},
        "spec": {
            "selector": _labels(component),
            "ports": [{"name": port[0], "port": port[1], "targetPort": port[0]}],
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
        for prefix, service in routes()
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
                        _container(
                            "migrate",
                            "all",
                            ["mailmerger", "migrate", "all"],
                            [
                                {
                                    "name": "MM_DB_URL",
                                    "valueFrom": {"secretKeyRef": {"name": SECRETS, "key": "MM_DB_URL"}},
                                }
                            ],
                        )
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
    for process in processes():
        documents += [_deployment(process), _disruption_budget(process.name)]
        if process.http:
            documents += [_service(process.name), _cpu_autoscaler(process.name)]
            continue
        # A metrics Service, so that Prometheus finds every worker.
        documents.append(_service(process.name, port=("metrics", METRICS_PORT)))
        if process.service == "sender":
            documents.append(_queue_depth_autoscaler(process.name, "sender.send-email"))
    documents.append(_ingress())
    return documents


def render() -> str:
    header = "# Generated from src/mailmerger/k8s.py by `mailmerger deploy k8s`; do not edit.\n"
    body: str = yaml.safe_dump_all(manifests(), sort_keys=False)
    return header + body
