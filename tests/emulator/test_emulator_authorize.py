"""``/o/oauth2/v2/auth``: request validation, the consent page and the user's decision."""

from __future__ import annotations

import re
from html import unescape

import httpx

from tests.emulator.helpers import (
    GMAIL_SEND,
    REDIRECT_URI,
    MakeEmulator,
    authorize_params,
    people,
    redirect_query,
)


async def consent_form(client: httpx.AsyncClient, **params: str) -> tuple[str, str]:
    """The consent page's HTML and its hidden consent id."""
    page = await client.get("/o/oauth2/v2/auth", params=authorize_params(**params))
    assert page.status_code == 200, page.text
    consent_id = re.search(r'name=consent_id value="([^"]+)"', page.text)
    assert consent_id is not None
    return page.text, unescape(consent_id.group(1))


async def test_unknown_client_shows_invalid_client_page(emulator: httpx.AsyncClient) -> None:
    """An unknown client_id gets Google's error page (401 invalid_client), never a redirect."""
    answer = await emulator.get("/o/oauth2/v2/auth", params=authorize_params(client_id="nobody"))
    assert answer.status_code == 401
    assert "location" not in answer.headers
    assert "invalid_client" in answer.text
    assert "The OAuth client was not found." in answer.text


async def test_missing_client_id_shows_invalid_request_page(emulator: httpx.AsyncClient) -> None:
    """Without client_id the page names the missing parameter."""
    params = authorize_params()
    del params["client_id"]
    answer = await emulator.get("/o/oauth2/v2/auth", params=params)
    assert answer.status_code == 400
    assert "Missing required parameter: client_id" in answer.text


async def test_unregistered_redirect_uri_shows_mismatch_page(emulator: httpx.AsyncClient) -> None:
    """A redirect URI that is not registered exactly is refused on a page, not redirected to."""
    answer = await emulator.get("/o/oauth2/v2/auth", params=authorize_params(redirect_uri=REDIRECT_URI + "/"))
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "redirect_uri_mismatch" in answer.text


async def test_unsupported_response_type_is_refused(emulator: httpx.AsyncClient) -> None:
    """Only the code flow is served."""
    answer = await emulator.get("/o/oauth2/v2/auth", params=authorize_params(response_type="token"))
    assert answer.status_code == 400
    assert "unsupported_response_type" in answer.text


async def test_unknown_scope_is_refused_as_invalid_scope(emulator: httpx.AsyncClient) -> None:
    """A scope Google doesn't know is listed on the invalid_scope page."""
    answer = await emulator.get("/o/oauth2/v2/auth", params=authorize_params(scope="openid gmail.everything"))
    assert answer.status_code == 400
    assert "invalid_scope" in answer.text
    assert "gmail.everything" in answer.text


async def test_unsupported_code_challenge_method_is_refused(emulator: httpx.AsyncClient) -> None:
    """PKCE accepts plain and S256 only."""
    params = authorize_params(code_challenge="abc", code_challenge_method="S512")
    answer = await emulator.get("/o/oauth2/v2/auth", params=params)
    assert answer.status_code == 400
    assert "Invalid code_challenge_method" in answer.text


async def test_consent_page_shows_users_and_requested_scopes(make_emulator: MakeEmulator) -> None:
    """Without auto-approval a real page lists the test users and every requested scope."""
    client = await make_emulator()
    await client.post("/_emulator/users", json={"email": "carol@gmail.local", "name": "Carol C"})
    page, _ = await consent_form(client)
    assert "carol@gmail.local" in page
    assert "Carol C" in page
    assert GMAIL_SEND in page
    assert "Send email on your behalf" in page
    assert "name=decision value=approve" in page


async def test_consent_page_escapes_request_values(make_emulator: MakeEmulator) -> None:
    """Values from the request (here login_hint) are escaped, so the page runs no injected script."""
    client = await make_emulator()
    page, _ = await consent_form(client, login_hint='"><script>alert(1)</script>')
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


async def test_approving_as_existing_user_redirects_with_code_and_state(make_emulator: MakeEmulator) -> None:
    """Approve redirects to the registered URI with code, state and the granted scopes."""
    client = await make_emulator()
    await client.post("/_emulator/users", json={"email": "carol@gmail.local"})
    _, consent_id = await consent_form(client)
    answer = await client.post(
        "/o/oauth2/consent",
        data={"consent_id": consent_id, "account": "carol@gmail.local", "decision": "approve"},
    )
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(REDIRECT_URI + "?")
    query = redirect_query(answer)
    assert query["state"] == "state-123"
    assert query["code"].startswith("4/")
    assert GMAIL_SEND in query["scope"].split()


