"""Issuing access and refresh tokens, and reading refresh tokens back.

Both are EdDSA JWTs signed with the current signing key and carrying ``kid``, ``iss``, ``aud``,
``sub``, ``iat``, ``exp``, ``jti``, ``typ`` and ``sid`` (the session, i.e. refresh-token family).

Invariants:
- An access token lives at most 15 minutes and is what every service accepts (``typ: access``,
  ``aud``: the platform audience).
- A refresh token is addressed to auth alone (``aud`` = auth's issuer name, ``typ: refresh``), so
  the shared verifier refuses it twice over. Only auth reads it, and reading checks signature,
  issuer, audience and type but not expiry: whether an expired one may still renew is the
  session's rule (``sessions``), not the token's.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_auth.domain import RefreshClaims
from mailmerger_auth.errors import InvalidRefreshToken
from mailmerger_auth.signing_keys import ALGORITHM, SigningKeys
from mailmerger_shared.settings import JwtSettings

ACCESS = "access"
REFRESH = "refresh"


class TokenIssuer:
    def __init__(
        self,
        keys: SigningKeys,
        settings: JwtSettings,
        *,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
        session_lifetime: timedelta,
    ) -> None:
        self._keys = keys
        self._settings = settings
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.session_lifetime = session_lifetime

    @property
    def refresh_audience(self) -> str:
        return self._settings.issuer

    async def access_token(
        self, session: AsyncSession, *, user_id: int, family_id: uuid.UUID, now: datetime
    ) -> tuple[str, datetime]:
        expires_at = _whole_seconds(now + self.access_ttl)
        claims = {"aud": self._settings.audience, "typ": ACCESS, "jti": uuid.uuid4().hex}
        return await self._sign(session, claims, user_id, family_id, now, expires_at), expires_at

    async def refresh_token(
        self,
        session: AsyncSession,
        *,
        user_id: int,
        family_id: uuid.UUID,
        jti: uuid.UUID,
        now: datetime,
        session_ends_at: datetime,
    ) -> tuple[str, datetime]:
        expires_at = _whole_seconds(min(now + self.refresh_ttl, session_ends_at))
        claims = {"aud": self.refresh_audience, "typ": REFRESH, "jti": str(jti)}
        return await self._sign(session, claims, user_id, family_id, now, expires_at), expires_at

    async def read_refresh_token(self, session: AsyncSession, token: str) -> RefreshClaims:
        """The claims of a refresh token this service signed; raises InvalidRefreshToken otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidRefreshToken() from None
        kid = header.get("kid")
        key = await self._keys.verification_key(session, kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != ALGORITHM:
            raise InvalidRefreshToken()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.refresh_audience,
                issuer=self._settings.issuer,
                options={"verify_exp": False, "require": ["exp", "iat", "sub", "jti", "sid", "typ"]},
            )
            if claims["typ"] != REFRESH:
                raise InvalidRefreshToken()
            return RefreshClaims(
                user_id=int(claims["sub"]),
                family_id=uuid.UUID(claims["sid"]),
                jti=uuid.UUID(claims["jti"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidRefreshToken() from None

    async def _sign(
        self,
        session: AsyncSession,
        claims: dict[str, Any],
        user_id: int,
        family_id: uuid.UUID,
        now: datetime,
        expires_at: datetime,
    ) -> str:
        key = await self._keys.current(session)
        payload = {
            **claims,
            "iss": self._settings.issuer,
            "sub": str(user_id),
            "sid": str(family_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return jwt.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def _whole_seconds(moment: datetime) -> datetime:
    """What a JWT's ``exp`` can express, so the returned expiry is exactly the token's."""
    return moment.replace(microsecond=0)
