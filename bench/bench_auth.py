"""Auth hot paths: login latency (dominated by argon2id, on purpose) and access-token verification.

Gives the service its own scratch database (auth schema only), RabbitMQ vhost and Redis key
prefix, and runs the auth app in-process behind httpx's ASGI transport, so the figures include the
HTTP layer, PostgreSQL, Redis and the hashing thread but no network hop. Measures:

* login latency, sequential, with the production argon2id parameters (64 MiB, t=3, p=4) and with
  the minimum the settings allow (19 MiB, t=2, p=1): p50 and p99, median of 3 rounds of 40 logins;
* the no-enumeration property: p50 of "unknown email" against "wrong password" (same work, so the
  ratio should be close to 1);
* access tokens verified per second by the shared verifier (``mailmerger_shared.web.auth``) on one
  core, median of 5 rounds of 20,000 verifications.

    uv run python bench/bench_auth.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from mailmerger_auth.app import create_app
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared.db import asyncpg_dsn, drop_database, ensure_database
from mailmerger_shared.migrations import upgrade
from mailmerger_shared.settings import JwtSettings, load_service
from mailmerger_shared.web.auth import JwksCache, TokenVerifier

RESULTS = Path(__file__).parent / "results" / "auth.json"
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("MM_TEST_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "correct horse battery staple"  # noqa: S105 (the benchmark user's password)
LOGIN_ROUNDS, LOGINS_PER_ROUND, FAILURES_PER_ROUND = 3, 30, 20
VERIFY_ROUNDS, VERIFICATIONS_PER_ROUND = 5, 20_000
MINIMUM_ARGON2 = {
    "MM_AUTH_ARGON2_MEMORY_KIB": "19456",
    "MM_AUTH_ARGON2_TIME_COST": "2",
    "MM_AUTH_ARGON2_PARALLELISM": "1",
}


@contextlib.asynccontextmanager
async def scratch_environment() -> AsyncIterator[dict[str, str]]:
    """A migrated database, a vhost and a key prefix of this run; the service's environment for them."""
    run = uuid.uuid4().hex[:8]
    database = f"{PG_BASE}/mm_bench_auth_{run}"
    await ensure_database(database)
    await asyncio.to_thread(upgrade, "mailmerger_auth", database)
    vhost = f"mm_bench_auth_{run}"
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl:
        await rabbitmq(rabbitmqctl, "add_vhost", vhost)
        await rabbitmq(rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield {
            "MM_DB_URL": database,
            "MM_AMQP_URL": f"{AMQP_BASE}/{vhost}" if rabbitmqctl else AMQP_BASE + "/",
            "MM_REDIS_URL": REDIS_URL,
            "MM_REDIS_KEY_PREFIX": f"mm_bench_auth_{run}:",
            "MM_INTERNAL_QUEUE_TOKEN": f"bench-queue-{run}",
            "MM_INTERNAL_SENDER_TOKEN": f"bench-sender-{run}",
            "MM_LOG_JSON": "false",
            # The benchmark logs in hundreds of times from one address: not what the throttle is for.
            "MM_AUTH_LOGIN_ATTEMPTS_PER_ACCOUNT": "1000000",
            "MM_AUTH_LOGIN_ATTEMPTS_PER_ADDRESS": "1000000",
        }
    finally:
        await drop_database(database)
        if rabbitmqctl:
            await rabbitmq(rabbitmqctl, "delete_vhost", vhost)


async def rabbitmq(rabbitmqctl: str, *args: str) -> None:
    await asyncio.to_thread(subprocess.run, [rabbitmqctl, "-q", *args], check=True, capture_output=True)


@contextlib.asynccontextmanager
async def running_app(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_service(AuthSettings, env))
    async with (
        LifespanManager(app, startup_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
    ):
        yield client


async def timed(calls: int, call: Callable[[], Awaitable[httpx.Response]], expect: int) -> list[float]:
    """Latencies in milliseconds of ``calls`` sequential calls, each checked for its status."""
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        response = await call()
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != expect:
            raise SystemExit(f"expected HTTP {expect}, got {response.status_code}: {response.text}")
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def confirmed_account(client: httpx.AsyncClient, env: dict[str, str]) -> str:
    """A signed-up account whose address is confirmed (v1 admits no other); its email.

    The benchmark's app has no mail transport, so the confirmation the link would make is made
    in the database: what is measured is signing in, not the mail.
    """
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    signup = await client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    if signup.status_code != 202:
        raise SystemExit(f"sign-up failed: {signup.text}")
    connection = await asyncpg.connect(asyncpg_dsn(env["MM_DB_URL"]))
    try:
        await connection.execute("UPDATE auth.users SET email_verified_at = now() WHERE email = $1", email)
    finally:
        await connection.close()
    return email


async def login_latency(client: httpx.AsyncClient, env: dict[str, str]) -> dict[str, Any]:
    email = await confirmed_account(client, env)

    def login(address: str, password: str) -> Callable[[], Awaitable[httpx.Response]]:
        return lambda: client.post("/v1/auth/login", json={"email": address, "password": password})

    ok_p50, ok_p99, wrong_p50, unknown_p50 = [], [], [], []
    for _ in range(LOGIN_ROUNDS):
        ok = await timed(LOGINS_PER_ROUND, login(email, PASSWORD), 200)
        ok_p50.append(statistics.median(ok))
        ok_p99.append(p99(ok))
        # Interleaved, so that both kinds of failure meet the same load on the machine.
        unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
        wrong, missing = [], []
        for _ in range(FAILURES_PER_ROUND):
            wrong += await timed(1, login(email, "wrong password"), 401)
            missing += await timed(1, login(unknown, PASSWORD), 401)
        wrong_p50.append(statistics.median(wrong))
        unknown_p50.append(statistics.median(missing))
    return {
        "p50": statistics.median(ok_p50),
        "p99": statistics.median(ok_p99),
        "wrong_p50": statistics.median(wrong_p50),
        "unknown_p50": statistics.median(unknown_p50),
        "rounds": ok_p50,
    }


async def verification_rates(
    client: httpx.AsyncClient, env: dict[str, str]
) -> dict[str, tuple[float, list[float]]]:
    """Tokens/s of the shared verifier: checking every signature, and answering from its cache."""
    email = await confirmed_account(client, env)
    tokens = []
    for _ in range(8):
        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        tokens.append(login.json()["access_token"])
    jwks = (await client.get("/v1/auth/.well-known/jwks.json")).json()

    async def fetch() -> dict[str, Any]:
        return dict(jwks)

    measured = {}
    # cache_size=0: every verification checks the signature, as for a token seen for the first time.
    for label, cache_size in (("signature checked", 0), ("cached", 10_000)):
        verifier = TokenVerifier(JwksCache(fetch), JwtSettings(), cache_size=cache_size)
        await verifier.verify(tokens[0])  # fills the key cache, as a service's first request does
        rates = []
        for _ in range(VERIFY_ROUNDS):
            started = time.perf_counter()
            for i in range(VERIFICATIONS_PER_ROUND):
                await verifier.verify(tokens[i % len(tokens)])
            rates.append(VERIFICATIONS_PER_ROUND / (time.perf_counter() - started))
        measured[label] = (statistics.median(rates), rates)
    return measured


def login_results(label: str, parameters: str, measured: dict[str, Any]) -> list[dict[str, Any]]:
    rounds = ", ".join(f"{value:.1f}" for value in measured["rounds"])
    return [
        {
            "name": f"login p50 ({label})",
            "value": round(measured["p50"], 1),
            "unit": "ms",
            "goal": "100-500 ms in production: argon2 is the deliberate cost"
            if label == "production"
            else "none",
            "notes": f"argon2id {parameters}; sequential, in-process HTTP + PostgreSQL + Redis;"
            f" median of {LOGIN_ROUNDS} rounds of {LOGINS_PER_ROUND}; round p50s: {rounds}",
        },
        {
            "name": f"login p99 ({label})",
            "value": round(measured["p99"], 1),
            "unit": "ms",
            "goal": "< 2x p50",
            "notes": f"median of the rounds' p99; argon2id {parameters}",
        },
        {
            "name": f"unknown email / wrong password p50 ratio ({label})",
            "value": round(measured["unknown_p50"] / measured["wrong_p50"], 3),
            "unit": "ratio",
            "goal": "~1.0 (no account enumeration by timing)",
            "notes": f"p50 of {FAILURES_PER_ROUND} interleaved attempts each: unknown email"
            f" {measured['unknown_p50']:.1f} ms, wrong password {measured['wrong_p50']:.1f} ms",
        },
    ]


async def main() -> None:
    results: list[dict[str, Any]] = []
    async with scratch_environment() as env:
        async with running_app(env) as client:
            production = await login_latency(client, env)
            verification = await verification_rates(client, env)
        async with running_app({**env, **MINIMUM_ARGON2}) as client:
            minimum = await login_latency(client, env)
    results += login_results("production", "m=64 MiB, t=3, p=4", production)
    results += login_results("minimum", "m=19 MiB, t=2, p=1", minimum)
    machine = f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs"
    for label, (rate, rates) in verification.items():
        results.append(
            {
                "name": f"access-token verification ({label})",
                "value": round(rate),
                "unit": "tokens/s",
                "goal": ">= 2000 tokens/s per core" if label == "signature checked" else "none",
                "notes": f"shared TokenVerifier (EdDSA, JWKS cached), one core, median of {VERIFY_ROUNDS}"
                f" rounds of {VERIFICATIONS_PER_ROUND} over 8 tokens;"
                f" rounds: {', '.join(str(round(r)) for r in rates)}; {machine}",
            }
        )
    report = {"area": "auth", "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