async def test_approving_with_a_new_account_creates_the_user(make_emulator: MakeEmulator) -> None:
    """ "Use another account" creates the test user with the given name."""
    client = await make_emulator()
    _, consent_id = await consent_form(client)
    answer = await client.post(
        "/o/oauth2/consent",
        data={
            "consent_id": consent_id,
            "account": "new",
            "new_email": "Dave@Gmail.local",
            "new_name": "Dave D",
            "decision": "approve",
        },
    )
    assert answer.status_code == 302
    users = await people(client)
    assert [(u["email"], u["name"]) for u in users] == [("dave@gmail.local", "Dave D")]


async def test_denying_redirects_with_access_denied_and_state(make_emulator: MakeEmulator) -> None:
    """Cancel sends the user back with error=access_denied and the client's state, and no code."""
    client = await make_emulator()
    _, consent_id = await consent_form(client)
    answer = await client.post("/o/oauth2/consent", data={"consent_id": consent_id, "decision": "deny"})
    assert answer.status_code == 302
    assert redirect_query(answer) == {"error": "access_denied", "state": "state-123"}


async def test_consent_form_answers_once(make_emulator: MakeEmulator) -> None:
    """A consent id is spent by its first answer; a replayed form gets an error page."""
    client = await make_emulator()
    _, consent_id = await consent_form(client)
    form = {"consent_id": consent_id, "account": "new", "new_email": "e@gmail.local", "decision": "approve"}
    assert (await client.post("/o/oauth2/consent", data=form)).status_code == 302
    replay = await client.post("/o/oauth2/consent", data=form)
    assert replay.status_code == 400
    assert "already answered" in replay.text


async def test_auto_approve_signs_in_the_login_hint(emulator: httpx.AsyncClient) -> None:
    """With auto_approve the login_hint user (created on the fly) is approved at once."""
    answer = await emulator.get("/o/oauth2/v2/auth", params=authorize_params(login_hint="hinted@gmail.local"))
    assert answer.status_code == 302
    assert "code" in redirect_query(answer)
    users = await people(emulator)
    assert [u["email"] for u in users] == ["hinted@gmail.local"]


async def test_auto_approve_without_hint_uses_the_default_user(emulator: httpx.AsyncClient) -> None:
    """Without a login_hint the default test user signs in."""
    answer = await emulator.get("/o/oauth2/v2/auth", params=authorize_params())
    assert answer.status_code == 302
    users = await people(emulator)
    assert [u["email"] for u in users] == ["tester@gmail.local"]


async def test_prompt_none_without_a_grant_asks_for_consent(emulator: httpx.AsyncClient) -> None:
    """prompt=none never shows a page: an ungranted request comes back with consent_required."""
    await emulator.post("/_emulator/users", json={"email": "frank@gmail.local"})
    params = authorize_params(prompt="none", login_hint="frank@gmail.local")
    answer = await emulator.get("/o/oauth2/v2/auth", params=params)
    assert answer.status_code == 302
    assert redirect_query(answer)["error"] == "consent_required"


async def test_prompt_none_with_a_prior_grant_approves_silently(emulator: httpx.AsyncClient) -> None:
    """prompt=none returns a code when the user already granted every requested scope."""
    await emulator.get("/o/oauth2/v2/auth", params=authorize_params(login_hint="gina@gmail.local"))
    params = authorize_params(prompt="none", login_hint="gina@gmail.local")
    answer = await emulator.get("/o/oauth2/v2/auth", params=params)
    assert answer.status_code == 302
    assert "code" in redirect_query(answer)


async def test_redirect_keeps_the_registered_uri_query(make_emulator: MakeEmulator) -> None:
    """A registered redirect URI with its own query keeps it; the code is appended."""
    client = await make_emulator(
        auto_approve=True,
        clients=[{"client_id": "q", "client_secret": "s", "redirect_uris": ["http://app/cb?tenant=7"]}],
    )
    params = authorize_params(client_id="q", redirect_uri="http://app/cb?tenant=7")
    answer = await client.get("/o/oauth2/v2/auth", params=params)
    query = redirect_query(answer)
    assert query["tenant"] == "7"
    assert "code" in query
