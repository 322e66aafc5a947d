"""Google's token endpoint, revocation and the userinfo endpoints (v2, v3 and OpenID ``/v1``)."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from litestar import Request, Response, Router, get, post

from mailmerger_emulator.google import scopes
from mailmerger_emulator.google.accounts import TestUser
from mailmerger_emulator.google.errors import OAuthError, insufficient_scopes, invalid_credentials
from mailmerger_emulator.google.http import NO_STORE, bearer_token, form_body, json_response, query
from mailmerger_emulator.google.settings import OAuthClient
from mailmerger_emulator.google.signing import access_token_hash
from mailmerger_emulator.google.state import EmulatorState
from mailmerger_emulator.google.tokens import AccessToken

ID_TOKEN_TTL_SECONDS = 3600


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if header is None or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    # RFC 6749 section 2.3.1: both halves are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise OAuthError(400, "invalid_request", f"Missing required parameter: {name}")
    return value


def _id_token(state: EmulatorState, access: AccessToken, user: TestUser, nonce: str | None) -> str:
    now = int(state.clock())
    claims: dict[str, Any] = {
        "iss": state.settings.base_url,
        "azp": access.client_id,
        "aud": access.client_id,
        "sub": user.sub,
        "at_hash": access_token_hash(access.token),
        "iat": now,
        "exp": now + ID_TOKEN_TTL_SECONDS,
    }
    if scopes.USERINFO_EMAIL in access.scopes:
        claims.update(email=user.email, email_verified=True)
    if scopes.USERINFO_PROFILE in access.scopes:
        claims.update(name=user.name, given_name=user.given_name, family_name=user.family_name)
    if nonce:
        claims["nonce"] = nonce
    return state.signer.sign(claims)


def token_response(
    state: EmulatorState, access: AccessToken, refresh_token: str | None, nonce: str | None
) -> Response[bytes]:
    """The token endpoint's answer; an ID token only when ``openid`` was granted."""
    body: dict[str, Any] = {
        "access_token": access.token,
        "expires_in": round(access.expires_at - state.clock()),
        "scope": " ".join(sorted(access.scopes)),
        "token_type": "Bearer",
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    user = state.directory.get(access.user_email)
    if scopes.OPENID in access.scopes and user is not None:
        body["id_token"] = _id_token(state, access, user, nonce)
    return json_response(body, headers=NO_STORE)


def token_router(state: EmulatorState) -> Router:
    def authenticate_client(request: Request[Any, Any, Any], form: dict[str, str]) -> OAuthClient:
        """``client_secret_basic`` or ``client_secret_post``."""
        client_id, secret = _basic_credentials(request.headers.get("authorization")) or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        if not client_id:
            raise OAuthError(400, "invalid_request", "Could not determine client ID from request.")
        client = state.clients.get(client_id)
        if client is None:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if secret != client.client_secret:
            raise OAuthError(401, "invalid_client", "Unauthorized")
        return client

    @post("/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        form = await form_body(request)
        client = authenticate_client(request, form)
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            issued = state.tokens.redeem_code(
                _required(form, "code"),
                client_id=client.client_id,
                redirect_uri=_required(form, "redirect_uri"),
                verifier=form.get("code_verifier"),
            )
            return token_response(state, issued.access, issued.refresh_token, issued.nonce)
        if grant_type == "refresh_token":
            access = state.tokens.refresh(
                _required(form, "refresh_token"), client_id=client.client_id, scope=form.get("scope") or None
            )
            return token_response(state, access, None, None)
        raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    @post("/revoke", status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
        token_value = (await form_body(request)).get("token") or query(request).get("token", "")
        if not state.tokens.revoke(token_value):
            raise OAuthError(400, "invalid_token", "Token expired or revoked")
        return json_response({})

    def userinfo_user(request: Request[Any, Any, Any], *, oidc: bool) -> tuple[TestUser, AccessToken]:
        token_value = bearer_token(request)
        access = state.tokens.access(token_value) if token_value else None
        user = state.directory.get(access.user_email) if access else None
        if access is None or user is None:
            if oidc:
                raise OAuthError(401, "invalid_request", "Invalid Credentials")
            raise invalid_credentials()
        if not access.scopes & scopes.USERINFO:
            raise insufficient_scopes()
        return user, access

    def oidc_claims(request: Request[Any, Any, Any]) -> Response[bytes]:
        user, access = userinfo_user(request, oidc=True)
        body: dict[str, Any] = {"sub": user.sub}
        if scopes.USERINFO_PROFILE in access.scopes:
            body.update(name=user.name, given_name=user.given_name, family_name=user.family_name)
        if scopes.USERINFO_EMAIL in access.scopes:
            body.update(email=user.email, email_verified=True)
        return json_response(body)

    @get("/oauth2/v2/userinfo", sync_to_thread=False)
    def userinfo_v2(request: Request[Any, Any, Any]) -> Response[bytes]:
        user, access = userinfo_user(request, oidc=False)
        body: dict[str, Any] = {"id": user.sub}
        if scopes.USERINFO_EMAIL in access.scopes:
            body.update(email=user.email, verified_email=True)
        if scopes.USERINFO_PROFILE in access.scopes:
            body.update(name=user.name, given_name=user.given_name, family_name=user.family_name)
        return json_response(body)

    @get("/oauth2/v3/userinfo", sync_to_thread=False)
    def userinfo_v3(request: Request[Any, Any, Any]) -> Response[bytes]:
        return oidc_claims(request)

    @get("/v1/userinfo", sync_to_thread=False)
    def userinfo_openid(request: Request[Any, Any, Any]) -> Response[bytes]:
        return oidc_claims(request)

    return Router(path="/", route_handlers=[token, revoke, userinfo_v2, userinfo_v3, userinfo_openid])
