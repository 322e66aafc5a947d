"""What operators see: metrics for sends, lag, Gmail latency; logs that follow one email end to end."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from mailmerger.apiclient import Api
from mailmerger_shared import tracing
from mailmerger_shared.db import create_engine
from mailmerger_shared.logs import JsonFormatter
from mailmerger_shared.metrics import gmail_operation
from mailmerger_shared.settings import DatabaseSettings
from tests.support import eventually
from tests.system.harness import SystemUnderTest


class JsonLines(logging.Handler):
    """Keeps the JSON lines the sender would print, formatted where they were logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter("sender"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def sender_logs() -> Iterator[JsonLines]:
    logger = logging.getLogger("mailmerger_sender")
    handler, level = JsonLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@dataclass
class Sent:
    client: httpx.AsyncClient
    email_id: int
    request_id: str
    samples_before: dict[str, float] = field(default_factory=dict)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


SAMPLES = {
    "sent": ("mailmerger_sender_deliveries_total", {"outcome": "sent", "reason": "none"}),
    "lag": ("mailmerger_dispatch_lag_seconds_count", None),
    "published": ("mailmerger_dispatcher_published_total", None),
    "gmail": (
        "mailmerger_gmail_request_duration_seconds_count",
        {"operation": "messages.send", "status": "200"},
    ),
}


@dataclass
class SignedIn:
    client: httpx.AsyncClient
    account_id: int


@pytest.fixture
async def signed_in(operated: SystemUnderTest) -> AsyncIterator[SignedIn]:
    """A new user with a connected emulated Gmail account, and a client carrying their token."""
    tag = uuid.uuid4().hex[:10]
    api = Api(operated.base_url)
    try:
        await asyncio.to_thread(
            api.sign_up_confirmed, f"observed-{tag}@example.org", f"pw-{tag}-secret", "Observed"
        )
        account_id = await asyncio.to_thread(api.connect_gmail, f"observed-{tag}@gmail.local", "Observed")
        headers = {"Authorization": api.http.headers["Authorization"]}
    finally:
        api.close()
    async with httpx.AsyncClient(base_url=operated.base_url, headers=headers, timeout=30) as client:
        yield SignedIn(client, account_id)


@pytest.fixture
async def sent(signed_in: SignedIn, sender_logs: JsonLines) -> Sent:
    """One email composed with a known X-Request-ID, delivered to the emulator."""
    client, account_id = signed_in.client, signed_in.account_id
    before = {key: sample(name, labels) for key, (name, labels) in SAMPLES.items()}
    request_id = f"req-{uuid.uuid4().hex}"
    response = await client.post(
        "/v1/emails/",
        json={
            "account_id": account_id,
            "to": ["watched@example.org"],
            "subject": "Hi",
            "html": "<p>Hi</p>",
        },
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 201, response.text
    email_id = response.json()["id"]

    async def delivered() -> bool:
        state = (await client.get(f"/v1/emails/{email_id}")).json()["state"]
        return state == "sent" and any(line.get("message_id") == email_id for line in sender_logs.lines)

    await eventually(delivered, timeout=30, interval=0.1)
    return Sent(client, email_id, request_id, before)


async def test_the_compose_requests_id_is_in_the_senders_log_lines_for_that_email(
    sent: Sent, sender_logs: JsonLines
) -> None:
    """The sender's JSON log line for the message carries the X-Request-ID of the compose call."""
    lines = [line for line in sender_logs.lines if line.get("message_id") == sent.email_id]
    assert lines
    assert all(line["correlation_id"] == sent.request_id for line in lines)
    assert any(line["msg"] == "delivery settled" and line["outcome"] == "sent" for line in lines)


async def test_a_delivery_counts_as_sent_with_its_dispatch_lag_and_gmail_latency(sent: Sent) -> None:
    """After one email: sent deliveries, published commands, lag and Gmail send latency all moved."""
    for key, (name, labels) in SAMPLES.items():
        assert sample(name, labels) >= sent.samples_before[key] + 1, key


async def test_an_email_scheduled_for_later_shows_in_the_queue_depth_gauge(signed_in: SignedIn) -> None:
    """The dispatcher's refresh counts a future email as scheduled and not yet due."""
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await signed_in.client.post(
        "/v1/emails/",
        json={"account_id": signed_in.account_id, "to": ["later@example.org"], "subject": "Later",
              "html": "<p>Later</p>", "send_at": send_at},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    try:
        await eventually(
            lambda: sample("mailmerger_queue_scheduled_messages", {"due": "false"}) >= 1, timeout=30
        )
    finally:
        await signed_in.client.post(f"/v1/emails/{response.json()['id']}/cancel")


async def test_an_account_gmail_throttled_shows_in_the_parked_accounts_gauge(
    signed_in: SignedIn, operate_database: str
) -> None:
    """An account parked until later is counted by the dispatcher's refresh."""
    engine = create_engine(DatabaseSettings(url=operate_database), application_name="operate-test")
    park = text(
        "UPDATE queue.senders SET parked_until = :until, parked_reason = 'test' WHERE account_id = :id"
    )
    try:
        async with engine.begin() as connection:
            await connection.execute(
                park, {"until": datetime.now(UTC) + timedelta(hours=1), "id": signed_in.account_id}
            )
        await eventually(lambda: sample("mailmerger_accounts_parked") >= 1, timeout=30)
    finally:
        async with engine.begin() as connection:
            await connection.execute(park, {"until": None, "id": signed_in.account_id})
        await engine.dispose()


def test_gmail_paths_become_a_few_operation_names() -> None:
    """Message ids and query strings never become label values."""
    assert gmail_operation("/gmail/v1/users/me/messages/send") == "messages.send"
    assert (
        gmail_operation("/upload/gmail/v1/users/me/messages/send?uploadType=media") == "messages.send.upload"
    )
    assert gmail_operation("/gmail/v1/users/me/messages/18c2f0a9") == "messages.get"
    assert gmail_operation("/gmail/v1/users/me/messages") == "messages.list"


def test_tracing_is_off_by_default_and_adds_nothing() -> None:
    """Without MM_TRACING_ENABLED no tracer is installed and no traceparent is made."""
    assert tracing.configure_tracing(tracing.TracingSettings(), service="test") is False
    assert tracing.current_traceparent() is None
    with tracing.consumer_span("send_email.v1", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"):
        pass
