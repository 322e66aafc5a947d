"""``mailmerger webhooks listen``: prints what verifies, refuses what does not."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support import free_port, start_webhook_listener

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.mark.slow  # a CLI process of its own
def test_the_listener_prints_verified_events_and_refuses_forged_ones() -> None:
    """A signed delivery is printed and answered 204; a wrong signature is answered 401."""
    port = free_port()
    process = start_webhook_listener(port, SECRET)
    try:
        assert process.stderr is not None
        assert "listening on" in process.stderr.readline()
        body = json.dumps(
            {"type": "message.sent", "timestamp": "2026-12-07T10:00:00Z", "data": {"message_id": 7}}
        )
        now = datetime.now(UTC)
        signature = Webhook(SECRET).sign("msg_1", now, body)
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        url = f"http://127.0.0.1:{port}/"
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        forged = {**headers, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
        assert httpx.post(url, content=body, headers=forged).status_code == 401
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert out.splitlines() == ['msg_1 message.sent {"message_id": 7}']
    assert "refused msg_1: No matching signature found" in err


def test_the_listener_needs_the_secret() -> None:
    """Without a secret it says where to find one and exits 2."""
    from mailmerger.cli import main

    assert main(["webhooks", "listen", "--secret", ""]) == 2
