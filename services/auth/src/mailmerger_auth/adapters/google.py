"""Google's OAuth 2.0 / OpenID Connect endpoints, as a client.

Every endpoint comes from the discovery document at ``discovery_url``, so the same calls reach
real Google or the emulator. Requests are built with authlib's protocol pieces (authorization URL,
token and revocation bodies, PKCE); they travel over our own httpx client because authlib's httpx
integration now targets httpx2 and warns on import.

ID tokens are verified here: RS256 signature against the keys of the discovered ``jwks_uri``
(refetched when an unknown ``kid`` appears, at most once a minute), ``iss``, ``aud`` = our client
id, ``exp``/``iat``, and ``nonce`` = the one we sent.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import jwt
import msgspec
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7009 import prepare_revoke_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from mailmerger_auth.domain import Clock, GoogleGrant, GoogleIdentity, clean_display_name
from mailmerger_auth.settings import GoogleSettings
from mailmerger_shared.web.auth import JwksCache

ID_TOKEN_ALGORITHMS = ["RS256"]
JWKS_MIN_REFRESH_SECONDS = 60.0
# Google documents that its ID tokens carry either form of its issuer.
_ISSUER_ALIASES = {"https://accounts.google.com": "accounts.google.com"}
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class GoogleError(Exception):
    """Google could not do what was asked."""


class GoogleRefused(GoogleError):
    """An OAuth error answer (``invalid_grant``, ``access_denied``…): retrying will not help."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


class GoogleUnavailable(GoogleError):
    """Google did not answer usefully (network, 5xx, malformed body): retrying may help."""


class InvalidIdToken(GoogleError):
    """The ID token is not one Google issued to us for this authorization."""


class ProviderMetadata(msgspec.Struct, frozen=True):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str


class _TokenResponse(msgspec.Struct, frozen=True):
    access_token: str
    expires_in: int
    scope: str = ""
    refresh_token: str | None = None
    id_token: str | None = None


