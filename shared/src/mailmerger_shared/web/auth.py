"""Offline verification of auth's access tokens, and the guard for internal routes.

Every service verifies EdDSA JWTs against auth's JWKS, fetched once and cached; an unknown ``kid``
triggers at most one refetch per ``min_refresh_interval`` (a key rotation is picked up at once,
while a flood of forged kids cannot turn into a flood of JWKS requests).

A session auth ends for security (an address's owner taking an account back, a password reset)
must not live on in its access tokens for their last minutes: auth records the session's id in
Redis (``EndedSessions``) and every service refuses the access tokens of a recorded session.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import jwt
import msgspec
import redis.asyncio as aioredis
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from mailmerger_shared.settings import JwtSettings
from mailmerger_shared.web.internal import CALLER_HEADER, TOKEN_HEADER
from mailmerger_shared.web.problems import Forbidden, Unauthorized

ALGORITHM = "EdDSA"
# Header parameters that would let a token name its own key; we only trust auth's JWKS.
_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c"})


class Principal(msgspec.Struct, frozen=True):
    """The authenticated user of a request."""

    user_id: int
    token_id: str
    claims: dict[str, Any]


JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


def http_jwks_fetcher(url: str) -> JwksFetcher:
    """Fetch auth's JWKS over HTTP. Fetches are rare (see JwksCache), so no client is kept open."""

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(url)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    return fetch


class JwksCache:
    """Public keys by ``kid``, refreshed on demand.

    Only keys of ``key_type`` are kept, each bound to ``algorithm`` (auth's EdDSA keys by default;
    auth itself reads Google's RSA keys with one).
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        min_refresh_interval: float = 30.0,
        key_type: str = "OKP",
        algorithm: str = ALGORITHM,
    ) -> None:
        self._fetch = fetch
        self._min_refresh_interval = min_refresh_interval
        self._key_type = key_type
        self._algorithm = algorithm
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:  # one refetch serves every request waiting on it
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self._min_refresh_interval:
                await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        document = await self._fetch()
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if entry.get("kid") and entry.get("kty") == self._key_type:
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=self._algorithm)
        self._keys = keys
        self._fetched_at = time.monotonic()


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience, expiry and token type of an access token.

    A token that verified once is remembered until it expires: a signed token cannot change, and
    access tokens are not revocable before expiry anyway, so re-checking its EdDSA signature on
    every request (~170 µs) would only burn CPU.
    """

    def __init__(self, keys: JwksCache, settings: JwtSettings, *, cache_size: int = 10_000) -> None:
        self._keys = keys
        self._settings = settings
        self._verified: OrderedDict[tuple[str, str], Principal] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str, *, kind: str = "access") -> Principal:
        cache_key = (kind, token)
        cached = self._verified.get(cache_key)
        if cached is not None:
            if cached.claims["exp"] + self._settings.leeway_seconds > time.time():
                self._verified.move_to_end(cache_key)
                return cached
            del self._verified[cache_key]
        principal = await self._verify_signed(token, kind)
        self._verified[cache_key] = principal
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _verify_signed(self, token: str, kind: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("the bearer token is not a well-formed JWT") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("the bearer token is not signed with the expected algorithm")
        if _FORBIDDEN_HEADERS & header.keys():
            raise Unauthorized("the bearer token names its own key, which is never trusted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the bearer token has no key id")
        try:
            key = await self._keys.key(kid)
        except httpx.HTTPError as exc:
            raise Unauthorized("signing keys are unavailable; retry shortly") from exc
        if key is None:
            raise Unauthorized("the bearer token was signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the bearer token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the bearer token is invalid: {exc}") from exc
        if claims.get("typ") != kind:
            raise Unauthorized(f"a {kind} token is required")
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError) as exc:
            raise Unauthorized("the bearer token's subject is not a user id") from exc
        return Principal(user_id=user_id, token_id=str(claims["jti"]), claims=claims)


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    value = connection.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send an access token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="mailmerger"'},
        )
    return token.strip()


