"""Benchmark: every route the old web client calls on its data, beside its v1 twin, over HTTP.

Each service runs as it does in production — ``python -m mailmerger_<service>`` under uvicorn, one
process of its own — against a scratch database (every schema migrated), RabbitMQ vhost, Redis key
prefix and a moto S3, with a JWKS served here for the access tokens. wrk drives each route for
ROUNDS x ``--seconds`` (medians reported), the legacy route and its v1 twin back to back, so their
ratio compares like with like on a noisy shared machine. The server's CPU time per request is
reported too: it is what one dedicated core would sustain, whatever else the machine is doing.

| legacy route | v1 twin | connections |
|---|---|---|
| GET /api/templates/get-all-templates (20 templates) | GET /v1/templates (page of 20) | 64 |
| POST /api/templates/add-template | POST /v1/templates | 8 |
| PATCH /api/templates/update-template | PATCH /v1/templates/{id} | 8 |
| DELETE /api/templates/delete-template [id] | DELETE /v1/templates/{id} | 8 |
| POST /api/queue/add-to-queue | POST /v1/emails | 8 |
| GET /api/queue/get-email-queue (20 emails) | GET /v1/emails?limit=20 | 8 |
| POST /api/queue/send-queued-emails [id] | POST /v1/emails/{id}/send-now | 8 |
| DELETE /api/queue/delete-queue-email [id] | POST /v1/emails/{id}/cancel | 8 |
| POST /api/storage/upload-file (100 KB PDF) | POST /v1/attachments | 8 |

Deletes and cancels take each id once, from the rows the add/compose rounds created; should a
round run out of them, later requests repeat ids (the legacy routes answer those 200 with nothing
deleted, v1 404/409) and the notes count them. The auth routes (sign-up, login, refresh) are
measured by bench_auth.py: argon2 dominates them, not the route.

    uv run python bench/bench_legacy.py [--seconds 5] [--services templates queue storage]

``--profile add-to-queue`` samples the queue service with py-spy during one run of that route
instead, and prints the share of on-CPU samples each function is on the stack of:

    uv run --with py-spy python bench/bench_legacy.py --profile add-to-queue
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench_templates_api import Signer, cpu_seconds, free_port, summarize_stacks, wait_until_ready
from mailmerger.local_s3 import LocalS3
from mailmerger.migrate import migrate
from mailmerger_shared.db import drop_database, ensure_database
from mailmerger_shared.settings import DatabaseSettings

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "legacy.json"
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("MM_TEST_REDIS", "redis://127.0.0.1:6379/0")
ROUNDS = 3
TEMPLATES = 20
QUEUED = 20
PDF_BYTES = 100 * 1024
BOUNDARY = "bench-legacy-7c1e"
EMAIL = {"subject": "Hello", "body": "<p>Hi there</p>", "to_email": "ada@example.com"}


@dataclass
class Route:
    """One measured route: what wrk sends, and (for deletes) the ids it takes one at a time."""

    label: str
    method: str
    path: str  # with ``{id}`` when each request names the next id
    body: str | None = None  # with ``{id}`` likewise
    connections: int = 8
    ids: list[int] = field(default_factory=list)
    content_type: str = "application/json"

    def lua(self) -> str:
        if not self.ids:
            return f"wrk.method = {_lua(self.method)}\n" + (
                f"wrk.body = {_lua(self.body)}\n" if self.body is not None else ""
            )
        path, body = (_lua(part) if part is not None else "nil" for part in (self.path, self.body))
        return (
            f"local ids = {{{','.join(map(str, self.ids))}}}\nlocal i = 0\n"
            "request = function()\n  i = i + 1\n  local id = ids[((i - 1) % #ids) + 1]\n"
            f"  local body = {body}\n  if body then body = string.gsub(body, '{{id}}', id) end\n"
            f"  return wrk.format({_lua(self.method)}, string.gsub({path}, '{{id}}', id), nil, body)\nend\n"
        )


def _lua(value: str) -> str:
    # JSON's escapes for what these bodies hold (quotes, backslash, CR, LF) are Lua's too.
    return json.dumps(value)


def wrk(base_url: str, route: Route, seconds: float, token: str) -> dict[str, Any]:
    """One wrk run of ``route``: requests/s, latency percentiles (ms) and non-2xx answers."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(route.lua())
    url = base_url + (route.path if not route.ids else "/")
    command = ["wrk", "-t", "1", "-c", str(route.connections), "-d", f"{seconds:g}s", "--latency"]
    command += ["--timeout", "10s", "-s", script.name, "-H", f"Authorization: Bearer {token}"]
    command += ["-H", f"Content-Type: {route.content_type}", url]
    try:
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    if "Socket errors" in output:
        raise RuntimeError(f"wrk saw socket errors on {route.label}:\n{output}")
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    percentiles = {
        int(share): float(value) * units[unit]
        for share, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "rps": rate,
        "p50": percentiles[50],
        "p99": percentiles[99],
        "non_2xx": int(errors[1]) if errors else 0,
    }


