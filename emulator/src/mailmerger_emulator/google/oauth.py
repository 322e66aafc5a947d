"""Google's sign-in side, on Google's paths: discovery, JWKS, authorization with consent.

The token, revocation and userinfo endpoints are in ``oauth_tokens.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request, Response, Router, get, post

from mailmerger_emulator.google import scopes as scope_catalog
from mailmerger_emulator.google.accounts import looks_like_email
from mailmerger_emulator.google.authorize import (
    AuthorizationPageError,
    approval_redirect,
    error_redirect,
    parse_authorization_request,
)
from mailmerger_emulator.google.http import html_response, json_response, parse_form, query, redirect
from mailmerger_emulator.google.pages import access_blocked_page, consent_page
from mailmerger_emulator.google.state import EmulatorState
from mailmerger_emulator.google.tokens import AuthorizationRequest

AUTHORIZE_PATH = "/o/oauth2/v2/auth"
CONSENT_PATH = "/o/oauth2/consent"


def discovery_document(base_url: str, browser_url: str) -> dict[str, Any]:
    """``browser_url`` serves the one endpoint a browser opens; services call the others."""
    return {
        "issuer": base_url,
        "authorization_endpoint": browser_url + AUTHORIZE_PATH,
        "token_endpoint": base_url + "/token",
        "userinfo_endpoint": base_url + "/v1/userinfo",
        "revocation_endpoint": base_url + "/revoke",
        "jwks_uri": base_url + "/oauth2/v3/certs",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": [
            "aud",
            "email",
            "email_verified",
            "exp",
            "family_name",
            "given_name",
            "iat",
            "iss",
            "name",
            "sub",
            "at_hash",
            "azp",
            "nonce",
        ],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    }


def oauth_router(state: EmulatorState) -> Router:
    settings = state.settings

    def approve(
        request: AuthorizationRequest, user_email: str, ticked: set[str] | None = None
    ) -> Response[bytes]:
        """Grant what the user approved: with ``ticked`` (the consent page's checkboxes) only
        those and the sign-in scopes (granular consent, GMAIL_FACTS.md 2.5)."""
        if ticked is not None:
            request = dataclasses.replace(request, scopes=scope_catalog.keep_ticked(request.scopes, ticked))
        code, scopes = state.tokens.issue_code(request, user_email)
        return redirect(approval_redirect(request, code, scopes))

    def silent_decision(request: AuthorizationRequest) -> Response[bytes]:
        """``prompt=none``: approve only what the hinted user already granted, never show a page."""
        user = state.directory.get(request.login_hint) if request.login_hint else None
        if user is None:
            return redirect(error_redirect(request, "login_required"))
        granted = state.tokens.granted_scopes(user.email, request.client_id)
        if not set(request.scopes) <= set(granted):
            return redirect(error_redirect(request, "consent_required"))
        return approve(request, user.email)

    @get("/.well-known/openid-configuration", sync_to_thread=False)
    def openid_configuration() -> Response[bytes]:
        return json_response(discovery_document(settings.base_url, settings.browser_base_url))

    @get("/oauth2/v3/certs", sync_to_thread=False)
    def certs() -> Response[bytes]:
        return json_response(state.signer.jwks())

    @get(AUTHORIZE_PATH, sync_to_thread=False)
    def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            auth_request = parse_authorization_request(query(request), state.clients)
        except AuthorizationPageError as error:
            return html_response(
                access_blocked_page(error.status_code, error.error, error.description), error.status_code
            )
        if "none" in auth_request.prompt:
            return silent_decision(auth_request)
        if settings.auto_approve:
            email = auth_request.login_hint or settings.default_user_email
            if not looks_like_email(email):
                return html_response(
                    access_blocked_page(400, "invalid_request", f"Invalid login_hint: {email}"), 400
                )
            user_email = state.directory.get_or_create(email).email
            unticked = state.unticked_scopes.get(user_email, frozenset())
            ticked = set(auth_request.scopes) - unticked if unticked else None
            return approve(auth_request, user_email, ticked)
        consent_id = state.tokens.hold_for_consent(auth_request)
        return html_response(
            consent_page(
                action_url=settings.browser_base_url + CONSENT_PATH,
                consent_id=consent_id,
                request=auth_request,
                users=state.directory.all(),
                unticked=state.unticked_scopes.get((auth_request.login_hint or "").lower(), frozenset()),
            )
        )

    @post(CONSENT_PATH, status_code=302)
    async def decide(request: Request[Any, Any, Any]) -> Response[Any]:
        body = (await request.body()).decode("utf-8", "replace")
        form = parse_form(body)
        # The page marks itself granular; a form without the mark (an older page) grants all.
        ticked = (
            {value for name, value in parse_qsl(body) if name == "scope"} if form.get("granular") else None
        )
        auth_request = state.tokens.take_consent(form.get("consent_id", ""))
        if auth_request is None:
            description = (
                "This sign-in request has expired or was already answered. Start again from the app."
            )
            return html_response(access_blocked_page(400, "invalid_request", description), 400)
        if form.get("decision") != "approve":
            return redirect(error_redirect(auth_request, "access_denied"))
        account = form.get("account", "")
        existing = state.directory.get(account) if account != "new" else None
        if existing is not None:
            return approve(auth_request, existing.email, ticked)
        email = form.get("new_email", "").strip()
        if not looks_like_email(email):
            return html_response(access_blocked_page(400, "invalid_request", f"Invalid email: {email}"), 400)
        user = state.directory.get_or_create(email, form.get("new_name", "").strip() or None)
        return approve(auth_request, user.email, ticked)

    return Router(path="/", route_handlers=[openid_configuration, certs, authorize, decide])
