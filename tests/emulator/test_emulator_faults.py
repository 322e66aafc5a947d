"""Injected faults: failing, slow and (in test_emulator_dropped_connection.py) unanswered calls."""

from __future__ import annotations

import time

import httpx

from tests.emulator.helpers import bearer, build_message, mint_token, people, send

BACKEND_ERROR = {
    "error": {
        "errors": [{"domain": "global", "reason": "backendError", "message": "Backend Error"}],
        "code": 500,
        "message": "Backend Error",
    }
}


async def add_fault(
    client: httpx.AsyncClient, rule: dict[str, object] | list[dict[str, object]]
) -> dict[str, object]:
    answer = await client.post("/_emulator/faults", json=rule)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


async def profile_status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/gmail/v1/users/me/profile", headers=bearer(token))).status_code


async def test_fail_next_n_calls_then_recover(emulator: httpx.AsyncClient) -> None:
    """count=2 fails exactly the next two calls with Google's backendError body."""
    token = await mint_token(emulator)
    await add_fault(emulator, {"kind": "error", "status": 500, "reason": "backendError", "count": 2})
    first = await send(emulator, token, build_message())
    statuses = [first.status_code] + [
        (await send(emulator, token, build_message())).status_code for _ in range(2)
    ]
    assert first.json() == BACKEND_ERROR
    assert statuses == [500, 500, 200]


async def test_failed_call_stores_nothing(emulator: httpx.AsyncClient) -> None:
    """An injected error answers before the message is accepted."""
    token = await mint_token(emulator)
    await add_fault(emulator, {"kind": "error", "count": 1})
    await send(emulator, token, build_message())
    assert (await emulator.get("/_emulator/messages/counts")).json()["total"] == 0


async def test_error_rate_fails_about_that_share(emulator: httpx.AsyncClient) -> None:
    """rate=0.5 fails roughly half of the calls (bounds at ~7 standard deviations)."""
    token = await mint_token(emulator)
    await add_fault(emulator, {"kind": "error", "rate": 0.5, "status": 503})
    statuses = [await profile_status(emulator, token) for _ in range(200)]
    assert 50 < statuses.count(503) < 150
    assert statuses.count(503) + statuses.count(200) == 200


async def test_fault_limited_to_a_method(emulator: httpx.AsyncClient) -> None:
    """A rule naming messages.send leaves other methods alone."""
    token = await mint_token(emulator)
    await add_fault(emulator, {"kind": "error", "methods": ["messages.send"]})
    assert (await send(emulator, token, build_message())).status_code == 500
    assert await profile_status(emulator, token) == 200


async def test_fault_limited_to_a_user(emulator: httpx.AsyncClient) -> None:
    """A rule naming a user leaves the other users alone."""
    alice = await mint_token(emulator)
    bob = await mint_token(emulator, email="bob@gmail.local")
    await add_fault(emulator, {"kind": "error", "user": "Bob@gmail.local"})
    assert await profile_status(emulator, alice) == 200
    assert await profile_status(emulator, bob) == 500


async def test_429_burst_uses_google_wording(emulator: httpx.AsyncClient) -> None:
    """A 429 rateLimitExceeded burst reads "Too many concurrent requests for user"."""
    token = await mint_token(emulator)
    await add_fault(emulator, {"kind": "error", "status": 429, "reason": "rateLimitExceeded", "count": 3})
    answers = [await send(emulator, token, build_message()) for _ in range(3)]
    assert {answer.status_code for answer in answers} == {429}
    assert answers[0].json()["error"]["message"] == "Too many requests: Too many concurrent requests for user"


async def test_injected_mail_sending_limit_keeps_custom_message(emulator: httpx.AsyncClient) -> None:
    """A rule's message replaces the default wording, for errors the catalog doesn't know."""
    token = await mint_token(emulator)
    text = "User-rate limit exceeded.  Retry after 2026-11-24T10:00:00.000Z (Mail sending)"
    await add_fault(
        emulator, {"kind": "error", "status": 429, "reason": "rateLimitExceeded", "message": text}
    )
    assert (await send(emulator, token, build_message())).json()["error"]["message"] == text


async def test_latency_delays_the_answer(emulator: httpx.AsyncClient) -> None:
    """A latency rule adds its delay before the call is answered."""
    token = await mint_token(emulator)
    await add_fault(emulator, {"kind": "latency", "latency_ms": 200, "count": 1})
    started = time.monotonic()
    assert await profile_status(emulator, token) == 200
    assert time.monotonic() - started >= 0.2


async def test_faults_can_be_listed_and_cleared(emulator: httpx.AsyncClient) -> None:
    """GET lists the active rules with what remains of their count; DELETE clears them all."""
    token = await mint_token(emulator)
    await add_fault(
        emulator, [{"kind": "error", "count": 5}, {"kind": "latency", "latency_ms": 1, "rate": 0.1}]
    )
    await profile_status(emulator, token)
    listed = (await emulator.get("/_emulator/faults")).json()["faults"]
    assert [(fault["kind"], fault["remaining"]) for fault in listed] == [("error", 4), ("latency", None)]
    await emulator.delete("/_emulator/faults")
    assert (await emulator.get("/_emulator/faults")).json() == {"faults": []}
    assert await profile_status(emulator, token) == 200


async def test_invalid_fault_rule_is_refused(emulator: httpx.AsyncClient) -> None:
    """A rule with both rate and count (or an unknown field) is a 400."""
    both = await emulator.post("/_emulator/faults", json={"kind": "error", "rate": 0.5, "count": 1})
    unknown = await emulator.post("/_emulator/faults", json={"kind": "error", "colour": "red"})
    assert (both.status_code, unknown.status_code) == (400, 400)


async def test_reset_clears_everything(emulator: httpx.AsyncClient) -> None:
    """Reset forgets users, tokens, messages, quotas and faults."""
    token = await mint_token(emulator)
    await send(emulator, token, build_message())
    await add_fault(emulator, {"kind": "error", "methods": ["messages.list"]})
    assert (await emulator.post("/_emulator/reset")).status_code == 200
    assert await people(emulator) == []
    assert (await emulator.get("/_emulator/messages")).json() == {"messages": []}
    assert (await emulator.get("/_emulator/faults")).json() == {"faults": []}
    assert await profile_status(emulator, token) == 401