def token_verifier(settings: JwtSettings, fetch: JwksFetcher | None = None) -> TokenVerifier:
    """The verifier a service uses: auth's JWKS over HTTP unless a key source is given (tests, auth)."""
    return TokenVerifier(JwksCache(fetch or http_jwks_fetcher(settings.jwks_url)), settings)


class EndedSessions:
    """Session ids whose access tokens no longer count, per user, in Redis.

    Auth records an id for as long as an access token of it can still verify; every service
    looks a user's set up at most once per ``refresh_interval`` per process, so an ended session's
    tokens stop working everywhere within that long, at one Redis read per user per interval.
    """

    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, refresh_interval: float = 1.0) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}auth:ended-sessions:"
        self._refresh_interval = refresh_interval
        self._known: dict[int, tuple[float, frozenset[str]]] = {}

    async def record(self, user_id: int, session_ids: list[str], *, lifetime_seconds: int) -> None:
        if not session_ids:
            return
        key = f"{self._prefix}{user_id}"
        await self._redis.sadd(key, *session_ids)
        await self._redis.expire(key, lifetime_seconds)  # every record extends it: the newest tokens decide
        self._known.pop(user_id, None)

    async def ended(self, user_id: int, session_id: str) -> bool:
        now = time.monotonic()
        known = self._known.get(user_id)
        if known is None or known[0] <= now:
            members = await self._redis.smembers(f"{self._prefix}{user_id}")
            ids = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            if len(self._known) > 100_000:  # bounded: forget everyone rather than grow without end
                self._known.clear()
            known = self._known[user_id] = (now + self._refresh_interval, ids)
        return session_id in known[1]


class JwtAuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticates every route unless its handler sets ``opt={"exclude_from_auth": True}``.

    The app's ``state.ended_sessions`` (set by the infrastructure lifespan, from Redis) is asked
    whether the token's session was ended; every service's app has it (an app built without
    infrastructure, in the kit's own tests, checks signatures only).
    """

    def __init__(self, app: Any, verifier: TokenVerifier, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._verifier = verifier

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        principal = await self._verifier.verify(bearer_token(connection))
        state = connection.app.state
        ended: EndedSessions | None = getattr(state, "ended_sessions", None)
        if ended is None and getattr(state, "infra", None) is not None:
            # A service's app (it opened its infrastructure) must be able to refuse ended sessions.
            raise RuntimeError(
                "this app authenticates users but opened no Redis (MM_REDIS_URL) to check sessions"
            )
        session_id = principal.claims.get("sid")
        if (
            ended is not None
            and session_id is not None
            and await ended.ended(principal.user_id, str(session_id))
        ):
            raise Unauthorized("this session was ended; sign in again")
        return AuthenticationResult(user=principal, auth=principal.claims)


def requires_caller(
    *allowed: str, credentials: Mapping[str, str]
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """Guard for ``/internal`` routes: only the named calling services, each with its own credential.

    ``credentials`` maps each allowed caller to the token it presents (from this service's
    settings; a service holds only the credentials of the callers it accepts). A caller that is
    not allowed gets 403 whatever it presents; an allowed caller with a wrong or missing token 401.
    Internal routes skip user authentication: this is their only key.
    """
    expected = {caller: credentials[caller].encode() for caller in allowed}

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        caller = connection.headers.get(CALLER_HEADER, "")
        if not caller:
            raise Unauthorized(f"internal route: name the calling service in {CALLER_HEADER!r}")
        if caller not in expected:
            raise Forbidden(
                f"internal route: the {caller!r} service may not call it (allowed: {', '.join(allowed)})"
            )
        presented = connection.headers.get(TOKEN_HEADER, "").encode()
        if not presented or not hmac.compare_digest(presented, expected[caller]):
            raise Unauthorized(f"internal route: send the {caller} service's credential as {TOKEN_HEADER!r}")

    return guard
