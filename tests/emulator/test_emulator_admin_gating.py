"""The operator API (``/_emulator``) exists only in development (MM_ENVIRONMENT): it has no
credential, and it mints tokens for anyone and shows every mailbox."""

from __future__ import annotations

import httpx
import pytest

from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load
from tests.emulator.helpers import (
    MakeEmulator,
    authorization_code,
    bearer,
    build_message,
    exchange_code,
    mint_token,
    send,
)

ADMIN_CALLS = [
    ("POST", "/_emulator/reset"),
    ("GET", "/_emulator/users"),
    ("POST", "/_emulator/users"),
    ("PATCH", "/_emulator/users/alice@gmail.local"),
    ("POST", "/_emulator/tokens"),
    ("GET", "/_emulator/faults"),
    ("POST", "/_emulator/faults"),
    ("DELETE", "/_emulator/faults"),
    ("GET", "/_emulator/messages"),
    ("GET", "/_emulator/messages/counts"),
    ("GET", "/_emulator/messages/total"),
    ("DELETE", "/_emulator/messages"),
    ("GET", "/_emulator/messages/m1"),
    ("GET", "/_emulator/mailbox"),
    ("GET", "/_emulator/mailbox/m1"),
    ("POST", "/_emulator/incoming"),
    ("GET", "/_emulator/incoming"),
    ("PUT", "/_emulator/consent"),
    ("POST", "/_emulator/users/alice@gmail.local/password-change"),
]


def test_the_emulator_reads_mm_environment() -> None:
    """The emulator's settings take the deployment from the same MM_ENVIRONMENT as the services."""
    assert load(GoogleEmulatorSettings, {}).deployment.development
    production = load(GoogleEmulatorSettings, {"MM_ENVIRONMENT": "production"})
    assert not production.deployment.development


@pytest.mark.parametrize(("method", "path"), ADMIN_CALLS, ids=[f"{m} {p}" for m, p in ADMIN_CALLS])
async def test_outside_development_the_admin_api_does_not_exist(
    make_emulator: MakeEmulator, method: str, path: str
) -> None:
    """In production every /_emulator route is a 404: nothing to mint tokens or read mail with."""
    emulator = await make_emulator(auto_approve=True, deployment={"environment": "production"})
    response = await emulator.request(method, path, json={"email": "eve@gmail.local", "scopes": ["x"]})
    assert response.status_code == 404


async def test_outside_development_google_itself_still_works(make_emulator: MakeEmulator) -> None:
    """OAuth and the Gmail API answer as before: only the operator API is gone."""
    emulator = await make_emulator(auto_approve=True, deployment={"environment": "production"})
    assert (await emulator.get("/.well-known/openid-configuration")).status_code == 200
    tokens = await exchange_code(emulator, await authorization_code(emulator))
    assert tokens.status_code == 200, tokens.text
    sent = await send(emulator, tokens.json()["access_token"], build_message(sender="tester@gmail.local"))
    assert sent.status_code == 200, sent.text


async def test_in_development_the_admin_api_is_there(emulator: httpx.AsyncClient) -> None:
    """The default (development) keeps the operator API the tests and the demo rely on."""
    token = await mint_token(emulator)
    assert (await send(emulator, token, build_message())).status_code == 200
    listed = await emulator.get("/_emulator/messages", headers=bearer(token))
    assert listed.status_code == 200
    assert len(listed.json()["messages"]) == 1
