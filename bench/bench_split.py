"""Benchmark: the separate-services topology (``mailmerger run-split``), beside the all-in-one figures.

Starts ``mailmerger run-split`` (every service, 2 dispatchers, N sender workers, the Google emulator,
a local S3 and the nginx gateway, each its own process, with the environment compose gives it)
against a scratch database, RabbitMQ vhost and Redis prefix, with the emulator's quotas off and the
pacing limits raised as bench_pipeline does. A user signs up through the gateway and connects 10
emulated Gmail accounts for the bulk and one more for single emails, all through the real OAuth
flow; the senders get their access tokens from auth, the attachment from S3.

* **P1**: K emails enqueued as bench_pipeline enqueues them (one committed insert of ``scheduled``
  rows due now + NOTIFY, what a campaign launch commits), timed until the emulator holds all K;
  1 KB HTML and with a 100 KB attachment (uploaded through the storage API); median of several
  rounds, each checked message by message (every Message-ID exactly once). Beside it: the ratio to
  bench_pipeline's figure (``results/pipeline.json``, the same ``make bench`` run when there is one).
* **scaling**: 1 KB rounds with 1, 2 and 4 sender workers (``--scale sender-worker=N``; the default
  topology runs 3), each a fresh ``run-split``.
* **CPU per email per process**: user+system time from ``/proc/<pid>/stat`` of every process in the
  run's state file (nginx with its workers), and of PostgreSQL, RabbitMQ and Redis, over the rounds.
* **RSS per process**: at idle right after every process answered ``/ready``, the peak during the P1
  rounds, and at idle again after them.
* **send-now latency**: while a campaign of ~1,000 emails/s runs (committed inserts paced at that
  rate on the 10 bulk accounts), single emails go through ``POST /v1/emails`` at the gateway on
  their own account; latency = the emulator's acceptance time of each (``internalDate`` of
  ``/_emulator/messages``, ms) minus when the API's 201 arrived (same machine, same clock). The same
  without a campaign first, as the baseline.
* **durable floor**: one process doing, per email, render (templates renderer) + one PostgreSQL
  commit (an insert of the rendered row) + one confirmed publish (the shared Publisher, to the
  sender's quorum queue) + MIME (sender mime.py) + the Gmail call (the sender's client) to the
  emulator in its own process, 32 in flight: what durability costs at minimum, for P1 / floor.
* **P2**: the cached ``GET /v1/templates`` (20 templates) at 64 connections through nginx to the
  templates process, with wrk (an httpx loop when wrk is missing), as bench_templates_api drives it.

    uv run python bench/bench_split.py [--messages 2000] [--rounds 5] [--scaling-rounds 3]
        [--only p1|scaling|floor] [--profile DIR]

``--profile DIR`` records the sender workers, the dispatchers, the queue API and the emulator with
py-spy during the 1 KB rounds (``uv run --with py-spy ...``) and writes the share of samples per
function to DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import psutil
import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailmerger.apiclient import Api
from mailmerger_queue.dispatch.wakeup import CHANNEL as DUE_CHANNEL
from mailmerger_shared.broker.topology import QUEUES, declare_queue
from mailmerger_shared.db import asyncpg_dsn, drop_database, ensure_database

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "split.json"
PIPELINE_RESULTS = HERE / "results" / "pipeline.json"
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("MM_TEST_REDIS", "redis://127.0.0.1:6379/0")
SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
BULK_ACCOUNTS = 10
TEMPLATES = 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHAPES = (("1kb", False), ("100kb_attachment", True))

sys.path.insert(0, str(HERE))
from bench_pipeline import BACKING, LINE, backing_cpu, wait_for  # noqa: E402
from bench_render import TYPICAL  # noqa: E402
from bench_sender import _EMULATOR, ATTACHMENT, account_email, free_port  # noqa: E402
from bench_templates_api import load as http_load  # noqa: E402
from bench_templates_api import summarize_stacks  # noqa: E402

# The 100 KB attachment as storage accepts a PDF: its magic bytes, bench_sender's 100,000 random
# bytes, a trailer.
PDF = b"%PDF-1.4\n" + ATTACHMENT + b"\ntrailer<<>>\n%%EOF\n"


def _rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- processes: CPU and memory from /proc ---------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (``/proc/<pid>/stat`` fields 14 and 15), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _members(pid: int, with_children: bool) -> list[int]:
    if not with_children:
        return [pid]
    with contextlib.suppress(psutil.NoSuchProcess):
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    return [pid]


@dataclass
class Watched:
    """One process of the run (the gateway counts with its nginx workers)."""

    name: str
    pid: int
    with_children: bool = False

    def cpu(self) -> float:
        total = 0.0
        for pid in _members(self.pid, self.with_children):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += proc_cpu_seconds(pid)
        return total

    def rss_mb(self) -> float:
        total = 0
        for pid in _members(self.pid, self.with_children):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += psutil.Process(pid).memory_info().rss
        return total / 2**20


class RssPeaks:
    """Samples every process's RSS in a thread; the peak of each over the sampling."""

    def __init__(self, watched: list[Watched], interval: float = 0.25) -> None:
        self._watched = watched
        self._interval = interval
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for process in self._watched:
                rss = process.rss_mb()
                self.peaks[process.name] = max(self.peaks.get(process.name, 0.0), rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def idle_rss(watched: list[Watched], seconds: float = 5.0) -> dict[str, float]:
    """Median RSS of each process over ``seconds`` of idle."""
    samples: dict[str, list[float]] = {p.name: [] for p in watched}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for process in watched:
            samples[process.name].append(process.rss_mb())
        time.sleep(0.25)
    return {name: statistics.median(values) for name, values in samples.items()}


# --- the topology ------------------------------------------------------------------------------


class Split:
    """One ``mailmerger run-split`` against its own database, vhost and Redis prefix."""

    def __init__(self, workers: int | None) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.name = f"mm_bench_split_{self.run_id}"
        self.workers = workers
        self.database_url = f"{PG_BASE}/{self.name}"
        self.amqp_url = f"{AMQP_BASE}/{self.name}"
        self.port = free_port()
        self.gateway = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="bench-split-"))
        self.state_file = self._dir / "state.json"
        self.log_file = self._dir / "run-split.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}
        self.engine: AsyncEngine | None = None

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
        return {
            **base,
            "MM_DB_URL": self.database_url,
            "MM_AMQP_URL": self.amqp_url,
            "MM_REDIS_URL": REDIS_URL,
            "MM_REDIS_KEY_PREFIX": f"{self.name}:",
            "MM_LOG_LEVEL": "WARNING",
            # As bench_pipeline: quotas off at the emulator, pacing far above the load.
            "MM_EMULATOR_QUOTAS_ENABLED": "false",
            "MM_EMULATOR_AUTO_APPROVE": "true",
            "MM_SENDER_ACCOUNT_SENDS_PER_MINUTE": "10000000",
            "MM_DISPATCH_PER_MINUTE_LIMIT": "10000000",
            "MM_DISPATCH_BATCH_SIZE": "500",
            # Sign-ups are not measured here: the cheapest hashing the settings allow.
            "MM_AUTH_ARGON2_MEMORY_KIB": str(19 * 1024),
            "MM_AUTH_ARGON2_TIME_COST": "2",
            "MM_AUTH_ARGON2_PARALLELISM": "1",
        }

    def start(self) -> None:
        _rabbitmqctl("add_vhost", self.name)
        _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        command = [
            sys.executable, "-m", "mailmerger.cli", "run-split",
            "--port", str(self.port), "--state", str(self.state_file),
        ]  # fmt: skip
        if self.workers is not None:
            command += ["--scale", f"sender-worker={self.workers}"]
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(command, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"run-split exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                self.state = json.loads(self.state_file.read_text())
                if self.state.get("ready"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run-split was not ready in 180 s:\n{self.log_tail()}")
            time.sleep(0.5)
        self.engine = create_async_engine(self.database_url, pool_size=2)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def refresh_state(self) -> dict[str, Any]:
        self.state = json.loads(self.state_file.read_text())
        return self.state

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.state['processes']['google']['port']}"

    def watched(self) -> list[Watched]:
        return [
            Watched(name, info["pid"], with_children=name == "gateway")
            for name, info in self.state["processes"].items()
            if info["pid"] is not None
        ]

    def restarts(self) -> dict[str, int]:
        return {n: i["starts"] - 1 for n, i in self.refresh_state()["processes"].items() if i["starts"] > 1}

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(subprocess.CalledProcessError):
            _rabbitmqctl("delete_vhost", self.name)
        await drop_database(self.database_url)
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{self.name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class Tenant:
    """The signed-up user, their connected accounts and uploaded attachment."""

    api: Api
    email: str
    password: str
    user_id: int
    bulk: list[int]
    single: int
    single_gmail: str
    attachment_id: int | None = None
    templates: list[int] = field(default_factory=list)

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": str(self.api.http.headers["Authorization"])}


def prepare(split: Split, *, attachment: bool, templates: bool) -> Tenant:
    """Sign up, connect the accounts (the real OAuth flow at the emulator), upload, write templates."""
    api = Api(split.gateway)
    email, password = f"bench-{split.run_id}@example.org", "correct horse battery staple"
    user_id = api.sign_up(email, password, "Bench")
    bulk = [
        api.connect_gmail(f"bench{n}-{split.run_id}@gmail.local", f"Bench {n}") for n in range(BULK_ACCOUNTS)
    ]
    single_gmail = f"now-{split.run_id}@gmail.local"
    tenant = Tenant(api, email, password, user_id, bulk, api.connect_gmail(single_gmail, "Now"), single_gmail)
    if attachment:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "resume.pdf"
            path.write_bytes(PDF)
            tenant.attachment_id = api.upload(path, kind="resume")
    if templates:
        tenant.templates = [
            api.create_template(f"Outreach {n}", TYPICAL.subject, TYPICAL.html)[0] for n in range(TEMPLATES)
        ]
    return tenant


async def raise_daily_limits(split: Split, tenant: Tenant) -> None:
    """Workspace accounts allow 2,000 a day; the rounds send more than that through each account."""
    assert split.engine is not None
    async with split.engine.begin() as connection:
        await connection.execute(
            text("UPDATE queue.senders SET daily_limit = 100000000 WHERE user_id = :user"),
            {"user": tenant.user_id},
        )


async def enqueue(
    engine: AsyncEngine, tenant: Tenant, count: int, *, attachment: bool, first: int = 0
) -> None:
    """``count`` emails due now round-robin over the bulk accounts: one committed insert + NOTIFY
    (bench_pipeline's enqueue, for this run's user, accounts and uploaded attachment)."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO queue.messages (user_id, account_id, state, send_at, attempt, rfc_message_id, "
                "to_addrs, cc_addrs, bcc_addrs, subject, html, attachment_ids, created_at, updated_at) "
                "SELECT :user, (CAST(:accounts AS bigint[]))[1 + g % :n], 'scheduled', now(), 0, "
                "'<bench.' || gen_random_uuid() || '@mailmerger.local>', "
                "ARRAY['Recipient ' || g || ' <recipient' || g || '@example.com>'], '{}', '{}', "
                "'Quarterly update', '<p>Hello recipient ' || g || ',</p>' || :tail, "
                "CAST(:attachments AS bigint[]), now(), now() "
                "FROM generate_series(CAST(:first AS int), CAST(:last AS int)) g"
            ),
            {
                "user": tenant.user_id,
                "accounts": tenant.bulk,
                "n": len(tenant.bulk),
                "tail": LINE * 12,
                "attachments": [tenant.attachment_id] if attachment else [],
                "first": first,
                "last": first + count - 1,
            },
        )
        await connection.execute(text(f"NOTIFY {DUE_CHANNEL}"))


async def delivered(client: httpx.AsyncClient) -> int:
    total: int = (await client.get("/_emulator/messages/total")).json()["total"]
    return total


async def check_and_empty(client: httpx.AsyncClient, expected: int) -> None:
    """Every Message-ID of the round exactly once at the emulator (after a second for late
    duplicates), then the mailboxes emptied (as bench_pipeline does between rounds)."""
    await asyncio.sleep(1.0)
    counts = (await client.get("/_emulator/messages/counts")).json()
    if counts["total"] != expected or len(counts["counts"]) != expected:
        raise RuntimeError(
            f"{expected} emails sent, the emulator holds {counts['total']} "
            f"({len(counts['counts'])} distinct Message-IDs)"
        )
    await client.delete("/_emulator/messages")


@dataclass
class Round:
    rate: float
    cpu_us: dict[str, float]  # per process (and backing service), CPU us per email
    other_cores: float = 0.0  # CPU the rest of the machine used meanwhile, in cores


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq + getattr(times, "steal", 0.0)


def own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def p1_rounds(
    split: Split, tenant: Tenant, client: httpx.AsyncClient, *, count: int, rounds: int, attachment: bool
) -> list[Round]:
    assert split.engine is not None
    watched = split.watched()
    done: list[Round] = []
    for _ in range(rounds):
        before = {p.name: p.cpu() for p in watched} | backing_cpu()
        busy_before, own_before = machine_busy(), own_cpu()
        started = time.monotonic()
        await enqueue(split.engine, tenant, count, attachment=attachment)
        finished = await wait_for(lambda: delivered(client), count, timeout=600)
        after = {p.name: p.cpu() for p in watched} | backing_cpu()
        busy, own = machine_busy() - busy_before, own_cpu() - own_before
        await check_and_empty(client, count)
        elapsed = finished - started
        spent = sum(after[name] - before[name] for name in after)
        cpu = {name: 1e6 * (after[name] - before[name]) / count for name in after}
        done.append(Round(count / elapsed, cpu, max(0.0, busy - spent - own) / elapsed))
    return done


async def warm_up(split: Split, tenant: Tenant, client: httpx.AsyncClient) -> None:
    """One email through the API (queue learns the attachment from storage), then 300 inserted:
    tokens, pools, the senders' attachment caches and first-use imports."""
    body: dict[str, Any] = {
        "account_id": tenant.bulk[0],
        "to": ["warm@example.com"],
        "subject": "Warm-up",
        "html": "<p>Warm-up</p>",
    }
    if tenant.attachment_id is not None:
        body["attachment_ids"] = [tenant.attachment_id]
    async with httpx.AsyncClient(base_url=split.gateway, headers=tenant.bearer, timeout=30) as api:
        answer = await api.post("/v1/emails/", json=body)
        if answer.status_code != 201:
            raise RuntimeError(f"compose: {answer.status_code} {answer.text[:300]}")
    await wait_for(lambda: delivered(client), 1, timeout=60)
    await check_and_empty(client, 1)
    assert split.engine is not None
    await enqueue(split.engine, tenant, 300, attachment=tenant.attachment_id is not None)
    await wait_for(lambda: delivered(client), 300, timeout=120)
    await check_and_empty(client, 300)


def by_role(cpu: dict[str, float]) -> dict[str, float]:
    """CPU per email summed by role: the replicas of a worker together."""
    roles: dict[str, float] = {}
    for name, us in cpu.items():
        role = re.sub(r"-\d+$", "", name) if name.startswith(("sender-worker", "queue-dispatcher")) else name
        roles[role] = roles.get(role, 0.0) + us
    return roles


# --- send-now latency during a campaign -------------------------------------------------------


async def send_now_latency(
    split: Split,
    tenant: Tenant,
    client: httpx.AsyncClient,
    *,
    rate: int,
    seconds: float,
    singles_per_second: float,
) -> dict[str, Any]:
    """Single emails through the API while ``rate`` emails/s of campaign are committed."""
    assert split.engine is not None
    engine = split.engine
    tick = 0.1
    per_tick = round(rate * tick)  # 0: no campaign, the baseline
    ramp, tail = (3.0, 2.0) if per_tick else (0.5, 0.0)
    total_ticks = round((ramp + seconds + tail) / tick)
    inserted = 0
    samples: list[tuple[str, float, float]] = []  # rfc_message_id, sent at, 201 at (wall clock)
    failures: list[str] = []
    marks: dict[str, tuple[float, int]] = {}

    async def campaign() -> None:
        nonlocal inserted
        if not per_tick:
            return
        start = time.monotonic()
        for n in range(total_ticks):
            await asyncio.sleep(max(0.0, start + n * tick - time.monotonic()))
            await enqueue(engine, tenant, per_tick, attachment=False, first=n * per_tick)
            inserted += per_tick

    async def singles(api: httpx.AsyncClient) -> None:
        await asyncio.sleep(ramp)
        marks["start"] = (time.monotonic(), await delivered(client))
        interval = 1.0 / singles_per_second
        start = time.monotonic()
        tasks = []
        for n in range(round(seconds * singles_per_second)):
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
            tasks.append(asyncio.create_task(one(api, n)))
        await asyncio.gather(*tasks)
        marks["end"] = (time.monotonic(), await delivered(client))

    async def one(api: httpx.AsyncClient, n: int) -> None:
        body = {
            "account_id": tenant.single,
            "to": [f"someone{n}@example.com"],
            "subject": f"Right now {n}",
            "html": f"<p>Hello someone {n},</p>" + LINE * 12,
        }
        sent = time.time()
        answer = await api.post("/v1/emails/", json=body)
        created = time.time()
        if answer.status_code != 201:
            failures.append(f"{answer.status_code} {answer.text[:200]}")
            return
        samples.append((answer.json()["rfc_message_id"], sent, created))

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=split.gateway, headers=tenant.bearer, timeout=30, limits=limits
    ) as api:
        await asyncio.gather(campaign(), singles(api))
    if failures:
        raise RuntimeError(f"{len(failures)} single emails refused, e.g. {failures[0]}")
    expected = inserted + len(samples)
    await wait_for(lambda: delivered(client), expected, timeout=600)
    listed = (await client.get("/_emulator/messages", params={"user": tenant.single_gmail})).json()
    accepted = {m["rfc822MessageId"].strip("<>"): m["internalDate"] / 1000 for m in listed["messages"]}
    await check_and_empty(client, expected)
    latencies = [1000 * (accepted[rfc.strip("<>")] - created) for rfc, _, created in samples]
    api_ms = [1000 * (created - sent) for _, sent, created in samples]
    (t0, n0), (t1, n1) = marks["start"], marks["end"]
    return {
        "latencies": latencies,
        "api_ms": api_ms,
        "delivered_rate": (n1 - n0) / (t1 - t0),
        "inserted": inserted,
        "offered_rate": per_tick / tick,
        "singles": len(samples),
    }


# --- P2 through nginx ---------------------------------------------------------------------------


def p2(split: Split, tenant: Tenant, seconds: float) -> dict[str, Any]:
    url = f"{split.gateway}/v1/templates"
    listed = httpx.get(url, headers=tenant.bearer, timeout=30)  # fills the cache
    listed.raise_for_status()
    if len(listed.json()["items"]) != TEMPLATES:
        raise RuntimeError(f"expected {TEMPLATES} templates, got {listed.text[:200]}")
    watched = {p.name: p for p in split.watched() if p.name in ("templates", "gateway", "auth")}
    rounds = []
    for _ in range(3):
        before = {name: p.cpu() for name, p in watched.items()}
        started = time.monotonic()
        result = http_load(url, connections=64, seconds=seconds, headers=tenant.bearer, body=None)
        elapsed = time.monotonic() - started
        requests = result["rps"] * elapsed
        result["cpu_us"] = {name: 1e6 * (p.cpu() - before[name]) / requests for name, p in watched.items()}
        rounds.append(result)
    return {
        "rps": _median([r["rps"] for r in rounds]),
        "p50": _median([r["p50"] for r in rounds]),
        "p99": _median([r["p99"] for r in rounds]),
        "cpu_us": {name: _median([r["cpu_us"][name] for r in rounds]) for name in watched},
        "rounds": rounds,
    }


# --- profiling ----------------------------------------------------------------------------------


@contextlib.contextmanager
def profiling(split: Split, folder: Path | None) -> Iterator[None]:
    """py-spy on the sender workers and dispatchers while the block runs (``--profile``)."""
    if folder is None:
        yield
        return
    spies = []
    for name, info in split.state["processes"].items():
        if name.startswith(("sender-worker", "queue-dispatcher", "queue")) or name == "google":
            output = folder / f"{name}.txt"
            command = ["py-spy", "record", "--pid", str(info["pid"]), "--rate", "200", "--format", "raw"]
            spies.append((name, output, subprocess.Popen([*command, "-o", str(output)])))
    try:
        yield
    finally:
        for name, output, spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            if output.exists():
                (folder / f"{name}.summary.txt").write_text(summarize_stacks(output.read_text(), top=40))


# --- the runs -----------------------------------------------------------------------------------


async def main_topology(args: argparse.Namespace) -> dict[str, Any]:
    """The default topology (2 dispatchers, 3 sender workers): RSS, P1, CPU, latency, P2."""
    split = Split(workers=None)
    found: dict[str, Any] = {}
    try:
        await asyncio.to_thread(split.start)
        watched = split.watched()
        found["processes"] = list(split.state["processes"])
        found["idle_rss"] = await asyncio.to_thread(idle_rss, watched)
        tenant = await asyncio.to_thread(prepare, split, attachment=True, templates=True)
        await raise_daily_limits(split, tenant)
        async with httpx.AsyncClient(base_url=split.emulator_url, timeout=60) as client:
            await warm_up(split, tenant, client)
            found["p1"] = {}
            with RssPeaks(watched) as peaks:
                for name, attachment in SHAPES:
                    with profiling(split, args.profile if not attachment else None):
                        found["p1"][name] = await p1_rounds(
                            split,
                            tenant,
                            client,
                            count=args.messages,
                            rounds=args.rounds,
                            attachment=attachment,
                        )
            found["load_rss"] = peaks.peaks
            found["after_rss"] = await asyncio.to_thread(idle_rss, watched, 3.0)
            await asyncio.to_thread(tenant.api.log_in, tenant.email, tenant.password)  # a fresh token
            found["latency_idle"] = await send_now_latency(
                split, tenant, client, rate=0, seconds=4, singles_per_second=15
            )
            found["latency"] = await send_now_latency(
                split, tenant, client, rate=1000, seconds=args.latency_seconds, singles_per_second=15
            )
        await asyncio.to_thread(tenant.api.log_in, tenant.email, tenant.password)
        found["p2"] = await asyncio.to_thread(p2, split, tenant, args.p2_seconds)
        found["restarts"] = split.restarts()
        tenant.api.close()
    finally:
        await split.stop()
    return found


async def scaled(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    split = Split(workers=workers)
    try:
        await asyncio.to_thread(split.start)
        tenant = await asyncio.to_thread(prepare, split, attachment=False, templates=False)
        await raise_daily_limits(split, tenant)
        async with httpx.AsyncClient(base_url=split.emulator_url, timeout=60) as client:
            await warm_up(split, tenant, client)
            rounds = await p1_rounds(
                split, tenant, client, count=args.messages, rounds=args.scaling_rounds, attachment=False
            )
        tenant.api.close()
        return {"rounds": rounds, "restarts": split.restarts()}
    finally:
        await split.stop()


# --- the durable floor ------------------------------------------------------------------------


def _start_emulator(url: str) -> subprocess.Popen[bytes]:
    """The emulator alone under uvicorn (bench_sender's launcher), quotas off."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    return subprocess.Popen(
        [sys.executable, "-c", _EMULATOR, url.rsplit(":", 1)[1]],
        env={**base_env, "MM_EMULATOR_PUBLIC_URL": url, "MM_EMULATOR_QUOTAS_ENABLED": "false"},
    )


async def durable_floor(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    from mailmerger_sender.adapters.gmail import HttpGmail
    from mailmerger_sender.mime import AttachmentBody, Content, build_message
    from mailmerger_sender.settings import DeliverySettings, GmailSettings
    from mailmerger_shared import contracts as c
    from mailmerger_shared.broker import Publisher
    from mailmerger_templates.rendering import Rendered, Renderer, TemplateSource

    run_id = uuid.uuid4().hex[:8]
    name = f"mm_bench_split_floor_{run_id}"
    database_url = f"{PG_BASE}/{name}"
    amqp_url = f"{AMQP_BASE}/{name}"
    emulator_url = f"http://127.0.0.1:{free_port()}"
    await ensure_database(database_url)
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    emulator = _start_emulator(emulator_url)
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=32, max_size=32)
    connection = await aio_pika.connect_robust(amqp_url)
    gmail = HttpGmail(GmailSettings(api_url=emulator_url))
    try:
        await pool.execute(
            "CREATE TABLE floor_messages (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "account_id bigint NOT NULL, rfc_message_id text NOT NULL UNIQUE, to_addrs text[] NOT NULL, "
            "subject text NOT NULL, html text NOT NULL, attachment_ids bigint[] NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
        channel = await connection.channel()
        queue = await declare_queue(channel, QUEUES["sender.send-email"], delivery_limit=5)
        publisher = await Publisher.open(connection)
        async with httpx.AsyncClient(base_url=emulator_url, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/.well-known/openid-configuration")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start")
                await asyncio.sleep(0.1)
            await client.post("/_emulator/users", json={"email": account_email(1)})
            minted = await client.post(
                "/_emulator/tokens", json={"email": account_email(1), "scopes": [SEND_SCOPE]}
            )
            token = minted.json()["access_token"]
        renderer = Renderer()
        compiled = renderer.compile(
            TemplateSource(subject="Quarterly update", html="<p>Hello {{ name }},</p>" + LINE * 12)
        )
        content = Content(ATTACHMENT)  # cached, as the sender's attachment cache holds it
        ref = c.AttachmentRef(
            attachment_id=1,
            object_key="bench/resume.pdf",
            sha256=hashlib.sha256(ATTACHMENT).hexdigest(),
            filename="resume.pdf",
            content_type="application/pdf",
            size=len(ATTACHMENT),
        )
        upload_threshold = DeliverySettings().upload_threshold_bytes
        me = psutil.Process()
        emulator_process = Watched("emulator", emulator.pid)
        found: dict[str, Any] = {}
        for shape, attachment in SHAPES:
            rounds = []
            for _ in range(args.rounds + 1):  # the first is a warm-up
                pending = list(range(args.messages))

                async def one_sender(attachment: bool = attachment, pending: list[int] = pending) -> None:
                    while pending:
                        n = pending.pop()
                        rendered = renderer.render(compiled, {"name": f"recipient {n}"})
                        assert isinstance(rendered, Rendered)
                        rfc_message_id = f"<floor-{uuid.uuid4().hex}@mailmerger.local>"
                        to = f"Recipient {n} <recipient{n}@example.com>"
                        await pool.execute(
                            "INSERT INTO floor_messages (account_id, rfc_message_id, to_addrs, subject, "
                            "html, attachment_ids) VALUES ($1, $2, $3, $4, $5, $6)",
                            1, rfc_message_id, [to], rendered.subject, rendered.html,
                            [1] if attachment else [],
                        )  # fmt: skip
                        command = c.SendEmail(
                            message_id=n,
                            user_id=1,
                            account_id=1,
                            from_address=account_email(1),
                            from_name="Bench Sender",
                            to=[to],
                            subject=rendered.subject,
                            html=rendered.html,
                            attachments=[ref] if attachment else [],
                            rfc_message_id=rfc_message_id,
                        )
                        await publisher.publish(command)
                        raw = build_message(
                            command,
                            sender_name="Bench Sender",
                            attachments=[AttachmentBody("resume.pdf", "application/pdf", content)]
                            if attachment
                            else [],
                            date=datetime.now(UTC),
                        )
                        answer = await gmail.send(
                            token, raw, thread_id=None, upload=len(raw) > upload_threshold
                        )
                        if answer.status != 200:
                            raise RuntimeError(f"floor send refused: {answer.status}")

                times = me.cpu_times()
                before = {"floor": times.user + times.system, "emulator": emulator_process.cpu()}
                before |= backing_cpu()
                started = time.monotonic()
                await asyncio.gather(*(one_sender() for _ in range(32)))
                elapsed = time.monotonic() - started
                times = me.cpu_times()
                after = {"floor": times.user + times.system, "emulator": emulator_process.cpu()}
                after |= backing_cpu()
                cpu = {k: 1e6 * (after[k] - before[k]) / args.messages for k in after}
                rounds.append(Round(args.messages / elapsed, cpu))
                await queue.purge()
                async with httpx.AsyncClient(base_url=emulator_url) as client:
                    await client.delete("/_emulator/messages")
            found[shape] = rounds[1:]
        await publisher.close()
        return found
    finally:
        await gmail.aclose()
        await connection.close()
        await pool.close()
        emulator.terminate()
        emulator.wait(timeout=30)
        _rabbitmqctl("delete_vhost", name)
        await drop_database(database_url)


# --- the report -------------------------------------------------------------------------------


def _rates(rounds: list[Round]) -> str:
    return ", ".join(f"{r.rate:.0f}" for r in rounds)


def _cpu(rounds: list[Round]) -> dict[str, float]:
    return {name: _median([r.cpu_us[name] for r in rounds]) for name in rounds[0].cpu_us}


def _pipeline_figures() -> tuple[dict[str, float], str]:
    """bench_pipeline's P1 figures and how old they are."""
    if not PIPELINE_RESULTS.exists():
        return {}, "no results/pipeline.json"
    report = json.loads(PIPELINE_RESULTS.read_text())
    figures = {
        r["name"].removeprefix("pipeline_emails_per_second_"): r["value"]
        for r in report["results"]
        if r["name"].startswith("pipeline_emails_per_second_")
    }
    age = (time.time() - PIPELINE_RESULTS.stat().st_mtime) / 60
    return figures, f"results/pipeline.json written {age:.0f} min before this run's end"


def report(found: dict[str, Any], args: argparse.Namespace, started_load: tuple[float, ...]) -> list[dict]:
    results: list[dict[str, Any]] = []
    cores = os.cpu_count() or 1
    main = found.get("main")
    floor = found.get("floor")
    pipeline, pipeline_age = _pipeline_figures()
    topology = (
        "run-split: auth, templates, queue, storage, 2 dispatchers, 3 sender workers, Google emulator, "
        "local S3, nginx, each its own process; quotas off, 10 accounts connected through OAuth"
    )
    if main:
        for shape, _ in SHAPES:
            rounds: list[Round] = main["p1"][shape]
            rate = _median([r.rate for r in rounds])
            cpu = _cpu(rounds)
            ours = {n: us for n, us in cpu.items() if n not in BACKING.values()}
            everything = sum(cpu.values())
            results.append(
                {
                    "name": f"P1 emails/s, {shape}",
                    "value": round(rate, 1),
                    "unit": "emails/s",
                    "goal": ">= 1,000 emails/s and >= 0.9 x all-in-one",
                    "notes": f"{topology}; enqueue (committed insert + NOTIFY) to the emulator holding "
                    f"all {args.messages}, each Message-ID exactly once; median of {len(rounds)}: "
                    f"{_rates(rounds)}; other work on the machine meanwhile: "
                    f"{_median([r.other_cores for r in rounds]):.2f} cores (median of the rounds)",
                }
            )
            if shape in pipeline:
                results.append(
                    {
                        "name": f"P1 / all-in-one pipeline, {shape}",
                        "value": round(rate / pipeline[shape], 2),
                        "unit": "ratio",
                        "goal": ">= 0.9",
                        "notes": f"{rate:.0f} / {pipeline[shape]:.0f} emails/s (bench_pipeline: queue API, "
                        f"dispatcher, 2 senders with a stand-in auth; {pipeline_age})",
                    }
                )
            results.append(
                {
                    "name": f"CPU per email, {shape}",
                    "value": round(everything),
                    "unit": "us CPU/email",
                    "goal": None,
                    "notes": (
                        f"every process of the run + PostgreSQL, RabbitMQ, Redis (machine-wide), median of "
                        f"the rounds; ours {sum(ours.values()):.0f}; by role: "
                        + ", ".join(
                            f"{n} {us:.0f}" for n, us in sorted(by_role(cpu).items(), key=lambda x: -x[1])
                        )
                        + f"; the ceiling this cost allows on {cores} cores: {1e6 * cores / everything:,.0f} "
                        f"emails/s (P1 reached {100 * rate * everything / 1e6 / cores:.0f}% of the machine)"
                    ),
                    "by_process": {n: round(us) for n, us in cpu.items()},
                }
            )
        idle, load, after = main["idle_rss"], main["load_rss"], main["after_rss"]
        cpu1, cpu100 = _cpu(main["p1"]["1kb"]), _cpu(main["p1"]["100kb_attachment"])
        ours_names = [n for n in main["processes"] if n not in ("google", "s3", "gateway")]
        for name in main["processes"]:
            results.append(
                {
                    "name": f"process {name}: RSS at idle",
                    "value": round(idle.get(name, 0.0), 1),
                    "unit": "MB",
                    "goal": "<= 80 MB" if name in ours_names else None,
                    "notes": (
                        f"peak during the P1 rounds {load.get(name, 0.0):.1f} MB, idle after them "
                        f"{after.get(name, 0.0):.1f} MB; CPU per email 1 KB {cpu1.get(name, 0.0):.0f} us, "
                        f"100 KB attachment {cpu100.get(name, 0.0):.0f} us"
                        + ("; nginx master + workers" if name == "gateway" else "")
                        + ("; stand-in (not MailMerger)" if name in ("google", "s3") else "")
                    ),
                    "rss_under_load": round(load.get(name, 0.0), 1),
                    "rss_after_load": round(after.get(name, 0.0), 1),
                    "cpu_us_per_email_1kb": round(cpu1.get(name, 0.0)),
                    "cpu_us_per_email_100kb_attachment": round(cpu100.get(name, 0.0)),
                }
            )
        largest = max(ours_names, key=lambda n: idle.get(n, 0.0))
        results.append(
            {
                "name": "largest process RSS at idle",
                "value": round(idle[largest], 1),
                "unit": "MB",
                "goal": "<= 80 MB each at idle",
                "notes": f"{largest}; MailMerger's processes (not the emulator, S3, nginx), median RSS "
                f"over 5 s right after every process answered /ready; under load the largest peak was "
                f"{max(load.get(n, 0.0) for n in ours_names):.1f} MB",
            }
        )
        if "latency" in main:
            lat = main["latency"]
            notes = (
                f"POST /v1/emails at the gateway, {lat['singles']} single emails at 15/s on their own "
                f"account, while a campaign was committed at {lat['offered_rate']:.0f} emails/s on 10 "
                f"others (delivered {lat['delivered_rate']:.0f}/s meanwhile); from the 201's arrival to "
                f"the emulator's internalDate (ms); API answer p50 {_quantile(lat['api_ms'], 0.5):.1f} ms, "
                f"p99 {_quantile(lat['api_ms'], 0.99):.1f} ms; max {max(lat['latencies']):.0f} ms"
            )
            for label, q in (("p50", 0.5), ("p99", 0.99)):
                results.append(
                    {
                        "name": f"send-now latency {label} during a campaign",
                        "value": round(_quantile(lat["latencies"], q), 1),
                        "unit": "ms",
                        "goal": "<= 250 ms" if label == "p99" else None,
                        "notes": notes,
                    }
                )
        if "latency_idle" in main:
            idle_lat = main["latency_idle"]
            results.append(
                {
                    "name": "send-now latency p50 without a campaign",
                    "value": round(_quantile(idle_lat["latencies"], 0.5), 1),
                    "unit": "ms",
                    "goal": None,
                    "notes": (
                        f"the same single emails ({idle_lat['singles']} at 15/s) with nothing else running, "
                        "the baseline of the figure above: p99 "
                        f"{_quantile(idle_lat['latencies'], 0.99):.0f} ms; "
                        f"API answer p50 {_quantile(idle_lat['api_ms'], 0.5):.1f} ms"
                    ),
                }
            )
        if "p2" in main:
            p2_found = main["p2"]
            tool = "wrk" if shutil.which("wrk") else "an httpx loop"
            notes = (
                f"cached GET /v1/templates ({TEMPLATES} templates) at 64 connections through nginx to the "
                f"templates process; {tool}, median of 3 x {args.p2_seconds:g} s, {cores} cores shared; "
                "rounds: "
                + ", ".join(f"{r['rps']:.0f}" for r in p2_found["rounds"])
                + " rps; CPU per request: "
                + ", ".join(f"{n} {us:.0f} us" for n, us in p2_found["cpu_us"].items())
            )
            for label, key, unit, goal in (
                ("rps", "rps", "requests/s", ">= 3,000"),
                ("p50", "p50", "ms", None),
                ("p99", "p99", "ms", "<= 20 ms"),
            ):
                results.append(
                    {
                        "name": f"P2 cached list {label} (nginx)",
                        "value": round(p2_found[key], 2 if unit == "ms" else 0),
                        "unit": unit,
                        "goal": goal,
                        "notes": notes,
                    }
                )
        if main["restarts"]:
            results.append(
                {
                    "name": "process restarts during the run",
                    "value": sum(main["restarts"].values()),
                    "unit": "restarts",
                    "goal": "0",
                    "notes": ", ".join(f"{n} {k}" for n, k in main["restarts"].items()),
                }
            )
    if floor:
        for shape, _ in SHAPES:
            rounds = floor[shape]
            rate = _median([r.rate for r in rounds])
            cpu = _cpu(rounds)
            results.append(
                {
                    "name": f"durable floor emails/s, {shape}",
                    "value": round(rate, 1),
                    "unit": "emails/s",
                    "goal": None,
                    "notes": (
                        "one process, 32 in flight: render + one PostgreSQL commit (insert of the rendered "
                        "row) + one confirmed publish (shared Publisher, quorum queue) + MIME + the sender's "
                        "Gmail client to the emulator (own process); median of "
                        f"{len(rounds)} x {args.messages}: {_rates(rounds)}; CPU us/email: "
                        + ", ".join(f"{n} {us:.0f}" for n, us in cpu.items())
                    ),
                }
            )
            if main:
                p1 = _median([r.rate for r in main["p1"][shape]])
                results.append(
                    {
                        "name": f"P1 / durable floor, {shape}",
                        "value": round(p1 / rate, 2),
                        "unit": "ratio",
                        "goal": ">= 0.7",
                        "notes": f"{p1:.0f} / {rate:.0f} emails/s",
                    }
                )
    scaling = found.get("scaling", {})
    if main:
        scaling = {**scaling, 3: {"rounds": main["p1"]["1kb"], "restarts": main["restarts"]}}
    for workers in sorted(scaling):
        rounds = scaling[workers]["rounds"]
        roles = by_role(_cpu(rounds))
        results.append(
            {
                "name": f"P1 with {workers} sender worker{'s' if workers > 1 else ''}, 1kb",
                "value": round(_median([r.rate for r in rounds]), 1),
                "unit": "emails/s",
                "goal": None,
                "notes": (
                    f"run-split --scale sender-worker={workers} (2 dispatchers); median of {len(rounds)} x "
                    f"{args.messages}: {_rates(rounds)}; CPU us/email: sender workers "
                    f"{roles.get('sender-worker', 0):.0f}, everything {sum(roles.values()):.0f}; other work "
                    f"on the machine {_median([r.other_cores for r in rounds]):.2f} cores"
                    + (" (the default topology's rounds)" if workers == 3 else "")
                    + (f"; restarts {scaling[workers]['restarts']}" if scaling[workers]["restarts"] else "")
                ),
            }
        )
    if 1 in scaling and 4 in scaling:
        one = _median([r.rate for r in scaling[1]["rounds"]])
        four = _median([r.rate for r in scaling[4]["rounds"]])
        results.append(
            {
                "name": "P1 scaling, 4 / 1 sender workers",
                "value": round(four / one, 2),
                "unit": "ratio",
                "goal": None,
                "notes": f"{four:.0f} / {one:.0f} emails/s on {cores} cores: more workers help only while "
                "a core is idle",
            }
        )
    machine = (
        f"{cores} CPUs, load average at start {started_load[0]:.2f} {started_load[1]:.2f} "
        f"{started_load[2]:.2f}, at end " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    for r in results:
        r["notes"] = f"{r['notes']}; {machine}"
    return results


def per_process_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| process | RSS idle MB | RSS peak under load MB | RSS idle after MB | CPU us/email 1 KB "
        "| CPU us/email 100 KB |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["name"].startswith("process ") and "rss_under_load" in r:
            name = r["name"].removeprefix("process ").removesuffix(": RSS at idle")
            lines.append(
                f"| {name} | {r['value']:.1f} | {r['rss_under_load']:.1f} | {r['rss_after_load']:.1f} | "
                f"{r['cpu_us_per_email_1kb']} | {r['cpu_us_per_email_100kb_attachment']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scaling-rounds", type=int, default=3)
    parser.add_argument("--p2-seconds", type=float, default=5.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the full run writes its figures")
    parser.add_argument(
        "--only",
        choices=["p1", "scaling", "floor"],
        help="p1: the default topology alone (P1, CPU, RSS, latency, P2); a partial run writes no results",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the workers during the 1 KB rounds; output here")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    found: dict[str, Any] = {}
    if args.only in (None, "floor"):
        found["floor"] = uvloop.run(durable_floor(args))  # the sender runs on uvloop too
    if args.only in (None, "p1"):
        found["main"] = asyncio.run(main_topology(args))
    if args.only in (None, "scaling"):
        found["scaling"] = {workers: asyncio.run(scaled(workers, args)) for workers in (1, 2, 4)}
    results = report(found, args, load)
    document = {"area": "split", "results": results}
    if args.only is None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    print(per_process_table(results))


if __name__ == "__main__":
    main()