WARM_UP_SECONDS = 1.0


def measure_pair(
    server: psutil.Process, base_url: str, seconds: float, legacy: tuple[Route, str], v1: tuple[Route, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each route (with its token) warmed up, then ROUNDS runs of each taken in turn, so a noisy
    moment of the machine falls on both; medians, with the server's CPU per request."""
    for route, token in (legacy, v1):
        wrk(base_url, route, WARM_UP_SECONDS, token)
    runs: dict[str, list[dict[str, Any]]] = {legacy[0].label: [], v1[0].label: []}
    for _ in range(ROUNDS):
        for route, token in (legacy, v1):
            before, started = cpu_seconds(server), time.monotonic()
            result = wrk(base_url, route, seconds, token)
            busy, elapsed = cpu_seconds(server) - before, time.monotonic() - started
            result["cpu_us_per_request"] = 1e6 * busy / max(1.0, result["rps"] * elapsed)
            runs[route.label].append(result)
    old, new = (_medians(runs[route.label]) for route, _ in (legacy, v1))
    return old, new


@dataclass
class Bench:
    """A running service under measurement."""

    base_url: str
    server: psutil.Process
    seconds: float
    signer: Signer

    def pair(self, legacy: Route, v1: Route, legacy_user: int, v1_user: int) -> Pair:
        """Both routes measured in turn, each as its user."""
        old, new = measure_pair(
            self.server,
            self.base_url,
            self.seconds,
            (legacy, self.signer.token(legacy_user)),
            (v1, self.signer.token(v1_user)),
        )
        return legacy, v1, old, new


Pair = tuple[Route, Route, dict[str, Any], dict[str, Any]]


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "non_2xx"}
    return median | {
        "non_2xx": sum(run["non_2xx"] for run in runs),
        "rounds": [round(r["rps"]) for r in runs],
    }


# Issue 19: the legacy list the client loads on every page, against the original backend's
# 464 requests/s (p99 203 ms) measured beside ours.
GOALS = {
    "legacy get-all-templates rps": ">= 2,320 requests/s (5 x the original backend's 464)",
    "legacy get-all-templates p99": "<= 20 ms",
}


def rows(service: str, pairs: list[Pair], seconds: float) -> list[dict]:
    setup = f"wrk, 1 thread; median of {ROUNDS} x {seconds:g} s; {os.cpu_count()} cores shared with wrk"
    found: list[dict] = []
    for legacy, v1, old, new in pairs:
        for route, figures in ((legacy, old), (v1, new)):
            notes = (
                f"{route.method} {route.path} at {route.connections} connections ({service} service); "
                f"p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms, "
                f"{figures['cpu_us_per_request']:.0f} us server CPU/request; "
                f"rounds {figures['rounds']} rps; {setup}"
            )
            if figures["non_2xx"]:
                notes += f"; {figures['non_2xx']} answers repeated an id already taken (not 2xx)"
            found += [
                {
                    "name": f"{route.label} rps",
                    "value": round(figures["rps"]),
                    "unit": "requests/s",
                    "goal": GOALS.get(f"{route.label} rps"),
                    "notes": notes,
                },
                {
                    "name": f"{route.label} p99",
                    "value": round(figures["p99"], 2),
                    "unit": "ms",
                    "goal": GOALS.get(f"{route.label} p99"),
                    "notes": notes,
                },
                {
                    "name": f"{route.label} CPU",
                    "value": round(figures["cpu_us_per_request"]),
                    "unit": "us CPU/request",
                    "goal": None,
                    "notes": notes,
                },
            ]
        found.append(
            {
                "name": f"{legacy.label} / {v1.label}, rps",
                "value": round(old["rps"] / new["rps"], 2),
                "unit": "ratio",
                "goal": None,
                "notes": "same run, back to back",
            }
        )
    return found


# --- the scratch infrastructure and the services ----------------------------------------------


@contextlib.contextmanager
def scratch(jwks_url: str) -> Iterator[dict[str, str]]:
    """A database with every schema, a vhost, a key prefix and a moto S3; the services' environment."""
    run = uuid.uuid4().hex[:8]
    database = f"{PG_BASE}/mm_bench_legacy_{run}"
    vhost, key_prefix = f"mm_bench_legacy_{run}", f"mm_bench_legacy_{run}:"
    asyncio.run(ensure_database(database))
    asyncio.run(migrate("all", database=DatabaseSettings(url=database)))
    rabbitmqctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
    subprocess.run([rabbitmqctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        [rabbitmqctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        with LocalS3() as s3:
            yield {
                **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
                **s3.environment(bucket=f"mm-bench-legacy-{run}"),
                "MM_DB_URL": database,
                "MM_REDIS_URL": REDIS_URL,
                "MM_REDIS_KEY_PREFIX": key_prefix,
                "MM_AMQP_URL": f"{AMQP_BASE}/{vhost}",
                "MM_JWT_JWKS_URL": jwks_url,
                "MM_INTERNAL_QUEUE_TOKEN": "bench-queue",
                "MM_INTERNAL_SENDER_TOKEN": "bench-sender",
                "MM_S3_USER_QUOTA_BYTES": str(4096 * 1024 * 1024),
                "MM_LOG_JSON": "true",
                "MM_LOG_LEVEL": "WARNING",
            }
    finally:
        asyncio.run(drop_database(database))
        subprocess.run([rabbitmqctl, "-q", "delete_vhost", vhost], check=False, capture_output=True)
        with redis.Redis.from_url(REDIS_URL) as client:
            keys = list(client.scan_iter(match=f"{key_prefix}*"))
            if keys:
                client.delete(*keys)


@contextlib.contextmanager
def service(name: str, env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    """``python -m mailmerger_<name>`` on a free port until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", f"mailmerger_{name}"]
    server = subprocess.Popen(command, env={**env, "MM_HTTP_HOST": "127.0.0.1", "MM_HTTP_PORT": str(port)})
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, server)
        yield base_url, psutil.Process(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)


def sql(env: dict[str, str], statement: str, **params: Any) -> list[Any]:
    """One statement against the scratch database."""

    async def run() -> list[Any]:
        engine = create_async_engine(env["MM_DB_URL"])
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params)
                return list(result.scalars()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


# --- each service's pairs ---------------------------------------------------------------------


def templates_pairs(env: dict[str, str], signer: Signer, seconds: float) -> list[dict]:
    lister, legacy_writer, v1_writer = 201, 202, 203
    with service("templates", env) as (base_url, process):
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for index in range(TEMPLATES):
                body = {"t_body": f"<p>Hi {{{{name}}}}, template {index}</p>", "t_key": "name"}
                client.post(
                    "/api/templates/add-template", json=body, headers=bearer(signer, lister)
                ).raise_for_status()
            legacy_id = added(
                client.post(
                    "/api/templates/add-template",
                    json={"t_body": "<p>x</p>", "t_key": ""},
                    headers=bearer(signer, legacy_writer),
                )
            )["template_id"]
            v1_id = added(
                client.post(
                    "/v1/templates",
                    json={"name": "x", "subject": "x", "html": "<p>x</p>"},
                    headers=bearer(signer, v1_writer),
                )
            )["id"]

        run = Bench(base_url, process, seconds, signer).pair
        legacy_list = Route(
            "legacy get-all-templates", "GET", "/api/templates/get-all-templates", connections=64
        )
        v1_list = Route("v1 list templates", "GET", "/v1/templates?limit=20", connections=64)
        pairs = [run(legacy_list, v1_list, lister, lister)]
        legacy_add = Route(
            "legacy add-template",
            "POST",
            "/api/templates/add-template",
            json.dumps({"t_body": "<p>Hi {{name}}</p>", "t_key": "name"}),
        )
        v1_add = Route(
            "v1 create template",
            "POST",
            "/v1/templates",
            json.dumps({"name": "Hi", "subject": "Hi", "html": "<p>Hi {{ name }}</p>"}),
        )
        pairs.append(run(legacy_add, v1_add, legacy_writer, v1_writer))
        body = json.dumps({"template_id": legacy_id, "t_body": "<p>Hello {{name}}</p>", "t_key": "name"})
        legacy_update = Route("legacy update-template", "PATCH", "/api/templates/update-template", body)
        v1_update = Route(
            "v1 update template",
            "PATCH",
            f"/v1/templates/{v1_id}",
            json.dumps({"html": "<p>Hello {{ name }}</p>"}),
        )
        pairs.append(run(legacy_update, v1_update, legacy_writer, v1_writer))
        others = "SELECT id FROM templates.templates WHERE user_id = :user AND id <> :kept ORDER BY id"
        legacy_ids = sql(env, others, user=legacy_writer, kept=legacy_id)
        v1_ids = sql(env, others, user=v1_writer, kept=v1_id)
        legacy_delete = Route(
            "legacy delete-template", "DELETE", "/api/templates/delete-template", "[{id}]", ids=legacy_ids
        )
        v1_delete = Route("v1 delete template", "DELETE", "/v1/templates/{id}", ids=v1_ids)
        pairs.append(run(legacy_delete, v1_delete, legacy_writer, v1_writer))
    return rows("templates", pairs, seconds)


def queue_pairs(env: dict[str, str], signer: Signer, seconds: float) -> list[dict]:
    reader, legacy_writer, v1_writer = 301, 302, 303
    for user in (reader, legacy_writer, v1_writer):
        add_sender(env, user)
    emails_of = "SELECT id FROM queue.messages WHERE user_id = :user ORDER BY id"
    with service("queue", env) as (base_url, process):
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for _ in range(QUEUED):
                answer = client.post("/api/queue/add-to-queue", json=EMAIL, headers=bearer(signer, reader))
                answer.raise_for_status()
        queued = sql(env, emails_of, user=reader)
        run = Bench(base_url, process, seconds, signer).pair
        legacy_add = Route("legacy add-to-queue", "POST", "/api/queue/add-to-queue", json.dumps(EMAIL))
        compose = {
            "account_id": v1_writer,
            "to": ["ada@example.com"],
            "subject": "Hello",
            "html": "<p>Hi there</p>",
        }
        v1_add = Route("v1 compose email", "POST", "/v1/emails", json.dumps(compose))
        pairs = [run(legacy_add, v1_add, legacy_writer, v1_writer)]
        legacy_list = Route("legacy get-email-queue", "GET", "/api/queue/get-email-queue")
        v1_list = Route("v1 list emails", "GET", f"/v1/emails?limit={QUEUED}")
        pairs.append(run(legacy_list, v1_list, reader, reader))
        legacy_send = Route(
            "legacy send-queued-emails", "POST", "/api/queue/send-queued-emails", f"[{queued[0]}]"
        )
        v1_send = Route("v1 send now", "POST", f"/v1/emails/{queued[1]}/send-now")
        pairs.append(run(legacy_send, v1_send, reader, reader))
        legacy_delete = Route(
            "legacy delete-queue-email",
            "DELETE",
            "/api/queue/delete-queue-email",
            "[{id}]",
            ids=sql(env, emails_of, user=legacy_writer),
        )
        v1_cancel = Route(
            "v1 cancel email", "POST", "/v1/emails/{id}/cancel", ids=sql(env, emails_of, user=v1_writer)
        )
        pairs.append(run(legacy_delete, v1_cancel, legacy_writer, v1_writer))
    return rows("queue", pairs, seconds)


def storage_pairs(env: dict[str, str], signer: Signer, seconds: float) -> list[dict]:
    pdf = "%PDF-1.4\n" + "0" * (PDF_BYTES - 16) + "\n%%EOF\n"
    content_type = f"multipart/form-data; boundary={BOUNDARY}"

    def form(file_field: str, kind_field: str) -> str:
        return (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{kind_field}"\r\n\r\nresume\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{file_field}"; filename="cv.pdf"\r\n'
            f"Content-Type: application/pdf\r\n\r\n{pdf}\r\n--{BOUNDARY}--\r\n"
        )

    with service("storage", env) as (base_url, process):
        legacy = Route(
            "legacy upload-file",
            "POST",
            "/api/storage/upload-file",
            form("uploaded_file", "filecontent"),
            content_type=content_type,
        )
        v1 = Route(
            "v1 upload attachment", "POST", "/v1/attachments", form("file", "kind"), content_type=content_type
        )
        pairs = [Bench(base_url, process, seconds, signer).pair(legacy, v1, 401, 402)]
    return rows("storage", pairs, seconds)


_ADD_SENDER = (
    "INSERT INTO queue.senders (account_id, user_id, email, scopes, state, daily_limit, per_minute_limit, "
    "connected_at, state_changed_at) VALUES (:user_id, :user_id, :email, '{}', "
    "'connected', 2000, 250, now(), now())"
)


def add_sender(env: dict[str, str], user_id: int) -> None:
    """A connected Gmail account for ``user_id`` (its id is the user's), as GmailConnected makes one."""
    sql(env, _ADD_SENDER, user_id=user_id, email=f"bench{user_id}@gmail.com")


def bearer(signer: Signer, user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.token(user_id)}"}


def added(response: httpx.Response) -> dict[str, Any]:
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body.get("data", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--services",
        nargs="+",
        choices=["templates", "queue", "storage"],
        default=["templates", "queue", "storage"],
    )
    parser.add_argument("--profile", choices=["add-to-queue"], help="profile a legacy queue route instead")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_legacy needs wrk (apt-get install wrk)")
    signer = Signer()
    try:
        with scratch(signer.url) as env:
            if args.profile:
                print(profile_add_to_queue(env, signer, args.seconds))
                return
            measured = {"templates": templates_pairs, "queue": queue_pairs, "storage": storage_pairs}
            results = [row for name in args.services for row in measured[name](env, signer, args.seconds)]
    finally:
        signer.close()
    report = {"area": "legacy", "results": results}
    print(json.dumps(report, indent=2))
    if set(args.services) == {"templates", "queue", "storage"}:  # a partial run keeps the full one's file
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")


def profile_add_to_queue(env: dict[str, str], signer: Signer, seconds: float) -> str:
    """Where add-to-queue's CPU time goes: py-spy samples the queue service during one wrk run."""
    user = 302
    add_sender(env, user)
    with service("queue", env) as (base_url, process), tempfile.TemporaryDirectory() as workdir:
        output = Path(workdir) / "stacks.txt"
        record = ["py-spy", "record", "--pid", str(process.pid), "--rate", "500", "--format", "raw"]
        spy = subprocess.Popen([*record, "-o", str(output)])
        route = Route("legacy add-to-queue", "POST", "/api/queue/add-to-queue", json.dumps(EMAIL))
        result = wrk(base_url, route, seconds, signer.token(user))
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        return f"{result['rps']:.0f} requests/s while sampled\n" + summarize_stacks(
            output.read_text(), top=90
        )


if __name__ == "__main__":
    main()
