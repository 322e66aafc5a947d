"""Per-user quotas and account states: Gmail's refusals before a message is looked at."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.emulator.helpers import FakeClock, MakeEmulator, bearer, build_message, mint_token, send

USER_RATE_LIMIT = {
    "error": {
        "errors": [
            {
                "domain": "usageLimits",
                "reason": "userRateLimitExceeded",
                "message": "User Rate Limit Exceeded",
            }
        ],
        "code": 403,
        "message": "User Rate Limit Exceeded",
    }
}


async def profile(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/gmail/v1/users/me/profile", headers=bearer(token))


async def test_units_per_minute_refuse_the_call_that_exceeds_them(make_emulator: MakeEmulator) -> None:
    """At 300 units/min three sends (100 each) pass and the fourth gets 403 userRateLimitExceeded."""
    client = await make_emulator(quota_units_per_minute=300)
    token = await mint_token(client)
    statuses = [(await send(client, token, build_message())).status_code for _ in range(3)]
    refused = await send(client, token, build_message())
    assert statuses == [200, 200, 200]
    assert refused.status_code == 403
    assert refused.json() == USER_RATE_LIMIT


async def test_unit_window_slides_after_a_minute(make_emulator: MakeEmulator, clock: FakeClock) -> None:
    """Units spent more than 60 s ago no longer count."""
    client = await make_emulator(quota_units_per_minute=100)
    token = await mint_token(client)
    await send(client, token, build_message())
    clock.advance(59)
    assert (await send(client, token, build_message())).status_code == 403
    clock.advance(1)
    assert (await send(client, token, build_message())).status_code == 200


async def test_read_methods_cost_their_documented_units(make_emulator: MakeEmulator) -> None:
    """getProfile costs 1 unit and messages.list 5: ten units allow ten profiles, or two lists."""
    client = await make_emulator(quota_units_per_minute=10)
    token = await mint_token(client)
    assert [(await profile(client, token)).status_code for _ in range(11)] == [200] * 10 + [403]
    other = await mint_token(client, email="bob@gmail.local")
    lists = [
        (await client.get("/gmail/v1/users/me/messages", headers=bearer(other))).status_code for _ in range(3)
    ]
    assert lists == [200, 200, 403]


async def test_quota_is_per_user(make_emulator: MakeEmulator) -> None:
    """One user's exhausted quota leaves another's untouched."""
    client = await make_emulator(quota_units_per_minute=1)
    alice = await mint_token(client)
    bob = await mint_token(client, email="bob@gmail.local")
    await profile(client, alice)
    assert (await profile(client, alice)).status_code == 403
    assert (await profile(client, bob)).status_code == 200


async def test_user_override_changes_units_per_minute(make_emulator: MakeEmulator) -> None:
    """PATCH units_per_minute on a user replaces the default for that user only."""
    client = await make_emulator(quota_units_per_minute=15_000)
    token = await mint_token(client)
    await client.patch("/_emulator/users/alice@gmail.local", json={"units_per_minute": 2})
    assert [(await profile(client, token)).status_code for _ in range(3)] == [200, 200, 403]


async def test_daily_cap_answers_429_with_retry_time(make_emulator: MakeEmulator, clock: FakeClock) -> None:
    """Past the rolling-24-h cap Gmail answers 429 "(Mail sending)" with the time sending frees up."""
    client = await make_emulator(daily_send_cap=2)
    token = await mint_token(client)
    first_send = clock.now
    await send(client, token, build_message())
    clock.advance(3600)
    token = await mint_token(client)  # the first one just expired
    await send(client, token, build_message())
    refused = await send(client, token, build_message())
    error = refused.json()["error"]
    retry_at = datetime.fromtimestamp(first_send + 86_400, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert refused.status_code == 429
    assert error["errors"][0] == {
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
        "message": f"User-rate limit exceeded.  Retry after {retry_at} (Mail sending)",
    }
    assert error["message"] == error["errors"][0]["message"]
    assert error["status"] == "RESOURCE_EXHAUSTED"


async def test_daily_cap_rolls_over_24_hours(make_emulator: MakeEmulator, clock: FakeClock) -> None:
    """A day after the oldest send a slot frees again: the window is rolling, not calendar-based."""
    client = await make_emulator(daily_send_cap=1)
    token = await mint_token(client)
    await send(client, token, build_message())
    clock.advance(86_399)
    token = await mint_token(client)
    assert (await send(client, token, build_message())).status_code == 429
    clock.advance(1)
    assert (await send(client, token, build_message())).status_code == 200


async def test_refused_send_is_not_stored(make_emulator: MakeEmulator) -> None:
    """A message refused for the daily cap is not in the mailbox."""
    client = await make_emulator(daily_send_cap=1)
    token = await mint_token(client)
    await send(client, token, build_message())
    await send(client, token, build_message())
    assert (await client.get("/_emulator/messages/counts")).json()["total"] == 1


async def test_user_override_changes_the_daily_cap(make_emulator: MakeEmulator) -> None:
    """PATCH daily_send_cap models a consumer or trial account; null restores the default."""
    client = await make_emulator(daily_send_cap=2_000)
    token = await mint_token(client)
    await client.patch("/_emulator/users/alice@gmail.local", json={"daily_send_cap": 1})
    await send(client, token, build_message())
    assert (await send(client, token, build_message())).status_code == 429
    await client.patch("/_emulator/users/alice@gmail.local", json={"daily_send_cap": None})
    assert (await send(client, token, build_message())).status_code == 200


async def test_quotas_disabled_never_refuse(make_emulator: MakeEmulator) -> None:
    """With quotas_enabled off neither limit applies."""
    client = await make_emulator(quotas_enabled=False, quota_units_per_minute=100, daily_send_cap=1)
    token = await mint_token(client)
    assert [(await send(client, token, build_message())).status_code for _ in range(3)] == [200, 200, 200]


async def test_mail_service_not_enabled_is_failed_precondition(emulator: httpx.AsyncClient) -> None:
    """An account without Gmail gets 400 failedPrecondition "Mail service not enabled"."""
    token = await mint_token(emulator)
    await emulator.patch("/_emulator/users/alice@gmail.local", json={"status": "mail_service_not_enabled"})
    answer = await send(emulator, token, build_message())
    assert answer.json() == {
        "error": {
            "code": 400,
            "message": "Mail service not enabled",
            "errors": [
                {"message": "Mail service not enabled", "domain": "global", "reason": "failedPrecondition"}
            ],
            "status": "FAILED_PRECONDITION",
        }
    }


async def test_domain_policy_is_403(emulator: httpx.AsyncClient) -> None:
    """A Workspace that disabled Gmail apps answers 403 domainPolicy."""
    token = await mint_token(emulator)
    await emulator.patch("/_emulator/users/alice@gmail.local", json={"status": "domain_policy"})
    answer = await profile(emulator, token)
    assert answer.status_code == 403
    assert answer.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "domainPolicy",
                    "message": "The domain administrators have disabled Gmail apps.",
                }
            ],
            "code": 403,
            "message": "The domain administrators have disabled Gmail apps.",
        }
    }
