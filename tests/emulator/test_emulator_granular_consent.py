"""Granular consent: each requested scope but the sign-in ones has a checkbox, ticked by default;
an unticked scope is missing from the redirect's and the token response's ``scope``
(GMAIL_FACTS.md 2.5). Auto-approval grants everything unless a test unticks a scope for a user."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx

from tests.emulator.helpers import (
    GMAIL_METADATA,
    GMAIL_SEND,
    MakeEmulator,
    authorization_code,
    exchange_code,
    redirect_query,
)
from tests.emulator.test_emulator_authorize import consent_form

SCOPES = f"openid email {GMAIL_SEND} {GMAIL_METADATA}"
USER = "carol@gmail.local"


async def decide(client: httpx.AsyncClient, consent_id: str, ticked: list[str]) -> httpx.Response:
    form = [("consent_id", consent_id), ("account", USER), ("decision", "approve"), ("granular", "1")]
    form += [("scope", scope) for scope in ticked]
    return await client.post(
        "/o/oauth2/consent",
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


async def test_consent_page_has_a_ticked_checkbox_per_gmail_scope(make_emulator: MakeEmulator) -> None:
    """Gmail scopes get ticked checkboxes; the sign-in scopes none."""
    client = await make_emulator()
    page, _ = await consent_form(client, scope=SCOPES)
    boxes = re.findall(r'<input type=checkbox name=scope value="([^"]+)"( checked)?>', page)
    assert boxes == [(GMAIL_SEND, " checked"), (GMAIL_METADATA, " checked")]


async def test_unticked_scope_is_not_granted(make_emulator: MakeEmulator) -> None:
    """Unticking gmail.metadata leaves it out of the redirect's and the token response's scope."""
    client = await make_emulator()
    await client.post("/_emulator/users", json={"email": USER})
    _, consent_id = await consent_form(client, scope=SCOPES)
    answer = await decide(client, consent_id, [GMAIL_SEND])
    assert answer.status_code == 302
    query = redirect_query(answer)
    assert GMAIL_METADATA not in query["scope"].split()
    token = (await exchange_code(client, query["code"])).json()
    granted = set(token["scope"].split())
    assert GMAIL_SEND in granted
    assert GMAIL_METADATA not in granted
    assert "openid" in granted


async def test_all_ticked_grants_everything(make_emulator: MakeEmulator) -> None:
    client = await make_emulator()
    await client.post("/_emulator/users", json={"email": USER})
    _, consent_id = await consent_form(client, scope=SCOPES)
    query = redirect_query(await decide(client, consent_id, [GMAIL_SEND, GMAIL_METADATA]))
    token = (await exchange_code(client, query["code"])).json()
    assert {GMAIL_SEND, GMAIL_METADATA} <= set(token["scope"].split())


async def test_auto_approve_grants_every_scope(emulator: httpx.AsyncClient) -> None:
    code = await authorization_code(emulator, scope=SCOPES, login_hint=USER)
    token = (await exchange_code(emulator, code)).json()
    assert {GMAIL_SEND, GMAIL_METADATA} <= set(token["scope"].split())


async def test_auto_approve_honours_a_users_unticked_scope(emulator: httpx.AsyncClient) -> None:
    """PUT /_emulator/consent makes the user untick gmail.metadata on every later consent."""
    choice = await emulator.put("/_emulator/consent", json={"email": USER, "untick": [GMAIL_METADATA]})
    assert choice.status_code == 200
    code = await authorization_code(emulator, scope=SCOPES, login_hint=USER)
    granted = set((await exchange_code(emulator, code)).json()["scope"].split())
    assert GMAIL_SEND in granted
    assert GMAIL_METADATA not in granted
    # Someone else still grants everything.
    other = await authorization_code(emulator, scope=SCOPES, login_hint="dave@gmail.local")
    assert GMAIL_METADATA in (await exchange_code(emulator, other)).json()["scope"].split()


async def test_untick_choice_can_be_undone(emulator: httpx.AsyncClient) -> None:
    await emulator.put("/_emulator/consent", json={"email": USER, "untick": [GMAIL_METADATA]})
    await emulator.put("/_emulator/consent", json={"email": USER, "untick": []})
    code = await authorization_code(emulator, scope=SCOPES, login_hint=USER)
    assert GMAIL_METADATA in (await exchange_code(emulator, code)).json()["scope"].split()


async def test_untick_choice_shows_unticked_on_the_page(make_emulator: MakeEmulator) -> None:
    client = await make_emulator()
    await client.put("/_emulator/consent", json={"email": USER, "untick": [GMAIL_METADATA]})
    page, _ = await consent_form(client, scope=SCOPES, login_hint=USER)
    assert f'<input type=checkbox name=scope value="{GMAIL_METADATA}">' in page


async def test_untick_choice_rejects_unknown_scopes(emulator: httpx.AsyncClient) -> None:
    answer = await emulator.put("/_emulator/consent", json={"email": USER, "untick": ["gmail.everything"]})
    assert answer.status_code == 400
