"""Tokens an attacker might present, built from auth's real signing key where that matters.

A forged token is only a fair test if everything but the one flaw is right, so ``Forge`` signs with
the key auth signs with (read from auth's table and unsealed with the run's encryption settings)
and ``Forge.valid`` is checked to be accepted before its variants are checked to be refused.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from mailmerger_auth.crypto import Sealer
from mailmerger_auth.settings import EncryptionSettings
from mailmerger_auth.signing_keys import KeyPolicy, SigningKeys
from mailmerger_shared.settings import load


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes = b"") -> str:
    parts = [json.dumps(dict(header)).encode(), json.dumps(dict(claims)).encode()]
    return ".".join([*(b64url(p) for p in parts), b64url(signature)])


class Forge:
    def __init__(self, kid: str, private_key: Ed25519PrivateKey, public_x: str) -> None:
        self.kid = kid
        self.private_key = private_key
        self.public_x = public_x  # the JWK's "x": the public key auth publishes

    @classmethod
    async def of_running_auth(cls, env: Mapping[str, str], jwks: Mapping[str, Any]) -> Forge:
        sealer = Sealer.from_settings(load(EncryptionSettings, env))
        day = timedelta(days=1)
        keys = SigningKeys(sealer, KeyPolicy(day, day, day, day), lambda: datetime.now(UTC))
        engine = create_async_engine(env["MM_DB_URL"])
        try:
            async with AsyncSession(engine) as session:
                key = await keys.current(session)
        finally:
            await engine.dispose()
        [published] = [k for k in jwks["keys"] if k["kid"] == key.kid]
        return cls(key.kid, key.private_key, published["x"])

    def claims(self, user_id: int, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "mailmerger-auth",
            "aud": "mailmerger",
            "sub": str(user_id),
            "sid": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "typ": "access",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: Mapping[str, Any], **headers: Any) -> str:
        return jwt.encode(
            dict(claims), self.private_key, algorithm="EdDSA", headers={"kid": self.kid, **headers}
        )

    def valid(self, user_id: int) -> str:
        return self.sign(self.claims(user_id))