class GoogleOAuth:
    """Our OAuth client at Google. One per process; holds the discovery document and Google's keys."""

    def __init__(self, client: httpx.AsyncClient, settings: GoogleSettings, clock: Clock) -> None:
        if not settings.client_id or not settings.client_secret:
            raise ValueError("Google needs MM_GOOGLE_CLIENT_ID and MM_GOOGLE_CLIENT_SECRET")
        self._http = client
        self._client_id = settings.client_id
        self._client_secret = settings.client_secret
        self._discovery_url = settings.discovery_url
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._keys = JwksCache(
            self._published_keys,
            min_refresh_interval=JWKS_MIN_REFRESH_SECONDS,
            key_type="RSA",
            algorithm=ID_TOKEN_ALGORITHMS[0],
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: GoogleSettings, clock: Clock, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> AsyncIterator[GoogleOAuth]:
        async with httpx.AsyncClient(
            transport=transport, timeout=settings.timeout_seconds, headers={"Accept": "application/json"}
        ) as client:
            yield cls(client, settings, clock)

    async def authorization_url(
        self, *, redirect_uri: str, scopes: list[str], state: str, nonce: str, code_verifier: str
    ) -> str:
        """Where to send the browser. Offline access with consent, so Google returns a refresh token."""
        metadata = await self._discover()
        url: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self._client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            access_type="offline",
            prompt="select_account consent",
            # Incremental consent: adding reply detection later keeps gmail.send in the new grant.
            include_granted_scopes="true",
        )
        return url

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> GoogleGrant:
        return await self._token_request(
            "authorization_code", redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
        )

    async def refresh(self, refresh_token: str) -> GoogleGrant:
        return await self._token_request("refresh_token", refresh_token=refresh_token)

    async def revoke(self, token: str) -> None:
        """Revoke a token and the grant behind it. An already revoked token counts as done."""
        metadata = await self._discover()
        body, headers = prepare_revoke_token_request(token)
        try:
            response = await self._http.post(metadata.revocation_endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise GoogleUnavailable(f"revocation failed: {exc!r}") from exc
        if response.status_code == 400 and _oauth_error(response)[0] == "invalid_token":
            return
        if response.status_code != 200:
            raise GoogleUnavailable(f"revocation answered HTTP {response.status_code}")

    async def verify_id_token(self, id_token: str, *, nonce: str) -> GoogleIdentity:
        metadata = await self._discover()
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidIdToken(f"malformed ID token: {exc}") from exc
        try:
            key = await self._keys.key(kid) if isinstance(kid, str) else None
        except jwt.PyJWTError as exc:
            raise GoogleUnavailable(f"Google's JWKS holds an unusable key: {exc}") from exc
        if key is None:
            raise InvalidIdToken("the ID token is signed with a key Google does not publish")
        issuers = [
            metadata.issuer,
            *([_ISSUER_ALIASES[metadata.issuer]] if metadata.issuer in _ISSUER_ALIASES else []),
        ]
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=ID_TOKEN_ALGORITHMS,
                audience=self._client_id,
                issuer=issuers,
                leeway=timedelta(seconds=60),
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidIdToken(f"the ID token is invalid: {exc}") from exc
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise InvalidIdToken("the ID token's nonce is not the one this authorization sent")
        if claims.get("azp", self._client_id) != self._client_id:
            raise InvalidIdToken("the ID token was issued to another client")
        if not isinstance(claims.get("email"), str):
            raise InvalidIdToken("the ID token has no email: the 'email' scope is required")
        return GoogleIdentity(
            sub=str(claims["sub"]),
            email=claims["email"],
            email_verified=claims.get("email_verified") is True,
            name=clean_display_name(claims.get("name")),
        )

    async def _token_request(self, grant_type: str, **params: str) -> GoogleGrant:
        metadata = await self._discover()
        # client_secret_post: the credentials travel in the form, as in Google's own examples.
        body = prepare_token_request(
            grant_type, client_id=self._client_id, client_secret=self._client_secret, **params
        )
        try:
            response = await self._http.post(metadata.token_endpoint, content=body, headers=_FORM)
        except httpx.HTTPError as exc:
            raise GoogleUnavailable(f"the token endpoint did not answer: {exc!r}") from exc
        if 400 <= response.status_code < 500:
            error, description = _oauth_error(response)
            raise GoogleRefused(error, description)
        if response.status_code != 200:
            raise GoogleUnavailable(f"the token endpoint answered HTTP {response.status_code}")
        try:
            token = msgspec.json.decode(response.content, type=_TokenResponse)
        except msgspec.MsgspecError as exc:
            raise GoogleUnavailable(f"the token endpoint answered an unexpected body: {exc}") from exc
        return GoogleGrant(
            access_token=token.access_token,
            expires_at=self._clock() + timedelta(seconds=token.expires_in),
            scopes=token.scope.split(),
            refresh_token=token.refresh_token,
            id_token=token.id_token,
        )

    async def _discover(self) -> ProviderMetadata:
        if self._metadata is None:
            document = await self._get_json(self._discovery_url)
            try:
                self._metadata = msgspec.convert(document, ProviderMetadata)
            except msgspec.ValidationError as exc:
                raise GoogleUnavailable(f"the discovery document is incomplete: {exc}") from exc
        return self._metadata

    async def _published_keys(self) -> dict[str, Any]:
        """Google's JWKS at the discovered ``jwks_uri``, for the key cache to read."""
        document = await self._get_json((await self._discover()).jwks_uri)
        try:
            jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWTError as exc:
            raise GoogleUnavailable(f"Google's JWKS holds no usable key: {exc}") from exc
        published: dict[str, Any] = document
        return published

    async def _get_json(self, url: str) -> Any:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise GoogleUnavailable(f"GET {url} failed: {exc!r}") from exc


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    """RFC 6749 section 5.2's ``error`` and ``error_description`` of an error answer."""
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}", ""
    if not isinstance(body, dict):
        return f"http_{response.status_code}", ""
    return str(body.get("error", f"http_{response.status_code}")), str(body.get("error_description", ""))
