"""Auth's Ed25519 signing keys, stored in ``auth.signing_keys`` with the private half sealed.

Invariants:
- One key signs at any instant: the newest whose ``activates_at`` has passed.
- A new key is published in the JWKS ``publish_ahead`` before it signs, so a JWKS cache that
  refetches on an unknown ``kid`` (at most every 30 s) already knows it when its first token arrives.
- A replaced key is retired when its successor activates and stays published until every access
  token it signed has expired; it keeps verifying refresh tokens until every session it could have
  renewed has ended, and is deleted after that.
- Rotation runs under a transaction-scoped advisory lock, so replicas never rotate twice.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.crypto import Sealer, signing_key_context
from mailmerger_auth.domain import Clock
from mailmerger_shared.db import transaction

ALGORITHM = "EdDSA"
# Any constant shared by the replicas of this service; names the rotation lock.
_ROTATION_LOCK = 0x6D6D_6175_7468  # "mmauth"

FIRST_KEY_ACTIVATES_AT = datetime(1970, 1, 1, tzinfo=UTC)

t = models.signing_keys


class SigningKey(NamedTuple):
    kid: str
    private_key: Ed25519PrivateKey


class KeyPolicy(NamedTuple):
    rotate_after: timedelta
    publish_ahead: timedelta
    published_after_retirement: timedelta  # the longest an access token lives, plus leeway
    verifies_after_retirement: timedelta  # the longest a session lives


def public_jwk(kid: str, public_key: bytes) -> dict[str, str]:
    x = base64.urlsafe_b64encode(public_key).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": ALGORITHM}


class SigningKeys:
    """The key store: signs with the current key, publishes the JWKS, rotates."""

    def __init__(self, sealer: Sealer, policy: KeyPolicy, clock: Clock) -> None:
        self._sealer = sealer
        self._policy = policy
        self._clock = clock
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    def bind(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Give the store its database once the app's lifespan has opened it."""
        self._sessions = sessions

    async def published_jwks(self) -> dict[str, Any]:
        """The JWKS document; also the key source of auth's own access-token verifier."""
        assert self._sessions is not None, "bind() the store before serving"
        visible_since = self._clock() - self._policy.published_after_retirement
        async with transaction(self._sessions) as session:
            rows = await session.execute(
                select(t.c.kid, t.c.public_key)
                .where(or_(t.c.retired_at.is_(None), t.c.retired_at > visible_since))
                .order_by(t.c.activates_at.desc())
            )
            return {"keys": [public_jwk(row.kid, row.public_key) for row in rows]}

    async def current(self, session: AsyncSession) -> SigningKey:
        row = (
            await session.execute(
                select(t.c.kid, t.c.private_key, t.c.encryption_key_id)
                .where(t.c.activates_at <= self._clock())
                .order_by(t.c.activates_at.desc())
                .limit(1)
            )
        ).one_or_none()
        if row is None:
            raise RuntimeError("no signing key is active; the app's lifespan creates one at start-up")
        private = self._private.get(row.kid)
        if private is None:
            raw = self._sealer.open(
                row.private_key, key_id=row.encryption_key_id, context=signing_key_context(row.kid)
            )
            private = self._private[row.kid] = Ed25519PrivateKey.from_private_bytes(raw)
        return SigningKey(row.kid, private)

    async def verification_key(self, session: AsyncSession, kid: str) -> Ed25519PublicKey | None:
        """Any stored key, retired or not: refresh tokens outlive a key's time in the JWKS."""
        public = (await session.execute(select(t.c.public_key).where(t.c.kid == kid))).scalar_one_or_none()
        return None if public is None else Ed25519PublicKey.from_public_bytes(public)

    async def maintain(self, session: AsyncSession) -> None:
        """Create the first key, rotate a key that is due, delete keys nothing can need any more."""
        await session.execute(select(func.pg_advisory_xact_lock(_ROTATION_LOCK)))
        now = self._clock()
        newest = (await session.execute(select(func.max(t.c.created_at)))).scalar_one()
        if newest is None:
            # Nothing signs yet, so there is nothing to publish ahead of: the first key is active
            # since ever, which also keeps a replica whose clock lags a little able to sign.
            await self._add(session, activates_at=FIRST_KEY_ACTIVATES_AT)
        elif newest + self._policy.rotate_after <= now:
            await self._rotate(session, now)
        await session.execute(delete(t).where(t.c.retired_at < now - self._policy.verifies_after_retirement))

    async def rotate(self, session: AsyncSession) -> str:
        """Start replacing the current key now (after a suspected leak, or from an operator)."""
        await session.execute(select(func.pg_advisory_xact_lock(_ROTATION_LOCK)))
        return await self._rotate(session, self._clock())

    async def _rotate(self, session: AsyncSession, now: datetime) -> str:
        activates_at = now + self._policy.publish_ahead
        await session.execute(update(t).where(t.c.retired_at.is_(None)).values(retired_at=activates_at))
        return await self._add(session, activates_at=activates_at)

    async def _add(self, session: AsyncSession, *, activates_at: datetime) -> str:
        kid = secrets.token_urlsafe(12)
        private = Ed25519PrivateKey.generate()
        raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        await session.execute(
            t.insert().values(
                kid=kid,
                public_key=private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                private_key=self._sealer.seal(raw_private, context=signing_key_context(kid)),
                encryption_key_id=self._sealer.active_key_id,
                created_at=self._clock(),
                activates_at=activates_at,
            )
        )
        return kid
