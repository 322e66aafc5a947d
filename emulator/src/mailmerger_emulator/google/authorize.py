"""Validation of ``/o/oauth2/v2/auth`` requests, in the order Google checks them.

Until the client and its redirect URI are known good, an error is shown as a page and never
redirected (redirecting to an unverified URI would make the endpoint an open redirector). Google
also shows malformed requests as pages; only the user's decisions (``access_denied``) and
``prompt=none`` failures go back to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mailmerger_emulator.google import scopes as scope_catalog
from mailmerger_emulator.google.settings import OAuthClient
from mailmerger_emulator.google.tokens import AuthorizationRequest

_PROMPTS = frozenset({"none", "consent", "select_account"})


class AuthorizationPageError(Exception):
    """A request Google answers with its "Access blocked" error page."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status_code = status_code
        self.error = error
        self.description = description


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise AuthorizationPageError(400, "invalid_request", f"Missing required parameter: {name}")
    return value


def parse_authorization_request(
    params: Mapping[str, str], clients: Mapping[str, OAuthClient]
) -> AuthorizationRequest:
    client_id = _required(params, "client_id")
    client = clients.get(client_id)
    if client is None:
        raise AuthorizationPageError(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = _required(params, "redirect_uri")
    if redirect_uri not in client.redirect_uris:
        raise AuthorizationPageError(
            400,
            "redirect_uri_mismatch",
            "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. "
            f"If you're the app developer, register the redirect URI in the Google Cloud Console. "
            f"Request details: redirect_uri={redirect_uri}",
        )
    response_type = _required(params, "response_type")
    if response_type != "code":
        raise AuthorizationPageError(
            400, "unsupported_response_type", f"Invalid response_type: {response_type}"
        )
    granted, unknown = scope_catalog.normalize(_required(params, "scope"))
    if unknown:
        raise AuthorizationPageError(
            400, "invalid_scope", f"Some requested scopes were invalid. {{invalid=[{', '.join(unknown)}]}}"
        )
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or ("plain" if challenge else "")
    if challenge is None and method:
        raise AuthorizationPageError(400, "invalid_request", "Missing required parameter: code_challenge")
    if challenge is not None and method not in ("plain", "S256"):
        raise AuthorizationPageError(400, "invalid_request", f"Invalid code_challenge_method: {method}")
    access_type = params.get("access_type") or "online"
    if access_type not in ("online", "offline"):
        raise AuthorizationPageError(400, "invalid_request", f"Invalid access_type: {access_type}")
    prompt = frozenset(params.get("prompt", "").split())
    if not prompt <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise AuthorizationPageError(400, "invalid_request", f"Invalid prompt: {params.get('prompt')}")
    return AuthorizationRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=tuple(granted),
        state=params.get("state"),
        nonce=params.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
        offline=access_type == "offline",
        prompt=prompt,
        login_hint=params.get("login_hint") or None,
        include_granted_scopes=params.get("include_granted_scopes") == "true",
    )


def redirect_with(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` appended to its query (keeping the registered URI's own query)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend((key, value) for key, value in params.items() if value is not None)
    return urlunsplit(parts._replace(query=urlencode(query)))


def approval_redirect(request: AuthorizationRequest, code: str, scopes: tuple[str, ...]) -> str:
    prompt = "consent" if "consent" in request.prompt else "none"
    return redirect_with(
        request.redirect_uri,
        {"state": request.state, "code": code, "scope": " ".join(scopes), "authuser": "0", "prompt": prompt},
    )


def error_redirect(request: AuthorizationRequest, error: str) -> str:
    return redirect_with(request.redirect_uri, {"error": error, "state": request.state})
